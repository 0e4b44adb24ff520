"""Signed-digit forms of integer weights (the first step of :func:`heatq.lower.cmvm.lower_cmvm`).

A digit list ``[(shift, sign)]`` (``sign`` +1 or -1) stands for ``sum(sign << shift)``.
"""

from __future__ import annotations

NO_TRAILING_ZEROS = 1 << 30  # trailing_zeros(0): larger than any real shift


def trailing_zeros(c: int) -> int:
    """The number of trailing zero bits of the integer ``c`` (two's complement, either sign);
    :data:`NO_TRAILING_ZEROS` for 0 (a constant 0 lets any shift pass)."""
    return (c & -c).bit_length() - 1 if c else NO_TRAILING_ZEROS


def csd(w: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``w``: ``[(shift, sign)]`` with ``sum(sign << shift) == w``,
    no two adjacent shifts (non-adjacent form, the fewest nonzero digits)."""
    w = int(w)
    out = []
    s = 0
    while w:
        if w & 1:
            d = 2 - (w & 3)  # +1 when w = 1 mod 4, -1 when w = 3 mod 4
            out.append((s, d))
            w -= d
        w >>= 1
        s += 1
    return out


def digits(w: int) -> list[tuple[int, int]]:
    """The signed digits used for weight ``w``: its binary digits (all of ``w``'s sign) when
    they are no more than the CSD digits, else CSD.  Among minimal-digit forms this picks
    the one without subtractions (e.g. 3 = 2 + 1, not 4 - 1), which keeps partial sums of
    unsigned inputs unsigned and gives the sharing step more equal-sign patterns (measured:
    ~3% fewer adders and carry bits than plain CSD on 4-bit weights)."""
    w = int(w)
    d = csd(w)
    a = abs(w)
    if bin(a).count("1") <= len(d):
        g = 1 if w > 0 else -1
        return [(s, g) for s in range(a.bit_length()) if a >> s & 1]
    return d
