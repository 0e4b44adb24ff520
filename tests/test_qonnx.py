"""``--target qonnx``: the QONNX model executed by qonnx's ``execute_onnx`` (and, for the plain
flavour, by onnxruntime alone) equals :func:`heatq.ir.run` on every node of every vector.

Fast: corpus graphs, an exhaustive REQUANT table (every rounding x overflow x shift on every
input value), a small MLP and CNN from sim/graphs.py, determinism, ``onnx.checker``, the
op vocabulary of each flavour, refusals naming the node, a tampered model caught.  Slow: the
heated seed CNN of ``make demo`` (``<repo>/heatq-out/run``, or ``$HEATQ_DEMO_OUT/run``) on
1000 mnist5k test images plus its corner vectors, every layer equal.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from heatq.ir import GraphBuilder, InputAttrs, Op, Overflow, RequantAttrs, Rounding, run
from heatq.ir import Conv2dAttrs, DenseAttrs, FlattenAttrs, MaxPool2dAttrs
from heatq.ir.testing import corner_vectors, corpus
from heatq_export.base import EmitError, write_export
from heatq_export.qonnx import QonnxEmitter, tensor_names
from heatq_export.qonnx_run import QonnxRunner, qonnx_node_values, set_batch
from heatq_export.runners import RunnerError

from tools import demo_run

onnx = pytest.importorskip("onnx")
pytest.importorskip("qonnx")

CORPUS = corpus()
LAYERWISE = ("cnn12", "requant_fanout", "requant_chain_wrap", "threshold_mix", "bits1",
             "cmvm_layouts", "add_vec", "concat_mix", "bit_map", "half_even_vec", "conv_stride2",
             "argmax_mix", "residual", "gap_mix")


def _export(graph, out: Path, flavour: str = "qonnx") -> Path:
    em = QonnxEmitter(flavour=flavour)
    em.check_graph(graph)
    files = em.emit(graph)
    write_export(out, "qonnx", files, em.summary(graph, files))
    return out


def _assert_layers_equal(graph, export_dir, x) -> None:
    got = qonnx_node_values(export_dir, graph, x)
    want = run(graph, x, trace=True)
    names = tensor_names(graph)
    assert set(got) == set(names)
    for n in graph.nodes:
        g, w = got[names[n.id]], want[n.id]
        assert g.shape == w.shape, n.label()
        assert np.array_equal(g.astype(object), w.astype(object)), \
            f"{n.label()}: {int((g != w).sum())} elements differ"


@pytest.mark.parametrize("name", LAYERWISE)
def test_corpus_every_layer_equal(name, tmp_path):
    g = CORPUS[name]
    _assert_layers_equal(g, _export(g, tmp_path / "q"), corner_vectors(g, thorough=True))


@pytest.mark.parametrize("name", ("cnn12", "requant_chain_sat", "threshold_map", "add_map",
                                  "argmax_mix", "residual", "gap_mix"))
def test_plain_flavour_every_layer_equal(name, tmp_path):
    g = CORPUS[name]
    _assert_layers_equal(g, _export(g, tmp_path / "p", "plain"), corner_vectors(g, thorough=True))


def _requant_table() -> tuple:
    """One input element in -64..63; a REQUANT per rounding x overflow x shift."""
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((1,), -64, 63, frac=2), name="in")
    outs = []
    for rnd in Rounding:
        for ov, (lo, hi) in ((Overflow.SATURATE, (-5, 6)), (Overflow.SATURATE, (0, 15)),
                             (Overflow.WRAP, (-4, 3)), (Overflow.WRAP, (-3, 4))):
            for s in (-2, 0, 1, 2, 3, 7):
                outs.append(b.add(Op.REQUANT, RequantAttrs(s, lo, hi, rnd, ov), [x],
                                  f"{rnd.value}_{ov.value}_{lo}_{hi}_s{s}"))
    return b.build(outs), np.arange(-64, 64).reshape(-1, 1)


def _onnxruntime_outputs(graph, export_dir, x) -> list[np.ndarray]:
    """The graph outputs' integers from one onnxruntime session on the whole model."""
    ort = pytest.importorskip("onnxruntime")
    names = tensor_names(graph)
    sess = ort.InferenceSession(str(export_dir / "model.onnx"))
    feed = {f"{names[0]}.raw": (x * 2.0 ** -graph.nodes[0].type.frac).astype(np.float32)}
    by_name = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
    return [by_name[names[o]].astype(np.float64) * 2.0 ** graph.nodes[o].type.frac
            for o in graph.outputs]


