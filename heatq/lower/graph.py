"""Lower the constant matrix-vector products of an :class:`~heatq.ir.IntGraph` to adder graphs.

Each DENSE node, and each CONV2D node at one window position (inputs ordered
``(c_in, kh, kw)`` like ``weight.reshape(C_out, -1)``), becomes an :class:`AdderGraph`
computing ``W @ x + bias``.  When the node's only consumer is a REQUANT (and the node itself
is not a graph output) the REQUANT's rounding constant ``2**(shift-1)`` (HALF_UP) is folded
into the same constant, so the requantizer that follows is wiring (drop ``shift`` low bits)
and a clip.  A REQUANT that rounds (HALF_UP, shift > 0) but does not follow a product gets an
identity product with that constant (one constant adder per element).

:func:`run_lowered` evaluates a graph with every product computed by its adder graph: the
pass is exact when it equals :func:`heatq.ir.run` on every input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from heatq.ir import IntGraph, IRError, Op, Overflow, Rounding, run
from heatq.ir.interp import _as_dtype, check_input, requant_tail
from heatq.ir.ops import SPECS
from heatq.ir.requant import rounding_const

from heatq.ir.adders import AdderGraph
from .cmvm import lower_cmvm

_CACHE: dict[tuple, AdderGraph] = {}
_CACHE_MAX = 64


def cached_cmvm(weight: np.ndarray, in_ranges, const, max_carry: int | None,
                cse: bool = True) -> AdderGraph:
    """:func:`lower_cmvm` with an in-process cache (lowering a big layer takes seconds)."""
    w = np.ascontiguousarray(np.asarray(weight, dtype=np.int64))
    key = (w.shape, w.tobytes(), tuple((int(a), int(b)) for a, b in in_ranges),
           tuple(int(c) for c in const), max_carry, cse)
    g = _CACHE.get(key)
    if g is None:
        g = lower_cmvm(w, in_ranges, const, max_carry=max_carry, cse=cse)
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = g
    return g


@dataclass(frozen=True, eq=False)
class LayerPlan:
    """One lowered product.  ``node``: the DENSE / CONV2D (or standalone REQUANT) node id;
    ``requant``: the REQUANT fused after it, or None; ``cmvm`` computes the product plus
    ``bias`` plus the fused rounding constant."""

    node: int
    kind: str
    cmvm: AdderGraph
    requant: int | None
    round_const: int

    @property
    def out_node(self) -> int:
        return self.requant if self.requant is not None else self.node


@dataclass(frozen=True, eq=False)
class LoweredGraph:
    graph: IntGraph
    plans: tuple[LayerPlan, ...]
    max_carry: int | None
    meta: dict[str, Any] = field(default_factory=dict)

    def plan(self, node_id: int) -> LayerPlan | None:
        for p in self.plans:
            if p.node == node_id or p.requant == node_id:
                return p
        return None

    def report(self) -> dict[str, dict[str, Any]]:
        """Per lowered layer (by layer name, else ``node<id>``): the adder-graph stats."""
        out = {}
        for p in self.plans:
            n = self.graph.nodes[p.node]
            out[n.name or f"node{n.id}"] = {"op": n.op.value, **p.cmvm.stats()}
        return out

    def longest_carry(self) -> int:
        return max((p.cmvm.stats()["longest_carry"] for p in self.plans), default=0)


def _consumers(graph: IntGraph) -> dict[int, list[int]]:
    cons: dict[int, list[int]] = {n.id: [] for n in graph.nodes}
    for n in graph.nodes:
        for a in n.args:
            cons[a].append(n.id)
    return cons


def lower_graph(graph: IntGraph, max_carry: int | None = None, cse: bool = True) -> LoweredGraph:
    """Lower every DENSE / CONV2D (and every rounding REQUANT not fused into one)."""
    cons = _consumers(graph)
    outs = set(graph.outputs)
    plans: list[LayerPlan] = []
    fused: set[int] = set()
    for n in graph.nodes:
        if n.op in (Op.DENSE, Op.CONV2D):
            arg = graph.nodes[n.args[0]]
            a = n.attrs
            lo, hi = arg.lo, arg.hi
            if n.op is Op.CONV2D:
                if a.stride != 1:
                    raise IRError(f"{n.label()}: conv2d stride {a.stride} (only 1)")
                if a.padding:
                    lo, hi = min(lo, 0), max(hi, 0)
                w = a.weight.reshape(a.weight.shape[0], -1)
            else:
                w = a.weight
            rq = None
            rc = 0
            c = cons[n.id]
            if (len(c) == 1 and n.id not in outs and graph.nodes[c[0]].op is Op.REQUANT):
                rq = c[0]
                rc = rounding_const(graph.nodes[rq].attrs)
                fused.add(rq)
            const = [int(b) + rc for b in a.bias]
            g = cached_cmvm(w, [(lo, hi)] * w.shape[1], const, max_carry, cse)
            plans.append(LayerPlan(n.id, n.op.value, g, rq, rc))
    for n in graph.nodes:
        if n.op is Op.REQUANT and n.id not in fused and rounding_const(n.attrs):
            arg = graph.nodes[n.args[0]]
            size = arg.shape[0] if len(arg.shape) == 3 else arg.size  # per pixel / vector
            rc = rounding_const(n.attrs)
            g = cached_cmvm(np.eye(size, dtype=np.int64), [(arg.lo, arg.hi)] * size,
                            [rc] * size, max_carry, cse)
            plans.append(LayerPlan(n.id, "requant", g, n.id, rc))
    plans.sort(key=lambda p: p.node)
    return LoweredGraph(graph, tuple(plans), max_carry, {"cse": cse})


def _eval_plan(lg: LoweredGraph, p: LayerPlan, x: np.ndarray) -> np.ndarray:
    """The plan's adder-graph output (product + bias + rounding constant), shaped like the
    node's values."""
    g = lg.graph
    n = g.nodes[p.node]
    if p.kind == "conv2d":
        a = n.attrs
        pad = a.padding
        if pad:
            x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        k = a.weight.shape[2]
        win = sliding_window_view(x, (k, k), axis=(2, 3))
        nb, c, ho, wo = win.shape[:4]
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(nb * ho * wo, c * k * k)
        y = p.cmvm.evaluate(cols)
        return y.reshape(nb, ho, wo, -1).transpose(0, 3, 1, 2)
    if p.kind == "dense":
        return p.cmvm.evaluate(x)
    # standalone requant: identity product per element (channel-wise for [C, H, W])
    if x.ndim == 4:
        nb, c, h, w = x.shape
        y = p.cmvm.evaluate(x.transpose(0, 2, 3, 1).reshape(-1, c))
        return y.reshape(nb, h, w, c).transpose(0, 3, 1, 2)
    return p.cmvm.evaluate(x.reshape(x.shape[0], -1)).reshape(x.shape)


