"""Splitting residual networks (issue 15, item 3): every split kind and combination on the
corpus graph ``residual`` (identity block, downsampling block with a stride-2 conv and a 1x1
stride-2 projection shortcut, ``aligned_add`` residual sums, GLOBAL_AVGPOOL feeding the fc)
computes exactly what the unsplit graph computes (outputs on the thorough corner vectors,
``validate_split`` 100 % per layer), keeps the residual ADDs, their alignment REQUANTs and the
pool as they are, and fuses (the Verilog target's ``fuse_split_products``) without merging a
residual ADD into a product tree.  A split that cannot apply (an activation split of a signed
pooled vector) is refused naming the node.  End to end: ``heatq split`` of a tiny trained
resnet20 run and ``heatq check`` on the result."""

from __future__ import annotations

import json

import numpy as np
import pytest

from heatq.files import load_graph
from heatq.ir import (
    AddAttrs, Conv2dAttrs, GraphBuilder, InputAttrs, IRError, Op, RequantAttrs, Rounding, run,
)
from heatq.ir.residual import aligned_add
from heatq.ir.testing import corner_vectors, corpus
from heatq.passes.fuse import FuseSplitProducts, fuse_split_products
from heatq.passes.split import binarize, split_acts, split_weights
from heatq.passes.testing import assert_preserves
from heatq.split.stats import layer_nodes
from heatq.split_check import validate_split

from test_outputs import invoke

CORPUS = corpus()
SPLITS = {
    "w_bitplane": lambda g: split_weights(g, "bitplane", to="binary"),
    "w_balanced": lambda g: split_weights(g, "balanced", to="binary"),
    "w_csd_ternary": lambda g: split_weights(g, "csd", to="ternary"),
    "a_bitplane": lambda g: split_acts(g, "bitplane"),
    "a_thermometer": lambda g: split_acts(g, "thermometer"),
    "bin_bitplane_bitplane": lambda g: binarize(g, weights="bitplane", acts="bitplane"),
    "bin_bitplane_thermometer": lambda g: binarize(g, weights="bitplane", acts="thermometer"),
    "bin_balanced_bitplane": lambda g: binarize(g, weights="balanced", acts="bitplane"),
    "bin_balanced_thermometer": lambda g: binarize(g, weights="balanced", acts="thermometer"),
}
RESIDUAL_ADDS = ("b1_add", "b2_add")


@pytest.fixture(scope="module")
def residual():
    g = CORPUS["residual"]
    return g, corner_vectors(g, thorough=True)


@pytest.fixture(scope="module")
def split_graphs(residual):
    g, _ = residual
    return {name: f(g) for name, f in SPLITS.items()}


def _outputs_equal(a, b, x) -> None:
    for k, (u, v) in enumerate(zip(run(a, x), run(b, x))):
        assert np.array_equal(u, v), f"output {k} differs"


@pytest.mark.parametrize("split", sorted(SPLITS))
def test_split_residual_is_exact(residual, split_graphs, split):
    g, x = residual
    s = split_graphs[split]
    s.verify()
    _outputs_equal(g, s, x)
    r = validate_split(s, g, x)
    assert r["all_equal"], {k: v for k, v in r["layers"].items() if v < 1}
    assert set(r["layers"]) == {n.name for n in g.named()}
    if split.startswith("bin_"):
        for n in s.nodes:
            if n.op in (Op.DENSE, Op.CONV2D):
                assert n.attrs.w_bits == 1 and s.nodes[n.args[0]].type.width == 1, n.label()


@pytest.mark.parametrize("split", sorted(SPLITS))
def test_residual_adds_alignment_and_pool_kept(residual, split_graphs, split):
    """The residual ADDs stay ADDs of shifts 0 over the same named arguments, the alignment
    REQUANTs keep their attrs, GLOBAL_AVGPOOL reads the same activation; regroup maps each of
    them to itself; strides are kept on every part."""
    g, _ = residual
    s = split_graphs[split]
    for name in RESIDUAL_ADDS:
        a, b = g.by_name(name), s.by_name(name)
        assert b.op is Op.ADD and b.attrs.shifts == (0, 0)
        assert [s.nodes[i].name for i in b.args] == [g.nodes[i].name for i in a.args]
        assert s.meta["regroup"][name] == [[name, 0]]
    for n in g.named():
        if ".align" in n.name:
            m = s.by_name(n.name)
            assert m.op is Op.REQUANT and m.attrs == n.attrs and m.attrs.shift < 0
    pool = s.by_name("pool")
    assert pool.op is Op.GLOBAL_AVGPOOL and s.nodes[pool.args[0]].name == "b2_act2"
    for layer in ("b2_conv1", "b2_shortcut"):
        made = s.meta["products"][layer]
        assert made and all(s.by_name(p).attrs.stride == 2 for p in made), layer


