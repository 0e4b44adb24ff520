"""Learned output decoders ("neuro-boosting"): a binary fully connected layer over the code bits.

Each code bit is a weak classifier; Hamming decoding weighs every bit equally.  A learned
decoder is a small binary network trained on the code bits the trained network produces:

* ``learned``: one layer, ``score_k = sum_j w[k, j] * b_j + bias[k]`` over the code bits
  ``b`` (unsigned 0/1, L of them), weights ``w`` in {-1, +1} (1-bit signed), integer biases;
  the class is the highest score, ties to the lowest index (ARGMAX).
* ``learned:H``: a hidden layer of ``H`` binary units first, ``h_i = 1 if sum_j w1[i, j] * b_j
  + bias1[i] > 0 else 0`` (SIGN_BITS), then the output layer over ``h``.

Initialised from the code matrix ``M`` (K x L, 0/1), the one-layer decoder *is* Hamming
decoding: with ``w = 2M - 1`` and ``bias_k = floor(-sum_j w[k, j] / 2)``,
``score_k = floor((L - 2 * hamming_k) / 2)``.  (``L - 2 * hamming_k`` is the +-1 dot product
of the codeword with the bits; it has L's parity for every k, so the floor shifts every class
by the same amount.)  Scores fall as the distance grows and ties go to the lowest index in
both, so the two decoders give identical classes.  The hidden layer of ``learned:H`` cannot
start at Hamming decoding (binary hidden units lose the distance's order); its first
``min(H, K)`` units start as the codewords' "within the code's correction radius" detectors,
the rest at seeded random signs, and the output layer at ``+1`` from each detector to its
class and ``-1`` elsewhere.

Training (:func:`fit_decoder`) keeps float latent weights, uses their signs (straight-through)
and rounded biases in the forward pass, and minimises the cross-entropy of the integer scores
times a learned temperature.  It trains on the code bits of the training images under the
training shifts (real bit errors; the clean training bits are nearly error-free), and keeps
the epoch whose integer decoder is most accurate on a second shifted copy, the start included,
so a learned decoder is never worse than its start on that copy.

In the IR (:meth:`Decoder.add_to_graph`) the decoder is ordinary DENSE nodes with 1-bit
weights, SIGN_BITS between layers and ARGMAX: every target and pass handles it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UserError

__all__ = ["DecoderSpec", "Decoder", "parse_decoder", "fit_decoder", "DECODER_SPECS"]

DECODER_SPECS = ("hamming", "learned", "learned:H")
_MAX_HIDDEN = 4096


@dataclass(frozen=True)
class DecoderSpec:
    """``kind``: ``'hamming'`` or ``'learned'``; ``hidden``: H binary hidden units (0: none)."""

    kind: str
    hidden: int = 0

    @property
    def spec(self) -> str:
        """The spec string: ``hamming``, ``learned`` or ``learned:H``."""
        return f"learned:{self.hidden}" if self.hidden else self.kind


def parse_decoder(spec: str) -> DecoderSpec:
    """Parse ``hamming``, ``learned`` or ``learned:H`` (1 <= H <= 4096); UserError otherwise."""
    usage = f"expected hamming, learned or learned:H (1 <= H <= {_MAX_HIDDEN})"
    s = str(spec).strip().lower()
    if s in ("hamming", "learned"):
        return DecoderSpec(s)
    kind, sep, arg = s.partition(":")
    if kind == "learned" and sep and arg.isdigit() and 1 <= int(arg) <= _MAX_HIDDEN:
        return DecoderSpec("learned", int(arg))
    raise UserError(f"bad decoder {spec!r}: {usage}")


def _bits(bits: np.ndarray, n: int) -> np.ndarray:
    b = np.asarray(bits)
    if b.ndim != 2 or b.shape[1] != n:
        raise ValueError(f"decoder expects bits [N, {n}], got shape {b.shape}")
    if b.size and not np.isin(b, (0, 1)).all():
        raise ValueError("decoder inputs must be bits (0 or 1)")
    return b.astype(np.int64)


@dataclass(frozen=True, eq=False)
class Decoder:
    """A binary decoder: ``layers`` is a tuple of ``(w, bias)``, ``w`` int64 [out, in] in
    {-1, +1}, ``bias`` int64 [out]; every layer but the last is followed by SIGN_BITS
    (``x > 0``), the last gives the K class scores.  ``spec``: the :class:`DecoderSpec`."""

    layers: tuple
    spec: DecoderSpec

    def __post_init__(self) -> None:
        layers = []
        for w, bias in self.layers:
            w = np.array(w, dtype=np.int64, copy=True)
            bias = np.array(bias, dtype=np.int64, copy=True)
            if w.ndim != 2 or bias.shape != (w.shape[0],) or not np.isin(w, (-1, 1)).all():
                raise ValueError(f"decoder layer: w must be [out, in] of +-1 and bias [out], "
                                 f"got {w.shape} and {bias.shape}")
            if layers and layers[-1][0].shape[0] != w.shape[1]:
                raise ValueError("decoder layers do not chain")
            w.setflags(write=False)
            bias.setflags(write=False)
            layers.append((w, bias))
        if not layers:
            raise ValueError("a decoder needs at least one layer")
        object.__setattr__(self, "layers", tuple(layers))

    @property
    def n_bits(self) -> int:
        """L, the number of code bits read."""
        return int(self.layers[0][0].shape[1])

    @property
    def n_classes(self) -> int:
        """K, the number of class scores."""
        return int(self.layers[-1][0].shape[0])

    @classmethod
    def from_code(cls, matrix: np.ndarray) -> "Decoder":
        """The one-layer decoder equal to Hamming decoding over ``matrix`` (K x L, 0/1)."""
        w = 2 * np.asarray(matrix, dtype=np.int64) - 1
        return cls(((w, np.floor_divide(-w.sum(axis=1), 2)),), DecoderSpec("learned"))

    def trace(self, bits: np.ndarray) -> list[np.ndarray]:
        """Every layer's integer output on ``bits`` [N, L] (0/1): per hidden layer its sums
        (int64 [N, H]) and its SIGN_BITS (0/1), then the scores (int64 [N, K])."""
        x, out = _bits(bits, self.n_bits), []
        for i, (w, bias) in enumerate(self.layers):
            x = x @ w.T + bias
            out.append(x)
            if i < len(self.layers) - 1:
                x = (x > 0).astype(np.int64)
                out.append(x)
        return out

    def scores(self, bits: np.ndarray) -> np.ndarray:
        """Class scores int64 [N, K] of code bits [N, L] (0/1)."""
        return self.trace(bits)[-1]

    def predict(self, bits: np.ndarray) -> np.ndarray:
        """Classes int64 [N]: the highest score, ties to the lowest index."""
        return np.argmax(self.scores(bits), axis=1).astype(np.int64)

    def node_names(self) -> list[str]:
        """The IR names of :meth:`trace`'s values, in order (the last is ``decoder.scores``)."""
        names = []
        for i in range(len(self.layers) - 1):
            names += [f"decoder.hidden_{i + 1}", f"decoder.hidden_{i + 1}.bits"]
        return names + ["decoder.scores"]

    def add_to_graph(self, b, bits_node: int, class_name: str = "class") -> int:
        """Append the decoder to a :class:`~heatq.ir.GraphBuilder` reading the code bits node
        ``bits_node`` (unsigned 0/1 vector [L]): DENSE (1-bit weights, frac 0) per layer,
        SIGN_BITS between layers, ARGMAX named ``class_name``; returns the ARGMAX's id."""
        from .ir import ArgmaxAttrs, DenseAttrs, Op, SignBitsAttrs

        node, names = bits_node, iter(self.node_names())
        for i, (w, bias) in enumerate(self.layers):
            node = b.add(Op.DENSE, DenseAttrs(w, bias, 1, 0), [node], next(names))
            if i < len(self.layers) - 1:
                node = b.add(Op.SIGN_BITS, SignBitsAttrs(), [node], next(names))
        return b.add(Op.ARGMAX, ArgmaxAttrs(), [node], class_name)

    def to_json(self) -> dict:
        """``{"spec", "layers": [{"w", "bias"}, ...]}`` (plain ints), as config.json keeps it."""
        return {"spec": self.spec.spec,
                "layers": [{"w": w.tolist(), "bias": bias.tolist()} for w, bias in self.layers]}

    @classmethod
    def from_json(cls, d: dict) -> "Decoder":
        """Inverse of :meth:`to_json`; ValueError / KeyError on a malformed entry."""
        return cls(tuple((np.array(l["w"]), np.array(l["bias"])) for l in d["layers"]),
                   parse_decoder(d["spec"]))