def run_lowered(lg: LoweredGraph, x: np.ndarray, trace: bool = False):
    """Evaluate the graph with every lowered product computed by its adder graph (exactly
    as the hardware does); same return convention as :func:`heatq.ir.run`."""
    g = lg.graph
    vals: list[np.ndarray | None] = [None] * len(g.nodes)
    vals[0] = check_input(g, x)
    for n in g.nodes[1:]:
        p = lg.plan(n.id)
        args = [vals[a] for a in n.args]
        if p is not None and p.node == n.id and p.kind != "requant":
            v = _eval_plan(lg, p, args[0])
            if p.requant is not None:
                rq = g.nodes[p.requant]
                vals[p.requant] = _as_dtype(np.asarray(requant_tail(v, rq.attrs)), rq.type)
                v = v - p.round_const
            vals[n.id] = _as_dtype(np.asarray(v), n.type)
            continue
        if p is not None and p.kind == "requant":
            v = _eval_plan(lg, p, args[0])
            vals[n.id] = _as_dtype(np.asarray(requant_tail(v, n.attrs)), n.type)
            continue
        if vals[n.id] is not None:  # a fused requant, already computed
            continue
        out = SPECS[n.op].evaluate(n, args, [g.nodes[a] for a in n.args])
        vals[n.id] = _as_dtype(np.asarray(out), n.type)
    return vals if trace else [vals[o] for o in g.outputs]


def check_lowering(lg: LoweredGraph, x: np.ndarray) -> None:
    """Raise AssertionError unless the lowered graph equals the interpreter on ``x`` (every
    node)."""
    ref = run(lg.graph, x, trace=True)
    got = run_lowered(lg, x, trace=True)
    for n in lg.graph.nodes:
        if not np.array_equal(ref[n.id], got[n.id]):
            raise AssertionError(f"lowered {n.label()} differs from the interpreter")
