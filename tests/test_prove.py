"""``heatq prove``: layer modules proved equal to a reference written from the IR (yosys +
ABC), a mutated adder found NOT EQUIVALENT with a counterexample, one-line errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from heatq.ir import run, save
from heatq_export.base import write_export
from heatq_export.prove import prove_export, reference_values
from heatq_export.prove_ref import layer_specs
from heatq_export.verilog import VerilogEmitter
from heatq_sim.graphs import mlp_graph, seed_cnn_graph

from tools import require_tool

BIN = Path(sys.executable).parent


def _export(out: Path, graph, **kw) -> Path:
    em = VerilogEmitter(**kw)
    files = em.emit(graph)
    write_export(out, "verilog", files, em.summary(graph, files))
    save(graph, out)
    return out


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "heatq"), "prove", *args], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def mlp():
    return mlp_graph(0, n_in=8, hidden=4, n_bits=5, w_bits=3, act_bits=2)


@pytest.fixture(scope="module")
def mlp_export(tmp_path_factory, mlp):
    return _export(tmp_path_factory.mktemp("prove") / "mlp", mlp)


def test_reference_is_the_ir_and_every_layer_is_proved(mlp, mlp_export):
    require_tool("yosys")
    summary = json.loads((mlp_export / "summary.json").read_text())
    specs = layer_specs(mlp, VerilogEmitter().design(mlp), summary["report"])
    assert set(specs) == {"fc1", "fc2"}
    # the reference's arithmetic is the interpreter's, on random inputs of fc1's range
    x = np.random.default_rng(0).integers(0, 16, size=(20, 8))
    trace = run(mlp, x, trace=True)
    fc1 = mlp.by_name("relu1").id
    for row, want in zip(x, trace[fc1]):
        assert reference_values(specs["fc1"], [int(v) for v in row]) == [int(v) for v in want]
    assert all(s.matrix == "equal" for s in specs.values())  # adder graphs == IR weights
    r = prove_export(mlp_export, timeout=240, progress=False)
    assert r["proved"] == 2 and r["not_equivalent"] == r["not_proved"] == 0, r
    assert all(v["status"] == "proved" for v in r["layers"].values())


def test_a_mutated_adder_is_not_equivalent(mlp, mlp_export, tmp_path):
    require_tool("yosys")
    bad = tmp_path / "mutant"
    shutil.copytree(mlp_export, bad)
    path = bad / "heatq_top_fc2.v"
    text = path.read_text()
    line = next(ln for ln in text.splitlines() if re.match(r"\s+s\d+_n\d+ = .* \+ ", ln))
    path.write_text(text.replace(line, line.replace(" + ", " - ", 1), 1))
    js = tmp_path / "prove.json"
    r = _cli(str(bad), "--layer", "fc2", "--timeout", "240", "--json", str(js), "-q")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "not equivalent" in r.stdout and "counterexample x = " in r.stdout
    res = json.loads(js.read_text())["layers"]["fc2"]
    cex = res["counterexample"]
    assert res["status"] == "not equivalent" and len(cex["x"]) == 4
    # the witness is a real input of fc2 (0..3 activations) and y_reference is the IR's value
    assert all(0 <= v <= 3 for v in cex["x"])
    fc2 = mlp.by_name("fc2")
    w, b = fc2.attrs.weight, fc2.attrs.bias
    assert cex["y_reference"] == [int(v) for v in w @ np.array(cex["x"]) + b]
    # the unmutated export is unchanged: its files are not touched by prove
    assert (mlp_export / "heatq_top_fc2.v").read_text() == text


def test_user_mistakes_are_one_line_errors(mlp_export, tmp_path):
    for args, needle in [((str(mlp_export), "--layer", "nope"), "no layer 'nope'"),
                         ((str(tmp_path),), "not a heatq export")]:
        r = _cli(*args)
        err = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(err) == 1 and needle in err[0], r.stderr
    js = tmp_path / "taken.json"
    js.write_text("{}")
    r = _cli(str(mlp_export), "--layer", "fc2", "--json", str(js))
    assert r.returncode == 2 and "--force" in r.stderr and js.read_text() == "{}"


def test_conv_layer_window_offsets(tmp_path):
    """A conv layer (window taps, 1-bit channels) proved: the reference reads the window
    layout the Verilog target documents."""
    require_tool("yosys")
    g = seed_cnn_graph(0, channels=(2, 2, 2, 2, 2), kernels=(3, 3, 3, 3), size=16, w_bits=3,
                       act_bits=2)
    out = _export(tmp_path / "cnn", g)
    r = prove_export(out, layers=["conv1"], timeout=240, progress=False)
    assert r["layers"]["conv1"]["status"] == "proved", r
    assert r["layers"]["conv1"]["matrix"] == "equal"


def test_a_folded_layer_gets_a_checker(tmp_path):
    """A folded MVAU layer (its weight ROM is a yosys memory, mapped to logic before the AIG):
    the flow runs and finds nothing wrong (proving it takes longer than a fast test may)."""
    require_tool("yosys")
    g = seed_cnn_graph(0, channels=(2, 2, 2, 2, 2), kernels=(3, 3, 3, 3), size=16, w_bits=3,
                       act_bits=2)
    out = _export(tmp_path / "cnn", g, fold="auto", fold_force={"conv4": "mvau"})
    assert "w_rom" in (out / "heatq_top_conv4.v").read_text()
    r = prove_export(out, layers=["conv4"], timeout=20, progress=False)
    assert r["not_equivalent"] == 0 and r["layers"]["conv4"]["status"] in ("proved",
                                                                            "not proved"), r


@pytest.mark.slow
@pytest.mark.parametrize("run_dir", [str(Path(__file__).resolve().parents[1] / "heatq-out" / r)
                                     for r in ("run-4bit", "run")])  # make demo's runs
def test_trained_cnn_nothing_is_not_equivalent(run_dir, tmp_path):
    """The whole trained / heated seed CNN: no layer is NOT EQUIVALENT (layers the time
    limit stops are reported as not proved: docs/prove.md)."""
    require_tool("yosys")
    if not Path(run_dir, "model.ir.json").is_file():
        pytest.skip(f"{run_dir} not there (run make demo first)")
    from heatq.files import load_graph

    out = _export(tmp_path / "x", load_graph(run_dir))
    r = prove_export(out, timeout=300, progress=False)
    assert r["not_equivalent"] == 0, r
    assert all(v["matrix"] == "equal" for v in r["layers"].values())
