"""CIFAR-10 from a user's directory, and CIFAR-shaped sets made from grey ones.

``cifar10:DIR`` (:func:`load_cifar10`) reads the python version of CIFAR-10 as its authors
ship it (``cifar-10-python.tar.gz``, extracted): ``DIR`` holds ``data_batch_1`` ..
``data_batch_5`` and ``test_batch``, or holds the folder ``cifar-10-batches-py/`` that does.
Each file is a pickle of a dict with

* ``b"data"``: a numpy ``uint8 [n, 3072]`` array, one image per row: the 1024 red pixels, then
  the 1024 green, then the 1024 blue, each plane row-major 32 x 32;
* ``b"labels"``: ``n`` ints in 0..9.

The training split is the five data batches in order (50000 images in the real set), the test
split ``test_batch`` (10000).  Nothing is ever downloaded.

The batch files come from the user, and unpickling can run any callable a pickle names, so
they are read with :class:`BatchUnpickler`, which resolves only the globals a batch needs
(:data:`ALLOWED_GLOBALS`: the builtins ``dict``, ``list``, ``bytes``, ``str``, ``int`` and
numpy's array reconstruction ``_reconstruct`` / ``ndarray`` / ``dtype``); a pickle that names
anything else (``os.system``, ``builtins.eval``, ...) is refused before the call, never run.
Every problem with the directory or a file is a one-line :class:`UserError` naming the file.

``fashion32x3`` (:func:`cifar_shaped`): the grey Fashion-MNIST images zero-padded from 28 x 28
to 32 x 32 (2 pixels each side) and replicated to 3 colour channels, an offline stand-in with
CIFAR-10's shape (``[N, 3, 32, 32]``, 10 classes) on real images.
"""

from __future__ import annotations

import builtins
import pickle
from pathlib import Path

import numpy as np

from .data import Dataset
from .errors import UserError

__all__ = ["ALLOWED_GLOBALS", "BatchUnpickler", "CIFAR_FILES", "cifar_shaped", "load_cifar10",
           "read_batch"]

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_FILES = (*TRAIN_BATCHES, "test_batch")
SUBDIR = "cifar-10-batches-py"
COLOURS, SIDE, N_CLASSES = 3, 32, 10
ROW = COLOURS * SIDE * SIDE  # 3072 bytes per image



def _reconstruct():
    """numpy's array reconstruction, wherever this numpy keeps it (the real batches, written
    by numpy 1, name ``numpy.core.multiarray``; numpy 2 moved it to ``numpy._core``)."""
    try:
        from numpy._core.multiarray import _reconstruct as f
    except ImportError:  # numpy 1
        from numpy.core.multiarray import _reconstruct as f
    return f


