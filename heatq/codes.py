"""Input codes (pixels -> binary channels) and output codes (ECOC codebooks).

Input codes
-----------
:mod:`heatq.input_codes` (re-exported here): ``bitplane:N``, ``thermometer:N`` and
``learned:T`` turn each 8-bit pixel into binary channels, per colour channel on colour images.

Output codes
------------
An ``OutputCode`` is a K x L matrix M of bits (uint8, 0/1): row k is the codeword of
class k. Training targets are the rows ``M[y]`` (BCE against L logits); decoding takes the
class whose row has the smallest Hamming distance to the predicted bits
(``bit = logit > 0``), ties to the lowest class index. In hardware this is XOR + popcount +
argmin; distances are unsigned and need ``ceil(log2(L + 1))`` bits.

For ordinal classes (the levels of a regression target, :mod:`heatq.regression`) two codes
keep the order: ``thermometer`` (L = K - 1, level k is k ones then zeros, so the Hamming
distance of two codewords equals their level distance) and ``gray`` (L = ceil(log2 K), the
binary-reflected Gray code ``k ^ (k >> 1)`` MSB first: neighbouring levels differ in one bit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from heatq.errors import UserError
from heatq.input_codes import INPUT_CODE_KINDS, InputCode, parse_input_code, thermometer_thresholds
from heatq.ir.ops.hamming_decode import hamming_distances

__all__ = [
    "InputCode",
    "OutputCode",
    "parse_input_code",
    "parse_output_code",
    "hamming_distances_numpy",
    "hamming_decode_numpy",
    "hamming_decode_torch",
    "decode_torch",
    "code_targets_torch",
    "INPUT_CODE_KINDS",
    "OUTPUT_CODE_SPECS",
    "thermometer_thresholds",
]

OUTPUT_CODE_SPECS = ("onehot", "hadamard:L", "random:L", "full", "thermometer", "gray")

_RANDOM_TRIES = 200
_FULL_MAX_CLASSES = 16


# -------------------------------------------------------------------------- output codes


def _min_distance(matrix: np.ndarray) -> int:
    """Minimum Hamming distance between two distinct rows of a 0/1 matrix [K, L], K >= 2
    (0 if two rows are equal)."""
    d = hamming_distances(matrix, matrix)
    return int(d[~np.eye(len(d), dtype=bool)].min())


@dataclass(frozen=True, eq=False)
class OutputCode:
    """An error-correcting output code: ``matrix`` is K x L uint8 with entries 0/1.

    Row k is the codeword of class k. The matrix is stored as a read-only copy.
    ``decoder``: a learned :class:`heatq.decoder.Decoder` over the L code bits that replaces
    Hamming decoding (:func:`decode_torch`), or None (Hamming decoding).
    """

    name: str
    matrix: np.ndarray = field(repr=False)
    decoder: object | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        m = np.asarray(self.matrix)
        if m.ndim != 2 or m.shape[0] < 2 or m.shape[1] < 1:
            raise ValueError(f"code matrix must be K x L with K >= 2, L >= 1; got shape {m.shape}")
        if not np.isin(m, (0, 1)).all():
            raise ValueError("code matrix entries must be 0 or 1")
        m = np.array(m, dtype=np.uint8, copy=True)
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)

    @property
    def n_classes(self) -> int:
        """K, the number of classes (rows)."""
        return int(self.matrix.shape[0])

    @property
    def length(self) -> int:
        """L, the number of code bits (columns) = number of network outputs."""
        return int(self.matrix.shape[1])

    def min_distance(self) -> int:
        """Minimum Hamming distance between two distinct rows (0 if two rows are equal)."""
        return _min_distance(self.matrix)

    def __repr__(self) -> str:
        return f"OutputCode(name={self.name!r}, n_classes={self.n_classes}, length={self.length})"


def _onehot(k: int) -> np.ndarray:
    return np.eye(k, dtype=np.uint8)


def _hadamard(k: int, length: int, spec: str) -> np.ndarray:
    """Sylvester Hadamard code: H[r, c] = parity(popcount(r & c)) for an order n = L + 1.

    Column 0 (all zeros) is dropped. Rows 1..K are used when K <= L, so no class gets the
    all-zero word; when K == L + 1 all rows 0..L are used. Any two distinct rows differ in
    exactly n/2 of the remaining L columns, so the minimum distance is (L + 1) / 2.
    """
    order = length + 1
    if length < 1 or order & (order - 1):
        raise UserError(f"bad output code {spec!r}: L + 1 must be a power of two (3, 7, 15, 31, ...)")
    if k > order:
        raise UserError(f"bad output code {spec!r}: {k} classes need L + 1 >= {k}")
    r = np.arange(order, dtype=np.int64)[:, None]
    c = np.arange(1, order, dtype=np.int64)[None, :]
    x = r & c
    parity = np.zeros_like(x)
    while x.any():
        parity ^= x & 1
        x >>= 1
    rows = np.arange(1, k + 1) if k <= length else np.arange(order)
    return parity[rows].astype(np.uint8)


def _random(k: int, length: int, seed: int, spec: str) -> np.ndarray:
    """Best of 200 seeded random K x L matrices without constant columns (max-min distance)."""
    if length < 1:
        raise UserError(f"bad output code {spec!r}: L must be >= 1")
    rng = np.random.default_rng(seed)
    best, best_d = None, -1
    for _ in range(_RANDOM_TRIES):
        m = rng.integers(0, 2, size=(k, length), dtype=np.uint8)
        while True:
            const = (m.min(axis=0) == m.max(axis=0))
            if not const.any():
                break
            m[:, const] = rng.integers(0, 2, size=(k, int(const.sum())), dtype=np.uint8)
        dmin = _min_distance(m)
        if dmin > best_d:
            best, best_d = m, dmin
    assert best is not None
    return best


def _full(k: int, spec: str) -> np.ndarray:
    """All 2^(K-1) - 1 nontrivial bipartitions: column m-1 has bit k = (m >> k) & 1 for k < K-1
    and 0 for class K-1, m = 1..2^(K-1)-1 (so no column is constant or a complement of another)."""
    if k > _FULL_MAX_CLASSES:
        raise UserError(f"bad output code {spec!r}: the full code supports at most "
                        f"{_FULL_MAX_CLASSES} classes, got {k}")
    m = np.arange(1, 2 ** (k - 1), dtype=np.int64)[None, :]
    bits = (m >> np.arange(k - 1, dtype=np.int64)[:, None]) & 1
    return np.vstack([bits, np.zeros((1, m.shape[1]), dtype=np.int64)]).astype(np.uint8)


def thermometer_code(k: int) -> np.ndarray:
    """K x (K-1): bit j of level k is ``k > j`` (level k has k ones, first)."""
    return (np.arange(k)[:, None] > np.arange(k - 1)[None, :]).astype(np.uint8)


def _gray(k: int) -> np.ndarray:
    """K x ceil(log2 K): row k is ``k ^ (k >> 1)`` in binary, MSB first (1 bit for K = 2)."""
    length = max(1, (k - 1).bit_length())
    g = np.arange(k, dtype=np.int64) ^ (np.arange(k, dtype=np.int64) >> 1)
    return ((g[:, None] >> np.arange(length - 1, -1, -1)[None, :]) & 1).astype(np.uint8)


def parse_output_code(spec: str, n_classes: int, seed: int = 0) -> OutputCode:
    """Build an output code from ``onehot``, ``hadamard:L``, ``random:L``, ``full``, or, for
    ordinal classes, ``thermometer`` (L = K-1) or ``gray`` (L = ceil(log2 K)).

    ``seed`` only affects ``random:L``. Bad specs raise UserError naming the spec.
    """
    if not isinstance(spec, str):
        raise UserError(f"output code spec must be a string, got {spec!r}")
    if n_classes < 2:
        raise UserError(f"output code {spec!r}: need at least 2 classes, got {n_classes}")
    usage = "expected onehot, hadamard:L, random:L, full, thermometer or gray"
    s = spec.strip().lower()
    if s == "onehot":
        return OutputCode("onehot", _onehot(n_classes))
    if s == "full":
        return OutputCode("full", _full(n_classes, spec))
    if s == "thermometer":
        return OutputCode("thermometer", thermometer_code(n_classes))
    if s == "gray":
        return OutputCode("gray", _gray(n_classes))
    kind, sep, arg = s.partition(":")
    if sep and kind in ("hadamard", "random"):
        if not arg.isdigit() or int(arg) < 1:
            raise UserError(f"bad output code {spec!r}: L must be a positive integer")
        length = int(arg)
        if kind == "hadamard":
            return OutputCode(f"hadamard:{length}", _hadamard(n_classes, length, spec))
        return OutputCode(f"random:{length}", _random(n_classes, length, seed, spec))
    raise UserError(f"bad output code {spec!r}: {usage}")


# ------------------------------------------------------------------------------ decoding


def hamming_distances_numpy(bits: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Distances ``[N, K]`` (int64, 0..L) from each row of ``bits`` [N, L] (0/1) to each codeword
    (the IR's one Hamming distance; ValueError on wrong shapes or non-bits)."""
    return hamming_distances(bits, matrix)


