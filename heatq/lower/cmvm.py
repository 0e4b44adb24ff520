"""Constant matrix-vector product -> adder graph.

``lower_cmvm(W, in_ranges, const)`` computes ``y = W @ x + const`` with two-operand adders:

1. every weight becomes signed digits (:func:`digits`: the binary form when it has no more
   nonzero digits than the canonical signed digits / non-adjacent form, else CSD), so an
   output is a sum of terms ``(+/-) x_i << s``;
2. common-subexpression sharing (Hartley's method): the two-term pattern
   ``x_i << a (+/-) x_j << b`` (normalised to ``min(a, b) == 0``, counted over every output and
   every shift) that occurs most often becomes one adder and replaces its occurrences, again
   and again while some pattern occurs at least twice; among equally frequent patterns the one
   with the lowest adder level, then the narrowest, wins.  Depth guard (``depth_slack``,
   default 0): an occurrence is substituted in an output only if that output's minimal
   adder-tree depth stays within ``depth_slack`` levels of its depth before any sharing.
   Terms arriving at levels ``a_t`` can be summed in depth ``ceil(log2(sum_t 2**a_t))`` at
   best (and step 3 achieves it), so each output keeps ``S = sum_t 2**level(t)`` (initially
   its number of digit terms ``T``, all inputs being level 0) and may grow it up to
   ``2**(ceil(log2 T) + depth_slack)``; replacing terms of levels ``l1, l2`` by a shared
   node of level ``max(l1, l2) + 1`` adds ``2**(max + 1) - 2**l1 - 2**l2`` (nothing when
   ``l1 == l2``).  Every output's adder depth is thus at most ``ceil(log2 T) +
   depth_slack`` plus one adder for its constant (or to negate a negative root).
   ``depth_slack=None``: no guard (fewer adders, deeper trees);
3. each output's remaining terms are summed by a heap keyed by (arrival, magnitude bits): the
   earliest and narrowest operands are added first;
4. the output's constant is added last (it absorbs a negative root for free); without one,
   the root adder of mixed-sign operands is made positive (``a - b``) so that only an all-
   negative root costs an adder to negate.

Exactness is by construction (integer identities only) and checked by
:meth:`AdderGraph.evaluate` against ``W @ x``.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from heatq.ir import IntType

from heatq.ir.adders import Adder, AdderGraph, InputNode, Output, Term, coeff_range


def csd(w: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``w``: ``[(shift, sign)]`` with ``sum(sign << shift) == w``,
    no two adjacent shifts (non-adjacent form, the fewest nonzero digits)."""
    w = int(w)
    out = []
    s = 0
    while w:
        if w & 1:
            d = 2 - (w & 3)  # +1 when w = 1 mod 4, -1 when w = 3 mod 4
            out.append((s, d))
            w -= d
        w >>= 1
        s += 1
    return out


def digits(w: int) -> list[tuple[int, int]]:
    """The signed digits used for weight ``w``: its binary digits (all of ``w``'s sign) when
    they are no more than the CSD digits, else CSD.  Among minimal-digit forms this picks
    the one without subtractions (e.g. 3 = 2 + 1, not 4 - 1), which keeps partial sums of
    unsigned inputs unsigned and gives the sharing step more equal-sign patterns (measured:
    ~3% fewer adders and carry bits than plain CSD on 4-bit weights)."""
    w = int(w)
    d = csd(w)
    a = abs(w)
    if bin(a).count("1") <= len(d):
        g = 1 if w > 0 else -1
        return [(s, g) for s in range(a.bit_length()) if a >> s & 1]
    return d


def _tz(c: int) -> int:
    return (c & -c).bit_length() - 1 if c else 1 << 30


def _pair_key(t1: tuple[int, int, int], t2: tuple[int, int, int]) -> tuple:
    if (t1[0], t1[1]) > (t2[0], t2[1]):
        t1, t2 = t2, t1
    m = min(t1[1], t2[1])
    return (t1[0], t1[1] - m, t2[0], t2[1] - m, t1[2] * t2[2])


