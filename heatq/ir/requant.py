"""REQUANT's integer semantics, written once.

``REQUANT(shift, lo, hi, rounding, overflow)`` maps an integer ``v`` to

    r = (v + round_const) >> shift      (floor shift; shift > 0)
    r = v << -shift                     (shift <= 0; round_const is 0)
    y = min(max(r, lo), hi)             (Overflow.SATURATE)
    y = lo + (r - lo) mod (hi - lo + 1) (Overflow.WRAP; hi - lo + 1 is a power of two)

with ``round_const = 2**(shift-1)`` for ``Rounding.HALF_UP`` and ``shift > 0``, else 0.
``Rounding.HALF_EVEN`` (``shift > 0``) rounds to nearest with ties to even:

    r = (v + 2**(shift-1) - 1 + ((v >> shift) & 1)) >> shift

(the tie bit is the lowest kept bit of ``v``, so its rounding increment depends on the data
and no constant can be folded upstream: ``round_const`` is 0 and a target renders the rule).
Every consumer calls these functions: the range rule and the interpreter directly, the
C-like targets render a :class:`RequantPlan`, the Verilog netlist builds cells from one.
``attrs`` is anything with ``shift``, ``lo``, ``hi``, ``rounding`` and ``overflow`` (a
:class:`~heatq.ir.RequantAttrs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .types import Overflow, Rounding

INT64_MAX_WIDTH = 62


def rounding_const(attrs) -> int:
    """The constant REQUANT adds before dropping ``shift`` bits: ``2**(shift-1)`` for HALF_UP
    with ``shift > 0``, else 0."""
    if attrs.shift > 0 and attrs.rounding is Rounding.HALF_UP:
        return 1 << (attrs.shift - 1)
    return 0


def half_even_increment(attrs) -> int:
    """HALF_EVEN's constant part, ``2**(shift-1) - 1`` (``shift > 0``; else 0): the rounded
    value is ``(v + half_even_increment + ((v >> shift) & 1)) >> shift``."""
    if attrs.shift > 0 and attrs.rounding is Rounding.HALF_EVEN:
        return (1 << (attrs.shift - 1)) - 1
    return 0


def _shifted(v: int, attrs) -> int:
    """``(v + round_const) >> shift`` (or ``v << -shift``) of one Python int: no clip."""
    if attrs.shift > 0:
        if attrs.rounding is Rounding.HALF_EVEN:
            return (v + half_even_increment(attrs) + ((v >> attrs.shift) & 1)) >> attrs.shift
        return (v + rounding_const(attrs)) >> attrs.shift
    return v << -attrs.shift


def _fit(r: int, attrs) -> int:
    if attrs.overflow is Overflow.SATURATE:
        return min(max(r, attrs.lo), attrs.hi)
    return attrs.lo + (r - attrs.lo) % (attrs.hi - attrs.lo + 1)


def requant_scalar(v: int, attrs) -> int:
    """REQUANT of one Python int (exact: Python ints never wrap)."""
    return _fit(_shifted(int(v), attrs), attrs)


def _fits_int64(*values: int) -> bool:
    return all(-(1 << INT64_MAX_WIDTH) < int(v) < (1 << INT64_MAX_WIDTH) for v in values)


def _pyints(v: np.ndarray) -> np.ndarray:
    out = np.empty(v.shape, dtype=object)
    out.ravel()[:] = [int(e) for e in v.ravel()] if v.size else []
    return out


def requant_array(v: np.ndarray, attrs) -> np.ndarray:
    """REQUANT of every element of integer array ``v`` (int64 or object of Python ints).

    int64 arithmetic is used only when every intermediate provably fits (the rounded or
    left-shifted values and the op's constants); otherwise Python ints.  The result has the
    dtype the arithmetic used (int64 or object); callers cast to the node's value dtype."""
    v = np.asarray(v)
    if v.dtype != object:
        v = v.astype(np.int64, copy=False)
        biggest = (max(abs(int(v.min())), abs(int(v.max()))) + 1) if v.size else 1
        biggest <<= max(-attrs.shift, 0)
        safe = (_fits_int64(biggest, attrs.lo, attrs.hi, attrs.hi - attrs.lo + 1)
                and attrs.shift < INT64_MAX_WIDTH)
        if not safe:
            v = _pyints(v)
    rc = rounding_const(attrs)
    if rc:
        v = v + rc
    if attrs.shift > 0 and attrs.rounding is Rounding.HALF_EVEN:
        v = v + (half_even_increment(attrs) + ((v >> attrs.shift) & 1))
    if attrs.shift > 0:
        v = v >> attrs.shift
    elif attrs.shift < 0:
        v = v << (-attrs.shift)
    if attrs.overflow is Overflow.SATURATE:
        return np.minimum(np.maximum(v, attrs.lo), attrs.hi)
    return attrs.lo + (v - attrs.lo) % (attrs.hi - attrs.lo + 1)


@dataclass(frozen=True)
class RequantPlan:
    """How one REQUANT node computes, for an argument in ``src_lo..src_hi`` (Python ints).

    ``round_const``: added first (0: nothing to add); ``shift``: then floor shift right by
    ``shift`` (left by ``-shift`` when negative); ``q_lo..q_hi``: the exact range after rounding
    and shift, before the clip / wrap.  SATURATE: ``clip_lo`` (``q_lo < lo``: a lower clip is
    needed), ``clip_hi`` (``q_hi > hi``); both False for WRAP.  WRAP: ``wrap`` True,
    ``wrap_bits`` = m with ``2**m == hi - lo + 1`` (0 for SATURATE), ``wrap_needed``: some
    value in ``q_lo..q_hi`` lies outside ``lo..hi`` (else the wrap is the identity).
    ``lo``, ``hi``: the attribute bounds; ``out_lo..out_hi``: the exact output range."""

    round_const: int
    shift: int
    q_lo: int
    q_hi: int
    clip_lo: bool
    clip_hi: bool
    wrap: bool
    wrap_bits: int
    wrap_needed: bool
    lo: int
    hi: int
    out_lo: int
    out_hi: int


def requant_plan(attrs, src_lo: int, src_hi: int) -> RequantPlan:
    """The :class:`RequantPlan` of ``attrs`` for an argument in ``src_lo..src_hi``."""
    q_lo, q_hi = _shifted(int(src_lo), attrs), _shifted(int(src_hi), attrs)  # monotone
    wrap = attrs.overflow is Overflow.WRAP
    inside = attrs.lo <= q_lo and q_hi <= attrs.hi
    if wrap:
        out = (q_lo, q_hi) if inside else (attrs.lo, attrs.hi)
    else:
        out = (_fit(q_lo, attrs), _fit(q_hi, attrs))
    span = attrs.hi - attrs.lo + 1
    return RequantPlan(
        round_const=rounding_const(attrs), shift=attrs.shift, q_lo=q_lo, q_hi=q_hi,
        clip_lo=not wrap and q_lo < attrs.lo, clip_hi=not wrap and q_hi > attrs.hi,
        wrap=wrap, wrap_bits=(span.bit_length() - 1) if wrap else 0,
        wrap_needed=wrap and not inside, lo=attrs.lo, hi=attrs.hi,
        out_lo=out[0], out_hi=out[1])


__all__ = ["rounding_const", "half_even_increment", "requant_scalar", "requant_array", "RequantPlan", "requant_plan"]
