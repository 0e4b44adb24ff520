"""heatq.lower: CSD digits, adder graphs equal W @ x + c exactly, exact widths, --max-carry;
the lowering pass (heatq.passes.lower_products) on the heatq_sim networks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heatq.ir import IntType, Op, run
from heatq.ir.adders import coeff_range
from heatq.ir.testing import corner_vectors
from heatq.lower import csd, lower_cmvm
from heatq.lower.cmvm import digits
from heatq.passes import LowerProducts
from heatq.passes.testing import assert_preserves
from heatq_sim.graphs import mlp_graph, seed_cnn_graph

SETTINGS = settings(derandomize=True, max_examples=120, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@given(st.integers(-(1 << 40), 1 << 40))
@SETTINGS
def test_csd_is_exact_and_non_adjacent(w):
    d = csd(w)
    assert sum(g << s for s, g in d) == w
    shifts = [s for s, _ in d]
    assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:]))
    assert all(g in (-1, 1) for _, g in d)


@given(st.integers(-(1 << 20), 1 << 20))
@SETTINGS
def test_digits_exact_and_minimal(w):
    d = digits(w)
    assert sum(g << s for s, g in d) == w
    assert len(d) == len(csd(w))  # never more adders than CSD
    assert len({s for s, _ in d}) == len(d)


def _draw_matrix(draw, n_out: int, n_in: int, wmax: int) -> np.ndarray:
    """An integer [n_out, n_in] matrix with entries in -wmax..wmax."""
    return np.array(draw(st.lists(st.integers(-wmax, wmax), min_size=n_out * n_in,
                                  max_size=n_out * n_in))).reshape(n_out, n_in)


@st.composite
def cmvm_cases(draw):
    n_out = draw(st.integers(1, 7))
    n_in = draw(st.integers(1, 10))
    w = _draw_matrix(draw, n_out, n_in, draw(st.sampled_from([1, 7, 127, 1000])))
    ranges = []
    for _ in range(n_in):
        a = draw(st.integers(-300, 300))
        b = draw(st.integers(-300, 300))
        ranges.append((min(a, b), max(a, b)))
    const = draw(st.lists(st.integers(-5000, 5000), min_size=n_out, max_size=n_out))
    k = draw(st.sampled_from([None, 1, 3, 8]))
    cse = draw(st.booleans())
    return w, ranges, const, k, cse


def _corner_and_random(ranges, rng, n_rand=50):
    n_in = len(ranges)
    rows = []
    if n_in <= 8:
        for bits in itertools.product([0, 1], repeat=n_in):
            rows.append([r[b] for r, b in zip(ranges, bits)])
    else:
        rows += [[r[0] for r in ranges], [r[1] for r in ranges]]
    for _ in range(n_rand):
        rows.append([int(rng.integers(lo, hi + 1)) for lo, hi in ranges])
    return np.array(rows, dtype=np.int64)


def _check_graph_invariants(g, ranges):
    for ad in g.adders:
        assert ad.type == IntType.for_range(ad.lo, ad.hi)
        assert 0 <= ad.passthrough < ad.width
        assert ad.carry == max(1, ad.width - ad.passthrough)
        assert not (ad.b is not None and ad.const)
        assert not (ad.a.neg and ad.b is not None and ad.b.neg)
        ops = [ad.a.node] + ([ad.b.node] if ad.b is not None else [])
        assert all(o < ad.id for o in ops)
        assert ad.level == max(g.node(o).level if o >= g.n_in else 0 for o in ops) + 1
        if g.max_carry:
            assert ad.segments == -(-ad.carry // g.max_carry)
            assert ad.ready == max(g.ready(o) for o in ops) + ad.segments
    st_ = g.stats()
    if g.max_carry:
        assert st_["longest_carry"] <= g.max_carry
        assert all(v <= g.max_carry for v in st_["carry_per_stage"].values())


@given(cmvm_cases())
@SETTINGS
def test_cmvm_equals_matmul(case):
    w, ranges, const, k, cse = case
    g = lower_cmvm(w, ranges, const, max_carry=k, cse=cse)
    x = _corner_and_random(ranges, np.random.default_rng(0))
    got = g.evaluate(x, check=True)  # also asserts every node inside its range
    want = x @ w.T + np.array(const)
    assert np.array_equal(got, want)
    _check_graph_invariants(g, ranges)
    # output ranges are exact (tight) intervals of W @ x + c
    for j, o in enumerate(g.outputs):
        lo, hi = coeff_range({i: int(v) for i, v in enumerate(w[j]) if v}, g.inputs, const[j])
        assert (o.lo, o.hi) == (lo, hi)


def test_cse_shares_and_beats_plain_csd():
    rng = np.random.default_rng(3)
    w = rng.integers(-7, 8, size=(16, 48))
    plain = lower_cmvm(w, [(0, 15)] * 48, cse=False)
    shared = lower_cmvm(w, [(0, 15)] * 48)
    assert shared.stats()["adders"] < 0.8 * plain.stats()["adders"]
    x = rng.integers(0, 16, size=(200, 48))
    assert np.array_equal(shared.evaluate(x), x @ w.T)


@st.composite
def guard_cases(draw):
    n_out = draw(st.integers(1, 8))
    n_in = draw(st.integers(1, 24))
    w = _draw_matrix(draw, n_out, n_in, draw(st.sampled_from([1, 7, 15, 127])))
    lo = draw(st.sampled_from([0, -8, -128]))
    hi = draw(st.sampled_from([1, 15, 255]))
    const = draw(st.lists(st.sampled_from([0, 0, 1, -3, 100]), min_size=n_out, max_size=n_out))
    slack = draw(st.sampled_from([0, 0, 1, 2]))
    return w, [(lo, hi)] * n_in, const, slack


def _ceil_log2(n: int) -> int:
    d = 0
    while (1 << d) < n:
        d += 1
    return d


@given(guard_cases())
@SETTINGS
def test_depth_guard_exact_and_bounded(case):
    """With the depth guard, sharing never deepens an output past the unshared minimum
    ceil(log2 #digit terms) (+ depth_slack), plus one adder for a constant or a negative
    root (possible only when the row has a negative digit); computed here from the digits."""
    w, ranges, const, slack = case
    g = lower_cmvm(w, ranges, const, depth_slack=slack)
    x = _corner_and_random(ranges, np.random.default_rng(1), n_rand=30)
    assert np.array_equal(g.evaluate(x, check=True), x @ w.T + np.array(const))
    for j, o in enumerate(g.outputs):
        terms = [(i, s, sg) for i, v in enumerate(w[j]) if v for s, sg in digits(int(v))]
        if o.node is None:
            assert not terms
            continue
        depth = g.node(o.node).level if o.node >= g.n_in else 0
        extra = 1 if const[j] or any(sg < 0 for _, _, sg in terms) else 0
        assert depth <= _ceil_log2(len(terms)) + slack + extra, (j, depth, len(terms))


def test_depth_guard_against_unguarded():
    """Same sums; the guard costs few adders and is no deeper than unguarded sharing on a
    64x10 4-bit matrix (where unguarded sharing is one level deeper)."""
    rng = np.random.default_rng(1)
    w = rng.integers(-7, 8, size=(10, 64))
    x = rng.integers(0, 256, size=(100, 64))
    free = lower_cmvm(w, [(0, 255)] * 64, depth_slack=None)
    guarded = lower_cmvm(w, [(0, 255)] * 64)
    for g in (free, guarded):
        assert np.array_equal(g.evaluate(x), x @ w.T)
    assert guarded.depth <= free.depth
    assert guarded.stats()["adders"] <= 1.03 * free.stats()["adders"]
    with pytest.raises(ValueError):
        lower_cmvm(w, [(0, 255)] * 64, depth_slack=-1)


def test_wide_values_use_python_ints():
    w = np.array([[(1 << 40) + 3, -(1 << 35)], [7, 1]])
    g = lower_cmvm(w, [(-(1 << 30), 1 << 30), (0, 1 << 29)])
    x = np.array([[-(1 << 30), 1 << 29], [1 << 30, 0]], dtype=object)
    assert (g.evaluate(x) == x.dot(w.T.astype(object))).all()


def test_lower_rejects_bad_args():
    with pytest.raises(ValueError):
        lower_cmvm(np.ones(3), [(0, 1)] * 3)
    with pytest.raises(ValueError):
        lower_cmvm(np.ones((2, 3)), [(0, 1)] * 2)
    with pytest.raises(ValueError):
        lower_cmvm(np.ones((2, 3)), [(0, 1)] * 3, max_carry=0)


def test_lower_products_mlp_exact():
    g = mlp_graph(1)
    rng = np.random.default_rng(0)
    x = np.concatenate([corner_vectors(g), rng.integers(0, 16, size=(200, 64))])
    for k in (None, 4):
        lowered = assert_preserves(LowerProducts(max_carry=k), g, x)
        cmvms = [n for n in lowered.nodes if n.op is Op.CMVM]
        assert {n.attrs.layout for n in cmvms} == {"dense"}
        assert cmvms[0].name == "fc1.rounded"  # fc1's requant rounding is folded in


def test_lower_products_small_cnn_exact_and_max_carry():
    g = seed_cnn_graph(2, channels=(4, 4, 8, 8, 16), size=28)
    rng = np.random.default_rng(1)
    x = np.concatenate([corner_vectors(g), rng.integers(0, 2, size=(8, 4, 28, 28))])
    for k in (None, 8):
        lowered = assert_preserves(LowerProducts(max_carry=k), g, x)
        cmvms = [n for n in lowered.nodes if n.op is Op.CMVM]
        assert [n.attrs.layout for n in cmvms] == ["conv2d"] * 4 + ["dense"]
        if k:
            for n in cmvms:
                st_ = n.attrs.graph.stats()
                assert st_["longest_carry"] <= k
                assert max(st_["carry_per_stage"].values()) <= k
    outs = run(lowered, x)
    assert outs[2].shape == (len(x),)


def _wide_dense(seed: int, n_in: int, weights: list[int]):
    """1-bit unsigned input [n_in] -> DENSE (one output, weights drawn from ``weights``) ->
    REQUANT (HALF_UP, folded into the CMVM): the shape of a fused binarized layer's row."""
    from heatq.ir import DenseAttrs, GraphBuilder, InputAttrs, Overflow, RequantAttrs, Rounding

    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((n_in,), 0, 1), name="in")
    w = rng.choice(weights, size=(1, n_in))
    d = g.add(Op.DENSE, DenseAttrs(w, [-5], 3), [x], "fc")
    r = g.add(Op.REQUANT, RequantAttrs(4, -8, 7, Rounding.HALF_UP, Overflow.SATURATE), [d], "q")
    return g.build([r, d])


