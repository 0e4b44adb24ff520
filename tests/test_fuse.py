"""``fuse_split_products`` and the CONCAT op it emits: exact (``assert_preserves``) on split
seed-CNN-shaped networks and MLPs (every split kind), on the corpus (unchanged where nothing is
split), the structure it must keep (1-bit arguments, +-2**k weights), the guards (a halving
that clips or may see an odd value is not fused) and a broken fuse caught."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import heatq.passes.fuse as fuse_mod
from heatq.ir import (
    AddAttrs, ConcatAttrs, DenseAttrs, FlattenAttrs, GraphBuilder, InputAttrs, IRError, Op,
    RequantAttrs, Rounding, load, run, save,
)
from heatq.ir.testing import corner_vectors, corpus
from heatq.passes.fuse import FuseSplitProducts, fuse_split_products
from heatq.passes.split import binarize, split_acts, split_weights
from heatq.passes.testing import assert_preserves
from heatq_sim.graphs import mlp_graph, seed_cnn_graph

FL = Rounding.FLOOR


def _cnn(seed=0):
    return seed_cnn_graph(seed, channels=(2, 4, 4, 8, 8), kernels=(3, 3, 3, 3), size=16,
                          w_bits=3, act_bits=2)


SPLITS = {
    "bin_bitplane_bitplane": lambda g: binarize(g, weights="bitplane", acts="bitplane"),
    "bin_csd_thermometer": lambda g: binarize(g, weights="csd", acts="thermometer"),
    "bin_balanced_bitplane": lambda g: binarize(g, weights="balanced", acts="bitplane"),
    "ternary": lambda g: binarize(g, weights="bitplane", acts="bitplane", to="ternary"),
    "weights_only": lambda g: split_weights(g, "bitplane", to="binary"),
    "acts_only": lambda g: split_acts(g, "thermometer"),
}


def _check_fused(f):
    assert not any(n.op is Op.ADD for n in f.nodes), "every split ADD fused"
    for n in f.nodes:
        if n.op in (Op.DENSE, Op.CONV2D):
            a = f.nodes[n.args[0]]
            assert a.op is Op.CONCAT or a.type.width == 1 or a.op is Op.INPUT


@pytest.mark.parametrize("split", sorted(SPLITS))
@pytest.mark.parametrize("net", ["cnn", "mlp"])
@pytest.mark.parametrize("fold", [False, True])
def test_fuse_exact_on_split_networks(split, net, fold):
    base = _cnn() if net == "cnn" else mlp_graph(1, n_in=16, hidden=8, w_bits=3, act_bits=2)
    g = SPLITS[split](base)
    x = corner_vectors(g, n_random=6)
    f = assert_preserves(FuseSplitProducts(fold), g, x)
    _check_fused(f)
    for a, b in zip(run(base, x), run(f, x)):
        assert np.array_equal(a, b)
    if not fold:  # every original layer name survives with its values
        assert {n.name for n in base.named()} <= {n.name for n in f.named()}


def test_binary_structure_kept():
    """Bit-plane binarized: each fused weight is +-2**k (a wired shift of a +-1 weight) and
    each CONCAT argument a 1-bit unit or the 1-bit input."""
    g = binarize(_cnn(), weights="bitplane", acts="bitplane")
    f = fuse_split_products(g)
    prods = [n for n in f.nodes if n.op in (Op.DENSE, Op.CONV2D)]
    assert len(prods) == 5
    for n in prods:
        w = np.abs(n.attrs.weight)
        assert np.all((w & (w - 1)) == 0) and np.all(w > 0), n.name
        for a in f.nodes[n.args[0]].args:
            assert f.nodes[a].type.width == 1
    assert f.meta["fused"]["conv2"] == 8  # 2 bit planes x 4 weight planes


@pytest.mark.parametrize("name", sorted(corpus()))
def test_fuse_exact_on_corpus(name):
    g = corpus()[name]
    f = assert_preserves(FuseSplitProducts(True), g, corner_vectors(g, n_random=4))
    if not any(n.op is Op.ADD for n in g.nodes):  # nothing to fuse: the same graph
        assert [(n.op, n.args, n.name) for n in f.nodes] == \
            [(n.op, n.args, n.name) for n in g.nodes]
        assert all(a.attrs is b.attrs for a, b in zip(g.nodes, f.nodes))


def _add_halving(rq_lo, rq_hi, w2, rounding=FL):
    """ADD(P1, P2 << 1) then REQUANT(shift 1): P2's weights ``w2`` decide the parity."""
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((3,), 0, 3), [], "in")
    p1 = b.add(Op.DENSE, DenseAttrs(np.array([[2, -2, 4], [4, 2, -2]]), np.array([2, 0]), 4), [x],
               "p1")
    p2 = b.add(Op.DENSE, DenseAttrs(w2, np.array([1, -1]), 3), [x], "p2")
    s = b.add(Op.ADD, AddAttrs((0, 1)), [p1, p2], "sum")
    r = b.add(Op.REQUANT, RequantAttrs(1, rq_lo, rq_hi, rounding), [s], "half")
    return b.build([b.add(Op.REQUANT, RequantAttrs(1, 0, 7), [r], "relu")])


