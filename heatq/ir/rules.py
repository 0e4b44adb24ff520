"""Shape, range and binary-point rules: one small function per op.

Ranges are exact integer intervals ``(lo, hi)`` over every element of a node's tensor, found
by interval arithmetic over the constant weights.  For CONV2D and DENSE the interval covers
every *partial* sum of the accumulation in any order (bias included or not), so an
accumulator of the node's type can never overflow, whatever order a target adds in.
A rule raises :class:`IRError` when attributes and arguments do not fit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .ops import (
    Conv2dAttrs, DenseAttrs, HammingDecodeAttrs, InputAttrs, MaxPool2dAttrs, Op, RequantAttrs,
)
from .errors import IRError
from .requant import requant_plan, requant_scalar  # noqa: F401  (requant_scalar: re-export)
from .types import Overflow


Shape = tuple[int, ...]
Range = tuple[int, int]


@dataclass(frozen=True)
class Arg:
    """What a rule knows about one argument: its shape, integer range and binary point."""

    shape: Shape
    lo: int
    hi: int
    frac: int


@dataclass(frozen=True)
class OpRule:
    """How one op derives its output: number of args, and shape / range / frac functions."""

    n_args: int
    shape: Callable[[object, list[Arg]], Shape]
    range: Callable[[object, list[Arg]], Range]
    frac: Callable[[object, list[Arg]], int]


def weight_bound(w_bits: int) -> int:
    """Largest |w| of a ``w_bits``-bit signed symmetric weight (1 bit means w in {-1, +1})."""
    return 1 if w_bits == 1 else (1 << (w_bits - 1)) - 1


def _check_weights(attrs, n_out: int) -> None:
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


def _affine_range(w2d: np.ndarray, bias: np.ndarray, lo: int, hi: int) -> Range:
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


# INPUT ------------------------------------------------------------------------------------
def _input_shape(a: InputAttrs, args: list[Arg]) -> Shape:
    if any(s < 1 for s in a.shape):
        raise IRError(f"input shape {a.shape} has a non-positive dimension")
    if a.lo > a.hi:
        raise IRError(f"input range {a.lo}..{a.hi} is empty")
    return a.shape


# CONV2D -----------------------------------------------------------------------------------
def _conv_shape(a: Conv2dAttrs, args: list[Arg]) -> Shape:
    x = args[0].shape
    if len(x) != 3:
        raise IRError(f"conv2d expects a [C, H, W] input, got shape {x}")
    if a.weight.ndim != 4 or a.weight.shape[2] != a.weight.shape[3]:
        raise IRError(f"conv2d weight must be [C_out, C_in, K, K], got {a.weight.shape}")
    c_out, c_in, k, _ = a.weight.shape
    if c_in != x[0]:
        raise IRError(f"conv2d weight has {c_in} input channels but the input has {x[0]}")
    if a.stride < 1 or a.padding < 0:
        raise IRError(f"conv2d stride {a.stride} / padding {a.padding} invalid")
    _check_weights(a, c_out)
    h = (x[1] + 2 * a.padding - k) // a.stride + 1
    w = (x[2] + 2 * a.padding - k) // a.stride + 1
    if h < 1 or w < 1:
        raise IRError(f"conv2d kernel {k} does not fit input {x[1]}x{x[2]}")
    return (c_out, h, w)


def _conv_range(a: Conv2dAttrs, args: list[Arg]) -> Range:
    lo, hi = args[0].lo, args[0].hi
    if a.padding:  # padded positions read zero
        lo, hi = min(lo, 0), max(hi, 0)
    return _affine_range(a.weight.reshape(a.weight.shape[0], -1), a.bias, lo, hi)


# DENSE ------------------------------------------------------------------------------------
def _dense_shape(a: DenseAttrs, args: list[Arg]) -> Shape:
    x = args[0].shape
    if len(x) != 1:
        raise IRError(f"dense expects a flat input, got shape {x}")
    if a.weight.ndim != 2 or a.weight.shape[1] != x[0]:
        raise IRError(f"dense weight shape {a.weight.shape} does not fit input length {x[0]}")
    _check_weights(a, a.weight.shape[0])
    return (a.weight.shape[0],)


def _dense_range(a: DenseAttrs, args: list[Arg]) -> Range:
    return _affine_range(a.weight, a.bias, args[0].lo, args[0].hi)


def _weighted_frac(a, args: list[Arg]) -> int:
    return args[0].frac + a.w_frac


# REQUANT ----------------------------------------------------------------------------------
def _requant_shape(a: RequantAttrs, args: list[Arg]) -> Shape:
    if a.lo > a.hi:
        raise IRError(f"requant range {a.lo}..{a.hi} is empty")
    if a.overflow is Overflow.WRAP:
        span = a.hi - a.lo + 1
        if span & (span - 1):
            raise IRError(f"requant WRAP needs a power-of-two range, got {a.lo}..{a.hi}")
    return args[0].shape


def _requant_range(a: RequantAttrs, args: list[Arg]) -> Range:
    p = requant_plan(a, args[0].lo, args[0].hi)
    return p.out_lo, p.out_hi


# MAXPOOL2D / FLATTEN / SIGN_BITS / HAMMING_DECODE -----------------------------------------
def _pool_shape(a: MaxPool2dAttrs, args: list[Arg]) -> Shape:
    c, h, w = args[0].shape if len(args[0].shape) == 3 else (None, 0, 0)
    if c is None:
        raise IRError(f"maxpool2d expects a [C, H, W] input, got {args[0].shape}")
    if a.kernel < 1 or a.stride < 1 or h < a.kernel or w < a.kernel:
        raise IRError(f"maxpool2d kernel {a.kernel} / stride {a.stride} do not fit {h}x{w}")
    return (c, (h - a.kernel) // a.stride + 1, (w - a.kernel) // a.stride + 1)


def _flatten_shape(a, args: list[Arg]) -> Shape:
    return (int(np.prod(args[0].shape)),)


def _sign_range(a, args: list[Arg]) -> Range:
    return int(args[0].lo > 0), int(args[0].hi > 0)


def _hamming_shape(a: HammingDecodeAttrs, args: list[Arg]) -> Shape:
    cb = a.codebook
    if cb.ndim != 2 or cb.shape[0] < 1:
        raise IRError(f"hamming_decode codebook must be [K, L], got {cb.shape}")
    if not np.all((cb == 0) | (cb == 1)):
        raise IRError("hamming_decode codebook values must be 0 or 1")
    if args[0].shape != (cb.shape[1],):
        raise IRError(f"hamming_decode expects {cb.shape[1]} bits, got shape {args[0].shape}")
    if args[0].lo < 0 or args[0].hi > 1:
        raise IRError(f"hamming_decode input must be bits (0..1), got {args[0].lo}..{args[0].hi}")
    return ()


def _same_range(a, args: list[Arg]) -> Range:
    return args[0].lo, args[0].hi


def _same_frac(a, args: list[Arg]) -> int:
    return args[0].frac


def _zero_frac(a, args: list[Arg]) -> int:
    return 0


RULES: dict[Op, OpRule] = {
    Op.INPUT: OpRule(0, _input_shape, lambda a, args: (a.lo, a.hi), lambda a, args: a.frac),
    Op.CONV2D: OpRule(1, _conv_shape, _conv_range, _weighted_frac),
    Op.DENSE: OpRule(1, _dense_shape, _dense_range, _weighted_frac),
    Op.REQUANT: OpRule(1, _requant_shape, _requant_range,
                       lambda a, args: args[0].frac - a.shift),
    Op.MAXPOOL2D: OpRule(1, _pool_shape, _same_range, _same_frac),
    Op.FLATTEN: OpRule(1, _flatten_shape, _same_range, _same_frac),
    Op.SIGN_BITS: OpRule(1, lambda a, args: args[0].shape, _sign_range, _zero_frac),
    Op.HAMMING_DECODE: OpRule(1, _hamming_shape,
                              lambda a, args: (0, a.codebook.shape[0] - 1), _zero_frac),
}
