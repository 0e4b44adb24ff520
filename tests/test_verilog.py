"""The Verilog emitter: files, summary/report, determinism, lint-clean (Verilator -Wall) for
every generated file, accepted by Icarus and yosys, unsupported graphs rejected clearly."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from heatq.ir import (
    Conv2dAttrs, FlattenAttrs, GraphBuilder, InputAttrs, MaxPool2dAttrs, Op,
)
from heatq_export.base import EmitError, write_export
from heatq_export.verilog import VerilogEmitter
from heatq_sim.graphs import mlp_graph, seed_cnn_graph

from tools import needs

needs_verilator = needs("verilator")
needs_iverilog = needs("iverilog")
needs_yosys = needs("yosys")


def _module_of(text: str) -> str:
    return re.search(r"^module\s+(\w+)", text, re.M).group(1)


def _lint(paths: list[Path], top: str, libdir: Path | None = None) -> str:
    cmd = ["verilator", "--lint-only", "-Wall", "--top-module", top]
    if libdir is not None:
        cmd += ["-y", str(libdir)]
    r = subprocess.run(cmd + [str(p) for p in paths], capture_output=True, text=True)
    return (r.stdout + r.stderr) if r.returncode else ""


def _export(tmp: Path, graph, **kw) -> tuple[Path, dict]:
    em = VerilogEmitter(**kw)
    files = em.emit(graph)
    summary = write_export(tmp, "verilog", files, em.summary(graph, files))
    return tmp, summary


@pytest.fixture(scope="module")
def small_cnn():
    return seed_cnn_graph(2, channels=(4, 4, 8, 8, 16))


def test_mlp_summary_report_and_byte_identical_reruns(tmp_path):
    g = mlp_graph(0)
    a = VerilogEmitter().emit(g)
    b = VerilogEmitter().emit(mlp_graph(0))
    assert a == b  # deterministic names and text
    out, s = _export(tmp_path / "v", g)
    disk = json.loads((out / "summary.json").read_text())
    assert disk["top"] == "heatq_top" and disk["target"] == "verilog"
    assert set(disk["files"]) == set(a)
    rep = disk["report"]
    for layer in ("fc1", "fc2"):
        r = rep[layer]
        for key in ("adders", "adder_bits", "carry_per_stage", "pipeline_depth", "latency", "ii"):
            assert key in r
        assert r["adders"] > 0 and r["ii"] == 1
    d = rep["design"]
    assert d["mode"] == "parallel" and d["ii"] == 1
    assert d["latency"] == rep["fc1"]["latency"] + rep["fc2"]["latency"] + 2  # + sign + decode
    assert disk["ports"]["outputs"][2]["port"] == "m_decode"


def test_stream_report_states_latency_ii(small_cnn):
    em = VerilogEmitter()
    em.emit(small_cnn)
    d = em.summary(small_cnn, {})["report"]["design"]
    assert d["mode"] == "stream"
    assert d["ii"] == 32 * 32  # the first layer walks the 5x5-padded 28x28 raster
    assert 0 < d["latency_from_last_input"] < d["latency"]
    assert set(d["fifo_depths"]) == {"conv2", "conv3", "conv4"}


@needs_verilator
@pytest.mark.parametrize("max_carry", [None, 6])
def test_every_file_lint_clean_small_cnn(tmp_path, small_cnn, max_carry):
    out, s = _export(tmp_path / "v", small_cnn, max_carry=max_carry)
    files = sorted(out.glob("*.v"))
    assert _lint(files, s["top"]) == ""
    for f in files:  # each file as its own top (primitives at their default parameters)
        assert _lint([f], _module_of(f.read_text()), out) == "", f.name


@needs_verilator
def test_every_file_lint_clean_mlp(tmp_path):
    for k in (None, 4):
        out, s = _export(tmp_path / f"v{k}", mlp_graph(3, n_in=20, hidden=12), max_carry=k)
        files = sorted(out.glob("*.v"))
        assert _lint(files, s["top"]) == ""
        for f in files:
            assert _lint([f], _module_of(f.read_text()), out) == "", f.name


@needs_verilator
def test_seed_cnn_lint_clean(tmp_path):
    out, s = _export(tmp_path / "v", seed_cnn_graph(0))
    assert _lint(sorted(out.glob("*.v")), s["top"]) == ""


@needs_iverilog
@needs_yosys
def test_icarus_and_yosys_accept(tmp_path, small_cnn):
    out, s = _export(tmp_path / "v", small_cnn, max_carry=8)
    files = [str(p) for p in sorted(out.glob("*.v"))]
    r = subprocess.run(["iverilog", "-g2001", "-o", str(tmp_path / "a.vvp")] + files,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    script = "".join(f"read_verilog {f}; " for f in files) + f"hierarchy -check -top {s['top']}"
    r = subprocess.run(["yosys", "-q", "-p", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_max_carry_report_and_lowered_design(small_cnn):
    em = VerilogEmitter(max_carry=5)
    em.emit(small_cnn)
    rep = em.summary(small_cnn, {})["report"]
    for name, r in rep.items():
        if name == "design":
            continue
        assert r["longest_carry"] <= 5
        assert all(v <= 5 for v in r["carry_per_stage"].values())
        assert r["latency"] == r["pipeline_depth"] + 1
    d = em.design(small_cnn)
    assert set(d.adder_graphs) == {k for k in rep if k != "design"}
    for g in d.adder_graphs.values():
        for ad in g.adders:
            seg = [min(5, ad.carry - i * 5) for i in range(ad.segments)]
            assert max(seg) <= 5 and sum(seg) == ad.carry


def test_unsupported_graphs_fail_clearly():
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((1, 6, 6), 0, 1), [], "in")
    w = np.ones((2, 1, 3, 3), dtype=np.int64)
    c = b.add(Op.CONV2D, Conv2dAttrs(w, np.zeros(2, np.int64), 2, 0, 1, 1), [x], "c")
    g = b.build([c])
    with pytest.raises(EmitError, match="feature map"):
        VerilogEmitter().emit(g)
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((1, 6, 6), 0, 1), [], "in")
    p = b.add(Op.MAXPOOL2D, MaxPool2dAttrs(3, 3), [x], "p")
    f = b.add(Op.FLATTEN, FlattenAttrs(), [p], "f")
    with pytest.raises(EmitError, match="2x2"):
        VerilogEmitter().emit(b.build([f]))
    with pytest.raises(ValueError):
        VerilogEmitter(top="1bad")
    with pytest.raises(ValueError):
        VerilogEmitter(max_carry=0)


def test_byte_identical_across_processes():
    """Fresh processes with different hash seeds (no in-process lowering cache) emit the same
    bytes."""
    import os
    import sys

    code = ("import hashlib\n"
            "from heatq_sim.graphs import mlp_graph\n"
            "from heatq_export.verilog import VerilogEmitter\n"
            "h = hashlib.sha256()\n"
            "for k in (None, 4):\n"
            "    for n, t in sorted(VerilogEmitter(max_carry=k).emit(mlp_graph(5, n_in=24, "
            "hidden=10)).items()):\n"
            "        h.update(n.encode()); h.update(t.encode())\n"
            "print(h.hexdigest())\n")
    outs = set()
    for seed in ("1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        outs.add(r.stdout.strip())
    assert len(outs) == 1


def test_supported_ops():
    refused: set[Op] = set()  # CONV2D / DENSE through the lowering pass, every other op directly
    assert set(Op) == VerilogEmitter.supported_ops | refused
    assert not VerilogEmitter.supported_ops & refused


def _wrap_threshold_graphs():
    """A vector graph (REQUANT WRAP to -3..12 and 16..31, THRESHOLD of a vector) and a stream
    graph (THRESHOLD of a feature map, pooled, flattened, wrapped)."""
    from heatq.ir import DenseAttrs, Overflow, RequantAttrs, Rounding, ThresholdAttrs

    rng = np.random.default_rng(4)
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((6,), -8, 7), [], "in")
    d = b.add(Op.DENSE, DenseAttrs(rng.integers(-7, 8, (5, 6)), rng.integers(-9, 9, 5), 4),
              [x], "fc")
    w1 = b.add(Op.REQUANT, RequantAttrs(2, -3, 12, Rounding.HALF_UP, Overflow.WRAP), [d], "wrap1")
    w2 = b.add(Op.REQUANT, RequantAttrs(0, 16, 31, Rounding.FLOOR, Overflow.WRAP), [w1], "wrap2")
    t = b.add(Op.THRESHOLD, ThresholdAttrs(np.sort(rng.integers(14, 34, (5, 3)), axis=1)), [w2],
              "thr")
    vec = b.build([w1, t])
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((2, 4, 4), 0, 15), [], "in")
    t = b.add(Op.THRESHOLD, ThresholdAttrs(np.array([[2, 2, 9], [0, 5, 15]])), [x], "thr")
    p = b.add(Op.MAXPOOL2D, MaxPool2dAttrs(2, 2), [t], "pool")
    f = b.add(Op.FLATTEN, FlattenAttrs(), [p], "flat")
    w = b.add(Op.REQUANT, RequantAttrs(-1, -4, 3, Rounding.FLOOR, Overflow.WRAP), [f], "wrap")
    stream = b.build([w])
    b = GraphBuilder()  # elementwise units before a padded conv: the host is paced (hq_pace)
    x = b.add(Op.INPUT, InputAttrs((2, 5, 5), -8, 7), [], "in")
    t = b.add(Op.THRESHOLD, ThresholdAttrs(np.array([[-3, 0, 4], [-8, 1, 1]])), [x], "thr")
    c = b.add(Op.CONV2D, Conv2dAttrs(rng.integers(-3, 4, (3, 2, 3, 3)), np.zeros(3, np.int64), 3,
                                     padding=1), [t], "conv")
    r = b.add(Op.REQUANT, RequantAttrs(1, 0, 7), [c], "relu")
    p = b.add(Op.MAXPOOL2D, MaxPool2dAttrs(2, 2), [r], "pool")
    f = b.add(Op.FLATTEN, FlattenAttrs(), [p], "flat")
    return {"vector": vec, "stream": stream, "paced": b.build([f])}


@needs_iverilog
@pytest.mark.parametrize("kind", ["vector", "stream", "paced"])
def test_wrap_and_threshold_exact_in_icarus(tmp_path, kind):
    from heatq.ir.testing import corner_vectors
    from heatq_sim.api import simulate

    g = _wrap_threshold_graphs()[kind]
    out, s = _export(tmp_path / "v", g)
    x = corner_vectors(g, n_random=24, seed=1)  # more images than the cycle model's 4
    assert len(x) > 8
    r = simulate(out, g, x, "icarus", work_dir=tmp_path / "w", progress=False)
    assert r["mismatches"] == 0 and r["err"] == 0, r["first_mismatches"]
    assert r["timing_matches_model"], r
    if shutil.which("verilator"):
        files = sorted(out.glob("*.v"))
        assert _lint(files, s["top"]) == ""
        for f in files:
            assert _lint([f], _module_of(f.read_text()), out) == "", f.name


def test_fifo_that_would_overflow_is_refused():
    """A 5x5 pad-2 window over a pooled 2x2 map walks 36 positions per image while the host
    delivers one every 16 cycles: refused, not a FIFO that overflows after a few images."""
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((1, 4, 4), 0, 3), [], "in")
    p = b.add(Op.MAXPOOL2D, MaxPool2dAttrs(2, 2), [x], "pool")
    c = b.add(Op.CONV2D, Conv2dAttrs(np.ones((1, 1, 5, 5), np.int64), np.zeros(1, np.int64), 2,
                                     padding=2), [p], "conv")
    f = b.add(Op.FLATTEN, FlattenAttrs(), [c], "flat")
    with pytest.raises(EmitError, match=r"op cmvm .*conv.*overflow"):
        VerilogEmitter().emit(b.build([f]))
    b = GraphBuilder()  # the host read by a conv window (which stalls it) and a pool
    x = b.add(Op.INPUT, InputAttrs((1, 4, 4), 0, 3), [], "in")
    c = b.add(Op.CONV2D, Conv2dAttrs(np.ones((1, 1, 3, 3), np.int64), np.zeros(1, np.int64), 2,
                                     padding=1), [x], "conv")
    p = b.add(Op.MAXPOOL2D, MaxPool2dAttrs(2, 2), [x], "pool")
    f1 = b.add(Op.FLATTEN, FlattenAttrs(), [c], "f1")
    f2 = b.add(Op.FLATTEN, FlattenAttrs(), [p], "f2")
    with pytest.raises(EmitError, match=r"op input .*conv window and other units"):
        VerilogEmitter().emit(b.build([f1, f2]))


def test_layer_header_and_names(small_cnn):
    files = VerilogEmitter().emit(small_cnn)
    text = files["heatq_top_conv1.v"]
    head = [ln for ln in text.splitlines() if ln.startswith("//")]
    for word in ("conv2d 'conv1'", "shape:", "bits:", "adders:", "depth:", "latency:"):
        assert any(word in ln for ln in head), word
    assert re.search(r"\bx_c0_k12\b", text) and re.search(r"\bacc_o3\b", text)
    assert re.search(r"\bs\d+_n\d+\b", text)
    assert "@@" not in "".join(files.values())


# ---------------------------------------------------------------- the handshake (m_tready)
def test_top_ports_and_handshake_are_stated():
    """The exact port list (stream and parallel), the header's handshake and queue lines,
    and summary.json's port map (port_list, handshake, output_queue)."""
    cases = {"stream": (seed_cnn_graph(1, channels=(1, 2, 4), kernels=(3, 3), size=8),
                        ["clk", "rst", "s_tdata", "s_tvalid", "s_tready", "s_tlast",
                         "m_tvalid", "m_tready", "m_fc", "m_bits", "m_decode", "err"]),
             "parallel": (mlp_graph(0, n_in=16, hidden=8),
                          ["clk", "rst", "s_tdata", "s_tvalid", "s_tready", "m_tvalid",
                           "m_tready", "m_fc2", "m_bits", "m_decode", "err"])}
    for mode, (g, names) in cases.items():
        em = VerilogEmitter()
        files = em.emit(g)
        ports = em.summary(g, files)["ports"]
        assert [p["name"] for p in ports["port_list"]] == names, mode
        dirs = {p["name"]: p["dir"] for p in ports["port_list"]}
        assert dirs["m_tready"] == "input" and dirs["m_tvalid"] == "output"
        assert dirs["s_tready"] == "output"
        text = files["heatq_top.v"]
        assert re.search(r"^\s*input\s+wire\s+m_tready,$", text, re.M)
        head = [ln for ln in text.splitlines() if ln.startswith("//")]
        assert any(ln.startswith("// Handshake: AXI-Stream") for ln in head)
        q = ports["output_queue"]
        assert any(f"{q['entries']} results x {q['width']} bits" in ln for ln in head)
        # the sizing rule: the smallest power of two >= max(2, results in flight + 1)
        e = q["entries"]
        assert e >= 2 and e & (e - 1) == 0 and e >= q["results_in_flight"] + 1
        assert e == 2 or e // 2 < q["results_in_flight"] + 1
        width = sum(o["elems"] * o["elem_width"] for o in ports["outputs"])
        assert q["width"] == width and q["bits"] == e * width
    # parallel: L vectors in flight at a new vector's beat (one per cycle)
    d = VerilogEmitter().design(mlp_graph(0, n_in=16, hidden=8)).report["design"]
    assert d["output_queue"]["results_in_flight"] == d["latency"]