def hamming_decode_numpy(bits: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Class index (int64 [N]) of the nearest codeword in Hamming distance; ties -> lowest class."""
    return np.argmin(hamming_distances_numpy(bits, matrix), axis=1).astype(np.int64)


def _logit_bits(logits) -> np.ndarray:
    """The code bits (uint8 [N, L], ``logit > 0`` strictly) of logits ``[N, L]``."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be [N, L], got shape {tuple(logits.shape)}")
    return (logits.detach() > 0).cpu().numpy().astype(np.uint8)


def hamming_decode_torch(logits, matrix):
    """Decode logits ``[N, L]``: bits = ``logits > 0`` (strictly), then the nearest codeword
    by :func:`hamming_decode_numpy` (ties -> lowest class). Returns a LongTensor ``[N]`` on
    the logits' device."""
    import torch

    return torch.from_numpy(hamming_decode_numpy(_logit_bits(logits), matrix)).to(logits.device)


def decode_torch(logits, code: OutputCode):
    """Classes (LongTensor ``[N]`` on the logits' device) of logits ``[N, L]``: bits =
    ``logits > 0``, then ``code.decoder`` when it has one, else Hamming decoding (ties -> the
    lowest class in both)."""
    import torch

    if code.decoder is None:
        return hamming_decode_torch(logits, code.matrix)
    return torch.from_numpy(code.decoder.predict(_logit_bits(logits))).to(logits.device)


def code_targets_torch(y, matrix):
    """BCE targets: float32 ``[N, L]`` rows ``M[y]`` on ``y``'s device (y: integer class ids)."""
    import torch

    m = torch.from_numpy(np.array(matrix, dtype=np.float32)).to(y.device)
    return m[y.long()]
