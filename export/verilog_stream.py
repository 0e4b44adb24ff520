"""Stream units of residual networks in the Verilog top: the join (a residual ADD of two or
more streams of one raster) and GLOBAL_AVGPOOL's accumulator (a stream -> one vector).

A join's arguments come from one raster along paths of different latency (a ResNet block's
main path through two conv windows, its shortcut directly, through an exact left-shift
REQUANT or a 1x1 projection conv).  The cycle model
(:mod:`heatq_export.verilog_schedule`) gives each argument's token times; the latest one
paces the join and every earlier one waits in a FIFO popped when the late element comes.
Everything is valid-only (no back-pressure), so the sizing must hold by the model: an
argument not always earlier, or a FIFO that grows image to image, is refused.
"""

from __future__ import annotations

from .rtl import netlist as nl
from .verilog_schedule import simulate
from .verilog_units import Flow, TopBuilder, _term, clog2, fifo_entries, refuse


def join(tb: TopBuilder, n, args: list[Flow]) -> Flow:
    """ADD of streams of one raster (a residual sum): the argument whose tokens come last
    (by the cycle model, for every element) paces the join; each earlier one waits in a
    FIFO (``hq_fifo``, depth from the model; popped when the late element arrives), then
    per channel ``sum_i x_i << s_i`` modulo ``2**width``, registered (exact: the sum
    lies in the node's type).  An argument neither always earlier nor always as late,
    or a FIFO whose occupancy would grow image to image, is refused."""
    nm = tb.lname(n)
    if any(f.chan is not None for f in args):
        raise refuse(n, "an add of concatenated streams")
    distinct = list(dict.fromkeys(n.args))
    fl = dict(zip(n.args, args))
    t4 = simulate(tb.stages, 0)["times"]
    host = list(range(tb._n_host() * 4))
    tm = {a: t4[fl[a].stage] if fl[a].stage is not None else host for a in distinct}
    late = max(distinct, key=lambda a: tm[a][-1])
    early = [a for a in distinct if tm[a] != tm[late]]
    for a in early:
        if any(x >= y for x, y in zip(tm[a], tm[late])):
            raise refuse(n, f"argument {tb.g.nodes[a].label()} is neither always before "
                         f"nor always with {tb.g.nodes[late].label()} (no join order)")
    st = tb.stage("join", {"n_host": tb._n_host(),
                             "args": [n.args.index(a) for a in early]}, nm, fl[late],
                    tuple(fl[a].stage for a in early))
    depths = simulate(tb.stages, 0)["fifo_depths"]
    grown = simulate(tb.stages, 0, n_img=8)["fifo_depths"]
    data = {a: fl[a].data for a in distinct}
    for a in early:
        key = f"{nm}_arg{n.args.index(a)}"
        if grown[key] != depths[key]:
            raise refuse(n, f"the FIFO holding {tb.g.nodes[a].label()} until "
                         f"{tb.g.nodes[late].label()} comes would grow from image to image")
        f, w = fl[a], fl[a].data.width
        fv, fd = tb.wire(f"{key}_fifo_valid", 1), tb.wire(f"{key}_fifo_data", w)
        fo = tb.wire(f"{key}_fifo_overflow", 1)
        tb.inst("hq_fifo", f"u_{key}_fifo", [("WIDTH", w),
                                               ("AW", clog2(fifo_entries(depths[key])))], [
            ("clk", tb.clk, False), ("rst", tb.rst, False), ("in_valid", f.valid, False),
            ("in_data", f.data, False), ("out_valid", fv, True),
            ("out_ready", fl[late].valid, False), ("out_data", fd, True),
            ("overflow", fo, True)])
        tb.errs.append(fo)
        data[a] = fd
    for f in args:
        tb.consume_host(f)
    W = n.type.width
    elems = []
    for j in range(n.shape[0]):
        terms = [t for a, s in zip(n.args, n.attrs.shifts)
                 if (t := _term(data[a], j, fl[a].etype, s, W)) is not None]
        acc: nl.Value = terms[0] if terms else nl.Const(W, 0)
        for t in terms[1:]:
            acc = nl.Add(acc, t)
        elems.append(acc)
    od, ov = tb.wire(f"{nm}_data", W * len(elems)), tb.wire(f"{nm}_valid", 1)
    tb.m.reg(od, nl.cat(*elems), tb.clk)
    tb.inst("hq_vdelay", f"u_{nm}_valid", [("DEPTH", 1)], [
        ("clk", tb.clk, False), ("rst", tb.rst, False), ("d", fl[late].valid, False),
        ("q", ov, True)])
    return Flow(ov, od, n.type, "stream", len(elems), stage=st)


def global_avgpool(tb: TopBuilder, n, arg: Flow) -> Flow:
    """GLOBAL_AVGPOOL of a feature map: ``hq_gap`` sums each channel over the image's
    ``N = H*W`` tokens (each element extended or cut to the node's width ``AW``: the sum
    lies in the node's type, so arithmetic modulo ``2**AW`` is exact) and emits the
    vector one cycle after the image's last token, like FLATTEN's collector.  The binary
    point moves by ``log2 N`` (no cell)."""
    if arg.domain != "stream":
        raise refuse(n, "a global average pool of a vector")
    c, H, W = tb.g.nodes[n.args[0]].shape
    N, AW, nm = H * W, n.type.width, tb.lname(n)
    st = tb.stage("collect", {"N": N}, nm, arg)
    ext = tb.wire(f"{nm}_x", c * AW)
    tb.m.assign(ext, nl.cat(*[_term(arg.data, j, arg.etype, 0, AW) for j in range(c)]))
    ov, od = tb.wire(f"{nm}_valid", 1), tb.wire(f"{nm}_data", c * AW)
    tb.inst("hq_gap", f"u_{nm}", [("C", c), ("AW", AW), ("N", N), ("NW", clog2(N))], [
        ("clk", tb.clk, False), ("rst", tb.rst, False), ("in_valid", arg.valid, False),
        ("in_data", ext, False), ("out_valid", ov, True), ("out_data", od, True)])
    tb.consume_host(arg)
    return Flow(ov, od, n.type, "vector", c, time=tb.vector_start(st, n))


__all__ = ["join", "global_avgpool"]
