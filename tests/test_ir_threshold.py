"""THRESHOLD against a naive Python-int model: random shapes, thresholds with duplicates and
negative values, signed / unsigned / wider-than-int64 inputs; unsorted rows rejected; the
range is exact (its bounds are reached); a save / load round trip keeps the node."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatq.ir import GraphBuilder, InputAttrs, IRError, Op, ThresholdAttrs, load, run, save
from test_ir_interp import SETTINGS


def naive_threshold(x, thresholds):
    """``y[n][c][...] = #{k : t[c][k] <= x[n][c][...]}`` with Python ints and loops."""
    def count(c, v):
        return sum(1 for t in thresholds[c] if t <= v)

    out = []
    for sample in x:
        if isinstance(sample[0], list):
            out.append([[[count(c, v) for v in row] for row in plane]
                        for c, plane in enumerate(sample)])
        else:
            out.append([count(c, v) for c, v in enumerate(sample)])
    return out


def threshold_graph(shape, lo, hi, thresholds):
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs(shape, lo, hi), name="in")
    t = b.add(Op.THRESHOLD, ThresholdAttrs(thresholds), [i], name="thr")
    return b.build([t])


@st.composite
def cases(draw):
    c = draw(st.integers(1, 4))
    shape = (c,) if draw(st.booleans()) else (c, draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    wide = draw(st.integers(0, 5)) == 0
    scale = 1 << 66 if wide else 1
    lo = draw(st.integers(-20, 20)) * scale
    hi = lo + draw(st.integers(0, 40)) * scale
    n_t = draw(st.integers(1, 6))
    vals = st.integers(-25 * min(scale, 1 << 40), 65 * min(scale, 1 << 40))
    rows = [sorted(draw(st.lists(vals, min_size=n_t, max_size=n_t))) for _ in range(c)]
    if draw(st.booleans()):  # force a duplicate threshold
        rows[0][0] = rows[0][-1] = rows[0][0]
        rows[0].sort()
    return shape, lo, hi, rows


@SETTINGS
@given(cases(), st.integers(0, 2**32 - 1))
def test_threshold_matches_naive_model_and_range_is_exact(case, seed):
    shape, lo, hi, rows = case
    g = threshold_graph(shape, lo, hi, np.array(rows, dtype=np.int64))
    node = g.nodes[1]
    rnd = np.random.default_rng(seed)
    span = hi - lo
    draws = [lo + int(rnd.integers(0, 1 << 62)) % (span + 1) for _ in range(5 * node.size)]
    x = np.array(draws + [lo] * node.size + [hi] * node.size, dtype=object)
    x = x.reshape((7,) + shape)
    if hi < (1 << 62) and lo > -(1 << 62):
        x = x.astype(np.int64)
    (y,) = run(g, x)
    assert y.dtype == np.int64
    assert y.tolist() == naive_threshold(x.tolist(), rows)
    # the range is exact: x == lo everywhere reaches node.lo, x == hi reaches node.hi
    assert (int(y[5].min()), int(y[6].max())) == (node.lo, node.hi)
    assert node.type.signed is False and node.type.frac == 0


def test_threshold_counts_at_and_between_thresholds():
    g = threshold_graph((2,), -10, 10, np.array([[-3, 0, 0, 4], [5, 6, 7, 8]]))
    x = np.array([[-4, 4], [-3, 5], [0, 8], [9, 10], [3, -10]])
    (y,) = run(g, x)
    assert y.tolist() == [[0, 0], [1, 1], [3, 4], [4, 4], [3, 0]]
    assert (g.nodes[1].lo, g.nodes[1].hi) == (0, 4)


def test_unsorted_thresholds_are_rejected():
    with pytest.raises(IRError, match=r"row 1 is not sorted non-decreasing "
                                      r"\(thresholds\[1, 0\] = 3 > thresholds\[1, 1\] = 2\)"):
        threshold_graph((2,), 0, 7, np.array([[0, 1], [3, 2]]))


@pytest.mark.parametrize("thresholds,shape,needle", [
    (np.zeros((2, 0), np.int64), (2,), "C, T >= 1"),
    (np.zeros(3, np.int64), (3,), r"must be \[C, T\]"),
    (np.zeros((3, 1), np.int64), (2,), "2 channels but thresholds has 3 rows"),
    (np.zeros((2, 1), np.int64), (2, 3), r"\[C, H, W\] or \[C\]"),
    (np.array([[0.5]]), (1,), "non-integer"),
])
def test_bad_thresholds_are_rejected(thresholds, shape, needle):
    with pytest.raises(IRError, match=needle):
        threshold_graph(shape, 0, 7, thresholds)


def test_threshold_round_trip(tmp_path):
    t = np.array([[-2, 1, 1], [0, 3, 9], [4, 4, 4]], dtype=np.int64)
    g = threshold_graph((3, 2, 2), -8, 7, t)
    back = load(save(g, tmp_path))
    assert back.nodes[1].op is Op.THRESHOLD
    assert np.array_equal(back.nodes[1].attrs.thresholds, t)
    assert (back.nodes[1].lo, back.nodes[1].hi, back.nodes[1].type) == (
        g.nodes[1].lo, g.nodes[1].hi, g.nodes[1].type)
    x = np.random.default_rng(0).integers(-8, 8, size=(9, 3, 2, 2))
    assert np.array_equal(run(back, x)[0], run(g, x)[0])
