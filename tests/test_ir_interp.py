"""Ladder rung 1: every op of the reference interpreter against a naive Python-int model.

The models below use nested loops over Python ints (and ``fractions.Fraction`` for the
rounding definitions); no NumPy arithmetic.  Every comparison is exact integer equality, and
every result's dtype is checked against the node's type (int64 up to 62 bits, object arrays
of Python ints beyond).

Hypothesis runs derandomized with a modest example count, so the file is deterministic in CI.
Regression tests at the end pin bugs found by these properties (bias added in int64 beyond
62 bits, np.pad zeros in object arrays, REQUANT constants outside int64, ...).
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heatq.ir import (
    Conv2dAttrs, DenseAttrs, FlattenAttrs, GraphBuilder, HammingDecodeAttrs, InputAttrs, IntType,
    IRError, MaxPool2dAttrs, Op, Overflow, RequantAttrs, Rounding, SignBitsAttrs, run,
)
from heatq.ir.interp import INT64_MAX_WIDTH, value_dtype
from heatq.ir.rules import weight_bound

SETTINGS = settings(
    derandomize=True, max_examples=100, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
# widths that sit on the interpreter's strategy boundaries (float64 2**53, int64 62 bits)
EDGE_WIDTHS = [1, 2, 7, 8, 31, 32, 52, 53, 54, 60, 61, 62, 63, 64, 65, 69, 70]


def fits64(v: int) -> bool:
    return INT64_MIN <= v <= INT64_MAX


# ------------------------------------------------------------------------- strategies
@st.composite
def int_ranges(draw, max_width: int = 70):
    """(lo, hi): a signed or unsigned range of width 1..max_width (edge widths often); the full
    type range, or one anchored at one end of it, or a random sub-range."""
    signed = draw(st.booleans())
    bands = [(1, 16), (17, 52), (53, 62), (63, 70), (1, 70)]
    lo_w, hi_w = draw(st.sampled_from([(a, min(b, max_width)) for a, b in bands if a <= max_width]))
    width = draw(st.one_of(st.integers(lo_w, hi_w),
                           st.sampled_from([w for w in EDGE_WIDTHS if lo_w <= w <= hi_w])))
    t = IntType(signed, width)
    kind = draw(st.sampled_from(["full", "full", "lo", "hi", "random"]))
    if kind == "full":
        return t.min, t.max
    if kind == "lo":
        return t.min, draw(st.integers(t.min, t.max))
    if kind == "hi":
        return draw(st.integers(t.min, t.max)), t.max
    a, b = draw(st.integers(t.min, t.max)), draw(st.integers(t.min, t.max))
    return min(a, b), max(a, b)


def values(lo: int, hi: int):
    """One element in lo..hi, often an extreme."""
    return st.one_of(st.just(lo), st.just(hi), st.integers(lo, hi))


def nested(draw, shape, elem):
    if not shape:
        return draw(elem)
    return [nested(draw, shape[1:], elem) for _ in range(shape[0])]


def weights_for(w_bits: int):
    if w_bits == 1:
        return st.sampled_from([-1, 1])
    b = weight_bound(w_bits)
    return st.integers(-b, b)


def biases():
    return st.one_of(st.integers(-(1 << 20), 1 << 20), st.just(0),
                     st.integers(INT64_MIN, INT64_MAX))


# ------------------------------------------------------------------------- helpers
def batch(x, lo: int, hi: int) -> np.ndarray:
    """The batch as the interpreter's caller would pass it: int64 when the range fits, else
    an object array of Python ints."""
    if fits64(lo) and fits64(hi):
        return np.array(x, dtype=np.int64)
    return np.array(x, dtype=object)


def py(arr: np.ndarray, node) -> list:
    """Check the dtype contract of a node's values and return them as nested Python ints."""
    assert arr.dtype == value_dtype(node.type), (arr.dtype, node.type)
    if node.type.width <= INT64_MAX_WIDTH:
        assert arr.dtype == np.int64
    else:
        assert arr.dtype == object
        assert all(type(e) is int for e in arr.ravel()), "object values must be Python ints"
    return arr.tolist()


