"""Heating: schedules, noise magnitude, soft staircases, bit persistence, finalisers on toy
sensitivity tables (ILP vs brute force), and ``heat`` end to end on a tiny digits run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from heatq.check import validate_activations
from heatq.data import load_dataset
from heatq.errors import UserError
from heatq.heat.finalize import brute_force, greedy_peel, ilp_search, monotone_harm, solve_ilp
from heatq.heat.noise import (
    Heater, continuous_bound, set_bits, set_step_rule, sharpness_at, soft_round, soft_weight,
    tau_at,
)
from heatq.models import mlp, seed_cnn, set_layer_bits
from heatq.quant import QLinear, QReLU, integer_weights, largest_frac, weight_bound
from heatq.rundir import codes_of, load_graph, load_model

torch.set_num_threads(1)


# ------------------------------------------------------------------------------- schedules

@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("hold", [0.0, 0.25])
def test_tau_schedule_rises_from_0_to_1(schedule, hold):
    ps = np.linspace(0, 1, 101)
    taus = [tau_at(p, schedule, hold) for p in ps]
    assert taus[0] == 0.0 and taus[-1] == 1.0
    assert all(b >= a for a, b in zip(taus, taus[1:]))
    assert all(0.0 <= t <= 1.0 for t in taus)
    assert all(t == 1.0 for p, t in zip(ps, taus) if p >= 1 - hold)
    assert tau_at(0.5 * (1 - hold), schedule, hold) == pytest.approx(0.5)


def test_schedule_shapes_and_errors():
    assert tau_at(0.25, "linear") == pytest.approx(0.25)
    assert tau_at(0.25, "cosine") == pytest.approx((1 - math.cos(math.pi / 4)) / 2)
    with pytest.raises(ValueError):
        tau_at(0.5, "exponential")
    with pytest.raises(ValueError):
        tau_at(0.5, "linear", hold=1.0)
    s = [sharpness_at(t) for t in np.linspace(0, 1, 11)]
    assert s[0] == pytest.approx(2.0) and s[-1] == pytest.approx(60.0)
    assert all(b > a for a, b in zip(s, s[1:]))


# ------------------------------------------------------------------------------- noise

def _heated_linear(bits: int, seed: int = 0) -> QLinear:
    torch.manual_seed(seed)
    lin = QLinear(64, 32, bits)
    lin.mode = "heat"
    lin.heat_name = "lin"
    lin.train()
    return lin


@pytest.mark.parametrize("bits", [3, 4, 6])
def test_noise_at_tau_1_spans_the_rounding_error(bits):
    lin = _heated_linear(bits)
    gen = torch.Generator().manual_seed(0)
    lin.heater = Heater(tau=1.0, generator=gen)
    w = lin.weight.detach()
    noisy = lin.weight_transform(lin.weight).detach()
    delta = 2.0 ** -int(lin.w_frac)
    assert int(lin.w_frac) == largest_frac(float(w.abs().max()), weight_bound(bits))
    err_round = integer_weights(w, bits, int(lin.w_frac)) * delta - w
    err_noise = noisy - w
    # both live in [-delta/2, delta/2] ...
    assert float(err_round.abs().max()) <= delta / 2 + 1e-7
    assert float(err_noise.abs().max()) <= delta / 2 + 1e-7
    # ... and the noise fills that range (2048 samples of U(-1/2, 1/2) * delta)
    assert float(err_noise.max()) > 0.45 * delta and float(err_noise.min()) < -0.45 * delta
    assert abs(float(err_noise.mean())) < 0.05 * delta
    # at half the temperature, half the range
    lin.heater.tau = 0.5
    half = lin.weight_transform(lin.weight).detach() - w
    assert float(half.abs().max()) <= delta / 4 + 1e-7
    assert float(half.abs().max()) > 0.2 * delta
    # eval mode heat == quant: hard integers
    lin.eval()
    assert torch.equal(lin.weight_transform(lin.weight).detach(),
                       integer_weights(w, bits, int(lin.w_frac)) * delta)


def test_activation_noise_and_clip():
    relu = QReLU(bits=3)
    relu.mode = "heat"
    relu.heat_name = "act"
    relu.heater = Heater(tau=1.0, generator=torch.Generator().manual_seed(1))
    relu.train()
    y = torch.linspace(-2, 6, 4001)
    out, frac = relu(y, 0)
    delta = 2.0 ** -frac
    c = torch.clamp(y, 0, relu.top * delta)
    err = out - c
    assert float(err.abs().max()) <= delta / 2 + 1e-7
    assert float(err[y <= 0].abs().max()) == 0.0  # nothing where the ReLU is 0
    assert float(err.max()) > 0.45 * delta


def test_continuous_bits_noise_step_is_the_rounding_step_at_integer_bits():
    for bits in (3, 4, 6):
        lin = _heated_linear(bits)
        for beta_value, ratio in ((float(bits), 1.0), (bits - 0.5, None)):
            beta = torch.tensor(beta_value, requires_grad=True)
            lin.heater = Heater(tau=1.0, beta={"lin": beta},
                                generator=torch.Generator().manual_seed(0))
            w = lin.weight.detach()
            out = lin.weight_transform(lin.weight)
            delta = 2.0 ** -int(lin.w_frac)
            err = (out.detach() - w).abs().max()
            if ratio == 1.0:  # integer beta: exactly the rounding step's range
                assert float(err) <= delta / 2 + 1e-7 and float(err) > 0.45 * delta
            else:  # fewer bits: a coarser step
                assert float(err) > delta / 2
            (out * torch.randn_like(out)).sum().backward()
            assert beta.grad is not None and float(beta.grad) != 0.0
    assert float(continuous_bound(torch.tensor(1.0))) == 0.5
    assert float(continuous_bound(torch.tensor(4.0))) == 7.0


def test_mse_step_rule_clips_for_low_bits_and_set_bits_keeps_it():
    torch.manual_seed(0)
    lin = QLinear(256, 64, 2)
    lin.mode = "quant"
    lin.train()
    lin.weight_transform(lin.weight)
    f_max = int(lin.w_frac)
    w = lin.weight.detach()
    err_max = float(((integer_weights(w, 2, f_max) * 2.0 ** -f_max - w) ** 2).sum())
    lin.step_rule = "mse"
    lin.weight_transform(lin.weight)
    f = int(lin.w_frac)
    assert f > f_max  # finer step, the largest weights clipped
    assert float(((integer_weights(w, 2, f) * 2.0 ** -f - w) ** 2).sum()) < err_max
    net = mlp(1, 10, image_size=8)
    set_step_rule(net, "mse")
    set_bits(net, {"hidden_1.lin": 2, "fc.lin": 3})
    steps = dict(net.steps())
    assert steps["hidden_1.lin"].bits == 2 and steps["fc.lin"].bits == 3
    assert int(steps["hidden_1.lin"].w_frac) > largest_frac(
        float(steps["hidden_1.lin"].weight.detach().abs().max()), 1)


def test_soft_staircase():
    x = torch.linspace(-3, 3, 601)
    assert torch.allclose(soft_round(x, 1e-3), x, atol=1e-3)  # ~identity when soft
    hard = soft_round(x, 400.0)
    away = (x - torch.round(x)).abs() < 0.45
    assert torch.allclose(hard[away], torch.round(x)[away], atol=1e-6)
    ints = torch.arange(-3.0, 4.0)
    assert torch.allclose(soft_round(ints, 7.0), ints, atol=1e-6)  # continuous at integers
    w = torch.linspace(-1, 1, 201)
    one = soft_weight(w, 1.0, 1, 400.0)
    assert torch.allclose(one[w.abs() > 0.1], torch.sign(w)[w.abs() > 0.1], atol=1e-5)
    two = soft_weight(w * 1.4, 1.0, 2, 400.0)
    assert float(two.max()) <= 1.0 and float(two.min()) >= -1.0


def test_soft_regime_for_two_bit_layers_gives_beta_a_gradient():
    lin = _heated_linear(2)
    beta = torch.tensor(2.0, requires_grad=True)
    lin.heater = Heater(tau=1.0, sharpness=5.0, beta={"lin": beta},
                        generator=torch.Generator().manual_seed(0))
    out = lin.weight_transform(lin.weight)
    delta = 2.0 ** -int(lin.w_frac)
    assert torch.allclose(out, soft_weight(lin.weight, delta, 2, 5.0), atol=1e-6)
    (out * torch.randn_like(out)).sum().backward()
    assert beta.grad is not None and float(beta.grad) != 0.0


# ------------------------------------------------------------------------------- bits persist

def test_bits_travel_with_the_state_dict_and_old_states_load():
    torch.manual_seed(0)
    net = seed_cnn(4, 15)
    set_layer_bits(net, {"conv_block_2.conv2d": 2, "fc.lin": 3}, {"conv_block_1.act": 3})
    other = seed_cnn(4, 15)
    other.load_state_dict(net.state_dict())
    steps = dict(other.steps())
    assert steps["conv_block_2.conv2d"].bits == 2 and steps["fc.lin"].bits == 3
    assert steps["conv_block_1.act"].bits == 3 and steps["conv_block_1.act"].top == 7
    old = {k: v for k, v in net.state_dict().items() if not k.endswith(("w_bits", "a_bits"))}
    fresh = seed_cnn(4, 15, w_bits=5)
    fresh.load_state_dict(old)
    assert dict(fresh.steps())["conv_block_2.conv2d"].bits == 5


# ------------------------------------------------------------------------------- finalisers

def _toy(seed: int, knobs: int = 4, lo: int = 1, hi: int = 6):
    rng = np.random.default_rng(seed)
    names = [f"layer{i}" for i in range(knobs)]
    size = {k: int(rng.integers(10, 200)) for k in names}
    harm = {}
    for k in names:  # convex-ish, decreasing in bits, noisy scale per layer
        scale = float(rng.uniform(0.2, 3.0))
        harm[k] = monotone_harm({b: scale * 2.0 ** -(2 * (b - lo)) + float(rng.uniform(0, 0.01))
                                 for b in range(lo, hi + 1)})
    domains = {k: list(range(lo, hi + 1)) for k in names}
    return names, size, harm, domains


@pytest.mark.parametrize("seed", range(4))
def test_ilp_is_optimal_against_brute_force(seed):
    names, size, harm, domains = _toy(seed)
    lin = {k: float(size[k]) for k in names}
    cost = lambda b: sum(lin[k] * b[k] for k in names)  # noqa: E731
    for budget in (0.05, 0.3, 1.0):
        got = solve_ilp(domains, harm, budget, lin)
        want = brute_force(domains, harm, budget, cost)
        assert (got is None) == (want is None)
        if got is not None:
            assert sum(harm[k][got[k]] for k in names) <= budget + 1e-9
            assert cost(got) == pytest.approx(cost(want))


@pytest.mark.parametrize("act", ["bops", "split_luts"])
def test_ilp_bilinear_bops_against_brute_force(act):
    names, size, harm, domains = _toy(7, knobs=4, hi=5)
    lin = {names[0]: 50.0}
    quad = {(names[2], names[1]): 30.0, (names[3], names[1]): 5.0, (names[3], names[2]): 11.0}
    g = (lambda a: a) if act == "bops" else (lambda a: 2 ** a - 1)  # noqa: E731
    cost = lambda b: (lin[names[0]] * b[names[0]]  # noqa: E731
                      + sum(c * b[j] * g(b[k]) for (j, k), c in quad.items()))
    for budget in (0.1, 0.5, 2.0):
        got = solve_ilp(domains, harm, budget, lin, quad, g)
        want = brute_force(domains, harm, budget, cost)
        assert cost(got) == pytest.approx(cost(want))


def test_ilp_infeasible_budget_is_none():
    names, _, harm, domains = _toy(1)
    assert solve_ilp(domains, harm, -1.0, {k: 1.0 for k in names}) is None


@pytest.mark.parametrize("seed", range(3))
def test_greedy_and_ilp_search_respect_the_constraint(seed):
    names, size, harm, domains = _toy(seed)
    budget = 0.4  # the "true" constraint: total harm <= budget
    lin = {k: float(size[k]) for k in names}
    cost = lambda b: sum(lin[k] * b[k] for k in names)  # noqa: E731
    total = lambda b: sum(harm[k][b[k]] for k in names)  # noqa: E731
    start = {k: 6 for k in names}
    calls = []

    def accept(b):
        calls.append(dict(b))
        return total(b) <= budget

    lo = {k: 1 for k in names}
    g = greedy_peel(start, lo, cost, total, accept)
    assert total(g) <= budget and all(1 <= g[k] <= 6 for k in names)
    for k in names:  # greedy ends where no single layer can go one bit lower
        assert g[k] == 1 or total({**g, k: g[k] - 1}) > budget
    retried = []
    g2 = greedy_peel(start, lo, cost, total, accept, retry=lambda b: retried.append(b) or False)
    assert g2 == g and retried  # a refused step gets its second chance before freezing
    i = ilp_search(start, domains, harm, lin, {}, cost, accept)
    assert total(i) <= budget
    best = brute_force(domains, harm, budget, cost)
    assert cost(i) == pytest.approx(cost(best))  # exact sensitivities: the ILP finds the optimum
    assert cost(g) >= cost(best) - 1e-9


def test_paired_standard_error():
    from heatq.heat.constraint import paired_se

    ref = np.array([True] * 90 + [False] * 10)
    same = ref.copy()
    assert paired_se(ref, same) == 0.0 and paired_se(None, same) == 0.0
    rng = np.random.default_rng(3)
    for _ in range(20):
        other = ref ^ (rng.random(100) < 0.1)
        d = ref.astype(float) - other.astype(float)  # per-sample difference of correctness
        assert paired_se(ref, other) == pytest.approx(100 * d.std() / np.sqrt(len(d)))


def test_constraint_margin_is_z_standard_errors():
    from heatq.heat.constraint import Constraint, one_sided_confidence

    ref = np.array([True] * 95 + [False] * 5)
    worse = ref.copy()
    worse[:2] = False  # 2 pt worse, 2 discordant of 100
    se = 100 * np.sqrt(2 - 4 / 100) / 100
    loose = Constraint(2.0, 0.0, float(ref.mean()), ref).judge(float(worse.mean()), worse)
    assert loose.met and loose.drop == pytest.approx(2.0) and loose.margin == 0.0
    tight = Constraint(2.0, 1.0, float(ref.mean()), ref).judge(float(worse.mean()), worse)
    assert not tight.met and tight.margin == pytest.approx(se) and tight.upper > 2.0
    assert Constraint(2.0 + se, 1.0, float(ref.mean()), ref).judge(worse.mean(), worse).met
    assert one_sided_confidence(1.645) == pytest.approx(0.95, abs=1e-3)


# ------------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A run directory as ``heatq train`` writes it: MLP on digits, 4-bit, no shift
    augmentation (8x8 images do not survive 2-pixel shifts), a few seconds of training."""
    from dataclasses import asdict

    from heatq.codes import parse_input_code, parse_output_code
    from heatq.qnet_ir import convert
    from heatq.models import build_model
    from heatq.rundir import atomic_dir, save_run, write_json
    from heatq.train import TrainConfig, encode, train

    out = tmp_path_factory.mktemp("heat") / "run"
    ds = load_dataset("digits", seed=0)
    ic, oc = parse_input_code("thermometer:3"), parse_output_code("hadamard:15", 10, seed=0)
    spec = {"model": "mlp", "in_channels": 3, "code_length": oc.length, "w_bits": 4,
            "a_bits": 4, "image_size": 8, "hidden": 64}
    torch.manual_seed(0)
    net = build_model(spec)
    cfg = TrainConfig(epochs=10, qat_epochs=2, max_shift=0, seed=0, progress=False)
    metrics = train(net, encode(ic, ds.x_train), ds.y_train, encode(ic, ds.x_test), ds.y_test,
                    oc, cfg)
    assert metrics["acc_quant"] > 0.8
    config = {"model": net.spec, "dataset": "digits", "train_per_class": None, "seed": 0,
              "input_code": ic.spec, "output_code": oc.name, "codebook": oc.matrix.tolist(),
              "train": asdict(cfg)}
    with atomic_dir(out) as tmp:
        save_run(tmp, net, convert(net, oc.matrix, {"dataset": "digits"}), config)
        write_json(tmp / "summary.json", metrics)
    return out


