"""C and HLS C++ targets against the reference interpreter: exact equality, every sample.

Each graph is compiled (C: gcc with -Werror and the undefined-behaviour and address
sanitizers, which abort on any report; HLS: g++ with hls4ml's ap_int headers) and run on
random vectors plus corner vectors (all lo, all hi, and inputs that maximise / minimise the
accumulators of the first weighted layer).  Skips only when the compiler is missing.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from heatq.errors import UserError
from heatq.ir import (
    Conv2dAttrs, DenseAttrs, FlattenAttrs, GraphBuilder, HammingDecodeAttrs, InputAttrs, IntType,
    MaxPool2dAttrs, Op, Overflow, RequantAttrs, Rounding, SignBitsAttrs, ThresholdAttrs, run,
)
from heatq_export.build import compare_with_interp, compile_target, run_executable
from heatq_export.clike import EmitError
from heatq_export.clike_ops import threshold_table
from heatq_export.emitters import EMITTERS, get_emitter

COMPILER = {"c": "gcc", "hls": "g++"}
N_RANDOM = 50
HU, FL, SAT, WRAP = Rounding.HALF_UP, Rounding.FLOOR, Overflow.SATURATE, Overflow.WRAP
BIG = (1 << 31) - 1
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
REFUSED = {Op.CMVM}  # C and HLS: lowered graphs are exported unlowered


def _w(rng, shape, bits):
    if bits == 1:
        return rng.choice([-1, 1], size=shape)
    b = (1 << (bits - 1)) - 1
    return rng.integers(-b, b + 1, size=shape)


def build_cnn(rng):
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


def build_mlp(rng):
    """Signed inputs, FLOOR, WRAP, left shifts (negative shift), 1-bit weights."""
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


def _sorted_thresholds(rng, c, t, lo, hi):
    """[c, t] sorted rows drawn from lo..hi with repeats (duplicate thresholds)."""
    return np.sort(rng.integers(lo, hi, size=(c, t), endpoint=True), axis=1)


def build_threshold(rng):
    """THRESHOLD on [C, H, W] and [C] arguments, signed and unsigned: duplicate thresholds,
    thresholds below / above the argument's range, int64 extremes, a constant result."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((3, 4, 4), -8, 7), name="in")
    t_in = [[-100, -8, -8, 0, 7, 8], [-3, -3, -3, -3, 2, 5], [I64_MIN, -9, 6, 7, 7, I64_MAX]]
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
    const = [[I64_MIN, -200, 10 ** 6], [-1000, -1000, 50], [I64_MIN, I64_MIN, I64_MAX],
             [-500, -1, 9]]
    th_const = g.add(Op.THRESHOLD, ThresholdAttrs(const), [th_acc], "th_const")
    th_one = g.add(Op.THRESHOLD, ThresholdAttrs([[1]] * 5), [th_vec], "th_one")
    return g.build([th_in, th_acc, th_u, th_vec, th_const, th_one], {"name": "thresholds"})


def build_wide(rng):
    """Accumulators past 32 bits, including exactly-64-bit signed and unsigned nodes."""
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
            (s, 0, -(1 << 63), (1 << 63) - 1, FL, WRAP), (u, 0, -(1 << 63), (1 << 63) - 1, FL, WRAP),
            (m, 9, -(1 << 35), 1 << 35, HU, SAT), (m, -20, -(1 << 40), 1 << 40, FL, SAT),
            (m, -30, -(1 << 31), (1 << 31) - 1, FL, WRAP), (m, -70, 0, 0, FL, SAT)]:
        outs.append(g.add(Op.REQUANT, RequantAttrs(sh, lo, hi, rnd, ov), [src]))
    # 64-bit arguments: an unsigned one beyond int64 and a signed one; the input itself
    # (its lo and hi are corner vectors, so equality with a threshold is hit)
    for src, t in [(u, [[0, 1 << 40, 1 << 62, I64_MAX], [-5, 3 * BIG, 3 * BIG, I64_MAX]]),
                   (s, [[I64_MIN, -1, 0, I64_MAX], [I64_MIN, I64_MIN, -(1 << 40), 1 << 62]]),
                   (x, [[-1, 0, 1, (1 << 32) - 1], [(1 << 32) - 2, (1 << 32) - 1, 1 << 32,
                                                    I64_MAX]])]:
        outs.append(g.add(Op.THRESHOLD, ThresholdAttrs(t), [src]))
    return g.build(outs)


