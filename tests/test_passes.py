"""heatq.passes: the pass contract and lower_products.

``assert_preserves`` (verify + equal outputs + equal values of every surviving node name) is
run over the heatq_sim graphs and the whole conformance corpus with its corner vectors; it is
shown to fail when one adder constant of a CMVM is changed.  The adder graphs are exactly
those of ``lower_cmvm`` on the products' reshaped weights, input ranges (0 included when
padded) and constants (bias + the folded rounding constant): the Verilog output depends on it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from heatq.ir import (
    CmvmAttrs, DenseAttrs, GraphBuilder, InputAttrs, IntGraph, IRError, Op, Overflow,
    RequantAttrs, Rounding,
)
from heatq.ir.adders import AdderGraph
from heatq.ir.requant import rounding_const
from heatq.ir.testing import corner_vectors, corpus
from heatq.lower import lower_cmvm
from heatq.passes import LowerProducts, Pass, PassManager, lower_products
from heatq.passes.testing import assert_preserves
from heatq_sim.graphs import mlp_graph, seed_cnn_graph

SIM_GRAPHS = {
    "seed_cnn_small": lambda: seed_cnn_graph(2, channels=(4, 4, 8, 8, 16), size=28),
    "mlp": lambda: mlp_graph(1),
}
CORPUS = corpus()


@pytest.mark.parametrize("max_carry", [None, 4])
@pytest.mark.parametrize("name", list(SIM_GRAPHS))
def test_lower_products_preserves_sim_graphs(name, max_carry):
    g = SIM_GRAPHS[name]()
    lowered = assert_preserves(LowerProducts(max_carry), g, corner_vectors(g, n_random=8))
    ops = {n.op for n in lowered.nodes}
    assert not ops & {Op.DENSE, Op.CONV2D} and Op.CMVM in ops
    if max_carry:
        for n in lowered.nodes:
            if n.op is Op.CMVM:
                assert n.attrs.graph.stats()["longest_carry"] <= max_carry


@pytest.mark.parametrize("name", list(CORPUS))
def test_lower_products_preserves_corpus(name):
    g = CORPUS[name]
    try:
        lowered = assert_preserves(LowerProducts(), g, corner_vectors(g))
    except IRError as e:  # only strided convolutions are refused
        assert "stride" in str(e) or "cannot lower a requant" in str(e), e
        return
    _check_lowered_invariants(g, lowered)


def _check_lowered_invariants(g: IntGraph, lowered: IntGraph) -> None:
    """Every REQUANT rounds FLOOR (HALF_UP's constant went into the product) or HALF_EVEN
    (kept: its increment depends on the data) and reads a CMVM consumed by it alone; no
    products left."""
    uses: dict[int, int] = {}
    for n in lowered.nodes:
        for a in n.args:
            uses[a] = uses.get(a, 0) + 1
    for n in lowered.nodes:
        assert n.op not in (Op.DENSE, Op.CONV2D)
        if n.op is Op.REQUANT:
            arg = lowered.nodes[n.args[0]]
            assert arg.op is Op.CMVM and uses[arg.id] == 1 and arg.id not in lowered.outputs
            assert n.attrs.rounding in (Rounding.FLOOR, Rounding.HALF_EVEN)


def _expected_cmvm(g: IntGraph, n, rc: int) -> AdderGraph:
    """The adder graph the Verilog emitter has always used for product ``n`` (that of the
    former heatq.lower.lower_graph): its weights reshaped, the argument's range (with 0 when
    padded) and bias + rounding constant."""
    arg = g.nodes[n.args[0]]
    lo, hi = arg.lo, arg.hi
    if n.op is Op.CONV2D and n.attrs.padding:
        lo, hi = min(lo, 0), max(hi, 0)
    w = n.attrs.weight.reshape(n.attrs.weight.shape[0], -1)
    return lower_cmvm(w, [(lo, hi)] * w.shape[1], [int(b) + rc for b in n.attrs.bias],
                      max_carry=4)


@pytest.mark.parametrize("name", list(SIM_GRAPHS))
def test_adder_graphs_are_those_of_lower_cmvm(name):
    g = SIM_GRAPHS[name]()
    lowered = lower_products(g, max_carry=4)
    by_name = {n.name: n for n in lowered.nodes}
    for n in g.nodes:
        if n.op not in (Op.DENSE, Op.CONV2D):
            continue
        users = [m for m in g.nodes if n.id in m.args]
        fused = len(users) == 1 and n.id not in g.outputs and users[0].op is Op.REQUANT
        rc = rounding_const(users[0].attrs) if fused else 0
        got = by_name[f"{n.name}.rounded" if rc else n.name].attrs.graph
        want = _expected_cmvm(g, n, rc)
        assert (got.inputs, got.adders, got.outputs, got.max_carry) == (
            want.inputs, want.adders, want.outputs, want.max_carry), n.name


def test_names_and_folding():
    g = mlp_graph(1)
    lowered = lower_products(g)
    names = [n.name for n in lowered.nodes]
    assert names == ["input", "fc1.rounded", "relu1", "fc2", "bits", "decode"]
    old, new = g.by_name("relu1").attrs, lowered.by_name("relu1").attrs
    assert old.rounding is Rounding.HALF_UP and new.rounding is Rounding.FLOOR
    assert (new.shift, new.lo, new.hi, new.overflow) == (old.shift, old.lo, old.hi, old.overflow)
    assert lowered.by_name("fc1.rounded").type.frac == g.by_name("fc1").type.frac


def _fanout_graph() -> IntGraph:
    """A product read by two REQUANTs (no fold) and a REQUANT of the input."""
    rng = np.random.default_rng(0)
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs((5,), -8, 7), name="in")
    d = b.add(Op.DENSE, DenseAttrs(rng.integers(-7, 8, (4, 5)), rng.integers(-9, 9, 4), 4), [i],
              name="fc")
    r1 = b.add(Op.REQUANT, RequantAttrs(2, 0, 15), [d], name="r1")
    r2 = b.add(Op.REQUANT, RequantAttrs(1, -4, 3, Rounding.FLOOR, Overflow.WRAP), [d], name="r2")
    r3 = b.add(Op.REQUANT, RequantAttrs(-1, -8, 7), [i], name="r3")
    return b.build([r1, r2, r3, d])


def test_unfused_requants_get_pointwise_cmvms():
    g = _fanout_graph()
    lowered = assert_preserves(LowerProducts(), g, corner_vectors(g))
    _check_lowered_invariants(g, lowered)
    pre = {n.name: n for n in lowered.nodes if n.name.endswith(".pre")}
    assert sorted(pre) == ["r1.pre", "r2.pre", "r3.pre"]
    assert all(n.attrs.layout == "pointwise" for n in pre.values())
    zero = np.zeros((1, 4), dtype=np.int64)  # 0 is inside fc's range
    assert pre["r1.pre"].attrs.graph.evaluate(zero).tolist() == [[2] * 4]  # 2**(2-1)
    assert pre["r2.pre"].attrs.graph.evaluate(zero).tolist() == [[0] * 4]
    assert not pre["r2.pre"].attrs.graph.adders  # FLOOR: an identity, no adder
    assert lowered.by_name("fc").op is Op.CMVM  # keeps its name: computes the product exactly


class _Corrupt(Pass):
    """Lowers, then adds 1 to the constant of one adder of the first CMVM (a broken pass)."""

    name = "corrupt"

    def __call__(self, graph):
        lowered = lower_products(graph)
        b = GraphBuilder()
        done = False
        for n in lowered.nodes:
            attrs = n.attrs
            if n.op is Op.CMVM and not done:
                ag = attrs.graph
                k = next(i for i, ad in enumerate(ag.adders) if ad.b is None)
                ad = ag.adders[k]
                adders = list(ag.adders)
                adders[k] = replace(ad, const=ad.const + 1, lo=ad.lo + 1, hi=ad.hi + 1)
                outs = tuple(replace(o, lo=o.lo + 1, hi=o.hi + 1) if o.node == ad.id else o
                             for o in ag.outputs)
                attrs = CmvmAttrs(AdderGraph(ag.inputs, tuple(adders), outs, ag.max_carry),
                                  attrs.layout, attrs.kernel, attrs.padding, attrs.w_frac)
                done = True
            b.add(n.op, attrs, n.args, n.name)
        return b.build(lowered.outputs, lowered.meta)


def test_assert_preserves_catches_a_changed_adder_constant():
    g = _fanout_graph()
    x = corner_vectors(g)
    assert_preserves(LowerProducts(), g, x)
    with pytest.raises(AssertionError, match="corrupt: (output|the values)"):
        assert_preserves(_Corrupt(), g, x)


def test_pass_manager_verifies_and_names_the_pass():
    g = mlp_graph(1)
    out = PassManager([LowerProducts(), LowerProducts()]).run(g)
    out.verify()

    class Broken(Pass):
        name = "broken"

        def __call__(self, graph):
            return IntGraph(graph.nodes, (99,), graph.meta)

    with pytest.raises(IRError, match="after pass broken: output id 99 is not a node"):
        PassManager([Broken()]).run(g)


def test_strided_conv_lowers_exactly():
    """A stride-2 conv (padding 1, and 1x1 padding 0) becomes a conv2d CMVM with stride 2
    whose values equal the conv's on every position of every vector."""
    from heatq.ir import Conv2dAttrs, run

    rng = np.random.default_rng(7)
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs((2, 7, 6), -3, 4))
    c3 = b.add(Op.CONV2D, Conv2dAttrs(rng.integers(-3, 4, (3, 2, 3, 3)), rng.integers(-5, 6, 3),
                                      3, stride=2, padding=1), [i], name="c3")
    c1 = b.add(Op.CONV2D, Conv2dAttrs(rng.integers(-3, 4, (3, 2, 1, 1)), np.zeros(3), 3,
                                      stride=2), [i], name="c1")
    g = b.build([c3, c1])
    low = lower_products(g)
    cm = [n for n in low.nodes if n.op is Op.CMVM]
    assert len(cm) == 2 and all(n.attrs.stride == 2 for n in cm)
    x = rng.integers(-3, 5, (40, 2, 7, 6))
    for got, want in zip(run(low, x), run(g, x)):
        assert got.shape == want.shape == (40, 3, 4, 3) and np.array_equal(got, want)