@pytest.mark.parametrize("kind", ["bitplane", "thermometer"])
def test_pooled_vector_splits_with_its_range_and_binary_point(residual, split_graphs, kind):
    """The fc reads the pooled vector (frac of b2_act2 + 4, range 0..16 * hi): its units are
    built on that range (thermometer: one per level; bit-plane: one per bit of its type) and
    every part carries the pool's binary point in its w_frac."""
    g, _ = residual
    s = split_graphs[f"a_{kind}"]
    pool, fc = g.by_name("pool"), g.by_name("fc")
    assert pool.type.frac == g.by_name("b2_act2").type.frac + 4 and pool.lo == 0
    parts = [s.by_name(p) for p in s.meta["products"]["fc"]]
    assert len(parts) == (pool.hi if kind == "thermometer" else pool.type.width)
    for p in parts:
        unit = s.nodes[p.args[0]]
        assert unit.op is (Op.THRESHOLD if kind == "thermometer" else Op.BIT)
        assert s.nodes[unit.args[0]].name == "pool"
        assert p.attrs.w_frac == fc.attrs.w_frac + pool.type.frac


def test_signed_pooled_vector_refused_naming_the_node():
    """gap_mix's fc reads the pool of a signed input: no binary units, one line naming both."""
    g = CORPUS["gap_mix"]
    for kind in ("bitplane", "thermometer"):
        with pytest.raises(IRError) as e:
            split_acts(g, kind)
        msg = str(e.value)
        assert "\n" not in msg and "(fc)" in msg and "(pool_in)" in msg and "signed" in msg
    s = split_weights(g, "bitplane", to="binary")  # the weights alone still split
    x = corner_vectors(g, thorough=True)
    _outputs_equal(g, s, x)
    assert validate_split(s, g, x)["all_equal"]


def test_stats_do_not_count_a_residual_add_as_a_recombination(residual, split_graphs):
    g, _ = residual
    s = split_graphs["bin_bitplane_bitplane"]
    residual_ids = {s.by_name(n).id for n in RESIDUAL_ADDS}
    for n in g.nodes:
        if n.op in (Op.DENSE, Op.CONV2D):
            prods, via = layer_nodes(s, n.name)
            assert {p.name for p in prods} == set(s.meta["products"][n.name])
            assert not residual_ids & {v.id for v in via}, n.name


# ----------------------------------------------------------------------------- fuse
@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("split", sorted(SPLITS))
def test_split_residual_fuses_exactly(residual, split_graphs, split, fold):
    g, x = residual
    s = split_graphs[split]
    f = assert_preserves(FuseSplitProducts(fold), s, x)
    _outputs_equal(g, f, x)
    for name in RESIDUAL_ADDS:  # still the residual sum of two fused paths
        add = f.by_name(name)
        assert add.op is Op.ADD and len(add.args) == 2
    tops = [n for n in f.nodes if n.op is Op.ADD]
    assert {n.name for n in tops} == set(RESIDUAL_ADDS), "every split ADD fused, no other"


def _two_path_block():
    """A residual block whose two paths are 3x3 stride-2 convs with one ``w_frac`` at one
    binary point (so ``aligned_add`` needs no alignment): the main path's conv reads a 3x3 map
    (after a 2x2 unpadded conv), the shortcut's the 4x4 input.  Their sum is no split product:
    a fuse over CONCAT(main, input) would not even be well-formed (3x3 and 4x4 maps)."""
    rng = np.random.default_rng(3)
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((2, 4, 4), 0, 3), name="in")

    def conv(arg, c_in, k, stride, pad, name):
        w = rng.integers(-3, 4, (3, c_in, k, k))
        return b.add(Op.CONV2D, Conv2dAttrs(w, rng.integers(-5, 6, 3), 3, 1, stride, pad),
                     [arg], name)

    c1 = conv(x, 2, 2, 1, 0, "conv1")
    a1 = b.add(Op.REQUANT, RequantAttrs(1, 0, 3, Rounding.HALF_UP), [c1], "act1")
    main, short = conv(a1, 3, 3, 2, 1, "conv2"), conv(x, 2, 3, 2, 1, "shortcut")
    add = aligned_add(b, [main, short], "add")
    act = b.add(Op.REQUANT, RequantAttrs(1, 0, 7, Rounding.HALF_UP), [add], "act2")
    return b.build([act])


@pytest.mark.parametrize("split", ["none", "w_bitplane", "bin_bitplane_bitplane",
                                   "bin_balanced_thermometer"])