def single_op(in_shape, lo, hi, op, attrs, frac=0):
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs(tuple(in_shape), lo, hi, frac), name="x")
    o = b.add(op, attrs, [i], name="y")
    return b.build([o])


def abs_bound(lo, hi, w_rows) -> int:
    """The bound the interpreter uses to pick its accumulation strategy."""
    return max(abs(lo), abs(hi)) * max((sum(abs(v) for v in row) for row in w_rows), default=0)


def int64_accumulator(lo, hi, w_rows) -> bool:
    """True when the interpreter accumulates CONV2D/DENSE in int64 (float64 or int64 matmul)."""
    in_width = IntType.for_range(lo, hi).width
    return in_width <= INT64_MAX_WIDTH and abs_bound(lo, hi, w_rows) <= INT64_MAX


def flat_rows(weight):
    """[C_out][...] nested weights -> list of flat rows."""
    def flat(v):
        return [e for s in v for e in flat(s)] if isinstance(v, list) else [v]
    return [flat(row) for row in weight]


# ------------------------------------------------------------------------- naive models
def naive_conv2d(x, weight, bias, stride, padding):
    n_b, c_in, h, w = len(x), len(x[0]), len(x[0][0]), len(x[0][0][0])
    c_out, k = len(weight), len(weight[0][0])
    ho = (h + 2 * padding - k) // stride + 1
    wo = (w + 2 * padding - k) // stride + 1
    out = []
    for n in range(n_b):
        per_c = []
        for co in range(c_out):
            rows = []
            for oy in range(ho):
                row = []
                for ox in range(wo):
                    acc = bias[co]
                    for ci in range(c_in):
                        for ky in range(k):
                            for kx in range(k):
                                iy, ix = oy * stride + ky - padding, ox * stride + kx - padding
                                if 0 <= iy < h and 0 <= ix < w:  # padding reads 0
                                    acc += weight[co][ci][ky][kx] * x[n][ci][iy][ix]
                    row.append(acc)
                rows.append(row)
            per_c.append(rows)
        out.append(per_c)
    return out


def naive_dense(x, weight, bias):
    out = []
    for sample in x:
        row = []
        for j in range(len(weight)):
            acc = bias[j]
            for i, v in enumerate(sample):
                acc += weight[j][i] * v
            row.append(acc)
        out.append(row)
    return out


def naive_requant_scalar(v: int, shift: int, lo: int, hi: int, rounding, overflow) -> int:
    if shift > 0:
        q = Fraction(v, 1 << shift)
        if rounding is Rounding.HALF_EVEN:
            v = round(q)  # Fraction.__round__: nearest, ties to even
        else:
            v = math.floor(q) if rounding is Rounding.FLOOR else math.floor(q + Fraction(1, 2))
    elif shift < 0:
        v = v * (1 << -shift)
    if overflow is Overflow.SATURATE:
        return lo if v < lo else hi if v > hi else v
    span = hi - lo + 1
    assert span & (span - 1) == 0
    # keep the low log2(span) bits (Python's & is two's complement on unbounded ints) and
    # place the residue in lo..hi
    t = (v & (span - 1)) - (lo & (span - 1))
    if t < 0:
        t += span
    return lo + t


def naive_maxpool(x, kernel, stride):
    out = []
    for sample in x:
        per_c = []
        for plane in sample:
            h, w = len(plane), len(plane[0])
            ho, wo = (h - kernel) // stride + 1, (w - kernel) // stride + 1  # floor mode
            rows = []
            for oy in range(ho):
                row = []
                for ox in range(wo):
                    m = plane[oy * stride][ox * stride]
                    for ky in range(kernel):
                        for kx in range(kernel):
                            v = plane[oy * stride + ky][ox * stride + kx]
                            if v > m:
                                m = v
                    row.append(m)
                rows.append(row)
            per_c.append(rows)
        out.append(per_c)
    return out


def naive_flatten(x):
    def walk(v, acc):
        if isinstance(v, list):
            for e in v:
                walk(e, acc)
        else:
            acc.append(v)
        return acc
    return [walk(sample, []) for sample in x]


def naive_sign_bits(x):
    if isinstance(x, list):
        return [naive_sign_bits(e) for e in x]
    return 1 if x > 0 else 0


