"""Seeded random integer graphs shaped like heatq's networks, for benches and tests.

``seed_cnn_graph``: the seed CNN (4 binary input planes 28x28; conv5 / conv3 x3 with 'same'
padding, channels 4->8->16->32->64, 4-bit weights; 4-bit ReLU requant; maxpool 2 each;
fc 64 -> 15; sign bits; Hamming decode against a 10 x 15 Hadamard code).
``mlp_graph``: INPUT [n] -> DENSE -> REQUANT -> DENSE -> SIGN_BITS -> HAMMING_DECODE.
``resnet20_graph``: ResNet-20's shape (3x3 stem conv, 3 stages x ``blocks`` basic blocks of
two 3x3 convs with residual ADDs -- identity shortcuts, or a 1x1 stride-2 projection where a
stage halves the raster --, GLOBAL_AVGPOOL, fc, sign bits, Hamming decode), the layer names
of :mod:`heatq.resnet` (``stem.conv``, ``stage2.block1.shortcut``, ``pool``, ``fc.lin``).
Requant shifts are chosen from calibration data so that activations spread over 0..15.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from heatq.codes import parse_output_code
from heatq.ir import (
    Conv2dAttrs, DenseAttrs, FlattenAttrs, GraphBuilder, HammingDecodeAttrs, InputAttrs,
    IntGraph, MaxPool2dAttrs, Op, Overflow, RequantAttrs, Rounding, SignBitsAttrs, run,
)
from heatq.ir.ops import GlobalAvgPoolAttrs
from heatq.ir.residual import aligned_add
from heatq.ir.rules import weight_bound


def _weights(rng: np.random.Generator, shape, w_bits: int, p_zero: float) -> np.ndarray:
    b = weight_bound(w_bits)
    w = rng.integers(-b, b + 1, size=shape)
    w[rng.random(shape) < p_zero] = 0
    return w.astype(np.int64)


def _prefix_values(builder: GraphBuilder, node: int, x: np.ndarray) -> np.ndarray:
    return run(builder.build([node]), x)[0]


def _shift_for(acc: np.ndarray, act_hi: int) -> int:
    pos = acc[acc > 0]
    p = float(np.percentile(pos, 95)) if pos.size else 1.0
    return max(1, int(np.ceil(np.log2(max(p, 1.0) / (0.8 * act_hi)))))


def _requant(b: GraphBuilder, rng, node: int, calib: np.ndarray, act_bits: int, name: str):
    """Pick a shift from calibration values of ``node``, then add bias-free REQUANT."""
    hi = (1 << act_bits) - 1
    s = _shift_for(_prefix_values(b, node, calib), hi)
    return b.add(Op.REQUANT, RequantAttrs(s, 0, hi, Rounding.HALF_UP, Overflow.SATURATE),
                 [node], name)


def _codebook(n_classes: int, n_bits: int, rng) -> np.ndarray:
    if n_bits == 15 and n_classes <= 16:
        return np.asarray(parse_output_code(f"hadamard:{n_bits}", n_classes).matrix, np.uint8)
    return np.asarray(parse_output_code(f"random:{n_bits}", n_classes, seed=int(rng.integers(1 << 30))).matrix, np.uint8)


def seed_cnn_graph(seed: int = 0, channels: Sequence[int] = (4, 8, 16, 32, 64),
                   kernels: Sequence[int] = (5, 3, 3, 3), size: int = 28, n_bits: int = 15,
                   n_classes: int = 10, w_bits: int = 4, act_bits: int = 4,
                   p_zero: float = 0.1, n_calib: int = 64) -> IntGraph:
    """The seed CNN with seeded random weights (see the module docstring).  Outputs:
    ``[fc logits, sign bits, class]``."""
    rng = np.random.default_rng(seed)
    calib = rng.integers(0, 2, size=(n_calib, channels[0], size, size))
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((channels[0], size, size), 0, 1), [], "input")
    for i, k in enumerate(kernels):
        cin, cout = channels[i], channels[i + 1]
        w = _weights(rng, (cout, cin, k, k), w_bits, p_zero)
        bias = rng.integers(-8, 9, size=cout) * (1 << i)
        c = b.add(Op.CONV2D, Conv2dAttrs(w, bias, w_bits, 0, 1, k // 2), [x], f"conv{i + 1}")
        r = _requant(b, rng, c, calib, act_bits, f"relu{i + 1}")
        x = b.add(Op.MAXPOOL2D, MaxPool2dAttrs(2, 2), [r], f"pool{i + 1}")
    f = b.add(Op.FLATTEN, FlattenAttrs(), [x], "flatten")
    n_feat = b.nodes[f].shape[0]
    w = _weights(rng, (n_bits, n_feat), w_bits, p_zero)
    bias = rng.integers(-16, 17, size=n_bits)
    fc = b.add(Op.DENSE, DenseAttrs(w, bias, w_bits), [f], "fc")
    bits = b.add(Op.SIGN_BITS, SignBitsAttrs(), [fc], "bits")
    cls = b.add(Op.HAMMING_DECODE, HammingDecodeAttrs(_codebook(n_classes, n_bits, rng)),
                [bits], "decode")
    return b.build([fc, bits, cls], {"source": f"heatq_sim.graphs.seed_cnn_graph(seed={seed})"})


def mlp_graph(seed: int = 0, n_in: int = 64, hidden: int = 32, n_bits: int = 15,
              n_classes: int = 10, in_lo: int = 0, in_hi: int = 15, w_bits: int = 4,
              act_bits: int = 4, p_zero: float = 0.1, n_calib: int = 256) -> IntGraph:
    """A dense-only network: INPUT [n_in] -> DENSE -> REQUANT -> DENSE -> SIGN_BITS ->
    HAMMING_DECODE.  Outputs: ``[logits, sign bits, class]``."""
    rng = np.random.default_rng(seed)
    calib = rng.integers(in_lo, in_hi + 1, size=(n_calib, n_in))
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((n_in,), in_lo, in_hi), [], "input")
    w1 = _weights(rng, (hidden, n_in), w_bits, p_zero)
    d1 = b.add(Op.DENSE, DenseAttrs(w1, rng.integers(-32, 33, size=hidden), w_bits), [x], "fc1")
    r1 = _requant(b, rng, d1, calib, act_bits, "relu1")
    w2 = _weights(rng, (n_bits, hidden), w_bits, p_zero)
    d2 = b.add(Op.DENSE, DenseAttrs(w2, rng.integers(-16, 17, size=n_bits), w_bits), [r1], "fc2")
    bits = b.add(Op.SIGN_BITS, SignBitsAttrs(), [d2], "bits")
    cls = b.add(Op.HAMMING_DECODE, HammingDecodeAttrs(_codebook(n_classes, n_bits, rng)),
                [bits], "decode")
    return b.build([d2, bits, cls], {"source": f"heatq_sim.graphs.mlp_graph(seed={seed})"})


def resnet20_graph(seed: int = 0, in_channels: int = 12, size: int = 32,
                   widths: Sequence[int] = (16, 32, 64), blocks: int = 3, n_bits: int = 15,
                   n_classes: int = 10, w_bits: int = 4, act_bits: int = 4, w_frac: int = 3,
                   p_zero: float = 0.1, n_calib: int = 8) -> IntGraph:
    """ResNet-20's shape with seeded random weights (see the module docstring): input
    ``in_channels`` bit planes ``size x size`` (0..1); every conv ``w_bits``-bit weights at
    binary point ``w_frac``; every activation an unsigned ``act_bits``-bit REQUANT (HALF_UP,
    SATURATE) whose shift comes from calibration; each block's sum
    :func:`heatq.ir.residual.aligned_add` (``<block>.add``).  ``size / 4`` must be a power of
    two (the pool's count).  Outputs: ``[fc logits, sign bits, class]``."""
    rng = np.random.default_rng(seed)
    calib = rng.integers(0, 2, size=(n_calib, in_channels, size, size))
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((in_channels, size, size), 0, 1), [], "input")

    def conv(arg: int, c_out: int, k: int, stride: int, name: str) -> int:
        c_in = b.nodes[arg].shape[0]
        w = _weights(rng, (c_out, c_in, k, k), w_bits, p_zero)
        bias = rng.integers(-8, 9, size=c_out)
        return b.add(Op.CONV2D, Conv2dAttrs(w, bias, w_bits, w_frac, stride, k // 2), [arg],
                     name)

    x = _requant(b, rng, conv(x, widths[0], 3, 1, "stem.conv"), calib, act_bits, "stem.act")
    for si, width in enumerate(widths):
        for bi in range(blocks):
            nm = f"stage{si + 1}.block{bi + 1}"
            stride = 2 if si > 0 and bi == 0 else 1
            h = _requant(b, rng, conv(x, width, 3, stride, f"{nm}.conv1"), calib, act_bits,
                         f"{nm}.act1")
            main = conv(h, width, 3, 1, f"{nm}.conv2")
            short = x if stride == 1 else conv(x, width, 1, stride, f"{nm}.shortcut")
            x = _requant(b, rng, aligned_add(b, [main, short], f"{nm}.add"), calib, act_bits,
                         f"{nm}.act2")
    pool = b.add(Op.GLOBAL_AVGPOOL, GlobalAvgPoolAttrs(), [x], "pool")
    w = _weights(rng, (n_bits, widths[-1]), w_bits, p_zero)
    fc = b.add(Op.DENSE, DenseAttrs(w, rng.integers(-16, 17, size=n_bits), w_bits, w_frac),
               [pool], "fc.lin")
    bits = b.add(Op.SIGN_BITS, SignBitsAttrs(), [fc], "bits")
    cls = b.add(Op.HAMMING_DECODE, HammingDecodeAttrs(_codebook(n_classes, n_bits, rng)),
                [bits], "decode")
    return b.build([fc, bits, cls], {"source": f"heatq_sim.graphs.resnet20_graph(seed={seed})"})
