"""The splitting passes (heatq.passes.split*) and the regrouping check (heatq.split_check).

Every pass is exact: ``assert_preserves`` (outputs and every surviving name) and
``validate_split`` (100 % on every original named layer, regrouped from the parts) over the
seed-CNN-shaped graph, the MLP and the corpus graphs each split applies to, with corner
vectors; hypothesis draws random small dense layers for the weight splits.  ``binarize``
leaves only {-1,+1} (or {-1,0,1}) weights and 1-bit inputs.  A corrupted split (one weight of
one plane, one threshold of one unit) fails both checks; bad requests raise IRError naming
the op and the node.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatq.ir import (
    Conv2dAttrs, DenseAttrs, GraphBuilder, InputAttrs, IntGraph, IRError, Op, RequantAttrs, Rounding,
    ThresholdAttrs, load, save,
)
from heatq.ir.testing import corner_vectors, corpus
from heatq.passes import Pass, PassManager
from heatq.passes.split import Binarize, SplitActs, SplitWeights, binarize, split_weights
from heatq.passes.split_common import fits_bits
from heatq.passes.split_weights import naf_digits
from heatq.passes.testing import assert_preserves
from heatq.split_check import validate_split
from heatq_sim.graphs import mlp_graph, seed_cnn_graph

PRODUCTS = (Op.DENSE, Op.CONV2D)
CORPUS = corpus()
NETS = {"seed_cnn": lambda: seed_cnn_graph(3, channels=(4, 4, 8, 8, 16), size=16),
        "mlp": lambda: mlp_graph(2, n_in=16, hidden=8)}
TOS = ["binary", "ternary", 3]


def check_exact(pass_: Pass, g: IntGraph, x=None) -> IntGraph:
    """assert_preserves + validate_split 100 % on every original layer + the named nodes keep
    their binary point; returns the split graph."""
    x = corner_vectors(g, n_random=8) if x is None else x
    s = assert_preserves(pass_, g, x)
    r = validate_split(s, g, x)
    assert r["all_equal"] and set(r["layers"]) == {n.name for n in g.named()}, r
    assert r["n_samples"] == len(x)
    for n in g.named():
        assert s.by_name(n.name).type.frac == n.type.frac, n.name
    return s


def products(g: IntGraph) -> list:
    return [n for n in g.nodes if n.op in PRODUCTS]


def weight_values(g: IntGraph) -> set[int]:
    return {int(v) for n in products(g) for v in np.unique(n.attrs.weight)}


# ----------------------------------------------------------------------------- weights
@pytest.mark.parametrize("to", TOS)
@pytest.mark.parametrize("kind", ["bitplane", "csd", "balanced"])
@pytest.mark.parametrize("net", list(NETS))
def test_split_weights_exact_networks(net, kind, to):
    g = NETS[net]()
    s = check_exact(SplitWeights(kind, to), g)
    allowed = {"binary": {-1, 1}, "ternary": {-1, 0, 1}, 3: {-3, -2, -1, 0, 1, 2, 3}}[to]
    assert weight_values(s) <= allowed
    assert len(products(s)) > len(products(g))
    for n in products(g):  # every original product regroups into several parts
        assert len(s.meta["regroup"][n.name]) >= 2 or s.by_name(n.name).op is Op.REQUANT
        made = s.meta["products"][n.name]
        assert len(made) >= 2 and all(s.by_name(m).op is n.op for m in made)


@pytest.mark.parametrize("kind", ["bitplane", "csd", "balanced"])
@pytest.mark.parametrize("name", [n for n in CORPUS if n != "cmvm_layouts"])
def test_split_weights_exact_corpus(name, kind):
    g = CORPUS[name]
    x = corner_vectors(g, n_random=8)
    for to in TOS:
        try:
            check_exact(SplitWeights(kind, to), g, x)
        except IRError as e:  # 32- and 40-bit weights: too many balanced copies
            assert kind == "balanced" and "copies" in str(e), e


def dense_graph(w, bias, w_bits, lo, hi, w_frac=0, conv=None):
    """INPUT -> DENSE ``fc`` (or, with ``conv=(k, stride, padding)``, CONV2D ``fc`` with weights
    ``w`` reshaped [C_out, C_in, k, k] on a [C_in, 5, 5] input) -> REQUANT."""
    b = GraphBuilder()
    if conv is None:
        x = b.add(Op.INPUT, InputAttrs((w.shape[1],), lo, hi), name="in")
        d = b.add(Op.DENSE, DenseAttrs(w, bias, w_bits, w_frac), [x], "fc")
    else:
        k, stride, pad = conv
        w = w.reshape(w.shape[0], -1, k, k)
        x = b.add(Op.INPUT, InputAttrs((w.shape[1], 5, 5), lo, hi), name="in")
        d = b.add(Op.CONV2D, Conv2dAttrs(w, bias, w_bits, w_frac, stride, pad), [x], "fc")
    r = b.add(Op.REQUANT, RequantAttrs(2, -8, 7, Rounding.HALF_UP), [d], "rq")
    return b.build([d, r])


@st.composite
def dense_cases(draw):
    conv = draw(st.sampled_from([None, None, (1, 1, 0), (2, 1, 1), (3, 2, 1)]))
    n_out, n_in = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    if conv is not None:
        n_in = draw(st.integers(1, 2)) * conv[0] ** 2
    w_bits = draw(st.integers(1, 9))
    bound = 1 if w_bits == 1 else (1 << (w_bits - 1)) - 1
    vals = [-1, 1] if w_bits == 1 else list(range(-bound, bound + 1))
    parity = draw(st.sampled_from(["any", "odd", "even"]))
    if parity != "any" and w_bits > 1:
        vals = [v for v in vals if v % 2 == (parity == "odd")] or vals
    w = np.array(draw(st.lists(st.sampled_from(vals), min_size=n_out * n_in,
                               max_size=n_out * n_in))).reshape(n_out, n_in)
    bias = np.array(draw(st.lists(st.integers(-40, 40), min_size=n_out, max_size=n_out)))
    lo = draw(st.integers(-20, 10))
    hi = lo + draw(st.integers(0, 25))
    kind = draw(st.sampled_from(["bitplane", "csd", "balanced"]))
    to = draw(st.sampled_from(["binary", "ternary", 2, 3, 4]))
    return dense_graph(w, bias, w_bits, lo, hi, draw(st.integers(-2, 2)), conv), kind, to


def _fan_in_bound(kind: str, to, b: int, m: int) -> int:
    """The documented products per original (bias parts excluded)."""
    if kind == "balanced":
        c = {"binary": 0, "ternary": 1}.get(to, None)
        c = (1 << (to - 1)) - 1 if c is None else c
        return 2 * m if c == 0 else -(-m // c)
    if to == "binary":
        return b + 1 if kind == "bitplane" else 2 * b
    return b


@settings(max_examples=60, deadline=None)
@given(dense_cases())
def test_split_weights_hypothesis(case):
    g, kind, to = case
    s = check_exact(SplitWeights(kind, to), g)
    bits = {"binary": 1, "ternary": 2}.get(to, to)
    fc = g.by_name("fc")
    for n in products(s):  # layers that already fit keep their declared w_bits
        assert fits_bits(n.attrs.weight, bits) and (n.attrs.w_bits <= bits or n.name == "fc")
    parts = [p for p in products(s) if not p.name.startswith("fc.bias")]
    m = max(1, int(np.abs(fc.attrs.weight).max()))  # all-zero weights: as one unit
    b = max(fc.attrs.w_bits, m.bit_length() + 1)
    assert len(parts) <= max(1, _fan_in_bound(kind, to, b, m))


@pytest.mark.parametrize("kind", ["bitplane", "csd", "balanced"])
@pytest.mark.parametrize("bias", [0, 3])
def test_all_zero_weights_split_to_binary(kind, bias):
    """A product whose weights are all 0 (hypothesis found csd leaving no part at all)."""
    g = dense_graph(np.zeros((2, 3), np.int64), np.full(2, bias), 2, -4, 5)
    s = check_exact(SplitWeights(kind, "binary"), g)
    assert products(s) and all(set(np.unique(n.attrs.weight)) <= {-1, 1} for n in products(s))


def test_naf_digits_non_adjacent():
    w = np.arange(-300, 301)
    d = naf_digits(w)
    assert np.array_equal(sum(dj << j for j, dj in enumerate(d)), w)
    for a, b in zip(d, d[1:]):  # no two adjacent nonzero digits
        assert not np.any((a != 0) & (b != 0))


def test_bitplane_forms():
    """Two's complement planes {0,1} / MSB {-1,0}; the offset form: m {-1,+1} planes of 2W+1
    plus the all-ones plane -J, the ADD at twice the scale and an exact halving REQUANT."""
    w = np.array([[3, -2, 0, 1], [-3, 2, 1, -1]])
    g = dense_graph(w, np.array([5, -7]), 3, 0, 9)
    t = split_weights(g, "bitplane", "ternary")
    planes = {n.name: n.attrs.weight for n in products(t)}
    assert sorted(planes) == ["fc.p0", "fc.p1", "fc.p2"]
    assert set(np.unique(planes["fc.p2"])) == {-1, 0} and set(np.unique(planes["fc.p0"])) == {0, 1}
    assert t.meta["regroup"]["fc"] == [["fc.p0", 0], ["fc.p1", 1], ["fc.p2", 2]]
    assert np.array_equal(t.by_name("fc.p0").attrs.bias, [5, -7])  # the bias in one part
    o = check_exact(SplitWeights("bitplane", "binary"), g)
    assert sorted(n.name for n in products(o)) == ["fc.ones", "fc.p0", "fc.p1", "fc.p2"]
    assert np.array_equal(o.by_name("fc.ones").attrs.weight, -np.ones_like(w))
    half, add = o.by_name("fc"), o.by_name("fc.x2")
    assert half.op is Op.REQUANT and half.attrs.shift == 1 and add.op is Op.ADD
    assert add.type.frac == half.type.frac + 1 == g.by_name("fc").type.frac + 1
    odd = dense_graph(np.array([[3, -1], [1, -3]]), np.array([1, 2]), 3, 0, 9)
    so = check_exact(SplitWeights("bitplane", "binary"), odd)  # all odd: scale 1, no ones plane
    assert so.by_name("fc").op is Op.ADD and "fc.ones" not in {n.name for n in so.named()}


def test_bias_without_a_shift0_plane():
    """All weights even, odd bias: the bias gets its own part (a zero plane for ternary, the
    +J / -J pair for binary csd)."""
    g = dense_graph(np.array([[2, -2], [0, 2]]), np.array([3, -1]), 3, -4, 4)
    t = check_exact(SplitWeights("bitplane", "ternary"), g)
    assert "fc.bias" in {n.name for n in t.named()}
    g2 = dense_graph(np.array([[2, -2], [2, 2]]), np.array([3, -1]), 3, -4, 4)
    c = check_exact(SplitWeights("csd", "binary"), g2)
    assert {"fc.bias_p", "fc.bias_n"} <= {n.name for n in c.named()}
    assert weight_values(c) == {-1, 1}


# ----------------------------------------------------------------------------- activations
@pytest.mark.parametrize("kind", ["thermometer", "bitplane"])
@pytest.mark.parametrize("net", list(NETS))
def test_split_acts_exact_networks(net, kind):
    g = NETS[net]()
    s = check_exact(SplitActs(kind), g)
    for n in products(s):
        assert s.nodes[n.args[0]].type.width == 1
    first = products(g)[1] if net == "seed_cnn" else products(g)[0]
    units = s.meta["regroup"][first.name]
    arg = g.nodes[first.args[0]]
    assert len(units) == (arg.hi if kind == "thermometer" else arg.type.width)


@pytest.mark.parametrize("kind", ["thermometer", "bitplane"])
@pytest.mark.parametrize("name", [n for n in CORPUS if n != "cmvm_layouts"])
def test_split_acts_exact_corpus(name, kind):
    g = CORPUS[name]
    try:
        check_exact(SplitActs(kind), g)
    except IRError as e:
        assert "is signed" in str(e) or "units, more than" in str(e), e


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 12), st.integers(0, 30), st.integers(-2, 2), st.integers(-1, 1),
       st.sampled_from([None, (1, 1, 0), (3, 1, 1), (2, 2, 1)]),
       st.sampled_from(["thermometer", "bitplane"]), st.randoms(use_true_random=False))
def test_split_acts_hypothesis(lo, span, frac, w_frac, conv, kind, rnd):
    """Unsigned inputs lo..hi (lo > 0 too: constant units), any input binary point; units
    counted as documented (hi thermometer units, width-of-hi bit planes; none for 1 bit)."""
    rng = np.random.default_rng(rnd.randint(0, 1 << 30))
    n_in = 3 if conv is None else 2 * conv[0] ** 2
    w = rng.integers(-7, 8, size=(3, n_in))
    g = dense_graph(w, rng.integers(-9, 10, 3), 4, lo, lo + span, w_frac, conv)
    if frac:  # the same graph with its input at binary point ``frac``
        b = GraphBuilder()
        for n in g.nodes:
            attrs = InputAttrs(n.shape, n.lo, n.hi, frac) if n.op is Op.INPUT else n.attrs
            b.add(n.op, attrs, n.args, n.name)
        g = b.build(g.outputs)
    s = check_exact(SplitActs(kind), g)
    x = g.nodes[0]
    units = x.hi if kind == "thermometer" else x.type.width
    assert len(s.meta["products"]["fc"]) == (1 if x.type.width == 1 else units)


def test_split_acts_names_and_fracs():
    """Units named <activation>.u<k> / .b<j>, shared by the products reading them; the parts
    carry w_frac + frac(a) so the ADD keeps the product's binary point."""
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((4,), -20, 40), name="in")
    r = b.add(Op.REQUANT, RequantAttrs(3, 0, 5, Rounding.HALF_UP), [x], "relu")
    d1 = b.add(Op.DENSE, DenseAttrs(np.array([[1, -2, 3, 0]]), np.array([4]), 3), [r], "fa")
    d2 = b.add(Op.DENSE, DenseAttrs(np.array([[3, 3, -1, 1]]), np.array([-2]), 3, 1), [r], "fb")
    g = b.build([d1, d2])
    t = check_exact(SplitActs("thermometer"), g)
    assert [n.name for n in t.nodes if n.op is Op.THRESHOLD] == [f"relu.u{k}" for k in range(1, 6)]
    assert t.meta["regroup"]["fb"] == [[f"fb.u{k}", 0] for k in range(1, 6)]
    assert t.by_name("fb.u1").attrs.w_frac == 1 + g.by_name("relu").type.frac
    p = check_exact(SplitActs("bitplane", layers=["fb"]), g)
    assert p.meta["regroup"]["fb"] == [["fb.b0", 0], ["fb.b1", 1], ["fb.b2", 2]]
    assert p.by_name("fa").op is Op.DENSE  # not selected: unchanged