def naive_hamming(x, codebook):
    out = []
    for bits in x:
        best, best_d = None, None
        for k, row in enumerate(codebook):
            d = 0
            for a, b in zip(bits, row):
                if a != b:
                    d += 1
            if best_d is None or d < best_d:  # strict: a tie keeps the lower index
                best, best_d = k, d
        out.append(best)
    return out


# ------------------------------------------------------------------------- CONV2D
@st.composite
def conv_cases(draw):
    lo, hi = draw(int_ranges())
    c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = draw(st.integers(1, 4))
    stride, padding = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, k - 2 * padding), 6))
    w = draw(st.integers(max(1, k - 2 * padding), 6))
    w_bits, w_frac = draw(st.integers(1, 8)), draw(st.integers(0, 3))
    weight = nested(draw, (c_out, c_in, k, k), weights_for(w_bits))
    bias = nested(draw, (c_out,), biases())
    n = draw(st.integers(1, 2))
    x = nested(draw, (n, c_in, h, w), values(lo, hi))
    frac = draw(st.integers(-2, 4))
    return dict(lo=lo, hi=hi, weight=weight, bias=bias, w_bits=w_bits, w_frac=w_frac,
                stride=stride, padding=padding, x=x, frac=frac)


@SETTINGS
@given(conv_cases())
def test_conv2d_matches_naive(case):
    c = case
    expected = naive_conv2d(c["x"], c["weight"], c["bias"], c["stride"], c["padding"])
    x0 = c["x"][0]
    g = single_op((len(x0), len(x0[0]), len(x0[0][0])), c["lo"], c["hi"], Op.CONV2D,
                  Conv2dAttrs(np.array(c["weight"], dtype=np.int64),
                              np.array(c["bias"], dtype=np.int64), c["w_bits"], c["w_frac"],
                              c["stride"], c["padding"]), frac=c["frac"])
    node = g.nodes[1]
    assert node.type.frac == c["frac"] + c["w_frac"]
    (out,) = run(g, batch(c["x"], c["lo"], c["hi"]))
    assert py(out, node) == expected


# ------------------------------------------------------------------------- DENSE
@st.composite
def dense_cases(draw):
    lo, hi = draw(int_ranges())
    n_in, n_out = draw(st.integers(1, 8)), draw(st.integers(1, 4))
    w_bits, w_frac = draw(st.integers(1, 8)), draw(st.integers(0, 3))
    weight = nested(draw, (n_out, n_in), weights_for(w_bits))
    bias = nested(draw, (n_out,), biases())
    x = nested(draw, (draw(st.integers(1, 3)), n_in), values(lo, hi))
    return dict(lo=lo, hi=hi, weight=weight, bias=bias, w_bits=w_bits, w_frac=w_frac, x=x)


@SETTINGS
@given(dense_cases())
def test_dense_matches_naive(case):
    c = case
    expected = naive_dense(c["x"], c["weight"], c["bias"])
    g = single_op((len(c["x"][0]),), c["lo"], c["hi"], Op.DENSE,
                  DenseAttrs(np.array(c["weight"], dtype=np.int64),
                             np.array(c["bias"], dtype=np.int64), c["w_bits"], c["w_frac"]))
    (out,) = run(g, batch(c["x"], c["lo"], c["hi"]))
    assert py(out, g.nodes[1]) == expected