@pytest.mark.parametrize("fold", [False, True])
def test_halving_fused_only_when_exact(fold):
    x = corner_vectors(_add_halving(-99, 99, np.array([[1, 1, -1], [1, 0, 1]])), n_random=16)
    even = assert_preserves(FuseSplitProducts(fold),
                            _add_halving(-99, 99, np.array([[1, 1, -1], [1, 0, 1]])), x)
    assert [n.op for n in even.nodes].count(Op.REQUANT) == (1 if fold else 2)
    assert not any(n.op is Op.ADD for n in even.nodes)
    # a bound that clips: the halving stays, the ADD below is fused
    clip = assert_preserves(FuseSplitProducts(fold),
                            _add_halving(-3, 3, np.array([[1, 1, -1], [1, 0, 1]])), x)
    assert any(n.name == "half" and n.attrs.lo == -3 for n in clip.nodes)
    # p1 + (p2 << 1) with p1's bias odd: not a multiple of 2, not divided first
    b = _add_halving(-99, 99, np.array([[1, 1, -1], [1, 0, 1]]))
    odd = b.nodes[1].attrs
    g2 = GraphBuilder()
    for n in b.nodes:
        attrs = DenseAttrs(odd.weight, np.array([3, 0]), 4) if n.name == "p1" else n.attrs
        g2.add(n.op, attrs, list(n.args), n.name)
    g2 = g2.build(list(b.outputs))
    o = assert_preserves(FuseSplitProducts(fold), g2, x)
    assert any(n.name == "half" and n.attrs.shift == 1 and n.attrs.lo == -99 for n in o.nodes)


def test_broken_fuse_is_caught(monkeypatch):
    """A fuse that forgets the ADD's shifts (every term at shift 0) must fail the check."""
    real = fuse_mod._add

    def no_shifts(n, forms):
        return real(SimpleNamespace(attrs=AddAttrs((0,) * len(n.args))), forms)

    monkeypatch.setattr(fuse_mod, "_add", no_shifts)
    g = binarize(_cnn(), weights="bitplane", acts="bitplane")
    with pytest.raises(AssertionError):
        assert_preserves(FuseSplitProducts(), g, corner_vectors(g, n_random=2))


# ----------------------------------------------------------------------------- CONCAT op
def test_concat_op_values_range_and_rules(tmp_path):
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((2, 3, 3), -2, 1), [], "in")
    u = b.add(Op.REQUANT, RequantAttrs(0, 0, 5), [x], "pos")
    c = b.add(Op.CONCAT, ConcatAttrs(3), [x, u, x], "cat")
    g = b.build([c])
    n = g.nodes[c]
    assert n.shape == (6, 3, 3) and (n.lo, n.hi) == (-2, 1)
    v = np.random.default_rng(0).integers(-2, 2, size=(5, 2, 3, 3))
    got = run(g, v)[0]
    assert np.array_equal(got, np.concatenate([v, np.maximum(v, 0), v], axis=1))
    save(g, tmp_path / "g.ir.json")
    assert np.array_equal(run(load(tmp_path / "g.ir.json"), v)[0], got)
    with pytest.raises(IRError, match="n_args"):
        ConcatAttrs(0)
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((2, 3, 3), 0, 1), [], "in")
    with pytest.raises(IRError, match="expects 3 argument"):
        b.add(Op.CONCAT, ConcatAttrs(3), [x, x], "bad_arity")
    flat = b.add(Op.FLATTEN, FlattenAttrs(), [x], "flat")
    with pytest.raises(IRError, match="rank"):
        b.add(Op.CONCAT, ConcatAttrs(2), [x, flat], "bad_rank")
