"""INPUT: the graph's input, per-sample ``shape``, every element an integer in ``lo..hi``."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import IRError
from . import Op
from .base import Arg, OpSpec, Shape


@dataclass(frozen=True, eq=False)
class InputAttrs:
    """Graph input: per-sample ``shape``; every element is an integer in ``lo..hi`` at ``frac``."""

    shape: tuple[int, ...]
    lo: int
    hi: int
    frac: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))


def _shape(a: InputAttrs, args: list[Arg]) -> Shape:
    if any(s < 1 for s in a.shape):
        raise IRError(f"input shape {a.shape} has a non-positive dimension")
    if a.lo > a.hi:
        raise IRError(f"input range {a.lo}..{a.hi} is empty")
    return a.shape


SPEC = OpSpec(Op.INPUT, InputAttrs, 0, _shape, lambda a, args: (a.lo, a.hi),
              lambda a, args: a.frac, None, "input")
