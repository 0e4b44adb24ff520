"""The synthesis bundle (``-t bundle``, ``heatq handoff``, ``heatq verify-bundle``): FuseSoC
validates and runs its core (the sim target passes, and fails on an edited golden vector),
the standalone cocotb bench runs where heatq and numpy cannot be imported, the golden vectors
are the interpreter's outputs, the manifest catches edited / missing / extra files, and the
bundle is byte-identical on rerun."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from heatq.ir import run, save
from heatq_export.export import export_graph
from heatq_sim.graphs import mlp_graph, seed_cnn_graph

from tools import demo_run, needs

BIN = Path(sys.executable).parent
VLNV = "heatq:bundle:heatq_top:0.1.0"


def _cnn():
    """A tiny stream-mode CNN: 1x8x8 binary input, two 3x3 convs, pools, fc, decode."""
    return seed_cnn_graph(0, channels=(1, 2, 2), kernels=(3, 3), size=8, w_bits=3, act_bits=2,
                          n_calib=8)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "cnn"
    export_graph(_cnn(), "bundle", out, golden_images=4, clock_period=8.0)
    return out


def _fusesoc(root: Path, build: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "fusesoc"), "--cores-root", str(root), *args],
                          capture_output=True, text=True, cwd=build, timeout=300)


def _run_sim(root: Path, build: Path) -> subprocess.CompletedProcess:
    build.mkdir(parents=True, exist_ok=True)
    return _fusesoc(root, build, "run", "--build-root", str(build), "--target", "sim", VLNV)


def _verify(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "heatq"), "verify-bundle", str(path)], capture_output=True,
                          text=True, timeout=60)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("build", "sim_build", "__pycache__",
                                                             "results.xml"))
    return dst


def _flip_first_result(root: Path) -> None:
    """Change one hex digit of the first golden result."""
    p = root / "tb" / "vectors" / "out.hex"
    lines = p.read_text().splitlines()
    lines[0] = lines[0][:-1] + ("1" if lines[0][-1] != "1" else "2")
    p.write_text("\n".join(lines) + "\n")


def test_bundle_layout_and_golden_vectors(bundle):
    files = json.loads((bundle / "manifest.json").read_text())["files"]
    for rel in ("heatq_top.f", "heatq_top.core", "edam.json", "constraints/heatq_top.xdc",
                "constraints/heatq_top.sdc", "rtl/heatq_top.v", "tb/heatq_top_tb.v",
                "tb/heatq_top_cocotb.py", "tb/test_heatq_top.py", "tb/Makefile",
                "tb/vectors/in.hex", "tb/vectors/out.hex", "tb/vectors/vectors.json",
                "report.json", "README.md", "summary.json", "model.ir.json", "model.npz"):
        assert rel in files, rel
    flist = (bundle / "heatq_top.f").read_text().split()
    assert flist[-1] == "rtl/heatq_top.v" and sorted(flist) == sorted(
        f for f in files if f.startswith("rtl/"))
    assert "create_clock -name clk -period 8 [get_ports clk]" in \
        (bundle / "constraints/heatq_top.xdc").read_text()
    assert "-period 8 [get_ports {clk}]" in (bundle / "constraints/heatq_top.sdc").read_text()
    # the golden vectors, decoded independently, are heatq.ir.run's outputs of their inputs
    g, meta = _cnn(), json.loads((bundle / "tb/vectors/vectors.json").read_text())
    c, h, w = g.nodes[0].shape
    beats = [int(t, 16) for t in (bundle / "tb/vectors/in.hex").read_text().split()]
    x = np.array([[(b >> ch) & 1 for ch in range(c)] for b in beats]).reshape(-1, h, w, c)
    x = x.transpose(0, 3, 1, 2)
    assert [b >> c for b in beats] == ([0] * (h * w - 1) + [1]) * len(x)
    ref = run(g, x)
    words = [int(t, 16) for t in (bundle / "tb/vectors/out.hex").read_text().split()]
    assert len(words) == len(x) == meta["n_vectors"]
    for k, f in enumerate(meta["out_word"]["fields"]):
        ew = f["elem_width"]
        got = np.array([[(wd >> (f["lsb"] + j * ew)) & ((1 << ew) - 1) for j in range(f["elems"])]
                        for wd in words])
        if f["elem_signed"]:
            got = np.where(got >> (ew - 1), got - (1 << ew), got)
        assert np.array_equal(got, ref[k].reshape(len(x), -1)), f["port"]
    readme = (bundle / "README.md").read_text()
    ports = _declared_ports((bundle / "rtl/heatq_top.v").read_text())
    assert "m_tready" in [name for _, _, name in ports]
    for direction, width, name in ports:
        assert f"| `{name}` | {direction} | {width} |" in readme
    lat = json.loads((bundle / "report.json").read_text())["design"]["latency"]
    assert f"| {lat} cycles |" in readme


_PORT = re.compile(r"^\s*(input|output)\s+wire\s+(?:\[(\d+):0\]\s+)?(\w+)\s*,?\s*$", re.M)


def _declared_ports(top_text: str) -> list[tuple[str, int, str]]:
    """The top module's ports ``(input|output, width, name)`` as its Verilog declares them
    (read from the file, independently of the export's port list)."""
    m = re.search(r"^module\s+\w+\s*\((.*?)^\s*\);", top_text, re.M | re.S)
    head = m.group(1) if m else ""
    return [(d, int(msb) + 1 if msb else 1, n) for d, msb, n in _PORT.findall(head)]


@needs("iverilog", "verilator")
def test_fusesoc_accepts_the_core(bundle, tmp_path):
    r = _fusesoc(bundle, tmp_path, "core-info", VLNV)
    assert r.returncode == 0 and "Name:        " + VLNV in r.stdout, r.stdout + r.stderr
    for t in ("sim", "lint", "synth"):
        assert re.search(rf"^{t}\s+:", r.stdout, re.M), t
    bad = _copy(bundle, tmp_path / "bad")
    core = bad / "heatq_top.core"
    core.write_text(core.read_text().replace("toplevel: heatq_top\n", "toplevl: heatq_top\n", 1))
    r = _fusesoc(bad, tmp_path, "core-info", VLNV)
    assert "failed to parse" in r.stdout + r.stderr and "toplevl" in r.stdout + r.stderr
    r = _fusesoc(bundle, tmp_path, "run", "--build-root", str(tmp_path / "b"), "--target", "lint",
                 VLNV)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for tool, reads, not_reads in (("vivado", ".xdc", ".sdc"), ("quartus", ".sdc", ".xdc")):
        r = _fusesoc(bundle, tmp_path, "run", "--setup", "--build-root", str(tmp_path / "b"),
                     "--target", "synth", "--tool", tool, VLNV)
        assert r.returncode == 0, r.stderr[-2000:]
        tcl = "".join(p.read_text() for p in (tmp_path / "b").glob(f"*/synth-{tool}/*.tcl"))
        assert f"constraints/heatq_top{reads}" in tcl and not_reads not in tcl, tool


@needs("iverilog")
def test_fusesoc_sim_passes_and_fails_on_an_edited_vector(bundle, tmp_path):
    r = _run_sim(bundle, tmp_path / "ok")
    assert r.returncode == 0 and "PASS: 12 results" in r.stdout, r.stdout[-3000:] + r.stderr
    bad = _copy(bundle, tmp_path / "edited")
    _flip_first_result(bad)
    r = _run_sim(bad, tmp_path / "bad")
    assert r.returncode != 0, r.stdout[-3000:]
    assert "MISMATCH: result 0" in r.stdout and "FAIL: 1 of 12 results wrong" in r.stdout
    v = _verify(bad)
    assert v.returncode == 1 and v.stderr.strip().splitlines() == [
        f"heatq verify-bundle: error: {bad}/tb/vectors/out.hex: edited (sha256 differs from "
        "manifest.json)"]


def _site_farm(farm: Path) -> list[str]:
    """Symlinks to the installed files of cocotb and its requirements only (cocotb 2.x needs
    find_libpython and pytest); returns the distributions linked."""
    from packaging.markers import Marker
    from packaging.requirements import Requirement

    seen, todo = {}, ["cocotb"]
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        dist = metadata.distribution(name)
        seen[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or Marker(str(req.marker)).evaluate({"extra": ""}):
                todo.append(req.name)
    farm.mkdir()
    for dist in seen.values():
        for top in sorted({Path(str(f)).parts[0] for f in dist.files or []}):
            src = Path(dist.locate_file(top))
            if top not in ("..", "__pycache__") and not top.endswith(".pth") and src.exists() \
                    and not (farm / top).exists():
                (farm / top).symlink_to(src)
    return sorted(seen)


@pytest.fixture(scope="module")
def cocotb_only_env(tmp_path_factory) -> dict[str, str]:
    """A venv (``python -m venv --without-pip``) whose only packages are cocotb and its
    requirements (a .pth naming a directory of links to them), and an environment with only
    that venv and the system tools on PATH."""
    root = tmp_path_factory.mktemp("cocotb_only")
    dists = _site_farm(root / "site")
    assert "heatq" not in dists and "numpy" not in dists
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "cocotb_only.pth").write_text(str(root / "site") + "\n")
    path = os.pathsep.join([str(venv / "bin"), *(p for p in os.environ["PATH"].split(os.pathsep)
                                                  if Path(p).resolve() != BIN.resolve())])
    return {"PATH": path, "HOME": str(root), "LANG": "C.UTF-8"}


def _in_env(env, cmd, cwd, extra=None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env={**env, **(extra or {})}, capture_output=True,
                          text=True, timeout=300)


@needs("iverilog", "make")
def test_standalone_cocotb_bench_without_heatq(bundle, cocotb_only_env, tmp_path):
    env = cocotb_only_env
    probe = _in_env(env, ["python", "-c", "import cocotb, cocotb_tools.runner, pytest; "
                          "print(cocotb.__version__)"], tmp_path)
    assert probe.returncode == 0 and probe.stdout.strip() == metadata.version("cocotb"), probe
    for module in ("heatq", "heatq_export", "heatq_sim", "numpy"):
        r = _in_env(env, ["python", "-c", f"import {module}"], tmp_path)
        assert r.returncode == 1 and "ModuleNotFoundError" in r.stderr, module
    b = _copy(bundle, tmp_path / "b")
    r = _in_env(env, ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tb/"], b)
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
    r = _in_env(env, ["make", "-C", "tb"], b, {"HEATQ_STALLS": "0"})  # + latency / II check
    assert r.returncode == 0 and "PASS: 12 results" in r.stdout, r.stdout[-3000:]
    v = _verify(b)  # the benches' build outputs are not bundle files
    assert v.returncode == 0 and v.stdout.startswith("OK: "), v.stdout + v.stderr
    _flip_first_result(b)
    r = _in_env(env, ["make", "-C", "tb"], b)
    assert r.returncode != 0 and "result 0: got" in r.stdout, r.stdout[-3000:]


def test_verify_bundle_names_edited_missing_and_extra_files(bundle, tmp_path):
    ok = _verify(bundle)
    n = len(json.loads((bundle / "manifest.json").read_text())["files"])
    assert ok.returncode == 0 and ok.stdout.startswith(f"OK: {n} files"), ok.stdout + ok.stderr
    b = _copy(bundle, tmp_path / "b")
    (b / "rtl" / "heatq_top.v").write_text((b / "rtl" / "heatq_top.v").read_text() + "// x\n")
    (b / "README.md").unlink()
    (b / "rtl" / "extra.v").write_text("module extra; endmodule\n")
    r = _verify(b)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"heatq verify-bundle: error: {b}/README.md: missing (listed in manifest.json)",
        f"heatq verify-bundle: error: {b}/rtl/heatq_top.v: edited (sha256 differs from "
        "manifest.json)",
        f"heatq verify-bundle: error: {b}/rtl/extra.v: extra file (not in manifest.json)"]
    r = _verify(tmp_path / "nowhere")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "nowhere" in r.stderr
    (b / "manifest.json").write_text("{")
    r = _verify(b)
    assert r.returncode == 2 and "manifest.json: not readable JSON" in r.stderr


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_handoff_deterministic_and_refusals(tmp_path):
    run_dir = tmp_path / "run"
    save(mlp_graph(0, n_in=8, hidden=4, n_bits=5, w_bits=3, act_bits=2), run_dir)
    cmd = [str(BIN / "heatq"), "handoff", str(run_dir), "--clock-period", "4", "--golden-images",
           "3", "-q"]
    r1 = subprocess.run(cmd + ["-o", str(tmp_path / "a")], capture_output=True, text=True)
    assert r1.returncode == 0 and "heatq verify-bundle" in r1.stdout, r1.stderr
    r2 = subprocess.run(cmd + ["-o", str(tmp_path / "b")], capture_output=True, text=True)
    assert r2.returncode == 0, r2.stderr
    r3 = subprocess.run([str(BIN / "heatq-export"), str(run_dir), "-t", "bundle", "-o",
                         str(tmp_path / "e"), "--clock-period", "4", "--golden-images", "3",
                         "-q"], capture_output=True, text=True)
    assert r3.returncode == 0, r3.stderr
    assert _tree(tmp_path / "e") == _tree(tmp_path / "a")  # heatq-export -t bundle = handoff
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a), \
        [k for k in a if a[k] != b.get(k)]
    assert b"-period 4 [get_ports clk]" in a["constraints/heatq_top.xdc"]
    assert b"always #2 clk = ~clk;" in a["tb/heatq_top_tb.v"]
    meta = json.loads(a["tb/vectors/vectors.json"])
    assert meta["mode"] == "parallel" and meta["n_vectors"] == meta["n_corner"] > 3
    man = json.loads(a["manifest.json"])
    assert set(man["files"]) == set(a) - {"manifest.json"}
    assert set(man["tools"]) == {"iverilog", "verilator", "yosys", "fusesoc", "edalize", "cocotb"}
    import hashlib

    assert man["ir_sha256"] == hashlib.sha256(a["model.ir.json"] + a["model.npz"]).hexdigest()
    again = subprocess.run(cmd + ["-o", str(tmp_path / "a")], capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    bad = subprocess.run(cmd[:4] + ["0", "-o", str(tmp_path / "c")], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "--clock-period" in bad.stderr and not (tmp_path / "c").exists()
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@needs("iverilog", "verilator", "make")
def test_trained_seed_cnn_bundle(tmp_path, cocotb_only_env):
    """The heated seed CNN of make demo: the FuseSoC sim target passes (Icarus, 20 test
    images + the corner vectors, random m_tready stalls), lint is clean, Verilator runs the
    same bench, and the standalone cocotb bench passes in the cocotb-only venv."""
    run_dir = demo_run()
    out = tmp_path / "bundle"
    r = subprocess.run([str(BIN / "heatq"), "handoff", str(run_dir), "-o", str(out), "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    n = json.loads((out / "tb/vectors/vectors.json").read_text())["n_vectors"]
    s = _run_sim(out, tmp_path / "sim")
    assert s.returncode == 0 and f"PASS: {n} results" in s.stdout, s.stdout[-3000:]
    lint = _fusesoc(out, tmp_path, "run", "--build-root", str(tmp_path / "l"), "--target", "lint",
                    VLNV)
    assert lint.returncode == 0, lint.stdout[-3000:]
    vl = _fusesoc(out, tmp_path, "run", "--build-root", str(tmp_path / "v"), "--target", "sim",
                  "--tool", "verilator", VLNV)
    assert vl.returncode == 0 and f"PASS: {n} results" in vl.stdout, vl.stdout[-3000:]
    r = _in_env(cocotb_only_env, ["make", "-C", "tb"], out)
    assert r.returncode == 0 and f"PASS: {n} results" in r.stdout, r.stdout[-3000:]
    assert _verify(out).returncode == 0
