"""Constant matrix-vector product -> adder graph.

``lower_cmvm(W, in_ranges, const)`` computes ``y = W @ x + const`` with two-operand adders:

1. every weight becomes signed digits (:func:`~heatq.lower.digits.digits`: the binary form
   when it has no more nonzero digits than the canonical signed digits / non-adjacent form,
   else CSD), so an output is a sum of terms ``(+/-) x_i << s``;
2. common-subexpression sharing (Hartley's method, :mod:`heatq.lower.cse`): the two-term pattern
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
   ``depth_slack=None``: no guard (fewer adders, deeper trees).  Over the cap
   (:data:`~heatq.lower.cse.CSE_MAX_PAIRS` term pairs over all rows: fused binarized layers)
   the sharing runs within consecutive column windows (:mod:`heatq.lower.cse`; the graph's
   ``meta["cse_windows"]`` says how many), under the same depth guard;
3. each output's remaining terms are summed by a heap keyed by (arrival, magnitude bits): the
   earliest and narrowest operands are added first;
4. the output's constant is added last (it absorbs a negative root for free); without one,
   the root adder of mixed-sign operands is made positive (``a - b``) so that only an all-
   negative root costs an adder to negate.

Exactness is by construction (integer identities only) and checked by
:meth:`AdderGraph.evaluate` against ``W @ x``.  Modules: :mod:`heatq.lower.digits` (step 1),
:mod:`heatq.lower.cse` (step 2), :mod:`heatq.lower.builder` (adder creation, ranges, timing),
this one (validation, steps 3 and 4).
"""

from __future__ import annotations

import heapq
from typing import Iterable, Sequence

import numpy as np

from heatq.ir import IntType
from heatq.ir.adders import AdderGraph, InputNode, Output, Term

from .builder import AdderBuilder
from .cse import CSE_MAX_PAIRS, CSE_WINDOW_PAIRS, Row, share_subexpressions
from .digits import csd, digits, trailing_zeros

__all__ = ["csd", "digits", "lower_cmvm"]

_CSE_CACHE: dict[tuple, tuple[list, list]] = {}  # CSE depends on W and ranges, not timing


def _check_args(w: np.ndarray, in_ranges: Sequence[tuple[int, int]],
                const: Iterable[int] | None, max_carry: int | None,
                depth_slack: int | None) -> tuple[list[InputNode], list[int]]:
    """Validate :func:`lower_cmvm`'s arguments; returns the input nodes and the constants."""
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
    return inputs, consts


def _digit_rows(wl: list[list[int]], inputs: list[InputNode], consts: list[int]) -> list[Row]:
    """Step 1: each output's signed digit terms ``{(input, shift): sign}``; a constant input
    (``lo == hi``) folds into the output's constant (``consts``, updated in place)."""
    rows: list[Row] = []
    for j, wrow in enumerate(wl):
        row: Row = {}
        for i, wij in enumerate(wrow):
            if not wij:
                continue
            if inputs[i].lo == inputs[i].hi:  # a constant input folds into the constant
                consts[j] += wij * inputs[i].lo
                continue
            for s, g in digits(wij):
                row[(i, s)] = g
        rows.append(row)
    return rows


def _shared(b: AdderBuilder, w: np.ndarray, rows: list[Row], depth_slack: int | None,
            cap: tuple[int | None, int]) -> tuple[list[Row], int]:
    """Step 2: run the sharing (cached by weights, input ranges and depth slack) and replay
    its adders into ``b`` with ``b``'s timing (the same node ids); returns the rows left and
    the number of CSE windows (1 under the cap, :mod:`heatq.lower.cse`)."""
    key = (w.shape, np.ascontiguousarray(w, dtype=np.int64).tobytes(),
           tuple((i.lo, i.hi) for i in b.inputs), depth_slack, cap)
    hit = _CSE_CACHE.get(key)
    if hit is None:
        b0 = AdderBuilder(b.inputs, None)
        windows = share_subexpressions(b0, rows, depth_slack, *cap)
        hit = ([(ad.a, ad.b) for ad in b0.adders], [dict(r) for r in rows], windows)
        if len(_CSE_CACHE) >= 32:
            _CSE_CACHE.pop(next(iter(_CSE_CACHE)))
        _CSE_CACHE[key] = hit
    for ta, tb in hit[0]:
        b.add(ta, tb)
    return [dict(r) for r in hit[1]], hit[2]


def _sum_row(b: AdderBuilder, row: Row, c: int) -> Output:
    """Steps 3 and 4: sum one output's terms earliest and narrowest first, then add its
    constant ``c`` (or negate an all-negative root)."""
    heap = []
    for seq, ((n, s), g) in enumerate(sorted(row.items())):
        heap.append((b.arrival(n), b.width(n) + s, seq, (n, s, g)))
    seq = len(heap)
    heapq.heapify(heap)
    while len(heap) > 1:
        _, _, _, t1 = heapq.heappop(heap)
        _, _, _, t2 = heapq.heappop(heap)
        n, s, g = b.combine(t1, t2, positive=not heap and not c)
        heapq.heappush(heap, (b.arrival(n), b.width(n) + s, seq, (n, s, g)))
        seq += 1
    if not heap:
        return Output(None, 0, c, c, c, IntType.for_range(c, c))
    n, s, g = heap[0][3]
    if c or g < 0:
        k = min(s, trailing_zeros(c))  # common trailing zeros stay outside the adder
        n = b.add(Term(n, s - k, g < 0), None, c >> k)
        s = k
    lo, hi = b.range(n)
    lo, hi = lo << s, hi << s
    return Output(n, s, 0, lo, hi, IntType.for_range(lo, hi))


def lower_cmvm(weight: np.ndarray, in_ranges: Sequence[tuple[int, int]],
               const: Iterable[int] | None = None, max_carry: int | None = None,
               cse: bool = True, depth_slack: int | None = 0,
               cse_max_pairs: int | None = CSE_MAX_PAIRS,
               cse_window_pairs: int = CSE_WINDOW_PAIRS) -> AdderGraph:
    """Lower ``y = weight @ x + const`` (``weight`` integer ``[out, in]``, ``x_i`` in
    ``in_ranges[i]``) to an :class:`AdderGraph`.  ``max_carry``: pipelined, no carry chain
    longer than that many bits between registers.  ``cse=False``: no sharing (plain CSD
    adder trees).  ``depth_slack``: sharing may deepen an output's adder tree by at most
    this many levels over its unshared minimum (None: no limit); see the module docstring.
    ``cse_max_pairs`` / ``cse_window_pairs``: the CSE cap (:mod:`heatq.lower.cse`; None: no
    cap)."""
    w = np.asarray(weight)
    inputs, consts = _check_args(w, in_ranges, const, max_carry, depth_slack)
    n_out, n_in = w.shape
    b = AdderBuilder(inputs, max_carry)
    wl = [[int(v) for v in row] for row in w.tolist()]
    rows = _digit_rows(wl, inputs, consts)
    windows = 1
    if cse:
        rows, windows = _shared(b, w, rows, depth_slack, (cse_max_pairs, cse_window_pairs))
    outputs = [_sum_row(b, row, c) for row, c in zip(rows, consts)]
    meta = {"n_out": n_out, "n_in": n_in, "cse": cse, "depth_slack": depth_slack,
            "digits": sum(len(digits(v)) for row in wl for v in row)}
    if windows > 1:  # over the CSE cap: sharing within column windows only
        meta["cse_windows"] = windows
    return AdderGraph(tuple(inputs), tuple(b.adders), tuple(outputs), max_carry, meta)
