"""Saving and loading an IntGraph: JSON (structure) + .npz (integer arrays), never pickle.

A round trip keeps every node, array and interpreter output; re-saving gives byte-identical
JSON; every kind of damaged or hand-edited file is rejected with an IRError that names the
file and the problem.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from heatq.ir import (
    IR_VERSION, Conv2dAttrs, DenseAttrs, FlattenAttrs, GraphBuilder, HammingDecodeAttrs,
    InputAttrs, IRError, MaxPool2dAttrs, Op, Overflow, RequantAttrs, Rounding, SignBitsAttrs,
    load, run, save,
)

RNG_SEED = 1234


def make_graph(wide: bool = False):
    """One graph with every op (and both enum modes, a negative shift, a frac)."""
    rng = np.random.default_rng(RNG_SEED)
    hi = (1 << 66) - 1 if wide else 15
    b = GraphBuilder()
    size, pad = (8, 0) if wide else (6, 1)
    i = b.add(Op.INPUT, InputAttrs((2, size, size), 0, hi, frac=1), name="in")
    c1 = b.add(Op.CONV2D, Conv2dAttrs(rng.integers(-7, 8, size=(3, 2, 3, 3)),
                                      rng.integers(-50, 50, size=3), 4, w_frac=2, padding=pad),
               [i], name="conv1")
    r1 = b.add(Op.REQUANT, RequantAttrs(3, 0, 15, Rounding.HALF_UP, Overflow.SATURATE), [c1],
               name="relu1")
    p1 = b.add(Op.MAXPOOL2D, MaxPool2dAttrs(2, 2), [r1], name="pool1")
    c2 = b.add(Op.CONV2D, Conv2dAttrs(rng.choice([-1, 1], size=(4, 3, 3, 3)),
                                      np.zeros(4, dtype=np.int64), 1, stride=1), [p1],
               name="conv2")
    r2 = b.add(Op.REQUANT, RequantAttrs(-1, -128, 127, Rounding.FLOOR, Overflow.WRAP), [c2],
               name="wrap2")
    f = b.add(Op.FLATTEN, FlattenAttrs(), [r2], name="flat")
    d = b.add(Op.DENSE, DenseAttrs(rng.integers(-3, 4, size=(7, 4)), rng.integers(-9, 9, 7), 3),
              [f], name="fc")
    s = b.add(Op.SIGN_BITS, SignBitsAttrs(), [d], name="bits")
    h = b.add(Op.HAMMING_DECODE,
              HammingDecodeAttrs(rng.integers(0, 2, size=(5, 7)).astype(np.uint8)), [s],
              name="decode")
    meta = {"input_code": "bitplane:2", "output_code": {"kind": "random", "bits": 7},
            "bits": [4, 1, 3], "note": "ünïcode ok", "big": 1 << 70}
    return b.build([h, d], meta)


def inputs(graph, n=5):
    node = graph.nodes[0]
    rng = np.random.default_rng(5)
    x = rng.integers(0, 16, size=(n,) + node.shape)
    if node.hi > 15:
        x = x.astype(object) * (node.hi // 15)
    return x


def assert_same_graph(a, b):
    assert len(a.nodes) == len(b.nodes)
    assert a.outputs == b.outputs
    assert dict(a.meta) == json.loads(json.dumps(dict(b.meta)))
    for na, nb in zip(a.nodes, b.nodes):
        for what in ("id", "op", "args", "shape", "lo", "hi", "type", "name"):
            assert getattr(na, what) == getattr(nb, what), (na.label(), what)
        assert type(na.attrs) is type(nb.attrs)
        for f in fields(na.attrs):
            va, vb = getattr(na.attrs, f.name), getattr(nb.attrs, f.name)
            if isinstance(va, np.ndarray):
                assert va.dtype == vb.dtype and va.shape == vb.shape
                assert np.array_equal(va, vb), (na.label(), f.name)
                assert not vb.flags.writeable
            else:
                assert va == vb and type(va) is type(vb), (na.label(), f.name)


def saved(tmp_path, graph=None):
    graph = graph or make_graph()
    path = save(graph, tmp_path / "m", stem="net")
    return graph, path, tmp_path / "m" / "net.npz"


def edit_json(path: Path, change):
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def edit_npz(npz: Path, change):
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez(npz, **arrays)


def key_of(graph, name, field):
    return f"{graph.by_name(name).id}.{field}"


def rejected(path, *needles):
    with pytest.raises(IRError) as exc:
        load(path)
    msg = str(exc.value)
    assert str(path) in msg, msg  # the message names the file
    for n in needles:
        assert n in msg, msg
    return msg


# ------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("wide", [False, True])
def test_round_trip(tmp_path, wide):
    g, path, npz = saved(tmp_path, make_graph(wide))
    assert path == tmp_path / "m" / "net.ir.json" and npz.exists()
    g2 = load(path)
    assert_same_graph(g, g2)
    x = inputs(g)
    for va, vb in zip(run(g, x, trace=True), run(g2, x, trace=True)):
        assert va.dtype == vb.dtype and va.tolist() == vb.tolist()


def test_file_layout(tmp_path):
    g, path, npz = saved(tmp_path)
    doc = json.loads(path.read_text())
    assert doc["format"] == "heatq-ir" and doc["ir_version"] == IR_VERSION == 1
    assert doc["weights"] == "net.npz"
    assert set(doc) == {"format", "ir_version", "weights", "meta", "outputs", "nodes"}
    n1 = doc["nodes"][1]
    assert set(n1) == {"id", "op", "name", "args", "attrs", "shape", "range", "type"}
    assert n1["op"] == "conv2d" and n1["attrs"]["weight"] == {"array": "1.weight"}
    assert doc["nodes"][2]["attrs"]["rounding"] == "half_up"
    assert doc["nodes"][2]["attrs"]["overflow"] == "saturate"
    with zipfile.ZipFile(npz) as z:
        names = sorted(z.namelist())
    conv_fc = [f"{n.id}.{f}" for n in g.nodes if n.op in (Op.CONV2D, Op.DENSE)
               for f in ("weight", "bias")]
    hd = [f"{g.by_name('decode').id}.codebook"]
    assert names == sorted(k + ".npy" for k in conv_fc + hd)
    with np.load(npz, allow_pickle=False) as z:
        assert all(z[k].dtype.kind in "iu" for k in z.files)


def test_resave_is_byte_identical(tmp_path):
    g, path, npz = saved(tmp_path)
    path2 = save(load(path), tmp_path / "again", stem="net")
    assert path2.read_bytes() == path.read_bytes()
    path3 = save(g, tmp_path / "m", stem="net")  # overwrite in place
    assert path3.read_bytes() == path2.read_bytes()
    with np.load(npz) as a, np.load(tmp_path / "again" / "net.npz") as b:
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)


def test_load_a_directory(tmp_path):
    g = make_graph()
    save(g, tmp_path)
    assert (tmp_path / "model.ir.json").exists() and (tmp_path / "model.npz").exists()
    assert_same_graph(g, load(tmp_path))


def test_save_leaves_no_temporary_files(tmp_path):
    saved(tmp_path)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["net.ir.json", "net.npz"]


# ------------------------------------------------------------------------- rejections
def test_reject_unknown_ir_version(tmp_path):
    _, path, _ = saved(tmp_path)
    edit_json(path, lambda d: d.update(ir_version=2))
    rejected(path, "unsupported ir_version 2", f"version {IR_VERSION}")


def test_reject_missing_ir_version(tmp_path):
    _, path, _ = saved(tmp_path)
    edit_json(path, lambda d: d.pop("ir_version"))
    rejected(path, "unsupported ir_version None")


def test_reject_wrong_format_name(tmp_path):
    _, path, _ = saved(tmp_path)
    edit_json(path, lambda d: d.update(format="onnx"))
    rejected(path, "not a heatq-ir file")


def test_reject_json_that_is_not_an_object(tmp_path):
    _, path, _ = saved(tmp_path)
    path.write_text("[1, 2, 3]\n")
    rejected(path, "not a heatq-ir file")


def test_reject_missing_json_file(tmp_path):
    rejected(tmp_path / "nope.ir.json", "file not found")


def test_reject_missing_weights_file(tmp_path):
    _, path, npz = saved(tmp_path)
    npz.unlink()
    rejected(path, "weights file", "net.npz", "not found")


@pytest.mark.parametrize("damage", [
    "garbage", "truncated", "flipped",
    "empty",
])
def test_reject_corrupt_npz(tmp_path, damage):
    _, path, npz = saved(tmp_path)
    data = npz.read_bytes()
    if damage == "garbage":
        npz.write_bytes(b"this is not a zip file at all" * 10)
    elif damage == "truncated":
        npz.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        npz.write_bytes(b"")
    else:  # flip bytes inside the first stored array (CRC mismatch)
        start = data.index(b"NUMPY") + 200
        npz.write_bytes(data[:start] + bytes(b ^ 0xFF for b in data[start:start + 16])
                        + data[start + 16:])
    rejected(path, "weights file", "net.npz", "corrupt")


def test_reject_pickled_object_array(tmp_path):
    """An object array needs pickle to load; the loader never unpickles."""
    g, path, npz = saved(tmp_path)
    key = key_of(g, "fc", "bias")
    edit_npz(npz, lambda a: a.update({key: np.array([1] * 7, dtype=object)}))
    rejected(path, "net.npz", "corrupt", "pickle")


def test_reject_float_array(tmp_path):
    g, path, npz = saved(tmp_path)
    key = key_of(g, "conv1", "weight")
    edit_npz(npz, lambda a: a.update({key: a[key].astype(np.float64)}))
    rejected(path, "conv1", "weight holds non-integer values", "float64")


def test_reject_missing_array_key(tmp_path):
    g, path, npz = saved(tmp_path)
    key = key_of(g, "fc", "weight")
    edit_npz(npz, lambda a: a.pop(key))
    rejected(path, "fc", f"array '{key}' is missing from the weights file")


def test_reject_weight_outside_w_bits(tmp_path):
    g, path, npz = saved(tmp_path)
    key = key_of(g, "conv1", "weight")  # 4-bit weights: |w| <= 7

    def bump(a):
        w = a[key].copy()
        w[0, 0, 0, 0] = 8
        a[key] = w
    edit_npz(npz, bump)
    rejected(path, "conv1", "weight value 8 is out of range for 4-bit", "|w| <= 7")


def test_reject_zero_in_one_bit_weights(tmp_path):
    g, path, npz = saved(tmp_path)
    key = key_of(g, "conv2", "weight")

    def zero(a):
        w = a[key].copy()
        w[1, 1, 1, 1] = 0
        a[key] = w
    edit_npz(npz, zero)
    rejected(path, "conv2", "1-bit weights must be -1 or +1")


def test_reject_wrong_weight_shape_channel_mismatch(tmp_path):
    g, path, npz = saved(tmp_path)
    key = key_of(g, "conv2", "weight")  # [4, 3, 3, 3] on a 3-channel input
    edit_npz(npz, lambda a: a.update({key: np.ones((4, 2, 3, 3), dtype=np.int64)}))
    rejected(path, "conv2", "2 input channels but the input has 3")


def test_reject_wrong_bias_shape(tmp_path):
    g, path, npz = saved(tmp_path)
    key = key_of(g, "fc", "bias")
    edit_npz(npz, lambda a: a.update({key: np.zeros(6, dtype=np.int64)}))
    rejected(path, "fc", "bias shape (6,) does not match 7 outputs")


def test_reject_non_binary_codebook(tmp_path):
    g, path, npz = saved(tmp_path)
    key = key_of(g, "decode", "codebook")
    edit_npz(npz, lambda a: a.update({key: a[key] * 2}))
    rejected(path, "decode", "codebook values must be 0 or 1")


def test_reject_tampered_stored_width(tmp_path):
    g, path, _ = saved(tmp_path)
    nid = g.by_name("conv1").id
    width = g.nodes[nid].type.width
    edit_json(path, lambda d: d["nodes"][nid]["type"].update(width=width + 1))
    msg = rejected(path, f"node {nid} (conv1)", "disagree with the rules")
    assert g.nodes[nid].type.c_style() in msg


@pytest.mark.parametrize("field,value", [("range", [0, 1]), ("shape", [3, 6, 5])])
def test_reject_tampered_stored_range_or_shape(tmp_path, field, value):
    g, path, _ = saved(tmp_path)
    nid = g.by_name("conv1").id
    edit_json(path, lambda d: d["nodes"][nid].update({field: value}))
    rejected(path, "conv1", "disagree with the rules")


def test_reject_tampered_attribute(tmp_path):
    """A hand-edited shift changes the derived range, frac and type: caught on load."""
    g, path, _ = saved(tmp_path)
    nid = g.by_name("relu1").id
    edit_json(path, lambda d: d["nodes"][nid]["attrs"].update(shift=2))
    rejected(path, "relu1", "disagree with the rules")


def test_reject_unknown_op(tmp_path):
    _, path, _ = saved(tmp_path)
    edit_json(path, lambda d: d["nodes"][3].update(op="softmax"))
    rejected(path, "node 3", "unknown op 'softmax'")


def test_reject_unknown_attribute_and_mode(tmp_path):
    g, path, _ = saved(tmp_path)
    nid = g.by_name("relu1").id
    edit_json(path, lambda d: d["nodes"][nid]["attrs"].update(gain=3))
    rejected(path, "relu1", "unknown attribute(s) ['gain']")
    saved(tmp_path)
    edit_json(path, lambda d: d["nodes"][nid]["attrs"].update(rounding="half_down"))
    rejected(path, "relu1", "unknown rounding mode 'half_down'")


@pytest.mark.parametrize("value", [2.5, "3", True, None])
def test_reject_non_integer_scalar_attribute(tmp_path, value):
    g, path, _ = saved(tmp_path)
    nid = g.by_name("relu1").id
    edit_json(path, lambda d: d["nodes"][nid]["attrs"].update(shift=value))
    rejected(path, "relu1", "attribute shift must be an integer")


def test_reject_missing_attribute(tmp_path):
    g, path, _ = saved(tmp_path)
    nid = g.by_name("conv1").id
    edit_json(path, lambda d: d["nodes"][nid]["attrs"].pop("w_bits"))
    rejected(path, "conv1", "w_bits")


def test_reject_nodes_out_of_order(tmp_path):
    _, path, _ = saved(tmp_path)
    edit_json(path, lambda d: d["nodes"][2].update(id=7))
    rejected(path, "node 2", "id 7 out of order")


def test_reject_forward_reference(tmp_path):
    _, path, _ = saved(tmp_path)
    edit_json(path, lambda d: d["nodes"][2].update(args=[5]))
    rejected(path, "argument ids (5,) are not earlier nodes")


def test_reject_bad_outputs(tmp_path):
    _, path, _ = saved(tmp_path)
    edit_json(path, lambda d: d.update(outputs=[99]))
    rejected(path, "output id 99 is not a node")
    saved(tmp_path)
    edit_json(path, lambda d: d.update(outputs=[]))
    rejected(path, "graph has no outputs")


@pytest.mark.parametrize("text", ["{", "", "not json", '{"format": "heatq-ir",}', "\xff\xfe"])
def test_reject_malformed_json(tmp_path, text):
    _, path, _ = saved(tmp_path)
    if text == "\xff\xfe":
        path.write_bytes(b"\xff\xfe\x00garbage")
    else:
        path.write_text(text)
    rejected(path, "not valid JSON")


@pytest.mark.parametrize("drop", ["nodes", "weights", "type"])
def test_reject_missing_keys(tmp_path, drop):
    _, path, _ = saved(tmp_path)
    if drop == "type":
        edit_json(path, lambda d: d["nodes"][1].pop("type"))
    else:
        edit_json(path, lambda d: d.pop(drop))
    rejected(path, "malformed IR file", f"KeyError: '{drop}'")


def test_errors_are_ir_errors_and_value_errors(tmp_path):
    """IRError subclasses ValueError, so callers may catch either."""
    assert issubclass(IRError, ValueError)
    with pytest.raises(ValueError):
        load(tmp_path / "missing.ir.json")


# ------------------------------------------------------------ regressions (bugs now fixed)
def test_regression_uint64_weight_wraps_on_load(tmp_path):
    g, path, npz = saved(tmp_path)
    key = key_of(g, "fc", "weight")

    def to_u64(a):
        w = a[key].astype(np.uint64)  # negative weights become huge unsigned values
        a[key] = w
    edit_npz(npz, to_u64)
    rejected(path, "fc", "weight")


def test_regression_codebook_value_257_wraps_to_1(tmp_path):
    g, path, npz = saved(tmp_path)
    key = key_of(g, "decode", "codebook")
    edit_npz(npz, lambda a: a.update({key: a[key].astype(np.int64) * 257}))
    rejected(path, "decode", "codebook values must be 0 or 1")
