"""Test vectors at the edges of a graph's input range ("corner vectors").

For an INPUT of range ``lo..hi``: all-lo, all-hi, two checkerboards, and for the first
weighted layer, per output channel (up to ``max_channels``), the inputs that drive its
accumulator to the top and to the bottom of its range (``hi`` where the weight is positive,
``lo`` elsewhere, and the reverse; a conv kernel is tiled over the image).  Random vectors
uniform over ``lo..hi`` complete the set.
"""

from __future__ import annotations

import numpy as np

from .ir import IntGraph, Op


def _extreme_patterns(graph: IntGraph, max_channels: int) -> list[np.ndarray]:
    inp = graph.nodes[0]
    first = next((n for n in graph.nodes if n.op in (Op.CONV2D, Op.DENSE)), None)
    if first is None:
        return []
    w = first.attrs.weight
    out = []
    for o in range(min(w.shape[0], max_channels)):
        if first.op is Op.CONV2D and len(inp.shape) == 3:
            k = w.shape[2]
            c, h, wd = inp.shape
            kern = w[o]  # [C, K, K]
            tiled = np.tile(kern, (1, -(-h // k), -(-wd // k)))[:, :h, :wd]
            positive = tiled > 0
        elif first.op is Op.DENSE and first.args[0] == 0:
            positive = (w[o] > 0).reshape(inp.shape)
        else:  # the first weighted layer is behind a reshape: use its flat pattern
            positive = (w[o] > 0).reshape(inp.shape) if w[o].size == inp.size else None
        if positive is None:
            continue
        out.append(np.where(positive, inp.hi, inp.lo))
        out.append(np.where(positive, inp.lo, inp.hi))
    return out


def corner_vectors(graph: IntGraph, n_random: int = 16, seed: int = 0,
                   max_channels: int = 8) -> np.ndarray:
    """int64 [M, *input_shape] corner and random vectors for ``graph``'s input."""
    inp = graph.nodes[0]
    shape = inp.shape
    full = lambda v: np.full(shape, v, dtype=np.int64)  # noqa: E731
    grid = np.indices(shape).sum(axis=0) % 2
    vecs = [full(inp.lo), full(inp.hi), np.where(grid == 0, inp.lo, inp.hi),
            np.where(grid == 1, inp.lo, inp.hi)]
    vecs += _extreme_patterns(graph, max_channels)
    rng = np.random.default_rng(seed)
    vecs += list(rng.integers(inp.lo, inp.hi + 1, size=(n_random, *shape)))
    return np.stack([np.asarray(v, dtype=np.int64) for v in vecs])
