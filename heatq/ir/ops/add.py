"""ADD: n-ary sum with alignment shifts, ``y = sum_i (x_i << shifts[i])``, exact."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import IRError
from . import Op
from .base import INT64_MAX_WIDTH, Arg, OpSpec, Range, Shape, pyints


@dataclass(frozen=True, eq=False)
class AddAttrs:
    """``shifts``: one left shift ``>= 0`` per argument (at least one), so the node has
    ``len(shifts)`` arguments.  Every argument has the same shape and binary point; the output
    keeps them.  The sum is exact: its type (signed iff the range reaches below 0) is wide
    enough for every value, so no target can overflow."""

    shifts: tuple[int, ...]

    def __post_init__(self) -> None:
        raw = self.shifts
        if isinstance(raw, (str, bytes)) or not hasattr(raw, "__iter__"):
            raise IRError(f"add: shifts must be a tuple of integers, got {raw!r}")
        raw = tuple(raw)
        if not raw:
            raise IRError("add: shifts must name at least one argument, got ()")
        for i, s in enumerate(raw):
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
                raise IRError(f"add: shifts[{i}] must be an integer, got {s!r}")
            if s < 0:
                raise IRError(f"add: shifts[{i}] = {int(s)} is negative (shifts must be >= 0)")
        object.__setattr__(self, "shifts", tuple(int(s) for s in raw))


def _shape(a: AddAttrs, args: list[Arg]) -> Shape:
    first = args[0]
    for i, x in enumerate(args[1:], 1):
        if x.shape != first.shape:
            raise IRError(f"argument {i} has shape {x.shape} but argument 0 has {first.shape} "
                          "(every argument must have the same shape)")
        if x.frac != first.frac:
            raise IRError(f"argument {i} has frac {x.frac} but argument 0 has frac "
                          f"{first.frac} (align the binary points with the shifts)")
    return first.shape


def _range(a: AddAttrs, args: list[Arg]) -> Range:
    return (sum(x.lo << s for x, s in zip(args, a.shifts)),
            sum(x.hi << s for x, s in zip(args, a.shifts)))


def _bound(node, arg_nodes) -> int:
    """A bound on |every term and partial sum| (any order)."""
    return sum(max(-n.lo, n.hi) << s for n, s in zip(arg_nodes, node.attrs.shifts))


def _evaluate(node, args: list[np.ndarray], arg_nodes) -> np.ndarray:
    wide = (_bound(node, arg_nodes) >= (1 << INT64_MAX_WIDTH)
            or any(x.dtype == object for x in args))
    out = None
    for x, s in zip(args, node.attrs.shifts):
        x = pyints(x) if wide else x.astype(np.int64, copy=False)
        term = x << s if wide else np.left_shift(x, np.int64(s))
        out = term if out is None else out + term
    return out


SPEC = OpSpec(Op.ADD, AddAttrs, None, _shape, _range, lambda a, args: args[0].frac, _evaluate,
              "add", arity=lambda a: len(a.shifts))
