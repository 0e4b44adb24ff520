"""MNIST-format IDX files: the reader and the four-file directory layout of ``idx:DIR``."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from .errors import UserError

__all__ = ["IDX_FILES", "read_idx", "read_idx_dir"]

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzip'd, detected by its magic bytes).

    Header: two zero bytes, a type byte (0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64; multi-byte types are big-endian), a byte with the number of
    dimensions, then each dimension as a big-endian uint32. The payload must hold exactly
    prod(dims) items. Anything else raises UserError naming the file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise UserError(f"{path}: cannot read IDX file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise UserError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise UserError(f"{path}: corrupt IDX header ({ndim} dimensions, {len(raw)} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise UserError(f"{path}: corrupt IDX file: dims {dims} need {expected} data bytes, "
                        f"found {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _find_idx(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        p = directory / name
        if p.is_file():
            return p
    return None


def read_idx_dir(directory: Path, name: str, missing_hint: str = "") -> dict[str, np.ndarray]:
    """``{"x_train", "y_train", "x_test", "y_test"}`` of an IDX directory: images uint8
    ``[N, H, W]`` (C-contiguous), labels int64 ``[N]``.  A missing file (``missing_hint`` is
    added to the message), a file of the wrong type or rank, or splits whose counts or image
    sizes disagree raise UserError naming ``name`` or the file."""
    paths = {key: _find_idx(directory, stem) for key, stem in IDX_FILES.items()}
    missing = [IDX_FILES[k] for k, p in paths.items() if p is None]
    if missing:
        raise UserError(f"{name}: dataset files not found under {directory} "
                        f"(missing {', '.join(missing)}[.gz]){missing_hint}")
    arrays = {}
    for key, p in paths.items():
        a = read_idx(p)
        want_ndim = 3 if key.startswith("x") else 1
        if a.dtype != np.uint8 or a.ndim != want_ndim:
            raise UserError(f"{p}: expected a uint8 IDX file with {want_ndim} dimension(s), "
                            f"got {a.dtype} with shape {a.shape}")
        arrays[key] = a
    for part in ("train", "test"):
        nx, ny = arrays[f"x_{part}"].shape[0], arrays[f"y_{part}"].shape[0]
        if nx != ny:
            raise UserError(f"{name}: {part} split has {nx} images but {ny} labels ({directory})")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise UserError(f"{name}: train and test images differ in size ({directory})")
    return {key: np.ascontiguousarray(a) if key.startswith("x") else a.astype(np.int64)
            for key, a in arrays.items()}