@pytest.mark.parametrize("in_bits,w_bits,n_in", [
    (20, 8, 8),    # bound < 2**53: float64 BLAS
    (52, 3, 2),    # bound just above 2**53: int64 matmul (float64 would round odd sums)
    (53, 8, 6),    # int64 matmul
    (61, 2, 1),    # 61-bit input, int64
    (62, 8, 8),    # bound > int64: object matmul on an int64 input
    (63, 8, 8),    # object input
    (70, 1, 5),    # object input, 1-bit weights
])
def test_dense_each_accumulation_strategy(in_bits, w_bits, n_in):
    """Deterministic cases on each side of the float64 (2**53) and int64 boundaries, with
    odd extreme values so that any rounding would show."""
    t = IntType(False, in_bits)
    rng = np.random.default_rng(in_bits * 100 + w_bits)
    odd = random.Random(in_bits).randrange
    b = weight_bound(w_bits)
    weight = [[int(rng.choice([-1, 1])) * (b if (i + j) % 2 else max(1, b - 1))
               for i in range(n_in)] for j in range(3)]
    bias = [1, -1, 0]
    xs = [[t.max] * n_in, [t.max - 1] * n_in, [t.max if i % 2 else t.max - 2 for i in range(n_in)],
          [odd(t.max // 2 + 1) * 2 + 1 for _ in range(n_in)]]
    g = single_op((n_in,), 0, t.max, Op.DENSE,
                  DenseAttrs(np.array(weight), np.array(bias), w_bits))
    (out,) = run(g, batch(xs, 0, t.max))
    assert py(out, g.nodes[1]) == naive_dense(xs, weight, bias)


def test_dense_float_path_boundary_is_exact():
    """Partial sums just above 2**53 with an odd total: float64 would be off by one."""
    x_max = (1 << 52) - 1
    weight, bias = [[3, 1]], [0]
    xs = [[x_max, x_max - 1], [x_max, x_max]]
    g = single_op((2,), 0, x_max, Op.DENSE, DenseAttrs(np.array(weight), np.array(bias), 3))
    (out,) = run(g, np.array(xs, dtype=np.int64))
    expected = naive_dense(xs, weight, bias)
    assert expected[0][0] == (1 << 54) - 5 and expected[0][0] != int(float(expected[0][0]))
    assert out.tolist() == expected


# ------------------------------------------------------------------------- REQUANT
@st.composite
def requant_cases(draw):
    lo, hi = draw(int_ranges())
    shift = draw(st.one_of(st.integers(-8, 8), st.just(0), st.integers(-70, 72)))
    rounding = draw(st.sampled_from(list(Rounding)))
    overflow = draw(st.sampled_from(list(Overflow)))
    # the shifted (unclipped) input range, to place the output range around it
    big = 1 << 300
    s_lo = naive_requant_scalar(lo, shift, -big, big, rounding, Overflow.SATURATE)
    s_hi = naive_requant_scalar(hi, shift, -big, big, rounding, Overflow.SATURATE)
    if overflow is Overflow.SATURATE:
        kind = draw(st.sampled_from(["around", "relu", "wide"]))
        if kind == "relu":
            r_lo, r_hi = 0, max(0, draw(st.integers(s_lo, s_hi + 3)))
        elif kind == "wide":
            r_lo, r_hi = min(s_lo, 0) - 5, max(s_hi, 0) + 5
        else:
            a, b = draw(st.integers(s_lo - 3, s_hi + 3)), draw(st.integers(s_lo - 3, s_hi + 3))
            r_lo, r_hi = min(a, b), max(a, b)
    else:
        k = draw(st.integers(1, max(1, IntType.for_range(s_lo, s_hi).width + 2)))
        kind = draw(st.sampled_from(["signed", "unsigned", "offset"]))
        r_lo = {"signed": -(1 << (k - 1)), "unsigned": 0}.get(kind)
        if r_lo is None:
            r_lo = draw(st.integers(s_lo - 3, s_hi + 3))
        r_hi = r_lo + (1 << k) - 1
    x = nested(draw, (draw(st.integers(1, 2)), draw(st.integers(1, 6))), values(lo, hi))
    return dict(lo=lo, hi=hi, attrs=RequantAttrs(shift, r_lo, r_hi, rounding, overflow), x=x,
                frac=draw(st.integers(-3, 3)))


@SETTINGS
@given(requant_cases())
def test_requant_matches_naive(case):
    a = case["attrs"]
    g = single_op((len(case["x"][0]),), case["lo"], case["hi"], Op.REQUANT, a,
                  frac=case["frac"])
    node = g.nodes[1]
    assert node.type.frac == case["frac"] - a.shift
    (out,) = run(g, batch(case["x"], case["lo"], case["hi"]))
    expected = [[naive_requant_scalar(v, a.shift, a.lo, a.hi, a.rounding, a.overflow)
                 for v in row] for row in case["x"]]
    assert py(out, node) == expected
    for row in expected:
        for v in row:
            assert a.lo <= v <= a.hi


@pytest.mark.parametrize("v,shift,floor,half_up", [
    (5, 1, 2, 3), (-5, 1, -3, -2), (4, 1, 2, 2), (-4, 1, -2, -2),
    (6, 2, 1, 2), (-6, 2, -2, -1), (-2, 2, -1, 0), (1, 2, 0, 0), (2, 2, 0, 1),
    (7, 0, 7, 7), (-3, -2, -12, -12), (-1, 60, -1, 0), (1 << 59, 60, 0, 1),
])
def test_requant_rounding_table(v, shift, floor, half_up):
    """Hand-checked values: FLOOR rounds toward -inf, HALF_UP to nearest with ties to +inf."""
    big = 1 << 62
    for rnd, want in ((Rounding.FLOOR, floor), (Rounding.HALF_UP, half_up)):
        g = single_op((1,), min(v, 0), max(v, 0), Op.REQUANT,
                      RequantAttrs(shift, -big, big - 1, rnd, Overflow.SATURATE))
        assert run(g, np.array([[v]]))[0].tolist() == [[want]]


def test_requant_wrap_is_twos_complement():
    """WRAP into a signed k-bit range keeps the low k bits, read as two's complement."""
    xs = list(range(-300, 301, 7))
    g = single_op((len(xs),), -300, 300, Op.REQUANT,
                  RequantAttrs(0, -128, 127, Rounding.FLOOR, Overflow.WRAP))
    want = [((v + 128) & 255) - 128 for v in xs]  # the low 8 bits as a signed byte
    assert run(g, np.array([xs]))[0].tolist() == [want]


# ------------------------------------------------------------------------- MAXPOOL2D
@st.composite
def pool_cases(draw):
    lo, hi = draw(int_ranges())
    kernel, stride = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    c = draw(st.integers(1, 3))
    h, w = draw(st.integers(kernel, 8)), draw(st.integers(kernel, 8))
    x = nested(draw, (draw(st.integers(1, 2)), c, h, w), values(lo, hi))
    return dict(lo=lo, hi=hi, kernel=kernel, stride=stride, x=x)


@SETTINGS
@given(pool_cases())
def test_maxpool2d_matches_naive(case):
    x0 = case["x"][0]
    g = single_op((len(x0), len(x0[0]), len(x0[0][0])), case["lo"], case["hi"], Op.MAXPOOL2D,
                  MaxPool2dAttrs(case["kernel"], case["stride"]))
    (out,) = run(g, batch(case["x"], case["lo"], case["hi"]))
    assert py(out, g.nodes[1]) == naive_maxpool(case["x"], case["kernel"], case["stride"])


# ------------------------------------------------------------------------- FLATTEN
@st.composite
def shaped_cases(draw, max_rank=3):
    lo, hi = draw(int_ranges())
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=max_rank)))
    x = nested(draw, (draw(st.integers(1, 2)),) + shape, values(lo, hi))
    return dict(lo=lo, hi=hi, shape=shape, x=x, frac=draw(st.integers(-2, 3)))


