"""What every op module shares: the :class:`OpSpec` record, the :class:`Arg` a rule sees,
read-only integer attribute arrays and exact integer helpers for the evaluators."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import IRError
from ..types import IntType

Shape = tuple[int, ...]
Range = tuple[int, int]
INT64_MAX_WIDTH = 62
FLOAT64_EXACT = 1 << 53


@dataclass(frozen=True)
class Arg:
    """What a rule knows about one argument: its shape, integer range and binary point."""

    shape: Shape
    lo: int
    hi: int
    frac: int


@dataclass(frozen=True)
class OpSpec:
    """One op, completely: its ``Op`` member, attribute class, number of arguments (``n_args``,
    or ``None`` for a variadic op whose ``arity(attrs)`` gives it), the
    shape / range / frac rules ``(attrs, list[Arg]) -> ...`` (raising IRError on a contract
    violation), ``evaluate(node, arg_values, arg_nodes) -> values [N, *node.shape]`` (None for
    INPUT, which the interpreter reads from the batch) and the anchor of its section in
    docs/ir.md."""

    op: Any
    attrs_cls: type
    n_args: int | None
    shape: Callable[[Any, list[Arg]], Shape]
    range: Callable[[Any, list[Arg]], Range]
    frac: Callable[[Any, list[Arg]], int]
    evaluate: Callable[[Any, list[np.ndarray], list[Any]], np.ndarray] | None
    doc_anchor: str
    arity: Callable[[Any], int] | None = None

    def __post_init__(self) -> None:
        if (self.n_args is None) == (self.arity is None):
            raise ValueError(f"{self.op}: give exactly one of n_args and arity")

    def n_args_for(self, attrs: Any) -> int:
        """How many arguments a node with these attributes takes."""
        return self.n_args if self.arity is None else int(self.arity(attrs))


def same_range(a, args: list[Arg]) -> Range:
    return args[0].lo, args[0].hi


def same_frac(a, args: list[Arg]) -> int:
    return args[0].frac


def zero_frac(a, args: list[Arg]) -> int:
    return 0


def pyints(v: np.ndarray) -> np.ndarray:
    """An object array of Python ints with the values of integer array ``v``."""
    out = np.empty(v.shape, dtype=object)
    out.ravel()[:] = [int(e) for e in v.ravel()] if v.size else []
    return out


def frozen_array(a, what: str, dtype, allowed: tuple[int, ...] | None = None) -> np.ndarray:
    """A read-only copy of integer array ``a`` as ``dtype``; raises IRError instead of casting
    anything that is not an integer, does not fit ``dtype``, or is not in ``allowed``."""
    raw = np.asarray(a)
    if raw.dtype == object:
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                   for v in raw.ravel()):
            raise IRError(f"{what} holds non-integer values")
    elif raw.dtype.kind == "f":  # accepted only when every value is an exact integer
        if not (np.all(np.isfinite(raw)) and np.array_equal(raw, np.round(raw))):
            raise IRError(f"{what} holds non-integer values")
        raw = pyints(raw)
    elif raw.dtype.kind not in "iub":
        raise IRError(f"{what} holds non-integer values (dtype {raw.dtype})")
    if raw.size:
        info = np.iinfo(dtype)
        lo, hi = int(raw.min()), int(raw.max())
        if allowed is not None and not set(np.unique(raw).tolist()) <= set(allowed):
            raise IRError(f"{what} values must be " + " or ".join(map(str, allowed))
                          + f", found {lo}..{hi}")
        if lo < info.min or hi > info.max:
            raise IRError(f"{what} values {lo}..{hi} do not fit {np.dtype(dtype).name}")
    out = np.array(raw, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


def value_dtype(t: IntType):
    """The NumPy dtype that holds every value of ``t`` without wrapping."""
    return np.int64 if t.width <= INT64_MAX_WIDTH else object


def as_dtype(v: np.ndarray, t: IntType) -> np.ndarray:
    """``v`` in the value dtype of ``t`` (int64, or an object array of Python ints)."""
    if value_dtype(t) is object:
        return pyints(v)
    return v.astype(np.int64, copy=False)


def fits_int64(*values: int) -> bool:
    return all(-(1 << INT64_MAX_WIDTH) < int(v) < (1 << INT64_MAX_WIDTH) for v in values)
