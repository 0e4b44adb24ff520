"""BIT: one two's-complement bit of the integer, ``y = (x >> bit) & 1``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import IRError
from ..types import IntType
from . import Op
from .base import Arg, OpSpec, Range, Shape, zero_frac


@dataclass(frozen=True, eq=False)
class BitAttrs:
    """``bit``: the bit index, ``0 <= bit < width`` of the argument's type (the sign bit of a
    signed argument is ``width - 1``).  The output is that bit of the stored integer ``q``
    (two's complement), unsigned 1 bit, frac 0."""

    bit: int

    def __post_init__(self) -> None:
        if isinstance(self.bit, bool) or not isinstance(self.bit, (int, np.integer)):
            raise IRError(f"bit: bit must be an integer, got {self.bit!r}")
        if self.bit < 0:
            raise IRError(f"bit: bit = {int(self.bit)} is negative")
        object.__setattr__(self, "bit", int(self.bit))


def _shape(a: BitAttrs, args: list[Arg]) -> Shape:
    x = args[0]
    t = IntType.for_range(x.lo, x.hi, x.frac)
    if a.bit >= t.width:
        raise IRError(f"bit = {a.bit} is not a bit of the {t.c_style()} argument "
                      f"(range {x.lo}..{x.hi}: bits 0..{t.width - 1})")
    return x.shape


def _range(a: BitAttrs, args: list[Arg]) -> Range:
    lo, hi = args[0].lo >> a.bit, args[0].hi >> a.bit
    if lo == hi:  # lo..hi inside one aligned block of 2**bit: the bit is fixed
        return lo & 1, lo & 1
    return 0, 1  # two adjacent blocks are both reached: the bit takes both values


def _evaluate(node, args: list[np.ndarray], arg_nodes) -> np.ndarray:
    x = args[0]
    if x.dtype == object:
        return ((x >> node.attrs.bit) & 1).astype(np.int64)
    return np.bitwise_and(np.right_shift(x.astype(np.int64, copy=False),
                                         np.int64(node.attrs.bit)), 1)


SPEC = OpSpec(Op.BIT, BitAttrs, 1, _shape, _range, zero_frac, _evaluate, "bit")