def test_cse_cap_windows_exact():
    """A CMVM over the CSE cap (one row of 2650 weights, +-1 and 10 % +-3: ~2900 digit terms,
    4.2M term pairs > CSE_MAX_PAIRS) shares within column windows: the windowed path is taken,
    windows still share (x_i + x_j at shifts 0 and 1 of two 3s), and the lowered graph's
    outputs equal the original's exactly (corners + random), within the depth bound."""
    from heatq.lower.cse import CSE_MAX_PAIRS, CSE_WINDOW_PAIRS, column_windows

    n_in = 2650
    g = _wide_dense(4, n_in, [-1] * 9 + [1] * 9 + [-3, 3])
    w = g.nodes[1].attrs.weight
    row = {(i, s): sg for i, v in enumerate(w[0]) for s, sg in digits(int(v))}
    T = len(row)
    assert T * (T - 1) // 2 > CSE_MAX_PAIRS
    x = np.concatenate([corner_vectors(g), np.random.default_rng(5).integers(0, 2, (64, n_in))])
    lowered = assert_preserves(LowerProducts(), g, x)
    ag = next(n for n in lowered.nodes if n.op is Op.CMVM).attrs.graph
    wins = column_windows([row], n_in, CSE_WINDOW_PAIRS)
    assert ag.meta["cse_windows"] == len(wins) > 1
    assert [lo for lo, _ in wins[1:]] == [hi for _, hi in wins[:-1]] and wins[-1][1] == n_in
    per = [sum(lo <= i < hi for i, _ in row) for lo, hi in wins]
    assert all(t * (t - 1) // 2 <= CSE_WINDOW_PAIRS for t in per)
    assert ag.stats()["adders"] < T - 20  # the windows still share (no sharing: T adders)
    assert ag.depth <= _ceil_log2(T) + 1  # + the bias adder
    small = lower_cmvm(np.ones((2, 8), dtype=np.int64), [(0, 1)] * 8)
    assert "cse_windows" not in small.meta  # under the cap: one run, as before


@given(guard_cases(), st.integers(1, 40))
@SETTINGS
def test_cse_windows_exact_and_bounded(case, window_pairs):
    """Windowed sharing (cap forced to 0, windows of ``window_pairs`` term pairs) is exact
    and keeps the guard's depth bound (the whole row's ``S`` carries over windows)."""
    w, ranges, const, slack = case
    g = lower_cmvm(w, ranges, const, depth_slack=slack, cse_max_pairs=0,
                   cse_window_pairs=window_pairs)
    x = _corner_and_random(ranges, np.random.default_rng(2), n_rand=20)
    assert np.array_equal(g.evaluate(x, check=True), x @ w.T + np.array(const))
    for j, o in enumerate(g.outputs):
        terms = [(i, s, sg) for i, v in enumerate(w[j]) if v for s, sg in digits(int(v))]
        if o.node is not None and o.node >= g.n_in:
            extra = 1 if const[j] or any(sg < 0 for _, _, sg in terms) else 0
            assert g.node(o.node).level <= _ceil_log2(len(terms)) + slack + extra


@pytest.mark.parametrize("cse,max_carry", [(True, None), (False, None), (True, 4)])
def test_matrix_recovers_the_product(cse, max_carry):
    """AdderGraph.matrix() gives back exactly the weights and constants that were lowered."""
    rng = np.random.default_rng(7)
    w = rng.integers(-9, 10, size=(7, 11))
    c = rng.integers(-50, 50, size=7)
    g = lower_cmvm(w, [(-8, 7)] * 11, const=c, max_carry=max_carry, cse=cse)
    m, k = g.matrix()
    assert m.dtype == np.int64 and np.array_equal(m, w) and np.array_equal(k, c)
