"""Throughput-matched folding (``--fold auto``, ``--ii N``): each layer gets the parallelism
its place in the stream needs, no more.

Budget (stream mode, input ``[C, H, W]``): the host-facing stage sets the initiation
interval.  When a conv window reads the host (directly, or through elementwise units paced
by ``hq_pace``) it walks its padded raster of ``A`` positions, so the unfolded II is ``A``
(else the host's ``H * W`` pixels).  A window with step gap ``G`` (``hq_raster`` GAP / GK)
spaces the steps that complete a window ``G`` cycles apart and takes the others at once;
its walk then takes :func:`heatq_export.verilog_schedule.walk_ii` cycles per image.  The
target ``T`` (``--ii``, default the unfolded II) gives the host-facing window the largest
gap ``G0`` whose walk fits ``T``, and the stream the II ``T' <= T`` of that walk.  Every
other conv window may take the largest gap whose walk fits ``T'`` cycles per position (the
stages have no back-pressure between them: a window walking slower than ``T'`` per image
would fill the FIFO in front of it).  A stride-``S`` conv's layer may take ``S`` times its
window's gap: the windows on the stride grid (``hq_stride``) are at least ``S``
window-completing steps apart (``S`` columns in a row; a whole row of steps between two
kept rows), so its window steps with gap ``ceil(cycles / S)``.  A vector-domain layer (DENSE after FLATTEN) gets one
vector per image: ``T'`` cycles.  A target below the host-facing stage's positions is refused
with a one-line ``EmitError`` naming the layer.

Candidates per CMVM layer (its budget ``B`` cycles per position / vector):

* ``parallel``: today's layer module (one position per cycle), cost of its adder graph;
* ``bitserial`` (:mod:`heatq_export.rtl.bitserial`): ``a`` cycles for ``a``-bit inputs
  (``a > 1``), a 1-bit-input tree plus accumulators;
* ``mvau`` (:mod:`heatq_export.rtl.mvau`, when built): ``simd x pe`` lanes, the shapes
  ``mvau_shapes(n_in, n_out, B)`` offers, cost ``mvau_cost``.

Costs are LUT + CARRY4 estimates (:mod:`heatq_export.rtl.cost`: ``adders_cost`` /
``heap_cost`` by ``arith``); the cheapest candidate that fits the budget wins (ties: the
order above).  A window in front of a folded layer steps at most every ``cycles`` cycles
(``hq_raster`` GAP), so the layer gets one window per ``cycles`` cycles.  Pointwise layers
(a REQUANT alone), pipelined graphs (``--max-carry``: the folded designs' accumulators are
not segmented) and parallel mode (input ``[n]``: one vector per clock, II 1; a larger II
would need host back-pressure, which is not built: ``--ii > 1`` is refused) stay parallel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from heatq.ir import IntGraph, IntType, Op
from heatq.ir.adders import AdderGraph

from .base import EmitError
from .rtl import mvau as mv
from .rtl.bitserial import bitserial_netlist, signed_offset_const
from .rtl.cost import adders_cost, carry_adder_cost, heap_cost
from .verilog_schedule import max_gap, walk_ii

DESIGNS = ("parallel", "bitserial", "mvau")


@dataclass(frozen=True)
class FoldChoice:
    """One layer's design: ``cycles`` per position (its II), ``simd`` x ``pe`` lanes (mvau),
    ``cost`` (LUT + CARRY4 estimate), ``gap``: its window's step gap (>= cycles; the
    host-facing window's is the target's), ``budget``: the cycles the stream allows,
    ``g1``: the 1-bit-input adder graph (bitserial)."""

    design: str
    cycles: int
    simd: int = 1
    pe: int = 1
    cost: int = 0
    gap: int = 1
    budget: int = 1
    g1: AdderGraph | None = field(default=None, repr=False, compare=False)


def requant_after(g: IntGraph, n, cons) -> object | None:
    """The REQUANT that forms one layer with CMVM ``n`` (its only consumer), or None."""
    c = cons[n.id]
    if len(c) == 1 and n.id not in g.outputs and g.nodes[c[0]].op is Op.REQUANT:
        return g.nodes[c[0]]
    return None


def host_window(g: IntGraph):
    """The conv CMVM that reads the host's stream (directly or through elementwise units),
    or None."""
    cons, n = g.consumers(), 0
    while len(set(cons[n])) == 1 and n not in g.outputs:
        nxt = g.nodes[cons[n][0]]
        layout = nxt.attrs.layout if nxt.op is Op.CMVM else None
        if layout == "conv2d":
            return nxt
        if nxt.op not in (Op.THRESHOLD, Op.REQUANT, Op.BIT, Op.CONCAT) and layout != "pointwise":
            return None
        n = nxt.id
    return None


def window_shape(g: IntGraph, n) -> tuple[int, int, int, int]:
    """``(H, W, K, P)`` of conv CMVM ``n``'s window."""
    _, H, W = g.nodes[n.args[0]].shape
    return H, W, n.attrs.kernel, n.attrs.padding


