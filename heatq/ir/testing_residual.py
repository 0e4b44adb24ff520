"""The conformance corpus's residual-network graphs (ResNet's ops: residual ADD with
binary-point alignment, stride-2 convolution, 1x1 stride-2 projection shortcut,
GLOBAL_AVGPOOL), appended to :func:`heatq.ir.testing.corpus`."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .graph import GraphBuilder, IntGraph
from .ops import (
    Conv2dAttrs, DenseAttrs, GlobalAvgPoolAttrs, HammingDecodeAttrs, InputAttrs, MaxPool2dAttrs,
    Op, RequantAttrs, SignBitsAttrs,
)
from .residual import aligned_add
from .types import Overflow, Rounding

HU, FL, SAT = Rounding.HALF_UP, Rounding.FLOOR, Overflow.SATURATE


def _w(rng: np.random.Generator, shape, bits: int) -> np.ndarray:
    b = (1 << (bits - 1)) - 1
    return rng.integers(-b, b + 1, size=shape)


def _conv(g, rng, x, c_in, c_out, k, bits, w_frac, name, stride=1):
    attrs = Conv2dAttrs(_w(rng, (c_out, c_in, k, k), bits), rng.integers(-20, 21, c_out), bits,
                        w_frac, stride, k // 2)
    return g.add(Op.CONV2D, attrs, [x], name)


def _relu(g, x, a_bits, frac, name):
    """REQUANT to unsigned ``a_bits`` at binary point ``frac`` (HALF_UP, SATURATE)."""
    shift = g.nodes[x].type.frac - frac
    return g.add(Op.REQUANT, RequantAttrs(shift, 0, (1 << a_bits) - 1, HU, SAT), [x], name)


def residual(rng: np.random.Generator) -> IntGraph:
    """A small ResNet: 6x8x8 bit planes -> stem conv -> an identity block (two 3x3 convs, the
    shortcut aligned by an exact left shift and added) -> a downsampling block (3x3 stride-2
    conv, 1x1 stride-2 projection shortcut, main path coarser than the shortcut) ->
    GLOBAL_AVGPOOL (4x4) -> dense 12 -> SIGN_BITS -> HAMMING_DECODE."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((6, 8, 8), 0, 1), name="in")
    stem = _relu(g, _conv(g, rng, x, 6, 8, 3, 4, 2, "stem"), 3, 1, "stem_act")
    c1 = _relu(g, _conv(g, rng, stem, 8, 8, 3, 3, 2, "b1_conv1"), 3, 1, "b1_act1")
    c2 = _conv(g, rng, c1, 8, 8, 3, 4, 3, "b1_conv2")
    b1 = _relu(g, aligned_add(g, [c2, stem], "b1_add"), 3, 2, "b1_act2")
    d1 = _relu(g, _conv(g, rng, b1, 8, 12, 3, 3, 1, "b2_conv1", stride=2), 2, 1, "b2_act1")
    d2 = _conv(g, rng, d1, 12, 12, 3, 3, 0, "b2_conv2")
    sc = _conv(g, rng, b1, 8, 12, 1, 3, 2, "b2_shortcut", stride=2)
    b2 = _relu(g, aligned_add(g, [d2, sc], "b2_add"), 3, 1, "b2_act2")
    pool = g.add(Op.GLOBAL_AVGPOOL, GlobalAvgPoolAttrs(), [b2], "pool")
    fc = g.add(Op.DENSE, DenseAttrs(_w(rng, (12, 12), 4), rng.integers(-30, 31, 12), 4, 2),
               [pool], "fc")
    bits = g.add(Op.SIGN_BITS, SignBitsAttrs(), [fc], "bits")
    cls = g.add(Op.HAMMING_DECODE, HammingDecodeAttrs(rng.integers(0, 2, (10, 12))), [bits],
                "cls")
    return g.build([fc, bits, cls], {"name": "residual"})


def gap_mix(rng: np.random.Generator) -> IntGraph:
    """GLOBAL_AVGPOOL of a signed non-square input at frac 1 (2x4: count 8) and of its 1x2
    max-pooled map (count 2); a dense layer on a pool."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((3, 2, 4), -9, 6, 1), name="in")
    p_in = g.add(Op.GLOBAL_AVGPOOL, GlobalAvgPoolAttrs(), [x], "pool_in")
    mp = g.add(Op.MAXPOOL2D, MaxPool2dAttrs(), [x], "maxpool")
    p_mp = g.add(Op.GLOBAL_AVGPOOL, GlobalAvgPoolAttrs(), [mp], "pool_mp")
    fc = g.add(Op.DENSE, DenseAttrs(_w(rng, (5, 3), 3), rng.integers(-9, 10, 5), 3), [p_in], "fc")
    return g.build([p_in, p_mp, fc], {"name": "gap_mix"})


BUILDERS: dict[str, Callable[[np.random.Generator], IntGraph]] = {
    "residual": residual, "gap_mix": gap_mix,
}
