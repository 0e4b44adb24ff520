"""The widened network of a balanced weight split and split-then-heat (issue 10, item 4):
the widened torch model equals its base exactly (logits and every layer's integers), its
converted graph is the balanced split's graph, ``heatq split --weights balanced`` writes it,
``heatq heat`` heats it from exactly the base's accuracy into a normal run that ``heatq check``
passes, and other split runs are refused in one line."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from heatq.check import validate_activations
from heatq.qnet_ir import convert
from heatq.data import load_dataset
from heatq.errors import UserError
from heatq.ir import Op, run
from heatq.models import build_model
from heatq.passes.split import split_weights
from heatq.quant import WideConv2d, WideLinear
from heatq.rundir import codes_of, load_graph, load_model
from heatq.train import calibrate
from heatq.widen import apply_widen, widen_model

from test_outputs import assert_refused, invoke


def _trace_ints(net, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every traced layer's integers (float64, exact), by name."""
    m = copy.deepcopy(net).double().eval()
    with torch.no_grad():
        _, seen = m(torch.from_numpy(x.astype(np.float64)), trace=True)
    out = {}
    for name, (t, f) in seen.items():
        v = t.numpy() * 2.0 ** f
        assert np.array_equal(v, np.rint(v)), name
        out[name] = np.rint(v).astype(np.int64)
    return out


def _assert_same_as_base(base, wide, x: np.ndarray) -> None:
    """Float32 logits identical; every base layer's integers identical (float64 trace)."""
    with torch.no_grad():
        xt = torch.from_numpy(x).float()
        assert torch.equal(base.eval()(xt), wide.eval()(xt))
    tb, tw = _trace_ints(base, x), _trace_ints(wide, x)
    for name, v in tb.items():
        assert np.array_equal(v, tw[name]), name


def _assert_graph_is_the_split(wide, base_graph, widen: dict, bits, k, x: np.ndarray) -> None:
    """convert(widened) computes, node for node, the balanced split of the base graph: every
    original layer and every (nonzero) part equal, outputs equal to the base graph's."""
    ic_graph = convert(wide, base_graph.by_name("class").attrs.codebook)
    split = split_weights(base_graph, kind="balanced", to=bits, k=k)
    tw, ts, tb = (run(g, x, trace=True) for g in (ic_graph, split, base_graph))
    for n in base_graph.named():
        assert np.array_equal(tw[ic_graph.by_name(n.name).id], tb[n.id]), n.name
        assert np.array_equal(ts[split.by_name(n.name).id], tb[n.id]), n.name
    for layer, k_parts in widen.items():
        add = ic_graph.by_name(layer)
        assert add.op is Op.ADD and add.attrs.shifts == (0,) * k_parts
        parts = [ic_graph.nodes[a] for a in add.args]
        assert [p.name for p in parts] == [f"{layer}.part{i}" for i in range(k_parts)]
        assert ic_graph.meta["regroup"][layer] == [[p.name, 0] for p in parts]
        for i, p in enumerate(parts):
            assert p.attrs.w_bits == wide.get_submodule(layer).bits
            assert (i == 0) or not np.any(p.attrs.bias)
            twin = split.by_name(f"{layer}.c{i}") if any(
                n.name == f"{layer}.c{i}" for n in split.named()) else None
            if twin is None:  # the pass drops all-zero parts
                assert not np.any(p.attrs.weight)
                continue
            assert np.array_equal(p.attrs.weight, twin.attrs.weight)
            assert np.array_equal(tw[p.id], ts[twin.id])
    for a, b in zip(run(ic_graph, x), run(base_graph, x)):
        assert np.array_equal(a, b)


@pytest.fixture(scope="module")
def mlp_data(mlp_run):
    base, config = load_model(mlp_run)
    ic, _ = codes_of(config)
    ds = load_dataset("digits", seed=int(config.get("seed", 0)))
    return base, load_graph(mlp_run), ic.encode_numpy(ds.x_test).astype(np.int64)


