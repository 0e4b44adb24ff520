"""The CONCAT unit of the Verilog top: wiring that joins flows arriving together.

The arguments of a CONCAT must share one time base: in the stream domain they are one node's
flow, or elementwise units (BIT / THRESHOLD, one register each) of one source, whose valids
are the same cycles; in the vector domain they are aligned by ``hq_delay`` to the latest one
(and must pass through the same FLATTENs, as for ADD).  No cell computes anything: the
output is the argument data side by side, each element extended to the node's type.

An argument named several times (the weight planes of one unit after
:func:`heatq.passes.fuse.fuse_split_products`) is carried once: when every consumer is a CMVM
the flow's ``chan`` maps each logical element (channel) to its physical one, and the layer
module reads the same wires for every copy (no line buffer or FIFO grows with the copies).
Any other consumer (or a graph output) gets the elements copied out in logical order.
"""

from __future__ import annotations

from heatq.ir import Op

from .rtl import netlist as nl
from .verilog_units import Flow, TopBuilder, _term, refuse

UNITS = (Op.BIT, Op.THRESHOLD)  # registered elementwise units: one cycle after their source


def _time_base(g, nid: int) -> tuple[int, int]:
    """(source node, register depth) of a stream argument: a unit counts as its source + 1."""
    n = g.nodes[nid]
    return (n.args[0], 1) if n.op in UNITS else (nid, 0)


def _aligned(tb: TopBuilder, n, distinct: list[int], flows: dict[int, Flow]) -> dict[int, Flow]:
    """Each distinct argument's flow at one time (vector domain: delayed to the latest)."""
    fl = {a: flows[a] for a in distinct}
    if any(f.domain != fl[distinct[0]].domain or f.chan is not None for f in fl.values()):
        raise refuse(n, "arguments in different domains or already concatenated")
    if fl[distinct[0]].domain == "stream":
        if len({_time_base(tb.g, a) for a in distinct}) > 1:
            raise refuse(n, "streamed arguments from different sources (no common time)")
        return fl  # parallel units of one source: the same token times in the cycle model
    if len({tb._origins(a) for a in distinct}) > 1:
        raise refuse(n, "arguments collected from different feature maps (no common time)")
    late_flow = max(fl.values(), key=lambda f: f.time)
    late, nm = late_flow.time, tb.lname(n)
    for k, a in enumerate(distinct):
        f = fl[a]
        if f.time == late:
            continue
        d = tb.wire(f"{nm}_arg{k}", f.data.width)
        tb.inst("hq_delay", f"u_{nm}_arg{k}", [("WIDTH", f.data.width), ("DEPTH", late - f.time)],
                [("clk", tb.clk, False), ("d", f.data, False), ("q", d, True)])
        fl[a] = Flow(late_flow.valid, d, f.etype, f.domain, f.elems, time=late)
    return fl


def concat(tb: TopBuilder, n, flows: dict[int, Flow], consumers: list[int]) -> Flow:
    """CONCAT node ``n`` from its arguments' flows; see the module docstring."""
    g, W = tb.g, n.type.width
    distinct = list(dict.fromkeys(n.args))
    fl = _aligned(tb, n, distinct, flows)
    first = max(fl.values(), key=lambda f: f.time)
    per = {a: g.nodes[a].shape[0] for a in distinct}  # channels (stream) / elements (vector)
    base, k = {}, 0
    for a in distinct:
        base[a], k = k, k + per[a]
    elems = [_term(fl[a].data, j, fl[a].etype, 0, W) for a in distinct for j in range(per[a])]
    logical = [base[a] + j for a in n.args for j in range(per[a])]
    dedup = all(g.nodes[c].op is Op.CMVM for c in consumers) and n.id not in g.outputs
    if not dedup:
        elems, logical = [elems[i] for i in logical], None
    nm = tb.lname(n)
    data = tb.wire(f"{nm}_data", W * len(elems))
    tb.m.assign(data, nl.cat(*elems))
    one = fl[distinct[0]] if len(distinct) == 1 else None
    return Flow(first.valid, data, n.type, first.domain, len(elems),
                ready=one.ready if one else None, last=one.last if one else None,
                time=first.time, chan=tuple(logical) if logical else None, stage=first.stage)


__all__ = ["concat"]
