"""What the splitting passes share: the target-width argument, layer selection, the graph
copier that replaces one product by its parts and an ADD, and ``meta["regroup"]``.

A *part* is a product (the original op, DENSE or CONV2D, with its stride and padding) of one
argument with its own integer weights, bias and ``w_frac``; the parts of a split are summed by
one ``ADD(shifts)`` (:mod:`heatq.ir.ops.add`), which carries the original product's name.
``meta["regroup"]`` maps every named node of the graph before the *first* split (the original
layers) to ``[[node_name, shift], ...]``: the original value equals the sum of those nodes'
values shifted left by ``shift``.  A later split composes with it (an entry naming a node that
is split again is replaced by that node's parts, shifts added).  ``meta["products"]`` maps every
original DENSE / CONV2D name to the DENSE / CONV2D nodes that now compute it (fan-in growth =
their number), and ``meta["splits"]`` logs each pass (kind, target, products per split layer).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np

from heatq.ir import AddAttrs, GraphBuilder, IntGraph, IRError, Node, Op

PRODUCTS = (Op.DENSE, Op.CONV2D)
# the largest |weight| a split accepts: 2 * w + 1 and the plane sums stay inside int64
MAX_ABS_WEIGHT = (1 << 60) - 1


def target_bits(to, where: str) -> int:
    """The weight width a split aims at: ``"binary"`` -> 1 ({-1, +1}), ``"ternary"`` -> 2
    ({-1, 0, 1}), an int ``B >= 1`` -> B (``|w| <= 2**(B-1) - 1``).  IRError otherwise."""
    if isinstance(to, str):
        named = {"binary": 1, "ternary": 2}
        if to not in named:
            raise IRError(f"{where}: unknown target {to!r} (binary, ternary or a number of bits)")
        return named[to]
    if isinstance(to, bool) or not isinstance(to, (int, np.integer)) or to < 1:
        raise IRError(f"{where}: the target width must be binary, ternary or bits >= 1, "
                      f"got {to!r}")
    return int(to)


def w_bits_of(w: np.ndarray) -> int:
    """The narrowest valid ``w_bits`` for weights ``w``: 1 when every weight is -1 or +1,
    else the signed symmetric width holding ``max |w|`` (at least 2)."""
    m = int(np.abs(w).max()) if w.size else 0
    if w.size and m == 1 and not np.any(w == 0):
        return 1
    return max(2, m.bit_length() + 1)


def fits_bits(w: np.ndarray, bits: int) -> bool:
    """Whether every weight is valid for ``bits``-bit weights (1 bit: only -1 and +1)."""
    return bool(w_bits_of(w) <= bits)


def select_products(graph: IntGraph, layers: Iterable[str] | None, where: str) -> list[Node]:
    """The DENSE / CONV2D nodes named in ``layers`` (every one when None).  IRError for an
    unknown name, a named node that is not a product, or (always) a CMVM: split before
    lowering."""
    for n in graph.nodes:
        if n.op is Op.CMVM:
            raise IRError(f"{where}: cmvm {n.label()} cannot be split: its weights are an adder "
                          f"graph (split before lower_products)")
    if layers is None:
        return [n for n in graph.nodes if n.op in PRODUCTS]
    names = {n.name: n for n in graph.named()}
    out = []
    for name in layers:
        if name not in names:
            raise IRError(f"{where}: no layer named {name!r}")
        n = names[name]
        if n.op not in PRODUCTS:
            raise IRError(f"{where}: {n.op.value} {n.label()} is not a dense or conv2d layer")
        out.append(n)
    return sorted(set(out), key=lambda n: n.id)


@dataclass(frozen=True)
class Part:
    """One product of a split: ``weight`` (int64, the original's shape), ``bias`` [C_out],
    ``w_frac``, the id of its argument in the new graph, its left shift in the ADD and its
    name suffix (the part's name is ``<original>.<suffix>``); ``w_bits`` (None: the narrowest
    valid for the weights)."""

    weight: np.ndarray
    bias: np.ndarray
    w_frac: int
    arg: int
    shift: int
    suffix: str
    w_bits: int | None = None  # None: the narrowest valid width of ``weight``


def sub_name(name: str, suffix: str) -> str:
    """``name.suffix``, or "" for an unnamed original (its parts stay unnamed)."""
    return f"{name}.{suffix}" if name else ""


def emit_parts(b: GraphBuilder, node: Node, parts: list[Part], add_name: str | None = None,
               ) -> tuple[int, list[list]]:
    """Append the parts of product ``node`` (named ``<node>.<suffix>``) and the ADD summing
    them (named ``add_name``, default ``node.name``); one unshifted part is emitted under that
    name directly.  Returns the id of the node carrying the name and the regroup entries
    ``[[part_name, shift], ...]``, one per part (names are "" for an unnamed node)."""
    name = node.name if add_name is None else add_name
    if len(parts) == 1 and parts[0].shift == 0:
        return _product(b, node, parts[0], name), [[name, 0]]
    ids = [_product(b, node, p, sub_name(node.name, p.suffix)) for p in parts]
    out = b.add(Op.ADD, AddAttrs(tuple(p.shift for p in parts)), ids, name)
    return out, [[sub_name(node.name, p.suffix), p.shift] for p in parts]


def _product(b: GraphBuilder, node: Node, p: Part, name: str) -> int:
    bits = w_bits_of(p.weight) if p.w_bits is None else p.w_bits
    attrs = replace(node.attrs, weight=p.weight, bias=p.bias, w_bits=bits, w_frac=p.w_frac)
    return b.add(node.op, attrs, [p.arg], name)


def copy_node(b: GraphBuilder, n: Node, new: dict[int, int]) -> int:
    """``n`` appended unchanged, its arguments mapped through ``new``."""
    return b.add(n.op, n.attrs, [new[a] for a in n.args], n.name)


def merge_regroup(graph: IntGraph, local: dict[str, list[list]]) -> dict[str, list[list]]:
    """``graph``'s regroup map (every named node -> itself when it has none) composed with
    ``local``: ``{name in graph: [[new_name, shift], ...]}`` of this split."""
    base = graph.meta.get("regroup")
    if base is None:
        base = {n.name: [[n.name, 0]] for n in graph.named()}
    out = {}
    for orig, entries in base.items():
        out[orig] = [[m, int(s) + int(t)] for name, s in entries
                     for m, t in local.get(name, [[name, 0]])]
    return out


def merge_products(graph: IntGraph, made: dict[str, list[str]]) -> dict[str, list[str]]:
    """``graph``'s ``meta["products"]`` (every named DENSE / CONV2D -> itself when it has
    none) with each product split here replaced by the products ``made`` of it."""
    base = graph.meta.get("products")
    if base is None:
        base = {n.name: [n.name] for n in graph.named() if n.op in PRODUCTS}
    return {orig: [m for name in names for m in made.get(name, [name])]
            for orig, names in base.items()}


def build_split(b: GraphBuilder, graph: IntGraph, new: dict[int, int],
                local: dict[str, list[list]], made: dict[str, list[str]],
                log: dict) -> IntGraph:
    """The finished graph: ``graph``'s outputs mapped through ``new``; its meta with the
    composed ``regroup`` map, the composed ``products`` map (original product name -> the
    DENSE / CONV2D names now computing it; from ``made``: split product -> its part names)
    and ``log`` appended to ``splits``.  IRError from ``verify`` names the node."""
    meta = dict(graph.meta)
    meta["regroup"] = merge_regroup(graph, local)
    meta["products"] = merge_products(graph, made)
    meta["splits"] = list(graph.meta.get("splits", [])) + [log]
    return b.build([new[o] for o in graph.outputs], meta)


def check_weight_magnitude(n: Node, where: str) -> None:
    """IRError when ``n``'s weights or bias are too large for the plane arithmetic (int64)."""
    for what in ("weight", "bias"):
        v = getattr(n.attrs, what)
        if v.size and int(np.abs(v).max()) > MAX_ABS_WEIGHT:
            raise IRError(f"{where}: {n.op.value} {n.label()} has {what} values beyond 2**60, "
                          f"too wide to split")


__all__ = ["PRODUCTS", "Part", "target_bits", "w_bits_of", "fits_bits", "select_products",
           "sub_name", "emit_parts", "copy_node", "merge_regroup", "merge_products", "build_split",
           "check_weight_magnitude"]
