"""yosys resource estimates written into summary.json: one small layer (LUT / CARRY4 / FF and
the vendor-neutral LUT6 count), the whole design against its layers, the sha256 cache, iCE40
place-and-route (fits with an Fmax; does not fit, reported with its size), the --estimate
option's forms."""

from __future__ import annotations

import json
import os
import re

import pytest

from heatq_export import estimate
from heatq_export.base import write_export
from heatq_export.cli import bare_values
from heatq_export.estimate import estimate_export, estimate_request
from heatq_export.ice40 import estimate_ice40, top_ports
from heatq_export.verilog import VerilogEmitter
from heatq_sim.graphs import mlp_graph

from tools import needs


def _export(path):
    g = mlp_graph(0, n_in=8, hidden=6)
    em = VerilogEmitter()
    files = em.emit(g)
    write_export(path, "verilog", files, em.summary(g, files))
    return path


@pytest.fixture(scope="module")
def estimated(tmp_path_factory):
    """An 8-6-15 MLP exported and estimated once (xilinx + lut6 per layer, xilinx of the
    whole design, iCE40 HX8K), with its own cache directory (kept for the module)."""
    root = tmp_path_factory.mktemp("est")
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(root / "cache")
    try:
        out = _export(root / "v")
        summary = estimate_export(out, ice40=("hx8k",), progress=False)
        yield out, summary["report"]["estimate"]
    finally:
        if old is None:
            os.environ.pop("XDG_CACHE_HOME")
        else:
            os.environ["XDG_CACHE_HOME"] = old


@needs("yosys")
def test_estimate_small_layer(estimated):
    out, e = estimated
    assert e == json.loads((out / "summary.json").read_text())["report"]["estimate"]
    fc2 = e["fc2"]
    assert fc2["module"] == "heatq_top_fc2"
    assert fc2["lut"] > 0 and fc2["carry4"] > 0 and fc2["lut6"] > 0
    # the output register (15 logits) and the valid bit
    assert fc2["ff"] >= 1 and fc2["lut_carry"] == fc2["lut"] + fc2["carry4"]
    assert e["total"]["lut"] == fc2["lut"] + e["fc1"]["lut"]
    cache = estimate.cache_dir()
    assert str(cache).startswith(os.environ["XDG_CACHE_HOME"]) and list(cache.glob("*.json"))
    assert not list(out.glob("*.json*"))[1:]  # only summary.json: the cache is elsewhere
    with pytest.raises(ValueError):
        estimate_export(out, layers=["nope"])
    with pytest.raises(ValueError, match="iCE40 device"):
        estimate_export(out, ice40=("ecp5",))


@needs("yosys")
def test_whole_design_covers_the_layers_and_the_stream_units(estimated):
    _, e = estimated
    tot, des = e["total"], e["design"]
    assert tot["covers"] == ["fc1", "fc2"] and des["module"] == "heatq_top"
    assert "every module" in des["covers"] and "design" in tot["scope"]
    for k in ("lut", "carry4", "ff", "lut_carry"):
        assert des[k] >= tot[k], k
        assert des["minus_layers"][k] == des[k] - tot[k]
    # the Hamming decoder, SIGN_BITS register and output alignment delays are FFs outside
    # the layers: 15 sign bits + 150 delayed logit bits at least
    assert des["minus_layers"]["ff"] >= 165
    text = estimate.format_estimate({"report": {"estimate": e}})
    assert re.search(r"^\s+design\s+\d+", text, re.M) and "stream units" in text
    assert "iCE40 HX8K (ct256)" in text and "MHz" in text