_OUTQ_PROPS = """
module outq_props (input wire clk, input wire rst, input wire beat, input wire in_valid,
                   input wire [2:0] in_data, input wire m_tready);
    wire credit, m_tvalid, overflow;
    wire [2:0] m_tdata;
    hq_outq #(.WIDTH(3), .AW(1), .N(2), .NW(1)) dut (
        .clk(clk), .rst(rst), .beat(beat), .credit(credit), .in_valid(in_valid),
        .in_data(in_data), .m_tvalid(m_tvalid), .m_tready(m_tready), .m_tdata(m_tdata),
        .overflow(overflow));
    reg held = 1'b0;
    reg [2:0] held_data = 3'd0;
    reg cnt = 1'b0;
    reg [2:0] pending = 3'd0;  // results started (first of 2 beats), not yet produced
    always @(posedge clk) begin
        held <= !rst && m_tvalid && !m_tready;
        held_data <= m_tdata;
        cnt <= rst ? 1'b0 : cnt ^ beat;
        pending <= rst ? 3'd0 : pending + {2'b0, beat && !cnt} - {2'b0, in_valid};
    end
    always @* begin
        assume(!beat || credit);                 // a beat needs s_tready, which needs credit
        assume(!in_valid || pending != 3'd0);    // the pipeline only finishes started results
        if (held && !rst) begin
            assert(m_tvalid);                    // a held result stays valid ...
            assert(m_tdata == held_data);        // ... and unchanged
        end
        assert(!overflow);                       // the credit keeps the queue from overflowing
    end
endmodule
"""