def test_requant_every_mode_on_every_value(tmp_path):
    """Ties of HALF_UP (towards +inf), HALF_EVEN (QONNX's ROUND) and FLOOR, clips onto ranges
    no Quant bit width gives, wraps onto odd offsets: exhaustive over the input range, by
    execute_onnx (QONNX flavour) and by onnxruntime alone (plain flavour)."""
    g, x = _requant_table()
    _assert_layers_equal(g, _export(g, tmp_path / "q"), x)
    got = _onnxruntime_outputs(g, _export(g, tmp_path / "p", "plain"), x)
    for o, a, w in zip(g.outputs, got, run(g, x)):
        assert np.array_equal(a, w), g.nodes[o].label()


def test_small_mlp_and_cnn(tmp_path):
    from heatq_sim.graphs import mlp_graph, seed_cnn_graph

    for k, g in enumerate([mlp_graph(3, n_in=20, hidden=12),
                           seed_cnn_graph(2, channels=(4, 4, 8, 8, 16), size=16)]):
        out = _export(g, tmp_path / str(k))
        _assert_layers_equal(g, out, corner_vectors(g))
        x = corner_vectors(g, seed=3)
        got = QonnxRunner().run(out, g, x)
        for a, b in zip(got, run(g, x)):
            assert a.dtype == b.dtype and np.array_equal(a, b)


def test_plain_model_runs_in_onnxruntime_alone(tmp_path):
    g = CORPUS["cnn12"]
    out = _export(g, tmp_path / "p", "plain")
    assert {n.domain for n in onnx.load(out / "model.onnx").graph.node} == {""}
    x = corner_vectors(g, thorough=True)
    for got, want in zip(_onnxruntime_outputs(g, out, x), run(g, x)):
        assert np.array_equal(got, want)


def test_model_is_valid_deterministic_and_uses_qonnx_ops(tmp_path):
    g = CORPUS["threshold_map"]
    a = _export(g, tmp_path / "a")
    b = _export(g, tmp_path / "b")
    assert (a / "model.onnx").read_bytes() == (b / "model.onnx").read_bytes()
    model = onnx.load(a / "model.onnx")
    onnx.checker.check_model(model)
    assert model.producer_name == "heatq"
    ops = {(n.domain, n.op_type) for n in model.graph.node}
    assert {("qonnx.custom_op.general", "Quant"), ("qonnx.custom_op.general", "MultiThreshold"),
            ("", "Conv"), ("", "Gemm"), ("", "MaxPool"), ("", "Flatten")} <= ops
    quant_out = {n.output[0] for n in model.graph.node if n.op_type == "Quant"}
    for n in model.graph.node:  # weights and biases are quantized, as Brevitas exports them
        if n.op_type in ("Conv", "Gemm") and not n.output[0].endswith(".distance"):
            assert set(n.input[1:]) <= quant_out, n.name
    names = tensor_names(g)
    tensors = {t for n in model.graph.node for t in n.output}
    assert set(names) <= tensors and model.graph.input[0].name == "in.raw"
    plain = onnx.load(_export(g, tmp_path / "p", "plain") / "model.onnx")
    onnx.checker.check_model(plain, full_check=True)


