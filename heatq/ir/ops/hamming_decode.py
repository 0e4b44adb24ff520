"""HAMMING_DECODE: the class whose codeword is nearest in Hamming distance, ties to the lowest
index.  :func:`hamming_distances` is the one Hamming distance of heatq (codes and check call it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import IRError
from . import Op
from .base import Arg, OpSpec, Shape, frozen_array, zero_frac


@dataclass(frozen=True, eq=False)
class HammingDecodeAttrs:
    """Class index of the codebook row nearest in Hamming distance; ties go to the lowest index.

    ``codebook``: uint8 [K, L] with entries in {0, 1}.
    """

    codebook: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "codebook",
                           frozen_array(self.codebook, "codebook", np.uint8, (0, 1)))


def hamming_distances(bits: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Distances int64 ``[N, K]`` (0..L) from each row of ``bits`` [N, L] (0/1) to each row of
    ``codebook`` [K, L] (0/1).  Raises IRError (a ValueError) on wrong shapes or non-bits."""
    b, m = np.asarray(bits), np.asarray(codebook)
    if b.ndim != 2 or m.ndim != 2 or b.shape[1] != m.shape[1]:
        raise IRError(f"bits {b.shape} and codebook {m.shape} must be [N, L] and [K, L]")
    if (b.size and not np.isin(b, (0, 1)).all()) or (m.size and not np.isin(m, (0, 1)).all()):
        raise IRError("bits and codebook entries must be 0 or 1")
    b, m = b.astype(np.int64), m.astype(np.int64)
    return b @ (1 - m).T + (1 - b) @ m.T


def _shape(a: HammingDecodeAttrs, args: list[Arg]) -> Shape:
    cb = a.codebook
    if cb.ndim != 2 or cb.shape[0] < 1:
        raise IRError(f"hamming_decode codebook must be [K, L], got {cb.shape}")
    if not np.all((cb == 0) | (cb == 1)):
        raise IRError("hamming_decode codebook values must be 0 or 1")
    if args[0].shape != (cb.shape[1],):
        raise IRError(f"hamming_decode expects {cb.shape[1]} bits, got shape {args[0].shape}")
    if args[0].lo < 0 or args[0].hi > 1:
        raise IRError(f"hamming_decode input must be bits (0..1), got {args[0].lo}..{args[0].hi}")
    return ()


def _evaluate(node, args: list[np.ndarray], arg_nodes) -> np.ndarray:
    dist = hamming_distances(args[0], node.attrs.codebook)
    return np.argmin(dist, axis=1).astype(np.int64)  # argmin keeps the first (lowest) index


SPEC = OpSpec(Op.HAMMING_DECODE, HammingDecodeAttrs, 1, _shape,
              lambda a, args: (0, a.codebook.shape[0] - 1), zero_frac, _evaluate,
              "hamming_decode")
