"""Split (binarized) networks on every target: the Verilog emitter fuses each split layer into
one product over a CONCAT of 1-bit units (:mod:`heatq.passes.fuse`), so a split CNN streams
like the unsplit one.  Icarus (and C, HLS) 0 mismatches on the thorough corner vectors for a
bit-plane-binarized small seed CNN and a binarized MLP; Verilator on the CNN; lint-clean."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from heatq.ir import Op, run
from heatq.ir.testing import corner_vectors
from heatq.passes.split import binarize
from heatq_export.runners import RUNNERS
from heatq_export.verilog import VerilogEmitter
from heatq_sim.graphs import mlp_graph, seed_cnn_graph

from tools import require_tool


@pytest.fixture(scope="module")
def cnn():
    base = seed_cnn_graph(0, channels=(2, 4, 4, 8, 8), kernels=(3, 3, 3, 3), size=16,
                          w_bits=3, act_bits=2)
    return base, binarize(base, weights="bitplane", acts="bitplane")


@pytest.fixture(scope="module")
def mlp():
    base = mlp_graph(1, n_in=16, hidden=8, w_bits=3, act_bits=2)
    return base, binarize(base, weights="bitplane", acts="thermometer")


def _exact(runner: str, graph, tmp_path, x=None) -> None:
    r = RUNNERS[runner]
    for tool in r.tools:
        require_tool(tool, f"the {runner} runner")
    r.export(graph, tmp_path / runner)
    x = corner_vectors(graph, thorough=True) if x is None else x
    got, want = r.run(tmp_path / runner, graph, x), run(graph, x)
    assert len(got) == len(want) == len(graph.outputs)
    for k, (g, w) in enumerate(zip(got, want)):
        assert np.array_equal(np.asarray(g).astype(object), np.asarray(w).astype(object)), k


@pytest.mark.parametrize("runner", ["icarus", "c", "hls"])
def test_split_cnn_exact(runner, cnn, tmp_path):
    base, split = cnn
    assert np.array_equal(run(base, corner_vectors(base))[2], run(split, corner_vectors(base))[2])
    _exact(runner, split, tmp_path)


@pytest.mark.parametrize("runner", ["icarus", "c"])
def test_split_mlp_exact(runner, mlp, tmp_path):
    _exact(runner, mlp[1], tmp_path)


def test_split_cnn_verilator(cnn, tmp_path):
    split = cnn[1]
    _exact("verilator", split, tmp_path, corner_vectors(split, n_random=8))


def test_split_cnn_structure_and_lint(cnn, tmp_path):
    """One layer module per original layer; every conv window carries each 1-bit unit once
    (not once per weight plane); lint -Wall clean."""
    base, split = cnn
    em = VerilogEmitter()
    d, d0 = em.design(split), VerilogEmitter().design(base)
    convs = [k for k, v in d.report.items() if k != "design" and v["op"] == "conv2d"]
    assert len(convs) == 4 and sum(v["op"] == "dense" for v in d.report.values()
                                   if isinstance(v, dict) and "op" in v) == 1
    lowered = [n for n in d.lowered.nodes if n.op is Op.CMVM and n.attrs.layout == "conv2d"]
    cats = [d.lowered.nodes[n.args[0]] for n in lowered]
    assert [c.op for c in cats] == [Op.CONCAT] * 4
    top = d.files["heatq_top.v"]
    pws = [int(v) for v in re.findall(r"hq_window #\(\.PW\((\d+)\)", top)]
    distinct = [len(set(c.args)) * d.lowered.nodes[c.args[0]].shape[0] for c in cats]
    assert pws == distinct and pws != [c.shape[0] for c in cats]
    assert d.report["design"]["ii"] == d0.report["design"]["ii"]
    require_tool("verilator", "lint")
    out = tmp_path / "v"
    out.mkdir()
    for name, text in d.files.items():
        (out / name).write_text(text)
    r = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "heatq_top",
                        *sorted(str(p) for p in out.glob("*.v"))], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_big_binarized_mlp_over_cse_cap_icarus(tmp_path):
    """A binarized MLP whose fused first layer (16 x 1440 +-1 terms: 16.6M term pairs) is over
    the CSE cap: it lowers with windowed sharing (heatq.lower.cse), exports, and Icarus
    matches the interpreter on the thorough corner vectors and random inputs."""
    base = mlp_graph(2, n_in=32, hidden=16, w_bits=3, act_bits=2)
    split = binarize(base, weights="bitplane", acts="thermometer")
    d = VerilogEmitter().design(split)
    windowed = {k: g.meta["cse_windows"] for k, g in d.adder_graphs.items()
                if "cse_windows" in g.meta}
    assert list(windowed) == ["fc1_fused"] and windowed["fc1_fused"] > 1, windowed
    x = np.concatenate([corner_vectors(split, thorough=True),
                        np.random.default_rng(3).integers(0, 16, (24, 32))])
    _exact("icarus", split, tmp_path, x)

