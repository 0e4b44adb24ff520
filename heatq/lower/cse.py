"""Common-subexpression sharing for :func:`heatq.lower.cmvm.lower_cmvm` (step 2 of its module
docstring: Hartley's two-term patterns, greedy, with the depth guard).

A *row* is one output's sum of signed digit terms, ``{(node, shift): sign}``.  A *pattern* is
two terms ``n1 << a1 (+/-) n2 << a2`` normalised to ``min(a1, a2) == 0`` with ``(n1, a1) <
(n2, a2)``; it is packed into one int64 key (:func:`_pack`) so that pattern counts can be
kept in :class:`collections.Counter` objects and computed for whole rows with numpy.

**The cap.** The greedy run counts every pair of terms of every row: ``P = sum_r T_r (T_r -
1) / 2`` keys for rows of ``T_r`` terms, and it takes roughly ``P`` counter updates plus a
numpy pass over a row per substitution.  A fused binarized layer has rows of thousands of
1-bit terms (the demo CNN's conv_block_4: 64 rows x 4320 terms, ``P`` = 597M: hours, and
tens of GB of counters).  So when ``P > max_pairs`` (:data:`CSE_MAX_PAIRS` = 2**22, 4.2M;
the largest unsplit layer measured, the trained seed CNN's conv_block_4 64 x 288 of 4-bit
weights, has 3.2M), the sharing runs over *column windows* instead: consecutive input
columns, each window as wide as keeps its own ``P`` within ``window_pairs``
(:data:`CSE_WINDOW_PAIRS` = 2**17), one greedy run per window over the rows' terms in it,
the windows in column order.  Each run sees only its window's inputs (patterns never span
two windows), and the depth guard is the whole row's (its ``S`` and cap carry over from
window to window), so the depth bound of :mod:`heatq.lower.cmvm` holds unchanged.  The
rows' remaining terms (of every window) are summed by step 3 as usual.  Cost: a pattern
whose two terms lie in different windows is not shared (more adders than an unbounded run,
which cannot be afforded anyway); measured on conv_block_4 (64 x 4320, +-1): see
docs/verilog.md.  Under the cap the run is exactly the unbounded one.
"""

from __future__ import annotations

import heapq
from collections import Counter

import numpy as np

from heatq.ir.adders import Term

from .builder import AdderBuilder, SignedTerm

Row = dict[tuple[int, int], int]  # (node, shift) -> sign

_SH = 64  # shift field of a packed pattern key
_NODE = 1 << 21  # node field of a packed pattern key


def _pack(n1, a1, n2, a2, same_sign):
    """Packed key of the pattern ``n1 << a1 (+/-) n2 << a2`` (``same_sign`` 1: ``+``), a
    non-negative int64: ``((((n1 * 64 + a1) * 2**21 + n2) * 64 + a2) << 1) | same_sign``
    (shifts < 64, node ids < 2**21).  Works on Python ints and on int64 arrays alike."""
    return ((((n1 * _SH + a1) * _NODE + n2) * _SH + a2) << 1) | same_sign


def _unpack(k):
    """Inverse of :func:`_pack`: ``(n1, a1, n2, a2, g)`` with ``g`` +1 (same signs) or -1;
    works on Python ints and on int64 arrays alike."""
    g = (k & 1) * 2 - 1
    k = k >> 1
    k, a2 = divmod(k, _SH)
    k, n2 = divmod(k, _NODE)
    n1, a1 = divmod(k, _SH)
    return n1, a1, n2, a2, g


def _keys_vs(t, arr: np.ndarray) -> np.ndarray:
    """Packed pattern keys of term ``t`` (a :data:`SignedTerm`, or a [T, 3] array: one term
    per row of ``arr``) paired with each term of ``arr`` ([T, 3])."""
    n, s, g = t if isinstance(t, tuple) else (t[:, 0], t[:, 1], t[:, 2])
    n2, s2, g2 = arr[:, 0], arr[:, 1], arr[:, 2]
    first = (n2 < n) | ((n2 == n) & (s2 < s))  # the array term comes first
    m = np.minimum(s2, s)
    return _pack(np.where(first, n2, n), np.where(first, s2, s) - m,
                 np.where(first, n, n2), np.where(first, s, s2) - m,
                 (g2 * g > 0).astype(np.int64))


