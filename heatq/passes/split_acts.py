"""``split_acts``: the argument of each selected DENSE / CONV2D (an unsigned activation ``a``,
``0 <= lo <= a <= hi``) is replaced by binary units, and the product by one product per unit
(the same weights) summed by an ``ADD`` carrying the product's name.

- ``thermometer``: ``u_k = THRESHOLD(a, [[k]] per channel) = [a >= k]`` for ``k = 1..hi``
  (names ``<a>.u<k>``); ``a = sum_{k=1}^{hi} [a >= k]`` for every integer ``0 <= a <= hi``, so
  ``W a + B = sum_k W u_k + B`` (ADD shifts all 0).  Fan-in grows by ``hi`` (``2**b - 1`` for a
  b-bit ReLU).
- ``bitplane``: ``u_j = BIT(a, j)`` for ``j < b``, ``b`` the width of ``a``'s unsigned type
  (names ``<a>.b<j>``); ``a = sum_j u_j << j`` (binary expansion of ``a >= 0``), so
  ``W a + B = sum_j (W u_j) << j + B`` (ADD shift j).  Fan-in grows by ``b``.

Units are unsigned 1 bit, frac 0 (constant when ``lo..hi`` fixes them).  The bias goes into the
first part (shift 0).  Padding reads 0 and every unit of 0 is 0, so
zero-padded convolutions split too; stride is kept.  Units have binary point 0, so the parts
get ``w_frac + frac(a)``: each part, and the ADD, has the original product's binary point
(``0 + w_frac + frac(a)``) and the ADD its integer value.  Units of one activation are built
once and shared by every selected product reading it.  A product whose argument is already
1 bit wide is left as it is.
"""

from __future__ import annotations

import numpy as np

from heatq.ir import BitAttrs, GraphBuilder, IntGraph, IRError, Node, Op, ThresholdAttrs

from .base import Pass
from .split_common import Part, build_split, copy_node, emit_parts, select_products, sub_name

KINDS = ("thermometer", "bitplane")
MAX_UNITS = 4096  # thermometer units per activation (one node each)


class SplitActs(Pass):
    """Activation splitting into binary units (see :mod:`heatq.passes.split_acts`).

    Preserves: the graph verifies; every graph output and every named node keeps its integer
    values and binary point (the ADD carries the product's name); ``meta["regroup"]`` maps each
    split product to its per-unit parts.  ``layers``: the product names whose argument is split
    (None: every DENSE / CONV2D whose argument is wider than 1 bit)."""

    name = "split_acts"

    def __init__(self, kind: str = "thermometer", layers=None):
        if kind not in KINDS:
            raise IRError(f"split_acts: unknown kind {kind!r} (one of {', '.join(KINDS)})")
        self.kind, self.layers = kind, layers

    def __call__(self, graph: IntGraph) -> IntGraph:
        chosen = {}
        for n in select_products(graph, self.layers, self.name):
            arg = graph.nodes[n.args[0]]
            if arg.type.width > 1:
                self._check(n, arg)
                chosen[n.id] = arg
        b, new, local, made, growth = GraphBuilder(), {}, {}, {}, {}
        units: dict[int, list[tuple[int, int, str]]] = {}
        for n in graph.nodes:
            if n.id not in chosen:
                new[n.id] = copy_node(b, n, new)
                continue
            arg = chosen[n.id]
            if arg.id not in units:
                units[arg.id] = self._units(b, arg, new[arg.id])
            new[n.id], entries = emit_parts(b, n, self._parts(n, arg, units[arg.id]))
            growth[n.name or n.label()] = len(units[arg.id])
            if n.name:
                local[n.name], made[n.name] = entries, [name for name, _ in entries]
        log = {"pass": self.name, "kind": self.kind, "layers": growth}
        return build_split(b, graph, new, local, made, log)

    def _check(self, n: Node, arg: Node) -> None:
        where = f"{self.name}: {n.op.value} {n.label()}"
        if arg.lo < 0:
            raise IRError(f"{where}: its argument {arg.label()} ({arg.op.value}, "
                          f"{arg.lo}..{arg.hi}) is signed; only unsigned activations split "
                          f"into binary units")
        if self.kind == "thermometer" and arg.hi > MAX_UNITS:
            raise IRError(f"{where}: a thermometer split of {arg.label()} (0..{arg.hi}) needs "
                          f"{arg.hi} units, more than {MAX_UNITS}; use bitplane")

    def _units(self, b: GraphBuilder, arg: Node, src: int) -> list[tuple[int, int, str]]:
        """``(unit id, shift, suffix)`` for activation ``arg`` (new id ``src``)."""
        if self.kind == "thermometer":
            c = arg.shape[0]
            return [(b.add(Op.THRESHOLD, ThresholdAttrs(np.full((c, 1), k, np.int64)), [src],
                           sub_name(arg.name, f"u{k}")), 0, f"u{k}")
                    for k in range(1, arg.hi + 1)]
        return [(b.add(Op.BIT, BitAttrs(j), [src], sub_name(arg.name, f"b{j}")), j, f"b{j}")
                for j in range(arg.type.width)]

    @staticmethod
    def _parts(n: Node, arg: Node, units: list[tuple[int, int, str]]) -> list[Part]:
        a = n.attrs
        zero = np.zeros_like(a.bias)
        return [Part(a.weight, a.bias if i == 0 else zero, a.w_frac + arg.type.frac, uid, s, suf,
                     a.w_bits)
                for i, (uid, s, suf) in enumerate(units)]


def split_acts(graph: IntGraph, kind: str = "thermometer", layers=None) -> IntGraph:
    """``SplitActs(kind, layers)(graph)``: see :class:`SplitActs`."""
    return SplitActs(kind, layers)(graph)


__all__ = ["SplitActs", "split_acts", "KINDS", "MAX_UNITS"]
