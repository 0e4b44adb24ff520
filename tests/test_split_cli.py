"""``heatq split`` and ``heatq check`` on a split run (issue 10, items 2 and 3): the run
directory it writes, the 100 % regrouping check (and its failure on a corrupted split), every
bad input as one line with nothing written, and --out safety.  On the trained MLP fixture."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from heatq.files import load_graph, output_kind
from heatq.ir import GraphBuilder, IntGraph, Op, load, run, save
from heatq.split import command

from test_outputs import assert_refused, invoke, unchanged

SPLIT_FILES = {"model.ir.json", "model.npz", "base.ir.json", "base.npz", "config.json",
               "summary.json"}
BINARIZE = ["--weights", "bitplane", "--acts", "thermometer"]


@pytest.fixture(scope="module")
def split_dir(mlp_run, tmp_path_factory) -> tuple[Path, str]:
    """The MLP binarized (bit-plane weights to {-1,+1}, thermometer activations) and the
    command's stdout (adders not counted: lowering 32 products takes a minute)."""
    out = tmp_path_factory.mktemp("split") / "binary"
    r = invoke("heatq", "split", mlp_run, *BINARIZE, "--no-adders", "--out", out, "-q")
    assert r.rc == 0, r.err
    return out, r.out


def rebuilt(graph: IntGraph, change) -> IntGraph:
    """``graph`` with ``change(node)`` as each node's attrs (ranges derived again)."""
    b = GraphBuilder()
    for n in graph.nodes:
        b.add(n.op, change(n), list(n.args), n.name)
    return b.build(list(graph.outputs), graph.meta)


def test_split_writes_a_run_directory(split_dir, mlp_run):
    out, text = split_dir
    assert {p.name for p in out.iterdir()} == SPLIT_FILES
    assert output_kind(out) == "run"
    config = json.loads((out / "config.json").read_text())
    original = json.loads((mlp_run / "config.json").read_text())
    assert {k: v for k, v in config.items() if k not in ("split", "base_run")} == original
    assert config["split"] == {"weights": "bitplane", "k": None, "acts": "thermometer",
                               "to": "binary", "layers": None}
    assert Path(config["base_run"]) == mlp_run.resolve()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "run"
    base, split = load(out / "base.ir.json"), load_graph(out)
    x = np.random.default_rng(0).integers(0, 2, (8, *base.nodes[0].shape))
    for a, b in zip(run(base, x), run(load_graph(mlp_run), x)):
        assert np.array_equal(a, b)  # base.ir.json is the unsplit graph
    for a, b in zip(run(split, x), run(base, x)):
        assert np.array_equal(a, b)
    prods = [n for n in split.nodes if n.op in (Op.DENSE, Op.CONV2D)]
    assert prods and all(n.attrs.w_bits == 1 for n in prods)
    assert all(split.nodes[n.args[0]].hi <= 1 and split.nodes[n.args[0]].lo >= 0
               for n in prods)
    assert summary["binarization"] == {"products": len(prods), "binary_weights": len(prods),
                                       "ternary_weights": len(prods),
                                       "binary_inputs": len(prods)}
    assert set(summary["layers"]) == {"hidden_1.lin", "fc.lin"}
    for name, fig in summary["layers"].items():
        before = load_graph(mlp_run).by_name(name).attrs.weight
        assert fig["before"]["weights"] == before.size
        assert fig["before"]["weight_bits"] == before.size * 3
        assert fig["after"]["products"] > 1
        assert fig["after"]["fan_in"] >= fig["before"]["fan_in"]
        assert fig["before"]["adders"] is None and fig["after"]["adders"] is None
    from heatq.split.stats import layer_nodes

    for name, made in split.meta["products"].items():  # the pass's own record agrees
        assert sorted(p.name for p in layer_nodes(split, name)[0]) == sorted(made)
    # the activation split multiplies fc's fan-in by the 7 thermometer units of a 3-bit act
    assert summary["layers"]["fc.lin"]["after"]["fan_in"] % (7 * 128) == 0
    assert text.startswith("Model weights bit_width\n")
    assert "Model activations bit_width" in text and "(binary network)" in text
    rows = [ln.split() for ln in text.splitlines() if ln.startswith("  hidden_1.lin ")
            or ln.startswith("  fc.lin ")]
    assert len(rows) == 2 and all("->" in r for r in rows)


