"""The IR's operations: one ``Op`` enum member and one frozen attribute class per operation.

Arrays in attributes are integer NumPy arrays (int64, or uint8 for codebooks) and are treated
as read-only.  The integer semantics of every op are specified in ``docs/ir.md``; the
reference implementation is :mod:`heatq.ir.interp`; shape, range and type rules are in
:mod:`heatq.ir.rules`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields

import numpy as np

from .errors import IRError
from .types import Overflow, Rounding


class Op(enum.Enum):
    """Operation kinds.  The value is the stable name used in the JSON file format."""

    INPUT = "input"
    CONV2D = "conv2d"
    DENSE = "dense"
    REQUANT = "requant"
    MAXPOOL2D = "maxpool2d"
    FLATTEN = "flatten"
    SIGN_BITS = "sign_bits"
    HAMMING_DECODE = "hamming_decode"


def _pyints_of(a: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape, dtype=object)
    out.ravel()[:] = [int(v) for v in a.ravel()] if a.size else []
    return out


def _frozen_array(a, what: str, dtype, allowed: tuple[int, ...] | None = None) -> np.ndarray:
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
        raw = _pyints_of(raw)
    elif raw.dtype.kind not in "iub":
        raise IRError(f"{what} holds non-integer values (dtype {raw.dtype})")
    if raw.size:
        info = np.iinfo(dtype)
        lo, hi = int(raw.min()), int(raw.max())
        if allowed is not None and not set(np.unique(raw).tolist()) <= set(allowed):
            raise IRError(f"{what} values must be " + " or ".join(map(str, allowed)) + f", found {lo}..{hi}")
        if lo < info.min or hi > info.max:
            raise IRError(f"{what} values {lo}..{hi} do not fit {np.dtype(dtype).name}")
    out = np.array(raw, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class InputAttrs:
    """Graph input: per-sample ``shape``; every element is an integer in ``lo..hi`` at ``frac``."""

    shape: tuple[int, ...]
    lo: int
    hi: int
    frac: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))


@dataclass(frozen=True, eq=False)
class Conv2dAttrs:
    """2-D convolution (cross-correlation, as in PyTorch) with constant integer weights.

    ``weight``: int64 [C_out, C_in, K, K], each in ``-(2**(w_bits-1)-1) .. 2**(w_bits-1)-1``
    (signed, symmetric narrow range) and scaled by ``2**-w_frac``.  ``bias``: int64 [C_out] at the
    output's binary point (input frac + w_frac).  Zero padding of ``padding`` pixels on each side.
    """

    weight: np.ndarray
    bias: np.ndarray
    w_bits: int
    w_frac: int = 0
    stride: int = 1
    padding: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _frozen_array(self.weight, "weight", np.int64))
        object.__setattr__(self, "bias", _frozen_array(self.bias, "bias", np.int64))


@dataclass(frozen=True, eq=False)
class DenseAttrs:
    """Fully connected layer: ``weight`` int64 [out, in] (signed ``w_bits``, scale ``2**-w_frac``),
    ``bias`` int64 [out] at the output's binary point."""

    weight: np.ndarray
    bias: np.ndarray
    w_bits: int
    w_frac: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _frozen_array(self.weight, "weight", np.int64))
        object.__setattr__(self, "bias", _frozen_array(self.bias, "bias", np.int64))


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


@dataclass(frozen=True, eq=False)
class MaxPool2dAttrs:
    """Max pooling over ``kernel`` x ``kernel`` windows with ``stride``, no padding (floor mode)."""

    kernel: int = 2
    stride: int = 2


@dataclass(frozen=True, eq=False)
class FlattenAttrs:
    """Flatten the per-sample tensor in C order (channel, row, column), as ``torch.flatten``."""


@dataclass(frozen=True, eq=False)
class SignBitsAttrs:
    """Code bits: ``1`` where the value is strictly greater than zero, else ``0``."""


@dataclass(frozen=True, eq=False)
class HammingDecodeAttrs:
    """Class index of the codebook row nearest in Hamming distance; ties go to the lowest index.

    ``codebook``: uint8 [K, L] with entries in {0, 1}.
    """

    codebook: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "codebook", _frozen_array(self.codebook, "codebook", np.uint8, (0, 1)))


ATTRS_CLASS: dict[Op, type] = {
    Op.INPUT: InputAttrs,
    Op.CONV2D: Conv2dAttrs,
    Op.DENSE: DenseAttrs,
    Op.REQUANT: RequantAttrs,
    Op.MAXPOOL2D: MaxPool2dAttrs,
    Op.FLATTEN: FlattenAttrs,
    Op.SIGN_BITS: SignBitsAttrs,
    Op.HAMMING_DECODE: HammingDecodeAttrs,
}


def attr_fields(attrs) -> list[str]:
    """Names of the attribute fields of an attrs instance, in declaration order."""
    return [f.name for f in fields(attrs)]


__all__ = [
    "Op", "ATTRS_CLASS", "attr_fields", "InputAttrs", "Conv2dAttrs", "DenseAttrs",
    "RequantAttrs", "MaxPool2dAttrs", "FlattenAttrs", "SignBitsAttrs", "HammingDecodeAttrs",
]