# ----------------------------------------------------------------------------- binarize
@pytest.mark.parametrize("to,allowed", [("binary", {-1, 1}), ("ternary", {-1, 0, 1})])
@pytest.mark.parametrize("name", ["seed_cnn", "mlp", "cnn12", "threshold_map", "bits1"])
def test_binarize(name, to, allowed):
    g = NETS[name]() if name in NETS else CORPUS[name]
    s = check_exact(Binarize(to=to), g)
    for n in products(s):
        assert set(np.unique(n.attrs.weight).tolist()) <= allowed, n.name
        assert s.nodes[n.args[0]].type.width == 1, n.name
    Binarize(to=to).check(s)


@pytest.mark.parametrize("weights,acts", [("csd", "bitplane"), ("balanced", "thermometer")])
def test_binarize_other_kinds_and_layers(weights, acts):
    g = NETS["mlp"]()
    s = check_exact(Binarize(weights, acts), g)
    assert weight_values(s) == {-1, 1}
    only = check_exact(Binarize(weights, acts, layers=["fc2"]), g)
    assert only.by_name("fc1").op is Op.DENSE  # fc1 untouched
    fc2 = [n for n in products(only) if n.name.startswith("fc2.")]
    assert fc2 and all(set(np.unique(n.attrs.weight).tolist()) <= {-1, 1} for n in fc2)


