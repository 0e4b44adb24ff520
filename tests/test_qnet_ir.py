"""Convert exactness: quantized torch model == interpreter, every layer and sample."""

from __future__ import annotations

import json

import numpy as np
import pytest

from heatq import pipeline
from heatq.ir import Op
from heatq.rundir import load_graph, load_model


@pytest.mark.parametrize("run", ["cnn_run", "mlp_run"])
def test_check_is_exact_on_every_layer(run, request):
    directory = request.getfixturevalue(run)
    result = pipeline.check_run(directory, progress=False)
    assert result["n_samples"] > 100
    assert result["all_equal"], result["layers"]
    graph = load_graph(directory)
    # every named node except the input is checked
    assert set(result["layers"]) == {n.name for n in graph.nodes if n.name != "input"}
    assert json.loads((directory / "check.json").read_text())["all_equal"] is True


def test_check_detects_a_changed_weight(cnn_run, tmp_path):
    """The gate can fail: perturb one integer weight in the IR and the check must see it."""
    import shutil

    from heatq.ir import Conv2dAttrs, GraphBuilder, save

    bad = tmp_path / "bad"
    shutil.copytree(cnn_run, bad)
    graph = load_graph(bad)
    b = GraphBuilder()
    for n in graph.nodes:
        attrs = n.attrs
        if n.name == "conv_block_1.conv2d":
            w = attrs.weight.copy()
            w[0, 0, 2, 2] = -w[0, 0, 2, 2] if w[0, 0, 2, 2] else 1
            attrs = Conv2dAttrs(w, attrs.bias, attrs.w_bits, attrs.w_frac, attrs.stride,
                                attrs.padding)
        b.add(n.op, attrs, n.args, n.name)
    save(b.build(graph.outputs, graph.meta), bad)
    result = pipeline.check_run(bad, n=200, progress=False)
    assert not result["all_equal"]
    assert result["layers"]["conv_block_1.conv2d"] < 1.0


def test_graph_structure_and_widths(cnn_run):
    graph = load_graph(cnn_run)
    ops = [n.op for n in graph.nodes]
    assert ops.count(Op.CONV2D) == 4 and ops.count(Op.DENSE) == 1
    assert graph.by_name("conv_block_4.pool").shape == (64, 1, 1)
    assert graph.by_name("fc.lin").shape == (15,)
    for n in graph.nodes:
        if n.op is Op.REQUANT:
            assert (n.lo, n.hi) == (0, 15) or n.hi <= 15
            assert n.type.width <= 4 and not n.type.signed
        if n.op in (Op.CONV2D, Op.DENSE):
            assert np.abs(n.attrs.weight).max() <= 7


def test_torch_state_loads_with_weights_only(cnn_run):
    model, config = load_model(cnn_run)
    assert config["input_code"] == "bitplane:4"
    assert dict(model.weighted()).keys() == {"conv_block_1.conv2d", "conv_block_2.conv2d",
                                             "conv_block_3.conv2d", "conv_block_4.conv2d",
                                             "fc.lin"}


def test_fashion_pipeline_runs_unchanged(tmp_path):
    """The same pipeline on Debian's Fashion-MNIST with the seed protocol's per-class cut."""
    out = tmp_path / "fashion"
    s = pipeline.train_run(out, "fashion", "mlp", "bitplane:2", "hadamard:15", 4, 4, epochs=1,
                           qat_epochs=1, train_per_class=30, progress=False)
    assert s["n_train"] == 300 and s["n_test"] == 10000
    result = pipeline.check_run(out, n=300, progress=False)
    assert result["all_equal"]
