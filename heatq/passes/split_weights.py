"""``split_weights``: every selected DENSE / CONV2D becomes several products of the same
argument with narrow weights, summed by one ``ADD(shifts)`` that carries the original name.

Notation: ``W`` the integer weight matrix, ``B`` the bias, ``x`` the argument, ``y = W x + B``
the product (integers at binary point ``f = f_x + w_frac``), ``J`` the all-ones matrix of W's
shape.  A split is a list of planes ``D_k`` with left shifts ``s_k`` and a scale ``S`` (1 or 2)
such that ``sum_k D_k << s_k == S * W`` element by element (checked when the split is built).
The parts compute ``D_k x + B_k`` (the whole ``S * B`` goes into one part, see below); the ADD
gives ``sum_k (D_k x + B_k) << s_k = S * (W x + B)`` exactly, because products are linear in
``x`` and integer arithmetic is exact.

Kinds (``to``: ``"binary"`` {-1,+1}, ``"ternary"`` {-1,0,1}, or an int ``T`` >= 2 bits, i.e.
``|w| <= 2**(T-1) - 1``; with ``c = T - 1``):

- ``bitplane``, T >= 2 (``ternary`` is T = 2): radix ``2**c`` two's complement,
  ``W = sum_{k<K-1} 2**(kc) ((W >> kc) & (2**c - 1)) + 2**((K-1)c) (W >> (K-1)c)`` with the
  fewest K whose top digit fits; T = 2 gives the bit planes ``{0,1}`` and the negative MSB plane
  ``{-1,0}`` (<= b planes for b-bit weights).  Scale 1.
- ``bitplane``, binary (the offset form).  For odd ``n`` with ``|n| <= 2**m - 1``,
  ``u = (n + 2**m - 1) / 2`` is an integer in ``0..2**m - 1`` and with ``t_j = 2 u_j - 1`` (``u_j``
  its bits) ``sum_{j<m} 2**j t_j = 2u - (2**m - 1) = n``: every odd matrix is a sum of m
  {-1,+1} planes.  If every weight is odd, ``W`` itself is written so (scale 1, m <= b planes).
  Otherwise ``2W + J`` is odd (``|2w + 1| <= 2**b - 1``, so m <= b) and
  ``2W = sum_j 2**j T_j + (-J)``: m planes plus the all-ones plane ``-J`` (its part computes
  ``-sum(x)`` over each output's inputs), scale 2.  Parity forces this: a sum of {-1,+1}
  planes with shifts >= 0 has the parity of its number of shift-0 planes in every element, so a
  weight matrix with both parities has no scale-1 binary split.
- ``csd``: the canonical signed digits (non-adjacent form) ``W = sum_j 2**j d_j``,
  ``d_j in {-1,0,1}``, grouped c digits per plane (``|D| <= 2**c - 1``); T = 2: one ternary plane
  per digit position (<= b planes, fewer nonzeros than bit planes).  Binary: a ternary plane
  with no zero is kept; one with zeros becomes two {-1,+1} planes, ``2D = A + C`` with
  ``A = [D >= 0] * 2 - 1``, ``C = [D > 0] * 2 - 1``; at scale 1 they sit one shift lower (when
  every such plane has shift >= 1), else scale 2 (kept planes one shift higher).
- ``balanced``: k copies at shift 0 with ``floor((W + i) / k)``, ``i < k`` (Hermite:
  ``sum_{i<k} floor((n + i) / k) = n``), each ``floor(W/k)`` or ``ceil(W/k)``;
  ``k = ceil(max|W| / (2**c - 1))`` (<= the ``ceil((2**(b-1)-1) / (2**c-1))`` of b-bit weights)
  unless given.  Binary: k {-1,+1} copies sum to any ``n`` with ``|n| <= k``, ``n = k mod 2``
  (``(n + k) / 2`` copies +1): scale 1 with ``k = max|W|`` (made odd / even) when every weight
  has the same parity, else scale 2 with ``k = 2 max|W|``.

Bias: ``S * B`` goes into the part with the smallest shift s when ``2**s`` divides it (always
for the binary offset form and balanced, which have shift-0 parts); otherwise into an extra
all-zero part at shift 0 (``bias``; ternary / T bits) or, for binary, the pair ``+J x + S*B``
(``bias_p``) and ``-J x`` (``bias_n``).  All-zero planes are dropped; all-zero weights keep
one zero plane (T bits) or the pair ``+J``, ``-J`` (binary, ``zero_p`` / ``zero_n``).

Scale 2: the parts have ``w_frac + 1`` (the same real value ``2y * 2**-(f+1) = y * 2**-f``), the
ADD (``<name>.x2``) holds ``2y`` at frac ``f + 1``, and ``REQUANT(shift=1, FLOOR, SATURATE,
lo = add.lo >> 1, hi = add.hi >> 1)`` named ``<name>`` gives ``y`` exactly: its argument is
always even, so the floor halving drops nothing, and its bounds contain the halved range, so
nothing saturates.  Frac ``f + 1 - 1 = f``: type, binary point and integer value of the named
node equal the original's (its range may differ; ranges stay sound).

Widths: each part declares the narrowest valid ``w_bits`` (1 for {-1,+1}, 2 for {0,1},
{-1,0} and {-1,0,1}, T for radix digits); the parts' accumulators, the ADD (signed when its
range reaches below 0) and the halving REQUANT take their types from the IR rules.

Fan-in growth (products per original): bitplane T=2 and csd T=2 <= b; bitplane binary
m (all odd) or m + 1 <= b + 1; csd binary <= 2 per digit plane; balanced k.
"""

