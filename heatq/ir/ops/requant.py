"""REQUANT: rescale by a power of two, round, then saturate or wrap (semantics in
:mod:`heatq.ir.requant`, which every consumer calls)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import IRError
from ..requant import requant_array, requant_plan
from ..types import Overflow, Rounding
from . import Op
from .base import Arg, OpSpec, Range, Shape


@dataclass(frozen=True, eq=False)
class RequantAttrs:
    """Rescale by ``2**-shift`` (right shift when ``shift > 0``), round, then fit into ``lo..hi``.

    With ``Overflow.WRAP``, ``hi - lo + 1`` must be a power of two (a full ``width``-bit range).
    A ReLU is ``lo = 0`` with ``Overflow.SATURATE``.
    """

    shift: int
    lo: int
    hi: int
    rounding: Rounding = Rounding.HALF_UP
    overflow: Overflow = Overflow.SATURATE


def _shape(a: RequantAttrs, args: list[Arg]) -> Shape:
    if a.lo > a.hi:
        raise IRError(f"requant range {a.lo}..{a.hi} is empty")
    if a.overflow is Overflow.WRAP:
        span = a.hi - a.lo + 1
        if span & (span - 1):
            raise IRError(f"requant WRAP needs a power-of-two range, got {a.lo}..{a.hi}")
    return args[0].shape


def _range(a: RequantAttrs, args: list[Arg]) -> Range:
    p = requant_plan(a, args[0].lo, args[0].hi)
    return p.out_lo, p.out_hi


def _evaluate(node, args: list[np.ndarray], arg_nodes) -> np.ndarray:
    return requant_array(args[0], node.attrs)


SPEC = OpSpec(Op.REQUANT, RequantAttrs, 1, _shape, _range,
              lambda a, args: args[0].frac - a.shift, _evaluate, "requant")