def _heat(run, out, **kw):
    from heatq.heat.command import heat

    args = dict(max_acc_drop=5.0, epochs=3, finetune_epochs=1, quench_epochs=1, ref_epochs=None,
                progress=False)
    args.update(kw)
    return heat(run, out, **args)


@pytest.mark.parametrize("solver,objective", [("greedy", "bits"), ("ilp", "bops")])
def test_heat_end_to_end_is_exact_and_meets_the_constraint(digits_run, tmp_path, solver,
                                                            objective):
    out = tmp_path / "heated"
    s = _heat(digits_run, out, solver=solver, objective=objective)
    for key in ("weight_bits", "act_bits", "acc_float", "acc_heated", "acc_drop_val",
                "constraint_met"):
        assert key in s
    assert s["constraint_met"] and s["acc_drop_val"] <= 5.0
    assert set(s["weight_bits"]) == {"hidden_1.lin", "fc.lin"}
    assert set(s["act_bits"]) == {"hidden_1.act"}
    assert all(1 <= b <= 4 for b in s["weight_bits"].values())  # never wider than the run's
    assert all(1 <= b <= 4 for b in s["act_bits"].values())
    for name in ("model.ir.json", "model.npz", "model.pt", "config.json", "summary.json",
                 "heating.png"):
        assert (out / name).is_file()
    assert json.loads((out / "summary.json").read_text())["weight_bits"] == s["weight_bits"]
    # the written run is a valid run: per-layer bits reload, activations 100 % on test images
    model, config = load_model(out)
    graph = load_graph(out)
    steps = dict(model.steps())
    assert {k: steps[k].bits for k in s["weight_bits"]} == s["weight_bits"]
    assert graph.meta["weight_bits"] == s["weight_bits"]
    ic, _ = codes_of(config)
    ds = load_dataset(config["dataset"], seed=config["seed"])
    result = validate_activations(model, graph, ic.encode_numpy(ds.x_test[:200]), progress=False)
    assert result["all_equal"], result["layers"]
    assert all(v == 1.0 for v in result["layers"].values())