from __future__ import annotations

import numpy as np

from heatq.ir import GraphBuilder, IntGraph, IRError, Node, Op, Overflow, RequantAttrs, Rounding

from .base import Pass
from .split_common import (
    Part, build_split, check_weight_magnitude, copy_node, emit_parts, fits_bits, select_products,
    sub_name, target_bits,
)

KINDS = ("bitplane", "csd", "balanced")
MAX_COPIES = 4096  # balanced copies per product (one node each)
Plane = tuple[int, np.ndarray, str]  # (shift, weights, name suffix)


def _bitlen(v: int) -> int:
    return int(v).bit_length()


def twos_planes(w: np.ndarray, c: int) -> list[Plane]:
    """Radix ``2**c`` two's-complement digits of ``w`` (the top one signed), fewest planes."""
    bound, k = (1 << c) - 1, 1
    while int(np.abs(w >> ((k - 1) * c)).max()) > bound:
        k += 1
    planes = [(j * c, (w >> (j * c)) & bound, f"p{j * c}") for j in range(k - 1)]
    return planes + [((k - 1) * c, w >> ((k - 1) * c), f"p{(k - 1) * c}")]


def naf_digits(w: np.ndarray) -> list[np.ndarray]:
    """Non-adjacent-form digits ``d_j`` in {-1,0,1}, ``w = sum_j 2**j d_j`` (index j)."""
    n, out = w.astype(np.int64), []
    while np.any(n != 0):
        d = np.where(n & 1, 2 - (n & 3), 0)
        out.append(d)
        n = (n - d) >> 1
    return out


def csd_planes(w: np.ndarray, c: int) -> list[Plane]:
    """CSD digits grouped ``c`` positions per plane: ``D_k = sum_{i<c} 2**i d_{kc+i}``."""
    d = naf_digits(w)
    return [(k, sum(d[k + i] << i for i in range(min(c, len(d) - k))), f"p{k}")
            for k in range(0, len(d), c)]


def odd_planes(n: np.ndarray, shift0: int = 0) -> list[Plane]:
    """{-1,+1} planes with ``sum_j 2**j t_j == n`` for an all-odd ``n`` (module docstring)."""
    m = max(1, _bitlen(int(np.abs(n).max())))
    u = (n + ((1 << m) - 1)) >> 1
    return [(j + shift0, 2 * ((u >> j) & 1) - 1, f"p{j + shift0}") for j in range(m)]


def offset_planes(w: np.ndarray) -> tuple[list[Plane], int]:
    """The binary offset form: ``(planes, scale)``."""
    if np.all(w & 1):
        return odd_planes(w), 1
    return odd_planes(2 * w + 1) + [(0, -np.ones_like(w), "ones")], 2


