"""Throughput-matched folding (export/fold.py, export/rtl/bitserial.py, the hq_raster step gap):

* the bit-serial layer module in Icarus against numpy, every cycle (signed / unsigned inputs,
  requantizers, inputs back to back at ``cycles`` spacing and with gaps, garbage on ``x``
  outside ``in_valid``, ``y`` held between results);
* the cycle model with step gaps against the Icarus-measured latency / II of whole designs
  (``heatq_sim.simulate``'s ``timing_matches_model``) and 0 mismatches against the
  interpreter: a small seeded CNN with ``--fold auto``, with forced bit-serial / MVAU layers
  and with a larger ``--ii`` (host-facing window and ``hq_pace`` with a gap);
* ``--fold none`` prints no GAP and the planner's all-parallel plan the same RTL; the
  planner keeps every layer inside its budget; ``--ii`` too small / in parallel mode: one-line
  EmitError; every file of a folded export ``verilator --lint-only -Wall`` clean;
* slow: the trained 4-bit and heated seed CNNs folded (Icarus 20 images + corners, Verilator
  1000 + corners).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from heatq.ir import GraphBuilder, InputAttrs, IntType, Op, Overflow, ThresholdAttrs
from heatq.ir.requant import requant_array
from heatq.ir.testing import corner_vectors
from heatq.lower import lower_cmvm
from heatq_export.base import EmitError, write_export
from heatq_export.fold import plan_folds
from heatq_export.rtl.bitserial import bitserial_netlist
from heatq_export.rtl.verilog import print_module
from heatq_export.verilog import VerilogEmitter
from heatq_export.verilog_layers import RequantSpec
from heatq_export.verilog_schedule import Stage, simulate as model
from heatq_sim.graphs import mlp_graph, seed_cnn_graph

from tools import check_folded_module, needs

needs_iverilog = needs("iverilog")
needs_verilator = needs("verilator")



def _acc_types(W, c, it: IntType) -> list[tuple[int, int]]:
    lo = c + np.minimum(W * it.min, W * it.max).sum(axis=1)
    hi = c + np.maximum(W * it.min, W * it.max).sum(axis=1)
    return [(int(a), int(b)) for a, b in zip(lo, hi)]


def _bench(tmp: Path, W, c, it: IntType, rq, n_vec: int = 10, seed: int = 0,
           arith: str = "adders") -> None:
    """Build the bit-serial module of ``W @ x + c`` (+ ``rq``), drive ``n_vec`` vectors
    (extremes first) and check every cycle's ``out_valid`` and ``y`` against numpy."""
    n_out, n_in = W.shape
    rng = np.random.default_rng(seed)
    ranges = _acc_types(W, c, it)
    acc = [IntType.for_range(lo, hi) for lo, hi in ranges]
    if rq is None:
        ot = IntType.for_range(min(r[0] for r in ranges), max(r[1] for r in ranges))
    else:
        ends = requant_array(np.array([min(r[0] for r in ranges), max(r[1] for r in ranges)]), rq)
        ot = IntType.for_range(int(ends.min()), int(ends.max()))
    offs = [i * it.width for i in range(n_in)]
    nx = n_in * it.width
    g1 = lower_cmvm(W, [(0, 1)] * n_in)
    m, lat, cycles = bitserial_netlist("dut_m", g1, c, it, offs, nx, ot, acc, rq, ["test"],
                                       arith, weights=W, acc_ranges=ranges)
    assert (lat, cycles) == (it.width + 1, it.width)
    X = np.array([[it.min] * n_in, [it.max] * n_in]
                 + [rng.integers(it.min, it.max + 1, n_in).tolist() for _ in range(n_vec - 2)])
    v = X @ W.T + c
    want = v if rq is None else requant_array(v, rq)
    starts, t = [], 2
    for k in range(n_vec):  # back to back at exactly `cycles`, then with gaps
        starts.append(t)
        t += cycles + (int(rng.integers(0, 3)) if k >= n_vec // 2 else 0)
    check_folded_module(tmp, print_module(m), lat, X, want, offs, it.width, nx, ot, starts,
                        rng)


BITSERIAL_CASES = [  # (n_out, n_in, input type, requant)
    (6, 16, IntType(False, 4), RequantSpec(3, 0, 15, Overflow.SATURATE)),
    (5, 9, IntType(True, 3), None),
    (4, 12, IntType(True, 4), RequantSpec(2, -8, 7, Overflow.WRAP)),
    (3, 5, IntType(False, 2), RequantSpec(-1, -20, 20, Overflow.SATURATE)),
    (6, 16, IntType(True, 4), RequantSpec(3, 0, 15, Overflow.SATURATE), "heap"),
]


@needs_iverilog
@pytest.mark.parametrize("case", range(len(BITSERIAL_CASES)))
def test_bitserial_module_exact_in_icarus(tmp_path, case):
    n_out, n_in, it, rq, *arith = BITSERIAL_CASES[case]
    if arith == ["heap"]:
        pytest.importorskip("heatq_export.rtl.heap")  # the bit-heap mapper (docs/arith.md)
    rng = np.random.default_rng(case)
    W = rng.integers(-7, 8, size=(n_out, n_in))
    W[0, :] = 0  # an all-zero row: the tree's output is a constant
    c = rng.integers(-40, 41, size=n_out)
    _bench(tmp_path, W, c, it, rq, seed=case, arith=(arith or ["adders"])[0])


# ---------------------------------------------------------------------- the cycle model
def test_model_gap_spaces_window_steps_and_waits_for_pixels():
    def win(**g):
        return [Stage("window", {"H": 4, "W": 4, "K": 3, "P": 1, **g}, "w"),
                Stage("collect", {"N": 16})]

    assert model(win(), 0, n_img=3)["ii"] == 36
    # every step gapped (GK 0, as hq_pace for a 1x1 window): 3 cycles per padded position
    assert model(win(G=3, GK=0), 0, n_img=3)["ii"] == 3 * 36
    # GK = K-1: only the 16 window-completing steps (rows / columns 2..5 of the 6x6 raster)
    # are 3 apart; by hand: rows 0-1 take 12 cycles, each later row 2 + 3 + 3 + 3 + 1, and
    # the gap from a row's last window to the next row's first is covered by its 2 plain steps
    assert model(win(G=3, GK=2), 0, n_img=3)["ii"] == 12 + 4 * 12
    # window a (8x8 raster, 6x6 windows, gap 2): rows 0-1 16 cycles, each later row 2 plain
    # steps + 6 windows 2 apart (13); window b behind the pool (walk 10 + 3 * 13 = 49 cycles)
    # waits for its pixels, then steps at once: the II is a's
    st = [Stage("window", {"H": 6, "W": 6, "K": 3, "P": 1, "G": 2, "GK": 2}, "a"),
          Stage("delay", {"lat": 3}), Stage("pool", {"H": 6, "W": 6}),
          Stage("window", {"H": 3, "W": 3, "K": 3, "P": 1, "G": 5, "GK": 2}, "b"),
          Stage("collect", {"N": 9})]
    r = model(st, 0, n_img=4)
    assert r["ii"] == 16 + 6 * 13 and r["fifo_depths"]["b"] >= 1


SMALL = dict(channels=(2, 4, 4, 8, 8), kernels=(3, 3, 3, 3), size=16, w_bits=3, act_bits=2)


@pytest.fixture(scope="module")
def small_cnn():
    return seed_cnn_graph(0, **SMALL)


def _export(path: Path, graph, **kw) -> dict:
    em = VerilogEmitter(**kw)
    files = em.emit(graph)
    return write_export(path, "verilog", files, em.summary(graph, files))


def _inputs(graph, n_rand: int = 4, n_corner: int = 4) -> np.ndarray:
    rng = np.random.default_rng(1)
    node = graph.nodes[0]
    return np.concatenate([corner_vectors(graph, n_random=0, max_channels=2)[:n_corner],
                           rng.integers(node.lo, node.hi + 1, size=(n_rand,) + node.shape)])


def _sim_ok(path: Path, graph, x, simulator: str = "icarus") -> dict:
    from heatq_sim import simulate

    r = simulate(path, graph, x, simulator=simulator, progress=False)
    assert r["mismatches"] == 0, r["first_mismatches"]
    assert r["err"] == 0
    assert r["timing_matches_model"], {k: r[k] for k in ("latency", "ii", "model_latency",
                                                         "model_ii")}
    return r


def test_plan_keeps_every_layer_inside_its_budget(small_cnn):
    d = VerilogEmitter(fold="auto").design(small_cnn)
    rep = d.report
    assert rep["design"]["ii"] == 18 * 18 == rep["design"]["ii_target"]
    windows = {"conv1": 16 * 16, "conv2": 8 * 8, "conv3": 4 * 4, "conv4": 2 * 2}
    designs = set()
    for name, n in windows.items():
        r = rep[name]
        designs.add(r["design"])
        assert r["busy_cycles_per_image"] == r["cycles_per_position"] * n <= rep["design"]["ii"]
        assert r["utilisation"] == round(r["busy_cycles_per_image"] / rep["design"]["ii"], 4)
    assert rep["fc"]["cycles_per_position"] <= rep["design"]["ii"]
    assert designs - {"parallel"}, "nothing folded"
    assert rep["conv1"]["design"] == "parallel"  # 1-bit inputs at one window per cycle


@needs_iverilog
def test_fold_auto_small_cnn_exact_and_timed_in_icarus(tmp_path, small_cnn):
    s = _export(tmp_path / "v", small_cnn, fold="auto")
    assert {r["design"] for k, r in s["report"].items() if k != "design"} >= {"bitserial", "mvau"}
    top = (tmp_path / "v" / "heatq_top.v").read_text()
    assert re.search(r"\.GAP\(\d+\)", top)
    _sim_ok(tmp_path / "v", small_cnn, _inputs(small_cnn))


@needs_iverilog
def test_forced_bitserial_and_larger_ii_in_icarus(tmp_path, small_cnn):
    """conv3 / conv4 / fc bit-serial, conv2 an MVAU; ``--ii 648``: the host-facing conv1
    window (18x18 raster, 16x16 windows) gets gap 2: rows 0-1 36 cycles, each later row 2
    plain steps + 16 windows 2 apart (33): II 564 <= 648 (gap 3 would take 804)."""
    force = {"conv2": "mvau", "conv3": "bitserial", "conv4": "bitserial", "fc": "bitserial"}
    s = _export(tmp_path / "v", small_cnn, fold="auto", ii=2 * 324, fold_force=force)
    rep = s["report"]
    assert [rep[k]["design"] for k in force] == list(force.values())
    assert rep["design"]["ii"] == 36 + 16 * 33 and rep["design"]["ii_target"] == 648
    assert rep["conv1"]["utilisation"] == round(256 / 564, 4)
    _sim_ok(tmp_path / "v", small_cnn, _inputs(small_cnn, n_rand=3, n_corner=2))


def _paced_graph():
    """INPUT -> THRESHOLD -> conv (the host is paced by hq_pace) -> ... (seed CNN tail)."""
    g = seed_cnn_graph(3, channels=(1, 4, 4, 4, 4), kernels=(3, 3, 3, 3), size=16, w_bits=3,
                       act_bits=2)
    b = GraphBuilder()
    ids = {}
    x = b.add(Op.INPUT, InputAttrs((1, 16, 16), 0, 7), [], "input")
    ids[0] = b.add(Op.THRESHOLD, ThresholdAttrs(np.array([[3]])), [x], "thr")
    for n in g.nodes[1:]:
        ids[n.id] = b.add(n.op, n.attrs, [ids[a] for a in n.args], n.name)
    return b.build([ids[o] for o in g.outputs])


@needs_iverilog
def test_paced_host_with_gap_in_icarus(tmp_path):
    g = _paced_graph()
    s = _export(tmp_path / "v", g, fold="auto", ii=804)  # gap 3: 36 + 16 * (2 + 1 + 15 * 3)
    assert s["report"]["design"]["ii"] == 804
    top = (tmp_path / "v" / "heatq_top.v").read_text()
    assert re.search(r"hq_pace #\([^;]*\.GAP\(3\)", top, re.S)
    _sim_ok(tmp_path / "v", g, _inputs(g, n_rand=3, n_corner=2))


# ---------------------------------------------------------------------- defaults and errors
def _strip_headers(files: dict[str, str]) -> dict[str, str]:
    return {k: re.sub(r"^//.*\n", "", v, flags=re.M) for k, v in files.items()}


def test_fold_none_prints_no_gap_and_all_parallel_plan_is_the_same_rtl(small_cnn, monkeypatch):
    none = VerilogEmitter().emit(small_cnn)
    assert none == VerilogEmitter(fold="none").emit(small_cnn)
    assert "GAP(" not in none["heatq_top.v"]
    # the planner forced to parallel everywhere (gap 1): the same RTL, comments aside
    import heatq_export.verilog as ver

    def parallel(g, ii, arith, cse=True, force=None):
        plan = plan_folds(g, ii, arith, cse)
        return {k: type(c)("parallel", 1, cost=c.cost, budget=c.budget) for k, c in plan.items()}

    monkeypatch.setattr(ver, "plan_folds", parallel)
    same = VerilogEmitter(fold="auto").emit(small_cnn)
    assert _strip_headers(same) == _strip_headers(none)
    assert same != none  # the headers say how it was folded


def test_ii_too_small_or_in_parallel_mode_is_a_one_line_error(small_cnn):
    with pytest.raises(EmitError, match=r"--ii 300: layer conv1 walks 324 .*II >= 324") as e:
        VerilogEmitter(fold="auto", ii=300).design(small_cnn)
    assert "\n" not in str(e.value)
    with pytest.raises(EmitError, match="--ii 300"):
        VerilogEmitter(ii=300).design(small_cnn)  # --fold none: the same check
    with pytest.raises(EmitError, match=r"--ii 4: parallel mode .*back-pressure") as e:
        VerilogEmitter(fold="auto", ii=4).design(mlp_graph(0))
    assert "\n" not in str(e.value)
    rep = VerilogEmitter(fold="auto").design(mlp_graph(0)).report
    assert rep["design"]["ii"] == 1 and {rep[k]["design"] for k in ("fc1", "fc2")} == {"parallel"}
    with pytest.raises(EmitError, match="design 'bitserial' does not fit"):
        VerilogEmitter(fold="auto", fold_force={"conv1": "bitserial"}).design(small_cnn)


@needs_verilator
def test_folded_export_lint_clean(tmp_path, small_cnn):
    force = {"conv2": "mvau", "conv3": "bitserial", "conv4": "bitserial", "fc": "bitserial"}
    _export(tmp_path / "v", small_cnn, fold="auto", ii=648, fold_force=force)
    paths = sorted((tmp_path / "v").glob("*.v"))
    r = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "heatq_top"]
                       + [str(p) for p in paths], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert VerilogEmitter(fold="auto", ii=648, fold_force=force).emit(small_cnn) == \
        {p.name: p.read_text() for p in paths}  # deterministic


