"""CONCAT: channel concatenation, ``y = [x_0; x_1; ...]`` along axis 0, exact."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import IRError
from . import Op
from .base import Arg, OpSpec, Range, Shape, pyints


@dataclass(frozen=True, eq=False)
class ConcatAttrs:
    """``n_args``: the number of arguments (>= 1).  The arguments are feature maps
    ``[C_i, H, W]`` with one ``H, W`` (channels concatenated: the output is
    ``[sum C_i, H, W]``) or vectors ``[n_i]`` (output ``[sum n_i]``), all with one binary point.
    The values are copied unchanged: range ``(min lo_i, max hi_i)``, the common frac; the
    node's type (signed iff that range reaches below 0) holds every argument's values."""

    n_args: int

    def __post_init__(self) -> None:
        n = self.n_args
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise IRError(f"concat: n_args must be an integer >= 1, got {n!r}")
        object.__setattr__(self, "n_args", int(n))


def _shape(a: ConcatAttrs, args: list[Arg]) -> Shape:
    first = args[0]
    if len(first.shape) not in (1, 3):
        raise IRError(f"argument 0 has shape {first.shape} (only [C, H, W] or [n] concatenate)")
    for i, x in enumerate(args[1:], 1):
        if len(x.shape) != len(first.shape) or x.shape[1:] != first.shape[1:]:
            raise IRError(f"argument {i} has shape {x.shape} but argument 0 has {first.shape} "
                          "(every argument must have the same rank and spatial shape)")
        if x.frac != first.frac:
            raise IRError(f"argument {i} has frac {x.frac} but argument 0 has frac "
                          f"{first.frac} (concatenated values share one binary point)")
    return (sum(x.shape[0] for x in args), *first.shape[1:])


def _range(a: ConcatAttrs, args: list[Arg]) -> Range:
    return min(x.lo for x in args), max(x.hi for x in args)


def _evaluate(node, args: list[np.ndarray], arg_nodes) -> np.ndarray:
    if any(x.dtype == object for x in args):
        args = [pyints(x) for x in args]
    else:
        args = [x.astype(np.int64, copy=False) for x in args]
    return np.concatenate(args, axis=1)


SPEC = OpSpec(Op.CONCAT, ConcatAttrs, None, _shape, _range, lambda a, args: args[0].frac,
              _evaluate, "concat", arity=lambda a: a.n_args)
