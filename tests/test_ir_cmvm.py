"""CMVM: a constant matrix-vector product computed by its adder graph.  Each layout equals
the DENSE / CONV2D (or identity) it lowers, on random and corner inputs; the rule rejects
argument ranges the adder graph does not cover and bad layouts; a save / load round trip
rebuilds the same adder graph, and a damaged adder table is rejected."""

from __future__ import annotations

import json

import numpy as np
import pytest

from heatq.ir import (
    CmvmAttrs, Conv2dAttrs, DenseAttrs, GraphBuilder, InputAttrs, IRError, Op, load, run, save,
)
from heatq.lower import lower_cmvm


def _x(rng, shape, lo, hi, n=12):
    x = rng.integers(lo, hi + 1, size=(n,) + shape)
    x[0], x[1] = lo, hi
    return x


def dense_pair(rng, lo=-8, hi=7, n_in=6, n_out=4):
    w = rng.integers(-7, 8, size=(n_out, n_in))
    bias = rng.integers(-30, 30, size=n_out)
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs((n_in,), lo, hi))
    d = b.add(Op.DENSE, DenseAttrs(w, bias, 4, w_frac=2), [i], name="fc")
    g = lower_cmvm(w, [(lo, hi)] * n_in, bias)
    c = b.add(Op.CMVM, CmvmAttrs(g, "dense", w_frac=2), [i], name="fc_cmvm")
    return b.build([d, c])


def conv_pair(rng, padding, lo=0, hi=15):
    w = rng.integers(-3, 4, size=(3, 2, 3, 3))
    bias = rng.integers(-9, 9, size=3)
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs((2, 5, 4), lo, hi))
    d = b.add(Op.CONV2D, Conv2dAttrs(w, bias, 3, padding=padding), [i])
    rlo, rhi = (min(lo, 0), max(hi, 0)) if padding else (lo, hi)
    g = lower_cmvm(w.reshape(3, -1), [(rlo, rhi)] * 18, bias)
    c = b.add(Op.CMVM, CmvmAttrs(g, "conv2d", kernel=3, padding=padding), [i])
    return b.build([d, c])


def test_dense_layout_equals_dense():
    rng = np.random.default_rng(1)
    g = dense_pair(rng)
    assert g.nodes[1].type.frac == g.nodes[2].type.frac == 2
    a, c = run(g, _x(rng, (6,), -8, 7))
    assert np.array_equal(a, c)


@pytest.mark.parametrize("padding", [0, 1, 2])
def test_conv2d_layout_equals_conv2d(padding):
    rng = np.random.default_rng(padding)
    g = conv_pair(rng, padding)
    assert g.nodes[1].shape == g.nodes[2].shape
    a, c = run(g, _x(rng, (2, 5, 4), 0, 15))
    assert np.array_equal(a, c)


@pytest.mark.parametrize("shape", [(3, 2, 2), (3,)])
def test_pointwise_layout_is_per_pixel(shape):
    rng = np.random.default_rng(3)
    w = np.array([[1, 0, 0], [0, 0, 1], [2, -1, 0], [0, 0, 0]])
    g = lower_cmvm(w, [(-4, 3)] * 3, [5, 0, 0, 7])
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs(shape, -4, 3))
    c = b.add(Op.CMVM, CmvmAttrs(g, "pointwise"), [i])
    graph = b.build([c])
    x = _x(rng, shape, -4, 3)
    (y,) = run(graph, x)
    want = np.einsum("oc,nc...->no...", w, x) + np.array([5, 0, 0, 7]).reshape(
        (1, 4) + (1,) * (len(shape) - 1))
    assert np.array_equal(y, want)
    assert (graph.nodes[1].lo, graph.nodes[1].hi) == (-11, 10)  # 2*x0 - x1 over -4..3


def test_range_is_the_adder_graph_outputs():
    rng = np.random.default_rng(4)
    g = dense_pair(rng)
    node = g.nodes[2]
    outs = node.attrs.graph.outputs
    assert (node.lo, node.hi) == (min(o.lo for o in outs), max(o.hi for o in outs))


def test_argument_outside_the_adder_graph_inputs_is_rejected():
    g = lower_cmvm(np.eye(2, dtype=np.int64), [(0, 7)] * 2)
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs((2,), -1, 7))
    with pytest.raises(IRError, match=r"input 0 covers 0..7, but the argument spans -1..7"):
        b.add(Op.CMVM, CmvmAttrs(g, "dense"), [i])