def test_split_counts_adders_of_the_split_layers_only(mlp_run, tmp_path):
    r = invoke("heatq", "split", mlp_run, "--weights", "csd", "--to", "ternary", "--layers",
               "fc.lin", "--out", tmp_path / "sp", "-q")
    assert r.rc == 0, r.err
    layers = json.loads((tmp_path / "sp" / "summary.json").read_text())["layers"]
    assert layers["hidden_1.lin"]["before"] == layers["hidden_1.lin"]["after"]
    fc = layers["fc.lin"]
    assert fc["after"]["products"] >= 2 and fc["before"]["adders"] > 0
    assert fc["after"]["adders"] > 0 and fc["after"]["adder_bits"] > fc["after"]["adders"]
    assert fc["after"]["weight_bits"] == fc["after"]["weights"] * 2  # ternary: 2-bit weights
    row = next(ln for ln in r.out.splitlines() if ln.startswith("  fc.lin "))
    assert f"{fc['before']['adders']} -> {fc['after']['adders']}" in row


def test_check_on_a_split_run_is_100_percent(split_dir, mlp_run):
    out, _ = split_dir
    r = invoke("heatq", "check", out, "--n", "40", "-q")
    assert r.rc == 0, r.err
    result = json.loads((out / "check.json").read_text())
    names = {n.name for n in load_graph(mlp_run).named()} - {"input"}
    assert set(result["layers"]) == names and result["n_samples"] == 40
    assert all(v == 1.0 for v in result["layers"].values()) and result["all_equal"]
    assert all(f"{name:<28}100.00 %" in r.out for name in names)
    r = invoke("heatq", "check", out, "--n", "5", "--split", "train", "-q")
    assert r.rc == 0 and "train split" in r.out


def _corrupt(split_dir: Path, mlp_run: Path) -> str:
    """Change one weight of a product (negate it), at an input that is 1 on the first image;
    returns the product's name."""
    from heatq.data import load_dataset
    from heatq.rundir import codes_of

    config = json.loads((mlp_run / "config.json").read_text())
    ic, _ = codes_of(config)
    x = ic.encode_numpy(load_dataset("digits").x_test[:1]).astype(np.int64)
    graph = load_graph(split_dir)
    trace = run(graph, x, trace=True)
    prod = next(n for n in graph.nodes if n.op is Op.DENSE and trace[n.args[0]].any())
    j = int(np.flatnonzero(trace[prod.args[0]][0])[0])

    def change(n):
        if n.id != prod.id:
            return n.attrs
        w = n.attrs.weight.copy()
        w[0, j] = -w[0, j] or 1  # a different value (a zero weight becomes 1)
        return replace(n.attrs, weight=w)

    save(rebuilt(graph, change), split_dir)
    return prod.name


