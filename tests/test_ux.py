"""What a user sees: --version, help placeholders, -q everywhere, no tqdm codes in logs,
progress for long steps, the estimate's totals and table, an interrupted estimate, the
demo's table naming the exported network."""

from __future__ import annotations

import io
import json
import os
import re
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from heatq import progress
from heatq.ir import save
from heatq_sim.graphs import mlp_graph

COMMANDS = ["train", "check", "run-target", "sim", "heat", "demo"]


def _main(prog: str, args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """Run the real entry point of ``prog`` in-process; (exit code, stdout, stderr)."""
    if prog == "heatq":
        from heatq.cli import main
    else:
        from heatq_export.cli import main
    monkeypatch.setattr(sys, "argv", [prog, *args])
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TERMINAL_WIDTH", "200")
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _loud():
    progress.set_quiet(False)
    yield
    progress.set_quiet(False)


@pytest.mark.parametrize("prog", ["heatq", "heatq-export"])
def test_version(prog, monkeypatch, capsys):
    code, out, _ = _main(prog, ["--version"], monkeypatch, capsys)
    assert code == 0
    assert out.strip() == f"{prog} {metadata.version('heatq')}"


@pytest.mark.parametrize("prog,args", [("heatq", [c, "--help"]) for c in COMMANDS]
                         + [("heatq", ["--help"]), ("heatq-export", ["--help"])])
def test_help_has_plain_placeholders_and_quiet(prog, args, monkeypatch, capsys):
    code, out, _ = _main(prog, args, monkeypatch, capsys)
    assert code == 0
    for bad in ("<bool>", "<int>", "<str>", "<path>", "<float>", "{"):
        assert bad not in out, f"{bad!r} in help of {prog} {args}"
    if args != ["--help"] or prog == "heatq-export":
        assert "--quiet" in out and "-q" in out
    if args[0] in ("check", "sim", "run-target"):
        assert re.search(r"--n\s+INTEGER", out), out
        assert re.search(r"Usage: \S+ \S+ \[OPTIONS\] [A-Z_]+\s", out), out


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_only_on_a_terminal_and_never_with_quiet(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress.bars(True) and progress.wanted(True)
    monkeypatch.setattr(sys, "stderr", _Tty())
    assert progress.bars(True) and not progress.bars(False)
    progress.set_quiet(True)
    assert not progress.bars(True) and not progress.wanted(True)


def test_training_log_has_no_terminal_codes(capfd):
    """fit() with progress on, stderr not a terminal: no bar, no \\r, no ESC[A."""
    import torch

    from heatq.codes import parse_output_code
    from heatq.models import build_model
    from heatq.train import TrainConfig, fit

    oc = parse_output_code("hadamard:15", 10, seed=0)
    net = build_model({"model": "mlp", "in_channels": 1, "code_length": oc.length,
                       "w_bits": 4, "a_bits": 4, "image_size": 4, "hidden": 8})
    x = torch.rand(32, 1, 4, 4).round()
    y = np.arange(32) % 10
    fit(net, x, y, oc, 2, 1e-3, TrainConfig(max_shift=0, progress=True), "float training")
    err = capfd.readouterr().err
    assert "\r" not in err and "\x1b" not in err and "float training" not in err


def test_activity_plain_lines_off_a_terminal(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    with progress.activity("building x"):
        pass
    lines = buf.getvalue().splitlines()
    assert lines[0] == "building x ..." and re.fullmatch(r"building x: done after \d+\.\d s",
                                                         lines[1])
    assert "\r" not in buf.getvalue() and "\x1b" not in buf.getvalue()
    buf.truncate(0)
    buf.seek(0)
    with pytest.raises(KeyboardInterrupt):
        with progress.activity("slow step"):
            raise KeyboardInterrupt
    assert "slow step: interrupted after" in buf.getvalue()
    progress.set_quiet(True)
    buf.truncate(0)
    buf.seek(0)
    with progress.activity("quiet step"):
        pass
    assert buf.getvalue() == ""


def test_activity_spinner_shows_elapsed_time_and_note(monkeypatch):
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    import time

    with progress.activity("verilator: building top") as act:
        act.note("compiling Vtop__1.cpp")
        time.sleep(1.2)
    text = tty.getvalue()
    assert re.search(r"\r\x1b\[Kverilator: building top \[\s*\d+ s\] compiling Vtop__1\.cpp", text)
    assert text.rstrip().endswith("s") and "done after" in text


def test_run_streaming_returns_code_and_tail(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    notes = []
    rc, tail = progress.run_streaming(
        ["sh", "-c", "echo one; echo two >&2; echo three; exit 3"], "job",
        note=lambda line: notes.append(line.strip()) or None)
    assert rc == 3
    assert tail.splitlines() == ["one", "two", "three"]
    assert notes == ["one", "two", "three"]


# --------------------------------------------------------------------------- estimate

def _fake_module(counts: dict):
    def fake(files, top, flows=("xilinx", "lut6"), timeout=None, label="", progress=True):
        res = {"module": top, "seconds": 0.5}
        c = counts[top]
        if "xilinx" in flows:
            res.update(lut=c, carry4=c // 4, ff=c // 8, srl=0, muxf=0, lut_carry=c + c // 4)
        if "lut6" in flows:
            res.update(lut6=2 * c, ff_generic=c // 8)
        return res
    return fake


def _verilog_export(tmp_path: Path):
    from heatq_export.base import write_export
    from heatq_export.verilog import VerilogEmitter

    g = mlp_graph(0, n_in=16, hidden=8)
    em = VerilogEmitter()
    files = em.emit(g)
    out = tmp_path / "v"
    write_export(out, "verilog", files, em.summary(g, files))
    return g, out


def test_estimate_total_names_what_it_covers(tmp_path, monkeypatch):
    from heatq_export import estimate

    _, out = _verilog_export(tmp_path)
    report = json.loads((out / "summary.json").read_text())["report"]
    mods = {name: report[name]["module"] for name in ("fc1", "fc2")}
    monkeypatch.setattr(estimate, "estimate_module",
                        _fake_module({mods["fc1"]: 100, mods["fc2"]: 40}))
    # fc1 is over the adder limit for the lut6 flow, fc2 under
    limit = (report["fc1"]["adders"] + report["fc2"]["adders"]) // 2
    assert report["fc2"]["adders"] <= limit < report["fc1"]["adders"]
    tot = estimate.estimate_export(out, lut6_max_adders=limit)["report"]["estimate"]["total"]
    assert tot["covers"] == ["fc1", "fc2"]
    assert tot["lut"] == 140 and tot["lut_carry"] == 140 + 35
    assert tot["lut6"] is None and tot["ff_generic"] is None  # never fc2's alone
    assert list(tot["skipped"]) == ["fc1"] and "adders >" in tot["skipped"]["fc1"]
    assert "top module" in tot["scope"]
    tot = estimate.estimate_export(out, layers=["fc2"])["report"]["estimate"]["total"]
    assert tot["covers"] == ["fc2"] and tot["lut6"] == 80
    assert tot["skipped"] == {"fc1": "not requested"}
    text = estimate.format_estimate(json.loads((out / "summary.json").read_text()))
    assert re.search(r"^\s+fc2\s+40\s+10\s+50\s+5\s+80", text, re.M), text
    assert re.search(r"^\s+total\s+40\s+10\s+50\s+5\s+80$", text, re.M), text
    assert "skipped fc1: not requested" in text and "top module" in text


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    save(mlp_graph(0, n_in=16, hidden=8), run)
    return run


def test_export_estimate_prints_the_table(tmp_path, monkeypatch, capsys):
    from heatq_export import estimate

    run = _run_dir(tmp_path)
    monkeypatch.setattr(estimate, "estimate_module", _fake_module(
        {"heatq_top_fc1": 7, "heatq_top_fc2": 3}))
    code, out, err = _main("heatq-export", [str(run), "-t", "verilog", "-o",
                                            str(tmp_path / "v"), "--estimate", "-q"],
                           monkeypatch, capsys)
    assert code == 0, err
    assert "yosys estimate" in out and re.search(r"^\s+total\s+10\s", out, re.M), out
    assert "total covers 2 layer modules: fc1, fc2" in out
    assert err == ""  # -q: no progress lines
    summary = json.loads((tmp_path / "v" / "summary.json").read_text())
    assert summary["report"]["estimate"]["total"]["lut"] == 10


def test_interrupted_estimate_leaves_no_export(tmp_path, monkeypatch):
    """Ctrl-C in the estimate step: the estimate is part of the atomic export, so no
    complete-looking export without it is left, and an earlier export stays as it was."""
    from heatq_export import estimate
    from heatq_export.export import export_graph

    g = mlp_graph(0, n_in=16, hidden=8)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(estimate, "estimate_module", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_graph(g, "verilog", tmp_path / "v", estimate=True)
    assert not (tmp_path / "v").exists()
    assert os.listdir(tmp_path) == []  # no temporary directory left either
    export_graph(g, "verilog", tmp_path / "v")  # an earlier export, without estimate
    before = {p.name: p.read_bytes() for p in (tmp_path / "v").iterdir()}
    with pytest.raises(KeyboardInterrupt):
        export_graph(g, "verilog", tmp_path / "v", force=True, estimate=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "v").iterdir()} == before
    assert sorted(os.listdir(tmp_path)) == ["v"]


# --------------------------------------------------------------------------- demo table

def _demo_summary(exported: dict, met: bool) -> dict:
    sim = {"n_images": 10, "n_corner": 36, "mismatches": 0, "cycles_per_image": 1024.0,
           "ii": 1024, "clock_mhz": 100.0, "hw_images_per_s": 1e8 / 1024}
    return {"acc_float": 0.98, "acc_quant": 0.97, "n_test": 1000,
            "heated": {"acc_heated": 0.97, "acc_drop_val": 0.4 if met else 0.9,
                       "acc_drop_test": 0.5, "total_weight_bits": 1000,
                       "mean_weight_bits": 4.0, "constraint_met": met, "max_acc_drop": 0.5,
                       "exported": exported},
            "check": {"n_samples": 1000, "all_equal": True, "layers": {"a": 1.0, "b": 1.0}},
            "weight_bits": {"fc": 4}, "act_bits": {"act": 4},
            "targets": {"c": {"accuracy": 0.97, "n": 1000, "mismatches": 0, "n_corner": 36}},
            "simulations": {"icarus": {**sim, "simulator": "icarus", "sim_images_per_s": 2.0},
                            "verilator": {**sim, "simulator": "verilator",
                                          "sim_images_per_s": 300.0}},
            "split": _SPLIT, "seconds": 1.0}


_FIG = {"fan_in": 10, "weights": 100, "weight_bits": 300}
_SPLIT = {"options": {"weights": "bitplane", "acts": "bitplane", "to": "binary"},
          "binarization": {"products": 7, "binary_weights": 7, "ternary_weights": 7,
                           "binary_inputs": 7},
          "totals": {"before": _FIG, "after": {"fan_in": 45, "weights": 450,
                                               "weight_bits": 450}},
          "weight_bits": {"fc.p0": 1},
          "check": {"n_samples": 1000, "all_equal": True, "layers": {"a": 1.0, "fc": 1.0}},
          "targets": {"c": {"accuracy": 0.97, "n": 1000, "mismatches": 0, "n_corner": 36}}}


def test_demo_table_names_the_exported_network(capsys):
    from heatq.demo import print_demo

    print_demo(_demo_summary({"network": "source run (unheated)",
                              "reason": "no heated bit widths met the constraint"}, True))
    out = capsys.readouterr().out
    assert re.search(r"^4-bit, unheated \(torch\)\s+97\.00 %", out, re.M), out
    assert not re.search(r"^heated \(torch\)", out, re.M)
    assert "exported network: source run (unheated): no heated bit widths met" in out
    assert "hardware throughput: 97,656 images/s at an assumed 100 MHz" in out
    assert "simulator speed: icarus 2.0 images/s, verilator 300 images/s" in out
    assert re.search(r"^binary split \(IR\)\s+97\.00 %\s+1000   check: 100\.00 % min over 2 "
                     r"original layers, 1000 images$", out, re.M), out
    assert re.search(r"^binary: target c\s+97\.00 %\s+1000   0 mismatches", out, re.M), out
    assert ("binary split (bitplane weights, bitplane activations): 7 products, weights in "
            "{-1,+1} in 7, only 1-bit inputs in 7; fan-in 10 -> 45 (x4.50), weights 100 -> "
            "450, weight bits 300 -> 450") in out
    print_demo(_demo_summary({"network": "start network (the reference at the run's widths, "
                                         "unheated)", "reason": "r"}, True))
    out = capsys.readouterr().out
    assert re.search(r"^4-bit float start, unheated \(torch\)\s+97\.00 %", out, re.M), out


def test_demo_stages_replace_their_own_outputs_and_pass_strict(tmp_path, monkeypatch, capsys):
    """run_demo's calls (stubbed stages): inner outputs are replaced (force), --strict and
    progress reach heat, and the table and summary describe what heat exported."""
    from heatq import demo, pipeline
    from heatq.heat import command

    calls = {}
    base = _demo_summary({"network": "heated", "reason": "fewest bits"}, True)

    def record(name, result):
        def stub(*args, **kwargs):
            calls.setdefault(name, []).append(kwargs)
            return result(args) if callable(result) else result
        return stub

    heated = {**base["heated"], "weight_bits": {"fc": 2}, "act_bits": {"act": 3}}
    monkeypatch.setattr(pipeline, "train_run", record("train", {
        "acc_float": 0.98, "acc_quant": 0.97, "acc_ir": 0.97, "n_test": 1000}))
    monkeypatch.setattr(command, "heat", record("heat", heated))
    monkeypatch.setattr(pipeline, "check_run", record("check", base["check"]))
    report = {"design": {"ii": 1024, "latency": 2415, "layers_estimated_cost": 321},
              "fc_lin": {"design": "mvau", "lanes": "1 x 1", "cycles_per_position": 960}}
    monkeypatch.setattr(pipeline, "export_run", record("export", {
        "report": report, "bundle": {"vlnv": "heatq:bundle:heatq_top:0"}}))
    monkeypatch.setattr(pipeline, "run_target", record("run", base["targets"]["c"]))
    from heatq_export import bundle_manifest

    monkeypatch.setattr(bundle_manifest, "verify", lambda d: ({"files": {"a": 1, "b": 2}}, []))
    from heatq.split import command as split_command

    monkeypatch.setattr(split_command, "split_run", record("split", {
        k: _SPLIT[k] for k in ("binarization", "totals", "weight_bits")}))
    monkeypatch.setattr(pipeline, "sim_run", record(
        "sim", lambda args: base["simulations"][args[1]]))
    s = demo.run_demo(tmp_path / "d", quick=True, progress=False, strict=True)
    folded = [kw for kw in calls["export"] if kw.get("fold")]
    assert folded == [{"force": True, "fold": "auto", "arith": "auto"}] * 2  # verilog, bundle
    assert calls["heat"][0]["strict"] is True and calls["heat"][0]["force"] is True
    assert all(kw["force"] for kw in calls["train"] + calls["export"] + calls["split"])
    assert len(calls["export"]) == 8 and len(calls["run"]) == 6 and len(calls["check"]) == 2
    assert all(kw["progress"] is False for kw in calls["run"] + calls["sim"] + calls["check"])
    assert s["heated"]["exported"] == {"network": "heated", "reason": "fewest bits"}
    saved = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert saved["weight_bits"] == {"fc": 2}
    out = capsys.readouterr().out
    assert "exported network: heated: fewest bits" in out
    assert "verilog (--fold auto --arith auto): II 1024, latency 2415 cycles; fc mvau 1 x 1 " \
        "(960 cycles/position); planner's estimate 321 LUT+CARRY4" in out
    assert "handoff bundle heatq:bundle:heatq_top:0: 2 files, manifest verified (sha256)" in out


def test_demo_writes_only_entries_a_rerun_recognises(tmp_path, monkeypatch):
    """Every directory run_demo writes is in DEMO_ENTRIES, so a demo output (with --force)
    is recognised and replaced by the next make demo (a new stage once broke that)."""
    from heatq import demo, pipeline
    from heatq.files import DEMO_ENTRIES
    from heatq.heat import command
    from heatq.split import command as split_command

    base = _demo_summary({"network": "heated", "reason": "fewest bits"}, True)
    written = []

    def stub(index, result):
        def f(*args, **kwargs):
            written.append(Path(args[index]))
            return result
        return f

    monkeypatch.setattr(pipeline, "train_run", stub(0, {
        "acc_float": 0.98, "acc_quant": 0.97, "acc_ir": 0.97, "n_test": 1000}))
    monkeypatch.setattr(command, "heat", stub(1, {**base["heated"], "weight_bits": {},
                                                  "act_bits": {}}))
    report = {"design": {"ii": 1024, "latency": 2415, "layers_estimated_cost": 321}}
    monkeypatch.setattr(pipeline, "export_run", stub(2, {"report": report,
                                                         "bundle": {"vlnv": "v"}}))
    from heatq_export import bundle_manifest

    monkeypatch.setattr(bundle_manifest, "verify", lambda d: ({"files": {}}, []))
    monkeypatch.setattr(split_command, "split_run", stub(1, {
        k: _SPLIT[k] for k in ("binarization", "totals", "weight_bits")}))
    monkeypatch.setattr(pipeline, "check_run", lambda *a, **k: base["check"])
    monkeypatch.setattr(pipeline, "run_target", lambda *a, **k: base["targets"]["c"])
    monkeypatch.setattr(pipeline, "sim_run", lambda e, sim, **k: base["simulations"][sim])
    demo.run_demo(tmp_path / "d", quick=True, progress=False)
    assert len(written) == 11 and all(p.parent == tmp_path / "d" for p in written)
    assert sorted(p.name for p in written) == sorted(DEMO_ENTRIES)
