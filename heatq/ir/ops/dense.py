"""DENSE: fully connected layer with constant integer weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import IRError
from . import Op
from .base import Arg, OpSpec, Range, Shape, frozen_array
from .weighted import abs_bound, add_bias, affine_range, check_weights, matmul_exact, weighted_frac


@dataclass(frozen=True, eq=False)
class DenseAttrs:
    """Fully connected layer: ``weight`` int64 [out, in] (signed ``w_bits``, scale ``2**-w_frac``),
    ``bias`` int64 [out] at the output's binary point."""

    weight: np.ndarray
    bias: np.ndarray
    w_bits: int
    w_frac: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", frozen_array(self.weight, "weight", np.int64))
        object.__setattr__(self, "bias", frozen_array(self.bias, "bias", np.int64))


def _shape(a: DenseAttrs, args: list[Arg]) -> Shape:
    x = args[0].shape
    if len(x) != 1:
        raise IRError(f"dense expects a flat input, got shape {x}")
    if a.weight.ndim != 2 or a.weight.shape[1] != x[0]:
        raise IRError(f"dense weight shape {a.weight.shape} does not fit input length {x[0]}")
    check_weights(a, a.weight.shape[0])
    return (a.weight.shape[0],)


def _range(a: DenseAttrs, args: list[Arg]) -> Range:
    return affine_range(a.weight, a.bias, args[0].lo, args[0].hi)


def _evaluate(node, args: list[np.ndarray], arg_nodes) -> np.ndarray:
    a = node.attrs
    acc = matmul_exact(args[0], a.weight.T, abs_bound(arg_nodes[0], a.weight))
    return add_bias(acc, a.bias, node)


SPEC = OpSpec(Op.DENSE, DenseAttrs, 1, _shape, _range, weighted_frac, _evaluate, "dense")
