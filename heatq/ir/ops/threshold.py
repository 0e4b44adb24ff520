"""THRESHOLD: multi-threshold unit, ``y[c, ...] = #{k : thresholds[c, k] <= x[c, ...]}``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import IRError
from . import Op
from .base import Arg, OpSpec, Range, Shape, frozen_array, zero_frac

_I64 = np.iinfo(np.int64)


@dataclass(frozen=True, eq=False)
class ThresholdAttrs:
    """``thresholds``: int64 [C, T], T >= 1, each row sorted non-decreasing, compared at the
    input's binary point.  Channel ``c`` is axis 0 of a [C, H, W] input, or element ``c`` of a
    [C] input.  The output counts the thresholds at or below the input: unsigned, 0..T."""

    thresholds: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds",
                           frozen_array(self.thresholds, "thresholds", np.int64))


def _shape(a: ThresholdAttrs, args: list[Arg]) -> Shape:
    t, x = a.thresholds, args[0].shape
    if t.ndim != 2 or t.shape[0] < 1 or t.shape[1] < 1:
        raise IRError(f"threshold: thresholds must be [C, T] with C, T >= 1, got shape {t.shape}")
    bad = np.nonzero(t[:, 1:] < t[:, :-1])  # not np.diff: it overflows for int64 extremes
    if bad[0].size:
        c, k = int(bad[0][0]), int(bad[1][0])
        raise IRError(f"threshold: row {c} is not sorted non-decreasing "
                      f"(thresholds[{c}, {k}] = {int(t[c, k])} > "
                      f"thresholds[{c}, {k + 1}] = {int(t[c, k + 1])})")
    if len(x) not in (1, 3):
        raise IRError(f"threshold expects a [C, H, W] or [C] input, got shape {x}")
    if x[0] != t.shape[0]:
        raise IRError(f"threshold: the input has {x[0]} channels but thresholds has "
                      f"{t.shape[0]} rows")
    return x


def _counts(t: np.ndarray, v: int) -> np.ndarray:
    """Per row of ``t``, how many thresholds are <= the Python int ``v``."""
    v = min(max(int(v), int(_I64.min)), int(_I64.max))  # thresholds are int64: same counts
    return np.array([np.searchsorted(row, v, side="right") for row in t], dtype=np.int64)


def _range(a: ThresholdAttrs, args: list[Arg]) -> Range:
    return (int(_counts(a.thresholds, args[0].lo).min()),
            int(_counts(a.thresholds, args[0].hi).max()))


def _evaluate(node, args: list[np.ndarray], arg_nodes) -> np.ndarray:
    x = args[0]
    t = node.attrs.thresholds
    shape = (1, t.shape[0]) + (1,) * (x.ndim - 2)  # broadcast one threshold per channel
    if x.dtype == object:
        t = t.astype(object)
    y = np.zeros(x.shape, dtype=np.int64)
    for k in range(t.shape[1]):
        y += (x >= t[:, k].reshape(shape)).astype(np.int64)
    return y


SPEC = OpSpec(Op.THRESHOLD, ThresholdAttrs, 1, _shape, _range, zero_frac, _evaluate,
              "threshold")
