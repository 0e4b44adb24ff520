"""heatq.ir.requant: the REQUANT semantics every consumer calls, against a naive model.

``requant_plan`` is checked by brute force: over every integer of a small source range the
flags and ranges of the plan must describe exactly what ``requant_scalar`` does.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from heatq.ir import Overflow, RequantAttrs, Rounding
from heatq.ir.requant import requant_array, requant_plan, requant_scalar, rounding_const
from test_ir_interp import SETTINGS, naive_requant_scalar


@st.composite
def requants(draw):
    shift = draw(st.integers(-3, 6))
    rounding = draw(st.sampled_from(list(Rounding)))
    overflow = draw(st.sampled_from(list(Overflow)))
    if overflow is Overflow.WRAP:
        lo = draw(st.integers(-40, 40))
        hi = lo + (1 << draw(st.integers(0, 6))) - 1
    else:
        lo = draw(st.integers(-60, 60))
        hi = draw(st.integers(lo, lo + 80))
    a = RequantAttrs(shift, lo, hi, rounding, overflow)
    src_lo = draw(st.integers(-300, 300))
    src_hi = draw(st.integers(src_lo, src_lo + 300))
    return a, src_lo, src_hi


@SETTINGS
@given(requants())
def test_scalar_array_and_plan_agree_with_naive_model(case):
    a, src_lo, src_hi = case
    xs = list(range(src_lo, src_hi + 1))
    want = [naive_requant_scalar(v, a.shift, a.lo, a.hi, a.rounding, a.overflow) for v in xs]
    assert [requant_scalar(v, a) for v in xs] == want
    assert requant_array(np.array(xs, dtype=np.int64), a).tolist() == want
    obj = np.array(xs, dtype=object)
    assert [int(v) for v in requant_array(obj, a)] == want
    p = requant_plan(a, src_lo, src_hi)
    free = RequantAttrs(a.shift, -(1 << 20), 1 << 20, a.rounding, Overflow.SATURATE)
    q = [requant_scalar(v, free) for v in xs]
    assert (p.q_lo, p.q_hi) == (min(q), max(q))
    assert (p.out_lo, p.out_hi) == (min(want), max(want)) or (
        a.overflow is Overflow.WRAP and (p.out_lo, p.out_hi) == (a.lo, a.hi))
    assert p.round_const == rounding_const(a) == (
        1 << (a.shift - 1) if a.shift > 0 and a.rounding is Rounding.HALF_UP else 0)
    sat = a.overflow is Overflow.SATURATE
    assert p.clip_lo == (sat and min(q) < a.lo)
    assert p.clip_hi == (sat and max(q) > a.hi)
    assert p.wrap == (not sat)
    assert p.wrap_needed == (not sat and any(v < a.lo or v > a.hi for v in q))
    if not sat:
        assert 1 << p.wrap_bits == a.hi - a.lo + 1


def test_array_switches_to_python_ints_beyond_int64():
    a = RequantAttrs(-10, -(1 << 70), 1 << 70, Rounding.FLOOR, Overflow.SATURATE)
    v = np.array([(1 << 60) - 1, -(1 << 60)], dtype=np.int64)
    assert [int(e) for e in requant_array(v, a)] == [((1 << 60) - 1) << 10, -(1 << 70)]


def test_half_even_is_numpys_rint():
    """HALF_EVEN over every integer of -300..300 and shifts 1..10 equals ``np.rint`` (IEEE
    round half to even) of ``v / 2**s``; the examples of docs/ir.md section 5.4."""
    v = np.arange(-300, 301, dtype=np.int64)
    for s in range(1, 11):
        a = RequantAttrs(s, -(1 << 20), 1 << 20, Rounding.HALF_EVEN, Overflow.SATURATE)
        want = np.rint(v / float(1 << s)).astype(np.int64)
        assert np.array_equal(requant_array(v, a), want), s
        assert [requant_scalar(int(e), a) for e in v] == want.tolist(), s
    for s, x, y in [(1, 5, 2), (1, -5, -2), (1, 7, 4), (2, -2, 0), (2, -6, -2), (2, 6, 2),
                    (2, 10, 2)]:
        a = RequantAttrs(s, -99, 99, Rounding.HALF_EVEN, Overflow.SATURATE)
        assert requant_scalar(x, a) == y