# (module, name) -> the object; find_class imports nothing by the pickle's word
_GLOBALS = {
    **{(m, n): getattr(builtins, n) for m in ("builtins", "__builtin__")
       for n in ("dict", "list", "bytes", "str", "int")},
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
ALLOWED_GLOBALS = frozenset(_GLOBALS)


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global outside :data:`ALLOWED_GLOBALS`."""


class BatchUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` (Python 2 strings load as
    bytes, as the real batch files need); any other global raises :class:`RefusedGlobal`
    before anything is called."""

    def __init__(self, file) -> None:
        super().__init__(file, encoding="bytes")

    def find_class(self, module: str, name: str):
        try:
            return _GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"{module}.{name}") from None


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images ``uint8 [n, 3, 32, 32]``, labels ``int64 [n]``) of one batch file; UserError
    naming ``path`` when it is missing, not a pickle, refused, or not a CIFAR-10 batch."""
    try:
        with open(path, "rb") as f:
            batch = BatchUnpickler(f).load()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except RefusedGlobal as e:
        raise UserError(f"{path}: refused: the pickle asks for {e}, but a CIFAR-10 batch holds "
                        "only dicts, lists, bytes, str, int and numpy arrays") from None
    except Exception as e:  # noqa: BLE001 - any failure to decode a user's file is one line
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path}: not a readable pickle ({why})") from None
    return _batch_arrays(batch, path)


def _field(batch: dict, key: str):
    for k in (key.encode(), key):  # the real files have bytes keys; accept str keys too
        if k in batch:
            return batch[k]
    return None


def _batch_arrays(batch, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(batch, dict):
        raise UserError(f"{path}: not a CIFAR-10 batch (a pickled dict expected, got "
                        f"{type(batch).__name__})")
    data, labels = _field(batch, "data"), _field(batch, "labels")
    missing = [k for k, v in (("b'data'", data), ("b'labels'", labels)) if v is None]
    if missing:
        raise UserError(f"{path}: not a CIFAR-10 batch (no {' or '.join(missing)} entry)")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != ROW or len(data) == 0:
        what = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise UserError(f"{path}: b'data' must be uint8 [n, {ROW}] with n >= 1, got {what}")
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != len(data) \
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                       for v in labels):
        n = len(labels) if isinstance(labels, (list, np.ndarray)) else type(labels).__name__
        raise UserError(f"{path}: b'labels' must be {len(data)} ints (one per image), got {n}")
    y = np.array([int(v) for v in labels], dtype=np.int64)
    bad = np.flatnonzero((y < 0) | (y >= N_CLASSES))
    if bad.size:
        raise UserError(f"{path}: label {y[bad[0]]} at index {bad[0]} is outside "
                        f"0..{N_CLASSES - 1}")
    return np.ascontiguousarray(data.reshape(-1, COLOURS, SIDE, SIDE)), y


def _batch_dir(directory: Path, spec: str) -> Path:
    """``directory``, or its ``cifar-10-batches-py/`` when the batches are there."""
    if not directory.is_dir():
        raise UserError(f"dataset {spec!r}: {directory} is not a directory")
    inner = directory / SUBDIR
    if not (directory / CIFAR_FILES[0]).exists() and inner.is_dir():
        return inner
    return directory


def load_cifar10(directory: Path, spec: str) -> Dataset:
    """CIFAR-10 from ``directory`` (see the module doc) as colour ``uint8 [N, 3, 32, 32]``
    images, 10 classes, named ``spec``."""
    d = _batch_dir(Path(directory), spec)
    for name in CIFAR_FILES:  # name the first missing file before reading any
        if not (d / name).is_file():
            tarball = " (extract cifar-10-python.tar.gz first)" \
                if (d / "cifar-10-python.tar.gz").is_file() else ""
            raise UserError(f"{d / name}: file not found; {spec} needs "
                            f"{', '.join(CIFAR_FILES)} (CIFAR-10, python version){tarball}")
    parts = [read_batch(d / name) for name in TRAIN_BATCHES]
    x_te, y_te = read_batch(d / "test_batch")
    x_tr = np.concatenate([x for x, _ in parts])
    y_tr = np.concatenate([y for _, y in parts])
    return Dataset(spec, x_tr, y_tr, x_te, y_te, N_CLASSES)


def cifar_shaped(ds: Dataset, name: str, side: int = SIDE, colours: int = COLOURS) -> Dataset:
    """A grey ``ds`` (``[N, H, W]``, H, W <= ``side``) as ``[N, colours, side, side]``: each
    image zero-padded to ``side`` x ``side`` (the extra rows / columns split evenly, the odd
    one at the bottom / right) and copied to every colour channel; labels unchanged."""
    if ds.colours != 1:
        raise UserError(f"{name}: needs grey images, {ds.name} has {ds.colours} colour channels")
    h, w = ds.image_shape
    if h > side or w > side:
        raise UserError(f"{name}: {ds.name}'s {h}x{w} images do not fit in {side}x{side}")
    pad = ((0, 0), ((side - h) // 2, side - h - (side - h) // 2),
           ((side - w) // 2, side - w - (side - w) // 2))

    def shaped(x: np.ndarray) -> np.ndarray:
        padded = np.pad(x, pad)
        return np.ascontiguousarray(np.broadcast_to(padded[:, None], (len(x), colours, side, side)))

    return Dataset(name, shaped(ds.x_train), ds.y_train, shaped(ds.x_test), ds.y_test,
                   ds.n_classes, ds.targets)
