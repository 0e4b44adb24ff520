"""The one corner-vector generator: :func:`corner_vectors`.

The inputs every exactness test feeds (the conformance suite, the pass checks, ``heatq
run-target`` / ``heatq sim``): range corners of the graph's input (all ``lo``, all ``hi``,
element-index and spatial checkerboards, one ``hi`` at either end), the inputs that drive each
output channel of the first weighted layer to the top and to the bottom of its range, and
seeded random vectors.
"""

from __future__ import annotations

import numpy as np

from .graph import IntGraph
from .ops import Op

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def _fits_int64(lo: int, hi: int) -> bool:
    return INT64_MIN <= lo and hi <= INT64_MAX


def _first_weighted(graph: IntGraph):
    """The first CONV2D / DENSE fed by the input directly or through one FLATTEN, else None."""
    feeds = {0}
    for n in graph.nodes[1:]:
        if n.op is Op.FLATTEN and n.args[0] == 0:
            feeds.add(n.id)
        elif n.op in (Op.CONV2D, Op.DENSE) and n.args[0] in feeds:
            return n
    return None


def _range_patterns(shape, lo: int, hi: int, thorough: bool) -> list[np.ndarray]:
    """All lo, all hi, the checkerboards over every index (``c + y + x`` parity, both
    phases); ``thorough``: also the flat element-index checkerboards, one hi at either end,
    and for [C, H, W] inputs the spatial checkerboards (``y + x``, equal over channels)."""
    grid = np.indices(shape).sum(axis=0) % 2
    pats = [np.full(shape, lo, dtype=object), np.full(shape, hi, dtype=object),
            np.where(grid == 0, lo, hi), np.where(grid == 1, lo, hi)]
    if not thorough:
        return pats
    n = int(np.prod(shape))
    flat = np.arange(n)
    more = [np.where(flat % 2, hi, lo), np.where(flat % 2, lo, hi)]
    for end in (0, n - 1):
        e = np.full(n, lo, dtype=object)
        e[end] = hi
        more.append(e)
    pats += [p.reshape(shape) for p in more]
    if len(shape) == 3:
        yy, xx = np.indices(shape[1:])
        cb = np.broadcast_to((yy + xx) % 2 == 1, shape)
        pats += [np.where(cb, hi, lo), np.where(cb, lo, hi)]
    return pats


def _conv_windows(node, shape, lo: int, hi: int, pick_hi: np.ndarray,
                  thorough: bool) -> list[np.ndarray]:
    """For one output channel's ``pick_hi`` [C, K, K]: the kernel tiled over the image (the
    extreme at every output position aligned with the tiling, e.g. (padding, padding));
    ``thorough``: also the window of the output positions (0, 0), (Ho-1, Wo-1) and the centre
    set on a background of the other extreme (padded taps read 0, so they are skipped)."""
    a = node.attrs
    c, h, w = shape
    k = pick_hi.shape[2]
    tiled = np.tile(pick_hi, (1, -(-h // k), -(-w // k)))[:, :h, :w]
    out = [np.where(tiled, hi, lo)]
    if not thorough:
        return out
    _, ho, wo = node.shape
    for oy, ox in sorted({(0, 0), (ho - 1, wo - 1), (ho // 2, wo // 2)}):
        x = np.full(shape, lo, dtype=object)
        for ky in range(k):
            for kx in range(k):
                iy, ix = oy * a.stride + ky - a.padding, ox * a.stride + kx - a.padding
                if 0 <= iy < h and 0 <= ix < w:
                    x[:, iy, ix] = np.where(pick_hi[:, ky, kx], hi, lo)
        out.append(x)
    return out


def _weight_patterns(graph: IntGraph, max_channels: int, thorough: bool) -> list[np.ndarray]:
    """Per output channel (up to ``max_channels``) of the first weighted layer: the inputs
    that maximise its sum (hi where the weight is positive, lo elsewhere) and minimise it
    (the reverse), placed as :func:`_conv_windows` says for CONV2D on the input."""
    inp, node = graph.nodes[0], _first_weighted(graph)
    if node is None:
        return []
    lo, hi = inp.lo, inp.hi
    out = []
    for wo in node.attrs.weight[:max_channels]:
        for pick_hi in (wo > 0, wo <= 0):
            if node.op is Op.CONV2D:
                out += _conv_windows(node, inp.shape, lo, hi, pick_hi, thorough)
            else:
                out.append(np.where(pick_hi.reshape(inp.shape), hi, lo))
    return out


def _random(shape, lo: int, hi: int, n: int, rng: np.random.Generator,
            thorough: bool) -> list[np.ndarray]:
    """``n`` uniform draws over lo..hi; ``thorough``: then two draws of only lo / hi."""
    if _fits_int64(lo, hi):
        uni = list(rng.integers(lo, hi, size=(n, *shape), endpoint=True))
    else:  # Python ints: ``span`` random bits beyond int64, reduced into the range
        span = hi - lo + 1
        nbytes = (span.bit_length() + 71) // 8
        uni = [np.array([lo + int.from_bytes(rng.bytes(nbytes), "little") % span
                         for _ in range(int(np.prod(shape)))], dtype=object).reshape(shape)
               for _ in range(n)]
    two = [np.where(rng.random(shape) < 0.5, hi, lo) for _ in range(2)] if thorough else []
    return uni + two


def corner_vectors(graph: IntGraph, n_random: int = 16, seed: int = 0, max_channels: int = 8,
                   thorough: bool = False) -> np.ndarray:
    """Corner and random input vectors for ``graph``: ``[M, *input_shape]``, int64 when the
    input range fits 64-bit signed integers, else an object array of Python ints; every value
    inside the input's ``lo..hi``; a function of the arguments alone (deterministic).

    Default (what ``heatq run-target`` / ``heatq sim`` add to the images): all lo, all hi, two
    checkerboards, the per-channel max / min inputs of the first weighted layer (tiled kernel
    for CONV2D) for up to ``max_channels`` channels, then ``n_random`` uniform vectors.
    ``thorough=True`` (the conformance suite, the range tests): also the patterns the
    ``_range_patterns`` / ``_conv_windows`` / ``_random`` docstrings name, duplicates dropped
    (first occurrence kept)."""
    inp = graph.nodes[0]
    shape, lo, hi = inp.shape, inp.lo, inp.hi
    vecs = _range_patterns(shape, lo, hi, thorough)
    vecs += _weight_patterns(graph, max_channels, thorough)
    vecs += _random(shape, lo, hi, n_random, np.random.default_rng(seed), thorough)
    keys = [tuple(int(e) for e in np.asarray(v).ravel()) for v in vecs]
    if thorough:
        keys = list(dict.fromkeys(keys))
    dtype = np.int64 if _fits_int64(lo, hi) else object
    return np.array(keys, dtype=dtype).reshape((len(keys), *shape))