def csd_binary(w: np.ndarray) -> tuple[list[Plane], int]:
    """CSD ternary planes made {-1,+1}: ``(planes, scale)`` (module docstring)."""
    planes = [(j, d) for j, d in enumerate(naf_digits(w)) if np.any(d)]
    zeros = [j for j, d in planes if np.any(d == 0)]
    scale = 1 if all(j >= 1 for j in zeros) else 2
    out: list[Plane] = []
    for j, d in planes:
        if np.any(d == 0):
            s = j - 1 if scale == 1 else j
            out += [(s, np.where(d >= 0, 1, -1), f"p{j}a"), (s, np.where(d > 0, 1, -1), f"p{j}b")]
        else:
            out.append((j + scale - 1, d, f"p{j}"))
    return out, scale


def _check_copies(k: int, where: str) -> None:
    if k > MAX_COPIES:
        raise IRError(f"{where}: balanced needs {k} copies, more than {MAX_COPIES}; use "
                      f"bitplane or csd")


def balanced_planes(w: np.ndarray, bits: int, k: int | None, where: str
                    ) -> tuple[list[Plane], int]:
    """k copies at shift 0: ``floor((w + i) / k)`` (T >= 2) or {-1,+1} copies (binary)."""
    m = max(1, int(np.abs(w).max()))
    if bits >= 2:
        bound = (1 << (bits - 1)) - 1
        k = k or -(-m // bound)
        if -(-m // k) > bound:
            raise IRError(f"{where}: balanced with k={k} leaves weights up to {-(-m // k)}, "
                          f"more than {bits} bits hold")
        _check_copies(k, where)
        return [(0, (w + i) // k, f"c{i}") for i in range(k)], 1
    uniform = bool(np.all(w & 1)) or not np.any(w & 1)
    parity = int(w.flat[0] & 1)
    if k is None:
        k = m + ((m - parity) & 1) if uniform else 2 * m
    if uniform and k >= m and (k - parity) % 2 == 0:
        scale = 1
    elif k % 2 == 0 and k >= 2 * m:
        scale = 2
    else:
        raise IRError(f"{where}: balanced with k={k} cannot write these weights (max |w| = {m}) "
                      f"as sums of k {{-1,+1}} copies")
    plus = (scale * w + k) // 2  # copies that are +1, 0..k
    _check_copies(k, where)
    return [(0, np.where(i < plus, 1, -1), f"c{i}") for i in range(k)], scale


def _zero_planes(w: np.ndarray, bits: int) -> list[Plane]:
    """All-zero weights: one zero plane (T >= 2 bits), or ``+J`` and ``-J`` (binary, whose
    planes cannot hold 0)."""
    if bits >= 2:
        return [(0, np.zeros_like(w), "p0")]
    return [(0, np.ones_like(w), "zero_p"), (0, -np.ones_like(w), "zero_n")]


def plan(w: np.ndarray, kind: str, bits: int, k: int | None, where: str
         ) -> tuple[list[Plane], int]:
    """``(planes, scale)`` with ``sum D << s == scale * w``, every plane valid for ``bits``."""
    if kind == "balanced":
        planes, scale = balanced_planes(w, bits, k, where)
    elif bits == 1:
        planes, scale = offset_planes(w) if kind == "bitplane" else csd_binary(w)
    else:
        planes = twos_planes(w, bits - 1) if kind == "bitplane" else csd_planes(w, bits - 1)
        scale = 1
    planes = [p for p in planes if np.any(p[1])] or _zero_planes(w, bits)
    total = sum((d.astype(object) * (1 << s) for s, d, _ in planes), np.zeros(w.shape, object))
    if not np.array_equal(total, w.astype(object) * scale) or not all(
            fits_bits(d, bits) for _, d, _ in planes):
        raise IRError(f"{where}: internal error: the {kind} planes do not sum to the weights")
    return planes, scale


def with_bias(planes: list[Plane], bias: np.ndarray, bits: int, shape) -> list[tuple]:
    """``(shift, weight, bias, suffix)`` parts: the bias in one part (module docstring)."""
    n_out = shape[0]
    zero = np.zeros(n_out, dtype=np.int64)
    parts = [(s, d, zero, suf) for s, d, suf in planes]
    if not np.any(bias):
        return parts
    s_min = min((s for s, _, _ in planes), default=0)
    if planes and not np.any(bias % (1 << s_min)):
        i = next(i for i, p in enumerate(planes) if p[0] == s_min)
        parts[i] = (s_min, parts[i][1], bias >> s_min, parts[i][3])
        return parts
    if bits >= 2:
        return parts + [(0, np.zeros(shape, np.int64), bias, "bias")]
    return parts + [(0, np.ones(shape, np.int64), bias, "bias_p"),
                    (0, -np.ones(shape, np.int64), zero, "bias_n")]


class SplitWeights(Pass):
    """Weight splitting (see :mod:`heatq.passes.split_weights` for the identities).

    Preserves: the graph verifies; every graph output and every named node keeps its integer
    values (the ADD, or for scale-2 splits an exact halving REQUANT, carries the original
    product's name, type and binary point); ``meta["regroup"]`` maps every original named layer
    to the parts whose shifted sum equals it.  ``layers``: product names (None: every DENSE /
    CONV2D whose weights are not yet valid for ``to``); ``k``: the copies of ``balanced``."""

    name = "split_weights"

    def __init__(self, kind: str = "bitplane", to="binary", layers=None, k: int | None = None):
        if kind not in KINDS:
            raise IRError(f"split_weights: unknown kind {kind!r} (one of {', '.join(KINDS)})")
        if k is not None and (kind != "balanced" or isinstance(k, bool) or int(k) < 1):
            raise IRError(f"split_weights: k={k!r} needs kind balanced and k >= 1")
        self.kind, self.bits, self.layers, self.k = kind, target_bits(to, self.name), layers, k
        self.to = to if isinstance(to, str) else int(to)
        self.k = None if k is None else int(k)

    def __call__(self, graph: IntGraph) -> IntGraph:
        chosen = {n.id for n in select_products(graph, self.layers, self.name)
                  if not fits_bits(n.attrs.weight, self.bits)}
        b, new, local, made, growth = GraphBuilder(), {}, {}, {}, {}
        for n in graph.nodes:
            if n.id not in chosen:
                new[n.id] = copy_node(b, n, new)
                continue
            new[n.id], entries, names = self._split(b, n, new)
            growth[n.name or n.label()] = len(names)
            if n.name:
                local[n.name], made[n.name] = entries, names
        log = {"pass": self.name, "kind": self.kind, "to": self.to, "k": self.k, "layers": growth}
        return build_split(b, graph, new, local, made, log)

    def _split(self, b: GraphBuilder, n: Node, new: dict[int, int]):
        """Append the parts of product ``n``: (id carrying its name, regroup entries, the
        parts' names)."""
        where = f"{self.name}: {n.op.value} {n.label()}"
        check_weight_magnitude(n, self.name)
        w, a = n.attrs.weight, n.attrs
        planes, scale = plan(w, self.kind, self.bits, self.k, where)
        parts = [Part(d.astype(np.int64), bias.astype(np.int64), a.w_frac + scale - 1,
                      new[n.args[0]], s, suf)
                 for s, d, bias, suf in with_bias(planes, a.bias * scale, self.bits, w.shape)]
        if scale == 1:
            out, entries = emit_parts(b, n, parts)
            return out, entries, [name for name, _ in entries]
        # scale 2: the halving REQUANT carries the name; the parts sum to twice the value
        add, entries = emit_parts(b, n, parts, sub_name(n.name, "x2"))
        lo, hi = b.nodes[add].lo, b.nodes[add].hi
        half = b.add(Op.REQUANT, RequantAttrs(1, lo >> 1, hi >> 1, Rounding.FLOOR,
                                              Overflow.SATURATE), [add], n.name)
        return half, [[n.name, 0]], [name for name, _ in entries]


def split_weights(graph: IntGraph, kind: str = "bitplane", to="binary", layers=None,
                  k: int | None = None) -> IntGraph:
    """``SplitWeights(kind, to, layers, k)(graph)``: see :class:`SplitWeights`."""
    return SplitWeights(kind, to, layers, k)(graph)


__all__ = ["SplitWeights", "split_weights", "KINDS", "plan", "naf_digits"]
