"""``--target hls4ml``: the hls4ml project's C simulation (hls4ml's ``compile()`` +
``predict()``) equals :func:`heatq.ir.run` on every layer of every vector.

Fast: a tiny MLP whose every node is a graph output (every REQUANT rounding x overflow mapping,
exhaustively over its input's range, a HALF_EVEN tie table, sign bits and Hamming decode; more
than 10 hls4ml layers, so the output order of a multi-output project is exercised), a tiny CNN
(non-square map, padding, fractional weights, channels-last layout) likewise; determinism of
the project; the pinned precisions read back; refusals naming the node.  Slow: the heated seed
CNN of ``make demo`` (``<repo>/heatq-out/run``, or ``$HEATQ_DEMO_OUT/run``) on 1000 mnist5k
test images plus its corner vectors, 0 mismatches.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from heatq.ir import (AddAttrs, Conv2dAttrs, DenseAttrs, FlattenAttrs, GraphBuilder,
                      HammingDecodeAttrs, InputAttrs, MaxPool2dAttrs, Op, Overflow, RequantAttrs,
                      Rounding, SignBitsAttrs, ThresholdAttrs, run)
from heatq.ir.testing import corner_vectors
from heatq_export.base import EmitError
from heatq_export.hls4ml_project import Hls4mlEmitter, build_model, _check_pins

from tools import demo_run, require_tool

pytest.importorskip("hls4ml")

FL, HU, HE = Rounding.FLOOR, Rounding.HALF_UP, Rounding.HALF_EVEN
SAT, WRAP = Overflow.SATURATE, Overflow.WRAP


def _all_outputs(g: GraphBuilder, meta=None):
    """Every node but the input is a graph output (each layer is compared)."""
    return g.build(list(range(1, len(g.nodes))), meta or {})


def tiny_mlp():
    """Signed 7-bit input; REQUANTs on it in every mapped mode (shifts 2, 3, 0, -1; FLOOR /
    HALF_UP / HALF_EVEN; SAT onto the whole type, SAT_SYM onto -7..7, WRAP onto s3 and u2, a
    ReLU); dense -> requant -> dense (w_frac 2) -> sign bits -> Hamming decode."""
    rng = np.random.default_rng(7)
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((8,), -64, 63), name="in")
    for rnd in (FL, HU, HE):
        g.add(Op.REQUANT, RequantAttrs(2, -8, 7, rnd, SAT), [x], f"sat_{rnd.value}")
        g.add(Op.REQUANT, RequantAttrs(3, -4, 3, rnd, WRAP), [x], f"wrap_{rnd.value}")
        g.add(Op.REQUANT, RequantAttrs(2, -7, 7, rnd, SAT), [x], f"sym_{rnd.value}")
    g.add(Op.REQUANT, RequantAttrs(3, 0, 15, HE, SAT), [x], "relu_he")
    g.add(Op.REQUANT, RequantAttrs(-1, 0, 3, FL, WRAP), [x], "shl_wrap")
    g.add(Op.REQUANT, RequantAttrs(0, -32, 31, FL, SAT), [x], "clip0")
    d1 = g.add(Op.DENSE, DenseAttrs(rng.integers(-7, 8, (6, 8)), rng.integers(-40, 41, 6), 4),
               [x], "fc1")
    r1 = g.add(Op.REQUANT, RequantAttrs(5, 0, 7, HE, SAT), [d1], "relu1")
    d2 = g.add(Op.DENSE, DenseAttrs(rng.integers(-3, 4, (7, 6)), rng.integers(-9, 10, 7), 3,
                                    w_frac=2), [r1], "fc2")
    s = g.add(Op.SIGN_BITS, SignBitsAttrs(), [d2], "bits")
    book = rng.integers(0, 2, (5, 7))
    book[3] = book[1]  # ties go to the lower index
    g.add(Op.HAMMING_DECODE, HammingDecodeAttrs(book), [s], "cls")
    return _all_outputs(g)


def tiny_cnn():
    """Unsigned 2x5x6 input (frac 1) -> conv 3x3 pad 1 (w_frac 1) -> ReLU (HALF_UP) -> pool ->
    flatten -> dense -> requant (HALF_EVEN, WRAP s4)."""
    rng = np.random.default_rng(3)
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((2, 5, 6), 0, 3, frac=1), name="in")
    c = g.add(Op.CONV2D, Conv2dAttrs(rng.integers(-3, 4, (3, 2, 3, 3)), rng.integers(-9, 10, 3),
                                     3, w_frac=1, padding=1), [x], "conv")
    r = g.add(Op.REQUANT, RequantAttrs(2, 0, 7, HU, SAT), [c], "relu")
    p = g.add(Op.MAXPOOL2D, MaxPool2dAttrs(), [r], "pool")
    f = g.add(Op.FLATTEN, FlattenAttrs(), [p], "flat")
    d = g.add(Op.DENSE, DenseAttrs(rng.integers(-3, 4, (4, 18)), rng.integers(-5, 6, 4), 3),
              [f], "fc")
    g.add(Op.REQUANT, RequantAttrs(1, -8, 7, HE, WRAP), [d], "rq")
    return _all_outputs(g)


def _exact(graph, x, tmp_path):
    from heatq_export.hls4ml_run import Hls4mlRunner

    require_tool("g++", "hls4ml's compile()")
    runner = Hls4mlRunner()
    runner.export(graph, tmp_path / "prj")
    got = runner.run(tmp_path / "prj", graph, x)
    want = run(graph, x)
    assert len(got) == len(want) == len(graph.outputs)
    for o, a, b in zip(graph.outputs, got, want):
        assert a.shape == b.shape, graph.nodes[o].label()
        assert np.array_equal(a.astype(object), b.astype(object)), \
            f"{graph.nodes[o].label()}: {int((a != b).sum())} elements differ"
    return tmp_path / "prj"


def test_tiny_mlp_every_layer_exact(tmp_path):
    g = tiny_mlp()
    every_value = np.arange(-64, 64).reshape(16, 8)  # every input value at every position
    ties = np.array([[v] * 8 for v in (-10, -6, -2, 2, 6, 10, -12, 12)])  # x.5 at shift 2
    x = np.concatenate([every_value, np.roll(every_value, 3, axis=1), ties,
                        corner_vectors(g, thorough=True)])
    prj = _exact(g, x, tmp_path)
    hls = json.loads((prj / "summary.json").read_text())["hls4ml"]
    assert hls["precisions"]["n9_sym_half_even"]["result"].endswith("AP_RND_CONV,AP_SAT_SYM>")
    assert hls["precisions"]["n2_wrap_floor"]["result"] == "ap_fixed<3,6,AP_TRN,AP_WRAP>"
    assert len(hls["outputs"]) > 10  # the output-order workaround is exercised


def test_tiny_cnn_every_layer_exact(tmp_path):
    g = tiny_cnn()
    _exact(g, corner_vectors(g, thorough=True), tmp_path)


def test_project_is_deterministic_and_complete():
    g = tiny_cnn()
    a, b = Hls4mlEmitter().emit(g), Hls4mlEmitter(hls4ml_backend="Vivado").emit(g)
    assert a == b
    for f in ("build_prj.tcl", "build_lib.sh", "hls4ml_config.yml", "README.md",
              "firmware/heatq_model.cpp", "firmware/parameters.h", "firmware/ap_types/ap_fixed.h"):
        assert f in a, f
    stamp = [ln for ln in a["build_lib.sh"].decode().splitlines() if ln.startswith("LIB_STAMP=")]
    yml = [ln for ln in a["hls4ml_config.yml"].decode().splitlines() if ln.startswith("Stamp:")]
    assert stamp and yml and stamp[0].split("=")[1] in yml[0]
    assert b"/tmp" not in a["hls4ml_config.yml"]
    readme = a["README.md"].decode()
    assert "Strategy: Latency" in readme and "ap_ufixed<3,3,AP_RND,AP_SAT>" in readme
    vitis = Hls4mlEmitter(hls4ml_backend="Vitis").emit(g)
    assert "build_prj.tcl" in vitis and vitis != a


def test_every_pinned_precision_is_read_back():
    """A precision hls4ml changed after conversion is caught, not exported."""
    model, p = build_model(tiny_cnn())
    _check_pins(model, p)
    layer = next(ly for ly in model.get_layers() if ly.name == "n1_conv")
    layer.get_attr("accum_t").precision = model.config.backend.convert_precision_string(
        "ap_fixed<16,6>")
    with pytest.raises(EmitError, match="n1_conv: accum precision"):
        _check_pins(model, p)


def _refusal(graph) -> str:
    with pytest.raises(EmitError) as e:
        Hls4mlEmitter().check_graph(graph)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_refusals_name_the_node():
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((4,), -8, 7), name="in")
    g.add(Op.THRESHOLD, ThresholdAttrs([[0, 1]] * 4), [x], "thr")
    assert "thr" in _refusal(g.build([1]))

    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((4,), -64, 63), name="in")
    g.add(Op.REQUANT, RequantAttrs(2, -3, 4, FL, SAT), [x], "odd_clip")
    assert "odd_clip" in _refusal(g.build([1]))

    g = GraphBuilder()  # an unnamed node is named through its argument
    x = g.add(Op.INPUT, InputAttrs((2,), 0, (1 << 30) - 1), name="in")
    d = g.add(Op.DENSE, DenseAttrs([[(1 << 30) - 1, 1]], [0], 31), [x], "wide")
    g.add(Op.REQUANT, RequantAttrs(0, 0, (1 << 61) - 1, FL, SAT), [d])
    msg = _refusal(g.build([2]))
    assert "wide" in msg and "53" in msg

    for shifts, name in [((0, 1), "shifted"), ((0, 0, 0), "three")]:  # no Merge add does it
        g = GraphBuilder()
        x = g.add(Op.INPUT, InputAttrs((4,), -8, 7), name="in")
        g.add(Op.ADD, AddAttrs(shifts), [x] * len(shifts), name)
        assert name in _refusal(g.build([1]))

    g = GraphBuilder()  # x > 0 of a value with fraction bits
    x = g.add(Op.INPUT, InputAttrs((4,), -8, 7, frac=2), name="in")
    g.add(Op.SIGN_BITS, SignBitsAttrs(), [x], "code")
    assert "code" in _refusal(g.build([1]))


def test_cli_refusal_is_one_line(tmp_path):
    import subprocess
    import sys

    from heatq.ir import save

    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((4,), -8, 7), name="in")
    g.add(Op.THRESHOLD, ThresholdAttrs([[0, 1]] * 4), [x], "thr")
    save(g.build([1]), tmp_path / "run")
    exe = Path(sys.executable).with_name("heatq-export")
    r = subprocess.run([str(exe), str(tmp_path / "run"), "-t", "hls4ml", "-o",
                        str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode != 0 and "thr" in r.stderr + r.stdout
    assert len((r.stderr + r.stdout).strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_heated_seed_cnn_1000_images_csim(tmp_path):
    from heatq.ir import load
    from heatq_export.hls4ml_run import Hls4mlRunner
    from heatq_sim.data import dataset_inputs

    src = demo_run()
    require_tool("g++", "hls4ml's compile()")
    g = load(src / "model.ir.json")
    x = np.concatenate([dataset_inputs(g, "mnist5k", 1000), corner_vectors(g, thorough=True)])
    runner = Hls4mlRunner()
    t0 = time.perf_counter()
    runner.export(g, tmp_path / "prj")
    t1 = time.perf_counter()
    got = runner.run(tmp_path / "prj", g, x)
    t2 = time.perf_counter()
    want = run(g, x)
    bad = np.zeros(len(x), dtype=bool)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        bad |= (a.astype(object) != b.astype(object)).reshape(len(x), -1).any(axis=1)
    print(f"\nhls4ml csim: heated seed CNN, {len(x)} vectors ({len(x) - 1000} corners), "
          f"export {t1 - t0:.1f} s, compile + predict {t2 - t1:.1f} s, "
          f"{int(bad.sum())} mismatching vectors")
    assert not bad.any()