def _row_keys(terms: np.ndarray) -> np.ndarray:
    """Packed pattern keys of every pair of a row's terms (``terms``: [T, 3] node, shift,
    sign, sorted by (node, shift))."""
    i, j = np.triu_indices(len(terms), 1)
    n1, s1, g1 = terms[i, 0], terms[i, 1], terms[i, 2]
    n2, s2, g2 = terms[j, 0], terms[j, 1], terms[j, 2]
    m = np.minimum(s1, s2)
    return _pack(n1, s1 - m, n2, s2 - m, (g1 * g2 > 0).astype(np.int64))


def _as_array(terms) -> np.ndarray:
    """``[(node, shift, sign)]`` as an int64 [T, 3] array (also when empty)."""
    return np.array(terms, dtype=np.int64).reshape(-1, 3)


CSE_MAX_PAIRS = 1 << 22  # term pairs over all rows above which the sharing is windowed
CSE_WINDOW_PAIRS = 1 << 17  # term pairs over all rows of one window (at least one column)


def row_pairs(rows: list[Row]) -> int:
    """``sum_r T_r (T_r - 1) / 2``: the term pairs the greedy run counts over ``rows``."""
    return sum(len(r) * (len(r) - 1) // 2 for r in rows)


def share_subexpressions(b: AdderBuilder, rows: list[Row], depth_slack: int | None = 0,
                         max_pairs: int | None = CSE_MAX_PAIRS,
                         window_pairs: int = CSE_WINDOW_PAIRS) -> int:
    """Greedy two-term common-subexpression elimination over ``rows`` (modified in place; the
    terms are over ``b``'s inputs only), creating the shared adders in ``b``.
    ``depth_slack``: the depth guard of :mod:`heatq.lower.cmvm` (None: unguarded; else >= 0).
    ``max_pairs`` (None: no cap) / ``window_pairs``: the cap of the module docstring.
    Returns the number of windows (1: one run over the whole rows)."""
    if any(s >= _SH for row in rows for (_n, s) in row):
        raise ValueError("shift too large for the CSE key")
    if max_pairs is None or row_pairs(rows) <= max_pairs:
        _Sharing(b, rows, depth_slack).run()
        return 1
    windows = column_windows(rows, b.n_in, window_pairs)
    depth = _row_depths(rows, depth_slack) if depth_slack is not None else None
    for lo, hi in windows:
        sub = [{k: g for k, g in row.items() if lo <= k[0] < hi} for row in rows]
        _Sharing(b, sub, depth_slack, depth).run()
        for row, left in zip(rows, sub):
            for k in [k for k in row if lo <= k[0] < hi]:
                del row[k]
            row.update(left)
    return len(windows)


def column_windows(rows: list[Row], n_in: int, window_pairs: int) -> list[tuple[int, int]]:
    """Consecutive input-column ranges ``[lo, hi)`` covering ``0 .. n_in``, each the widest
    (at least one column) whose rows' term pairs total at most ``window_pairs``."""
    cnt = np.zeros((len(rows), n_in + 1), dtype=np.int64)
    for r, row in enumerate(rows):
        for (n, _s) in row:
            cnt[r, n + 1] += 1
    cum = np.cumsum(cnt, axis=1)

    def pairs(lo: int, hi: int) -> int:
        t = cum[:, hi] - cum[:, lo]
        return int((t * (t - 1) // 2).sum())

    out, lo = [], 0
    while lo < n_in:
        a, z = lo + 1, n_in  # the widest hi in a..z with pairs(lo, hi) <= window_pairs
        while a < z:
            mid = (a + z + 1) // 2
            a, z = (mid, z) if pairs(lo, mid) <= window_pairs else (a, mid - 1)
        out.append((lo, a))
        lo = a
    return out


def _row_depths(rows: list[Row], depth_slack: int) -> tuple[list[int], list[int]]:
    """The depth guard's per-row ``S`` (terms all inputs: ``T``) and cap
    ``2**(ceil(log2 T) + slack)``."""
    return ([len(row) for row in rows],
            [1 << (max(len(row) - 1, 0).bit_length() + depth_slack) for row in rows])


class _Sharing:
    """State of one sharing run.

    Pattern counts (pairs of terms in a row, over all rows) are kept exactly as ``plus -
    minus`` (two Counters, updated in C); the candidates are the initial patterns (one sorted
    list) merged with a heap of (count, level, magnitude, key) entries that may be stale: a
    popped entry whose count changed is pushed back with the current count.  The taken
    pattern replaces its disjoint occurrences."""

    def __init__(self, b: AdderBuilder, rows: list[Row], depth_slack: int | None,
                 depth: tuple[list[int], list[int]] | None = None):
        self.b, self.rows = b, rows
        self.plus: Counter = Counter()
        self.minus: Counter = Counter()
        for row in rows:
            if len(row) > 1:
                self.plus.update(_row_keys(_as_array(sorted(
                    (n, s, g) for (n, s), g in row.items()))).tolist())
        # per row: node -> {shift: sign}; per node: the rows it occurs in
        self.index: list[dict[int, dict[int, int]]] = []
        self.node_rows: dict[int, set[int]] = {}
        for r, row in enumerate(rows):
            idx: dict[int, dict[int, int]] = {}
            for (n, s), g in row.items():
                idx.setdefault(n, {})[s] = g
                self.node_rows.setdefault(n, set()).add(r)
            self.index.append(idx)
        self.guard = depth_slack is not None
        if self.guard:  # ``depth``: the whole rows' state when ``rows`` is one window of them
            self.depth_sum, self.depth_cap = depth or _row_depths(rows, depth_slack)
        self.heap: list[tuple] = []
        self.init = self._initial_candidates()
        self.pos = 0

    def _entry(self, k: int, c: int) -> tuple:
        b = self.b
        n1, a1, n2, a2, _g = _unpack(k)
        return (-c, max(b.level(n1), b.level(n2)) + 1,
                max(b.width(n1) + a1, b.width(n2) + a2), k)

    def _initial_candidates(self) -> list[tuple]:
        """Heap entries of every pattern occurring twice or more, all over inputs (level 1),
        sorted."""
        ks = np.fromiter((k for k, c in self.plus.items() if c >= 2), dtype=np.int64)
        cs = np.array([self.plus[k] for k in ks.tolist()], dtype=np.int64)
        widths = np.array([self.b.width(i) for i in range(self.b.n_in)] + [0], dtype=np.int64)
        n1v, a1v, n2v, a2v, _g = _unpack(ks)
        mags = np.maximum(widths[n1v] + a1v, widths[n2v] + a2v)
        order = np.lexsort((ks, mags, -cs))
        return list(zip((-cs[order]).tolist(), [1] * len(order), mags[order].tolist(),
                        ks[order].tolist()))

    def _pop(self) -> tuple:
        """The smallest candidate of the initial list and the heap together."""
        if self.pos < len(self.init) and (not self.heap or self.init[self.pos] < self.heap[0]):
            self.pos += 1
            return self.init[self.pos - 1]
        return heapq.heappop(self.heap)

    def run(self) -> None:
        while self.heap or self.pos < len(self.init):
            self._consider(self._pop())

    def _consider(self, e: tuple) -> None:
        """Take, requeue or retire the popped candidate ``e``."""
        k = e[3]
        c = self.plus[k] - self.minus[k]
        if c < 2:
            return
        if c < -e[0] or (c > -e[0] and not self.guard):
            heapq.heappush(self.heap, (-c,) + e[1:])
            return
        pattern = _unpack(k)
        occ = self.occurrences(*pattern)
        if len(occ) < 2:
            # overlapping pairs only, or the rest would deepen their rows (rows' sums only
            # grow, so a blocked occurrence stays blocked): retire the pattern
            self.minus[k] += c
            return
        if self.guard and len(occ) < -e[0]:
            # fewer usable occurrences than counted: queue again at the usable count (an
            # entry's count only falls, so this ends)
            heapq.heappush(self.heap, (-len(occ),) + e[1:])
            return
        self._substitute(pattern, occ)

    def occurrences(self, n1: int, a1: int, n2: int, a2: int, g: int) -> list[tuple[int, int, int]]:
        """Disjoint occurrences of a pattern: (row, m, sign of the first term)."""
        b, guard = self.b, self.guard
        occ = []
        if guard:  # growth of a row's sum of 2**level per substituted occurrence
            l1, l2 = b.level(n1), b.level(n2)
            delta = (2 << max(l1, l2)) - (1 << l1) - (1 << l2)
        for r in sorted(self.node_rows.get(n1, set()) & self.node_rows.get(n2, set())):
            s1s, s2s = self.index[r][n1], self.index[r][n2]
            used: set[tuple[int, int]] = set()
            room = (self.depth_cap[r] - self.depth_sum[r]) // delta if guard and delta else -1
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

    def _substitute(self, pattern: tuple, occ: list[tuple[int, int, int]]) -> None:
        """Create the pattern's adder and put it in place of each occurrence."""
        n1, a1, n2, a2, g = pattern
        if g < 0 and a2 < a1:  # keep the low operand positive: n2 - n1, occurrences flip sign
            nid = self.b.add(Term(n2, a2), Term(n1, a1, True))
            flip = -1
        else:
            nid = self.b.add(Term(n1, a1), Term(n2, a2, g < 0))
            flip = 1
        added: list[int] = []
        for r, m, g1 in occ:
            added.extend(self._replace(r, (n1, m + a1), (n2, m + a2), (nid, m, g1 * flip)))
        plus, minus = self.plus, self.minus
        ks = [k for k in set(added) if plus[k] - minus[k] >= 2]
        if not ks:
            return
        # the entries of _entry, unpacked in one numpy pass (push order does not matter:
        # the heap pops by value)
        n1s, a1s, n2s, a2s, _g = (v.tolist() for v in _unpack(np.array(ks, dtype=np.int64)))
        lv, wd = self.b.levels, self.b.widths
        for k, x, p, y, q in zip(ks, n1s, a1s, n2s, a2s):
            heapq.heappush(self.heap, (minus[k] - plus[k], max(lv[x], lv[y]) + 1,
                                       max(wd[x] + p, wd[y] + q), k))

    def _replace(self, r: int, p1: tuple[int, int], p2: tuple[int, int],
                 tn: SignedTerm) -> list[int]:
        """In row ``r``, replace the terms at ``p1`` and ``p2`` ((node, shift)) by ``tn``,
        updating the pattern counts and indexes; returns the keys of the patterns added."""
        row, idx = self.rows[r], self.index[r]
        t1 = p1 + (row[p1],)
        t2 = p2 + (row[p2],)
        del row[p1]
        del row[p2]
        arr = _as_array([(n, s, gg) for (n, s), gg in row.items()])
        L = len(arr)
        # one numpy pass: t1 and t2 against the rest and each other (gone), tn (added)
        firsts = np.repeat(_as_array([t1, t2, t1, tn]), [L, L, 1, L], axis=0)
        keys = _keys_vs(firsts, np.concatenate([arr, arr, _as_array([t2]), arr])).tolist()
        self.minus.update(keys[:2 * L + 1])
        kn = keys[2 * L + 1:]
        self.plus.update(kn)
        for n, s in (p1, p2):
            del idx[n][s]
            if not idx[n]:
                del idx[n]
                self.node_rows[n].discard(r)
        nid, m, sign = tn
        row[(nid, m)] = sign
        if self.guard:
            b = self.b
            self.depth_sum[r] += (1 << b.level(nid)) - (1 << b.level(p1[0])) - (1 << b.level(p2[0]))
        idx.setdefault(nid, {})[m] = sign
        self.node_rows.setdefault(nid, set()).add(r)
        return kn