def test_pass_manager_composes_regroup():
    """Weights then acts through PassManager: the regroup maps compose (the per-unit parts of
    the weight planes), still 100 %."""
    g = NETS["seed_cnn"]()
    s = PassManager([SplitWeights("csd", "ternary"), SplitActs("bitplane")]).run(g)
    r = validate_split(s, g, corner_vectors(g, n_random=8))
    assert r["all_equal"]
    entries = s.meta["regroup"]["conv2"]
    assert len(entries) > 4 and all(name.startswith("conv2.p") and ".b" in name
                                    for name, _ in entries)
    assert weight_values(s) <= {-1, 0, 1}


def test_regroup_survives_save_load_and_batches(tmp_path):
    g = NETS["mlp"]()
    s = binarize(g)
    loaded = load(save(s, tmp_path))
    x = corner_vectors(g, n_random=8)
    one, many = validate_split(loaded, g, x, batch=1), validate_split(s, g, x, batch=1000)
    assert one == many and one["all_equal"]
    assert loaded.meta["regroup"] == s.meta["regroup"]
    assert [e["pass"] for e in s.meta["splits"]] == ["split_acts", "split_weights"]
    # fan-in growth: 15 thermometer units x (m {-1,+1} planes + the ones plane) per unit
    units = g.nodes[g.by_name("fc2").args[0]].hi
    planes = s.meta["splits"][1]["layers"]["fc2.u1"]
    assert len(s.meta["products"]["fc2"]) == units * planes
    assert s.meta["splits"][0]["layers"] == {"fc1": 15, "fc2": units}