def build_huge(rng):
    """A 73-bit accumulator: beyond C's integer types, fine for ap_int."""
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((4,), -(1 << 31), (1 << 31) - 1), name="in")
    d = g.add(Op.DENSE, DenseAttrs(_w(rng, (3, 4), 40), [0, 1, -1], 40), [x], "acc_wide")
    r = g.add(Op.REQUANT, RequantAttrs(50, -(1 << 15), (1 << 15) - 1, HU, SAT), [d])
    r2 = g.add(Op.REQUANT, RequantAttrs(7, -(1 << 62), (1 << 62) - 1, FL, WRAP), [d])
    t = g.add(Op.THRESHOLD, ThresholdAttrs([[I64_MIN, -5, 0, 0, 7, I64_MAX]] * 3), [d])
    t2 = g.add(Op.THRESHOLD, ThresholdAttrs([[-(1 << 31), 0, (1 << 31) - 1, 1 << 31]] * 4), [x])
    return g.build([d, r, r2, t, t2])


BUILDERS = {"cnn": build_cnn, "mlp": build_mlp, "wide": build_wide, "huge": build_huge,
            "threshold": build_threshold}
CASES = [(t, name) for t in ("c", "hls") for name in ("cnn", "mlp", "wide", "threshold")] + \
    [("hls", "huge")]


@pytest.fixture(scope="module")
def graphs():
    return {name: b(np.random.default_rng(100 + i)) for i, (name, b) in
            enumerate(BUILDERS.items())}


def make_vectors(graph, rng) -> np.ndarray:
    """Random vectors, all-lo, all-hi, and per-output-channel max / min vectors of every
    weighted layer fed by the input (x = hi where w > 0 else lo, and the reverse)."""
    inp = graph.nodes[0]
    lo, hi = inp.lo, inp.hi
    vecs = [np.full(inp.shape, lo, dtype=np.int64), np.full(inp.shape, hi, dtype=np.int64)]
    for n in graph.nodes:
        if n.op not in (Op.CONV2D, Op.DENSE) or n.args != (0,):
            continue
        for w in n.attrs.weight[:4]:
            base = rng.integers(lo, hi, size=inp.shape, endpoint=True)
            if n.op is Op.CONV2D:  # place the kernel at the centre output position
                k = w.shape[1]
                cy, cx = (inp.shape[1] - k) // 2, (inp.shape[2] - k) // 2
                sl = (slice(None), slice(cy, cy + k), slice(cx, cx + k))
            else:
                sl = (slice(None),)
            for sign in (1, -1):
                v = base.copy()
                v[sl] = np.where(sign * w > 0, hi, lo)
                vecs.append(v)
    rand = rng.integers(lo, hi, size=(N_RANDOM, *inp.shape), endpoint=True)
    return np.concatenate([np.stack(vecs), rand]).astype(np.int64)