def test_reference_is_retrained_unless_the_run_held_validation_out(digits_run, tmp_path):
    first = _heat(digits_run, tmp_path / "a", epochs=1, max_bits=4)
    assert first["reference"]["network"].startswith("retrained")
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["val_fraction"] == 0.2 and config["val_seed"] == 0
    again = _heat(tmp_path / "a", tmp_path / "b", epochs=1, max_bits=4, seed=3)
    assert again["reference"] == {"network": "run", "held_out": True, "epochs": 0}
    assert again["n_val"] == first["n_val"]


def test_impossible_constraint_writes_nothing_and_exits_1(digits_run, tmp_path):
    # the run's own weights as the reference (no retraining): it has seen the validation
    # images, and 1-bit weights and activations cannot match it exactly; the source run
    # and the start network (4 bits) are outside --max-bits 1: nothing meets the bound
    from heatq.heat.job import NoFeasibleNetwork

    with pytest.raises(NoFeasibleNetwork, match=r"heated: drop [0-9.]+ \+ margin") as e:
        _heat(digits_run, tmp_path / "imp", max_acc_drop=0.0, max_bits=1, max_act_bits=1,
              epochs=1, ref_epochs=0)
    assert e.value.exit_code == 1 and "nothing written" in str(e.value)
    assert not (tmp_path / "imp").exists()


