"""SIGN_BITS: code bits, ``1`` where the value is strictly greater than zero, else ``0``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import Op
from .base import Arg, OpSpec, Range, zero_frac


@dataclass(frozen=True, eq=False)
class SignBitsAttrs:
    """Code bits: ``1`` where the value is strictly greater than zero, else ``0``."""


def _range(a, args: list[Arg]) -> Range:
    return int(args[0].lo > 0), int(args[0].hi > 0)


def _evaluate(node, args: list[np.ndarray], arg_nodes) -> np.ndarray:
    return (args[0] > 0).astype(np.int64)


SPEC = OpSpec(Op.SIGN_BITS, SignBitsAttrs, 1, lambda a, args: args[0].shape, _range, zero_frac,
              _evaluate, "sign_bits")
