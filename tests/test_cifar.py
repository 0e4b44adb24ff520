"""cifar10:DIR (the python batch files, a restricted unpickler, one-line errors naming the file),
colour input codes (channel c*n + j) and a colour run end to end through the CLI."""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from heatq.cifar import CIFAR_FILES, read_batch
from heatq.codes import InputCode, parse_input_code
from heatq.data import load_dataset
from heatq.errors import UserError

BIN = Path(sys.executable).parent
ROW = 3 * 32 * 32


def write_batch(path: Path, data: np.ndarray, labels, **extra) -> Path:
    """One batch file as CIFAR-10 ships it: a pickled dict with bytes keys."""
    batch = {b"batch_label": path.name.encode(), b"data": data, b"labels": list(labels),
             b"filenames": [f"img{i}.png".encode() for i in range(len(data))], **extra}
    with open(path, "wb") as f:
        pickle.dump(batch, f)
    return path


def write_cifar(d: Path, n_batch: int = 20, n_test: int = 20, seed: int = 0) -> dict:
    """A synthetic CIFAR-shaped set in the real layout; returns the rows and labels written."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in CIFAR_FILES:
        n = n_test if name == "test_batch" else n_batch
        data = rng.integers(0, 256, size=(n, ROW), dtype=np.uint8)
        labels = [int(v) for v in (np.arange(n) + len(written)) % 10]
        write_batch(d / name, data, labels)
        written[name] = (data, labels)
    return written


def py2_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """The bytes a Python 2 cPickle (protocol 2) writes for a batch: py2 ``str`` opcodes for the
    keys and the pixel buffer, numpy's ``numpy.core.multiarray._reconstruct`` + BUILD."""
    def s(b: bytes) -> bytes:
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<I", len(b)) + b

    def i(v: int) -> bytes:
        return b"K" + bytes([v]) if v < 256 else b"M" + struct.pack("<H", v)

    n, row = data.shape
    arr = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + i(0) + b"\x85" + s(b"b")
           + b"\x87R(" + i(1) + i(n) + i(row) + b"\x86cnumpy\ndtype\n" + s(b"u1") + i(0) + i(1)
           + b"\x87R(" + i(3) + s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff" + i(0) + b"tb"
           + b"\x89" + s(data.tobytes()) + b"tb")
    return (b"\x80\x02}(" + s(b"data") + arr + s(b"labels") + b"](" + b"".join(map(i, labels))
            + b"eu.")


def pixel(row: np.ndarray, c: int, r: int, col: int) -> int:
    """CIFAR-10's row layout: 1024 red, 1024 green, 1024 blue bytes, each 32x32 row-major."""
    return int(row[c * 1024 + r * 32 + col])


# ------------------------------------------------------------------------------ loading