@pytest.mark.parametrize("bits,k", [(2, None), (2, 5), ("binary", None)])
def test_widened_mlp_equals_base_and_converts_to_the_split(mlp_data, bits, k):
    base, graph, x = mlp_data
    target = {"binary": 1}.get(bits, bits)
    try:
        wide, widen = widen_model(base, target, k)
    except UserError as e:  # binary needs weights of one parity: mixed ones are refused
        assert bits == "binary" and "parity" in str(e)
        return
    assert widen and all(isinstance(wide.get_submodule(n), WideLinear) for n in widen)
    for name, kk in widen.items():
        step = wide.get_submodule(name)
        assert step.parts == kk and step.weight.shape[0] == kk and step.bits == target
        assert int(step.w_frac) == int(base.get_submodule(name).w_frac)
    _assert_same_as_base(base, wide, x)
    _assert_graph_is_the_split(wide, graph, widen, bits, k, x[:64])
    check = validate_activations(wide, convert(wide, graph.by_name("class").attrs.codebook),
                                 x[:64], progress=False)
    assert check["all_equal"] and "fc.lin.part0" in check["layers"]


def test_widened_cnn_equals_base_and_converts_to_the_split():
    """An untrained, calibrated seed CNN on real mnist5k images (the conv2d path)."""
    from heatq.codes import parse_input_code

    torch.manual_seed(0)
    spec = {"model": "seed-cnn", "in_channels": 4, "code_length": 15, "w_bits": 4,
            "a_bits": 3, "image_size": 28}
    base = build_model(spec)
    ds = load_dataset("mnist5k", train_per_class=20, seed=0)
    x = parse_input_code("bitplane:4").encode_numpy(ds.x_test[:24]).astype(np.int64)
    base.set_mode("quant")
    calibrate(base, torch.from_numpy(x).float())
    base.eval()
    codebook = (np.random.default_rng(0).random((10, 15)) > 0.5).astype(np.uint8)
    graph = convert(base, codebook)
    wide, widen = widen_model(base, 2)
    assert set(widen) == {n for n, _ in base.weighted()}
    assert isinstance(wide.get_submodule("conv_block_1.conv2d"), WideConv2d)
    _assert_same_as_base(base, wide, x)
    _assert_graph_is_the_split(wide, graph, widen, 2, None, x)


def test_widened_spec_state_and_heating_hooks(mlp_data):
    base, _, x = mlp_data
    wide, widen = widen_model(base, 2, layers=["fc.lin"])
    assert list(widen) == ["fc.lin"] and wide.spec["widen"] == widen
    again = build_model(wide.spec)  # the spec rebuilds the widened net; the state loads
    again.load_state_dict(wide.state_dict())
    again.set_mode("quant")
    _assert_same_as_base(wide, again, x[:32])
    from heatq.heat.lagrange import cost_model
    from heatq.heat.noise import Heater

    cm = cost_model(wide)
    k = widen["fc.lin"]
    assert cm.n_weights["fc.lin"] == k * base.get_submodule("fc.lin").weight.numel()
    assert cm.macs["fc.lin"] == cm.n_weights["fc.lin"]
    step = wide.get_submodule("fc.lin")
    hw = Heater(tau=1.0, soft_bits=0).weight(step, step.weight)
    assert hw.shape == step.weight.shape and not torch.equal(hw, step.weight)
    with pytest.raises(UserError, match="not a conv2d or linear"):
        apply_widen(build_model(base.spec), {"hidden_1.act": 2})
    with pytest.raises(UserError, match="integer K >= 1"):
        apply_widen(build_model(base.spec), {"fc.lin": 0})


def test_cnn_cost_model_counts_the_wider_fan_in():
    torch.manual_seed(0)
    base = build_model({"model": "seed-cnn", "in_channels": 1, "code_length": 8, "w_bits": 4,
                        "a_bits": 4, "image_size": 16})
    from heatq.heat.lagrange import cost_model

    plain = cost_model(base)
    wide = build_model({**base.spec, "widen": {"conv_block_2.conv2d": 3}})
    cm = cost_model(wide)
    for key in ("n_weights", "macs"):
        assert getattr(cm, key)["conv_block_2.conv2d"] == 3 * getattr(plain, key)[
            "conv_block_2.conv2d"]
        assert getattr(cm, key)["conv_block_1.conv2d"] == getattr(plain, key)[
            "conv_block_1.conv2d"]