@needs("yosys")
def test_second_estimate_reads_the_cache(estimated, monkeypatch):
    out, first = estimated
    runs = []

    def counting(cmd, timeout):
        runs.append(cmd[0])
        return real(cmd, timeout)

    real = estimate.run_tool
    monkeypatch.setattr(estimate, "run_tool", counting)
    monkeypatch.setattr("heatq_export.ice40.run_tool", counting)
    again = estimate_export(out, flows=("xilinx",), ice40=("hx8k",), progress=False)
    again = again["report"]["estimate"]
    assert runs == []  # every result came from the cache
    one = estimate_export(out, layers=["fc2"], flows=("xilinx",), design=False, progress=False)
    assert one["report"]["estimate"]["total"]["lut"] == first["fc2"]["lut"] and runs == []
    assert again["fc1"]["cached"] and again["design"]["cached"] and again["ice40"]["hx8k"]["cached"]
    for k in ("lut", "carry4", "ff"):
        assert again["design"][k] == first["design"][k] and again["total"][k] == first["total"][k]
    # a changed source is a new key: only that module runs again
    (out / "heatq_top_fc2.v").write_text((out / "heatq_top_fc2.v").read_text() + "// edit\n")
    estimate_export(out, layers=["fc2"], flows=("xilinx",), design=False, progress=False)
    assert runs == ["yosys"]


@needs("yosys", "nextpnr-ice40")
def test_ice40_place_and_route(estimated):
    _, e = estimated
    r = e["ice40"]["hx8k"]
    assert r["fits"] and r["device"] == "hx8k" and r["package"] == "ct256"
    assert r["lut4"] > 0 and r["carry"] > 0 and r["ff"] > 0
    # the only memory is the output queue behind m_tready (hq_outq's FIFO): 8 entries of the
    # 169 output bits, which yosys maps to block RAM (4 kbit, at most 16 bits wide each)
    assert 0 < r["ram"] <= -(-169 // 16) + 1
    assert isinstance(r["fmax_mhz"], float) and 1 < r["fmax_mhz"] < 1000
    assert r["lc"] >= r["lut4"] // 2 and r["utilisation"]["ICESTORM_LC"]["available"] == 7680
    # 32 input bits + valid + m_tready, 150 + 15 + 4 + 3 output bits: more than the package's 206 pins
    assert r["harness"] == {"in_bits": 34, "out_bits": 172} and r["io"] == 5


@needs("yosys", "nextpnr-ice40")
def test_ice40_does_not_fit_is_a_result(estimated):
    out, e = estimated
    assert e["ice40"]["hx8k"]["lc"] > 1280  # so it cannot fit an HX1K
    r = estimate_ice40(sorted(out.glob("*.v")), "heatq_top", "hx1k")
    assert r["fits"] is False and "fmax_mhz" not in r
    assert r["reason"].startswith("does not fit HX1K (1280 LUT4): ICESTORM_LC ")
    assert r["lut4"] == e["ice40"]["hx8k"]["lut4"]  # the measured size is still reported
    assert "does not fit HX1K" in estimate.format_estimate(
        {"report": {"estimate": {"ice40": {"hx1k": r}}}})


def test_harness_ports_and_option_forms():
    text = ("module heatq_top (\n    input  wire clk,\n    input  wire [63:0] s_tdata,\n"
            "    output wire signed [9:0] m_y,\n    output wire err\n);\nendmodule\n")
    assert top_ports(text, "heatq_top") == [("input", "clk", 1), ("input", "s_tdata", 64),
                                            ("output", "m_y", 10), ("output", "err", 1)]
    assert estimate_request(True) == estimate_request("xilinx") == {
        "flows": ("xilinx", "lut6"), "design": True, "ice40": ()}
    assert estimate_request("ice40") == {"flows": (), "design": False, "ice40": ("hx8k",)}
    assert estimate_request("all")["ice40"] == ("hx8k",) and estimate_request("all")["design"]
    assert estimate_request("xilinx,ice40-up5k")["ice40"] == ("up5k",)
    assert estimate_request(False) == {}
    with pytest.raises(ValueError, match="choose from"):
        estimate_request("vivado")
    # the flag alone is --estimate xilinx, before an option, at the end, or before the run
    assert bare_values(["r", "--estimate"]) == ["r", "--estimate", "xilinx"]
    assert bare_values(["--estimate", "r", "-q"]) == ["--estimate", "xilinx", "r", "-q"]
    assert bare_values(["r", "--estimate", "-q"]) == ["r", "--estimate", "xilinx", "-q"]
    assert bare_values(["r", "--estimate", "ice40"]) == ["r", "--estimate", "ice40"]
