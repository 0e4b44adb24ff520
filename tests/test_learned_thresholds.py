"""Learned input thresholds (input code ``learned:T``): parse, encode, the straight-through step,
the IR form, frozen integers, and a tiny run converting exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from heatq.codes import parse_input_code, thermometer_thresholds
from heatq.errors import UserError
from heatq.ir import Op, run
from heatq.models import INPUT_CODE, build_model
from heatq.qnet_ir import convert
from heatq.thresholds import LearnedThermometer

CNN = {"model": "seed-cnn", "in_channels": 4, "code_length": 15, "w_bits": 4, "a_bits": 4,
       "image_size": 28, "input_thresholds": 4}


def test_parse_learned_code():
    ic = parse_input_code("learned:4")
    assert (ic.kind, ic.n, ic.spec, ic.learned) == ("learned", 4, "learned:4", True)
    assert ic.channels == 4 and ic.input_channels == 1
    assert ic.thresholds == thermometer_thresholds(4)
    assert parse_input_code(" Learned:255 ").n == 255
    assert not parse_input_code("thermometer:4").learned
    assert parse_input_code("bitplane:4").input_channels == 4
    for bad in ("learned:0", "learned:256", "learned", "learned:x"):
        with pytest.raises(UserError, match="learned:N"):
            parse_input_code(bad)


def test_learned_code_encodes_the_raw_pixels():
    x = np.random.default_rng(0).integers(0, 256, (3, 5, 6)).astype(np.uint8)
    ic = parse_input_code("learned:3")
    e = ic.encode_numpy(x)
    assert e.dtype == np.uint8 and e.shape == (3, 1, 5, 6)
    assert np.array_equal(e[:, 0], x)
    t = ic.encode_torch(torch.from_numpy(x))
    assert t.dtype == torch.float32 and tuple(t.shape) == (3, 1, 5, 6)
    assert np.array_equal(t[:, 0].numpy().astype(np.int64), x.astype(np.int64))


def test_frozen_thresholds_are_rounded_half_up_and_clamped_to_1_255():
    step = LearnedThermometer(4)
    with torch.no_grad():  # pixels: -25.6, 51 + 1/2, 999.9, 0.25 (theta = pixels / 256)
        step.theta.copy_(torch.tensor([-0.1, 51.5 / 256, 3.906, 0.25 / 256]))
    t = step.integer_thresholds()
    assert t.dtype == torch.int64
    assert t.tolist() == [1, 52, 255, 1]
    step = LearnedThermometer(5)  # starts at the fixed thermometer's thresholds, exactly
    assert step.integer_thresholds().tolist() == list(thermometer_thresholds(5))


def test_the_step_compares_hard_and_its_surrogate_moves_the_thresholds():
    torch.manual_seed(0)
    step = LearnedThermometer(2)
    step.train()
    x = torch.randint(0, 256, (16, 1, 6, 6)).float()
    y, frac = step(x, 0)
    t = step.integer_thresholds()
    assert frac == 0 and y.shape == (16, 2, 6, 6)
    assert torch.equal(y, (x >= t.view(1, -1, 1, 1).float()).float())  # hard 0/1 forward
    before = step.integer_thresholds().clone()
    opt = torch.optim.SGD(step.parameters(), lr=0.01)  # ~2.5 pixels a step
    for _ in range(20):  # fewer ones in channel 0, more in channel 1
        opt.zero_grad()
        y, _ = step(x, 0)
        (y[:, 0].mean() - y[:, 1].mean()).backward()
        assert step.theta.grad is not None and bool((step.theta.grad != 0).all())
        opt.step()
    after = step.integer_thresholds()
    assert after[0] > before[0] and after[1] < before[1]
    with pytest.raises(ValueError, match="binary point"):
        step(x, 1)


def _trained_cnn():
    torch.manual_seed(0)
    net = build_model(CNN)
    net.set_mode("quant")
    net.train()
    x = torch.randint(0, 256, (8, 1, 28, 28)).float()
    net(x)  # binary points
    with torch.no_grad():
        net.input_code.theta.copy_(torch.tensor([3.0, 90.4, 90.6, 250.0]) / 256)
    return net.eval()


def test_build_model_puts_the_step_first_and_takes_pixels():
    net = _trained_cnn()
    names = [n for n, _ in net.steps()]
    assert names[:2] == [INPUT_CODE, "conv_block_1.conv2d"]
    assert net.input_shape == (1, 28, 28) and net.spec["input_thresholds"] == 4
    rebuilt = build_model(net.spec)
    rebuilt.load_state_dict(net.state_dict())
    assert rebuilt.input_code.integer_thresholds().tolist() == [3, 90, 91, 250]
    old = {k: v for k, v in CNN.items() if k != "input_thresholds"}
    assert build_model(old).input_shape == (4, 28, 28)  # old specs unchanged
    with pytest.raises(UserError, match="in_channels"):
        build_model({**CNN, "in_channels": 3})


def test_the_ir_form_is_input_pixels_concat_copies_threshold():
    from heatq.check import validate_activations

    net = _trained_cnn()
    g = convert(net, np.eye(15, dtype=np.uint8)[:10])
    inp, copy, th = g.nodes[0], g.by_name("input_code.copy"), g.by_name(INPUT_CODE)
    assert (inp.op, inp.shape, inp.lo, inp.hi, inp.type.frac) == (Op.INPUT, (1, 28, 28), 0, 255, 0)
    assert copy.op is Op.CONCAT and copy.args == (0, 0, 0, 0) and copy.shape == (4, 28, 28)
    assert th.op is Op.THRESHOLD and th.args == (copy.id,) and (th.lo, th.hi) == (0, 1)
    assert th.attrs.thresholds.tolist() == [[3], [90], [91], [250]]
    assert g.by_name("conv_block_1.conv2d").args == (th.id,)
    # every pixel value: channel j is x >= t_j
    px = np.repeat(np.arange(256), 28 * 28 // 256 + 1)[:28 * 28].reshape(1, 1, 28, 28)
    planes = run(g, px, trace=True)[th.id]
    assert np.array_equal(planes, (px >= np.array([3, 90, 91, 250]).reshape(1, 4, 1, 1)))
    # the model equals the IR on every layer (both nodes of the step included)
    from heatq.ir.testing import corner_vectors

    x = np.concatenate([px, corner_vectors(g, seed=0)])
    res = validate_activations(net, g, x, progress=False)
    assert res["all_equal"] and {"input_code.copy", INPUT_CODE} <= set(res["layers"])


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory):
    """``heatq train --input-code learned:3`` on digits (MLP, 1 epoch + 1 QAT: seconds)."""
    from heatq.pipeline import train_run

    out = tmp_path_factory.mktemp("learned") / "run"
    summary = train_run(out, dataset="digits", model="mlp", input_code="learned:3",
                        output_code="hadamard:15", epochs=1, qat_epochs=1, seed=0,
                        progress=False)
    return out, summary


def test_a_learned_run_converts_exactly(learned_run):
    from heatq.data import load_dataset
    from heatq.inputs import target_inputs
    from heatq.pipeline import check_run
    from heatq.rundir import load_graph, load_model

    out, summary = learned_run
    assert summary["acc_ir"] == summary["acc_quant"]
    t = summary["input_thresholds"]
    assert len(t) == 3 and all(isinstance(v, int) and 1 <= v <= 255 for v in t)
    model, config = load_model(out)
    assert config["input_code"] == "learned:3" and config["model"]["input_thresholds"] == 3
    assert model.input_code.integer_thresholds().tolist() == t
    g = load_graph(out)
    assert g.nodes[0].shape == (1, 8, 8) and g.nodes[0].hi == 255
    assert g.by_name(INPUT_CODE).attrs.thresholds[:, 0].tolist() == t
    check = check_run(out, n=100, progress=False)
    assert check["all_equal"] and check["layers"][INPUT_CODE] == 1.0
    inputs = target_inputs(g, "run", n=5)  # the targets are fed pixels
    assert inputs.x.shape[1:] == (1, 8, 8) and inputs.x.max() <= 255
    assert np.array_equal(inputs.x[:5, 0], load_dataset("digits", seed=0).x_test[:5])


def test_heating_a_learned_run_keeps_it_exact(tmp_path):
    """Heating trains every parameter, the thresholds too; every forward compares with the
    rounded integers, so the heated network converts exactly wherever they end."""
    from heatq.heat.command import heat
    from heatq.pipeline import check_run, train_run
    from heatq.rundir import load_graph, load_model

    train_run(tmp_path / "run", dataset="digits", model="mlp", input_code="learned:3",
              output_code="hadamard:15", epochs=1, qat_epochs=1, seed=0, progress=False,
              val_fraction=0.25)
    heat(tmp_path / "run", tmp_path / "heated", max_acc_drop=50.0, epochs=1, finetune_epochs=1,
         quench_epochs=1, ref_epochs=None, progress=False)
    model, _ = load_model(tmp_path / "heated")
    t = model.input_code.integer_thresholds().tolist()
    assert all(1 <= v <= 255 for v in t)
    assert load_graph(tmp_path / "heated").by_name(INPUT_CODE).attrs.thresholds[:, 0].tolist() == t
    assert check_run(tmp_path / "heated", n=100, progress=False)["all_equal"]
