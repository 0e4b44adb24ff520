"""The corpus graphs of REQUANT's ``Rounding.HALF_EVEN`` (part of :func:`heatq.ir.testing.corpus`).

HALF_EVEN's increment ``2**(s-1) - 1 + bit_s(v)`` depends on the data, so every target renders
it (no lowering folds it into a bias).  These graphs reach its cases: exact ties of both signs
(shift 1 ties every odd value, shift 2 every value ``2 mod 4``), shifts 1 to 3 and beyond
(33, 40, 63 and 64 bits on 64-bit accumulators, where the C target cannot widen), a shift equal
to the argument's width (signed: always 0; unsigned: rounds ``2**(w-1)`` down to 0), zero and
negative shifts (no rounding), SATURATE and WRAP, signed and unsigned arguments, REQUANTs after
a CONV2D, a DENSE, a MAXPOOL2D and a FLATTEN (not fed by a product), and a product read by
several REQUANTs.
"""

from __future__ import annotations

import numpy as np

from .graph import GraphBuilder, IntGraph
from .ops import (
    Conv2dAttrs, DenseAttrs, FlattenAttrs, InputAttrs, MaxPool2dAttrs, Op, RequantAttrs,
)
from .types import Overflow, Rounding

HE, SAT, WRAP = Rounding.HALF_EVEN, Overflow.SATURATE, Overflow.WRAP
BIG = (1 << 31) - 1


def _w(rng: np.random.Generator, shape, bits: int) -> np.ndarray:
    b = (1 << (bits - 1)) - 1
    return rng.integers(-b, b + 1, size=shape)


def half_even_map(rng: np.random.Generator) -> IntGraph:
    """A signed [2, 6, 6] input through CONV2D -> REQUANT (HALF_EVEN, shift 1, SATURATE onto
    -16..15: every odd sum is a tie) -> MAXPOOL2D -> REQUANT (HALF_EVEN, shift 3, WRAP onto
    -2..1: ties at +-4 and +-12, 12..15 round to 2 and wrap) -> FLATTEN -> REQUANT (HALF_EVEN,
    shift 1, SATURATE onto -1..1)."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((2, 6, 6), -4, 3), name="in")
    c = g.add(Op.CONV2D, Conv2dAttrs(_w(rng, (3, 2, 3, 3), 2), rng.integers(-2, 3, 3), 2,
                                     padding=1), [x], "conv")
    r1 = g.add(Op.REQUANT, RequantAttrs(1, -16, 15, HE, SAT), [c], "he_conv")
    p = g.add(Op.MAXPOOL2D, MaxPool2dAttrs(), [r1], "pool")
    r2 = g.add(Op.REQUANT, RequantAttrs(3, -2, 1, HE, WRAP), [p], "he_pool")
    f = g.add(Op.FLATTEN, FlattenAttrs(), [r2], "flat")
    r3 = g.add(Op.REQUANT, RequantAttrs(1, -1, 1, HE, SAT), [f], "he_flat")
    return g.build([f, r3], {"name": "half_even_map"})


def half_even_vec(rng: np.random.Generator) -> IntGraph:
    """A signed vector through DENSE -> REQUANT (HALF_EVEN, shift 3, SATURATE) -> DENSE read
    by four REQUANTs (shift 1 WRAP onto -8..7, shift 4 onto 0..15, shift 0 and shift -1:
    no rounding); an unsigned REQUANT (shift 1) of an unsigned one; a shift equal to the
    argument's width."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((8,), -50, 50), name="in")
    d1 = g.add(Op.DENSE, DenseAttrs(_w(rng, (6, 8), 3), rng.integers(-9, 10, 6), 3), [x], "fc1")
    r1 = g.add(Op.REQUANT, RequantAttrs(3, -20, 20, HE, SAT), [d1], "he_s3")
    d2 = g.add(Op.DENSE, DenseAttrs(_w(rng, (5, 6), 3), rng.integers(-5, 6, 5), 3), [r1], "fc2")
    r2 = g.add(Op.REQUANT, RequantAttrs(1, -8, 7, HE, WRAP), [d2], "he_s1_wrap")
    r3 = g.add(Op.REQUANT, RequantAttrs(4, 0, 15, HE, SAT), [d2], "he_s4_relu")
    r4 = g.add(Op.REQUANT, RequantAttrs(0, -30, 30, HE, SAT), [d2], "he_s0")
    r5 = g.add(Op.REQUANT, RequantAttrs(-1, -64, 63, HE, WRAP), [d2], "he_shl")
    r6 = g.add(Op.REQUANT, RequantAttrs(1, 0, 7, HE, SAT), [r3], "he_unsigned")
    width = g.nodes[d2].type.width
    r7 = g.add(Op.REQUANT, RequantAttrs(width, -1, 1, HE, SAT), [d2], "he_s_width")
    return g.build([r2, r3, r4, r5, r6, r7])


def half_even_wide(rng: np.random.Generator) -> IntGraph:
    """64-bit accumulators (signed and unsigned, as in ``wide64``) requantized HALF_EVEN by
    1, 33, 40, 63 and 64 bits, SATURATE and WRAP."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((2,), 0, (1 << 32) - 1), name="in")
    u = g.add(Op.DENSE, DenseAttrs([[BIG, BIG], [3, BIG]], [0, 5], 32), [x], "u64")
    s = g.add(Op.DENSE, DenseAttrs([[BIG, -BIG], [-BIG, 7]], [-9, 2], 32), [x], "s64")
    outs = []
    for src, sh, lo, hi, ov in [
            (u, 1, 0, 255, WRAP), (u, 33, 0, 1 << 40, SAT), (u, 63, 0, 3, SAT),
            (u, 64, 0, 3, SAT), (s, 1, -(1 << 15), (1 << 15) - 1, WRAP),
            (s, 40, -(1 << 30), 1 << 30, SAT), (s, 63, -3, 3, SAT), (s, 64, -3, 3, SAT)]:
        outs.append(g.add(Op.REQUANT, RequantAttrs(sh, lo, hi, HE, ov), [src]))
    return g.build(outs)


BUILDERS = {"half_even_map": half_even_map, "half_even_vec": half_even_vec,
            "half_even_wide": half_even_wide}

__all__ = ["BUILDERS", "half_even_map", "half_even_vec", "half_even_wide"]
