"""The conformance corpus, :func:`corpus`, and the one corner-vector generator.

:func:`corpus` returns small, deterministic graphs that together use every op, every REQUANT
rounding x overflow mode (WRAP onto ``0..2**m-1``, onto a symmetric ``-2**(m-1)..2**(m-1)-1``
and onto an odd offset ``-3..4``), positive, zero and negative shifts, REQUANTs that can and
cannot fold into their product, signed and unsigned inputs of 1 to 32 bits, 16-bit inputs,
nodes of exactly 64 and of 73 bits, THRESHOLD (as an activation, with repeated, out-of-range
and int64-extreme thresholds, on 64- and 73-bit values), CMVM in each layout, a stride-2
CONV2D and a 3x3 MAXPOOL2D, ADD (two products of one input summed with alignment shifts, as
a split's recombination; arguments of different latencies, one repeated) on vectors and
feature maps, BIT (low, middle and sign bits, on the input and on a feature map feeding a
conv), ARGMAX (ties to the lowest index, on bits, signed scores, 64- and 73-bit values),
the seed CNN's shape and an MLP; HALF_EVEN's graphs are in
:mod:`heatq.ir.testing_half_even`.  Every target runs all of it
(``tests/test_targets.py``); a target that cannot take a graph refuses it with ``EmitError``
and the test lists that refusal.  A new op is added here too: the suite's coverage test fails
until some graph uses it.

:func:`corner_vectors` (from :mod:`heatq.ir.corners`) gives the inputs every exactness test
feeds.  The graph builders are public so a target's own tests can reuse one graph.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .corners import corner_vectors
from .testing_half_even import BUILDERS as HALF_EVEN_BUILDERS
from .testing_residual import BUILDERS as RESIDUAL_BUILDERS
from .graph import GraphBuilder, IntGraph
from .ops import (
    AddAttrs, ArgmaxAttrs, BitAttrs, CmvmAttrs, Conv2dAttrs, DenseAttrs, FlattenAttrs,
    HammingDecodeAttrs, InputAttrs, ConcatAttrs, MaxPool2dAttrs, Op, RequantAttrs, SignBitsAttrs,
    ThresholdAttrs,
)
from .types import Overflow, Rounding

HU, FL, SAT, WRAP = Rounding.HALF_UP, Rounding.FLOOR, Overflow.SATURATE, Overflow.WRAP
BIG = (1 << 31) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

__all__ = ["corpus", "corner_vectors"]


# ------------------------------------------------------------------------- corpus graphs
def _w(rng: np.random.Generator, shape, bits: int) -> np.ndarray:
    """Signed ``bits``-bit weights (the IR's symmetric narrow range; +-1 for one bit)."""
    if bits == 1:
        return rng.choice([-1, 1], size=shape)
    b = (1 << (bits - 1)) - 1
    return rng.integers(-b, b + 1, size=shape)


def small_cnn(rng: np.random.Generator) -> IntGraph:
    """The seed CNN's shape, smaller: 4x12x12 bits -> conv/relu/pool x2 -> dense 15 -> ECOC."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((4, 12, 12), 0, 1), name="in")
    c1 = g.add(Op.CONV2D, Conv2dAttrs(_w(rng, (8, 4, 5, 5), 4), rng.integers(-8, 9, 8), 4,
                                      padding=2), [x], "conv1")
    r1 = g.add(Op.REQUANT, RequantAttrs(2, 0, 15, HU, SAT), [c1], "relu1")
    p1 = g.add(Op.MAXPOOL2D, MaxPool2dAttrs(), [r1], "pool1")
    c2 = g.add(Op.CONV2D, Conv2dAttrs(_w(rng, (16, 8, 3, 3), 4), rng.integers(-40, 41, 16), 4,
                                      padding=1), [p1], "conv2")
    r2 = g.add(Op.REQUANT, RequantAttrs(5, 0, 15, HU, SAT), [c2], "relu2")
    p2 = g.add(Op.MAXPOOL2D, MaxPool2dAttrs(), [r2], "pool2")
    f = g.add(Op.FLATTEN, FlattenAttrs(), [p2], "flat")
    d = g.add(Op.DENSE, DenseAttrs(_w(rng, (15, 144), 4), rng.integers(-30, 31, 15), 4), [f],
              "fc")
    s = g.add(Op.SIGN_BITS, SignBitsAttrs(), [d], "bits")
    h = g.add(Op.HAMMING_DECODE, HammingDecodeAttrs(rng.integers(0, 2, (10, 15))), [s], "cls")
    return g.build([d, s, h], {"name": "cnn"})


def requant_fanout(rng: np.random.Generator) -> IntGraph:
    """Signed inputs; REQUANTs that share their product (none can fold a rounding constant
    into it): FLOOR and HALF_UP, SATURATE and WRAP, right and left shifts, a one-value range;
    1-bit weights; a product that is also a graph output."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((12,), -50, 50), name="in")
    d1 = g.add(Op.DENSE, DenseAttrs(_w(rng, (10, 12), 6), rng.integers(-99, 99, 10), 6), [x])
    r1 = g.add(Op.REQUANT, RequantAttrs(3, -16, 15, FL, WRAP), [d1], "wrap_floor")
    d2 = g.add(Op.DENSE, DenseAttrs(_w(rng, (8, 10), 1), rng.integers(-5, 6, 8), 1), [r1])
    r2 = g.add(Op.REQUANT, RequantAttrs(-2, -100, 100, FL, SAT), [d2], "shl_sat")
    r3 = g.add(Op.REQUANT, RequantAttrs(-3, -128, 127, FL, WRAP), [d2], "shl_wrap")
    r4 = g.add(Op.REQUANT, RequantAttrs(-1, 3, 3, FL, SAT), [d2], "shl_point")
    d3 = g.add(Op.DENSE, DenseAttrs(_w(rng, (6, 8), 3), rng.integers(-3, 4, 6), 3), [r2])
    r5 = g.add(Op.REQUANT, RequantAttrs(4, 0, 7, HU, WRAP), [d3], "hu_wrap")
    r6 = g.add(Op.REQUANT, RequantAttrs(0, -20, 20, FL, SAT), [d3], "clip")
    r7 = g.add(Op.REQUANT, RequantAttrs(6, -2, 1, HU, SAT), [d3], "hu_sat")
    return g.build([r1, r2, r3, r4, r5, r6, r7, d3])


def wide64(rng: np.random.Generator) -> IntGraph:
    """Accumulators past 32 bits, including exactly-64-bit signed and unsigned nodes; shifts
    of 0 to 70 bits either way, WRAP onto 64 bits."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((2,), 0, (1 << 32) - 1), name="in")
    u = g.add(Op.DENSE, DenseAttrs([[BIG, BIG], [3, BIG]], [0, 5], 32), [x], "u64")
    s = g.add(Op.DENSE, DenseAttrs([[BIG, -BIG], [-BIG, 7]], [-9, 2], 32), [x], "s64")
    m = g.add(Op.DENSE, DenseAttrs(_w(rng, (3, 2), 16), [1, -1, 0], 16), [x], "s_mid")
    outs = [u, s, m]
    for src, sh, lo, hi, rnd, ov in [
            (u, 33, 0, 1 << 20, HU, SAT), (u, 64, 0, 10, HU, SAT), (u, 5, 0, 255, FL, WRAP),
            (s, 40, -(1 << 20), 1 << 20, HU, SAT), (s, 64, -3, 3, HU, SAT),
            (s, 70, -3, 3, FL, SAT), (s, 17, -(1 << 15), (1 << 15) - 1, FL, WRAP),
            (s, 0, INT64_MIN, INT64_MAX, FL, WRAP), (u, 0, INT64_MIN, INT64_MAX, FL, WRAP),
            (m, 9, -(1 << 35), 1 << 35, HU, SAT), (m, -20, -(1 << 40), 1 << 40, FL, SAT),
            (m, -30, -(1 << 31), (1 << 31) - 1, FL, WRAP), (m, -70, 0, 0, FL, SAT)]:
        outs.append(g.add(Op.REQUANT, RequantAttrs(sh, lo, hi, rnd, ov), [src]))
    # 64-bit arguments: an unsigned one beyond int64 and a signed one; the input itself
    # (its lo and hi are corner vectors, so equality with a threshold is hit)
    for src, t in [(u, [[0, 1 << 40, 1 << 62, INT64_MAX], [-5, 3 * BIG, 3 * BIG, INT64_MAX]]),
                   (s, [[INT64_MIN, -1, 0, INT64_MAX],
                        [INT64_MIN, INT64_MIN, -(1 << 40), 1 << 62]]),
                   (x, [[-1, 0, 1, (1 << 32) - 1], [(1 << 32) - 2, (1 << 32) - 1, 1 << 32,
                                                    INT64_MAX]])]:
        outs.append(g.add(Op.THRESHOLD, ThresholdAttrs(t), [src]))
    return g.build(outs)


def acc73(rng: np.random.Generator) -> IntGraph:
    """A 73-bit accumulator: beyond C's integer types (the C target refuses it), fine for
    ap_int and Verilog; an ARGMAX of it (a signed 73-bit compare)."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((4,), -(1 << 31), (1 << 31) - 1), name="in")
    d = g.add(Op.DENSE, DenseAttrs(_w(rng, (3, 4), 40), [0, 1, -1], 40), [x], "acc_wide")
    r = g.add(Op.REQUANT, RequantAttrs(50, -(1 << 15), (1 << 15) - 1, HU, SAT), [d])
    r2 = g.add(Op.REQUANT, RequantAttrs(7, -(1 << 62), (1 << 62) - 1, FL, WRAP), [d])
    t = g.add(Op.THRESHOLD, ThresholdAttrs([[INT64_MIN, -5, 0, 0, 7, INT64_MAX]] * 3), [d])
    t2 = g.add(Op.THRESHOLD, ThresholdAttrs([[-(1 << 31), 0, (1 << 31) - 1, 1 << 31]] * 4), [x])
    am = g.add(Op.ARGMAX, ArgmaxAttrs(), [d], "acc_max")
    return g.build([d, r, r2, t, t2, am])


def _sorted_thresholds(rng, c, t, lo, hi):
    """[c, t] sorted rows drawn from lo..hi with repeats (duplicate thresholds)."""
    return np.sort(rng.integers(lo, hi, size=(c, t), endpoint=True), axis=1)


def threshold_mix(rng: np.random.Generator) -> IntGraph:
    """THRESHOLD on [C, H, W] and [C] arguments, signed and unsigned: duplicate thresholds,
    thresholds below / above the argument's range, int64 extremes, a constant result."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((3, 4, 4), -8, 7), name="in")
    t_in = [[-100, -8, -8, 0, 7, 8], [-3, -3, -3, -3, 2, 5], [INT64_MIN, -9, 6, 7, 7, INT64_MAX]]
    th_in = g.add(Op.THRESHOLD, ThresholdAttrs(t_in), [x], "th_in")
    c1 = g.add(Op.CONV2D, Conv2dAttrs(_w(rng, (4, 3, 3, 3), 4), rng.integers(-8, 9, 4), 4,
                                      padding=1), [x], "conv")
    th_acc = g.add(Op.THRESHOLD, ThresholdAttrs(_sorted_thresholds(rng, 4, 7, -120, 120)), [c1],
                   "th_acc")
    r1 = g.add(Op.REQUANT, RequantAttrs(3, 0, 15, HU, SAT), [c1], "relu")
    th_u = g.add(Op.THRESHOLD, ThresholdAttrs(_sorted_thresholds(rng, 4, 3, -2, 17)), [r1], "th_u")
    f = g.add(Op.FLATTEN, FlattenAttrs(), [r1], "flat")
    d = g.add(Op.DENSE, DenseAttrs(_w(rng, (5, 64), 3), rng.integers(-9, 10, 5), 3), [f], "fc")
    th_vec = g.add(Op.THRESHOLD, ThresholdAttrs(_sorted_thresholds(rng, 5, 9, -60, 60)), [d],
                   "th_vec")
    # th_acc is in 0..7: each row counts its two thresholds <= 0, never the third (> 7)
    const = [[INT64_MIN, -200, 10 ** 6], [-1000, -1000, 50], [INT64_MIN, INT64_MIN, INT64_MAX],
             [-500, -1, 9]]
    th_const = g.add(Op.THRESHOLD, ThresholdAttrs(const), [th_acc], "th_const")
    th_one = g.add(Op.THRESHOLD, ThresholdAttrs([[1]] * 5), [th_vec], "th_one")
    return g.build([th_in, th_acc, th_u, th_vec, th_const, th_one], {"name": "thresholds"})


def requant_chain(rng: np.random.Generator, overflow: Overflow) -> IntGraph:
    """Signed input; five DENSE -> REQUANT stages, each REQUANT the only consumer of its
    product (so a lowering can fold its rounding constant): (HALF_UP, 3), (FLOOR, 2),
    (HALF_UP, 0), (HALF_UP, -1), (FLOOR, -2) onto ranges starting at 0, symmetric, an odd
    offset (-3..4), and (WRAP) a 1-bit signed -1..0 or (SATURATE) a range without 0."""
    if overflow is WRAP:
        ranges = [(0, 15), (-8, 7), (-1, 0), (-3, 4), (-16, 15)]
    else:
        ranges = [(0, 15), (-8, 7), (-3, 4), (-20, 20), (5, 9)]
    modes = [(HU, 3), (FL, 2), (HU, 0), (HU, -1), (FL, -2)]
    sizes = [10, 8, 6, 6, 5, 4]
    g = GraphBuilder()
    cur = g.add(Op.INPUT, InputAttrs((sizes[0],), -40, 40), name="in")
    outs = []
    for i, ((rnd, shift), (lo, hi)) in enumerate(zip(modes, ranges)):
        d = g.add(Op.DENSE, DenseAttrs(_w(rng, (sizes[i + 1], sizes[i]), 3),
                                       rng.integers(-9, 10, sizes[i + 1]), 3), [cur], f"fc{i}")
        cur = g.add(Op.REQUANT, RequantAttrs(shift, lo, hi, rnd, overflow), [d], f"rq{i}")
        outs.append(cur)
    return g.build(outs)


def requant_pointwise(rng: np.random.Generator) -> IntGraph:
    """REQUANTs that are not fed by a product: on the [C, H, W] input (HALF_UP, right shift),
    after a max pool (FLOOR, left shift, WRAP) and after a FLATTEN (HALF_UP, WRAP onto 0..3)."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((3, 4, 4), -8, 7), name="in")
    r1 = g.add(Op.REQUANT, RequantAttrs(1, -4, 3, HU, SAT), [x], "rq_in")
    p = g.add(Op.MAXPOOL2D, MaxPool2dAttrs(), [r1], "pool")
    r2 = g.add(Op.REQUANT, RequantAttrs(-1, -8, 7, FL, WRAP), [p], "rq_pool")
    f = g.add(Op.FLATTEN, FlattenAttrs(), [r2], "flat")
    r3 = g.add(Op.REQUANT, RequantAttrs(2, 0, 3, HU, WRAP), [f], "rq_flat")
    return g.build([f, r3])


def bits1(rng: np.random.Generator) -> IntGraph:
    """A 1-bit signed input (-1..0), 1-bit weights, REQUANT onto 1-bit signed (WRAP) and
    unsigned (SATURATE) ranges, SIGN_BITS of a 1-bit signed value, HAMMING_DECODE with a
    repeated codebook row (ties)."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((16,), -1, 0), name="in")
    d = g.add(Op.DENSE, DenseAttrs(_w(rng, (8, 16), 1), rng.integers(-2, 3, 8), 1), [x], "fc")
    s = g.add(Op.SIGN_BITS, SignBitsAttrs(), [d], "bits")
    book = rng.integers(0, 2, (6, 8))
    book[4] = book[1]  # a duplicate row: every tie between them goes to row 1
    h = g.add(Op.HAMMING_DECODE, HammingDecodeAttrs(book), [s], "cls")
    r1 = g.add(Op.REQUANT, RequantAttrs(1, -1, 0, FL, WRAP), [d], "rq_s1")
    r2 = g.add(Op.REQUANT, RequantAttrs(2, 0, 1, HU, SAT), [d], "rq_u1")
    s1 = g.add(Op.SIGN_BITS, SignBitsAttrs(), [r1], "bits_s1")
    return g.build([s, h, r1, r2, s1])


def s16_dense(rng: np.random.Generator) -> IntGraph:
    """A 16-bit signed input and 16-bit weights (a 35-bit accumulator), REQUANT back to 16 bits
    (SATURATE), then a 16-bit WRAP."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((6,), -(1 << 15), (1 << 15) - 1), name="in")
    d1 = g.add(Op.DENSE, DenseAttrs(_w(rng, (5, 6), 16), rng.integers(-999, 1000, 5), 16), [x],
               "fc1")
    r1 = g.add(Op.REQUANT, RequantAttrs(16, -(1 << 15), (1 << 15) - 1, HU, SAT), [d1], "rq1")
    d2 = g.add(Op.DENSE, DenseAttrs(_w(rng, (4, 5), 4), rng.integers(-9, 10, 4), 4), [r1], "fc2")
    r2 = g.add(Op.REQUANT, RequantAttrs(3, -(1 << 15), (1 << 15) - 1, FL, WRAP), [d2], "rq2")
    return g.build([r1, r2])


def u16_conv(rng: np.random.Generator) -> IntGraph:
    """A 16-bit unsigned [C, H, W] input through CONV2D -> REQUANT (16-bit unsigned) -> MAXPOOL
    -> FLATTEN -> DENSE -> SIGN_BITS."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((2, 6, 6), 0, (1 << 16) - 1), name="in")
    c = g.add(Op.CONV2D, Conv2dAttrs(_w(rng, (3, 2, 3, 3), 3), rng.integers(-9, 10, 3), 3,
                                     padding=1), [x], "conv")
    r = g.add(Op.REQUANT, RequantAttrs(2, 0, (1 << 16) - 1, HU, SAT), [c], "relu")
    p = g.add(Op.MAXPOOL2D, MaxPool2dAttrs(), [r], "pool")
    f = g.add(Op.FLATTEN, FlattenAttrs(), [p], "flat")
    d = g.add(Op.DENSE, DenseAttrs(_w(rng, (4, 27), 4), rng.integers(-99, 100, 4), 4), [f], "fc")
    s = g.add(Op.SIGN_BITS, SignBitsAttrs(), [d], "bits")
    return g.build([f, d, s])


def conv_stride2(rng: np.random.Generator) -> IntGraph:
    """CONV2D with stride 2 and padding 1 on a signed input, then REQUANT (FLOOR, WRAP)."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((2, 7, 7), -4, 3), name="in")
    c = g.add(Op.CONV2D, Conv2dAttrs(_w(rng, (3, 2, 3, 3), 3), rng.integers(-5, 6, 3), 3,
                                     stride=2, padding=1), [x], "conv")
    r = g.add(Op.REQUANT, RequantAttrs(1, -8, 7, FL, WRAP), [c], "rq")
    f = g.add(Op.FLATTEN, FlattenAttrs(), [r], "flat")
    return g.build([f])


def pool3(rng: np.random.Generator) -> IntGraph:
    """MAXPOOL2D 3x3 with stride 2 (floor mode drops the last row and column) on a signed input."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((2, 8, 8), -5, 9), name="in")
    p = g.add(Op.MAXPOOL2D, MaxPool2dAttrs(3, 2), [x], "pool")
    f = g.add(Op.FLATTEN, FlattenAttrs(), [p], "flat")
    d = g.add(Op.DENSE, DenseAttrs(_w(rng, (3, 18), 2), rng.integers(-3, 4, 3), 2), [f], "fc")
    return g.build([f, d])


def threshold_map(rng: np.random.Generator) -> IntGraph:
    """THRESHOLD as an activation: per channel of a signed [C, H, W] input (thresholds inside
    the range, repeated, at both bounds, beyond both), its counts fed to a CONV2D, and a
    THRESHOLD of a DENSE's vector."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((3, 6, 6), -8, 7), name="in")
    t1 = g.add(Op.THRESHOLD, ThresholdAttrs([[-3, 0, 4], [-8, -8, 7], [-20, 10, 30]]), [x],
               "thr_map")
    c = g.add(Op.CONV2D, Conv2dAttrs(_w(rng, (4, 3, 3, 3), 3), rng.integers(-5, 6, 4), 3,
                                     padding=1), [t1], "conv")
    r = g.add(Op.REQUANT, RequantAttrs(1, 0, 15, HU, SAT), [c], "relu")
    p = g.add(Op.MAXPOOL2D, MaxPool2dAttrs(), [r], "pool")
    f = g.add(Op.FLATTEN, FlattenAttrs(), [p], "flat")
    d = g.add(Op.DENSE, DenseAttrs(_w(rng, (5, 36), 3), rng.integers(-9, 10, 5), 3), [f], "fc")
    lo, hi = g.nodes[d].lo, g.nodes[d].hi
    rows = np.sort(rng.integers(lo // 2, hi // 2 + 1, size=(5, 4)), axis=1)
    t2 = g.add(Op.THRESHOLD, ThresholdAttrs(rows), [d], "thr_vec")
    return g.build([f, t2])


def cmvm_layouts(rng: np.random.Generator) -> IntGraph:
    """CMVM nodes built directly (adder graphs from ``lower_cmvm``) in each layout: "conv2d"
    (3x3, zero padding 1), "pointwise" over a feature map, "dense" with constants."""
    from heatq.lower.cmvm import lower_cmvm  # the adder-graph builder

    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((2, 5, 5), -3, 4), name="in")
    ag = lower_cmvm(_w(rng, (4, 18), 3), [(-3, 4)] * 18, rng.integers(-5, 6, 4))
    c = g.add(Op.CMVM, CmvmAttrs(ag, "conv2d", kernel=3, padding=1), [x], "cmvm_conv")
    r = g.add(Op.REQUANT, RequantAttrs(2, -8, 7, FL, SAT), [c], "rq")
    ag = lower_cmvm(_w(rng, (3, 4), 4), [(-8, 7)] * 4)
    pw = g.add(Op.CMVM, CmvmAttrs(ag, "pointwise"), [r], "cmvm_pw")
    f = g.add(Op.FLATTEN, FlattenAttrs(), [pw], "flat")
    n = g.nodes[f]
    ag = lower_cmvm(_w(rng, (5, n.size), 2), [(n.lo, n.hi)] * n.size, [7, -7, 0, 1, -1])
    d = g.add(Op.CMVM, CmvmAttrs(ag, "dense"), [f], "cmvm_fc")
    return g.build([f, d])


def add_vec(rng: np.random.Generator) -> IntGraph:
    """ADD of vectors: two products of one signed input summed with shifts (0, 3), the input,
    a REQUANT and a BIT of it in one ADD (arguments of different depths), a repeated argument,
    an ADD whose node type does not hold a partial sum; BIT of the sum's sign bit and of the
    REQUANT's bits 0 and 3."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((6,), -8, 7), name="in")
    lo = g.add(Op.DENSE, DenseAttrs(_w(rng, (6, 6), 2), rng.integers(-3, 4, 6), 2), [x], "fc_lo")
    hi = g.add(Op.DENSE, DenseAttrs(_w(rng, (6, 6), 3), rng.integers(-3, 4, 6), 3), [x], "fc_hi")
    s = g.add(Op.ADD, AddAttrs((0, 3)), [lo, hi], "sum")
    r = g.add(Op.REQUANT, RequantAttrs(0, 0, 15, FL, SAT), [s], "relu")
    b3 = g.add(Op.BIT, BitAttrs(3), [r], "bit3")
    b0 = g.add(Op.BIT, BitAttrs(0), [r], "bit0")
    mix = g.add(Op.ADD, AddAttrs((1, 0, 2, 4)), [x, r, b3, r], "mix")
    sign = g.add(Op.BIT, BitAttrs(g.nodes[s].type.width - 1), [s], "sum_sign")
    # 0..16 plus -16..-15 is -16..1 (s5), which does not hold the first term's 16
    pos = g.add(Op.REQUANT, RequantAttrs(0, 0, 16, FL, SAT), [s], "pos")
    neg = g.add(Op.REQUANT, RequantAttrs(0, -16, -15, FL, SAT), [s], "neg")
    gap = g.add(Op.ADD, AddAttrs((0, 0)), [pos, neg], "gap")
    return g.build([s, mix, b0, b3, sign, gap])


def add_map(rng: np.random.Generator) -> IntGraph:
    """ADD of [C, H, W] feature maps: two convolutions of one unsigned input summed with
    shifts (2, 0), requantized; BIT of the input and of the result."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((2, 5, 5), 0, 3), name="in")
    c1 = g.add(Op.CONV2D, Conv2dAttrs(_w(rng, (3, 2, 3, 3), 3), rng.integers(-5, 6, 3), 3,
                                      padding=1), [x], "conv_hi")
    c2 = g.add(Op.CONV2D, Conv2dAttrs(_w(rng, (3, 2, 3, 3), 2), rng.integers(-2, 3, 3), 2,
                                      padding=1), [x], "conv_lo")
    s = g.add(Op.ADD, AddAttrs((2, 0)), [c1, c2], "sum_map")
    r = g.add(Op.REQUANT, RequantAttrs(3, -8, 7, HU, SAT), [s], "rq")
    b = g.add(Op.BIT, BitAttrs(3), [r], "rq_sign")
    bx = g.add(Op.BIT, BitAttrs(1), [x], "in_bit1")
    return g.build([g.add(Op.FLATTEN, FlattenAttrs(), [b], "flat"),
                    g.add(Op.FLATTEN, FlattenAttrs(), [bx], "flat_in")])


def bit_map(rng: np.random.Generator) -> IntGraph:
    """BIT as a bit-plane split of an unsigned [C, H, W] input, feeding a CONV2D (the streamed
    elementwise unit in front of a conv window)."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((2, 6, 6), 0, 7), name="in")
    b = g.add(Op.BIT, BitAttrs(2), [x], "plane2")
    c = g.add(Op.CONV2D, Conv2dAttrs(_w(rng, (3, 2, 3, 3), 3), rng.integers(-3, 4, 3), 3,
                                     padding=1), [b], "conv")
    r = g.add(Op.REQUANT, RequantAttrs(1, 0, 7, HU, SAT), [c], "relu")
    f = g.add(Op.FLATTEN, FlattenAttrs(), [r], "flat")
    return g.build([f])


def concat_mix(rng: np.random.Generator) -> IntGraph:
    """CONCAT of streamed units of one pooled map (BIT planes and a THRESHOLD, one repeated)
    read by a padded CONV2D; CONCAT of vectors of different depths and types (a signed REQUANT
    and a BIT of it) read by a DENSE and also a graph output."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((2, 8, 8), 0, 1), name="in")
    c1 = g.add(Op.CONV2D, Conv2dAttrs(_w(rng, (3, 2, 3, 3), 3), rng.integers(-3, 4, 3), 3,
                                      padding=1), [x], "conv1")
    r1 = g.add(Op.REQUANT, RequantAttrs(1, 0, 3, HU, SAT), [c1], "relu1")
    p = g.add(Op.MAXPOOL2D, MaxPool2dAttrs(2, 2), [r1], "pool")
    b0 = g.add(Op.BIT, BitAttrs(0), [p], "pool_b0")
    b1 = g.add(Op.BIT, BitAttrs(1), [p], "pool_b1")
    th = g.add(Op.THRESHOLD, ThresholdAttrs(np.full((3, 1), 2, np.int64)), [p], "pool_t2")
    cat = g.add(Op.CONCAT, ConcatAttrs(4), [b0, b1, b0, th], "units")
    c2 = g.add(Op.CONV2D, Conv2dAttrs(_w(rng, (4, 12, 3, 3), 2), rng.integers(-2, 3, 4), 2,
                                      padding=1), [cat], "conv2")
    r2 = g.add(Op.REQUANT, RequantAttrs(0, -4, 3, FL, SAT), [c2], "rq2")
    f = g.add(Op.FLATTEN, FlattenAttrs(), [r2], "flat")
    fb = g.add(Op.BIT, BitAttrs(2), [f], "flat_sign")
    vc = g.add(Op.CONCAT, ConcatAttrs(3), [f, fb, f], "vcat")
    d = g.add(Op.DENSE, DenseAttrs(_w(rng, (5, 192), 2), rng.integers(-3, 4, 5), 2), [vc], "fc")
    return g.build([d, vc])


def argmax_mix(rng: np.random.Generator) -> IntGraph:
    """ARGMAX (ties to the lowest index) of the input bits themselves; of a learned decoder's
    scores (DENSE +-1 with a bias -> SIGN_BITS -> DENSE +-1 with bias ``floor(-sum(w) / 2)``,
    two identical rows: every tie between them goes to the first); of signed 4-bit-weight
    scores with negative biases (negative maxima); of a saturated signed REQUANT of those
    (many ties at its bounds)."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((8,), 0, 1), name="in")
    in_max = g.add(Op.ARGMAX, ArgmaxAttrs(), [x], "in_max")
    h = g.add(Op.DENSE, DenseAttrs(_w(rng, (6, 8), 1), rng.integers(-2, 3, 6), 1), [x],
              "hidden")
    hb = g.add(Op.SIGN_BITS, SignBitsAttrs(), [h], "hidden_bits")
    w = _w(rng, (5, 6), 1)
    w[3] = w[1]  # a duplicate row: equal scores
    sc = g.add(Op.DENSE, DenseAttrs(w, -w.sum(axis=1) // 2, 1), [hb], "scores")
    cls = g.add(Op.ARGMAX, ArgmaxAttrs(), [sc], "cls")
    s = g.add(Op.DENSE, DenseAttrs(_w(rng, (7, 8), 4), rng.integers(-20, 0, 7), 4), [x],
              "s_scores")
    s_cls = g.add(Op.ARGMAX, ArgmaxAttrs(), [s], "s_cls")
    r = g.add(Op.REQUANT, RequantAttrs(1, -2, 1, FL, SAT), [s], "s_rq")
    r_cls = g.add(Op.ARGMAX, ArgmaxAttrs(), [r], "rq_cls")
    return g.build([in_max, sc, cls, s, s_cls, r_cls])


def argmax_wide(rng: np.random.Generator) -> IntGraph:
    """ARGMAX of exactly-64-bit values: an unsigned node beyond int64 and a signed one (the
    C-like targets compare uint64_t / int64_t), each with two identical rows (ties)."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((2,), 0, (1 << 32) - 1), name="in")
    u = g.add(Op.DENSE, DenseAttrs([[3, BIG], [BIG, BIG], [BIG, BIG], [BIG, 1]], [5, 0, 0, 9],
                                   32), [x], "u64")
    s = g.add(Op.DENSE, DenseAttrs([[-BIG, 7], [BIG, -BIG], [-BIG, 5], [BIG, -BIG]],
                                   [2, -9, 0, -9], 32), [x], "s64")
    u_cls = g.add(Op.ARGMAX, ArgmaxAttrs(), [u], "u_cls")
    s_cls = g.add(Op.ARGMAX, ArgmaxAttrs(), [s], "s_cls")
    return g.build([u_cls, s_cls])


def _networks() -> dict[str, Callable[[], IntGraph]]:
    from heatq_sim.graphs import mlp_graph, seed_cnn_graph  # the networks' generators

    return {"seed_cnn": lambda: seed_cnn_graph(0, channels=(4, 4, 8, 8, 16), size=16),
            "mlp": lambda: mlp_graph(1, n_in=16, hidden=8)}


_BUILDERS: dict[str, Callable[[np.random.Generator], IntGraph]] = {
    "cnn12": small_cnn, "requant_fanout": requant_fanout, "wide64": wide64, "acc73": acc73,
    "threshold_mix": threshold_mix,
    "requant_chain_sat": lambda rng: requant_chain(rng, SAT),
    "requant_chain_wrap": lambda rng: requant_chain(rng, WRAP),
    "requant_pointwise": requant_pointwise, "bits1": bits1, "s16_dense": s16_dense,
    "u16_conv": u16_conv, "conv_stride2": conv_stride2, "pool3": pool3,
    "threshold_map": threshold_map, "cmvm_layouts": cmvm_layouts, "add_vec": add_vec,
    "add_map": add_map, "bit_map": bit_map, "concat_mix": concat_mix,
    **HALF_EVEN_BUILDERS,  # appended: the graphs above keep their seeds
    "argmax_mix": argmax_mix, "argmax_wide": argmax_wide,
    **RESIDUAL_BUILDERS,  # appended: the graphs above keep their seeds
}


def corpus() -> dict[str, IntGraph]:
    """The conformance corpus, ``{name: graph}`` in a fixed order; graph ``i`` of the builder
    table is drawn from ``default_rng(100 + i)``, so every call returns equal graphs."""
    out = {name: build(np.random.default_rng(100 + i))
           for i, (name, build) in enumerate(_BUILDERS.items())}
    out.update({name: build() for name, build in _networks().items()})
    return out