def stream_ii(g: IntGraph, ii: int | None, name_of) -> tuple[int, int]:
    """``(T', G0)``: the stream's II for the target ``ii`` (None: the unfolded II) and the
    host-facing window's step gap; ``EmitError`` when the target is below what the stream
    allows.  Parallel mode: ``(1, 1)``, and ``ii > 1`` is refused."""
    inp = g.nodes[0]
    if len(inp.shape) != 3:
        if ii is not None and ii > 1:
            raise EmitError(f"verilog: --ii {ii}: parallel mode (input {list(inp.shape)}) takes "
                            "one vector per clock (II 1); a larger II needs host back-pressure, "
                            "which this target does not build")
        return 1, 1
    hw = host_window(g)
    if hw is None:
        n_host = inp.shape[1] * inp.shape[2]
        if ii is not None and ii < n_host:
            raise EmitError(f"verilog: --ii {ii}: the host streams {n_host} pixels per image, "
                            f"one per cycle: II >= {n_host}")
        return n_host, 1
    shape = window_shape(g, hw)
    area = walk_ii(*shape)
    if ii is not None and ii < area:
        raise EmitError(f"verilog: --ii {ii}: layer {name_of(hw)} walks {area} padded window "
                        f"positions per image, one per cycle at most: II >= {area}")
    gap = 1 if ii is None else max_gap(*shape, ii)
    return walk_ii(*shape, gap), gap


def _arith_cost(g: AdderGraph, arith: str) -> int:
    """LUT + CARRY4 of ``g``'s sums by :mod:`heatq_export.rtl.cost`."""
    if arith == "adders" or g.pipelined:
        return adders_cost(g)
    if arith == "heap":
        return heap_cost(g)
    return min(adders_cost(g), heap_cost(g))


def bitserial_cost(g1: AdderGraph, g: AdderGraph, w, c, in_type: IntType, n_fields: int,
                   arith: str) -> int:
    """The bit-serial design's LUT + CARRY4: the 1-bit tree, per output an accumulator
    adder and (non-zero constant) a constant adder of the accumulator's width, and the
    input shift register's 2:1 multiplexers (two per LUT6_2)."""
    cp = signed_offset_const(w, c, in_type)
    acc = sum(carry_adder_cost(o.type.width) * (2 if cj % (1 << o.type.width) else 1)
              for o, cj in zip(g.outputs, cp))
    return _arith_cost(g1, arith) + acc + (n_fields * in_type.width + 1) // 2


def layer_candidates(n, in_type: IntType, budget: int, arith: str, cse: bool,
                     n_fields: int) -> list[FoldChoice]:
    """Every design of CMVM ``n`` that fits ``budget`` cycles, parallel first."""
    from heatq.lower import lower_cmvm

    g = n.attrs.graph
    out = [FoldChoice("parallel", 1, cost=_arith_cost(g, arith), budget=budget)]
    if g.pipelined or budget < 2:
        return out
    w, c = g.matrix()
    a = in_type.width
    if 1 < a <= budget:
        g1 = lower_cmvm(w, [(0, 1)] * g.n_in, cse=cse)
        out.append(FoldChoice("bitserial", a, cost=bitserial_cost(g1, g, w, c, in_type,
                                                                   n_fields, arith),
                              budget=budget, g1=g1))
    n_out, n_in = w.shape
    for simd, pe in mv.mvau_shapes(n_in, n_out, budget):
        cyc = mv.mvau_cycles(n_in, n_out, simd, pe)
        if cyc <= budget:
            out.append(FoldChoice("mvau", cyc, simd, pe, int(mv.mvau_cost(w, in_type, simd, pe)),
                                  budget=budget))
    return out


