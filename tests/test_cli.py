"""The command-line contract: names, files, summary keys, and one-line errors on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def cli(*args: str, prog: str = "heatq") -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / prog), *args], capture_output=True, text=True, timeout=600)


def assert_one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err) == 1, r.stderr
    for needle in needles:
        assert needle in err[0], err[0]


@pytest.mark.parametrize("args, needle", [
    (["--dataset", "nope"], "nope"),
    (["--model", "resnet"], "resnet"),
    (["--input-code", "bitplane:9"], "bitplane:9"),
    (["--output-code", "hadamard:14"], "hadamard:14"),
    (["--weight-bits", "0"], "--weight-bits"),
    (["--act-bits", "40"], "--act-bits"),
    (["--dataset", "idx:/nonexistent"], "/nonexistent"),
    (["--dataset", "digits"], "16x16"),  # seed-cnn needs 16x16 images or larger
])
def test_train_bad_input(tmp_path, args, needle):
    out = tmp_path / "run"
    r = cli("train", "--epochs", "0", "--qat-epochs", "0", "--out", str(out), *args)
    assert_one_line_error(r, needle)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary directory left behind either


def test_train_check_export_run_contract(mlp_run, tmp_path):
    r = cli("check", str(mlp_run), "--quiet")
    assert r.returncode == 0, r.stderr
    check = json.loads((mlp_run / "check.json").read_text())
    assert set(check) >= {"n_samples", "layers", "all_equal"} and check["all_equal"]
    assert "100.00 %" in r.stdout
    summary = json.loads((mlp_run / "summary.json").read_text())
    assert 0 <= summary["acc_float"] <= 1 and 0 <= summary["acc_quant"] <= 1

    out = tmp_path / "c"
    r = cli("--target", "c", "-o", str(out), str(mlp_run), prog="heatq-export")
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["target"] == "c" and "model.c" in s["files"] and "model.ir.json" in s["files"]
    r = cli("run-target", str(out), "--n", "40")
    assert r.returncode == 0, r.stderr + r.stdout
    run = json.loads((out / "run.json").read_text())
    assert run["n"] == 40 and run["mismatches"] == 0 and 0 <= run["accuracy"] <= 1


def test_export_is_byte_identical_on_rerun(mlp_run, tmp_path):
    for target in ("c", "hls"):
        a, b = tmp_path / f"{target}1", tmp_path / f"{target}2"
        assert cli(str(mlp_run), "-t", target, "-o", str(a), prog="heatq-export").returncode == 0
        assert cli(str(mlp_run), "-t", target, "-o", str(b), prog="heatq-export").returncode == 0
        files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
        for f in files:
            assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_export_bad_input(mlp_run, tmp_path):
    out = tmp_path / "out"
    assert_one_line_error(cli(str(mlp_run), "-t", "vhdl", "-o", str(out), prog="heatq-export"),
                          "vhdl")
    assert not out.exists()
    assert_one_line_error(cli(str(tmp_path / "missing"), "-t", "c", "-o", str(out),
                              prog="heatq-export"), "missing")
    broken = tmp_path / "broken"
    shutil.copytree(mlp_run, broken)
    doc = json.loads((broken / "model.ir.json").read_text())
    doc["ir_version"] = 99
    (broken / "model.ir.json").write_text(json.dumps(doc))
    assert_one_line_error(cli(str(broken), "-t", "c", "-o", str(out), prog="heatq-export"),
                          "model.ir.json", "ir_version")
    (broken / "model.ir.json").write_text("{not json")
    assert_one_line_error(cli(str(broken), "-t", "c", "-o", str(out), prog="heatq-export"),
                          "model.ir.json")
    assert not out.exists()


def test_check_and_run_target_bad_input(mlp_run, tmp_path):
    assert_one_line_error(cli("check", str(tmp_path / "nothing")), "nothing")
    broken = tmp_path / "broken"
    shutil.copytree(mlp_run, broken)
    (broken / "model.pt").write_bytes(b"not a torch file")
    assert_one_line_error(cli("check", str(broken)), "model.pt")
    assert_one_line_error(cli("run-target", str(mlp_run)), "run-target")  # a run, not an export
    assert_one_line_error(cli("check", str(mlp_run), "--split", "valid"), "valid")


def test_a_new_target_needs_no_cli_change(mlp_run, tmp_path):
    """A target is one EMITTERS entry: heatq-export offers the options it declares and refuses
    them for the other targets (no ``if target == ...`` in the CLI)."""
    import importlib

    from typer.testing import CliRunner

    import heatq_export.cli as export_cli
    from heatq.ir import Op
    from heatq_export.base import Emitter, EmitOption
    from heatq_export.emitters import EMITTERS

    class Listing(Emitter):
        target = "listing"
        supported_ops = frozenset(Op)
        options = (EmitOption("width", int, "columns", default=8, minimum=2),)

        def __init__(self, width: int = 8):
            self.width = width

        def emit(self, graph):
            return {"nodes.txt": "".join(f"{n.op.value:>{self.width}}\n" for n in graph.nodes)}

    EMITTERS["listing"] = Listing
    try:
        cli_mod = importlib.reload(export_cli)
        runner = CliRunner()
        out = tmp_path / "l"
        r = runner.invoke(cli_mod.app, [str(mlp_run), "-t", "listing", "-o", str(out),
                                        "--width", "12"])
        assert r.exit_code == 0, r.output
        assert json.loads((out / "summary.json").read_text())["target"] == "listing"
        assert (out / "nodes.txt").read_text().startswith(" " * 7 + "input\n")
        r = runner.invoke(cli_mod.app, [str(mlp_run), "-t", "c", "-o", str(tmp_path / "c"),
                                        "--width", "12"])
        assert r.exit_code != 0 and "target c does not take --width" in str(r.exception)
        assert not (tmp_path / "c").exists()
    finally:
        del EMITTERS["listing"]
        importlib.reload(export_cli)
