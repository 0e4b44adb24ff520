"""ResNet-20 (heatq/resnet.py): batch-norm folding, residual sums, stride-2 convs and the
global average pool, exact in the IR (``heatq check`` per layer), refusals by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heatq import pipeline
from heatq.check import validate_activations
from heatq.errors import UserError
from heatq.ir import Op, run
from heatq.models import build_model
from heatq.qnet_ir import convert
from heatq.resnet import QConvBN, QGlobalAvgPool, pooled_side
from heatq.rundir import load_graph
from heatq.train import calibrate

SPEC = {"model": "resnet20", "in_channels": 3, "code_length": 7, "w_bits": 4, "a_bits": 3,
        "image_size": 8, "width": 4, "blocks": 2}
CODEBOOK = (np.random.default_rng(0).random((5, 7)) > 0.5).astype(np.uint8)


def _trained_bn(net, x, steps: int = 3):
    """A few float training-mode passes so every BatchNorm has non-trivial statistics."""
    net.set_mode("float")
    net.train()
    with torch.no_grad():
        for _ in range(steps):
            net(x)
    for _, s in net.steps():
        if isinstance(s, QConvBN):  # a non-trivial affine as well
            s.bn.weight.data.uniform_(0.5, 1.5)
            s.bn.bias.data.uniform_(-0.3, 0.3)
    return net


def _binary(n: int, shape, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((n, *shape), generator=g) > 0.5).float()


def test_structure_names_strides_and_shortcuts():
    net = build_model(SPEC)
    names = [n for n, _ in net.steps()]
    assert names[:2] == ["stem.conv", "stem.act"] and names[-2:] == ["pool", "fc.lin"]
    steps = dict(net.steps())
    # stage 1 keeps the shape (identity shortcuts); stages 2, 3 open with stride 2 + projection
    assert "stage1.block1.shortcut" not in steps
    for s in (2, 3):
        assert steps[f"stage{s}.block1.conv1"].stride == 2
        assert steps[f"stage{s}.block1.shortcut"].stride == 2
        assert steps[f"stage{s}.block1.shortcut"].weight.shape[2:] == (1, 1)
        assert f"stage{s}.block2.shortcut" not in steps
    full = build_model({**SPEC, "width": 16, "blocks": 3, "image_size": 32, "in_channels": 12})
    convs = [n for n, s in full.steps() if isinstance(s, QConvBN) and "shortcut" not in n]
    assert len(convs) + 1 == 20  # ResNet-20: 19 convs on the main path + fc


def test_batch_norm_folds_into_the_weights_exactly_once():
    net = _trained_bn(build_model(SPEC), _binary(32, (3, 8, 8)))
    x = _binary(16, (3, 8, 8), seed=2)
    net.eval()
    with torch.no_grad():
        before = net(x)
    net.set_mode("quant")
    net.set_mode("float")  # folded: float mode now runs the folded convs without BN
    with torch.no_grad():
        after = net(x)
    assert all(s.folded for _, s in net.steps() if isinstance(s, QConvBN))
    assert torch.allclose(before, after, atol=1e-4), (before - after).abs().max()
    w = dict(net.steps())["stem.conv"].weight.detach().clone()
    net.set_mode("quant")  # a second switch does not fold again
    assert torch.equal(w, dict(net.steps())["stem.conv"].weight.detach())
    assert not any(p.requires_grad for _, s in net.steps() if isinstance(s, QConvBN)
                   for p in s.bn.parameters())


def test_every_layer_of_the_ir_equals_the_quantized_model():
    x = _binary(48, (3, 8, 8), seed=3)
    net = _trained_bn(build_model(SPEC), x)
    net.set_mode("quant")
    calibrate(net, x)
    graph = convert(net, CODEBOOK)
    ops = {n.op for n in graph.nodes}
    assert {Op.GLOBAL_AVGPOOL, Op.ADD, Op.CONV2D} <= ops
    assert any(n.op is Op.CONV2D and n.attrs.stride == 2 for n in graph.nodes)
    aligns = [n for n in graph.nodes if ".align" in n.name]
    assert aligns and all(n.op is Op.REQUANT and n.attrs.shift < 0 for n in aligns)
    result = validate_activations(net, graph, x.numpy().astype(np.uint8), progress=False)
    assert result["all_equal"], {k: v for k, v in result["layers"].items() if v < 1}
    assert set(result["layers"]) == {n.name for n in graph.nodes if n.name != "input"}
    # the pool is the channel mean: its integer at frac + log2(4) is the 2x2 sum
    pool = graph.by_name("pool")
    act = graph.by_name("stage3.block2.act2")
    vals = run(graph, x.numpy().astype(np.int64), trace=True)
    assert np.array_equal(vals[pool.id], vals[act.id].sum(axis=(2, 3)))
    assert pool.type.frac == act.type.frac + 2


def test_a_saved_model_rebuilds_the_same_graph(tmp_path):
    from heatq.ir import save

    x = _binary(32, (3, 8, 8), seed=4)
    net = _trained_bn(build_model(SPEC), x)
    net.set_mode("quant")
    calibrate(net, x)
    again = build_model(SPEC)
    again.load_state_dict(net.state_dict())
    again.set_mode("quant")  # already folded: the loaded weights stay as they are
    a, b = save(convert(net, CODEBOOK), tmp_path / "a"), save(convert(again, CODEBOOK), tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "a" / "model.npz").read_bytes() == (tmp_path / "b" / "model.npz").read_bytes()


@pytest.mark.parametrize("size,side", [(28, 7), (12, 3), (20, 5)])
def test_a_pool_over_a_non_power_of_two_count_is_refused_by_name(size, side):
    assert pooled_side(size) == side
    with pytest.raises(UserError, match=rf"layer pool .* {side}x{side} = {side * side} "):
        build_model({**SPEC, "image_size": size})


@pytest.mark.parametrize("size", [4, 8, 16, 32])
def test_power_of_two_pools_build(size):
    build_model({**SPEC, "image_size": size})


def test_global_avg_pool_is_the_mean():
    x = torch.randn(3, 5, 4, 2)
    y, f = QGlobalAvgPool()(x, 2)
    assert f == 5 and torch.allclose(y, x.mean(dim=(2, 3)))


def test_train_check_cli_end_to_end(tmp_path):
    """`heatq train --model resnet20` on the 8x8 digits (the pool averages 2x2), then
    `heatq check`: every layer 100 %."""
    out = tmp_path / "run"
    summary = pipeline.train_run(out, dataset="digits", model="resnet20", epochs=1,
                                 qat_epochs=1, progress=False)
    assert summary["acc_ir"] == summary["acc_quant"]
    result = pipeline.check_run(out, progress=False)
    assert result["all_equal"], result["layers"]
    assert load_graph(out).by_name("pool").op is Op.GLOBAL_AVGPOOL
