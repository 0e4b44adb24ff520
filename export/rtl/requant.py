"""Mappers for the elementwise tails: REQUANT from its :class:`~heatq.ir.requant.RequantPlan`,
and THRESHOLD.

REQUANT (its HALF_UP rounding constant already added upstream, so the plan's ``round_const``
is 0):

* shift ``s > 0``: drop the ``s`` low bits (floor shift of a two's complement value is
  wiring); HALF_EVEN first adds ``2**(s-1) - 1`` and the tie bit ``v[s]`` (one adder with a
  carry-in: ``(v + (2**(s-1) - 1) + v[s]) >>> s``) at ``width(v) + 1`` bits, which hold the
  sum, and is the constant 0 when ``|v| / 2**s <= 1/2`` for every value of ``v``'s type;
  ``s < 0``: append ``-s`` zero bits;
* SATURATE: a lower clip when ``clip_lo`` (the sign bit when ``lo == 0`` and the value is
  signed, else a comparator), an upper clip when ``clip_hi`` (an OR of the high bits when
  ``hi + 1`` is a power of two and ``lo >= 0``, else a comparator); a bound that the shifted
  value's type cannot even represent makes its test a constant;
* WRAP to ``lo..hi`` with ``hi - lo + 1 = 2**m``: ``y = lo + ((q - lo) mod 2**m)``: wiring of the
  low ``m`` bits when ``lo mod 2**m == 0`` and ``lo`` is 0 or ``-2**(m-1)``, else an ``m``-bit
  subtraction and an addition of ``lo``.

Every function returns a value of exactly ``yt.width`` bits, two's complement when
``yt.signed``.
"""

from __future__ import annotations

from heatq.ir import IntType, Rounding
from heatq.ir.requant import RequantPlan, requant_plan

from . import netlist as nl


def _shift(m: nl.Module, v: nl.Signal, shift: int, tag: str) -> nl.Signal | nl.Const:
    """``v >> shift`` (floor) or ``v << -shift`` as a named signal (``q_<tag>``)."""
    wv = v.width
    if shift > 0:
        if wv > shift:
            return m.comb(f"q_{tag}", nl.bits(v, wv - 1, shift), v.signed)
        if v.signed:
            return m.comb(f"q_{tag}", nl.bit(v, wv - 1), True)
        return nl.Const(1, 0)  # every bit shifted out of an unsigned value
    if shift < 0:
        return m.comb(f"q_{tag}", nl.cat(nl.Const(-shift, 0), v), v.signed)
    return v


def _half_even_shift(m: nl.Module, v: nl.Signal, shift: int, tag: str) -> nl.Signal | nl.Const:
    """``v / 2**shift`` (``shift > 0``) rounded half to even: ``rnd_<tag> = v + (2**(s-1) - 1)
    + v[s]`` at ``W = width(v) + 1`` bits (``v`` sign- or zero-extended: the sum's magnitude
    stays below ``2**(W-1)`` signed, ``2**W`` unsigned), then ``q_<tag> = rnd[W-1:s]``."""
    wv = v.width
    if shift > wv or (v.signed and shift == wv):
        return nl.Const(1, 0)  # |v| / 2**s < 1/2, or exactly -1/2, which rounds to 0 (even)
    total: nl.Value = nl.shifted(v, 0, 0, wv)
    inc = (1 << (shift - 1)) - 1
    if inc:
        total = nl.Add(total, nl.Const(wv + 1, inc))
    if shift < wv:  # bit s of an unsigned s-bit value is 0
        total = nl.Add(total, nl.cat(nl.bit(v, shift), nl.Const(wv, 0)))
    rnd = m.comb(f"rnd_{tag}", total, v.signed)
    return m.comb(f"q_{tag}", nl.bits(rnd, wv, shift), v.signed)


def _fits(c: int, width: int, signed: bool) -> bool:
    return (-(1 << (width - 1)) <= c < (1 << (width - 1))) if signed else 0 <= c < (1 << width)


def _below(q: nl.Signal, lo: int) -> nl.Value:
    """1 when ``q < lo`` (``q``'s type holds some value below ``lo``)."""
    wq, sq = q.width, q.signed
    if not _fits(lo, wq, sq):
        return nl.Const(1, 1)  # lo above everything q can hold
    if sq and lo == 0:
        return nl.bit(q, wq - 1)
    return nl.Compare("<", q, nl.Const(wq, lo), sq)


