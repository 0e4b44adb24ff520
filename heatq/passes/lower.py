"""``lower_products``: every constant matrix-vector product becomes a CMVM node carrying its
adder graph (:func:`heatq.lower.cmvm.lower_cmvm`), in the same IR.

- DENSE -> CMVM "dense"; CONV2D -> CMVM "conv2d" (same kernel, padding and stride: the adder
  graph at one window position does not depend on the stride) with the weights reshaped
  ``[C_out, C_in*K*K]`` (window order ``(c_in, ky, kx)``); the adder-graph input ranges are
  the argument's range in the *original* graph, widened to include 0 when zero-padded.
- A REQUANT whose argument is a product with no other consumer (and not a graph output)
  has its rounding constant (:func:`heatq.ir.requant.rounding_const`) added to the bias of
  that product's CMVM and becomes ``REQUANT(rounding=FLOOR)`` with the same shift, bounds and
  overflow.  Every other REQUANT gets a "pointwise" identity CMVM in front, with its rounding
  constant as the constant (0 when it has none), and also becomes FLOOR.  So in a lowered
  graph every REQUANT rounds FLOOR and its argument is a CMVM consumed by it alone.
- Names: a CMVM computing exactly the product keeps the product's name; one with a folded
  constant is ``"<product>.rounded"``; a pointwise one is ``"<requant>.pre"`` (unnamed nodes
  stay unnamed).  Every other node is copied unchanged (same op, attrs, name).

Preserves: the graph verifies; the interpreter's outputs and the values of every node whose
name survives are equal on every input.  Node ranges may only narrow (a CMVM's range is the
exact range of its adder graph, a DENSE / CONV2D's the partial-sum interval).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from heatq.ir import CmvmAttrs, GraphBuilder, IntGraph, IRError, Node, Op, Rounding
from heatq.ir.adders import AdderGraph
from heatq.ir.requant import rounding_const
from heatq.lower.cmvm import lower_cmvm

from .base import Pass

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


def _suffixed(name: str, suffix: str) -> str:
    return f"{name}.{suffix}" if name else ""


class LowerProducts(Pass):
    """DENSE / CONV2D -> CMVM with folded REQUANT rounding (see :mod:`heatq.passes.lower`).
    ``max_carry``: pipelined adder graphs with carry chains of at most that many bits
    (None: combinational); ``cse``: share common subexpressions."""

    name = "lower_products"

    def __init__(self, max_carry: int | None = None, cse: bool = True):
        self.max_carry = max_carry
        self.cse = cse

    def __call__(self, graph: IntGraph) -> IntGraph:
        consumers: dict[int, list[int]] = {n.id: [] for n in graph.nodes}
        for n in graph.nodes:
            for a in n.args:
                consumers[a].append(n.id)
        outs = set(graph.outputs)
        b = GraphBuilder()
        new: dict[int, int] = {}
        folded: dict[int, int] = {}  # REQUANT id -> the CMVM that already holds its constant
        for n in graph.nodes:
            if n.op in (Op.DENSE, Op.CONV2D):
                c = consumers[n.id]
                rq = graph.nodes[c[0]] if len(c) == 1 and n.id not in outs else None
                rq = rq if rq is not None and rq.op is Op.REQUANT else None
                new[n.id] = self._product(b, graph, n, new, rq)
                if rq is not None:
                    folded[rq.id] = new[n.id]
            elif n.op is Op.REQUANT:
                arg = folded.get(n.id)
                if arg is None:
                    arg = self._pointwise(b, graph, n, new)
                rounding = (Rounding.FLOOR if n.attrs.rounding is Rounding.HALF_UP
                            else n.attrs.rounding)  # HALF_EVEN's increment is data-dependent
                new[n.id] = b.add(Op.REQUANT, replace(n.attrs, rounding=rounding), [arg],
                                  n.name)
            else:
                new[n.id] = b.add(n.op, n.attrs, [new[a] for a in n.args], n.name)
        return b.build([new[o] for o in graph.outputs], graph.meta)

    def _product(self, b: GraphBuilder, graph: IntGraph, n: Node, new: dict[int, int],
                 rq: Node | None) -> int:
        """The CMVM of DENSE / CONV2D ``n`` (plus ``rq``'s rounding constant when fused)."""
        a = n.attrs
        arg = graph.nodes[n.args[0]]
        lo, hi = arg.lo, arg.hi
        if n.op is Op.CONV2D:
            if a.padding:  # padded positions read zero
                lo, hi = min(lo, 0), max(hi, 0)
            attrs = dict(layout="conv2d", kernel=a.weight.shape[2], padding=a.padding)
            if a.stride != 1:  # stride 1 keeps the attrs (and saved graphs) as before
                attrs["stride"] = a.stride
        else:
            attrs = dict(layout="dense")
        w = a.weight.reshape(a.weight.shape[0], -1)
        rc = rounding_const(rq.attrs) if rq is not None else 0
        g = cached_cmvm(w, [(lo, hi)] * w.shape[1], [int(v) + rc for v in a.bias],
                        self.max_carry, self.cse)
        name = _suffixed(n.name, "rounded") if rc else n.name
        return b.add(Op.CMVM, CmvmAttrs(g, w_frac=a.w_frac, **attrs), [new[arg.id]], name)

    def _pointwise(self, b: GraphBuilder, graph: IntGraph, n: Node, new: dict[int, int]) -> int:
        """An identity CMVM (per pixel of [C, H, W], per element of [n]) adding REQUANT
        ``n``'s rounding constant."""
        arg = graph.nodes[n.args[0]]
        if len(arg.shape) not in (1, 3):
            raise IRError(f"{n.label()}: cannot lower a requant of a {list(arg.shape)} tensor "
                          f"(only [C, H, W] or [n])")
        size, rc = arg.shape[0], rounding_const(n.attrs)
        g = cached_cmvm(np.eye(size, dtype=np.int64), [(arg.lo, arg.hi)] * size, [rc] * size,
                        self.max_carry, self.cse)
        return b.add(Op.CMVM, CmvmAttrs(g, "pointwise"), [new[arg.id]],
                     _suffixed(n.name, "pre"))


def lower_products(graph: IntGraph, max_carry: int | None = None, cse: bool = True) -> IntGraph:
    """``LowerProducts(max_carry, cse)(graph)``: see :mod:`heatq.passes.lower`."""
    return LowerProducts(max_carry, cse)(graph)


__all__ = ["LowerProducts", "lower_products", "cached_cmvm"]
