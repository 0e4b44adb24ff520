"""The stream units of residual networks in the Verilog target (export/verilog_stream.py,
hq_stride, hq_gap, the stage-graph cycle model):

* the cycle model: a stride-2 window hands on the windows of even rows / columns only; a
  join emits one cycle after its latest argument and sizes the earlier one's FIFO; a stream
  read by two stages (a window and a join);
* the corpus graph ``residual`` (stem, identity block, downsampling block with a 3x3 stride-2
  conv and a 1x1 stride-2 projection, GLOBAL_AVGPOOL) folded with a larger ``--ii``
  (bit-serial / MVAU layers, gapped windows in front of the strided convs) in Icarus:
  0 mismatches, latency / II as modelled, every file ``verilator --lint-only -Wall`` clean;
* a strided 1x1 conv straight on the host, and a FIFO-free join (ADD of a map and itself);
* slow: a ResNet-20-shaped graph (``heatq_sim.graphs.resnet20_graph``) folded and run in
  Verilator (``test_resnet20_folded_verilator``).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from heatq.ir import (
    AddAttrs, Conv2dAttrs, GraphBuilder, InputAttrs, Op, RequantAttrs, Rounding, Overflow,
)
from heatq.ir.ops import GlobalAvgPoolAttrs
from heatq.ir.testing import corner_vectors, corpus
from heatq_export.base import write_export
from heatq_export.verilog import VerilogEmitter
from heatq_export.verilog_schedule import Stage, simulate as model

from tools import needs

needs_iverilog = needs("iverilog")
needs_verilator = needs("verilator")


def _export(path: Path, graph, **kw) -> dict:
    em = VerilogEmitter(**kw)
    files = em.emit(graph)
    return write_export(path, "verilog", files, em.summary(graph, files))


def _sim_ok(path: Path, graph, x, simulator: str = "icarus", **kw) -> dict:
    from heatq_sim import simulate

    r = simulate(path, graph, x, simulator=simulator, progress=False, **kw)
    assert r["mismatches"] == 0, r["first_mismatches"]
    assert r["err"] == 0
    assert r["timing_matches_model"], {k: r[k] for k in ("latency", "ii", "model_latency",
                                                         "model_ii")}
    return r


def _lint(path: Path) -> None:
    files = sorted(str(p) for p in path.glob("*.v"))
    r = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "heatq_top",
                        *files], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr[:2000]


# ---------------------------------------------------------------------- the cycle model
def test_model_stride_join_and_fanout():
    # 6x6, K 3, P 1: stride-1 windows after the steps of padded rows / cols 2..7; stride 2
    # keeps rows / cols 2, 4, 6: 9 windows per image, one cycle after their steps
    w1 = Stage("window", {"H": 6, "W": 6, "K": 3, "P": 1}, "w1")
    w2 = Stage("window", {"H": 6, "W": 6, "K": 3, "P": 1, "S": 2}, "w2")
    t1, t2 = (model([w], 0, n_img=2)["times"][w] for w in (w1, w2))
    assert len(t1) == 2 * 36 and len(t2) == 2 * 9
    assert t2[:9] == [t1[i * 6 + j] for i in (0, 2, 4) for j in (0, 2, 4)]
    # a layer's tokens read by a second window (via its FIFO) and a join (the residual sum)
    lay = Stage("delay", {"lat": 1}, "lay", w1)
    w3 = Stage("window", {"H": 6, "W": 6, "K": 3, "P": 1}, "w3", lay)
    lay3 = Stage("delay", {"lat": 1}, "lay3", w3)
    j = Stage("join", {"n_host": 36, "args": [1]}, "add", lay3, (lay,))
    r = model([w1, lay, w3, lay3, j, Stage("collect", {"N": 36}, "c", j)], 0, n_img=3)
    assert r["times"][j] == [t + 1 for t in r["times"][lay3]]
    early, late = r["times"][lay], r["times"][lay3]
    assert all(a < b for a, b in zip(early, late))
    # the shortcut waits about one padded row plus a window (8 + 2 + ...) in the FIFO
    assert 8 <= r["fifo_depths"]["add_arg1"] <= 16
    assert r["ii"] == 64


# ---------------------------------------------------------------------- whole designs
@pytest.fixture(scope="module")
def residual():
    return corpus()["residual"]


def _inputs(graph, n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(5)
    node = graph.nodes[0]
    return np.concatenate([corner_vectors(graph, n_random=0, max_channels=2)[:3],
                           rng.integers(node.lo, node.hi + 1, size=(n,) + node.shape)])


def test_residual_units_and_report(residual):
    d = VerilogEmitter().design(residual)
    top = d.files["heatq_top.v"]
    assert len(re.findall(r"^\s*hq_stride #", top, re.M)) == 2  # b2_conv1, b2_shortcut
    assert re.search(r"hq_gap #\(\.C\(12\), \.AW\(7\), \.N\(16\)", top)
    assert re.search(r"hq_fifo #\(.*\) u_b1_add_arg1_fifo", top)  # the shortcut waits
    assert re.search(r"hq_fifo #\(.*\) u_b2_add_arg1_fifo", top)  # the projection waits
    depths = d.report["design"]["fifo_depths"]
    assert {"b1_add_arg1", "b2_add_arg1"} <= set(depths)
    assert d.report["b2_conv1"]["busy_cycles_per_image"] == 16  # 4x4 output positions
    assert VerilogEmitter().design(residual).files == d.files  # deterministic


@needs_iverilog
@needs_verilator
def test_residual_folded_exact_timed_and_lint_clean(tmp_path, residual):
    """``--ii 400`` (4x the unfolded 100): the layers after the stem fold (bit-serial /
    MVAU), their windows step with gaps, the joins' FIFOs grow to the slower paths."""
    s = _export(tmp_path / "v", residual, fold="auto", ii=400)
    rep = s["report"]
    assert rep["design"]["ii"] <= 400
    assert {r["design"] for k, r in rep.items() if k != "design"} - {"parallel"}
    _lint(tmp_path / "v")
    _sim_ok(tmp_path / "v", residual, _inputs(residual))