def _ruin_heating(monkeypatch):
    """Make the finalisation end on a network that misses any sensible constraint (every
    weight zero), as when no bit widths meet it."""
    from heatq.heat import job

    def ruined(search, *args, **kwargs):
        search.state = {k: torch.zeros_like(v) if k.endswith("weight") else v
                        for k, v in search.state.items()}
        return False

    monkeypatch.setattr(job, "finalise", ruined)


def test_no_heated_widths_fall_back_to_the_source_run(digits_run, tmp_path, monkeypatch,
                                                      capsys):
    _ruin_heating(monkeypatch)
    s = _heat(digits_run, tmp_path / "fb", max_acc_drop=20.0, epochs=1, ref_epochs=0)
    assert s["exported"]["network"] == "source run (unheated)"
    assert not s["heated_result"]["constraint_met"] and s["heated_result"]["acc_drop_val"] > 20
    assert s["constraint_met"] and s["acc_drop_val"] <= 20.0
    assert set(s["weight_bits"].values()) == {4} and set(s["act_bits"].values()) == {4}
    out = capsys.readouterr().out
    assert "exported: source run (unheated): the heated network does not meet the constraint" in out
    # the written network is the source run's own: same integer graph
    src, dst = load_graph(digits_run), load_graph(tmp_path / "fb")
    for a, b in zip(src.nodes, dst.nodes):
        for f in ("weight", "bias"):
            if hasattr(a.attrs, f):
                assert np.array_equal(getattr(a.attrs, f), getattr(b.attrs, f))
    assert json.loads((tmp_path / "fb" / "summary.json").read_text())["exported"] == s["exported"]


