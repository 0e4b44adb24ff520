"""Simulation of generated RTL against the interpreter (ladder rung 4, Verilog) beyond the
conformance suite (tests/test_targets.py runs every corpus graph through Icarus and
Verilator): the full-size seed CNN with dataset images, ``max_carry`` designs, and the
measured latency / II against the report's cycle model.  Every check is exact equality of
every output of every image."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from heatq_export.base import write_export
from heatq_export.verilog import VerilogEmitter
from heatq_sim import simulate, write_sim_json
from heatq.ir.testing import corner_vectors
from heatq_sim.graphs import mlp_graph, seed_cnn_graph

from tools import needs

needs_iverilog = needs("iverilog")
needs_verilator = needs("verilator")


def _export(path, graph, **kw):
    em = VerilogEmitter(**kw)
    files = em.emit(graph)
    write_export(path, "verilog", files, em.summary(graph, files))
    return em


def _images(graph, n_data: int, n_rand: int, seed: int = 0, channels: int = 2) -> np.ndarray:
    """Corner vectors (the extremes of ``channels`` first-layer channels: each image of the
    full seed CNN is 1024 cycles), dataset images (mnist5k, bit planes) when available, random
    images."""
    parts = [corner_vectors(graph, n_random=0, max_channels=channels)]
    try:
        from heatq_sim.data import dataset_inputs
        parts.append(dataset_inputs(graph, "mnist5k", n_data))
    except Exception as e:  # noqa: BLE001 - the dataset is optional here, random data is not
        print(f"mnist5k unavailable ({e}); random images only")
        n_rand += n_data
    node = graph.nodes[0]
    rng = np.random.default_rng(seed)
    parts.append(rng.integers(node.lo, node.hi + 1, size=(n_rand,) + node.shape))
    return np.concatenate(parts).astype(np.int64)


def _ok(r, n):
    assert r["n"] == n
    assert r["mismatches"] == 0, r["first_mismatches"]
    assert r["err"] == 0
    assert r["timing_matches_model"], r


@pytest.fixture(scope="module")
def seed_cnn():
    return seed_cnn_graph(0)


@pytest.fixture(scope="module")
def seed_export(tmp_path_factory, seed_cnn):
    out = tmp_path_factory.mktemp("seed") / "rtl"
    _export(out, seed_cnn)
    return out


@needs_iverilog
def test_icarus_seed_cnn(seed_cnn, seed_export, tmp_path):
    x = _images(seed_cnn, 12, 20)  # >= 20 random binary images + real images + corners
    r = simulate(seed_export, seed_cnn, x, "icarus", work_dir=tmp_path)
    _ok(r, len(x))
    assert r["cycles_per_image"] == 1024.0 and r["ii"] == 1024
    p = write_sim_json(seed_export, r)
    assert json.loads(p.read_text())["simulator"] == "icarus"


@needs_iverilog
def test_max_carry_8_seed_cnn(seed_cnn, tmp_path):
    out = tmp_path / "rtl8"
    em = _export(out, seed_cnn, max_carry=8)
    # the lowered design: no carry chain over 8 bits between registers, in any stage
    n_seg = 0
    for g in em.design(seed_cnn).adder_graphs.values():
        assert g.max_carry == 8
        for ad in g.adders:
            seg = [min(8, ad.carry - i * 8) for i in range(ad.segments)]
            assert max(seg) <= 8 and sum(seg) == ad.carry and ad.width - ad.passthrough == ad.carry
            n_seg += ad.segments > 1
        assert all(v <= 8 for v in g.stats()["carry_per_stage"].values())
    assert n_seg > 0  # some adders were actually split
    rep = json.loads((out / "summary.json").read_text())["report"]
    assert rep["design"]["longest_carry"] <= 8
    x = _images(seed_cnn, 2, 2, seed=1, channels=1)
    _ok(simulate(out, seed_cnn, x, "icarus", work_dir=tmp_path / "w"), len(x))


@needs_iverilog
def test_icarus_mlp_parallel_max_carry_4(tmp_path):
    g = mlp_graph(1)
    out = tmp_path / "rtl"
    _export(out, g, max_carry=4)
    x = _images(g, 0, 60)
    r = simulate(out, g, x, "icarus", work_dir=tmp_path / "w", progress=False)
    _ok(r, len(x))
    assert r["ii"] == 1


@pytest.mark.slow
@needs_verilator
def test_verilator_seed_cnn(seed_cnn, seed_export, tmp_path):
    x = _images(seed_cnn, 300, 200, seed=3)
    r = simulate(seed_export, seed_cnn, x, "verilator", work_dir=tmp_path)
    _ok(r, len(x))
    print(f"verilator seed CNN: {r['sim_images_per_s']:.1f} images/s")


@pytest.mark.slow
@needs_verilator
def test_verilator_seed_cnn_max_carry_8(seed_cnn, tmp_path):
    out = tmp_path / "rtl8"
    _export(out, seed_cnn, max_carry=8)
    x = _images(seed_cnn, 50, 50, seed=4)
    _ok(simulate(out, seed_cnn, x, "verilator", work_dir=tmp_path / "w"), len(x))


# ---------------------------------------------------------------- back-pressure (m_tready)
def _tiny_cnn():
    """A stream CNN small enough for Icarus: 1x8x8 -> conv3 (2) -> pool -> conv3 (4) -> pool
    -> fc 15 -> sign bits -> class (II 100 cycles)."""
    return seed_cnn_graph(1, channels=(1, 2, 4), kernels=(3, 3), size=8)


def _stalled_ok(r, n, queue):
    """Both phases exact, the timing phase as modelled, and the stalled phase really
    stalled: results held (the long hold: the queue filled) and never changed while held."""
    _ok(r, n)
    st = r["stall"]
    assert st["images"] > queue["entries"] and st["mismatches"] == 0
    assert st["hold_violations"] == 0
    assert st["m_tvalid_held"] > 0 and st["m_tready_low"] >= st["hold"]
    return st


@needs_iverilog
def test_icarus_m_tready_stalls_stream_cnn(tmp_path):
    """Random m_tready stalls, a hold over queue + 2 images and random host gaps on a stream
    CNN: every result exact against heatq.ir.run, in order; the m_tready=1 phase keeps the
    modelled II and latency."""
    g = _tiny_cnn()
    em = _export(tmp_path / "rtl", g)
    q = em.design(g).report["design"]["output_queue"]
    x = _images(g, 0, 10, seed=5, channels=1)
    r = simulate(tmp_path / "rtl", g, x, "icarus", work_dir=tmp_path / "w", progress=False,
                 seed=3)
    st = _stalled_ok(r, len(x), q)
    # the hold outlasts the queue: results waited at least a whole queue's worth of IIs
    assert st["m_tvalid_held"] >= q["entries"] * r["ii"]


@needs_iverilog
def test_icarus_m_tready_stalls_parallel_mlp_same_draws_as_verilator(tmp_path):
    """Parallel MLP (one vector per beat): the queue fills under the hold, so s_tready drops
    (host_waits > 0: in parallel mode only the credit lowers it); Icarus and the Verilator
    harness draw the same pattern, so every counter agrees cycle for cycle."""
    g = mlp_graph(2, n_in=12, hidden=8)
    em = _export(tmp_path / "rtl", g)
    q = em.design(g).report["design"]["output_queue"]
    assert q["results_in_flight"] == em.design(g).report["design"]["latency"]
    x = _images(g, 0, 40, seed=6)
    kw = dict(progress=False, stall=0.4, stall_burst=5, gaps=0.2, seed=11)
    r = simulate(tmp_path / "rtl", g, x, "icarus", work_dir=tmp_path / "w", **kw)
    st = _stalled_ok(r, len(x), q)
    assert st["host_waits"] > 0
    if shutil.which("verilator"):
        rv = simulate(tmp_path / "rtl", g, x, "verilator", work_dir=tmp_path / "wv", **kw)
        assert _stalled_ok(rv, len(x), q) == st


@needs_verilator
@pytest.mark.parametrize("case", ["cnn", "cnn-fold", "mlp"])
def test_verilator_m_tready_stalls(tmp_path, case):
    """Heavier patterns in Verilator (long bursts, several seeds): exact, nothing held
    changes; the folded CNN's queue holds 4 results (2 in flight at an image's first beat)."""
    g = mlp_graph(3, n_in=10, hidden=6) if case == "mlp" else _tiny_cnn()
    em = _export(tmp_path / "rtl", g, **({"fold": "auto", "ii": 100} if case == "cnn-fold"
                                          else {}))
    q = em.design(g).report["design"]["output_queue"]
    if case == "cnn-fold":
        assert q["entries"] == 4 and q["results_in_flight"] == 2
    x = _images(g, 0, 12, seed=7, channels=1)
    for seed, (p, burst) in enumerate([(0.5, 3), (0.05, 400), (0.9, 40)]):
        r = simulate(tmp_path / "rtl", g, x, "verilator", work_dir=tmp_path / "w",
                     progress=False, stall=p, stall_burst=burst, stall_images=3 * q["entries"] + 5,
                     gaps=0.3, seed=seed)
        _stalled_ok(r, len(x), q)


@needs_verilator
@pytest.mark.parametrize("mutation", ["drop", "no-credit"])
def test_a_broken_output_queue_is_caught(tmp_path, mutation):
    """The bench can fail: an hq_outq that drops a result arriving while m_tready is low
    (and the queue empty), or one that never withholds credit, is reported."""
    g = mlp_graph(2, n_in=12, hidden=8)
    _export(tmp_path / "rtl", g)
    p = tmp_path / "rtl" / "hq_outq.v"
    text = p.read_text()
    old, new = {"drop": ("in_valid && (q_valid || !m_tready)", "in_valid && q_valid"),
                "no-credit": ("(inflight != CAP)", "1'b1")}[mutation]
    assert old in text
    p.write_text(text.replace(old, new))
    x = _images(g, 0, 20, seed=8)
    r = simulate(tmp_path / "rtl", g, x, "verilator", work_dir=tmp_path / "w", progress=False)
    assert r["timing_matches_model"]  # m_tready held 1: the mutation does not show there
    st = r["stall"]
    assert st["mismatches"] > 0 or st["hold_violations"] > 0 or r["err"], st