class _Builder:
    def __init__(self, inputs: list[InputNode], max_carry: int | None):
        self.inputs = inputs
        self.n_in = len(inputs)
        self.max_carry = max_carry
        self.coef: list[dict[int, int]] = [{i: 1} for i in range(self.n_in)]
        self.cst: list[int] = [0] * self.n_in
        self.adders: list[Adder] = []

    def width(self, n: int) -> int:
        return self.node_type(n).width

    def node_type(self, n: int) -> IntType:
        return self.inputs[n].type if n < self.n_in else self.adders[n - self.n_in].type

    def level(self, n: int) -> int:
        return 0 if n < self.n_in else self.adders[n - self.n_in].level

    def ready(self, n: int) -> int:
        return 0 if n < self.n_in else self.adders[n - self.n_in].ready

    def arrival(self, n: int) -> int:
        return self.ready(n) if self.max_carry else self.level(n)

    def range(self, n: int) -> tuple[int, int]:
        if n < self.n_in:
            return self.inputs[n].lo, self.inputs[n].hi
        a = self.adders[n - self.n_in]
        return a.lo, a.hi

    def add(self, a: Term, b: Term | None, const: int = 0) -> int:
        """Create one adder and return its node id."""
        assert not (b is not None and const), "an adder adds a term or a constant, not both"
        assert not (a.neg and b is not None and b.neg), "at most one operand is negated"
        coef: dict[int, int] = {}
        cst = const
        for t in (a, b):
            if t is None:
                continue
            f = -(1 << t.shift) if t.neg else 1 << t.shift
            for i, c in self.coef[t.node].items():
                coef[i] = coef.get(i, 0) + f * c
            cst += f * self.cst[t.node]
        coef = {i: c for i, c in coef.items() if c}
        lo, hi = coeff_range(coef, self.inputs, cst)
        typ = IntType.for_range(lo, hi)
        za = a.shift
        zb = b.shift if b is not None else _tz(const)
        low_pos = (not a.neg) if za <= zb else (b is None or not b.neg)
        if za == zb:
            passthrough = za
        else:
            passthrough = max(za, zb) if low_pos else min(za, zb)
        passthrough = min(passthrough, typ.width - 1)
        carry = max(1, typ.width - passthrough)
        K = self.max_carry
        segments = -(-carry // K) if K else 1
        ops = [a.node] + ([b.node] if b is not None else [])
        level = max(self.level(n) for n in ops) + 1
        ready = max(self.ready(n) for n in ops) + segments if K else level
        nid = self.n_in + len(self.adders)
        self.adders.append(Adder(nid, a, b, const, lo, hi, typ, level, ready, passthrough,
                                 carry, segments))
        self.coef.append(coef)
        self.cst.append(cst)
        return nid

    def combine(self, t1: tuple[int, int, int], t2: tuple[int, int, int],
                positive: bool = False) -> tuple[int, int, int]:
        """Add two signed shifted terms; returns the new term ``(node, shift, sign)``.
        ``positive``: when the signs differ, make the result's sign positive (an output's
        root: no extra adder to negate it)."""
        (n1, s1, g1), (n2, s2, g2) = t1, t2
        if (s1, n1) > (s2, n2):  # t1: the lower shift
            (n1, s1, g1), (n2, s2, g2) = (n2, s2, g2), (n1, s1, g1)
        m = s1
        if g1 == g2:
            nid = self.add(Term(n1, 0), Term(n2, s2 - m))
            return nid, m, g1
        if positive and g1 < 0:  # high minus low: the low bits no longer pass straight
            nid = self.add(Term(n2, s2 - m), Term(n1, 0, True))
            return nid, m, 1
        # signs differ: keep the low operand positive so its low bits pass straight through
        nid = self.add(Term(n1, 0), Term(n2, s2 - m, True))
        return nid, m, g1


_SH = 64  # shift field of a packed pattern key
_NODE = 1 << 21  # node field of a packed pattern key


def _pack(n1: int, a1: int, n2: int, a2: int, g: int) -> int:
    return ((((n1 * _SH + a1) * _NODE + n2) * _SH + a2) << 1) | (g > 0)


def _unpack(k: int) -> tuple[int, int, int, int, int]:
    g = 1 if k & 1 else -1
    k >>= 1
    k, a2 = divmod(k, _SH)
    k, n2 = divmod(k, _NODE)
    n1, a1 = divmod(k, _SH)
    return n1, a1, n2, a2, g


def _keys_vs(t: tuple[int, int, int], arr: np.ndarray) -> np.ndarray:
    """Packed pattern keys of term ``t`` paired with each term of ``arr`` ([T, 3])."""
    n, s, g = t
    n2, s2, g2 = arr[:, 0], arr[:, 1], arr[:, 2]
    first = (n2 < n) | ((n2 == n) & (s2 < s))  # the array term comes first
    m = np.minimum(s2, s)
    na = np.where(first, n2, n)
    sa = np.where(first, s2, s) - m
    nb = np.where(first, n, n2)
    sb = np.where(first, s, s2) - m
    return ((((na * _SH + sa) * _NODE + nb) * _SH + sb) << 1) | (g2 * g > 0).astype(np.int64)


def _row_keys(terms: np.ndarray) -> np.ndarray:
    """Packed pattern keys of every pair of a row's terms (``terms``: [T, 3] node, shift,
    sign, sorted by (node, shift))."""
    i, j = np.triu_indices(len(terms), 1)
    n1, s1, g1 = terms[i, 0], terms[i, 1], terms[i, 2]
    n2, s2, g2 = terms[j, 0], terms[j, 1], terms[j, 2]
    m = np.minimum(s1, s2)
    return (((((n1 * _SH + (s1 - m)) * _NODE + n2) * _SH + (s2 - m)) << 1)
            | (g1 * g2 > 0).astype(np.int64))


def _cse(b: _Builder, rows: list[dict[tuple[int, int], int]],
         depth_slack: int | None = 0) -> None:
    """Greedy two-term common-subexpression elimination over ``rows`` (modified in place):
    each row maps ``(node, shift) -> sign``.  ``depth_slack``: the depth guard of the module
    docstring (None: unguarded).

    Pattern counts (pairs of terms in a row, over all rows) are kept exactly as
    ``plus - minus`` (two Counters, updated in C); the heap holds (count, level, magnitude,
    key) entries that may be stale: a popped entry whose count changed is pushed back with
    the current count.  The taken pattern replaces its disjoint occurrences."""
    if any(s >= _SH for row in rows for (_n, s) in row):
        raise ValueError("shift too large for the CSE key")
    plus: Counter = Counter()
    minus: Counter = Counter()
    for row in rows:
        if len(row) > 1:
            t = np.array(sorted((n, s, g) for (n, s), g in row.items()), dtype=np.int64)
            plus.update(_row_keys(t).tolist())
    index: list[dict[int, dict[int, int]]] = []
    node_rows: dict[int, set[int]] = {}
    for r, row in enumerate(rows):
        idx: dict[int, dict[int, int]] = {}
        for (n, s), g in row.items():
            idx.setdefault(n, {})[s] = g
            node_rows.setdefault(n, set()).add(r)
        index.append(idx)
    guard = depth_slack is not None
    if guard:  # depth_slack >= 0, checked by lower_cmvm
        # rows hold inputs only (level 0): S_r = #terms; cap = 2**(ceil(log2 #terms) + slack)
        depth_sum = [len(row) for row in rows]
        depth_cap = [1 << (max(len(row) - 1, 0).bit_length() + depth_slack) for row in rows]

    def entry(k: int, c: int) -> tuple:
        n1, a1, n2, a2, _g = _unpack(k)
        return (-c, max(b.level(n1), b.level(n2)) + 1,
                max(b.width(n1) + a1, b.width(n2) + a2), k)

    # initial candidates, all over inputs (level 1): one sorted array, merged with a heap
    # that receives re-counted and new patterns
    ks = np.fromiter((k for k, c in plus.items() if c >= 2), dtype=np.int64)
    cs = np.array([plus[k] for k in ks.tolist()], dtype=np.int64)
    widths = np.array([b.width(i) for i in range(b.n_in)] + [0], dtype=np.int64)
    q = ks >> 1
    a2v = q % _SH
    q //= _SH
    n2v = q % _NODE
    q //= _NODE
    a1v = q % _SH
    n1v = q // _SH
    mags = np.maximum(widths[n1v] + a1v, widths[n2v] + a2v)
    order = np.lexsort((ks, mags, -cs))
    init = list(zip((-cs[order]).tolist(), [1] * len(order), mags[order].tolist(),
                    ks[order].tolist()))
    heap: list[tuple] = []
    pos = 0

    def occurrences(n1: int, a1: int, n2: int, a2: int, g: int) -> list[tuple[int, int, int]]:
        """Disjoint occurrences of a pattern: (row, m, sign of the first term)."""
        occ = []
        if guard:  # growth of a row's sum of 2**level per substituted occurrence
            l1, l2 = b.level(n1), b.level(n2)
            delta = (2 << max(l1, l2)) - (1 << l1) - (1 << l2)
        for r in sorted(node_rows.get(n1, set()) & node_rows.get(n2, set())):
            s1s, s2s = index[r][n1], index[r][n2]
            used: set[tuple[int, int]] = set()
            room = (depth_cap[r] - depth_sum[r]) // delta if guard and delta else -1
            for s in sorted(s1s):
                m = s - a1
                s2 = m + a2
                if m < 0 or s2 not in s2s or (n1 == n2 and s2 == s):
                    continue
                if (n1, s) in used or (n2, s2) in used:
                    continue
                g1 = s1s[s]
                if s2s[s2] != g1 * g:
                    continue
                if room == 0:  # this row's minimal depth would grow past the cap
                    break
                room -= 1
                used.add((n1, s))
                used.add((n2, s2))
                occ.append((r, m, g1))
        return occ

    while heap or pos < len(init):
        if pos < len(init) and (not heap or init[pos] < heap[0]):
            e = init[pos]
            pos += 1
        else:
            e = heapq.heappop(heap)
        k = e[3]
        c = plus[k] - minus[k]
        if c < 2:
            continue
        if c < -e[0] or (c > -e[0] and not guard):
            heapq.heappush(heap, (-c,) + e[1:])
            continue
        n1, a1, n2, a2, g = _unpack(k)
        occ = occurrences(n1, a1, n2, a2, g)
        if len(occ) < 2:
            # overlapping pairs only, or the rest would deepen their rows (rows' sums only
            # grow, so a blocked occurrence stays blocked): retire the pattern
            minus[k] += c
            continue
        if guard and len(occ) < -e[0]:
            # fewer usable occurrences than counted: queue again at the usable count (an
            # entry's count only falls, so this ends)
            heapq.heappush(heap, (-len(occ),) + e[1:])
            continue
        if g < 0 and a2 < a1:  # keep the low operand positive: n2 - n1, occurrences flip sign
            nid = b.add(Term(n2, a2), Term(n1, a1, True))
            flip = -1
        else:
            nid = b.add(Term(n1, a1), Term(n2, a2, g < 0))
            flip = 1
        added: list[int] = []
        for r, m, g1 in occ:
            row, idx = rows[r], index[r]
            t1 = (n1, m + a1, row[(n1, m + a1)])
            t2 = (n2, m + a2, row[(n2, m + a2)])
            del row[t1[:2]]
            del row[t2[:2]]
            arr = np.array([(n, s, gg) for (n, s), gg in row.items()], dtype=np.int64)
            arr = arr.reshape(-1, 3)
            minus.update(_keys_vs(t1, arr).tolist())
            minus.update(_keys_vs(t2, arr).tolist())
            minus[_pack(*_pair_key(t1, t2))] += 1
            tn = (nid, m, g1 * flip)
            kn = _keys_vs(tn, arr).tolist()
            plus.update(kn)
            added.extend(kn)
            for n, s in (t1[:2], t2[:2]):
                del idx[n][s]
                if not idx[n]:
                    del idx[n]
                    node_rows[n].discard(r)
            row[(nid, m)] = tn[2]
            if guard:
                depth_sum[r] += (1 << b.level(nid)) - (1 << b.level(n1)) - (1 << b.level(n2))
            idx.setdefault(nid, {})[m] = tn[2]
            node_rows.setdefault(nid, set()).add(r)
        for kk in set(added):
            cc = plus[kk] - minus[kk]
            if cc >= 2:
                heapq.heappush(heap, entry(kk, cc))


_CSE_CACHE: dict[tuple, tuple[list, list]] = {}  # CSE depends on W and ranges, not timing


def lower_cmvm(weight: np.ndarray, in_ranges: Sequence[tuple[int, int]],
               const: Iterable[int] | None = None, max_carry: int | None = None,
               cse: bool = True, depth_slack: int | None = 0) -> AdderGraph:
    """Lower ``y = weight @ x + const`` (``weight`` integer ``[out, in]``, ``x_i`` in
    ``in_ranges[i]``) to an :class:`AdderGraph`.  ``max_carry``: pipelined, no carry chain
    longer than that many bits between registers.  ``cse=False``: no sharing (plain CSD
    adder trees).  ``depth_slack``: sharing may deepen an output's adder tree by at most
    this many levels over its unshared minimum (None: no limit); see the module docstring."""
    w = np.asarray(weight)
    if w.ndim != 2:
        raise ValueError(f"weight must be 2-D [out, in], got {w.shape}")
    if w.size and not np.all(np.equal(np.mod(w, 1), 0)):
        raise ValueError("weight must hold integers")
    n_out, n_in = w.shape
    if len(in_ranges) != n_in:
        raise ValueError(f"{len(in_ranges)} input ranges for {n_in} inputs")
    if max_carry is not None and max_carry < 1:
        raise ValueError(f"max_carry must be >= 1, got {max_carry}")
    if depth_slack is not None and depth_slack < 0:
        raise ValueError(f"depth_slack must be >= 0 or None, got {depth_slack}")
    consts = [0] * n_out if const is None else [int(c) for c in const]
    if len(consts) != n_out:
        raise ValueError(f"{len(consts)} constants for {n_out} outputs")
    inputs = []
    for lo, hi in in_ranges:
        lo, hi = int(lo), int(hi)
        if lo > hi:
            raise ValueError(f"empty input range {lo}..{hi}")
        inputs.append(InputNode(lo, hi, IntType.for_range(lo, hi)))
    b = _Builder(inputs, max_carry)
    wl = [[int(v) for v in row] for row in w.tolist()]
    rows: list[dict[tuple[int, int], int]] = []
    for j in range(n_out):
        row: dict[tuple[int, int], int] = {}
        for i, wij in enumerate(wl[j]):
            if not wij:
                continue
            if inputs[i].lo == inputs[i].hi:  # a constant input folds into the constant
                consts[j] += wij * inputs[i].lo
                continue
            for s, g in digits(wij):
                row[(i, s)] = g
        rows.append(row)
    if cse:
        key = (w.shape, np.ascontiguousarray(w, dtype=np.int64).tobytes(),
               tuple((i.lo, i.hi) for i in inputs), depth_slack)
        hit = _CSE_CACHE.get(key)
        if hit is None:
            b0 = _Builder(inputs, None)
            _cse(b0, rows, depth_slack)
            hit = ([(ad.a, ad.b) for ad in b0.adders], [dict(r) for r in rows])
            if len(_CSE_CACHE) >= 32:
                _CSE_CACHE.pop(next(iter(_CSE_CACHE)))
            _CSE_CACHE[key] = hit
        for ta, tb in hit[0]:  # replay the shared adders (same node ids) with this timing
            b.add(ta, tb)
        rows = [dict(r) for r in hit[1]]
    outputs: list[Output] = []
    seq = 0
    for j, row in enumerate(rows):
        heap = []
        for (n, s), g in sorted(row.items()):
            heap.append((b.arrival(n), b.width(n) + s, seq, (n, s, g)))
            seq += 1
        heapq.heapify(heap)
        while len(heap) > 1:
            _, _, _, t1 = heapq.heappop(heap)
            _, _, _, t2 = heapq.heappop(heap)
            n, s, g = b.combine(t1, t2, positive=not heap and not consts[j])
            heapq.heappush(heap, (b.arrival(n), b.width(n) + s, seq, (n, s, g)))
            seq += 1
        c = consts[j]
        if not heap:
            outputs.append(Output(None, 0, c, c, c, IntType.for_range(c, c)))
            continue
        n, s, g = heap[0][3]
        if c or g < 0:
            k = min(s, _tz(c))  # common trailing zeros stay outside the adder
            n = b.add(Term(n, s - k, g < 0), None, c >> k)
            s = k
        lo, hi = b.range(n)
        lo, hi = lo << s, hi << s
        outputs.append(Output(n, s, 0, lo, hi, IntType.for_range(lo, hi)))
    meta = {"n_out": n_out, "n_in": n_in, "cse": cse, "depth_slack": depth_slack,
            "digits": sum(len(digits(v)) for row in wl for v in row)}
    return AdderGraph(tuple(inputs), tuple(b.adders), tuple(outputs), max_carry, meta)
