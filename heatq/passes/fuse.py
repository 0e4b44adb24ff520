"""``fuse_split_products``: a split's parallel products and their recombination become ONE
product over the concatenation of their arguments (``CONCAT``), exactly.

A split (:mod:`heatq.passes.split`) computes a layer as ``ADD(shifts s_i)`` of products
``P_i = W_i u_i + B_i`` (all DENSE, or all CONV2D with one kernel size, stride and padding,
one ``w_frac``), possibly nested, and possibly through exact halvings ``REQUANT(shift h)``
(the scale-2 offset form: the argument is always a multiple of ``2**h`` and the bounds never
clip).  Every such tree is one linear form of its leaves' arguments::

    value = (sum_i (W_i << t_i) u_i + sum_i B_i << t_i) / 2**H

(``t_i``: the shifts along the path plus the alignment of the halvings).  The pass emits it as
``CONCAT(u_1, .., u_n)`` (``<root>.cat``) read by one product with the weights
``[W_1 << t_1 | .. | W_n << t_n]`` (``w_bits``: the narrowest that holds them) and the summed
bias, named ``<root>`` (``<root>.fused`` followed by an exact ``REQUANT(shift H, FLOOR)``
named ``<root>`` when ``H > 0``, its bounds the root's range).  An argument that appears in
several leaves (the weight planes of one unit) is concatenated once per leaf: the columns keep
the split's weights ``+-1 << t``, so the lowering (:mod:`heatq.passes.lower`) gives an adder
graph adding 1-bit terms, every shift wired.

With ``fold_requant`` a final halving whose only consumer is a REQUANT ``R`` is folded into it
(``REQUANT(shift(R) + H)``, R's rounding, bounds, overflow and name): the value being a
multiple of ``2**H``, dividing first is exact whatever R rounds; the root's own name is then
gone (it has no consumer left).

Fused: roots (a linear-form node not absorbed by its consumers) whose tree holds an ADD; a
node is absorbed when it is not an output and every consumer is an ADD / halving REQUANT of the
same tree.  Everything else is copied unchanged, so a graph without splits is unchanged.

Only the parts of one product form a tree: every leaf must read one *source*, the same node
or binary units of it (THRESHOLD / BIT of that node: an activation split's units).  An ADD of
products of different sources is a residual sum (a ResNet block's main path plus its
projection shortcut, :func:`heatq.ir.residual.aligned_add`), not a split's recombination: it is
kept as an ADD and each of its arguments fused on its own.  (The alignment REQUANT of a
residual sum shifts left, so it is no halving and ends a tree too.)

Preserves: the graph verifies; outputs and every node name present in both graphs keep their
values (``assert_preserves``).  Ranges of fused products are the interval bounds of their
weights (at least the tree's exact range); the named root keeps its range via the REQUANT.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from heatq.ir import ConcatAttrs, GraphBuilder, IntGraph, Node, Op, RequantAttrs, Rounding

from .base import Pass
from .split_common import sub_name, w_bits_of

_MAX_W = 1 << 62  # fused weights and biases stay int64


@dataclass
class _Form:
    """``value = (sum_k terms[k].w * arg_k + bias) / 2**h``; ``key``: the products' op and
    window (kernel, stride, padding) and ``w_frac``; ``proto``: one leaf product."""

    terms: list[tuple[int, np.ndarray]]  # (argument id, weights as Python ints)
    bias: np.ndarray
    h: int
    key: tuple
    proto: Node
    has_add: bool
    source: int  # the node every leaf's argument is, or is a binary unit (THRESHOLD / BIT) of


def _key(n: Node) -> tuple:
    a = n.attrs
    if n.op is Op.CONV2D:
        return (n.op, a.weight.shape[2], a.stride, a.padding, a.w_frac)
    return (n.op, a.w_frac)


def _obj(v: np.ndarray) -> np.ndarray:
    return np.array(v.tolist(), dtype=object).reshape(v.shape)


def _source(g: IntGraph, arg: int) -> int:
    """The activation a product's argument ``arg`` stands for: itself, or the node a binary
    unit (THRESHOLD / BIT, as split_acts makes them) is taken of."""
    node = g.nodes[arg]
    return node.args[0] if node.op in (Op.THRESHOLD, Op.BIT) else arg


def _leaf(g: IntGraph, n: Node) -> _Form:
    return _Form([(n.args[0], _obj(n.attrs.weight))], _obj(n.attrs.bias), 0, _key(n), n, False,
                 _source(g, n.args[0]))


def _add(n: Node, forms: list[_Form]) -> _Form | None:
    """The form of ADD ``n``: None unless its arguments are parts of one product (one key,
    one source: a residual sum of two paths is not fused) and the weights stay int64."""
    if len({f.key for f in forms}) != 1 or len({f.source for f in forms}) != 1:
        return None
    H = max(f.h for f in forms)
    terms, bias = [], 0
    for f, s in zip(forms, n.attrs.shifts):
        m = 1 << (s + H - f.h)
        terms += [(a, w * m) for a, w in f.terms]
        bias = bias + f.bias * m
    if any(abs(v) >= _MAX_W for v in bias) or any(abs(v) >= _MAX_W for _, w in terms
                                                   for v in w.ravel()):
        return None
    return _Form(terms, bias, H, forms[0].key, forms[0].proto, True, forms[0].source)


def _halving(g: IntGraph, n: Node, f: _Form) -> _Form | None:
    """The form of REQUANT ``n`` of form ``f`` when it divides exactly and never clips."""
    a, src = n.attrs, g.nodes[n.args[0]]
    if a.shift <= 0 or a.lo > src.lo >> a.shift or a.hi < src.hi >> a.shift:
        return None
    d = 1 << (f.h + a.shift)
    sums: dict[int, np.ndarray] = {}
    for arg, w in f.terms:
        sums[arg] = sums[arg] + w if arg in sums else w
    if any(v % d for s in sums.values() for v in s.ravel()) or any(v % d for v in f.bias):
        return None
    return replace(f, h=f.h + a.shift)


def _forms(g: IntGraph) -> dict[int, _Form]:
    forms: dict[int, _Form] = {}
    for n in g.nodes:
        if n.op in (Op.DENSE, Op.CONV2D):
            forms[n.id] = _leaf(g, n)
        elif n.op is Op.ADD and all(a in forms for a in n.args):
            f = _add(n, [forms[a] for a in n.args])
            if f is not None:
                forms[n.id] = f
        elif n.op is Op.REQUANT and n.args[0] in forms:
            f = _halving(g, n, forms[n.args[0]])
            if f is not None:
                forms[n.id] = f
    return forms


def _select(g: IntGraph, forms: dict[int, _Form]) -> tuple[set[int], set[int]]:
    """(tree nodes kept as forms, absorbed ones), pruned to a fixed point."""
    cons: dict[int, list[int]] = {n.id: [] for n in g.nodes}
    for n in g.nodes:
        for a in n.args:
            cons[a].append(n.id)
    outs, cand = set(g.outputs), set(forms)

    def inner(i: int) -> bool:
        return i in cand and g.nodes[i].op in (Op.ADD, Op.REQUANT)

    def absorbed(i: int) -> bool:
        return i in cand and i not in outs and bool(cons[i]) and all(map(inner, cons[i]))

    changed = True
    while changed:
        changed = False
        for i in sorted(cand):
            bad_arg = inner(i) and not all(map(absorbed, g.nodes[i].args))
            lone_root = inner(i) and not absorbed(i) and not forms[i].has_add
            if bad_arg or lone_root:
                cand.discard(i)
                changed = True
    return cand, {i for i in cand if absorbed(i)}


class FuseSplitProducts(Pass):
    """Split products + recombination -> one product over a CONCAT (see
    :mod:`heatq.passes.fuse`).  Preserves outputs and the values of every surviving name."""

    name = "fuse_split_products"

    def __init__(self, fold_requant: bool = False):
        self.fold_requant = fold_requant

    def __call__(self, graph: IntGraph) -> IntGraph:
        forms = _forms(graph)
        cand, gone = _select(graph, forms)
        roots = {i for i in cand if graph.nodes[i].op in (Op.ADD, Op.REQUANT) and i not in gone}
        cons: dict[int, list[int]] = {n.id: [] for n in graph.nodes}
        for n in graph.nodes:
            for a in n.args:
                cons[a].append(n.id)
        b, new, fused = GraphBuilder(), {}, {}
        for n in graph.nodes:
            if n.id in new or n.id in gone:
                continue
            if n.id not in roots:
                new[n.id] = b.add(n.op, n.attrs, [new[a] for a in n.args], n.name)
                continue
            c = cons[n.id]
            fold = (graph.nodes[c[0]] if self.fold_requant and len(c) == 1
                    and n.id not in graph.outputs and graph.nodes[c[0]].op is Op.REQUANT
                    and forms[n.id].h > 0 else None)
            new[n.id] = self._emit(b, n, forms[n.id], new, fold)
            if fold is not None:
                new[fold.id] = new[n.id]
            fused[n.name or n.label()] = len(forms[n.id].terms)
        meta = {k: v for k, v in graph.meta.items() if k not in ("regroup", "products")}
        if fused:
            meta["fused"] = {**graph.meta.get("fused", {}), **fused}
        return b.build([new[o] for o in graph.outputs], meta)

    @staticmethod
    def _emit(b: GraphBuilder, n: Node, f: _Form, new: dict[int, int], fold: Node | None) -> int:
        """CONCAT + one product (+ the halving REQUANT, or ``fold`` with it folded in)."""
        args = [new[a] for a, _ in f.terms]
        arg = args[0] if len(args) == 1 else b.add(Op.CONCAT, ConcatAttrs(len(args)), args,
                                                   sub_name(n.name, "cat"))
        w = np.concatenate([t for _, t in f.terms], axis=1)
        w64, b64 = w.astype(np.int64), f.bias.astype(np.int64)
        attrs = replace(f.proto.attrs, weight=w64, bias=b64, w_bits=w_bits_of(w64))
        name = n.name if f.h == 0 else sub_name(n.name, "fused")
        p = b.add(f.proto.op, attrs, [arg], name)
        if f.h == 0:
            return p
        if fold is not None:
            fa = fold.attrs
            return b.add(Op.REQUANT, replace(fa, shift=fa.shift + f.h), [p], fold.name)
        return b.add(Op.REQUANT, RequantAttrs(f.h, n.lo, n.hi, Rounding.FLOOR), [p], n.name)


def fuse_split_products(graph: IntGraph, fold_requant: bool = False) -> IntGraph:
    """``FuseSplitProducts(fold_requant)(graph)``: see :mod:`heatq.passes.fuse`."""
    return FuseSplitProducts(fold_requant)(graph)


__all__ = ["FuseSplitProducts", "fuse_split_products"]