@SETTINGS
@given(shaped_cases())
def test_flatten_matches_naive(case):
    g = single_op(case["shape"], case["lo"], case["hi"], Op.FLATTEN, FlattenAttrs(),
                  frac=case["frac"])
    node = g.nodes[1]
    assert node.shape == (int(np.prod(case["shape"])),)
    assert (node.lo, node.hi, node.type) == (g.nodes[0].lo, g.nodes[0].hi, g.nodes[0].type)
    (out,) = run(g, batch(case["x"], case["lo"], case["hi"]))
    assert py(out, node) == naive_flatten(case["x"])


def test_flatten_is_channel_row_column_order():
    x = [[[[100 * c + 10 * r + q for q in range(3)] for r in range(2)] for c in range(2)]]
    g = single_op((2, 2, 3), 0, 999, Op.FLATTEN, FlattenAttrs())
    assert run(g, np.array(x))[0].tolist() == [[0, 1, 2, 10, 11, 12, 100, 101, 102, 110, 111, 112]]


# ------------------------------------------------------------------------- SIGN_BITS
@SETTINGS
@given(shaped_cases())
def test_sign_bits_matches_naive(case):
    g = single_op(case["shape"], case["lo"], case["hi"], Op.SIGN_BITS, SignBitsAttrs(),
                  frac=case["frac"])
    node = g.nodes[1]
    assert node.type.frac == 0 and node.type.width == 1 and not node.type.signed
    (out,) = run(g, batch(case["x"], case["lo"], case["hi"]))
    assert py(out, node) == naive_sign_bits(case["x"])


