"""Exact helper types of the C-like renderers: the compare table of a THRESHOLD node and the
accumulator type of an ADD node (both derived from node ranges, never guessed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heatq.ir import IntGraph, IntType, Node


@dataclass(frozen=True)
class _ThresholdTable:
    """A THRESHOLD node's thresholds as compared for an argument in ``lo..hi``: each one is
    clamped to ``lo..hi+1`` (a threshold ``<= lo`` counts for every argument value, one
    ``> hi`` for none, so the counts are unchanged); the leading ``first`` columns, clamped to
    ``lo`` in every row, are counted without a compare and trailing columns that no row counts
    are dropped.  ``rows``: [C][T_live] Python ints, sorted per row; ``ct``: the compare type,
    holding ``lo..hi`` and every live threshold (at most one bit wider than the argument)."""

    first: int
    rows: list[list[int]]
    ct: IntType


def threshold_table(thresholds: np.ndarray, lo: int, hi: int) -> _ThresholdTable:
    """The :class:`_ThresholdTable` of int64 ``thresholds`` [C, T] for arguments in ``lo..hi``."""
    rows = [[min(max(int(t), lo), hi + 1) for t in row] for row in thresholds.tolist()]
    first = min(sum(t <= lo for t in r) for r in rows)
    stop = max(sum(t <= hi for t in r) for r in rows)
    live = [r[first:stop] for r in rows]
    flat = [t for r in live for t in r]
    return _ThresholdTable(first, live, IntType.for_range(min([lo, *flat]), max([hi, *flat])))


def add_type(g: IntGraph, node: Node) -> IntType:
    """The accumulator type of ADD ``node``: the exact range of every partial sum
    ``sum_{i<k} x_i << s_i`` (k = 1..n; the last is the node's range) and of every term."""
    lo = hi = 0
    bounds = [(0, 0)]
    for a, s in zip(node.args, node.attrs.shifts):
        t_lo, t_hi = g.nodes[a].lo << s, g.nodes[a].hi << s
        lo, hi = lo + t_lo, hi + t_hi
        bounds += [(t_lo, t_hi), (lo, hi)]
    return IntType.for_range(min(b[0] for b in bounds), max(b[1] for b in bounds))