def test_cifar10_dir_loads_the_batches_in_order(tmp_path):
    written = write_cifar(tmp_path / "c")
    ds = load_dataset(f"cifar10:{tmp_path / 'c'}")
    assert ds.x_train.shape == (100, 3, 32, 32) and ds.x_test.shape == (20, 3, 32, 32)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert ds.colours == 3 and ds.image_shape == (32, 32) and ds.n_classes == 10
    rows = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = sum((written[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert ds.y_train.tolist() == labels and ds.y_test.tolist() == written["test_batch"][1]
    rng = np.random.default_rng(1)
    for _ in range(200):
        k, c, r, col = (int(rng.integers(0, m)) for m in (100, 3, 32, 32))
        assert int(ds.x_train[k, c, r, col]) == pixel(rows[k], c, r, col)
    assert int(ds.x_test[7, 2, 31, 5]) == pixel(written["test_batch"][0][7], 2, 31, 5)


def test_cifar10_parent_dir_and_train_per_class(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    a = load_dataset(f"cifar10:{tmp_path}")
    assert a.x_train.shape == (100, 3, 32, 32)
    b = load_dataset(f"cifar10:{tmp_path}", train_per_class=3, seed=4)
    assert b.x_train.shape == (30, 3, 32, 32) and np.bincount(b.y_train).tolist() == [3] * 10
    assert b.x_test.shape == a.x_test.shape  # the test split is never subsampled
    for x, y in zip(b.x_train, b.y_train):  # every kept image is one of the originals
        assert any(np.array_equal(x, a.x_train[i]) for i in np.flatnonzero(a.y_train == y))


def test_python2_batch_file(tmp_path):
    """The real files were written by Python 2 / numpy 1: they name numpy.core.multiarray."""
    data = np.random.default_rng(2).integers(0, 256, size=(3, ROW), dtype=np.uint8)
    p = tmp_path / "data_batch_1"
    p.write_bytes(py2_batch(data, [9, 0, 4]))
    x, y = read_batch(p)
    assert y.tolist() == [9, 0, 4] and x.shape == (3, 3, 32, 32)
    assert np.array_equal(x.reshape(3, ROW), data)


# ------------------------------------------------------------------------------- errors


class Boom:
    """Unpickling calls os.system (a refused pickle must never run it)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Evil:
    def __reduce__(self):
        return (eval, ("1 + 1",))


def _one_line(exc: pytest.ExceptionInfo, *needles: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, msg


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(UserError) as e:
        load_dataset(f"cifar10:{tmp_path / 'nope'}")
    _one_line(e, str(tmp_path / "nope"), "not a directory")
    write_cifar(tmp_path / "c")
    (tmp_path / "c" / "test_batch").unlink()
    with pytest.raises(UserError) as e:
        load_dataset(f"cifar10:{tmp_path / 'c'}")
    _one_line(e, str(tmp_path / "c" / "test_batch"), "file not found")
    (tmp_path / "c" / "data_batch_3").unlink()
    with pytest.raises(UserError) as e:
        load_dataset(f"cifar10:{tmp_path / 'c'}")
    _one_line(e, str(tmp_path / "c" / "data_batch_3"), "file not found")


def _corrupt(d: Path, name: str, raw: bytes) -> UserError:
    (d / name).write_bytes(raw)
    with pytest.raises(UserError) as e:
        load_dataset(f"cifar10:{d}")
    _one_line(e, str(d / name))
    return e.value


@pytest.mark.parametrize("mutate, needle", [
    (lambda raw: raw[: len(raw) // 2], "not a readable pickle"),   # truncated
    (lambda raw: b"", "not a readable pickle"),                       # empty
    (lambda raw: b"PNG\x00 not a pickle at all", "not a readable pickle"),
    (lambda raw: raw[:40] + b"\xff" * 20 + raw[60:], "batch_2"),      # garbled opcodes
])
def test_malformed_file(tmp_path, mutate, needle):
    write_cifar(tmp_path)
    raw = (tmp_path / "data_batch_2").read_bytes()
    assert needle in str(_corrupt(tmp_path, "data_batch_2", mutate(raw)))


@pytest.mark.parametrize("batch, needle", [
    ([1, 2, 3], "a pickled dict expected, got list"),
    ({b"labels": [1]}, "no b'data' entry"),
    ({b"data": np.zeros((1, ROW), np.uint8)}, "no b'labels' entry"),
    ({b"data": np.zeros((2, 3000), np.uint8), b"labels": [1, 2]}, "uint8 [n, 3072]"),
    ({b"data": np.zeros((2, ROW), np.int16), b"labels": [1, 2]}, "uint8 [n, 3072]"),
    ({b"data": np.zeros((2, ROW), np.uint8), b"labels": [1]}, "2 ints (one per image), got 1"),
    ({b"data": np.zeros((2, ROW), np.uint8), b"labels": [1, 10]}, "label 10 at index 1"),
    ({b"data": np.zeros((2, ROW), np.uint8), b"labels": [-1, 0]}, "label -1 at index 0"),
    ({b"data": np.zeros((2, ROW), np.uint8), b"labels": [b"x", 0]}, "2 ints"),
])
def test_wrong_contents(tmp_path, batch, needle):
    write_cifar(tmp_path)
    assert needle in str(_corrupt(tmp_path, "test_batch", pickle.dumps(batch)))


def test_disallowed_global_is_refused_not_run(tmp_path):
    write_cifar(tmp_path)
    marker = tmp_path / "ran"
    err = _corrupt(tmp_path, "data_batch_1",
                   pickle.dumps({b"data": Boom(marker), b"labels": [0]}))
    assert "refused" in str(err) and "system" in str(err)
    assert not marker.exists()
    err = _corrupt(tmp_path, "data_batch_1", pickle.dumps(Evil()))
    assert "refused" in str(err) and "builtins.eval" in str(err)
    # protocol 5 arrays name numpy._core.numeric._frombuffer: outside the allowed set too
    err = _corrupt(tmp_path, "data_batch_1", pickle.dumps(
        {b"data": np.zeros((1, ROW), np.uint8), b"labels": [0]}, protocol=5))
    assert "refused" in str(err) and "_frombuffer" in str(err)


def test_cli_error_is_one_line(tmp_path):
    write_cifar(tmp_path / "c")
    (tmp_path / "c" / "data_batch_4").write_bytes(b"garbage")
    r = subprocess.run([str(BIN / "heatq"), "train", "--dataset", f"cifar10:{tmp_path / 'c'}",
                        "--out", str(tmp_path / "run")], capture_output=True, text=True,
                       timeout=300)
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode != 0 and "Traceback" not in r.stderr and len(err) == 1, r.stderr
    assert str(tmp_path / "c" / "data_batch_4") in err[0] and not (tmp_path / "run").exists()


# -------------------------------------------------------------------- colour input codes


def naive_code(x: np.ndarray, code: InputCode) -> np.ndarray:
    """Per-pixel reference: channel c*n + j of [N, C, H, W] is code channel j of colour c."""
    n, colours, h, w = x.shape
    out = np.zeros((n, colours * code.n, h, w), dtype=np.uint8)
    for i in range(n):
        for c in range(colours):
            for j in range(code.n):
                for r in range(h):
                    for q in range(w):
                        v = int(x[i, c, r, q])
                        bit = (v >> (7 - j)) & 1 if code.kind == "bitplane" \
                            else int(v >= code.thresholds[j])
                        out[i, c * code.n + j, r, q] = bit
    return out


@pytest.mark.parametrize("spec", ["bitplane:4", "bitplane:8", "thermometer:3", "bitplane:1"])
def test_colour_codes_channel_order(spec):
    code = parse_input_code(spec)
    x = np.random.default_rng(3).integers(0, 256, size=(3, 3, 4, 5), dtype=np.uint8)
    want = naive_code(x, code)
    got = code.encode_numpy(x)
    assert got.dtype == np.uint8 and got.shape == (3, 3 * code.n, 4, 5)
    assert np.array_equal(got, want)
    t = code.encode_torch(torch.from_numpy(x))
    assert t.dtype == torch.float32 and np.array_equal(t.numpy().astype(np.uint8), want)
    assert code.body_channels(3) == code.input_channels_for(3) == 3 * code.n
    # one colour channel is the grey code, byte for byte
    assert np.array_equal(code.encode_numpy(x[:, :1]), code.encode_numpy(x[:, 0]))


def test_bitplane_rgb_is_r_then_g_then_b():
    x = np.zeros((1, 3, 1, 1), np.uint8)
    x[0, :, 0, 0] = [0b1000_0000, 0b0100_0000, 0b0001_0000]
    planes = parse_input_code("bitplane:4").encode_numpy(x)[0, :, 0, 0].tolist()
    assert planes == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]


def test_learned_code_refuses_colour():
    code = parse_input_code("learned:4")
    x = np.zeros((2, 3, 4, 4), np.uint8)
    for call in (lambda: code.encode_numpy(x), lambda: code.encode_torch(torch.from_numpy(x)),
                 lambda: code.body_channels(3)):
        with pytest.raises(UserError, match="learned:4: learned thresholds take grey images only"):
            call()
    assert code.body_channels(1) == 4 and code.input_channels_for(1) == 1
    assert code.encode_numpy(x[:, 0]).shape == (2, 1, 4, 4)


# ------------------------------------------------------------------ a colour run end to end


def cli(*args: str, prog: str = "heatq") -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / prog), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("cifar")
    write_cifar(d / "data", n_batch=16, n_test=12)
    run = d / "run"
    r = cli("train", "--dataset", f"cifar10:{d / 'data'}", "--model", "mlp", "--input-code",
            "bitplane:2", "--epochs", "1", "--qat-epochs", "1", "--val-fraction", "0",
            "--out", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    return d, run


def test_colour_train_then_check(colour_run):
    d, run = colour_run
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["in_channels"] == 6 and config["dataset"] == f"cifar10:{d / 'data'}"
    ir = json.loads((run / "model.ir.json").read_text())
    assert ir["nodes"][0]["shape"] == [6, 32, 32]
    r = cli("check", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "check.json").read_text())["all_equal"]


def test_colour_run_target_c(colour_run):
    d, run = colour_run
    out = d / "c"
    r = cli(str(run), "-t", "c", "-o", str(out), prog="heatq-export")
    assert r.returncode == 0, r.stderr
    r = cli("run-target", str(out), "--n", "12", "--quiet")
    assert r.returncode == 0, r.stderr + r.stdout
    result = json.loads((out / "run.json").read_text())
    assert result["n"] == 12 and result["mismatches"] == 0


def test_colour_run_target_inputs(colour_run):
    from heatq.inputs import target_inputs
    from heatq.rundir import load_graph

    d, run = colour_run
    graph = load_graph(run)
    inputs = target_inputs(graph, str(run), n=5)
    assert inputs.n_images == 5 and inputs.x.shape[1:] == (6, 32, 32)
    ds = load_dataset(f"cifar10:{d / 'data'}")
    assert np.array_equal(inputs.x[:5], naive_code(ds.x_test[:5], parse_input_code("bitplane:2")))


def test_colour_run_refuses_grey_images(colour_run, tmp_path):
    from test_data import make_idx_dir

    from heatq.pipeline import check_run

    _, run = colour_run
    make_idx_dir(tmp_path / "grey", hw=(32, 32), n_classes=10)
    with pytest.raises(UserError) as e:
        check_run(run, dataset=f"idx:{tmp_path / 'grey'}", progress=False)
    _one_line(e, "expects 6 input channels", "1 colour channel(s)", "bitplane:2 give 2")


def test_learned_code_on_colour_train_is_refused(colour_run, tmp_path):
    from heatq.pipeline import train_run

    d, _ = colour_run
    with pytest.raises(UserError) as e:
        train_run(tmp_path / "r", f"cifar10:{d / 'data'}", "mlp", input_code="learned:4",
                  epochs=0, qat_epochs=0, progress=False)
    _one_line(e, "grey images only")
    assert not (tmp_path / "r").exists()
