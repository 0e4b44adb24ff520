"""``heatq sim`` as a user meets it: the export's manifest checked before simulating, the
simulator build kept (keyed by the sources' sha256), one result file per simulator,
waveforms, and hardware throughput reported apart from the simulator's speed."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from heatq.errors import UserError
from heatq.ir.testing import corner_vectors
from heatq_sim import simulate, write_sim_json
from heatq_sim.api import CACHE, build_dir, manifest_changes
from heatq_sim.graphs import mlp_graph
from heatq_sim.vectors import load_ports

from tools import needs

needs_iverilog = needs("iverilog")
needs_verilator = needs("verilator")


def _graph():
    return mlp_graph(0, n_in=16, hidden=8)


def _export(out: Path, graph=None) -> Path:
    from heatq_export.export import export_graph

    export_graph(graph or _graph(), "verilog", out)
    return out


@pytest.fixture
def export(tmp_path) -> Path:
    return _export(tmp_path / "v")


def test_manifest_names_edited_missing_and_added_files(export):
    assert manifest_changes(export) == {"edited": [], "missing": [], "added": []}
    top = json.loads((export / "summary.json").read_text())["top"]
    with open(export / f"{top}.v", "a") as f:
        f.write("// edited by hand\n")
    (export / "hq_delay.v").unlink()
    (export / "extra.v").write_text("module extra; endmodule\n")
    assert manifest_changes(export) == {"edited": [f"{top}.v"], "missing": ["hq_delay.v"],
                                        "added": ["extra.v"]}


def test_build_dir_is_keyed_by_the_sources(export, tmp_path):
    _, ports, _ = load_ports(export)
    root = tmp_path / "cache"
    a = build_dir(root, export, "verilator", ports, None)
    assert a == build_dir(root, export, "verilator", ports, None)
    assert re.fullmatch(r"verilator-[0-9a-f]{16}", a.name)
    assert build_dir(root, export, "verilator", ports, "vcd").name.startswith("verilator-vcd-")
    assert build_dir(root, export, "icarus", ports, None).name.startswith("icarus-")
    a.mkdir(parents=True)
    other = root / "icarus-0123456789abcdef"
    other.mkdir()
    with open(export / "hq_delay.v", "a") as f:
        f.write("\n")
    b = build_dir(root, export, "verilator", ports, None)
    assert b != a
    assert not a.exists()  # the stale build of the same kind is removed ...
    assert other.exists()  # ... other kinds are kept


def test_one_result_file_per_simulator(tmp_path):
    for sim in ("icarus", "verilator"):
        write_sim_json(tmp_path, {"simulator": sim, "mismatches": 0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim-icarus.json", "sim-verilator.json"]
    assert json.loads((tmp_path / "sim-icarus.json").read_text())["simulator"] == "icarus"


def test_bad_arguments_are_user_errors(export):
    g = _graph()
    x = corner_vectors(g)[:2]
    with pytest.raises(UserError, match=r"\.vcd or \.fst"):
        simulate(export, g, x, "icarus", waves=export / "w.txt")
    with pytest.raises(UserError, match="clock-mhz"):
        simulate(export, g, x, "icarus", clock_mhz=0)
    with pytest.raises(UserError, match="unknown simulator"):
        simulate(export, g, x, "modelsim")


@needs_iverilog
def test_icarus_build_is_kept_and_waves_written(export, tmp_path):
    g = _graph()
    x = corner_vectors(g)[:6]
    first = simulate(export, g, x, "icarus", clock_mhz=50.0, progress=False)
    assert first["mismatches"] == 0 and not first["build_cached"]
    assert (export / CACHE).is_dir()
    again = simulate(export, g, x, "icarus", clock_mhz=50.0, progress=False)
    assert again["mismatches"] == 0 and again["build_cached"]
    ii = again["ii"]
    assert ii and again["hw_images_per_s"] == pytest.approx(50e6 / ii)
    assert again["clock_mhz"] == 50.0 and again["sim_images_per_s"] > 0
    assert "images_per_s" not in again
    for fmt, magic in (("vcd", b"$date"), ("fst", None)):
        w = tmp_path / f"waves.{fmt}"
        r = simulate(export, g, x, "icarus", waves=w, progress=False)
        assert r["mismatches"] == 0 and r["waves"] == str(w)
        head = w.read_bytes()[:64]
        if magic:
            assert head.startswith(magic) and b"$var" in w.read_bytes()
        else:
            assert len(head) > 0 and not head.startswith(b"$")  # FST is binary


@needs_verilator
def test_verilator_rerun_does_not_recompile(export):
    g = _graph()
    x = corner_vectors(g)[:6]
    t0 = time.perf_counter()
    first = simulate(export, g, x, "verilator", progress=False)
    t_first = time.perf_counter() - t0
    assert first["mismatches"] == 0 and not first["build_cached"]
    t0 = time.perf_counter()
    again = simulate(export, g, x, "verilator", progress=False)
    t_again = time.perf_counter() - t0
    assert again["mismatches"] == 0 and again["build_cached"]
    assert t_again < t_first / 3, (t_first, t_again)


@needs_iverilog
def test_sim_command_reports_edits_and_writes_its_own_file(export, monkeypatch, capsys):
    from heatq.cli import main

    top = json.loads((export / "summary.json").read_text())["top"]
    with open(export / f"{top}.v", "a") as f:
        f.write("// a comment added after export\n")
    monkeypatch.setattr(sys, "argv", ["heatq", "sim", str(export), "--random", "2", "-q",
                                      "--clock-mhz", "200"])
    with pytest.raises(SystemExit) as e:
        main()
    out, err = capsys.readouterr()
    assert e.value.code in (0, None), err
    assert f"files changed since export (simulated as they are now): edited {top}.v" in err
    assert re.search(r"hardware: [\d,.]+ images/s at an assumed 200 MHz", out), out
    assert "simulator:" in out
    saved = json.loads((export / "sim-icarus.json").read_text())
    assert saved["manifest"]["edited"] == [f"{top}.v"] and saved["mismatches"] == 0
    assert not (export / "sim.json").exists()
    assert np.isclose(saved["hw_images_per_s"], 200e6 / saved["ii"])
