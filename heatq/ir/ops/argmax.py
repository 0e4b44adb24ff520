"""ARGMAX: the index of the largest element of a vector, ties to the lowest index."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import IRError
from . import Op
from .base import Arg, OpSpec, Range, Shape, pyints, zero_frac


@dataclass(frozen=True, eq=False)
class ArgmaxAttrs:
    """Index of the largest element of a vector ``[K]`` (K >= 1) of integers of any width and
    signedness; ties go to the lowest index (``np.argmax``).  The comparison is on the stored
    integers (all elements share one binary point).  Output: unsigned scalar ``0..K-1``,
    frac 0."""


def _shape(a: ArgmaxAttrs, args: list[Arg]) -> Shape:
    x = args[0]
    if len(x.shape) != 1 or x.shape[0] < 1:
        raise IRError(f"argmax expects a vector [K] with K >= 1, got shape {x.shape}")
    return ()


def _range(a: ArgmaxAttrs, args: list[Arg]) -> Range:
    return 0, args[0].shape[0] - 1


def _evaluate(node, args: list[np.ndarray], arg_nodes) -> np.ndarray:
    x = args[0]
    if x.dtype == object:  # Python ints: compare exactly, first maximum wins
        out = np.empty(x.shape[0], dtype=np.int64)
        for i, row in enumerate(pyints(x)):
            vals = list(row)
            out[i] = vals.index(max(vals))
        return out
    return np.argmax(x.astype(np.int64, copy=False), axis=1).astype(np.int64)


SPEC = OpSpec(Op.ARGMAX, ArgmaxAttrs, 1, _shape, _range, zero_frac, _evaluate, "argmax")
