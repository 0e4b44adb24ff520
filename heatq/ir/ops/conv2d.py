"""CONV2D: 2-D convolution (cross-correlation, as in PyTorch) with constant integer weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import IRError
from . import Op
from .base import FLOAT64_EXACT, Arg, OpSpec, Range, Shape, frozen_array, pyints
from .weighted import abs_bound, add_bias, affine_range, check_weights, matmul_exact, weighted_frac


@dataclass(frozen=True, eq=False)
class Conv2dAttrs:
    """2-D convolution (cross-correlation, as in PyTorch) with constant integer weights.

    ``weight``: int64 [C_out, C_in, K, K], each in ``-(2**(w_bits-1)-1) .. 2**(w_bits-1)-1``
    (signed, symmetric narrow range) and scaled by ``2**-w_frac``.  ``bias``: int64 [C_out] at the
    output's binary point (input frac + w_frac).  Zero padding of ``padding`` pixels on each side.
    """

    weight: np.ndarray
    bias: np.ndarray
    w_bits: int
    w_frac: int = 0
    stride: int = 1
    padding: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", frozen_array(self.weight, "weight", np.int64))
        object.__setattr__(self, "bias", frozen_array(self.bias, "bias", np.int64))


def window_columns(x: np.ndarray, k: int, padding: int = 0, stride: int = 1) -> np.ndarray:
    """``x`` [N, C, H, W] -> [N, Ho, Wo, C*k*k]: each output position's zero-padded k x k
    window, in ``(c, ky, kx)`` order (that of ``weight.reshape(C_out, -1)``)."""
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        if x.dtype == object:  # np.pad fills object arrays with np.int64 zeros
            x = pyints(x)
    win = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    n, c, ho, wo = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n, ho, wo, c * k * k)


def _shape(a: Conv2dAttrs, args: list[Arg]) -> Shape:
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
    check_weights(a, c_out)
    h = (x[1] + 2 * a.padding - k) // a.stride + 1
    w = (x[2] + 2 * a.padding - k) // a.stride + 1
    if h < 1 or w < 1:
        raise IRError(f"conv2d kernel {k} does not fit input {x[1]}x{x[2]}")
    return (c_out, h, w)


def _range(a: Conv2dAttrs, args: list[Arg]) -> Range:
    lo, hi = args[0].lo, args[0].hi
    if a.padding:  # padded positions read zero
        lo, hi = min(lo, 0), max(hi, 0)
    return affine_range(a.weight.reshape(a.weight.shape[0], -1), a.bias, lo, hi)


def _evaluate(node, args: list[np.ndarray], arg_nodes) -> np.ndarray:
    a = node.attrs
    bound, x = abs_bound(arg_nodes[0], a.weight), args[0]
    if bound < FLOAT64_EXACT and x.dtype != object:  # exact in float64: convert before the
        x = x.astype(np.float64)                     # windows repeat every value k*k times
    cols = window_columns(x, a.weight.shape[2], a.padding, a.stride)
    w2 = a.weight.reshape(a.weight.shape[0], -1).T
    acc = matmul_exact(cols, w2, bound)
    return add_bias(acc, a.bias, node).transpose(0, 3, 1, 2)


SPEC = OpSpec(Op.CONV2D, Conv2dAttrs, 1, _shape, _range, weighted_frac, _evaluate, "conv2d")