def test_split_then_heat_cli_round_trip(mlp_run, tmp_path):
    """split --weights balanced --to 2 -> model.pt + widen spec; heat starts at exactly the
    base's accuracy and writes a normal run; check passes on the split and the heated run."""
    s, h = tmp_path / "S", tmp_path / "H"
    r = invoke("heatq", "split", mlp_run, "--weights", "balanced", "--to", "2", "--no-adders",
               "--out", s, "-q")
    assert r.rc == 0 and "widened torch network (model.pt, for heatq heat): " in r.out, r.err
    config = json.loads((s / "config.json").read_text())
    summary = json.loads((s / "summary.json").read_text())
    assert (s / "model.pt").is_file() and config["model"]["widen"] == summary["widened"]
    assert set(config["model"]["widen"]) == {"hidden_1.lin", "fc.lin"}
    r = invoke("heatq", "check", s, "--n", "60")
    assert r.rc == 0, r.out + r.err
    r = invoke("heatq", "heat", s, "--out", h, "--max-acc-drop", "5", "--epochs", "1",
               "--finetune-epochs", "1", "--quench-epochs", "1", "--ref-epochs", "0", "-q")
    assert r.rc == 0, r.err
    heated = json.loads((h / "summary.json").read_text())
    base_summary = json.loads((mlp_run / "summary.json").read_text())
    assert heated["start"]["acc_test"] == base_summary["acc_ir"]  # exactly the unsplit accuracy
    assert "starts at test accuracy" in r.out
    hc = json.loads((h / "config.json").read_text())
    assert "split" not in hc and "base_run" not in hc
    assert hc["widened_from"] == config["base_run"] and hc["model"]["widen"] == config[
        "model"]["widen"]
    assert all(b <= 2 for b in heated["weight_bits"].values())
    g = load_graph(mlp_run)  # K x the weights of a widened layer are counted
    assert heated["n_weights"] == sum(g.by_name(n).attrs.weight.size * hc["model"]["widen"].get(
        n, 1) for n in heated["weight_bits"])
    r = invoke("heatq", "check", h, "--n", "60")
    assert r.rc == 0, r.out + r.err
    assert json.loads((h / "check.json").read_text())["layers"]["fc.lin.part0"] == 1.0
    r = invoke("heatq", "split", h, "--weights", "bitplane", "--to", "binary", "--no-adders",
               "--out", tmp_path / "HB", "-q")  # the heated widened run splits on
    assert r.rc == 0, r.err
    r = invoke("heatq", "check", tmp_path / "HB", "--n", "30")
    assert r.rc == 0 and "fc.lin.part0" in r.out, r.out + r.err


def test_heat_refuses_a_split_run_without_a_torch_network(mlp_run, tmp_path):
    s = tmp_path / "S"
    r = invoke("heatq", "split", mlp_run, "--weights", "csd", "--to", "2", "--no-adders",
               "--out", s, "-q")
    assert r.rc == 0, r.err
    assert not (s / "model.pt").exists()
    assert json.loads((s / "summary.json").read_text())["widened"] is None
    r = invoke("heatq", "heat", s, "--out", tmp_path / "H", "-q")
    assert_refused(r, "heatq", str(s), "only balanced weight splits")
    assert not (tmp_path / "H").exists()


def test_float_source_of_a_heated_base(tmp_path):
    """Split-then-heat of a heated base is held to the float network the base was heated
    against: its heat source, as recorded or moved beside the base, with model_float.pt."""
    from heatq.heat.start import float_source

    base, src = tmp_path / "demo" / "run", tmp_path / "demo" / "run-4bit"
    for d in (base, src):
        d.mkdir(parents=True)
        (d / "config.json").write_text("{}")
    config = {"heat": {"source": "elsewhere/run-4bit"}}
    assert float_source(base, config) is None  # no float network there
    (src / "model_float.pt").write_bytes(b"")
    assert float_source(base, config) == src
    assert float_source(base, {"heat": {"source": str(src)}}) == src
    assert float_source(base, {}) is None