def test_fuse_keeps_a_residual_add_of_two_products(split):
    g = _two_path_block()
    assert g.by_name("add").op is Op.ADD and not any(".align" in n.name for n in g.named())
    s = g if split == "none" else SPLITS[split](g)
    x = corner_vectors(g, thorough=True)
    f = fuse_split_products(s, True)
    f.verify()
    _outputs_equal(g, f, x)
    add = f.by_name("add")
    assert add.op is Op.ADD and add.attrs.shifts == (0, 0)
    srcs = [f.nodes[a] for a in add.args]
    assert all(n.op in (Op.CONV2D, Op.REQUANT) for n in srcs)  # one fused path each
    assert not any(n.op is Op.CONCAT and n.shape[1:] != f.nodes[n.args[0]].shape[1:]
                   for n in f.nodes)


def test_fuse_still_merges_parts_of_one_product_reading_units():
    """The one-source rule keeps what fuse always did: the parts of a product reading the
    thermometer units of one activation become one product (one per original layer)."""
    g = _two_path_block()
    s = binarize(g, weights="bitplane", acts="thermometer")
    f = fuse_split_products(s)
    prods = [n for n in f.nodes if n.op is Op.CONV2D]
    assert len(prods) == 3 and set(f.meta["fused"]) >= {"conv2", "shortcut"}


def test_an_add_of_two_products_of_one_source_still_fuses():
    """Two products of the same argument summed (no residual: one linear form) are fused."""
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((2, 4, 4), 0, 3), name="in")
    w = np.arange(2 * 2 * 9).reshape(2, 2, 3, 3) % 5 - 2
    p = [b.add(Op.CONV2D, Conv2dAttrs(w * s, np.zeros(2, np.int64), 4, 0, 1, 1), [x], f"p{s}")
         for s in (1, 2)]
    add = b.add(Op.ADD, AddAttrs((0, 1)), p, "sum")
    g = b.build([add])
    f = fuse_split_products(g)
    assert [n.op for n in f.nodes] == [Op.INPUT, Op.CONCAT, Op.CONV2D]
    x = corner_vectors(g, thorough=True)
    _outputs_equal(g, f, x)


# ----------------------------------------------------------------------------- resnet20
@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory):
    """A resnet20 run on the 8x8 digits (one float + one QAT epoch; the pool averages 2x2),
    3-bit weights and 2-bit activations (small splits)."""
    from heatq import pipeline

    out = tmp_path_factory.mktemp("resnet") / "run"
    pipeline.train_run(out, dataset="digits", model="resnet20", epochs=1, qat_epochs=1,
                       weight_bits=3, act_bits=2, val_fraction=0.2, progress=False)
    return out


@pytest.mark.parametrize("weights,acts", [("bitplane", "bitplane"),
                                          ("balanced", "thermometer")])
def test_split_resnet20_run_and_check(resnet_run, tmp_path, weights, acts):
    out = tmp_path / "split"
    r = invoke("heatq", "split", resnet_run, "--weights", weights, "--acts", acts,
               "--no-adders", "--out", out, "-q")
    assert r.rc == 0, r.err
    summary = json.loads((out / "summary.json").read_text())
    b = summary["binarization"]
    assert b["products"] == b["binary_weights"] == b["binary_inputs"]
    r = invoke("heatq", "check", out, "--n", "40")
    assert r.rc == 0 and "all layers equal" in r.out, r.out + r.err
    check = json.loads((out / "check.json").read_text())
    base = load_graph(resnet_run)
    assert set(check["layers"]) == {n.name for n in base.named()} - {base.nodes[0].name}
    assert {"stage2.block1.add", "stage3.block3.add", "pool", "fc.lin"} <= set(check["layers"])
    assert all(v == 1.0 for v in check["layers"].values())


def test_balanced_split_of_resnet20_widens_its_folded_strided_convs(resnet_run, tmp_path):
    """The widened torch network of a balanced split (split-then-heat): the twin of a conv
    whose batch norm is folded keeps the stride and drops the folded BN buffers; it computes
    the base's integers, and `heatq check` (IR regrouped against the base) passes."""
    from heatq.rundir import load_model

    out = tmp_path / "wide"
    r = invoke("heatq", "split", resnet_run, "--weights", "balanced", "--to", "2",
               "--no-adders", "--out", out, "-q")
    assert r.rc == 0, r.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["widened"] and (out / "model.pt").is_file()
    wide, _ = load_model(out)
    for name in ("stage2.block1.conv1", "stage2.block1.shortcut"):
        if name in summary["widened"]:
            assert wide.get_submodule(name).stride == 2, name
    r = invoke("heatq", "check", out, "--n", "40")
    assert r.rc == 0 and "all layers equal" in r.out, r.out + r.err