def test_padding_needs_zero_in_the_input_ranges():
    g = lower_cmvm(np.ones((1, 4), dtype=np.int64), [(1, 7)] * 4)
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs((1, 3, 3), 1, 7))
    b.add(Op.CMVM, CmvmAttrs(g, "conv2d", kernel=2), [i])  # unpadded: fine
    with pytest.raises(IRError, match=r"\(zero-padded\) spans 0..7"):
        b.add(Op.CMVM, CmvmAttrs(g, "conv2d", kernel=2, padding=1), [i])


@pytest.mark.parametrize("attrs,shape,needle", [
    (dict(layout="matrix"), (2,), "layout 'matrix' is not one of"),
    (dict(layout="dense"), (3,), "3 values per vector, the adder graph 2 inputs"),
    (dict(layout="dense"), (2, 1, 1), "flat input"),
    (dict(layout="dense", kernel=3), (2,), "must be 1 / 0"),
    (dict(layout="conv2d", kernel=2), (2, 3, 3), "2 channels x 2x2 window = 8 values"),
    (dict(layout="conv2d", kernel=1), (2, 0 + 1, 1), None),
])
def test_bad_layouts_are_rejected(attrs, shape, needle):
    g = lower_cmvm(np.eye(2, dtype=np.int64), [(0, 7)] * 2)
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs(shape, 0, 7))
    if needle is None:
        b.add(Op.CMVM, CmvmAttrs(g, **attrs), [i])
        return
    with pytest.raises(IRError, match=needle):
        b.add(Op.CMVM, CmvmAttrs(g, **attrs), [i])


@pytest.mark.parametrize("max_carry", [None, 3])
def test_round_trip_rebuilds_the_same_adder_graph(tmp_path, max_carry):
    rng = np.random.default_rng(5)
    w = rng.integers(-7, 8, size=(5, 8))
    bias = rng.integers(-50, 50, size=5)
    g = lower_cmvm(w, [(-8, 7)] * 8, bias, max_carry=max_carry)
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs((8,), -8, 7))
    c = b.add(Op.CMVM, CmvmAttrs(g, "dense", w_frac=1), [i], name="fc")
    graph = b.build([c])
    back = load(save(graph, tmp_path))
    h = back.nodes[1].attrs.graph
    assert (h.inputs, h.adders, h.outputs, h.max_carry) == (g.inputs, g.adders, g.outputs,
                                                            g.max_carry)
    assert h.meta == json.loads(json.dumps(g.meta))
    assert back.nodes[1].attrs.w_frac == 1 and back.nodes[1].attrs.layout == "dense"
    x = _x(rng, (8,), -8, 7)
    assert np.array_equal(run(back, x)[0], run(graph, x)[0])


def _saved(tmp_path):
    rng = np.random.default_rng(6)
    path = save(dense_pair(rng), tmp_path)
    return path, tmp_path / "model.npz"


def _edit_adders(npz, change):
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays["2.graph.adders"])
    np.savez(npz, **arrays)


@pytest.mark.parametrize("change,needle", [
    (lambda a: a.__setitem__((0, 0), 99), "is not an earlier node"),
    (lambda a: a.__setitem__((0, 1), -1), "non-negative shift"),
    (lambda a: a.__setitem__((0, 6), 5), "adds a term and a constant"),
])
def test_damaged_adder_table_is_rejected(tmp_path, change, needle):
    path, npz = _saved(tmp_path)
    _edit_adders(npz, change)
    with pytest.raises(IRError, match=needle):
        load(path)


def test_changed_adder_constant_changes_the_rebuilt_ranges(tmp_path):
    """An edited constant is not trusted: the ranges are derived again, so the stored node
    range (from the original graph) no longer matches and the file is rejected."""
    path, npz = _saved(tmp_path)
    with np.load(npz) as z:
        adders = z["2.graph.adders"]
    row = int(np.nonzero(adders[:, 3] == -1)[0][0])  # a constant adder
    _edit_adders(npz, lambda a: a.__setitem__((row, 6), a[row, 6] + 1000))
    with pytest.raises(IRError, match="disagree with the rules"):
        load(path)


def test_save_refuses_an_adder_graph_beyond_int64(tmp_path):
    g = lower_cmvm(np.array([[1, 1]]), [(0, 1 << 70)] * 2)
    b = GraphBuilder()
    i = b.add(Op.INPUT, InputAttrs((2,), 0, 1 << 70))
    c = b.add(Op.CMVM, CmvmAttrs(g, "dense"), [i])
    graph = b.build([c])
    x = np.array([[1 << 70, 1 << 70], [0, 3]], dtype=object)
    assert [int(v) for v in run(graph, x)[0].ravel()] == [1 << 71, 3]
    with pytest.raises(IRError, match=r"input range value \d+ does not fit int64 \(cannot save\)"):
        save(graph, tmp_path)