def test_qonnx_transformations_accept_the_model(tmp_path):
    """qonnx's cleanup, InferShapes and InferDataTypes run on the model; a Quant at binary
    point 0 gets the IR node's type; the transformed model (datatype annotations make
    execute_onnx sanitize the tensors) still computes every layer exactly."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((2, 4, 4), 0, 1), name="in")
    w = np.random.default_rng(5).integers(-7, 8, (3, 2, 3, 3))
    c = b.add(Op.CONV2D, Conv2dAttrs(w, [1, -2, 3], 4, w_frac=2, padding=1), [x], "conv")
    r = b.add(Op.REQUANT, RequantAttrs(2, 0, 15, Rounding.HALF_UP, Overflow.SATURATE), [c],
              "relu")
    p = b.add(Op.MAXPOOL2D, MaxPool2dAttrs(), [r], "pool")
    g = b.build([b.add(Op.FLATTEN, FlattenAttrs(), [p], "flat")])
    out = _export(g, tmp_path / "q")
    m = ModelWrapper(str(out / "model.onnx")).transform(InferShapes()).transform(InferDataTypes())
    assert g.nodes[r].type.c_style() == "u4.0" and str(m.get_tensor_datatype("relu")) == "UINT4"
    assert str(m.get_tensor_datatype("in")) == "BINARY"
    m.save(str(out / "model.onnx"))
    xs = corner_vectors(g)
    _assert_layers_equal(g, out, xs)
    clean = cleanup_model(m)  # qonnx's tidy-up renames every tensor (global_in, ...)
    res = execute_onnx(set_batch(clean, len(xs)), {"global_in": xs.astype(np.float32)})
    assert np.array_equal(res["global_out"], run(g, xs)[0])  # frac 0: the integers


def test_unnamed_nodes_get_stable_names():
    g = CORPUS["requant_fanout"]  # unnamed DENSE nodes
    names = tensor_names(g)
    assert len(set(names)) == len(names)
    assert names[1] == "dense_1" and names[g.outputs[0]] == "wrap_floor"


def _too_wide() -> object:
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((4,), -(1 << 12), 1 << 12), name="in")
    d = b.add(Op.DENSE, DenseAttrs([[1, 1, 1, 1]], [0], 2), [x], "fine")
    w = b.add(Op.DENSE, DenseAttrs([[4095, -4095, 4095, 4095]], [0], 13), [x], "too_wide")
    return b.build([d, w])


@pytest.mark.parametrize("name", ("wide64", "acc73", "s16_dense"))
def test_refusals_name_the_node(name):
    with pytest.raises(EmitError) as e:
        QonnxEmitter().check_graph(CORPUS[name])
    msg = str(e.value)
    assert "\n" not in msg and "2**24" in msg
    assert any(n.name and n.name in msg for n in CORPUS[name].nodes[1:])


def test_refusal_states_width_of_a_middle_layer():
    with pytest.raises(EmitError, match=r"dense node 2 \(too_wide\) \(s27\.0.* 26-bit magnitude"):
        QonnxEmitter().emit(_too_wide())
    with pytest.raises(EmitError, match="unknown flavour 'fp64'"):
        QonnxEmitter(flavour="fp64")


def _tamper(out: Path, name: str, f) -> None:
    """Replace initializer ``name`` of ``out/model.onnx`` by ``f(its array)``."""
    from onnx import numpy_helper

    model = onnx.load(out / "model.onnx")
    init = next(t for t in model.graph.initializer if t.name == name)
    init.CopyFrom(numpy_helper.from_array(f(numpy_helper.to_array(init).copy()), name))
    onnx.save(model, out / "model.onnx")


@pytest.mark.parametrize("flavour,param,change,expect", [
    ("plain", "bias", lambda a, u: a + 0.25 * u, RunnerError),  # non-integers
    ("plain", "bias", lambda a, u: a + u, AssertionError),      # integers, one off
    ("qonnx", "bias.float", lambda a, u: a + 0.25 * u, None),   # the bias Quant rounds it back
    ("qonnx", "bias.scale", lambda a, u: a * 4, AssertionError)])
def test_tampered_model_is_caught(tmp_path, flavour, param, change, expect):
    """A changed bias gives non-integers (RunnerError) or a layer that differs from the
    interpreter; in the QONNX flavour the bias's Quant rounds a small change away."""
    g = CORPUS["mlp"]
    dense = next(n for n in g.nodes if n.op is Op.DENSE)
    out = _export(g, tmp_path / "q", flavour)
    unit = 2.0 ** -dense.type.frac

    def f(a):
        a = a.reshape(-1) if a.ndim else a
        if a.ndim:
            a[0] = change(a[0], unit)
            return a
        return np.asarray(change(a, unit), dtype=a.dtype)

    _tamper(out, f"{tensor_names(g)[dense.id]}.{param}", f)
    if expect is None:
        _assert_layers_equal(g, out, corner_vectors(g))
    else:
        with pytest.raises(expect):
            _assert_layers_equal(g, out, corner_vectors(g))