def test_against_the_start_network_the_start_always_meets(digits_run, tmp_path, monkeypatch):
    # ruined heating and a source run that misses 0 pt: the start network, measured against
    # itself (drop 0, no discordant samples, margin 0), is the one written
    from heatq.heat import job

    _ruin_heating(monkeypatch)
    real, calls = job.load_model, []

    def ruined_source(directory):  # the first load opens the run; later ones are the fallback
        model, config = real(directory)
        calls.append(directory)
        if len(calls) > 1:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name.endswith("weight"):
                        p.zero_()
        return model, config

    monkeypatch.setattr(job, "load_model", ruined_source)
    s = _heat(digits_run, tmp_path / "st", max_acc_drop=0.0, epochs=1, reference="start",
              noise_margin=1.0)
    assert s["exported"]["network"].startswith("start network")
    assert s["constraint_met"] and s["acc_drop_val"] == 0.0 and s["margin"]["points"] == 0.0
    assert s["reference_against"] == "start"


def test_strict_exits_1_and_writes_nothing(digits_run, tmp_path, monkeypatch):
    from heatq.heat.job import NoFeasibleNetwork

    _ruin_heating(monkeypatch)
    with pytest.raises(NoFeasibleNetwork, match="nothing written") as e:
        _heat(digits_run, tmp_path / "strict", max_acc_drop=20.0, epochs=1, ref_epochs=0,
              strict=True)
    assert e.value.exit_code == 1
    assert not (tmp_path / "strict").exists()