def test_sign_bits_zero_is_zero():
    g = single_op((5,), -(1 << 69), 1 << 69, Op.SIGN_BITS, SignBitsAttrs())
    x = [[-(1 << 69), -1, 0, 1, 1 << 69]]
    assert run(g, np.array(x, dtype=object))[0].tolist() == [[0, 0, 0, 1, 1]]


# ------------------------------------------------------------------------- HAMMING_DECODE
@st.composite
def hamming_cases(draw):
    n_bits, n_rows = draw(st.integers(1, 16)), draw(st.integers(1, 12))
    rows = nested(draw, (n_rows, n_bits), st.integers(0, 1))
    if n_rows > 1 and draw(st.booleans()):  # duplicate rows force exact ties
        src, dst = draw(st.integers(0, n_rows - 1)), draw(st.integers(0, n_rows - 1))
        rows[dst] = list(rows[src])
    x = nested(draw, (draw(st.integers(1, 6)), n_bits), st.integers(0, 1))
    if draw(st.booleans()):
        x.append(list(rows[draw(st.integers(0, n_rows - 1))]))  # an exact codeword
    dtype = draw(st.sampled_from([np.int64, np.uint8, np.bool_]))
    return dict(codebook=rows, x=x, dtype=dtype)


@SETTINGS
@given(hamming_cases())
def test_hamming_decode_matches_naive(case):
    cb = case["codebook"]
    g = single_op((len(cb[0]),), 0, 1, Op.HAMMING_DECODE,
                  HammingDecodeAttrs(np.array(cb, dtype=np.uint8)))
    node = g.nodes[1]
    assert node.shape == () and (node.lo, node.hi) == (0, len(cb) - 1)
    (out,) = run(g, np.array(case["x"], dtype=case["dtype"]))
    assert py(out, node) == naive_hamming(case["x"], cb)


def test_hamming_decode_ties_go_to_lowest_index():
    cb = [[1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 0, 0], [0, 1, 1, 0]]
    g = single_op((4,), 0, 1, Op.HAMMING_DECODE, HammingDecodeAttrs(np.array(cb)))
    x = [[0, 0, 0, 0],   # distance 2 to every row -> 0
         [0, 0, 1, 1],   # exact row 1
         [1, 1, 0, 0],   # rows 0 and 2 identical -> 0
         [0, 1, 1, 1]]   # rows 1 and 3 at distance 1 -> 1
    assert run(g, np.array(x))[0].tolist() == [0, 1, 0, 1]


# ------------------------------------------------------------------------- whole graphs
def test_chain_and_trace_mode():
    """A small network through every op: trace returns every node, outputs follow
    graph.outputs, and each stage equals the naive model applied stage by stage."""
    rng = np.random.default_rng(7)
    wc = rng.integers(-3, 4, size=(2, 1, 3, 3))
    wd = rng.choice([-1, 1], size=(5, 2 * 2 * 2))
    cb = rng.integers(0, 2, size=(4, 5))
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs((1, 4, 4), 0, 15), name="in")
    c = b.add(Op.CONV2D, Conv2dAttrs(wc, np.array([3, -4]), 3, padding=1), [i], name="conv")
    r = b.add(Op.REQUANT, RequantAttrs(2, 0, 7), [c], name="relu")
    p = b.add(Op.MAXPOOL2D, MaxPool2dAttrs(2, 2), [r], name="pool")
    f = b.add(Op.FLATTEN, FlattenAttrs(), [p], name="flat")
    d = b.add(Op.DENSE, DenseAttrs(wd, np.zeros(5, dtype=np.int64), 1), [f], name="fc")
    s = b.add(Op.SIGN_BITS, SignBitsAttrs(), [d], name="bits")
    h = b.add(Op.HAMMING_DECODE, HammingDecodeAttrs(cb), [s], name="cls")
    g = b.build([h, d])
    x = rng.integers(0, 16, size=(3, 1, 4, 4))
    tr = run(g, x, trace=True)
    assert len(tr) == len(g.nodes)
    xs = x.tolist()
    conv = naive_conv2d(xs, wc.tolist(), [3, -4], 1, 1)
    relu = [[[[naive_requant_scalar(v, 2, 0, 7, Rounding.HALF_UP, Overflow.SATURATE)
               for v in row] for row in ch] for ch in s_] for s_ in conv]
    pool = naive_maxpool(relu, 2, 2)
    flat = naive_flatten(pool)
    dense = naive_dense(flat, wd.tolist(), [0] * 5)
    bits = naive_sign_bits(dense)
    cls = naive_hamming(bits, cb.tolist())
    for node, want in zip(g.nodes, [xs, conv, relu, pool, flat, dense, bits, cls]):
        assert py(tr[node.id], node) == want, node.label()
    outs = run(g, x)
    assert [o.tolist() for o in outs] == [cls, dense]


