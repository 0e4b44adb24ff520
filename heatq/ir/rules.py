"""Where the rules live now: each op's shape / range / frac rule is in its module of
:mod:`heatq.ir.ops` (``SPECS[op]``).  This module keeps the names other code imports."""

from __future__ import annotations

from .errors import IRError
from .ops.base import Arg, Range, Shape
from .ops.weighted import affine_range, weight_bound
from .requant import requant_scalar

__all__ = ["IRError", "Arg", "Range", "Shape", "affine_range", "weight_bound", "requant_scalar"]