def test_out_equal_to_or_inside_the_source_is_refused(digits_run):
    before = {p.name: p.read_bytes() for p in digits_run.iterdir() if p.is_file()}
    for out in (digits_run, digits_run / "heated"):
        with pytest.raises(UserError):
            _heat(digits_run, out)
    assert {p.name: p.read_bytes() for p in digits_run.iterdir() if p.is_file()} == before
    assert not (digits_run / "heated").exists()


@pytest.mark.parametrize("kw,match", [
    ({"solver": "annealing"}, "solver"),
    ({"objective": "luts"}, "objective"),
    ({"reference": "teacher"}, "reference"),
    ({"distill": 2.0}, "distill"),
    ({"sweep": "0.5,x"}, "sweep"),
    ({"sweep": "0.5,-1"}, "sweep"),
    ({"min_bits": 5, "max_bits": 3}, "min-bits"),
    ({"min_bits": 0}, "min-bits"),
    ({"max_acc_drop": -1.0}, "max-acc-drop"),
    ({"schedule": "step"}, "schedule"),
])
def test_bad_input_is_a_user_error(digits_run, tmp_path, kw, match):
    with pytest.raises(UserError, match=match):
        _heat(digits_run, tmp_path / "bad", **kw)
    assert not (tmp_path / "bad").exists()


def test_missing_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such run directory"):
        _heat(tmp_path / "nope", tmp_path / "out")


def test_train_holds_the_validation_split_out_and_heat_uses_it(tmp_path, monkeypatch):
    """``heatq train --val-fraction`` trains on the rest only; heat reuses that split."""
    from heatq import pipeline
    from heatq.data import split_validation

    seen = {}
    real_train = pipeline.train

    def spy(net, x_train, y_train, *args):
        seen["y"] = np.asarray(y_train).copy()
        seen["n"] = len(x_train)
        return real_train(net, x_train, y_train, *args)

    monkeypatch.setattr(pipeline, "train", spy)
    run = tmp_path / "run"
    s = pipeline.train_run(run, "digits", "mlp", "thermometer:3", "hadamard:15", 4, 4,
                           epochs=1, qat_epochs=1, seed=5, progress=False, val_fraction=0.25)
    ds = load_dataset("digits", seed=5)
    _, y_tr, _, y_val = split_validation(ds.x_train, ds.y_train, 0.25, 5)
    assert seen["n"] == len(y_tr) == s["n_train"]
    assert np.array_equal(seen["y"], y_tr)
    assert s["n_val"] == len(y_val) > 0 and s["n_train"] + s["n_val"] == len(ds.y_train)
    config = json.loads((run / "config.json").read_text())
    assert config["val_fraction"] == 0.25 and config["val_seed"] == 5
    assert (run / "model_float.pt").is_file()
    heated = _heat(run, tmp_path / "h", epochs=1, max_bits=4, seed=9)
    assert heated["reference"]["network"] == "run's float network (before QAT)"
    assert heated["reference"]["held_out"]
    assert heated["n_val"] == len(y_val) and heated["n_train"] == len(y_tr)
    # heating starts from the very network whose test accuracy train reported as float
    assert heated["acc_float"] == s["acc_float"]
    with pytest.raises(UserError, match="val-fraction"):
        pipeline.train_run(tmp_path / "bad", "digits", "mlp", "thermometer:3", "hadamard:15",
                           4, 4, epochs=0, progress=False, val_fraction=1.0)


