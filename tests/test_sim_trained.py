"""The trained 4-bit seed CNN (``heatq train`` on mnist5k, the cnn_run fixture) exported to
Verilog and simulated in cocotb + Icarus exactly as ``heatq sim`` does: 20 mnist5k test
images plus every range-corner vector, every output equal to the interpreter's."""

from __future__ import annotations

import json

import numpy as np

from heatq import pipeline
from heatq.inputs import target_inputs
from heatq.ir import run
from heatq.rundir import load_graph

from tools import needs

pytestmark = needs("iverilog")


def test_trained_seed_cnn_icarus_20_images_and_corners(cnn_run, tmp_path):
    graph = load_graph(cnn_run)
    assert graph.meta["weight_bits"] and set(graph.meta["weight_bits"].values()) == {4}
    out = tmp_path / "rtl"
    pipeline.export_run(cnn_run, "verilog", out)
    r = pipeline.sim_run(out, "icarus", n=20)
    assert r["simulator"] == "icarus"
    assert r["n_images"] == 20 and r["n_corner"] > 0
    assert r["n"] == r["n_images"] + r["n_corner"]
    assert r["mismatches"] == 0, r.get("first_mismatches")
    assert r["timing_matches_model"]
    saved = json.loads((out / "sim-icarus.json").read_text())
    assert saved["mismatches"] == 0 and saved["n_images"] == 20
    # real digits that the network tells apart: the design is not trivially constant
    inputs = target_inputs(graph, str(cnn_run), n=20)
    classes = run(graph, inputs.x[:inputs.n_images])[-1]
    assert len(np.unique(classes)) > 1
