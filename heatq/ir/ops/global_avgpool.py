"""GLOBAL_AVGPOOL: the mean of each channel of a [C, H, W] map as a sum and a binary-point
shift, exact when the pooled count ``H * W`` is a power of two (refused otherwise)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import IRError
from . import Op
from .base import INT64_MAX_WIDTH, Arg, OpSpec, Range, Shape, pyints


@dataclass(frozen=True, eq=False)
class GlobalAvgPoolAttrs:
    """No attributes.  Input ``[C, H, W]`` with ``H * W = 2**k``; output ``[C]``, the integer
    sum of each channel's ``H * W`` values at binary point ``frac + k``: the value is exactly
    the channel's mean, and no bit is dropped (the division is a move of the binary point)."""


def pooled_log2(shape: Shape) -> int:
    """``k`` with ``H * W = 2**k`` for a ``[C, H, W]`` shape; IRError when the pooled count is
    not a power of two (the mean would need a division) or the shape is not ``[C, H, W]``."""
    if len(shape) != 3:
        raise IRError(f"global_avgpool expects a [C, H, W] input, got shape {shape}")
    n = int(shape[1]) * int(shape[2])
    if n < 1 or n & (n - 1):
        raise IRError(f"global_avgpool: the pooled count {shape[1]}x{shape[2]} = {n} is not a "
                      "power of two (the mean is an exact sum and shift only then)")
    return n.bit_length() - 1


def _shape(a: GlobalAvgPoolAttrs, args: list[Arg]) -> Shape:
    pooled_log2(args[0].shape)
    return (int(args[0].shape[0]),)


def _range(a: GlobalAvgPoolAttrs, args: list[Arg]) -> Range:
    n = 1 << pooled_log2(args[0].shape)
    return args[0].lo * n, args[0].hi * n


def _frac(a: GlobalAvgPoolAttrs, args: list[Arg]) -> int:
    return args[0].frac + pooled_log2(args[0].shape)


def _evaluate(node, args: list[np.ndarray], arg_nodes) -> np.ndarray:
    x = args[0]
    bound = max(-arg_nodes[0].lo, arg_nodes[0].hi) * (x.shape[2] * x.shape[3])
    if x.dtype == object or bound >= (1 << INT64_MAX_WIDTH):
        return pyints(x).sum(axis=(2, 3))
    return x.astype(np.int64, copy=False).sum(axis=(2, 3))


SPEC = OpSpec(Op.GLOBAL_AVGPOOL, GlobalAvgPoolAttrs, 1, _shape, _range, _frac, _evaluate,
              "global_avgpool")