# ------------------------------------------------------------------------------ training


def _initial(spec: DecoderSpec, matrix: np.ndarray, rng: np.random.Generator) -> Decoder:
    """The start of training: Hamming decoding, or for ``learned:H`` the radius detectors
    (module docstring)."""
    ham = Decoder.from_code(matrix)
    if not spec.hidden:
        return ham
    m = np.asarray(matrix, dtype=np.int64)
    k, length = m.shape
    from .codes import _min_distance

    radius = max(0, (_min_distance(m) - 1) // 2)
    h = spec.hidden
    w1 = rng.choice([-1, 1], size=(h, length)).astype(np.int64)
    b1 = np.zeros(h, dtype=np.int64)
    n = min(h, k)
    # unit i fires iff hamming(bits, codeword i) <= radius: (2M-1).b - |M| + 1 + radius > 0
    w1[:n] = 2 * m[:n] - 1
    b1[:n] = -m[:n].sum(axis=1) + radius + 1
    w2 = -np.ones((k, h), dtype=np.int64)
    w2[np.arange(n), np.arange(n)] = 1
    return Decoder(((w1, b1), (w2, np.zeros(k, dtype=np.int64))), spec)


def _accuracy(dec: Decoder, bits: np.ndarray, y: np.ndarray) -> float:
    return float((dec.predict(bits) == y).mean()) if len(y) else 0.0


def fit_decoder(spec: DecoderSpec, bits: np.ndarray, y: np.ndarray, matrix: np.ndarray,
                select_bits: np.ndarray | None = None, select_y: np.ndarray | None = None,
                seed: int = 0, epochs: int = 60, lr: float = 0.02, batch: int = 256) -> Decoder:
    """Train a learned decoder on code bits ``bits`` [N, L] (0/1) with classes ``y`` [N];
    keep the epoch (the start included) whose integer decoder is most accurate on
    ``select_bits`` / ``select_y`` (default: the training bits).  Deterministic for a seed."""
    import torch
    import torch.nn.functional as F

    if spec.kind != "learned":
        raise ValueError(f"fit_decoder: {spec.spec} is not learned")
    bits = _bits(bits, np.asarray(matrix).shape[1])
    y = np.asarray(y, dtype=np.int64)
    sel_b = bits if select_bits is None else _bits(select_bits, bits.shape[1])
    sel_y = y if select_y is None else np.asarray(select_y, dtype=np.int64)
    rng = np.random.default_rng(seed)
    best = _initial(spec, matrix, rng)
    best_acc = _accuracy(best, sel_b, sel_y)
    gen = torch.Generator().manual_seed(seed)
    ws = [torch.tensor(w, dtype=torch.float32, requires_grad=True) for w, _ in best.layers]
    bs = [torch.tensor(b, dtype=torch.float32, requires_grad=True) for _, b in best.layers]
    log_t = torch.zeros((), requires_grad=True)  # temperature: scores are integers ~ +-L
    opt = torch.optim.Adam([*ws, *bs, log_t], lr=lr)
    x_all, y_all = torch.from_numpy(bits.astype(np.float32)), torch.from_numpy(y)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), batch):
            idx = perm[i:i + batch]
            scores = _ste_forward(x_all[idx], ws, bs)
            loss = F.cross_entropy(scores * log_t.exp(), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                for w in ws:
                    w.clamp_(-1.0, 1.0)
        dec = _frozen(ws, bs, spec)
        acc = _accuracy(dec, sel_b, sel_y)
        if acc > best_acc:
            best, best_acc = dec, acc
    return best


def _ste_forward(x, ws, bs):
    """Scores with sign(w) and round(b) forward, identity gradients (straight-through);
    hidden units Heaviside forward, a clipped-linear surrogate backward."""
    import torch

    for i, (w, b) in enumerate(zip(ws, bs)):
        wq = w + (torch.where(w >= 0, 1.0, -1.0) - w).detach()
        bq = b + (torch.round(b) - b).detach()
        x = x @ wq.T + bq
        if i < len(ws) - 1:
            scale = 1.0 / max(1.0, float(w.shape[1]) ** 0.5)
            soft = torch.clamp(0.5 + x * scale, 0.0, 1.0)
            x = soft + ((x > 0).float() - soft).detach()
    return x


def _frozen(ws, bs, spec: DecoderSpec) -> Decoder:
    """The integer decoder of the latent weights: signs (0 -> +1) and rounded biases."""
    layers = tuple((np.where(w.detach().numpy() >= 0, 1, -1).astype(np.int64),
                    np.round(b.detach().numpy()).astype(np.int64)) for w, b in zip(ws, bs))
    return Decoder(layers, spec)