# ---------------------------------------------------------------------- slow: trained CNNs
# make demo's runs (the trained 4-bit seed CNN and the heated one): run `make demo` first
_DEMO = Path(__file__).resolve().parents[1] / "heatq-out"
RUNS = {"cnn4": str(_DEMO / "run-4bit"), "heated": str(_DEMO / "run")}


@pytest.mark.slow
@needs_iverilog
@needs_verilator
@pytest.mark.parametrize("run", sorted(RUNS))
def test_trained_cnn_folded_icarus_and_verilator(tmp_path, run):
    from heatq.ir import load
    from heatq_sim.data import dataset_inputs

    src = Path(RUNS[run])
    if not (src / "model.ir.json").is_file():
        pytest.skip(f"{src} not there (run make demo first)")
    g = load(src / "model.ir.json")
    s = _export(tmp_path / "v", g, fold="auto")
    d = s["report"]["design"]
    assert d["ii"] <= d["ii_target"]
    corners = corner_vectors(g, n_random=0, max_channels=2)
    _sim_ok(tmp_path / "v", g, np.concatenate([dataset_inputs(g, "mnist5k", 20), corners]))
    _sim_ok(tmp_path / "v", g, np.concatenate([dataset_inputs(g, "mnist5k", 1000), corners]),
            simulator="verilator")

