"""The input vectors of ``heatq run-target`` and ``heatq sim``, for any graph.

Three sources, one per call:

* the dataset the graph was trained on (or ``--dataset NAME``): its first ``--n`` test images
  (grey or colour), encoded with the graph's input code, followed by the corner vectors;
  ``--n 0`` gives the corner vectors only (no dataset needed);
* ``--vectors X.npy``: the user's own integer inputs ``[M, *input_shape]`` (or one vector of
  the input's shape), each value checked against the input's range;
* ``--random N``: the corner vectors plus ``N`` seeded random vectors
  (:func:`heatq.ir.testing.corner_vectors`).

Every mistake is a one-line :class:`UserError` naming the file or option.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .codes import InputCode, parse_input_code
from .data import Dataset, load_dataset
from .errors import UserError
from .ir import IntGraph

from .ir.testing import corner_vectors

NO_INPUTS = ("records no dataset; give inputs with --dataset NAME (its test images), "
             "--vectors X.npy (your own integer inputs) or --random N (seeded random and "
             "corner vectors)")


@dataclass
class Inputs:
    """``x``: int64 (or object) ``[M, *input_shape]``; the first ``n_images`` rows are dataset
    images with ``labels``, then ``n_corner`` corner (and random) vectors, or the user's own;
    ``source`` says where the vectors came from and ``text`` says it in words."""

    x: np.ndarray
    labels: np.ndarray | None
    n_images: int
    n_corner: int
    source: dict
    text: str


def check_count(flag: str, n: int | None, zero: str | None = None, why: str = "") -> None:
    """``n`` must be >= 1, or >= 0 when ``zero`` says what 0 means; None is "not given".
    ``why`` (e.g. "check has no corner vectors") is added to the message."""
    if n is None:
        return
    if n < 0 or (n == 0 and zero is None):
        need = f">= 0 ({zero})" if zero else ">= 1"
        raise UserError(f"{flag} must be {need}" + (f" ({why})" if why else "") + f", got {n}")


def check_image_shape(ds: Dataset, input_shape: tuple, who: str, code: InputCode | None = None
                      ) -> None:
    """Refuse a dataset whose images are not the H x W the graph's input expects and, with the
    run's input ``code``, whose colour channels do not encode to the input's channel count
    (``code.input_channels_for(ds.colours)``; a grey run given colour images or back)."""
    h, w = ds.image_shape
    want = tuple(input_shape[-2:])
    if len(input_shape) < 2 or (h, w) != want:
        expects = f"{want[0]}x{want[1]} images" if len(want) == 2 else f"input {input_shape}"
        raise UserError(f"{who} expects {expects} (input shape {tuple(input_shape)}) but "
                        f"dataset {ds.name} gives {h}x{w} images")
    if code is not None and len(input_shape) == 3:
        got = code.input_channels_for(ds.colours)
        if got != input_shape[0]:
            raise UserError(f"{who} expects {input_shape[0]} input channels (input shape "
                            f"{tuple(input_shape)}) but dataset {ds.name}'s {ds.colours} colour "
                            f"channel(s) encoded with {code.spec} give {got}")


def dataset_of(meta: dict, dataset: str | None, who: str) -> Dataset:
    """The dataset named on the command line, else the one ``meta`` records."""
    name = dataset or meta.get("dataset")
    if not name:
        raise UserError(f"{who} {NO_INPUTS}")
    tpc = meta.get("train_per_class") if dataset is None else None
    return load_dataset(name, train_per_class=tpc, seed=meta.get("seed", 0))


def load_vectors(path: str | Path, graph: IntGraph) -> np.ndarray:
    """The integer vectors in ``path`` (.npy), checked against the graph's input shape and
    range; int64, or object when the range does not fit 64 bits."""
    inp = graph.nodes[0]
    try:
        a = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a NumPy .npy array file ({e})") from None
    if not isinstance(a, np.ndarray):
        raise UserError(f"{path}: not a single array (save one with numpy.save)")
    if a.dtype.kind == "b":
        a = a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise UserError(f"{path}: holds {a.dtype} values; --vectors needs integers")
    if a.shape == inp.shape:
        a = a[None]
    if a.shape[1:] != inp.shape or len(a) == 0:
        raise UserError(f"{path}: shape {a.shape}, but the graph's input is {inp.shape} "
                        f"(give [M, {', '.join(map(str, inp.shape))}] with M >= 1)")
    bad = np.argwhere((a < inp.lo) | (a > inp.hi)) if a.dtype.kind == "i" or inp.lo >= 0 \
        else np.argwhere(a > inp.hi)
    if len(bad):
        idx = tuple(int(i) for i in bad[0])
        raise UserError(f"{path}: value {int(a[idx])} at index {list(idx)} is outside the "
                        f"input range {inp.lo}..{inp.hi}")
    fits = -(2 ** 63) <= inp.lo and inp.hi < 2 ** 63
    return a.astype(np.int64) if fits else a.astype(object)


def _dataset_inputs(graph: IntGraph, who: str, dataset: str | None, n: int | None,
                    seed: int) -> Inputs:
    corners = corner_vectors(graph, seed=seed)
    if n == 0:
        return Inputs(corners, None, 0, len(corners), {"kind": "corners", "seed": seed},
                      f"{len(corners)} corner vectors")
    ds = dataset_of(dict(graph.meta), dataset, who)
    ic = parse_input_code(graph.meta.get("input_code", "bitplane:4"))
    check_image_shape(ds, graph.nodes[0].shape, who, ic)
    images = ds.x_test[:n] if n is not None else ds.x_test
    codes = ic.encode_numpy(images).astype(np.int64)
    if codes.shape[1:] != graph.nodes[0].shape:
        raise UserError(f"dataset {ds.name} encoded with {ic.spec} gives inputs of shape "
                        f"{codes.shape[1:]} but {who} expects {graph.nodes[0].shape}")
    x = np.concatenate([codes.astype(corners.dtype), corners])
    return Inputs(x, ds.y_test[:len(codes)], len(codes), len(corners),
                  {"kind": "dataset", "dataset": ds.name, "n_images": len(codes), "seed": seed},
                  f"{len(codes)} {ds.name} images + {len(corners)} corner vectors")


def check_input_options(dataset: str | None, n: int | None, vectors: str | Path | None,
                        random: int | None) -> None:
    """The option checks of :func:`target_inputs`, for a command to run before anything else."""
    check_count("--n", n, zero="0: corner vectors only")
    check_count("--random", random, zero="0: corner vectors only")
    if vectors is not None and (random is not None or dataset or n is not None):
        raise UserError("--vectors gives the inputs itself; drop --dataset, --n and --random")
    if random is not None and (dataset or n is not None):
        raise UserError("--random replaces the dataset; drop --dataset and --n")


def target_inputs(graph: IntGraph, who: str, dataset: str | None = None, n: int | None = None,
                  vectors: str | Path | None = None, random: int | None = None,
                  seed: int = 0) -> Inputs:
    """The vectors to run ``graph`` on (see the module docstring); ``who`` names the export
    in messages."""
    check_input_options(dataset, n, vectors, random)
    if vectors is not None:
        x = load_vectors(vectors, graph)
        return Inputs(x, None, 0, 0, {"kind": "vectors", "file": str(vectors)},
                      f"{len(x)} vectors from {vectors}")
    if random is not None:
        x = corner_vectors(graph, n_random=random, seed=seed)
        return Inputs(x, None, 0, len(x), {"kind": "random", "n_random": random, "seed": seed},
                      f"{len(x)} corner and random vectors ({random} random, seed {seed})")
    return _dataset_inputs(graph, who, dataset, n, seed)