def plan_folds(lowered: IntGraph, ii: int | None, arith: str, cse: bool = True,
               name_of=None, force: dict[str, str] | None = None) -> dict[str, FoldChoice]:
    """Layer name -> :class:`FoldChoice` for every CMVM layer of ``lowered`` (see the module
    docstring); ``name_of(node, requant)``: the report's layer name (default
    :func:`heatq_export.verilog_units.layer_name`).  ``force``: layer -> design
    (``parallel``, ``bitserial``, ``mvau`` or ``mvau:<simd>x<pe>``) instead of the cheapest,
    among the designs that fit the layer's budget (else ``EmitError``)."""
    if name_of is None:
        from .verilog_units import layer_name as name_of
    g, force = lowered, dict(force or {})
    T, gap0 = stream_ii(g, ii, lambda n: name_of(n, None))
    stream = len(g.nodes[0].shape) == 3
    cons, hw = g.consumers(), host_window(g) if stream else None
    plan: dict[str, FoldChoice] = {}
    for n in g.nodes:
        if n.op is not Op.CMVM:
            continue
        name = name_of(n, requant_after(g, n, cons))
        arg = g.nodes[n.args[0]]
        layout = n.attrs.layout
        if not stream or layout == "pointwise" or (layout == "dense" and len(arg.shape) != 1):
            budget = 1
        elif layout == "conv2d":  # stride S: the windows kept are >= S gapped steps apart
            budget = n.attrs.stride * (gap0 if n is hw else max(1, max_gap(*window_shape(g, n),
                                                                          T)))
        else:
            budget = T
        fields = n.attrs.graph.n_in if layout != "conv2d" else n.attrs.kernel ** 2 * arg.shape[0]
        cands = layer_candidates(n, arg.type, budget, arith, cse, fields)
        best = _pick(cands, force.pop(name, None), name, budget)
        per_step = -(-best.cycles // n.attrs.stride)  # the window's gap for those cycles
        gap = gap0 if n is hw else (per_step if layout == "conv2d" else best.cycles)
        plan[name] = FoldChoice(best.design, best.cycles, best.simd, best.pe, best.cost,
                                max(gap, per_step), budget, best.g1)
    if force:
        raise EmitError(f"verilog: fold_force names no CMVM layer: {', '.join(sorted(force))}")
    return plan


def _pick(cands: list[FoldChoice], want: str | None, name: str, budget: int) -> FoldChoice:
    """The cheapest candidate (first of equal costs: parallel first), or the one ``want``
    names."""
    if want is None:
        return min(cands, key=lambda f: f.cost)
    design, _, lanes = want.partition(":")
    ok = [c for c in cands if c.design == design
          and (not lanes or f"{c.simd}x{c.pe}" == lanes)]
    if not ok:
        raise EmitError(f"verilog: layer {name}: design {want!r} does not fit its budget of "
                        f"{budget} cycles per position (or is not built)")
    return min(ok, key=lambda f: f.cost)


def lanes(c: FoldChoice | None, g: AdderGraph) -> str:
    """The report's ``lanes``: ``"simd x pe"`` (parallel: every input x every output), or
    ``"1 bit/cycle"`` (bitserial)."""
    if c is None or c.design == "parallel":
        return f"{g.n_in} x {len(g.outputs)}"
    return "1 bit/cycle" if c.design == "bitserial" else f"{c.simd} x {c.pe}"


def folded_netlist(c: FoldChoice, name: str, g: AdderGraph, in_type: IntType,
                   in_off: list[int], nx: int, out_type: IntType, requant, header: list[str],
                   arith: str, in_names: list[str]):
    """The layer module of a folded design (``c.design`` bitserial or mvau) of the product
    ``g`` (its exact ``W``, ``c`` from ``g.matrix()``): ``(module, latency, cycles)``; the
    module contract of :mod:`heatq_export.rtl.bitserial` / :mod:`heatq_export.rtl.mvau`."""
    w, const = g.matrix()
    acc_types = [o.type for o in g.outputs]
    if c.design == "bitserial":
        return bitserial_netlist(name, c.g1, const, in_type, in_off, nx, out_type, acc_types,
                                 requant, header, arith, in_names, weights=w,
                                 acc_ranges=[(o.lo, o.hi) for o in g.outputs])
    if c.design == "mvau":
        return mv.mvau_netlist(name, w, const, in_type, in_off, nx, out_type, acc_types,
                               requant, header, c.simd, c.pe, in_names=in_names,
                               arith="heap" if arith == "heap" else "adders")
    raise ValueError(f"folded_netlist: design {c.design!r}")


__all__ = ["FoldChoice", "plan_folds", "stream_ii", "layer_candidates", "bitserial_cost",
           "host_window", "folded_netlist", "lanes", "DESIGNS"]
