"""``heatq split --auto`` (issue 10 item 5, the exact variant): the choice per layer is the
argmin of costs computed here independently (the whole graph lowered by lower_products), the
combined graph regroups to the base graph on every sample, and every bad option is one line
with nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from heatq.ir import DenseAttrs, GraphBuilder, InputAttrs, IntGraph, Op, RequantAttrs, Rounding
from heatq.ir.corners import corner_vectors
from heatq.passes.lower import lower_products
from heatq.passes.split import split_acts, split_weights
from heatq.split.auto import AutoOptions, auto_split, check_auto
from heatq.split_check import validate_split

from test_outputs import assert_refused, invoke, unchanged


def tiny() -> IntGraph:
    """in (12 binary units) -> l1 (3-bit weights) -> relu (0..3) -> l2 (4-bit weights)."""
    rng = np.random.default_rng(5)
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((12,), 0, 1), name="in")
    d1 = b.add(Op.DENSE, DenseAttrs(rng.integers(-3, 4, (6, 12)), rng.integers(-4, 5, 6), 3),
               [x], "l1")
    r = b.add(Op.REQUANT, RequantAttrs(1, 0, 3, Rounding.HALF_UP), [d1], "relu")
    d2 = b.add(Op.DENSE, DenseAttrs(rng.integers(-7, 8, (4, 6)), rng.integers(-9, 10, 4), 4),
               [r], "l2")
    return b.build([d2])


def whole_cost(g: IntGraph) -> tuple[int, int, int]:
    """(adder bits, weight bits, luts) of the whole graph, independently of
    heatq.split.stats' bookkeeping: every CMVM of lower_products(g), every ADD as
    (m - 1) * n_out adders of its width; luts: the adder model of every CMVM, each ADD adder
    by the same model, one LUT per channel of every THRESHOLD unit (<= 6-bit arguments)."""
    from heatq.split.stats import adder_cells, adder_luts

    low = lower_products(g)
    cmvms = [n.attrs.graph for n in low.nodes if n.op is Op.CMVM]
    adds = [n for n in g.nodes if n.op is Op.ADD]
    bits = sum(ag.stats()["adder_bits"] for ag in cmvms)
    bits += sum((len(n.args) - 1) * n.shape[0] * n.type.width for n in adds)
    luts = sum(adder_luts(ag) for ag in cmvms)
    luts += sum((len(n.args) - 1) * n.shape[0] * adder_cells(n.type.width) for n in adds)
    luts += sum(n.shape[0] for n in g.nodes if n.op is Op.THRESHOLD)
    wbits = sum(n.attrs.weight.size * n.attrs.w_bits for n in g.nodes
                if n.op in (Op.DENSE, Op.CONV2D))
    return bits, wbits, luts


def split_one(g: IntGraph, layer: str, label: str, to) -> IntGraph:
    """``layer`` alone split as ``label`` says (weights[+acts]), straight from the passes."""
    w, _, a = label.partition("+")
    if a:
        g = split_acts(g, a, layers=[layer])
    parts = g.meta.get("products", {}).get(layer, [layer])
    return split_weights(g, w, to, layers=parts)


@pytest.mark.parametrize("objective", ["adder_bits", "luts", "weight_bits"])
@pytest.mark.parametrize("to", ["binary", "ternary"])
def test_choice_is_the_argmin_of_independent_costs(objective, to):
    g = tiny()
    opts = AutoOptions(objective, to, None)
    cands = check_auto(g, opts, "tiny")
    assert [c.label for c in cands["l1"]] == ["bitplane", "csd", "balanced"]  # 1-bit input
    assert len(cands["l2"]) == 6  # 3 weight kinds x 2 activation kinds
    split, auto = auto_split(g, opts, cands, {}, progress=False)
    for layer in ("l1", "l2"):
        mine = {label: whole_cost(split_one(g, layer, label, to)) for label in auto["costs"][layer]}
        assert set(mine) == {c.label for c in cands[layer]}
        col = {"adder_bits": 0, "weight_bits": 1, "luts": 2}[objective]
        best = min(v[col] for v in mine.values())
        assert mine[auto["choice"][layer]][col] == best
        # the reported per-layer costs differ exactly as the whole graphs' costs do
        ref = next(iter(mine))
        for label, fig in auto["costs"][layer].items():
            assert fig["adder_bits"] - auto["costs"][layer][ref]["adder_bits"] == \
                mine[label][0] - mine[ref][0]
            assert fig["weight_bits"] - auto["costs"][layer][ref]["weight_bits"] == \
                mine[label][1] - mine[ref][1]
            assert fig["luts"] - auto["costs"][layer][ref]["luts"] == \
                mine[label][2] - mine[ref][2]
    assert auto["ratio"] <= 1.0
    assert auto["total"][objective] <= min(v[objective] for v in auto["uniform"].values() if v)


@pytest.mark.parametrize("to", ["binary", "ternary", 3])
def test_the_combined_graph_regroups_exactly(to):
    g = tiny()
    opts = AutoOptions("adder_bits", to, None)
    split, auto = auto_split(g, opts, check_auto(g, opts, "tiny"), {}, progress=False)
    x = np.concatenate([corner_vectors(g), np.random.default_rng(1).integers(0, 2, (64, 12))])
    result = validate_split(split, g, x)
    assert result["all_equal"] and set(result["layers"].values()) == {1.0}
    bits = {"binary": 1, "ternary": 2}.get(to, to)
    for n in split.nodes:
        if n.op is Op.DENSE:
            assert np.abs(n.attrs.weight).max() <= max(1, (1 << (bits - 1)) - 1)
            if to != 3:
                assert split.nodes[n.args[0]].hi <= 1
    if to == 3:  # weights only: no activation candidates
        assert all("+" not in label for label in auto["choice"].values())


def test_auto_on_the_mlp_run(mlp_run, tmp_path):
    out = tmp_path / "auto"
    r = invoke("heatq", "split", mlp_run, "--auto", "--layers", "fc.lin", "--out", out, "-q")
    assert r.rc == 0, r.err
    summary = json.loads((out / "summary.json").read_text())
    auto = summary["auto"]
    assert set(auto["costs"]) == {"fc.lin"} and len(auto["costs"]["fc.lin"]) == 6
    figs = auto["costs"]["fc.lin"]
    assert figs[auto["choice"]["fc.lin"]]["adder_bits"] == min(
        f["adder_bits"] for f in figs.values())
    assert summary["layers"]["fc.lin"]["after"] == figs[auto["choice"]["fc.lin"]]
    assert summary["layers"]["hidden_1.lin"]["before"] == summary["layers"]["hidden_1.lin"][
        "after"]
    assert json.loads((out / "config.json").read_text())["split"]["auto"] is True
    assert "auto adder_bits / best uniform" in r.out and " *" in r.out
    r = invoke("heatq", "check", out, "--n", "20", "-q")
    assert r.rc == 0, r.err
    assert json.loads((out / "check.json").read_text())["all_equal"]


@pytest.mark.parametrize("args, needle", [
    (["--auto", "--weights", "csd"], "not both"),
    (["--auto", "--objective", "speed"], "unknown --objective"),
    (["--objective", "adder_bits", "--weights", "csd"], "--objective is for --auto"),
    (["--auto", "--max-acc-drop", "200"], "between 0 and 100"),
    (["--max-acc-drop", "0.5", "--weights", "csd"], "not both"),
    (["--auto", "--max-acc-drop", "0.5", "--layers", "nope"], "unknown layer 'nope'"),
    (["--auto", "--no-adders"], "--objective weight_bits"),
    (["--auto", "--objective", "luts", "--no-adders"], "--objective luts counts adders"),
    (["--auto", "--layers", "nope"], "unknown layer 'nope'"),
    (["--auto", "--to", "0"], "--to must be"),
    (["--auto", "--to", "4"], "nothing to split"),
])
def test_bad_auto_options_are_one_line(mlp_run, tmp_path, args, needle):
    with unchanged(tmp_path), unchanged(mlp_run):
        r = invoke("heatq", "split", mlp_run, *args, "--out", tmp_path / "o")
        assert_refused(r, "heatq", needle)


# ------------------------------------------------------------------ the LUT model
@pytest.mark.parametrize("weight, ranges, want", [
    ([[1, 1]], [(0, 255), (0, 255)], 8 + 2),  # 9-bit chain: 8 LUTs (+ carry out), 2 CARRY4
    ([[1, 1]], [(0, 1), (0, 1)], 1),          # 2 added bits: ripple gates, 1 LUT
    ([[1, 4]], [(0, 3), (0, 255)], 7 + 2),    # 2 low bits wired past, 8 added bits
    ([[1, 1, 1, 1]], [(0, 1)] * 4, 1 + 1 + 2),  # 1+1, 1+1, then 2+2 bits -> 3 bits
])
def test_adder_luts_model(weight, ranges, want):
    from heatq.lower.cmvm import lower_cmvm
    from heatq.split.stats import adder_luts

    assert adder_luts(lower_cmvm(np.array(weight), ranges, [0])) == want


def test_luts_objective_is_the_argmin_and_counts_threshold_units():
    g = tiny()
    opts = AutoOptions("luts", "binary", None)
    split, auto = auto_split(g, opts, check_auto(g, opts, "tiny"), {}, progress=False)
    figs = auto["costs"]["l2"]
    assert auto["choice"]["l2"] == min(figs, key=lambda k: figs[k]["luts"])
    assert all(0 < f["luts"] < 2 * f["adder_bits"] for f in figs.values())
    # the thermometer units of relu (0..3, 2 bits, 6 channels): 3 comparators of 1 LUT each
    # per channel on top of what the same weights cost on the bit-plane units
    from heatq.split.stats import _unit_luts, layer_nodes

    t = split_one(g, "l2", "bitplane+thermometer", "binary")
    assert _unit_luts(t, layer_nodes(t, "l2")[0]) == 6 * 3
    assert auto["ratio"] <= 1.0


def test_auto_splits_the_parts_of_a_widened_graph():
    """A widened run's graph (products ``<layer>.p<i>`` + ADD, meta["products"] keyed by the
    original layers) split automatically part by part: exact, and binary."""
    g = split_weights(tiny(), "balanced", "ternary")
    opts = AutoOptions("adder_bits", "binary", None)
    cands = check_auto(g, opts, "widened")
    assert set(cands) == {n.name for n in g.nodes if n.op is Op.DENSE} and len(cands) > 2
    split, auto = auto_split(g, opts, cands, {}, progress=False)
    assert not any(auto["refused"].values())
    x = np.concatenate([corner_vectors(g), np.random.default_rng(2).integers(0, 2, (32, 12))])
    assert validate_split(split, g, x)["all_equal"]
    assert all(n.attrs.w_bits == 1 and split.nodes[n.args[0]].hi <= 1
               for n in split.nodes if n.op is Op.DENSE)


@pytest.mark.slow
@pytest.mark.parametrize("min_bits", [2, 1])
def test_split_then_heat_on_the_mlp(mlp_run, tmp_path, min_bits):
    """--auto --max-acc-drop: widened (balanced, 2-bit parts), heated (tiny epochs; any drop
    allowed, so to min_bits), then the exact automatic split to binary (nothing left to split
    when heating reached 1 bit); the heated run is kept and the result checks 100 %."""
    from heatq.split.auto import parse_auto, split_then_heat

    out = tmp_path / "sth"
    opts = parse_auto("weight_bits", "binary", None, None, None, True, 100.0)
    summary = split_then_heat(mlp_run, out, opts, progress=False, heat_options=dict(
        epochs=1, finetune_epochs=1, quench_epochs=1, ref_epochs=0, min_bits=min_bits))
    heated = tmp_path / "sth-heated"
    hconf = json.loads((heated / "config.json").read_text())
    assert hconf["model"]["widen"] == {"hidden_1.lin": 2, "fc.lin": 2}  # 3 bits -> 2 x 2 bits
    assert "split" not in hconf and hconf["widened_from"]
    sth = summary["split_then_heat"]
    assert sth["widen"] == hconf["model"]["widen"] and sth["heated"]["constraint_met"]
    assert set(sth["heated"]["weight_bits"].values()) == {min_bits}
    split_any = any(c != "unchanged" for c in summary["auto"]["choice"].values())
    assert split_any == (min_bits > 1)
    assert sth["ratio_vs_exact_uniform"] == pytest.approx(
        summary["auto"]["total"]["weight_bits"]
        / sth["exact"]["uniform"][sth["exact"]["best_uniform"]]["weight_bits"])
    assert summary["binarization"]["products"] == summary["binarization"]["binary_weights"] \
        == summary["binarization"]["binary_inputs"]
    config = json.loads((out / "config.json").read_text())
    assert config["split"]["max_acc_drop"] == 100.0 and config["base_run"] == str(heated)
    r = invoke("heatq", "check", out, "--n", "20", "-q")
    assert r.rc == 0 and json.loads((out / "check.json").read_text())["all_equal"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sth", "sth-heated"]  # no temp left