def test_runner_is_registered_and_needs_the_model(tmp_path):
    from heatq_export.runners import RUNNERS

    assert isinstance(RUNNERS["qonnx"], QonnxRunner) and RUNNERS["qonnx"].target == "qonnx"
    g, x = CORPUS["mlp"], corner_vectors(CORPUS["mlp"])
    with pytest.raises(RunnerError, match="model.onnx"):
        QonnxRunner().run(tmp_path, g, x)
    (tmp_path / "model.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(RunnerError, match="cannot load") as e:
        QonnxRunner().run(tmp_path, g, x)
    assert "\n" not in str(e.value)
    out = _export(CORPUS["bits1"], tmp_path / "other")  # another graph's export
    with pytest.raises(RunnerError) as e:
        QonnxRunner().run(out, g, x)
    assert "\n" not in str(e.value)


def test_cli_exports_and_refuses_in_one_line(tmp_path):
    """``heatq-export DIR -t qonnx -o OUT [--flavour plain]``; a refusal is one line naming
    the node, exit != 0, nothing written."""
    import subprocess
    import sys

    from heatq.ir import save

    exe = str(Path(sys.executable).parent / "heatq-export")
    save(CORPUS["mlp"], tmp_path / "mlp")
    save(CORPUS["s16_dense"], tmp_path / "wide")
    r = subprocess.run([exe, str(tmp_path / "mlp"), "-t", "qonnx", "-o", str(tmp_path / "o"),
                        "--flavour", "plain"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "model.onnx").is_file()
    assert '"flavour": "plain"' in (tmp_path / "o" / "summary.json").read_text()
    r = subprocess.run([exe, str(tmp_path / "wide"), "-t", "qonnx", "-o", str(tmp_path / "w")],
                       capture_output=True, text=True, timeout=300)
    err = [line for line in r.stderr.splitlines() if "error" in line]
    assert r.returncode != 0 and "Traceback" not in r.stderr and len(err) == 1, r.stderr
    assert "fc1" in err[0] and "2**24" in err[0]
    assert not (tmp_path / "w").exists()


# ------------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_heated_seed_cnn_1000_images_and_corners_every_layer(tmp_path):
    from heatq.ir import load
    from heatq_sim.data import dataset_inputs

    src = demo_run()
    g = load(src / "model.ir.json")
    x = np.concatenate([dataset_inputs(g, "mnist5k", 1000), corner_vectors(g, thorough=True)])
    out = tmp_path / "q"
    QonnxRunner().export(g, out)
    t0 = time.perf_counter()
    got = qonnx_node_values(out, g, x)
    seconds = time.perf_counter() - t0
    want = run(g, x, trace=True)
    names = tensor_names(g)
    mismatches = sum(int((got[names[n.id]] != want[n.id]).sum()) for n in g.nodes)
    print(f"\nqonnx execute_onnx: heated seed CNN, {len(x)} vectors ({len(x) - 1000} corners), "
          f"{len(g.nodes)} layers, {seconds:.1f} s, {mismatches} mismatching elements")
    assert mismatches == 0
