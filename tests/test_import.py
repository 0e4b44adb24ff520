"""``heatq import`` / :func:`heatq.interop.onnx_import.import_qonnx`: a network trained
elsewhere (Brevitas, 4-bit power-of-two weights and activations, trained here on mnist5k)
becomes an exact integer graph.  The reference is qonnx's own ``execute_onnx`` of the Brevitas
export: every layer it holds equals the interpreter's integers; the C and Verilog exports of
the imported run give qonnx's logits with 0 mismatches.  Bad models are refused in one line
naming the file and node, with nothing written."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from heatq.data import load_dataset
from heatq.errors import UserError
from heatq.interop.onnx_import import import_qonnx, input_integers
from heatq.interop.qonnx_check import compare_with_qonnx, qonnx_layer_values
from heatq.ir import Op, Rounding, run

from tools import needs

pytest.importorskip("brevitas")
pytest.importorskip("qonnx")
BIN = Path(sys.executable).parent


def _images(n_train: int, size: int):
    """mnist5k (train, labels, test) as uint8 [N, 1, size, size]: 28x28, or 14x14 by the
    integer mean of 2x2 blocks."""
    ds = load_dataset("mnist5k")

    def shrink(x):
        x = x[:, None].astype(np.int64)
        if size == 14:
            x = (x[:, :, 0::2, 0::2] + x[:, :, 1::2, 0::2] + x[:, :, 0::2, 1::2]
                 + x[:, :, 1::2, 1::2]) // 4
        return x.astype(np.uint8)

    return shrink(ds.x_train[:n_train]), ds.y_train[:n_train], shrink(ds.x_test)


def brevitas_cnn(size: int, c1: int, c2: int, per_channel_float: bool = False):
    """QuantIdentity (u8, the input) -> [QuantConv2d 3x3 -> QuantReLU -> MaxPool] x 2 ->
    flatten -> QuantLinear; 4-bit weights (Int8WeightPerTensorFixedPoint), 4-bit activations
    (Uint8ActPerTensorFixedPoint), Int16Bias: power-of-two scales, zero points 0.
    ``per_channel_float``: the convolutions' weights use Int8WeightPerChannelFloat."""
    import brevitas.nn as qnn
    from brevitas.quant import Int8WeightPerTensorFixedPoint as WQ
    from brevitas.quant import Int8WeightPerChannelFloat, Int16Bias
    from brevitas.quant import Uint8ActPerTensorFixedPoint as AQ

    def conv(ci, co):
        wq = Int8WeightPerChannelFloat if per_channel_float else WQ
        return qnn.QuantConv2d(ci, co, 3, padding=1, weight_quant=wq, weight_bit_width=4,
                               bias_quant=Int16Bias, return_quant_tensor=True)

    def relu():
        return qnn.QuantReLU(act_quant=AQ, bit_width=4, return_quant_tensor=True)

    net = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=AQ, bit_width=8, return_quant_tensor=True),
        conv(1, c1), relu(), torch.nn.MaxPool2d(2), conv(c1, c2), relu(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        qnn.QuantLinear(c2 * (size // 4) ** 2, 10, weight_quant=WQ, weight_bit_width=4,
                        bias_quant=Int16Bias))
    return net


def train_and_export(out: Path, size: int = 14, c1: int = 4, c2: int = 8, epochs: int = 1,
                     n_train: int = 4000, seed: int = 0, lr: float = 1e-2,
                     per_channel_float: bool = False) -> tuple[Path, np.ndarray, float]:
    """Train the Brevitas CNN on mnist5k (inputs ``x / 256``, so the 8-bit input Quant's
    integers are the pixels), ``export_qonnx`` it; (model path, test images, test accuracy)."""
    from brevitas.export import export_qonnx

    torch.manual_seed(seed)
    x, y, x_test = _images(n_train, size)
    net = brevitas_cnn(size, c1, c2, per_channel_float)
    xf, yt = torch.from_numpy(x.astype(np.float32) / 256), torch.from_numpy(y)
    opt = torch.optim.Adam(net.parameters(), lr)
    for _ in range(epochs):
        perm = torch.randperm(len(xf))
        for i in range(0, len(xf), 64):
            idx = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(net(xf[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        pred = net(torch.from_numpy(x_test.astype(np.float32) / 256)).argmax(1).numpy()
    acc = float((pred == load_dataset("mnist5k").y_test).mean())
    path = out / "brevitas.onnx"
    export_qonnx(net, torch.from_numpy(x_test[:1].astype(np.float32) / 256), export_path=str(path))
    return path, x_test, acc


@pytest.fixture(scope="module")
def brevitas_model(tmp_path_factory):
    """A small Brevitas CNN on 14x14 mnist5k (1 epoch, 4000 images: a few CPU seconds)."""
    return train_and_export(tmp_path_factory.mktemp("brevitas"))


def _check_import(path: Path, x_test: np.ndarray, n: int):
    """Import ``path`` and compare every layer with qonnx on the first ``n`` test images."""
    graph = import_qonnx(path)
    q = input_integers(graph, x_test[:n].astype(np.float32) / 256)
    assert np.array_equal(q, x_test[:n])  # the input Quant's integers are the pixels
    tensors = graph.meta["onnx_tensors"]
    assert set(tensors) == {node.name for node in graph.nodes}  # every layer is compared
    result = compare_with_qonnx(path, graph, q)
    assert result["n_samples"] == n and len(result["layers"]) == len(graph.nodes)
    assert result["all_equal"], result["layers"]
    return graph, q


def test_brevitas_every_layer_equals_qonnx(brevitas_model):
    path, x_test, acc = brevitas_model
    assert acc > 0.5
    graph, q = _check_import(path, x_test, 100)
    ops = [n.op for n in graph.nodes]
    assert ops == [Op.INPUT, Op.CONV2D, Op.REQUANT, Op.MAXPOOL2D, Op.CONV2D, Op.REQUANT,
                   Op.MAXPOOL2D, Op.FLATTEN, Op.DENSE]
    assert all(n.attrs.rounding is Rounding.HALF_EVEN for n in graph.nodes if n.op is Op.REQUANT)
    assert graph.outputs == (len(graph.nodes) - 1,)  # the last Gemm: logits, no output Quant


def _mismatches(got: list[np.ndarray], want: np.ndarray) -> int:
    n = len(want)
    return int((got[0].reshape(n, -1) != want.reshape(n, -1)).any(axis=1).sum())


@needs("gcc", "iverilog")
def test_brevitas_import_c_and_verilog_equal_qonnx(brevitas_model, tmp_path):
    """import -> heatq-export -t c (the CLI) / the Verilog export -> run: qonnx's logits,
    0 mismatches (C on 100 images, Icarus on 2)."""
    from heatq.files import load_graph
    from heatq.interop.command import import_run
    from heatq_export.runners import RUNNERS

    path, x_test, _ = brevitas_model
    run_dir = tmp_path / "run"
    summary = import_run(path, run_dir)
    assert summary["source"] == "qonnx" and len(summary["sha256"]) == 64
    graph = load_graph(run_dir)
    logits = graph.nodes[graph.outputs[0]].name
    for runner, n in (("c", 100), ("icarus", 2)):
        q = x_test[:n].astype(np.int64)
        want = qonnx_layer_values(path, graph, q)[logits]
        export = tmp_path / f"export-{runner}"
        if runner == "c":  # the command line, once
            r = subprocess.run([str(BIN / "heatq-export"), str(run_dir), "-t", "c", "-o",
                                str(export), "-q"], capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stderr
        else:
            RUNNERS[runner].export(graph, export)
        assert _mismatches(RUNNERS[runner].run(export, graph, q), want) == 0, runner


@pytest.mark.slow
@needs("gcc", "verilator")
def test_brevitas_28x28_1000_images_c_verilator(tmp_path):
    """The full-size version: 28x28, 8/16 channels, 3 epochs on 4000 images; every layer equal
    to qonnx on 1000 test images; C and Verilator 0 mismatches on them."""
    from heatq_export.runners import RUNNERS

    path, x_test, acc = train_and_export(tmp_path, 28, 8, 16, epochs=3, lr=3e-3)
    assert acc > 0.8
    t0 = time.time()
    graph, q = _check_import(path, x_test, 1000)
    want = run(graph, q)[0]
    for runner in ("c", "verilator"):
        export = tmp_path / f"export-{runner}"
        RUNNERS[runner].export(graph, export)
        assert _mismatches(RUNNERS[runner].run(export, graph, q), want) == 0, runner
    print(f"1000 images (accuracy {acc:.3f}): qonnx + C + Verilator in {time.time() - t0:.0f} s")


@pytest.mark.slow
def test_brevitas_per_channel_float_weights_folded(tmp_path):
    """Per-channel float weight scales (Int8WeightPerChannelFloat) before the ReLU quantizers:
    each conv + Relu + Quant becomes CONV2D + THRESHOLD; every layer qonnx holds (all but the
    real-scaled accumulators) equals the interpreter on 1000 test images."""
    path, x_test, acc = train_and_export(tmp_path, per_channel_float=True)
    assert acc > 0.5
    graph = import_qonnx(path)
    assert [n.op for n in graph.nodes].count(Op.THRESHOLD) == 2
    result = compare_with_qonnx(path, graph, x_test[:1000].astype(np.int64))
    assert result["all_equal"] and len(result["layers"]) == len(graph.nodes) - 2, result


# -------------------------------------------------------------------------- bad input


def _tiny(scale_w: float = 0.25, zero_point: float = 0.0, op: str = "Gemm",
          rounding: str = "ROUND", act_scale: float = 2.0 ** -2, bias_scale=None,
          scale_w2: float = 0.5):
    """x [1, 4] -> Quant (u8, 2**-4) -> Gemm/MatMul with Quant'd weights -> Relu -> Quant
    (u4, ``act_scale``) -> ``op`` of the activation (``Gemm`` / ``MatMul`` keep the model
    supported, anything else, e.g. ``Sigmoid``, is an unsupported op)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits, nodes = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def quant(name, src, scale, bits, signed, zp=0.0, mode="ROUND"):
        nodes.append(helper.make_node(
            "Quant", [src, const(name + ".s", scale), const(name + ".z", zp),
                      const(name + ".b", bits)], [name], name=name,
            domain="qonnx.custom_op.general", signed=signed, narrow=int(signed),
            rounding_mode=mode))
        return name

    quant("q_in", "x", 2.0 ** -4, 8, 0, zero_point)
    quant("q_w", const("w", rng.integers(-7, 8, (3, 4)) * scale_w), scale_w, 4, 1)
    b_scale = 2.0 ** -4 * scale_w if bias_scale is None else bias_scale
    quant("q_b", const("b", rng.integers(-50, 50, 3) * b_scale), b_scale, 16, 1)
    nodes.append(helper.make_node("Gemm", ["q_in", "q_w", "q_b"], ["acc"], name="fc1",
                                  transB=1))
    nodes.append(helper.make_node("Relu", ["acc"], ["relu"], name="relu1"))
    quant("q_act", "relu", act_scale, 4, 0, mode=rounding)
    quant("q_w2", const("w2", rng.integers(-7, 8, (3, 2)) * scale_w2), scale_w2, 4, 1)
    if op == "MatMul":
        nodes.append(helper.make_node("MatMul", ["q_act", "q_w2"], ["mm"], name="fc2"))
        nodes.append(helper.make_node("Add", ["mm", const("b2", [0.5, -1.0])], ["y"],
                                      name="fc2_bias"))
    elif op == "Gemm":
        nodes.append(helper.make_node("Gemm", ["q_act", "q_w2"], ["y"], name="fc2"))
    else:
        nodes.append(helper.make_node(op, ["q_act"], ["y"], name="odd"))
    shape_out = [1, 2] if op in ("Gemm", "MatMul") else [1, 3]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 4])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, shape_out)], inits)
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid("qonnx.custom_op.general", 1)]
    return helper.make_model(graph, opset_imports=opsets)


@pytest.mark.parametrize("op, act_scale, rounding", [("Gemm", 2.0, "ROUND"),
                                                    ("MatMul", 2.0 ** -3, "FLOOR")])
def test_tiny_models_equal_qonnx(tmp_path, op, act_scale, rounding):
    """Hand-built models: a ReLU scale of 2.0 (negative binary point), FLOOR rounding, Gemm
    with transB=0, MatMul + Add (bias folded), on 200 random inputs with ties."""
    import onnx

    path = tmp_path / "tiny.onnx"
    onnx.save(_tiny(op=op, act_scale=act_scale, rounding=rounding), str(path))
    graph = import_qonnx(path)
    requant = next(n for n in graph.nodes if n.op is Op.REQUANT)
    assert requant.type.frac == (-1 if act_scale == 2.0 else 3)
    assert requant.attrs.rounding is (Rounding.HALF_EVEN if rounding == "ROUND" else Rounding.FLOOR)
    q = np.random.default_rng(1).integers(0, 256, (200, 4))
    result = compare_with_qonnx(path, graph, q)
    assert result["all_equal"] and len(result["layers"]) == len(graph.nodes), result


@pytest.mark.parametrize("rounding", ["ROUND", "FLOOR"])
def test_real_weight_scale_folded_into_thresholds(tmp_path, rounding):
    """A weight scale of 0.3141592 (needs a real multiplier) before Relu + Quant: folded
    exactly into THRESHOLD integer thresholds; every layer qonnx holds equal on 200 random
    inputs.  (A decimal scale such as 0.3 puts exact products like 12.0000005 next to the
    thresholds, where qonnx's float32 arithmetic rounds the other way: docs/import.md.)"""
    import onnx

    path = tmp_path / "tiny.onnx"
    onnx.save(_tiny(scale_w=0.3141592, rounding=rounding), str(path))
    graph = import_qonnx(path)
    assert [n.op for n in graph.nodes] == [Op.INPUT, Op.DENSE, Op.THRESHOLD, Op.DENSE]
    assert graph.meta["frac_offsets"] == {"q_act": 2, "fc2": 2}
    assert set(graph.meta["onnx_tensors"]) == {"input", "q_act", "fc2"}  # fc1: real scale
    q = np.random.default_rng(1).integers(0, 256, (200, 4))
    result = compare_with_qonnx(path, graph, q)
    assert result["all_equal"] and len(result["layers"]) == 3, result
    assert len(np.unique(run(graph, q, trace=True)[2])) > 5  # the thresholds are exercised


REFUSALS = [
    ({"op": "Sigmoid"}, "node 'odd' (Sigmoid): unsupported op"),
    ({"act_scale": 0.3}, "node 'q_act' (Quant): scale 0.300000012 is not a power of two"),
    ({"scale_w2": 0.3}, "node 'fc2' (Gemm): a real (non-power-of-two) weight scale is folded"),
    ({"zero_point": 3.0}, "node 'q_in' (Quant): zero point 3 is not 0"),
    ({"rounding": "CEIL"}, "node 'q_act' (Quant): rounding_mode CEIL"),
    ({"bias_scale": 2.0 ** -9}, "node 'fc1' (Gemm): bias is not an integer multiple"),
]


@pytest.mark.parametrize("kwargs, needle", REFUSALS)
def test_refused_by_name(tmp_path, kwargs, needle):
    """One line naming the file and the node; the run directory is not written."""
    import onnx

    from heatq.interop.command import import_run

    path = tmp_path / "bad.onnx"
    onnx.save(_tiny(**kwargs), str(path))
    with pytest.raises(UserError) as e:
        import_run(path, tmp_path / "run")
    assert str(e.value).startswith(f"{path}: {needle}") and "\n" not in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


def _cli_import(model: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "heatq"), "import", str(model), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)


def test_cli_refusals_one_line_nothing_written(tmp_path):
    """``heatq import``: a file that is not ONNX, a non-power-of-two scale: exit 2, one line
    naming the file (and node), no traceback, nothing written."""
    import onnx

    bad = tmp_path / "notes.onnx"
    bad.write_text("not a model\n")
    odd = tmp_path / "odd.onnx"
    onnx.save(_tiny(act_scale=0.3), str(odd))
    for model, needle in ((bad, f"{bad}: not an ONNX model"), (odd, f"{odd}: {REFUSALS[1][1]}")):
        r = _cli_import(model, tmp_path / "run")
        err = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(err) == 1 and needle in err[0], r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.onnx", "odd.onnx"]


def test_no_overwrite_without_force(tmp_path):
    """A user's directory is never replaced; an earlier import only with --force."""
    import onnx

    from heatq.interop.command import import_run

    good = tmp_path / "tiny.onnx"
    onnx.save(_tiny(), str(good))
    mine, out = tmp_path / "mine", tmp_path / "run"
    mine.mkdir()
    (mine / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="is not a heatq run"):
        import_run(good, mine, force=True)
    summary = import_run(good, out)
    assert summary["layers"][0]["name"] == "input" and (out / "model.ir.json").is_file()
    with pytest.raises(UserError, match="--force"):
        import_run(good, out)
    import_run(good, out, force=True)
    assert (mine / "keep.txt").read_text() == "x"


def test_check_on_an_imported_run(tmp_path):
    """``heatq check`` on an imported run: every layer against qonnx on corner vectors and
    random inputs; refused in one line once the source model changed."""
    import onnx

    from heatq import pipeline
    from heatq.interop.command import import_run

    model = tmp_path / "tiny.onnx"
    onnx.save(_tiny(act_scale=2.0 ** -1), str(model))
    import_run(model, tmp_path / "run")
    result = pipeline.check_run(tmp_path / "run", n=32)
    assert result["all_equal"] and result["n_samples"] > 32
    assert list(result["layers"]) == ["input", "fc1", "q_act", "fc2"]
    onnx.save(_tiny(act_scale=2.0 ** -2), str(model))
    with pytest.raises(UserError, match="changed since the import"):
        pipeline.check_run(tmp_path / "run")


def test_round_trip_through_heatqs_qonnx_export(tmp_path):
    """import -> ``--target qonnx`` (heatq's QONNX emitter) -> import again: the same integers
    on every input (the real values agree; the binary points are the same)."""
    import onnx

    from heatq_export.export import export_graph

    path = tmp_path / "tiny.onnx"
    onnx.save(_tiny(act_scale=2.0), str(path))
    graph = import_qonnx(path)
    export_graph(graph, "qonnx", tmp_path / "export")
    again = import_qonnx(tmp_path / "export" / "model.onnx")
    q = np.random.default_rng(2).integers(0, 256, (100, 4))
    for a, b in zip((graph, again), (again, graph)):
        assert a.nodes[a.outputs[0]].type.frac == b.nodes[b.outputs[0]].type.frac
    assert np.array_equal(run(graph, q)[0], run(again, q)[0])