@needs_yosys
@pytest.mark.parametrize("mutation", [None, "drop", "no-credit"])
def test_output_queue_holds_its_result_formally(tmp_path, mutation):
    """yosys SAT, bounded (16 cycles from reset; the 2-entry queue's states are all reached
    well within that): for any m_tready / beat / in_valid pattern the pipeline can produce,
    m_tvalid and m_tdata stay put while m_tvalid && !m_tready, and the queue never
    overflows.  Two mutations of hq_outq.v show the check fails when it should."""
    from heatq_export.skeletons import read_template

    outq = read_template("hq_outq.v")
    if mutation is not None:
        old, new = {"drop": ("in_valid && (q_valid || !m_tready)", "in_valid && q_valid"),
                    "no-credit": ("(inflight != CAP)", "1'b1")}[mutation]
        assert old in outq
        outq = outq.replace(old, new)
    for name, text in (("hq_fifo.v", read_template("hq_fifo.v")), ("hq_outq.v", outq),
                       ("props.v", _OUTQ_PROPS)):
        (tmp_path / name).write_text(text)
    script = ("read_verilog -formal hq_fifo.v hq_outq.v props.v; prep -top outq_props; "
              "memory_map; opt; flatten; "
              "sat -seq 16 -prove-asserts -set-assumes -set-init-zero -verify")
    r = subprocess.run(["yosys", "-q", "-p", script], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    if mutation is None:
        assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]
    else:
        assert r.returncode != 0 and "proof did fail" in r.stdout + r.stderr