def _strided_host_graph():
    """A 1x1 stride-2 conv reading the host, its map added to itself (a join without a
    FIFO: both arguments are one flow), a requant, GLOBAL_AVGPOOL."""
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((2, 4, 8), -3, 4), [], "in")
    w = np.array([[[[1]], [[-2]]], [[[3]], [[1]]], [[[-1]], [[2]]]], dtype=np.int64)
    c = b.add(Op.CONV2D, Conv2dAttrs(w, np.array([1, -2, 0]), 3, 0, 2, 0), [x], "proj")
    a = b.add(Op.ADD, AddAttrs((0, 1)), [c, c], "twice")
    r = b.add(Op.REQUANT, RequantAttrs(1, -4, 7, Rounding.HALF_UP, Overflow.SATURATE), [a],
              "act")
    p = b.add(Op.GLOBAL_AVGPOOL, GlobalAvgPoolAttrs(), [r], "pool")
    return b.build([p])


@needs_iverilog
def test_strided_conv_on_host_and_join_without_fifo(tmp_path):
    g = _strided_host_graph()
    s = _export(tmp_path / "v", g)
    top = (tmp_path / "v" / "heatq_top.v").read_text()
    assert "hq_stride" in top and "twice_arg" not in top
    assert s["report"]["design"]["ii"] == 32
    _sim_ok(tmp_path / "v", g, _inputs(g, n=4))


@pytest.mark.slow
@needs_verilator
def test_resnet20_folded_verilator(tmp_path):
    """ResNet-20's shape (12x32x32 bit planes, widths 16/32/64, 3 blocks per stage, 4-bit
    weights and activations, random weights), ``--fold auto --ii 32768`` (``cse=False``:
    the folded layers do not use the CSE'd adder graphs, and lowering 19 convs with CSE
    takes minutes), in Verilator on 3 random images + the corner vectors: 0 mismatches,
    latency / II as modelled.  The figures (docs/folding.md) are printed."""
    from heatq_sim.graphs import resnet20_graph

    g = resnet20_graph(0)
    s = _export(tmp_path / "v", g, fold="auto", ii=32768, cse=False)
    d = s["report"]["design"]
    x = np.concatenate([corner_vectors(g, n_random=0, max_channels=2),
                        np.random.default_rng(2).integers(0, 2, size=(3,) + g.nodes[0].shape)])
    r = _sim_ok(tmp_path / "v", g, x, simulator="verilator", stall_images=2)
    mb = sum(p.stat().st_size for p in (tmp_path / "v").glob("*.v")) / 1e6
    print(f"\nresnet20: II {d['ii']} latency {d['latency']} layers_estimated_cost "
          f"{d['layers_estimated_cost']} Verilog {mb:.1f} MB images {r['n']} "
          f"sim {r['sim_images_per_s']} images/s")
    assert d["ii"] <= 32768
