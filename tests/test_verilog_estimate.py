"""yosys resource estimate of one small layer (LUT / CARRY4 / FF, and a vendor-neutral LUT6
count), written into summary.json."""

from __future__ import annotations

import json

import pytest

from heatq_export.base import write_export
from heatq_export.estimate import estimate_export
from heatq_export.verilog import VerilogEmitter
from heatq_sim.graphs import mlp_graph

from tools import needs


@needs("yosys")
def test_estimate_small_layer(tmp_path):
    g = mlp_graph(0, n_in=16, hidden=8)
    em = VerilogEmitter()
    files = em.emit(g)
    write_export(tmp_path / "v", "verilog", files, em.summary(g, files))
    s = estimate_export(tmp_path / "v", layers=["fc2"])
    e = json.loads((tmp_path / "v" / "summary.json").read_text())["report"]["estimate"]
    assert e == s["report"]["estimate"]
    fc2 = e["fc2"]
    assert fc2["module"] == "heatq_top_fc2"
    assert fc2["lut"] > 0 and fc2["carry4"] > 0 and fc2["lut6"] > 0
    # the output register (15 logits) and the valid bit
    assert fc2["ff"] >= 1 and fc2["lut_carry"] == fc2["lut"] + fc2["carry4"]
    assert e["total"]["lut"] == fc2["lut"]
    with pytest.raises(ValueError):
        estimate_export(tmp_path / "v", layers=["nope"])
