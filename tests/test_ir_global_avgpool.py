"""GLOBAL_AVGPOOL in the IR (docs/ir.md §5.15) and residual sums (``aligned_add``): the
interpreter against naive Python-int models (per-channel sums; the exact real sum of values at
different binary points), shapes including 1x1 and non-square counts, signed and unsigned
inputs, the frac rule, the exact range ``n * lo .. n * hi``, sums beyond int64, the refusal of
non-power-of-two counts and non-[C, H, W] inputs, and the JSON round trip."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatq.ir import (
    Conv2dAttrs, GlobalAvgPoolAttrs, GraphBuilder, InputAttrs, IntType, IRError, Op, Overflow,
    Rounding, load, run, save,
)
from heatq.ir.residual import aligned_add
from heatq.ir.testing import corpus

SETTINGS = settings(derandomize=True, max_examples=60, deadline=None, database=None)
SHAPES = [(1, 1), (1, 2), (2, 1), (2, 2), (2, 4), (4, 2), (1, 8), (4, 4), (8, 8), (16, 1)]


def gap_graph(c: int, h: int, w: int, lo: int, hi: int, frac: int = 0):
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((c, h, w), lo, hi, frac), name="in")
    return b.build([b.add(Op.GLOBAL_AVGPOOL, GlobalAvgPoolAttrs(), [x], "pool")])


def naive_gap(batch) -> list[list[int]]:
    """Per sample, per channel: the sum of its H x W values, by plain Python-int loops."""
    out = []
    for sample in batch:
        row = []
        for channel in sample:
            s = 0
            for line in channel:
                for v in line:
                    s += int(v)
            row.append(s)
        out.append(row)
    return out


@st.composite
def cases(draw):
    h, w = draw(st.sampled_from(SHAPES))
    c = draw(st.integers(1, 4))
    signed = draw(st.booleans())
    width = draw(st.sampled_from([1, 2, 4, 8, 31, 58, 61, 62, 63, 64, 70]))
    t = IntType(signed, width)
    frac = draw(st.integers(-3, 6))
    n_samples = draw(st.integers(1, 4))
    values = st.one_of(st.sampled_from([t.min, t.max, 0 if t.min <= 0 else t.min]),
                       st.integers(t.min, t.max))
    x = draw(st.lists(st.lists(st.lists(st.lists(values, min_size=w, max_size=w),
                                        min_size=h, max_size=h), min_size=c, max_size=c),
                      min_size=n_samples, max_size=n_samples))
    return t, (c, h, w), frac, x


@SETTINGS
@given(cases())
def test_matches_the_naive_channel_sums(case):
    t, (c, h, w), frac, x = case
    n = h * w
    k = n.bit_length() - 1
    g = gap_graph(c, h, w, t.min, t.max, frac)
    node = g.nodes[1]
    assert node.shape == (c,) and (node.lo, node.hi) == (n * t.min, n * t.max)
    assert node.type == IntType.for_range(n * t.min, n * t.max, frac + k)
    assert node.type.signed == t.signed and node.type.frac == frac + k
    batch = np.array(x, dtype=object)
    if t.width <= 62:  # also as int64, the interpreter's fast path
        batch = batch.astype(np.int64)
    (out,) = run(g, batch)
    assert out.shape == (len(x), c)
    assert out.dtype == (np.int64 if node.type.width <= 62 else object)
    assert [[int(v) for v in row] for row in out] == naive_gap(x)


def test_the_mean_is_the_sum_at_the_shifted_binary_point():
    """Values at frac 1 (units 1/2) over a 2x4 map: y * 2**-(1 + 3) is their real mean."""
    g = gap_graph(2, 2, 4, -9, 6, frac=1)
    x = np.array([[[[-9, 6, 0, 1], [2, 3, -4, 5]], [[6] * 4, [6] * 4]]])
    (y,) = run(g, x)
    for ch in range(2):
        mean = Fraction(sum(int(v) for v in x[0, ch].ravel()), 2) / 8
        assert Fraction(int(y[0, ch]), 2 ** 4) == mean
    assert y.tolist() == [[4, 48]]


@pytest.mark.parametrize("hw", [(1, 1), (2, 4), (8, 8)])
@pytest.mark.parametrize("lo,hi", [(0, 1), (0, 15), (-8, 7), (-9, 6), (-5, -2), (3, 9)])
def test_the_range_is_exact(hw, lo, hi):
    """All-lo and all-hi samples reach n * lo and n * hi: the range is attained, not loose."""
    h, w = hw
    g = gap_graph(3, h, w, lo, hi)
    node, n = g.nodes[1], h * w
    assert (node.lo, node.hi) == (n * lo, n * hi)
    x = np.stack([np.full((3, h, w), lo), np.full((3, h, w), hi)])
    assert run(g, x)[0].tolist() == [[n * lo] * 3, [n * hi] * 3]


def test_sums_beyond_int64():
    """int64 inputs whose sums leave int64 (62-bit values over 8x8 = 2**6) and Python-int
    inputs beyond 64 bits: exact, as object arrays."""
    top = (1 << 61) - 1
    g = gap_graph(2, 8, 8, -(1 << 61), top)
    assert g.nodes[0].type.width == 62 and g.nodes[1].type.width == 68
    x = np.stack([np.full((2, 8, 8), top, dtype=np.int64),
                  np.full((2, 8, 8), -(1 << 61), dtype=np.int64)])
    (y,) = run(g, x)
    assert y.dtype == object and y.tolist() == [[64 * top] * 2, [-(1 << 67)] * 2]
    big = 1 << 70
    g2 = gap_graph(1, 2, 2, -big, big)
    x2 = np.array([[[[big, big - 1], [-big, 3]]]], dtype=object)
    assert run(g2, x2)[0].tolist() == [[big + 2]]


@pytest.mark.parametrize("hw,n", [((3, 3), 9), ((7, 7), 49), ((3, 1), 3), ((2, 3), 6),
                                  ((5, 5), 25)])
def test_refuses_counts_that_are_not_powers_of_two(hw, n):
    with pytest.raises(IRError, match=rf"pooled count {hw[0]}x{hw[1]} = {n} is not a power of two"):
        gap_graph(2, *hw, 0, 15)


@pytest.mark.parametrize("shape", [(8,), (2, 4), (1, 2, 2, 2)])
def test_refuses_inputs_that_are_not_feature_maps(shape):
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs(shape, 0, 1))
    with pytest.raises(IRError, match=r"global_avgpool expects a \[C, H, W\] input, got shape"):
        b.add(Op.GLOBAL_AVGPOOL, GlobalAvgPoolAttrs(), [x], "pool")


def test_round_trip(tmp_path):
    g = gap_graph(3, 2, 4, -9, 6, frac=1)
    save(g, tmp_path / "g")
    g2 = load(tmp_path / "g" / "model.ir.json")
    node = g2.nodes[1]
    assert node.op is Op.GLOBAL_AVGPOOL and isinstance(node.attrs, GlobalAvgPoolAttrs)
    assert (node.shape, node.lo, node.hi, node.type) == (
        g.nodes[1].shape, g.nodes[1].lo, g.nodes[1].hi, g.nodes[1].type)
    x = np.random.default_rng(0).integers(-9, 7, (5, 3, 2, 4))
    assert run(g2, x)[0].tolist() == run(g, x)[0].tolist() == naive_gap(x)


# ---------------------------------------------------------------------- aligned_add
def _fmap(b, x, w_frac: int, name: str, seed: int) -> int:
    """A 1x1 conv of the [2, 2, 4] input with weights at binary point ``w_frac``: a map at
    frac ``w_frac``."""
    rng = np.random.default_rng(seed)
    attrs = Conv2dAttrs(rng.integers(-3, 4, (2, 2, 1, 1)), rng.integers(-5, 6, 2), 3, w_frac)
    return b.add(Op.CONV2D, attrs, [x], name)


def residual_graph(fracs: list[int]):
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((2, 2, 4), -4, 3), name="in")
    args = [_fmap(b, x, f, f"p{i}", i) for i, f in enumerate(fracs)]
    s = aligned_add(b, args, "sum")
    pool = b.add(Op.GLOBAL_AVGPOOL, GlobalAvgPoolAttrs(), [s], "pool")
    return b.build([*args, s, pool]), args, s


@pytest.mark.parametrize("fracs", [[0, 2, 1], [3, 3], [1, 0], [2, 0, 2, 1]])
def test_aligned_add_aligns_only_the_coarser_arguments(fracs):
    g, args, s = residual_graph(fracs)
    top = max(fracs)
    add = g.nodes[s]
    assert add.op is Op.ADD and add.name == "sum" and add.attrs.shifts == (0,) * len(fracs)
    assert add.type.frac == top
    aligns = {n.name: n for n in g.nodes if n.name.startswith("sum.align")}
    assert set(aligns) == {f"sum.align{i}" for i, f in enumerate(fracs) if f < top}
    for i, (a, f) in enumerate(zip(args, fracs)):
        src = g.nodes[a]
        if f == top:
            assert a in add.args  # the finest arguments go in directly
            continue
        al, k = aligns[f"sum.align{i}"], top - f
        assert al.op is Op.REQUANT and al.args == (a,) and al.id in add.args
        at = al.attrs
        assert (at.shift, at.lo, at.hi) == (-k, src.lo << k, src.hi << k)
        assert (at.rounding, at.overflow) == (Rounding.FLOOR, Overflow.SATURATE)
        assert (al.lo, al.hi, al.type.frac) == (src.lo << k, src.hi << k, top)
    assert (add.lo, add.hi) == (sum(g.nodes[a].lo << (top - f) for a, f in zip(args, fracs)),
                                sum(g.nodes[a].hi << (top - f) for a, f in zip(args, fracs)))


@pytest.mark.parametrize("fracs", [[0, 2, 1], [3, 3], [1, 0], [2, 0, 2, 1]])
def test_aligned_add_is_the_exact_real_sum(fracs):
    g, args, s = residual_graph(fracs)
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.integers(-4, 4, (30, 2, 2, 4)),
                        np.full((1, 2, 2, 4), -4), np.full((1, 2, 2, 4), 3)])
    *parts, y, pool = run(g, x)
    top = max(fracs)
    for n in range(len(x)):
        for idx in np.ndindex(*y.shape[1:]):
            real = sum(Fraction(int(p[n][idx]), 2 ** f) for p, f in zip(parts, fracs))
            assert Fraction(int(y[n][idx]), 2 ** top) == real
    assert pool.tolist() == naive_gap(y)


def test_corpus_residual_aligns_the_coarser_path():
    """In the corpus's ResNet graph each residual ADD gets an align node exactly for its
    coarser argument."""
    g = corpus()["residual"]
    adds = [n for n in g.nodes if n.op is Op.ADD]
    assert [a.name for a in adds] == ["b1_add", "b2_add"]
    for add in adds:
        srcs = [g.nodes[a] for a in add.args]
        aligned = [s for s in srcs if s.name.startswith(f"{add.name}.align")]
        assert len(aligned) == 1 and aligned[0].attrs.shift < 0
        assert all(s.type.frac == add.type.frac for s in srcs)
        coarse = g.nodes[aligned[0].args[0]]
        assert coarse.type.frac < add.type.frac