# ----------------------------------------------------------------------------- mutations
def _mutate(g: IntGraph, name: str, change) -> IntGraph:
    """``g`` rebuilt with node ``name``'s attrs replaced by ``change(attrs)``."""
    b = GraphBuilder()
    for n in g.nodes:
        b.add(n.op, change(n.attrs) if n.name == name else n.attrs, n.args, n.name)
    return b.build(g.outputs, g.meta)


class _Fixed(Pass):
    name = "corrupted"

    def __init__(self, g):
        self.g = g

    def __call__(self, graph):
        return self.g


@pytest.mark.parametrize("kind,to,plane", [("bitplane", "ternary", "conv2.p1"),
                                           ("bitplane", "binary", "conv2.p0"),
                                           ("balanced", "binary", "conv2.c3")])
def test_mutated_weight_plane_fails(kind, to, plane):
    from dataclasses import replace

    g = NETS["seed_cnn"]()
    x = corner_vectors(g, n_random=8)
    s = split_weights(g, kind, to)

    def flip(a):  # one weight of the plane: +1 <-> -1 ({-1,+1} planes) or 0 <-> 1
        w = a.weight.copy()
        i = int(np.flatnonzero(w)[0]) if to == "binary" else 5
        w.flat[i] = -w.flat[i] if to == "binary" else (1 if w.flat[i] != 1 else 0)
        return replace(a, weight=w)

    bad = _mutate(s, plane, flip)
    r = validate_split(bad, g, x)
    assert not r["all_equal"] and r["layers"]["conv2"] < 1.0 and r["layers"]["conv1"] == 1.0
    with pytest.raises(AssertionError, match="differs|differ"):
        assert_preserves(_Fixed(bad), g, x)


