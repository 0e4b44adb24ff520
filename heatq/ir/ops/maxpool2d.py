"""MAXPOOL2D: max over ``kernel`` x ``kernel`` windows with ``stride``, no padding (floor mode)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import IRError
from . import Op
from .base import Arg, OpSpec, Shape, same_frac, same_range


@dataclass(frozen=True, eq=False)
class MaxPool2dAttrs:
    """Max pooling over ``kernel`` x ``kernel`` windows with ``stride``, no padding (floor mode)."""

    kernel: int = 2
    stride: int = 2


def _shape(a: MaxPool2dAttrs, args: list[Arg]) -> Shape:
    c, h, w = args[0].shape if len(args[0].shape) == 3 else (None, 0, 0)
    if c is None:
        raise IRError(f"maxpool2d expects a [C, H, W] input, got {args[0].shape}")
    if a.kernel < 1 or a.stride < 1 or h < a.kernel or w < a.kernel:
        raise IRError(f"maxpool2d kernel {a.kernel} / stride {a.stride} do not fit {h}x{w}")
    return (c, (h - a.kernel) // a.stride + 1, (w - a.kernel) // a.stride + 1)


def _evaluate(node, args: list[np.ndarray], arg_nodes) -> np.ndarray:
    a = node.attrs
    _, ho, wo = node.shape
    win = sliding_window_view(args[0], (a.kernel, a.kernel), axis=(2, 3))
    win = win[:, :, ::a.stride, ::a.stride][:, :, :ho, :wo]
    return win.max(axis=(4, 5))


SPEC = OpSpec(Op.MAXPOOL2D, MaxPool2dAttrs, 1, _shape, same_range, same_frac, _evaluate,
              "maxpool2d")