def test_sweep_writes_a_front_whose_cost_never_rises_as_the_bound_loosens(digits_run, tmp_path):
    from heatq.files import output_kind
    from heatq.heat.sweep import point_name

    out = tmp_path / "sweep"
    s = _heat(digits_run, out, sweep="20,1,5", epochs=1, objective="split_luts")
    doc = json.loads((out / "pareto.json").read_text())
    assert s["sweep"] == [1.0, 5.0, 20.0] and output_kind(out) == "sweep"
    met = [p for p in doc["points"] if p["constraint_met"]]
    assert met, doc
    # each looser bound starts from the tighter point's network and only peels further
    costs = [p["split_luts"] for p in met]
    assert costs == sorted(costs, reverse=True), costs
    assert any(p["pareto"] for p in met)
    for p in met:
        assert p["acc_drop_val"] + p["margin"]["points"] <= p["max_acc_drop"] + 1e-9
        run = out / point_name(p["max_acc_drop"])
        assert p["run"] == run.name and output_kind(run) == "run"
        model, config = load_model(run)
        ic, _ = codes_of(config)
        ds = load_dataset(config["dataset"], seed=config["seed"])
        check = validate_activations(model, load_graph(run), ic.encode_numpy(ds.x_test[:100]),
                                     progress=False)
        assert check["all_equal"], check["layers"]
    assert (out / "pareto.png").stat().st_size > 0
    with pytest.raises(UserError, match="already|exists"):
        _heat(digits_run, out, sweep="1,5", epochs=1)


def test_split_luts_and_bops_count_from_the_layer_shapes(digits_run):
    from heatq.heat.lagrange import cost_model

    model, _ = load_model(digits_run)
    cm = cost_model(model, "split_luts")
    bits = {"hidden_1.lin": 3, "hidden_1.act": 2, "fc.lin": 2}
    steps = dict(model.steps())
    n1, n2 = steps["hidden_1.lin"].weight.numel(), steps["fc.lin"].weight.numel()
    assert cm.split_luts(bits) == n1 * 3 * 1 + n2 * 2 * (2 ** 2 - 1)  # input code: 1-bit
    assert cm.bops(bits) == n1 * 3 * 1 + n2 * 2 * 2  # dense layers: MACs = weights
    assert cm.cost(bits) == pytest.approx(cm.split_luts(bits))
    assert cost_model(model, "bops").cost(bits) == pytest.approx(cm.bops(bits))


def test_heating_twice_with_one_seed_is_bit_identical(digits_run, tmp_path):
    a = _heat(digits_run, tmp_path / "a", epochs=2, seed=1)
    b = _heat(digits_run, tmp_path / "b", epochs=2, seed=1)
    assert (tmp_path / "a" / "model.ir.json").read_bytes() == \
        (tmp_path / "b" / "model.ir.json").read_bytes()
    assert (tmp_path / "a" / "model.npz").read_bytes() == (tmp_path / "b" / "model.npz").read_bytes()
    drop = ("seconds", "provenance", "source")
    assert {k: v for k, v in a.items() if k not in drop} == \
        {k: v for k, v in b.items() if k not in drop}
    p = a["provenance"]
    assert p == b["provenance"] and p["deterministic"] and p["threads"] == 1
    assert p["seeds"]["heat"] == 1 and set(p["splits"]) == {"train", "validation", "test"}
    c = _heat(digits_run, tmp_path / "c", epochs=2, seed=2)
    assert c["provenance"]["splits"]["validation"] != p["splits"]["validation"]  # seed moves it