# ------------------------------------------------------------ regressions (bugs now fixed)
@pytest.mark.parametrize("op", ["dense", "conv2d"])
def test_regression_bias_add_wraps_int64(op):
    bias = (1 << 63) - 1
    if op == "dense":
        g = single_op((1,), 0, 255, Op.DENSE, DenseAttrs(np.array([[1]]), np.array([bias]), 2))
        x = [[255]]
    else:
        g = single_op((1, 1, 1), 0, 255, Op.CONV2D,
                      Conv2dAttrs(np.ones((1, 1, 1, 1), dtype=np.int64), np.array([bias]), 2))
        x = [[[[255]]]]
    assert g.nodes[1].type == IntType(False, 64)
    (out,) = run(g, np.array(x))
    assert int(out.ravel()[0]) == bias + 255


def test_regression_abs_bound_overflows_for_wide_weights():
    w = [[(1 << 62) + 1, (1 << 62) + 1]]
    g = single_op((2,), 0, 1, Op.DENSE, DenseAttrs(np.array(w), np.array([0]), 64))
    with np.errstate(invalid="ignore"):
        (out,) = run(g, np.array([[1, 1]]))
    assert out.tolist() == naive_dense([[1, 1]], w, [0])


def test_regression_requant_half_up_shift_64():
    g = single_op((2,), -100, 100, Op.REQUANT, RequantAttrs(64, -8, 7, Rounding.HALF_UP))
    assert run(g, np.array([[-100, 100]]))[0].tolist() == [[0, 0]]


@pytest.mark.parametrize("lo,hi,overflow", [
    (-(1 << 100), 1 << 100, Overflow.SATURATE),
    (-(1 << 69), (1 << 69) - 1, Overflow.WRAP),
    (-(1 << 62), (1 << 62) - 1, Overflow.WRAP),  # both fit, the span 2**63 does not
])
def test_regression_requant_wide_bounds_on_narrow_input(lo, hi, overflow):
    g = single_op((2,), -100, 100, Op.REQUANT, RequantAttrs(0, lo, hi, Rounding.FLOOR, overflow))
    assert g.nodes[1].type == IntType(True, 8)
    assert run(g, np.array([[-100, 100]]))[0].tolist() == [[-100, 100]]


def test_regression_conv2d_padding_on_object_input():
    g = single_op((1, 1, 2), 0, (1 << 63) - 1, Op.CONV2D,
                  Conv2dAttrs(np.ones((1, 1, 3, 3), dtype=np.int64), np.array([0]), 2,
                              stride=2, padding=1))
    assert g.nodes[1].shape == (1, 1, 1) and g.nodes[1].type.width > INT64_MAX_WIDTH
    with np.errstate(over="ignore"):
        (out,) = run(g, np.array([[[[1 << 62, 1 << 62]]]], dtype=object))
    assert out.tolist() == [[[[1 << 63]]]]


def test_regression_object_batch_with_floats_is_accepted():
    g = single_op((2,), 0, 10, Op.FLATTEN, FlattenAttrs())
    with pytest.raises(IRError):
        run(g, np.array([[1.5, 2]], dtype=object))