def test_mutated_unit_fails():
    g = NETS["mlp"]()
    x = corner_vectors(g, n_random=8)
    s = binarize(g)
    c = g.nodes[g.by_name("fc2").args[0]]
    bad = _mutate(s, f"{c.name}.u3", lambda a: ThresholdAttrs(np.full((c.shape[0], 1), 4)))
    r = validate_split(bad, g, x)
    assert r["layers"]["fc2"] < 1.0 and r["layers"]["fc1"] == 1.0 and not r["all_equal"]


# ----------------------------------------------------------------------------- errors
def test_errors_name_op_and_node():
    g = NETS["mlp"]()
    cases = [
        (lambda: SplitWeights("quad"), "unknown kind 'quad'"),
        (lambda: SplitActs("gray"), "unknown kind 'gray'"),
        (lambda: SplitWeights(to=0), "bits >= 1, got 0"),
        (lambda: SplitWeights(to="quaternary"), "unknown target"),
        (lambda: SplitWeights("bitplane", k=3), "needs kind balanced"),
        (lambda: Binarize(to=3), "binary or ternary"),
        (lambda: split_weights(g, layers=["nope"]), "no layer named 'nope'"),
        (lambda: split_weights(g, layers=["relu1"]), "requant node 2 \\(relu1\\) is not a dense"),
        (lambda: split_weights(g, "balanced", "binary", k=3), "k=3 cannot write"),
        (lambda: split_weights(CORPUS["cmvm_layouts"]), "cmvm node 1 \\(cmvm_conv\\)"),
        (lambda: SplitActs()(CORPUS["pool3"]),
         "dense node 3 \\(fc\\): its argument node 2 \\(flat\\) .* is signed"),
        (lambda: Binarize().check(g), "dense node 1 \\(fc1\\) is not binary"),
        (lambda: SplitActs()(CORPUS["u16_conv"]), "needs 65535 units"),
        (lambda: binarize(CORPUS["requant_chain_sat"]), "dense node 1 \\(fc0\\)"),
        (lambda: validate_split(split_weights(g), NETS["seed_cnn"](), np.zeros((1, 16))),
         "input"),
    ]
    for make, msg in cases:
        with pytest.raises(IRError, match=msg):
            make()
    h = split_weights(g)
    lost = IntGraph(h.nodes, h.outputs, {**h.meta, "regroup": {"fc2": [["fc2.p9", 0]]}})
    with pytest.raises(IRError, match="'fc2' .*fc2.p9"):
        validate_split(lost, g, corner_vectors(g, n_random=1))
