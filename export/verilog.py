"""The Verilog target: synthesizable Verilog-2001 of a whole IntGraph.

Two architectures, chosen by the input's shape:

* **stream** (input ``[C, H, W]``): pixels enter one per clock on an AXI-Stream port
  (``s_tdata`` = the C channel values of one pixel, channel c at bits ``[c*w +: w]``;
  ``s_tvalid`` / ``s_tready`` / ``s_tlast`` marking each image's last pixel).  Each CONV2D is a
  'same'-padded window unit (``hq_window``: line buffer as a shift register, walking the
  padded raster, so ``s_tready`` drops on padding positions) feeding one layer module that
  computes all output channels of one window position with the adder graph of
  :mod:`heatq.lower` and requantizes (wiring + clip).  Max pooling streams with a row
  buffer (``hq_maxpool2``), FLATTEN collects the last feature map (``hq_collect``), and the
  fully connected layers, SIGN_BITS, the Hamming decoder (``hq_hamming``) and ARGMAX
  (``hq_argmax``) run on whole vectors.  Between stream layers a FIFO (depth from the cycle
  model) absorbs the stalls of the next window's padding steps.  Internally every stage is
  valid-only.
* **parallel** (input ``[n]``): one vector per clock, fully pipelined, II = 1.

BIT is a registered elementwise unit in either domain.  ADD of vectors: its arguments
are delayed (``hq_delay``) to the latest one and summed modulo ``2**width`` (exact: the sum
lies in the node's type).  A split's ADD trees over products are first fused into one product
over a CONCAT (:func:`heatq.passes.fuse.fuse_split_products`; CONCAT is wiring,
:mod:`heatq_export.verilog_concat`); an ADD of feature maps left after that (a residual sum)
is a join of streams, and GLOBAL_AVGPOOL an accumulator (:mod:`heatq_export.verilog_stream`).
A strided conv's window hands its layer only the windows on the stride grid
(``hq_stride``).

Outputs: one port ``m_<name>`` per graph output (element j at ``[j*w +: w]``, w = the node's
type width, two's complement when signed), all valid while ``m_tvalid`` is high; the output
side is AXI-Stream with back-pressure (``m_tready``): an output queue (``hq_outq``) sized
from the cycle model, whose credit lowers ``s_tready`` at a result's first beat
(:mod:`heatq_export.verilog_ports`: ports, handshake, sizing); ``err`` is a sticky flag (``s_tlast`` out of place, or a FIFO overflow: never, by the model's
sizing).  Reset: synchronous, active-high ``rst``.

The emitter runs the fusion and the lowering pass (:func:`heatq.passes.lower.lower_products`),
builds an RTL netlist (:mod:`heatq_export.rtl`): one layer module per CMVM (with the REQUANT
after it), the top module's units from :mod:`heatq_export.verilog_units`; the printer turns the
netlists into text.

Latency and II are stated in the report (``summary()["report"]["design"]``) from
:mod:`export.verilog_schedule`'s cycle model; the simulation bench measures and checks them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from heatq.ir import IntGraph, IRError, Op
from heatq.passes.fuse import fuse_split_products
from heatq.passes.lower import lower_products

from .base import EmitError, Emitter, EmitOption
from .fold import plan_folds, stream_ii
from .estimate import ESTIMATE_CHOICES, ESTIMATE_HELP, estimate_request
from .rtl import netlist as nl
from .rtl.lint import add_unused_sink
from .rtl.verilog import print_module
from .skeletons import read_template
from .verilog_concat import concat
from .verilog_layers import ARITH_CHOICES
from .verilog_ports import handshake, out_queue, port_map, top_header, top_ports
from .verilog_schedule import simulate
from .verilog_stream import global_avgpool, join
from .verilog_units import Flow, TopBuilder, fifo_entries, refuse

PRIMITIVES = ("hq_delay.v", "hq_vdelay.v", "hq_fifo.v", "hq_window.v", "hq_maxpool2.v",
              "hq_collect.v", "hq_hamming.v", "hq_argmax.v", "hq_pace.v", "hq_raster.v",
              "hq_outq.v", "hq_stride.v", "hq_gap.v")


@dataclass
class Design:
    """The generated design: files, report, port map; ``lowered``: the lowered graph the
    netlist was built from; ``adder_graphs``: layer name -> its adder graph."""

    top: str
    files: dict[str, str]
    report: dict[str, Any]
    ports: dict[str, Any]
    lowered: IntGraph = field(repr=False, default=None)  # type: ignore[assignment]
    adder_graphs: dict[str, Any] = field(repr=False, default_factory=dict)


FOLD_CHOICES = ("none", "auto")


class VerilogEmitter(Emitter):
    """``VerilogEmitter(top="heatq_top", max_carry=None, cse=True, estimate=False,
    arith="adders", fold="none", ii=None)``.

    ``max_carry=K``: every adder registered, no carry chain over K bits between registers.
    ``arith``: how a layer's sums are built (``adders``: two-input adders of the lowered
    adder graph; ``heap``: bit-heap compressor trees; ``auto``: per layer, the cheaper by the
    estimate).  ``fold``: ``none`` keeps every layer fully parallel (one window position per
    clock); ``auto`` gives each layer the parallelism its place in the stream needs to keep
    the initiation interval (``ii`` cycles per image; default: the unfolded design's), see
    :mod:`heatq_export.fold`.  ``fold_force`` (Python API only: tests, benches): layer ->
    design (``parallel``, ``bitserial``, ``mvau[:<simd>x<pe>]``) instead of the planner's
    choice, with ``fold="auto"``."""

    target = "verilog"
    supported_ops = frozenset(Op)
    options = (EmitOption("max_carry", int, "longest carry chain (bits); every adder registered",
                          minimum=1),
               EmitOption("estimate", str, ESTIMATE_HELP, bare="xilinx",
                          choices=ESTIMATE_CHOICES),
               EmitOption("arith", str, "layer arithmetic: adders | heap | auto",
                          default="adders"),
               EmitOption("fold", str, "layer folding: none | auto", default="none"),
               EmitOption("ii", int, "target initiation interval (cycles per image) for --fold",
                          minimum=1))

    def __init__(self, top: str = "heatq_top", max_carry: int | None = None, cse: bool = True,
                 estimate: bool | str = False, arith: str = "adders", fold: str = "none",
                 ii: int | None = None, fold_force: dict[str, str] | None = None):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", top):
            raise ValueError(f"top module name {top!r} is not a Verilog identifier")
        if max_carry is not None and max_carry < 1:
            raise ValueError(f"max_carry must be >= 1, got {max_carry}")
        if arith not in ARITH_CHOICES:
            raise ValueError(f"--arith {arith!r}: choose one of {', '.join(ARITH_CHOICES)}")
        if fold not in FOLD_CHOICES:
            raise ValueError(f"--fold {fold!r}: choose one of {', '.join(FOLD_CHOICES)}")
        if arith == "heap" and max_carry is not None:
            raise ValueError("--arith heap builds combinational bit heaps and --max-carry "
                             "pipelines adders: use one of them (or --arith auto)")
        if ii is not None and ii < 1:
            raise ValueError(f"--ii must be >= 1, got {ii}")
        self.top = top
        self.max_carry = max_carry
        self.cse = cse
        self.estimate = estimate_request(estimate)  # estimate_export's keywords
        self.arith = arith
        self.fold = fold
        self.ii = ii
        self.fold_force = dict(fold_force or {})
        self._cache: dict[int, tuple[IntGraph, Design]] = {}

    def design(self, graph: IntGraph) -> Design:
        hit = self._cache.get(id(graph))
        if hit is not None and hit[0] is graph:
            return hit[1]
        d = build_design(self, graph)
        self._cache[id(graph)] = (graph, d)
        return d

    def emit(self, graph: IntGraph) -> dict[str, str]:
        return dict(self.design(graph).files)

    def summary(self, graph: IntGraph, files: Mapping[str, str]) -> dict[str, Any]:
        d = self.design(graph)
        return {"top": d.top, "report": d.report, "ports": d.ports}

    def finish(self, export_dir) -> None:
        """``estimate``: yosys figures into the export's summary.json, inside the atomic write."""
        if self.estimate:
            from .estimate import estimate_export

            estimate_export(export_dir, **self.estimate)



def _paced_window(g: IntGraph):
    """The conv CMVM reached from the input through a chain of valid-only elementwise units
    (THRESHOLD, BIT, REQUANT, pointwise CMVM), or None: its window walks the padded raster slower
    than the host streams it, so the host must be paced (``hq_pace``)."""
    cons, n, unit = g.consumers(), 0, False
    while len(set(cons[n])) == 1 and n not in g.outputs:
        nxt = g.nodes[cons[n][0]]
        layout = nxt.attrs.layout if nxt.op is Op.CMVM else None
        if layout == "conv2d":
            return nxt if unit else None
        if nxt.op not in (Op.THRESHOLD, Op.REQUANT, Op.BIT, Op.CONCAT) and layout != "pointwise":
            return None
        if nxt.op is Op.CONCAT and len(set(nxt.args)) > 1:
            return None
        n, unit = nxt.id, unit or nxt.op is not Op.CONCAT
    return None


def _units(tb: TopBuilder, g: IntGraph, src: Flow) -> dict[int, Flow]:
    """Every node's flow, in graph order (a CMVM and the REQUANT after it: one layer)."""
    consumers = g.consumers()
    first = [g.nodes[c] for c in dict.fromkeys(consumers[0])]
    seen = first + [g.nodes[c] for n in first if n.op is Op.CONCAT for c in consumers[n.id]]
    if src.domain == "stream" and len(first) > 1 and any(
            c.op is Op.CMVM and c.attrs.layout == "conv2d" for c in seen):
        others = ", ".join(c.label() for c in first if c.op is not Op.CONCAT)
        raise refuse(g.nodes[0], f"a streamed input read by a conv window and other units "
                     f"({others}: the window stalls the host, the others would not wait)")
    conv = _paced_window(g) if src.domain == "stream" else None
    flows: dict[int, Flow] = {0: tb.pace(src, conv) if conv is not None else src}
    units = {Op.MAXPOOL2D: tb.pool, Op.FLATTEN: tb.flatten, Op.SIGN_BITS: tb.sign_bits,
             Op.HAMMING_DECODE: tb.hamming, Op.THRESHOLD: tb.threshold, Op.BIT: tb.bit,
             Op.ARGMAX: tb.argmax, Op.GLOBAL_AVGPOOL: lambda n, a: global_avgpool(tb, n, a)}
    for n in g.nodes[1:]:
        if n.id in flows:
            continue
        arg = flows[n.args[0]]
        if n.op is Op.ADD:  # vectors, or streams of one raster (a join)
            fa = [flows[a] for a in n.args]
            stream = all(f.domain == "stream" for f in fa)
            flows[n.id] = join(tb, n, fa) if stream else tb.add(n, fa)
        elif n.op is Op.CONCAT:
            flows[n.id] = concat(tb, n, flows, consumers[n.id])
        elif n.op is Op.CMVM:
            c = consumers[n.id]
            rq = g.nodes[c[0]] if (len(c) == 1 and n.id not in g.outputs
                                   and g.nodes[c[0]].op is Op.REQUANT) else None
            flows[n.id] = tb.cmvm(n, rq, arg)
            if rq is not None:
                flows[rq.id] = flows[n.id]
        elif n.op in units:
            flows[n.id] = units[n.op](n, arg)
        else:  # DENSE / CONV2D / REQUANT left after the lowering pass
            raise refuse(n, "no unit after lowering (a REQUANT must follow its own CMVM)")
    return flows


def _outputs(m: nl.Module, tb: TopBuilder, g: IntGraph, sig, flows, outs) -> tuple[int, dict]:
    """Outputs aligned in time to the last one, then through the output queue (``hq_outq``)
    to ``m_tvalid`` / the ``m_<name>`` ports; returns (the vector latency, the queue's
    figures)."""
    for port, o in outs:
        if flows[o].domain != "vector":
            raise refuse(g.nodes[o], "a feature map as a graph output (only vector "
                         "outputs are supported)")
    t_max = max(flows[o].time for _, o in outs)
    src = max((flows[o] for _, o in outs), key=lambda f: f.time)
    aligned: list[nl.Value] = []
    for port, o in outs:
        f = flows[o]
        d = t_max - f.time
        if d == 0:
            aligned.append(f.data)
        else:
            q = m.signal(f"{port.name}_aligned", port.width)
            m.instance("hq_delay", f"u_align_{port.name}", [("WIDTH", port.width), ("DEPTH", d)],
                       [nl.Port("clk", sig["clk"]), nl.Port("d", f.data), nl.Port("q", q, True)])
            aligned.append(q)
    queue = out_queue(m, tb, g, sig, src.valid, aligned, [p for p, _ in outs], t_max)
    err: nl.Value = nl.Const(1, 0)
    for e in tb.errs:
        err = e if isinstance(err, nl.Const) else nl.Or(err, e)
    m.assign(sig["err"], err)
    return t_max, queue


def build_design(em: VerilogEmitter, graph: IntGraph) -> Design:
    """Lower ``graph``, build the netlists, print them; the report and the port map."""
    inp = graph.nodes[0]
    if len(inp.shape) not in (1, 3):
        raise refuse(inp, f"input shape {list(inp.shape)}: only [C, H, W] or [n]")
    try:
        g = lower_products(fuse_split_products(graph, fold_requant=True),
                           max_carry=em.max_carry, cse=em.cse)
    except IRError as e:
        raise EmitError(f"verilog: {e}") from None
    mode = "stream" if len(inp.shape) == 3 else "parallel"
    m = nl.Module(em.top)
    sig, src, outs = top_ports(m, g)
    tb = TopBuilder(em.top, g, m, sig["clk"], sig["rst"], em.arith)
    tb.fold_ii, _ = stream_ii(g, em.ii, lambda n: tb.lname(n))  # checks the target
    if em.fold == "auto":
        tb.folds = plan_folds(g, em.ii, em.arith, em.cse, force=em.fold_force)
    flows = _units(tb, g, src)
    handshake(m, sig, mode == "stream", tb.host_ready_used)
    t_max, queue = _outputs(m, tb, g, sig, flows, outs)
    sched = simulate(tb.stages, t_max, end=tb.vec_origin)
    if em.ii is not None and sched["ii"] is not None and sched["ii"] > em.ii:
        raise EmitError(f"verilog: --ii {em.ii}: the design's II is {sched['ii']} cycles")
    m.header = top_header(em.top, mode, sched, sig, outs, queue)
    if em.fold != "none":
        why = "--ii" if em.ii else "the unfolded design's II"
        m.header.append(f"Folding: --fold {em.fold}, target II {em.ii or tb.fold_ii} ({why}); "
                        "each layer module's header states its design, lanes, cycles per "
                        "position and utilisation.")
    add_unused_sink(m)
    files = dict(tb.files)
    files[f"{em.top}.v"] = print_module(m)
    _add_primitives(files)
    return Design(em.top, files, _report(em, tb, sched, t_max, mode, files, queue),
                  port_map(m, mode, g, src, outs, queue), g, dict(tb.adder_graphs))


def _instantiated(module: str, text: str) -> bool:
    """True when ``text`` instantiates ``module`` (``module #(...)`` or ``module u_x (``), not
    when it merely names it in a comment."""
    return re.search(rf"^\s*{module}\s+(#\s*\(|[A-Za-z_]\w*\s*\()", text, re.M) is not None

def _add_primitives(files: dict[str, str]) -> None:
    """Add every primitive that the generated files, or the primitives added, instantiate
    (each file searched on its own, the regex only where the name occurs: a binarized layer
    module is tens of MB)."""
    texts = list(files.values())
    while True:
        new = [p for p in PRIMITIVES if p not in files
               and any(p[:-2] in t and _instantiated(p[:-2], t) for t in texts)]
        if not new:
            return
        for p in new:
            files[p] = read_template(p)
            texts.append(files[p])


def _report(em, tb: TopBuilder, sched, t_max: int, mode: str, files, queue
            ) -> dict[str, Any]:
    report: dict[str, Any] = dict(tb.layers)
    lay = tb.layers.values()
    report["design"] = {
        "mode": mode, "max_carry": em.max_carry, "cse": em.cse, "arith": em.arith,
        "fold": em.fold,
        "latency": sched["latency"], "latency_from_last_input": sched["latency_last"],
        "ii": sched["ii"], "vector_latency": t_max,
        "fifo_depths": {k: fifo_entries(v) for k, v in sched["fifo_depths"].items()},
        "output_queue": queue,
        "adders": sum(v["adders"] for v in lay),
        "adder_bits": sum(v["adder_bits"] for v in lay),
        "longest_carry": max((v["longest_carry"] for v in lay), default=0),
        "files": sorted(files),
    }
    ii = sched["ii"] or 1
    for v in lay:
        v["utilisation"] = round(v["busy_cycles_per_image"] / ii, 4)
    if em.fold != "none":  # the planner's LUT+CARRY4 estimate of the layers it chose
        report["design"]["ii_target"] = em.ii or tb.fold_ii
        report["design"]["layers_estimated_cost"] = sum(v.get("estimated_cost", 0) for v in lay)
    return report


__all__ = ["VerilogEmitter", "Design", "PRIMITIVES", "build_design"]
