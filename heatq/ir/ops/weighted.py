"""Rules and evaluation shared by the ops with constant integer weights (CONV2D, DENSE).

Ranges are exact integer intervals over every element; for a weighted op the interval covers
every *partial* sum of the accumulation in any order (bias included or not), so an
accumulator of the node's type can never overflow, whatever order a target adds in.
Products are exact: float64 BLAS only when every partial sum is provably below 2**53 in
magnitude (float64 arithmetic on such integers is exact), int64 or Python ints otherwise.
"""

from __future__ import annotations

import numpy as np

from ..errors import IRError
from .base import FLOAT64_EXACT, Arg, Range, fits_int64, pyints, value_dtype


def weight_bound(w_bits: int) -> int:
    """Largest |w| of a ``w_bits``-bit signed symmetric weight (1 bit means w in {-1, +1})."""
    return 1 if w_bits == 1 else (1 << (w_bits - 1)) - 1


def check_weights(attrs, n_out: int) -> None:
    """``attrs.weight`` fits signed ``attrs.w_bits``; ``attrs.bias`` is [n_out]."""
    if attrs.w_bits < 1:
        raise IRError(f"w_bits must be >= 1, got {attrs.w_bits}")
    bound = weight_bound(attrs.w_bits)
    if attrs.weight.size and int(np.abs(attrs.weight).max()) > bound:
        raise IRError(
            f"weight value {int(np.abs(attrs.weight).max())} is out of range for "
            f"{attrs.w_bits}-bit signed weights (|w| <= {bound})")
    if attrs.w_bits == 1 and np.any(attrs.weight == 0):
        raise IRError("1-bit weights must be -1 or +1, found 0")
    if n_out < 1:
        raise IRError("a layer must have at least one output")
    if attrs.bias.shape != (n_out,):
        raise IRError(f"bias shape {attrs.bias.shape} does not match {n_out} outputs")


def affine_range(w2d: np.ndarray, bias: np.ndarray, lo: int, hi: int) -> Range:
    """Partial-sum interval of ``bias[j] + sum_i w2d[j, i] * x_i`` with every ``x_i`` in lo..hi."""
    w = [[int(v) for v in row] for row in w2d.tolist()]
    lows, highs = [], []
    for j, row in enumerate(w):
        b = int(bias[j])
        neg = sum(min(v * lo, v * hi, 0) for v in row)
        pos = sum(max(v * lo, v * hi, 0) for v in row)
        lows.append(min(b, 0) + neg)
        highs.append(max(b, 0) + pos)
    return (min(lows), max(highs)) if w else (0, 0)


def weighted_frac(a, args: list[Arg]) -> int:
    return args[0].frac + a.w_frac


def matmul_exact(x: np.ndarray, w: np.ndarray, bound: int) -> np.ndarray:
    """``x @ w`` on integers (x [..., K], w [K, M]), exact; ``bound`` caps |every partial sum|."""
    if bound < FLOAT64_EXACT and x.dtype != object:  # one BLAS product over all rows
        flat = x.reshape(-1, x.shape[-1]).astype(np.float64, copy=False) @ w.astype(np.float64)
        return np.rint(flat).astype(np.int64).reshape(*x.shape[:-1], w.shape[1])
    if fits_int64(bound) and x.dtype != object:
        return x.astype(np.int64) @ w.astype(np.int64)
    return pyints(x) @ pyints(w)


def abs_bound(arg, w: np.ndarray) -> int:
    """A bound on |every partial sum of w[j] . x| for x in ``arg.lo..arg.hi`` (Python ints)."""
    m = max(abs(arg.lo), abs(arg.hi))
    rows = w.reshape(w.shape[0], -1)
    return max((sum(abs(int(v)) for v in row) for row in rows.tolist()), default=0) * m


def add_bias(acc: np.ndarray, bias: np.ndarray, node) -> np.ndarray:
    """``acc + bias`` in the node's value dtype (Python ints when it is wider than int64)."""
    if value_dtype(node.type) is object or acc.dtype == object:
        return pyints(acc) + pyints(bias)
    return acc + bias