def _above(q: nl.Signal, lo: int, hi: int) -> nl.Value:
    """1 when ``q > hi`` (``q``'s type holds some value above ``hi``)."""
    wq, sq = q.width, q.signed
    if not _fits(hi, wq, sq):
        return nl.Const(1, 1)  # hi below everything q can hold
    k = (hi + 1).bit_length() - 1
    pow2 = hi >= 0 and (1 << k) == hi + 1 and lo >= 0
    if pow2 and not sq and k < wq:
        return nl.Reduce("|", nl.bits(q, wq - 1, k))
    if pow2 and sq and k <= wq - 2:
        return nl.Reduce("|", nl.bits(q, wq - 2, k))
    return nl.Compare(">", q, nl.Const(wq, hi), sq)


def _low_bits(q: nl.Signal | nl.Const, width: int) -> nl.Value:
    if isinstance(q, nl.Const):
        return nl.Const(width, q.value)
    return nl.shifted(q, 0, 0, width - 1)


def _clip(q, plan: RequantPlan, wy: int) -> nl.Value:
    val = _low_bits(q, wy)
    if isinstance(q, nl.Const):  # a constant value: clip it here
        return nl.Const(wy, min(max(q.value, plan.lo), plan.hi))
    if plan.clip_hi:
        cond = _above(q, plan.lo, plan.hi)
        val = nl.Const(wy, plan.hi) if isinstance(cond, nl.Const) else \
            nl.Mux(cond, nl.Const(wy, plan.hi), val)
    if plan.clip_lo:
        cond = _below(q, plan.lo)
        val = nl.Const(wy, plan.lo) if isinstance(cond, nl.Const) else \
            nl.Mux(cond, nl.Const(wy, plan.lo), val)
    return val


def wrap_cells(m: nl.Module, q, plan: RequantPlan, wy: int, tag: str) -> nl.Value:
    """``lo + ((q - lo) mod 2**m)`` in ``wy`` bits."""
    mb = plan.wrap_bits
    if mb == 0:  # a single value
        return nl.Const(wy, plan.lo)
    if not plan.wrap_needed:
        return _low_bits(q, wy)  # q already inside lo..hi
    low_m = _low_bits(q, mb)
    lo_m = plan.lo & ((1 << mb) - 1)
    if wy == mb and plan.lo in (0, -(1 << (mb - 1))):
        return low_m  # the low m bits, read unsigned (lo = 0) or signed (lo = -2**(m-1))
    d = m.comb(f"w_{tag}", nl.Sub(low_m, nl.Const(mb, lo_m)) if lo_m else low_m)
    ext = nl.cat(d, nl.Const(wy - mb, 0)) if wy > mb else nl.bits(d, wy - 1, 0)
    return nl.Add(ext, nl.Const(wy, plan.lo)) if plan.lo else ext


def requant_cells(m: nl.Module, v: nl.Signal, plan: RequantPlan, yt: IntType,
                  tag: str, half_even: bool = False) -> nl.Value:
    """The REQUANT of ``v`` (its plan's ``round_const`` already added upstream; ``half_even``:
    the node rounds half to even, which this adds): a ``yt.width``-bit value."""
    if plan.round_const:
        raise ValueError("requant_cells: the rounding constant belongs to the product")
    if half_even and plan.shift > 0:
        q = _half_even_shift(m, v, plan.shift, tag)
    else:
        q = _shift(m, v, plan.shift, tag)
    if plan.wrap:
        return wrap_cells(m, q, plan, yt.width, tag)
    return _clip(q, plan, yt.width)


def spec_requant_cells(m: nl.Module, v: nl.Signal, spec, lo: int, hi: int, yt: IntType,
                       tag: str) -> nl.Value:
    """:func:`requant_cells` of ``v`` (value range ``lo..hi``) for ``spec``: the REQUANT's
    attributes (a :class:`~heatq_export.verilog_layers.RequantSpec`, rounding FLOOR with any
    HALF_UP constant upstream, or HALF_EVEN)."""
    return requant_cells(m, v, requant_plan(spec, lo, hi), yt, tag,
                         spec.rounding is Rounding.HALF_EVEN)


def threshold_cells(x: nl.Value, signed: bool, thresholds, lo: int, hi: int,
                    yt: IntType) -> nl.Value:
    """``#{k : thresholds[k] <= x}`` for ``x`` (two's complement when ``signed``) in ``lo..hi`` (``thresholds`` sorted
    non-decreasing): a chain of comparators from the highest threshold down, each giving its
    count; thresholds at or below ``lo`` always count, those above ``hi`` never.  Returns a
    ``yt.width``-bit unsigned value."""
    ts = [int(t) for t in thresholds]
    base = sum(1 for t in ts if t <= lo)
    # build from the top so the first true test wins: x >= t_T-1 ? T : x >= t_T-2 ? ... : base
    val = nl.Const(yt.width, base)
    for k, t in enumerate(ts):
        if lo < t <= hi:
            val = nl.Mux(nl.Compare("<", x, nl.Const(x.width, t), signed), val,
                         nl.Const(yt.width, k + 1))
    return val
