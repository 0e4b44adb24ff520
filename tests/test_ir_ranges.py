"""Range inference never under-estimates, is tight where it can be, and gives the narrowest type.

Random conv / dense / requant / pool chains are evaluated in trace mode on corner inputs
(all lo, all hi, and for each output channel of the first layer the input that maximises or
minimises it) and on random inputs.  Every node's values must lie within ``node.lo..node.hi``;
for CONV2D and DENSE so must every partial sum of the accumulation, in any order (the
order-free extremes ``max(b, 0) + sum of positive terms`` and ``min(b, 0) + sum of negative
terms`` are checked).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heatq.ir import (
    Conv2dAttrs, DenseAttrs, FlattenAttrs, GraphBuilder, HammingDecodeAttrs, InputAttrs, IntType,
    MaxPool2dAttrs, Op, Overflow, RequantAttrs, Rounding, SignBitsAttrs, run,
)
from heatq.ir.rules import weight_bound
from heatq.ir.testing import corner_vectors

SETTINGS = settings(
    derandomize=True, max_examples=100, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ------------------------------------------------------------------------- strategies
@st.composite
def in_ranges(draw, max_width=16):
    signed = draw(st.booleans())
    t = IntType(signed, draw(st.integers(1, max_width)))
    kind = draw(st.sampled_from(["full", "full", "sub", "positive"]))
    if kind == "full":
        return t.min, t.max
    if kind == "positive":  # strictly positive inputs: the range cannot be tight at the low end
        return draw(st.integers(1, max(1, t.max))), max(1, t.max)
    a, b = draw(st.integers(t.min, t.max)), draw(st.integers(t.min, t.max))
    return min(a, b), max(a, b)


def weight_array(draw, shape, w_bits):
    b = weight_bound(w_bits)
    elem = st.sampled_from([-1, 1]) if w_bits == 1 else st.integers(-b, b)
    n = int(np.prod(shape))
    return np.array(draw(st.lists(elem, min_size=n, max_size=n)), dtype=np.int64).reshape(shape)


def bias_array(draw, n, mode="any"):
    elem = {"any": st.integers(-300, 300), "nonneg": st.integers(0, 300),
            "nonpos": st.integers(-300, 0), "zero": st.just(0)}[mode]
    return np.array(draw(st.lists(elem, min_size=n, max_size=n)), dtype=np.int64)


def requant_attrs(draw, lo, hi):
    shift = draw(st.integers(-2, 6))
    rounding = draw(st.sampled_from(list(Rounding)))
    overflow = draw(st.sampled_from(list(Overflow)))
    s_lo, s_hi = (v >> shift if shift >= 0 else v << -shift for v in (lo, hi))
    if overflow is Overflow.SATURATE:
        a, b = draw(st.integers(s_lo - 2, s_hi + 2)), draw(st.integers(s_lo - 2, s_hi + 2))
        if draw(st.booleans()):
            a, b = 0, max(b, 0)  # a ReLU
        return RequantAttrs(shift, min(a, b), max(a, b), rounding, overflow)
    k = draw(st.integers(1, IntType.for_range(s_lo - 1, s_hi + 1).width + 1))
    r_lo = draw(st.sampled_from([-(1 << (k - 1)), 0, s_lo]))
    return RequantAttrs(shift, r_lo, r_lo + (1 << k) - 1, rounding, overflow)


@st.composite
def graphs(draw):
    """A random chain: INPUT, then CONV2D [REQUANT] [MAXPOOL2D] blocks, FLATTEN, DENSE
    [REQUANT] layers, optionally SIGN_BITS (+ HAMMING_DECODE)."""
    lo, hi = draw(in_ranges())
    b = GraphBuilder()
    conv_first = draw(st.booleans())
    shape = ((draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(2, 6)))
             if conv_first else (draw(st.integers(1, 8)),))
    cur = b.add(Op.INPUT, InputAttrs(shape, lo, hi), name="x")
    if conv_first:
        for layer in range(draw(st.integers(1, 3))):
            c, h, w = b.nodes[cur].shape
            pad = draw(st.integers(0, 1))
            k = draw(st.integers(1, min(3, h + 2 * pad, w + 2 * pad)))
            c_out, w_bits = draw(st.integers(1, 3)), draw(st.integers(1, 4))
            attrs = Conv2dAttrs(weight_array(draw, (c_out, c, k, k), w_bits),
                                bias_array(draw, c_out), w_bits,
                                stride=draw(st.integers(1, 2)), padding=pad)
            cur = b.add(Op.CONV2D, attrs, [cur], name=f"conv{layer}")
            if draw(st.booleans()):
                n = b.nodes[cur]
                cur = b.add(Op.REQUANT, requant_attrs(draw, n.lo, n.hi), [cur])
            _, h, w = b.nodes[cur].shape
            if min(h, w) >= 2 and draw(st.booleans()):
                cur = b.add(Op.MAXPOOL2D, MaxPool2dAttrs(2, 2), [cur])
        cur = b.add(Op.FLATTEN, FlattenAttrs(), [cur])
    for layer in range(draw(st.integers(1 if not conv_first else 0, 2))):
        n_in = b.nodes[cur].shape[0]
        n_out, w_bits = draw(st.integers(1, 5)), draw(st.integers(1, 4))
        attrs = DenseAttrs(weight_array(draw, (n_out, n_in), w_bits), bias_array(draw, n_out),
                           w_bits)
        cur = b.add(Op.DENSE, attrs, [cur], name=f"fc{layer}")
        if draw(st.booleans()):
            n = b.nodes[cur]
            cur = b.add(Op.REQUANT, requant_attrs(draw, n.lo, n.hi), [cur])
    if draw(st.booleans()):
        cur = b.add(Op.SIGN_BITS, SignBitsAttrs(), [cur])
        if len(b.nodes[cur].shape) == 1 and draw(st.booleans()):
            n_bits = b.nodes[cur].shape[0]
            cb = np.array(draw(st.lists(st.lists(st.integers(0, 1), min_size=n_bits,
                                                 max_size=n_bits), min_size=1, max_size=5)))
            cur = b.add(Op.HAMMING_DECODE, HammingDecodeAttrs(cb), [cur])
    graph = b.build([cur])
    rnd = draw(st.lists(st.lists(st.integers(lo, hi), min_size=int(np.prod(shape)),
                                 max_size=int(np.prod(shape))), min_size=1, max_size=4))
    return graph, [np.array(r, dtype=np.int64).reshape(shape) for r in rnd]


# ------------------------------------------------------------------------- helpers
def terms(node, x_sample) -> list[tuple[int, list[int]]]:
    """(bias, [w*x terms]) for every output element of a CONV2D / DENSE node on one sample,
    with padded positions contributing nothing (they read 0)."""
    a = node.attrs
    x = x_sample.tolist()
    w = a.weight.tolist()
    bias = [int(v) for v in a.bias]
    res = []
    if node.op is Op.DENSE:
        for j, row in enumerate(w):
            res.append((bias[j], [wi * xi for wi, xi in zip(row, x)]))
        return res
    c_in, h, wd = len(x), len(x[0]), len(x[0][0])
    k = len(w[0][0])
    _, ho, wo = node.shape
    for co in range(len(w)):
        for oy in range(ho):
            for ox in range(wo):
                ts = []
                for ci in range(c_in):
                    for ky in range(k):
                        for kx in range(k):
                            iy, ix = oy * a.stride + ky - a.padding, ox * a.stride + kx - a.padding
                            if 0 <= iy < h and 0 <= ix < wd:
                                ts.append(w[co][ci][ky][kx] * x[ci][iy][ix])
                res.append((bias[co], ts))
    return res


def check_node_ranges(graph, x_batch):
    tr = run(graph, x_batch, trace=True)
    for node in graph.nodes:
        vals = tr[node.id]
        assert node.type.holds(node.lo, node.hi), node.label()
        assert node.type == IntType.for_range(node.lo, node.hi, node.type.frac), node.label()
        if vals.size:
            assert node.lo <= int(vals.min()) and int(vals.max()) <= node.hi, (
                f"{node.label()} {node.op}: values {vals.min()}..{vals.max()} outside "
                f"{node.lo}..{node.hi}")
        if node.op in (Op.CONV2D, Op.DENSE):
            assert node.lo <= 0 <= node.hi  # the empty partial sum
            for s in range(x_batch.shape[0]):
                for bias, ts in terms(node, tr[node.args[0]][s]):
                    # the extreme partial sums over every order of accumulation
                    assert max(bias, 0) + sum(t for t in ts if t > 0) <= node.hi, node.label()
                    assert min(bias, 0) + sum(t for t in ts if t < 0) >= node.lo, node.label()
                    assert node.lo <= bias + sum(ts) <= node.hi
    return tr


# ------------------------------------------------------------------------- properties
@SETTINGS
@given(graphs())
def test_ranges_contain_every_value(case):
    graph, randoms = case
    x = np.concatenate([corner_vectors(graph, n_random=0, thorough=True), np.stack(randoms)])
    check_node_ranges(graph, x)


@st.composite
def tight_dense(draw):
    """DENSE on an input range that contains 0 (unsigned from 0, or signed through 0)."""
    if draw(st.booleans()):
        lo, hi = 0, draw(st.integers(1, 1 << 20))
    else:
        lo, hi = -draw(st.integers(1, 1 << 20)), draw(st.integers(0, 1 << 20))
    n_in, n_out, w_bits = draw(st.integers(1, 8)), draw(st.integers(1, 4)), draw(st.integers(1, 8))
    mode = draw(st.sampled_from(["nonneg", "nonpos", "zero"]))
    return lo, hi, weight_array(draw, (n_out, n_in), w_bits), bias_array(draw, n_out, mode), w_bits


@SETTINGS
@given(tight_dense())
def test_dense_range_is_attained(case):
    """With lo <= 0 <= hi, every term's extreme has the sign that the partial-sum rule keeps,
    so the full sum at the corner input reaches the bound: node.hi when every bias >= 0,
    node.lo when every bias <= 0."""
    lo, hi, w, bias, w_bits = case
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs((w.shape[1],), lo, hi))
    d = b.add(Op.DENSE, DenseAttrs(w, bias, w_bits), [i])
    g = b.build([d])
    node = g.nodes[d]
    x_max = np.where(w > 0, hi, lo)   # row j maximises output j
    x_min = np.where(w > 0, lo, hi)   # row j minimises output j
    (y_max,) = run(g, x_max)
    (y_min,) = run(g, x_min)
    top = max(int(y_max[j, j]) for j in range(w.shape[0]))
    bottom = min(int(y_min[j, j]) for j in range(w.shape[0]))
    if np.all(bias >= 0):
        assert top == node.hi
    if np.all(bias <= 0):
        assert bottom == node.lo
    assert node.lo <= bottom and top <= node.hi


def test_dense_range_attained_example():
    w = np.array([[3, -2, 1], [-1, -1, 2]])
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs((3,), 0, 15))
    d = b.add(Op.DENSE, DenseAttrs(w, np.array([5, 0]), 3), [i])
    g = b.build([d])
    # max: 5 + 3*15 + 1*15 = 65 (row 0); min: 0 - 15 - 15 = -30 (row 1)
    assert (g.nodes[d].lo, g.nodes[d].hi) == (-30, 65)
    assert g.nodes[d].type == IntType(True, 8)
    assert run(g, np.array([[15, 0, 15]]))[0].tolist() == [[65, 15]]
    assert run(g, np.array([[15, 15, 0]]))[0].tolist()[0][1] == -30


def test_positive_inputs_keep_zero_in_the_range():
    """The partial-sum rule includes the empty sum: strictly positive inputs and weights still
    give lo = 0 (an accumulator that starts at 0 must hold it)."""
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs((2,), 10, 20))
    d = b.add(Op.DENSE, DenseAttrs(np.array([[1, 1]]), np.array([-3]), 2), [i])
    g = b.build([d])
    assert (g.nodes[d].lo, g.nodes[d].hi) == (-3, 40)  # bias alone is a partial sum
    assert int(run(g, np.array([[10, 10]]))[0].min()) == 17


def test_conv_padding_brings_zero_into_the_input_range():
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs((1, 3, 3), 4, 7))
    c = b.add(Op.CONV2D, Conv2dAttrs(np.full((1, 1, 3, 3), 1), np.array([0]), 2, padding=1), [i])
    g = b.build([c])
    assert (g.nodes[c].lo, g.nodes[c].hi) == (0, 63)
    out = run(g, np.full((1, 1, 3, 3), 7))[0]
    assert int(out.max()) == 63 and int(out[0, 0, 0, 0]) == 28  # a corner sees 4 pixels


@st.composite
def requant_cases(draw):
    lo, hi = draw(in_ranges(max_width=24))
    return lo, hi, requant_attrs(draw, lo, hi), draw(st.integers(-3, 3))


@SETTINGS
@given(requant_cases())
def test_requant_range_is_exact(case):
    """REQUANT is monotone (before a wrap), so the output range is attained at the input's ends;
    with WRAP, a range that would wrap becomes the whole lo..hi."""
    lo, hi, a, frac = case
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs((2,), lo, hi, frac))
    r = b.add(Op.REQUANT, a, [i])
    g = b.build([r])
    node = g.nodes[r]
    assert node.type.frac == frac - a.shift
    (y,) = run(g, np.array([[lo, hi]]))
    y_lo, y_hi = int(y[0, 0]), int(y[0, 1])
    s_lo, s_hi = rescale(lo, a), rescale(hi, a)  # before the overflow step
    if a.overflow is Overflow.SATURATE:
        assert (node.lo, node.hi) == (y_lo, y_hi) == (min(max(s_lo, a.lo), a.hi),
                                                     min(max(s_hi, a.lo), a.hi))
    elif a.lo <= s_lo and s_hi <= a.hi:
        assert (node.lo, node.hi) == (y_lo, y_hi) == (s_lo, s_hi)
    else:
        assert (node.lo, node.hi) == (a.lo, a.hi)
    mids = sorted({lo, hi, (lo + hi) // 2, min(hi, lo + 1), max(lo, hi - 1), min(max(0, lo), hi)})
    check_node_ranges(g, np.array([[m, mids[-1 - j]] for j, m in enumerate(mids)]))


def rescale(v: int, a: RequantAttrs) -> int:
    """The shift and rounding of REQUANT, from the definitions (floor(v / 2**s) and
    floor(v / 2**s + 1/2))."""
    if a.shift <= 0:
        return v * 2 ** -a.shift
    q = Fraction(v, 2 ** a.shift)
    return math.floor(q) if a.rounding is Rounding.FLOOR else math.floor(q + Fraction(1, 2))


def test_pool_flatten_sign_hamming_ranges():
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs((1, 4, 4), -5, 9, frac=2))
    p = b.add(Op.MAXPOOL2D, MaxPool2dAttrs(2, 2), [i])
    f = b.add(Op.FLATTEN, FlattenAttrs(), [p])
    s = b.add(Op.SIGN_BITS, SignBitsAttrs(), [f])
    h = b.add(Op.HAMMING_DECODE, HammingDecodeAttrs(np.eye(4, dtype=np.uint8)[:3]), [s])
    g = b.build([h])
    n = g.nodes
    assert [(x.lo, x.hi) for x in n] == [(-5, 9), (-5, 9), (-5, 9), (0, 1), (0, 2)]
    assert [x.type.c_style() for x in n] == ["s5.2", "s5.2", "s5.2", "u1.0", "u2.0"]
    b2 = GraphBuilder()
    i2 = b2.add(Op.INPUT, InputAttrs((2,), 1, 9))
    s2 = b2.add(Op.SIGN_BITS, SignBitsAttrs(), [i2])
    assert (b2.nodes[s2].lo, b2.nodes[s2].hi) == (1, 1)
    b3 = GraphBuilder()
    i3 = b3.add(Op.INPUT, InputAttrs((2,), -9, 0))
    s3 = b3.add(Op.SIGN_BITS, SignBitsAttrs(), [i3])
    assert (b3.nodes[s3].lo, b3.nodes[s3].hi) == (0, 0)


# ------------------------------------------------------------------------- IntType.for_range
@SETTINGS
@given(st.integers(-(1 << 80), 1 << 80), st.integers(0, 1 << 80), st.integers(-8, 8))
def test_for_range_is_the_narrowest_type(lo, extent, frac):
    hi = lo + extent
    t = IntType.for_range(lo, hi, frac)
    assert t.holds(lo, hi) and t.frac == frac and t.width >= 1
    assert t.signed == (lo < 0)
    if t.width > 1:  # no type one bit narrower, of either signedness, holds the range
        assert not IntType(False, t.width - 1).holds(lo, hi)
        assert not IntType(True, t.width - 1).holds(lo, hi)
    if not t.signed:  # a signed type of the same width would not do either (unless 0..0)
        assert hi == 0 or not IntType(True, t.width).holds(lo, hi)


@SETTINGS
@given(st.booleans(), st.integers(1, 100))
def test_inttype_min_max(signed, width):
    t = IntType(signed, width)
    if signed:
        assert (t.min, t.max) == (-(2 ** (width - 1)), 2 ** (width - 1) - 1)
    else:
        assert (t.min, t.max) == (0, 2 ** width - 1)
    assert IntType.for_range(t.min, t.max) == t
    assert t.holds(t.min, t.max)
    assert not t.holds(t.min - 1, t.max) and not t.holds(t.min, t.max + 1)


@pytest.mark.parametrize("lo,hi,want", [
    (0, 0, "u1.0"), (0, 1, "u1.0"), (-1, 0, "s1.0"), (-1, 1, "s2.0"), (0, 255, "u8.0"),
    (0, 256, "u9.0"), (-128, 127, "s8.0"), (-129, 127, "s9.0"), (-128, 128, "s9.0"),
    (-1, 255, "s9.0"), (-(1 << 62), (1 << 62) - 1, "s63.0"), (0, (1 << 64) - 1, "u64.0"),
    (-5, -3, "s4.0"),
])
def test_for_range_examples(lo, hi, want):
    assert IntType.for_range(lo, hi).c_style() == want


def test_inttype_rejects_bad_input():
    with pytest.raises(ValueError, match="width"):
        IntType(True, 0)
    with pytest.raises(ValueError, match="empty range"):
        IntType.for_range(3, 2)
