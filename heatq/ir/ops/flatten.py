"""FLATTEN: the per-sample tensor in C order (channel, row, column), as ``torch.flatten``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import Op
from .base import Arg, OpSpec, Shape, same_frac, same_range


@dataclass(frozen=True, eq=False)
class FlattenAttrs:
    """Flatten the per-sample tensor in C order (channel, row, column), as ``torch.flatten``."""


def _shape(a, args: list[Arg]) -> Shape:
    return (int(np.prod(args[0].shape)),)


def _evaluate(node, args: list[np.ndarray], arg_nodes) -> np.ndarray:
    return args[0].reshape(args[0].shape[0], -1)


SPEC = OpSpec(Op.FLATTEN, FlattenAttrs, 1, _shape, same_range, same_frac, _evaluate, "flatten")