def test_confirmation_part_is_a_disjoint_stratified_half_of_validation():
    from heatq.heat.job import split_confirmation
    from heatq.heat.loop import Data

    y = np.repeat(np.arange(10), 20)
    x = torch.arange(len(y), dtype=torch.float32)[:, None]  # each image names its index
    data = Data(x, y, x, y, x, y, None)
    search, confirm = split_confirmation(data, 0.5, seed=4)
    s_idx, c_idx = search.x_val[:, 0].long().numpy(), confirm.x_val[:, 0].long().numpy()
    assert not set(s_idx) & set(c_idx) and sorted([*s_idx, *c_idx]) == list(range(len(y)))
    assert np.array_equal(search.y_val, y[s_idx]) and np.array_equal(confirm.y_val, y[c_idx])
    assert np.bincount(confirm.y_val).tolist() == [10] * 10  # stratified
    again, _ = split_confirmation(data, 0.5, seed=4)
    assert torch.equal(again.x_val, search.x_val)  # seeded
    assert split_confirmation(data, 0.0, seed=4) is None
    assert search.x_train is data.x_train  # the training part is untouched


def test_written_network_is_judged_on_the_confirmation_half(digits_run, tmp_path):
    s = _heat(digits_run, tmp_path / "c", epochs=1, confirm_fraction=0.5)
    assert s["n_val_confirm"] > 0 and s["n_val_search"] + s["n_val_confirm"] == s["n_val"]
    assert s["margin"]["n_val"] == s["n_val_confirm"]
    one = _heat(digits_run, tmp_path / "one", epochs=1, confirm_fraction=0.0)
    assert one["n_val_confirm"] == 0 and one["margin"]["n_val"] == one["n_val"] == s["n_val"]


def test_distillation_blends_the_teachers_code_bits(digits_run, tmp_path):
    from heatq.heat.loop import Data

    x = torch.zeros(4, 2)
    hard = torch.tensor([[1.0, 0.0, 1.0]] * 4)
    data = Data(x, None, x, None, x, None, None, teacher=lambda xb: torch.zeros(len(xb), 3),
                kd=0.25)
    assert torch.equal(data.soft_targets(x, hard), 0.75 * hard + 0.25 * 0.5)
    data.kd = 0.0
    assert data.soft_targets(x, hard) is hard
    # wired into heating: the same seed with and without distillation trains differently
    plain = _heat(digits_run, tmp_path / "plain", epochs=1, distill=0.0)
    taught = _heat(digits_run, tmp_path / "taught", epochs=1, distill=0.9)
    assert [t["loss_val"] for t in plain["trials"]] != [t["loss_val"] for t in taught["trials"]]


def test_strict_still_walks_back_to_an_earlier_heated_step(digits_run, tmp_path, monkeypatch):
    from heatq.heat import job

    seen = {}
    real = job.choose

    def spy(j, point, constraint, strict):
        seen["chain"] = len(point.chain)
        point.heated = {**point.heated, "acc_val": 0.0}  # the last step fails the check
        return real(j, point, constraint, strict)

    monkeypatch.setattr(job, "choose", spy)
    s = _heat(digits_run, tmp_path / "walk", epochs=1, max_acc_drop=20.0, strict=True)
    assert seen["chain"] >= 2, "the search accepted fewer than two steps; nothing to walk back"
    assert s["exported"]["network"] == "heated (an earlier step of the search)"
    assert s["constraint_met"]


def test_last_fallback_is_the_start_network_at_8_bits_unless_capped():
    from types import SimpleNamespace

    from heatq.heat.job import fallback_bits

    cm = SimpleNamespace(knobs=["w1", "a1", "w2"], weighted=["w1", "w2"])
    job = SimpleNamespace(cm=cm, hi={"w1": 4, "a1": 4, "w2": 3},
                          options={"max_bits": None, "max_act_bits": None})
    assert fallback_bits(job) == {"w1": 8, "a1": 8, "w2": 8}
    job.options = {"max_bits": 3, "max_act_bits": None}
    assert fallback_bits(job) == {"w1": 4, "a1": 8, "w2": 3}
    job.hi, job.options = {"w1": 10, "a1": 2, "w2": 3}, {"max_bits": None, "max_act_bits": 2}
    assert fallback_bits(job) == {"w1": 10, "a1": 2, "w2": 8}
