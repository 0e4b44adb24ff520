"""Integer types of the IR: signedness, bit width and binary point.

A value of type ``IntType(signed, width, frac)`` is stored as an integer ``q`` and means
``q * 2**-frac``.  Signed types are two's complement: ``-2**(width-1) <= q <= 2**(width-1)-1``;
unsigned types hold ``0 <= q <= 2**width - 1``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Rounding(enum.Enum):
    """How REQUANT drops low bits: FLOOR (toward -inf), HALF_UP (nearest, ties toward +inf) or
    HALF_EVEN (nearest, ties to the even neighbour: ONNX / QONNX ``ROUND``, NumPy's ``rint``)."""

    FLOOR = "floor"
    HALF_UP = "half_up"
    HALF_EVEN = "half_even"


class Overflow(enum.Enum):
    """How REQUANT fits a value into its output range: clip to it, or wrap modulo 2**width."""

    SATURATE = "saturate"
    WRAP = "wrap"


@dataclass(frozen=True)
class IntType:
    """A fixed-point integer type: ``signed`` two's complement or unsigned, ``width`` bits,
    value = integer * 2**-frac."""

    signed: bool
    width: int
    frac: int = 0

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"IntType width must be >= 1, got {self.width}")

    @property
    def min(self) -> int:
        """Smallest representable integer."""
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        """Largest representable integer."""
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    def holds(self, lo: int, hi: int) -> bool:
        """True when every integer in ``lo..hi`` is representable."""
        return self.min <= lo and hi <= self.max

    @staticmethod
    def for_range(lo: int, hi: int, frac: int = 0) -> "IntType":
        """The narrowest type holding ``lo..hi``: unsigned when ``lo >= 0``, else signed."""
        lo, hi = int(lo), int(hi)
        if lo > hi:
            raise ValueError(f"empty range {lo}..{hi}")
        if lo >= 0:
            return IntType(False, max(1, hi.bit_length()), frac)
        width = max((-lo - 1).bit_length(), hi.bit_length() if hi > 0 else 0) + 1
        return IntType(True, width, frac)

    def c_style(self) -> str:
        """Short human form, e.g. ``s9.3`` (signed, 9 bits, 3 fraction bits) or ``u4.0``."""
        return f"{'s' if self.signed else 'u'}{self.width}.{self.frac}"