@pytest.mark.parametrize("target,name", CASES)
def test_target_matches_interpreter(target, name, graphs, tmp_path):
    if shutil.which(COMPILER[target]) is None:
        pytest.skip(f"{COMPILER[target]} not found on PATH: cannot check the {target} target")
    graph = graphs[name]
    files = get_emitter(target).emit(graph)
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    exe = compile_target(tmp_path, target)
    x = make_vectors(graph, np.random.default_rng(7))
    got = run_executable(exe, x)  # shapes from io.json
    want = run(graph, x)
    for g_, w_ in zip(got, want):
        assert g_.shape == w_.shape
    assert compare_with_interp(graph, got, want) == 0
    if name == "cnn":  # the outputs are not trivially constant
        assert len(np.unique(want[2])) > 1 and len(np.unique(want[1])) > 1
    if name == "threshold":  # every count but the constant one varies
        assert [len(np.unique(w_)) > 1 for w_ in want] == [True] * 4 + [False, True]
        th_const = next(n for n in graph.nodes if n.name == "th_const")
        source = files["model.c" if target == "c" else "model.cpp"]
        assert f"th{th_const.id}[" not in source  # a constant count reads no table


@pytest.mark.parametrize("target", ["c", "hls"])
def test_emission_is_deterministic(target, graphs):
    for graph in graphs.values():
        if target == "c" and graph is graphs["huge"]:
            continue
        assert EMITTERS[target]().emit(graph) == EMITTERS[target]().emit(graph)


def test_c_rejects_nodes_wider_than_64_bits(graphs):
    with pytest.raises(EmitError, match=r"acc_wide.*-bit type.*64 bits"):
        get_emitter("c").emit(graphs["huge"])


def test_unknown_target_and_unsupported_op(graphs):
    with pytest.raises(UserError, match="known targets: c, hls"):
        get_emitter("vhdl")

    class NoPool(EMITTERS["c"]):
        supported_ops = EMITTERS["c"].supported_ops - {Op.MAXPOOL2D}

    with pytest.raises(EmitError, match=r"^c: op maxpool2d \(.*pool1.*\) is not supported$"):
        NoPool().emit(graphs["cnn"])


@pytest.mark.parametrize("target", ["c", "hls"])
def test_supported_ops_are_every_op_but_the_refused(target, graphs):
    em = EMITTERS[target]
    assert set(Op) == em.supported_ops | REFUSED and not em.supported_ops & REFUSED
    for op in em.supported_ops:  # each graph op used by the tests is rendered
        assert any(n.op is op for g in graphs.values() for n in g.nodes), op


@pytest.mark.parametrize("target", ["c", "hls"])
def test_lowered_graph_is_refused_in_one_line(target, graphs):
    from heatq.passes.lower import lower_products
    lowered = lower_products(graphs["mlp"])
    cmvm = next(n for n in lowered.nodes if n.op is Op.CMVM)
    with pytest.raises(EmitError) as e:
        get_emitter(target).emit(lowered)
    assert str(e.value) == f"{target}: op cmvm ({cmvm.label()}) is not supported"


def test_threshold_table_keeps_every_count():
    """Clamping to lo..hi+1 and dropping the constant columns changes no count (checked
    against #{t <= x} for every x of the range, by brute force)."""
    rng = np.random.default_rng(3)
    for _ in range(200):
        lo = int(rng.integers(-20, 20))
        hi = lo + int(rng.integers(0, 12))
        c, t = int(rng.integers(1, 4)), int(rng.integers(1, 6))
        th = np.sort(rng.integers(lo - 6, hi + 6, size=(c, t), endpoint=True), axis=1)
        tt = threshold_table(th, lo, hi)
        assert tt.ct.holds(lo, hi) and tt.ct.width <= IntType.for_range(lo, hi).width + 1
        for ch in range(c):
            row = tt.rows[ch]
            assert row == sorted(row) and all(tt.ct.holds(v, v) for v in row)
            for x in range(lo, hi + 1):
                assert tt.first + sum(v <= x for v in row) == int(np.sum(th[ch] <= x))


def test_compare_counts_mismatching_samples(graphs):
    g = graphs["mlp"]
    x = make_vectors(g, np.random.default_rng(1))
    want = run(g, x)
    got = [w.copy() for w in want]
    got[2][3, 0] += 1
    got[5][3, 1] += 1
    got[6][10, 0] += 1
    assert compare_with_interp(g, got, want) == 2