def test_check_fails_on_a_corrupted_split(split_dir, mlp_run, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(split_dir[0], bad)
    _corrupt(bad, mlp_run)
    r = invoke("heatq", "check", bad, "--n", "20", "-q")
    assert r.rc == 1, (r.rc, r.err)
    assert "MISMATCH" in r.out
    layers = json.loads((bad / "check.json").read_text())["layers"]
    assert layers["hidden_1.lin"] < 1.0 or layers["fc.lin"] < 1.0


# ------------------------------------------------------------------------- bad input
@pytest.fixture
def ws(tmp_path, mlp_run, monkeypatch):
    shutil.copytree(mlp_run, tmp_path / "run")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me\n")
    monkeypatch.chdir(tmp_path)

    def no_split(*a, **k):
        raise AssertionError("split before validating")

    monkeypatch.setattr(command, "apply_split", no_split)
    return tmp_path


@pytest.mark.parametrize("args, needles", [
    (["--weights", "foo"], ["unknown --weights 'foo'"]),
    (["--weights", "bitplane:3"], ["unknown --weights"]),
    (["--weights", "balanced:1"], ["balanced:K", "K >= 2"]),
    (["--weights", "balanced:x"], ["balanced:K"]),
    (["--acts", "relu"], ["unknown --acts 'relu'"]),
    (["--weights", "csd", "--to", "0"], ["--to", "'0'"]),
    (["--weights", "csd", "--to", "quaternary"], ["--to"]),
    (["--to", "binary"], ["nothing to split", "--weights", "--acts"]),
    (["--weights", "bitplane", "--to", "3"], ["nothing to split", "3-bit"]),
    (["--acts", "bitplane", "--layers", "hidden_1.lin"], ["nothing to split", "1-bit inputs"]),
    (["--weights", "csd", "--acts", "thermometer", "--to", "4"], ["--to 4", "binary"]),
    (["--weights", "csd", "--layers", "nope"], ["unknown layer 'nope'", "hidden_1.lin"]),
    (["--weights", "csd", "--layers", "hidden_1.act"], ["'hidden_1.act' is a requant",
                                                        "not a product"]),
    (["--weights", "csd", "--layers", "fc.lin,,"], ["empty layer name"]),
])
def test_bad_options_are_one_line_and_write_nothing(ws, args, needles):
    with unchanged(ws):
        assert_refused(invoke("heatq", "split", ws / "run", *args, "--out", ws / "new"),
                       "heatq", *needles)


def _save_run(ws: Path, name: str, change) -> Path:
    d = ws / name
    shutil.copytree(ws / "run", d)
    save(rebuilt(load_graph(d), change), d)
    return d


def test_a_run_that_is_not_quantized_is_refused(ws):
    wide = _save_run(ws, "wide", lambda n: replace(n.attrs, w_bits=20)
                     if n.name == "hidden_1.lin" else n.attrs)
    signed = _save_run(ws, "signed", lambda n: replace(n.attrs, lo=-1)
                       if n.op is Op.INPUT else n.attrs)
    with unchanged(ws):
        assert_refused(invoke("heatq", "split", wide, "--weights", "csd", "--out", ws / "o"),
                       "heatq", "not quantized", "hidden_1.lin", "20-bit")
        assert_refused(invoke("heatq", "split", signed, "--acts", "bitplane", "--out",
                              ws / "o"), "heatq", "not quantized", "-1..1", "unsigned")
        assert_refused(invoke("heatq", "split", ws / "nothere", "--weights", "csd", "--out",
                              ws / "o"), "heatq", "nothere", "no such run")


@pytest.mark.parametrize("where, needle", [
    ("run", "is the input"), ("run/sub", "inside the input"), ("mine", "not a heatq run"),
])
def test_out_safety(ws, where, needle):
    with unchanged(ws):
        assert_refused(invoke("heatq", "split", ws / "run", "--weights", "csd", "--out",
                              ws / where, "--force"), "heatq", needle)


def test_a_split_run_is_not_split_again_and_is_replaced_only_with_force(ws, split_dir):
    shutil.copytree(split_dir[0], ws / "sp")
    with unchanged(ws):
        assert_refused(invoke("heatq", "split", ws / "sp", "--weights", "csd", "--out",
                              ws / "o"), "heatq", "already a split run")
        assert_refused(invoke("heatq", "split", ws / "run", "--weights", "csd", "--out",
                              ws / "sp"), "heatq", "already holds a heatq run", "--force")


def test_force_replaces_an_earlier_split_run(split_dir, mlp_run, tmp_path):
    out = tmp_path / "sp"
    shutil.copytree(split_dir[0], out)
    r = invoke("heatq", "split", mlp_run, "--weights", "csd", "--to", "ternary", "--layers",
               "fc.lin", "--no-adders", "--out", out, "--force", "-q")
    assert r.rc == 0, r.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["split"]["weights"] == "csd" and summary["layers"]["fc.lin"]["after"][
        "adders"] is None
    assert "not counted: --no-adders" in r.out
    assert [p.name for p in tmp_path.iterdir()] == ["sp"]


def test_adder_costs_are_those_of_the_whole_lowered_graph(mlp_run):
    from heatq.passes.lower import lower_products
    from heatq.split.stats import adder_costs

    graph = load_graph(mlp_run)
    costs = adder_costs(graph)
    whole = {n.name: n.attrs.graph.stats() for n in lower_products(graph).nodes
             if n.op is Op.CMVM}
    for n in graph.nodes:
        if n.op is Op.DENSE:
            s = whole[f"{n.name}.rounded"] if f"{n.name}.rounded" in whole else whole[n.name]
            assert costs[n.id][:2] == (s["adders"], s["adder_bits"]) and s["adders"] > 0
            assert 0 < costs[n.id][2] < 2 * s["adder_bits"]  # the LUT + CARRY4 model
    assert len(costs) == 2


def test_a_split_the_pass_cannot_make_is_one_line_naming_the_node(mlp_run, tmp_path):
    shutil.copytree(mlp_run, tmp_path / "run")
    with unchanged(tmp_path):  # 2 {-1,+1} copies cannot sum to the 3-bit weights' |w| = 3
        assert_refused(invoke("heatq", "split", tmp_path / "run", "--weights", "balanced:2",
                              "--to", "binary", "--out", tmp_path / "o"),
                       "heatq", "dense", "hidden_1.lin", "k=2")


def test_check_on_a_split_run_without_its_base_graph_is_one_line(split_dir, tmp_path):
    bad = tmp_path / "nobase"
    shutil.copytree(split_dir[0], bad)
    (bad / "base.ir.json").unlink()
    with unchanged(tmp_path):
        assert_refused(invoke("heatq", "check", bad, "--n", "3"), "heatq", "base.ir.json",
                       "not found")


# ------------------------------------------------------- check --split train|validation|test
def _held_out(src: Path, dst: Path, fraction: float = 0.25, seed: int = 3) -> Path:
    """A copy of run ``src`` whose config records a held-out validation split."""
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config.update(val_fraction=fraction, val_seed=seed)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def _heat_images(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """(encoded validation images, encoded training part) as ``heatq heat`` loads them."""
    from heatq.heat.job import _load_data
    from heatq.rundir import codes_of

    config = json.loads((run / "config.json").read_text())
    ic, oc = codes_of(config)
    data, _ = _load_data(config, config["val_fraction"], config["val_seed"], ic, oc)
    return np.asarray(data.x_val), np.asarray(data.x_train)


def test_check_validation_uses_the_images_heat_used(mlp_run, tmp_path, monkeypatch):
    from heatq import pipeline

    run = _held_out(mlp_run, tmp_path / "run")
    seen = []
    real = pipeline.validate_activations

    def spy(model, graph, x, **k):
        seen.append(np.asarray(x))
        return real(model, graph, x, **k)

    monkeypatch.setattr(pipeline, "validate_activations", spy)
    x_val, x_tr = _heat_images(run)
    for split, want in (("validation", x_val), ("train", x_tr)):
        r = invoke("heatq", "check", run, "--split", split, "-q")
        assert r.rc == 0, r.err
        assert np.array_equal(seen[-1], want)  # the same images, in the same order
        result = json.loads((run / "check.json").read_text())
        assert result["split"] == split and result["n_samples"] == len(want)
        assert f"({len(want)} samples, {split} split)" in r.out
    assert 0 < len(x_val) < len(x_tr)


def test_check_validation_on_a_split_run(split_dir, tmp_path, monkeypatch):
    from heatq import split_check

    run = _held_out(split_dir[0], tmp_path / "sp")
    seen = []
    real = split_check.validate_split

    def spy(graph, base, x):
        seen.append(np.asarray(x))
        return real(graph, base, x)

    monkeypatch.setattr(split_check, "validate_split", spy)
    r = invoke("heatq", "check", run, "--split", "validation", "-q")
    assert r.rc == 0, r.err
    x_val, _ = _heat_images(run)
    assert np.array_equal(np.concatenate(seen), x_val.astype(np.int64))
    result = json.loads((run / "check.json").read_text())
    assert result["split"] == "validation" and result["all_equal"]
    assert result["n_samples"] == len(x_val) and "validation split" in r.out


def test_check_validation_without_a_held_out_split_is_one_line(mlp_run, split_dir, tmp_path):
    shutil.copytree(mlp_run, tmp_path / "run")
    shutil.copytree(split_dir[0], tmp_path / "sp")
    held = _held_out(mlp_run, tmp_path / "held")
    with unchanged(tmp_path):
        for run in ("run", "sp"):
            assert_refused(invoke("heatq", "check", tmp_path / run, "--split", "validation"),
                           "heatq", "no validation split", "--val-fraction")
        assert_refused(invoke("heatq", "check", tmp_path / "run", "--split", "dev"),
                       "heatq", "unknown split 'dev'", "validation")
        assert_refused(invoke("heatq", "check", held, "--split", "validation", "--dataset",
                              "mnist5k"), "heatq", "held-out part", "'digits'")
