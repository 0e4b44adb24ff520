"""The folded matrix-vector unit (export/rtl/mvau.py) in Icarus against numpy: ``requant(W @ x
+ c)`` for lane shapes that divide the matrix and shapes that do not, signed and unsigned
inputs of 1..4 bits, 2..4-bit weights, the binary XNOR-popcount lanes, requantizers that clip,
wrap or are absent; inputs back to back at exactly ``cycles`` spacing and with gaps, the
``out_valid`` cycle and ``y`` holding between results checked every cycle; Verilator lint and
deterministic text."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from heatq.ir import IntType, Overflow
from heatq.ir.requant import requant_array
from heatq_export.rtl.mvau import (
    is_binary, mvau_cost, mvau_cycles, mvau_netlist, mvau_shapes,
)
from heatq_export.rtl.verilog import print_module
from heatq_export.verilog_layers import RequantSpec

from tools import check_folded_module, needs



def _acc_types(W, c, it: IntType) -> list[IntType]:
    lo = c + np.minimum(W * it.min, W * it.max).sum(axis=1)
    hi = c + np.maximum(W * it.min, W * it.max).sum(axis=1)
    return [IntType.for_range(int(a), int(b)) for a, b in zip(lo, hi)]


def _out_type(types, rq) -> IntType:
    lo, hi = min(t.min for t in types), max(t.max for t in types)
    if rq is None:
        return IntType.for_range(lo, hi)
    if rq.overflow is Overflow.WRAP:
        return IntType.for_range(rq.lo, rq.hi)
    ends = requant_array(np.array([lo, hi]), rq)
    return IntType.for_range(int(ends.min()), int(ends.max()))


def _schedule(cycles: int, n: int, rng) -> list[int]:
    """in_valid cycles: after the reset cycle, back to back at exactly ``cycles`` spacing,
    then with random gaps."""
    t, out = 2, []
    for k in range(n):
        out.append(t)
        t += cycles + (int(rng.integers(0, 3)) if k >= n // 2 else 0)
    return out


def simulate(tmp: Path, W, c, it: IntType, simd: int, pe: int, rq, n_vec: int = 12,
             seed: int = 0, arith: str = "adders", known: bool = False) -> str:
    """Build, simulate and check every cycle; returns the module text."""
    W, c = np.asarray(W, dtype=np.int64), np.asarray(c, dtype=np.int64)
    n_out, n_in = W.shape
    rng = np.random.default_rng(seed)
    acc = _acc_types(W, c, it)
    ot = _out_type(acc, rq)
    offs = [i * it.width for i in range(n_in)]
    nx = n_in * it.width
    ranges = [(t.min, t.max) for t in acc] if known else None
    m, lat, cycles = mvau_netlist("dut_m", W, c, it, offs, nx, ot, acc, rq, ["test"], simd,
                                  pe, arith=arith, acc_ranges=ranges)
    assert cycles == mvau_cycles(n_in, n_out, simd, pe) and lat == cycles + 2
    text = print_module(m)
    X = np.array([[it.min] * n_in, [it.max] * n_in]
                 + [rng.integers(it.min, it.max + 1, n_in).tolist() for _ in range(n_vec - 2)])
    v = X @ W.T + c
    want = v if rq is None else requant_array(v, rq)
    starts = _schedule(cycles, n_vec, rng)
    check_folded_module(tmp, text, lat, X, want, offs, it.width, nx, ot, starts, rng)
    return text


def _weights(rng, n_out, n_in, wbits, signed=True):
    lo, hi = (-(1 << (wbits - 1)), (1 << (wbits - 1)) - 1) if signed else (0, (1 << wbits) - 1)
    return rng.integers(lo, hi + 1, size=(n_out, n_in))


CASES = [  # (n_out, n_in, in_type, wbits, simd, pe, requant)
    (5, 7, IntType(False, 4), 3, 3, 2, RequantSpec(2, 0, 15, Overflow.SATURATE)),
    (6, 8, IntType(True, 3), 4, 4, 3, None),
    (4, 9, IntType(False, 1), 2, 2, 4, RequantSpec(1, -8, 7, Overflow.WRAP)),
    (7, 5, IntType(True, 2), 3, 5, 7, RequantSpec(1, -5, 9, Overflow.SATURATE)),
    (3, 6, IntType(False, 2), 4, 1, 1, RequantSpec(-1, -100, 90, Overflow.SATURATE)),
    (9, 11, IntType(True, 4), 2, 4, 2, RequantSpec(3, -8, 7, Overflow.SATURATE)),
    (4, 10, IntType(True, 1), 3, 3, 3, None),
]


@pytest.mark.parametrize("case", range(len(CASES)))
@needs("iverilog")
def test_mvau_exact(tmp_path, case):
    n_out, n_in, it, wb, simd, pe, rq = CASES[case]
    rng = np.random.default_rng(case)
    W = _weights(rng, n_out, n_in, wb)
    W[0, :] = 0 if case == 1 else W[0, :]  # an all-zero output row
    c = rng.integers(-20, 21, size=n_out)
    assert not is_binary(W, it)
    simulate(tmp_path, W, c, it, simd, pe, rq, seed=case, known=case % 2 == 1)


@needs("iverilog")
def test_mvau_heap_lanes_exact(tmp_path):
    """``arith="heap"``: the lane sums as bit heaps (heap_sums) are exact too."""
    rng = np.random.default_rng(11)
    W = _weights(rng, 5, 7, 4)
    simulate(tmp_path, W, rng.integers(-9, 9, 5), IntType(False, 3), 3, 2,
             RequantSpec(2, 0, 7, Overflow.SATURATE), arith="heap")


@pytest.mark.parametrize("signed,simd,pe,rq", [
    (False, 4, 2, RequantSpec(1, 0, 3, Overflow.SATURATE)),
    (False, 13, 9, None),
    (True, 5, 4, RequantSpec(0, -4, 3, Overflow.WRAP)),
])
@needs("iverilog")
def test_mvau_binary_xnor_exact(tmp_path, signed, simd, pe, rq):
    rng = np.random.default_rng(simd)
    W = rng.choice([-1, 1], size=(9, 13))
    it = IntType(signed, 1)
    assert is_binary(W, it)
    text = simulate(tmp_path, W, rng.integers(-3, 4, size=9), it, simd, pe, rq)
    assert "XNOR" in text and (" ^ " in text)


@needs("verilator")
def test_mvau_lint_clean_and_deterministic(tmp_path):
    """Verilator -Wall is clean for a general, a binary and a one-cycle unit, and the text
    is byte-identical when built twice."""
    rng = np.random.default_rng(3)
    cases = [(rng.integers(-8, 8, (5, 7)), IntType(False, 4), 3, 2),
             (rng.choice([-1, 1], (6, 9)), IntType(False, 1), 4, 4),
             (rng.integers(-2, 2, (3, 4)), IntType(True, 2), 4, 3)]
    for n, (W, it, simd, pe) in enumerate(cases):
        c = np.arange(W.shape[0])
        acc = _acc_types(W, c, it)
        rq = RequantSpec(1, 0, 7, Overflow.SATURATE)
        offs = [i * it.width for i in range(W.shape[1])]

        def text():
            m, _, _ = mvau_netlist("dut_m", W, c, it, offs, len(offs) * it.width,
                                   IntType(False, 3), acc, rq, ["lint"], simd, pe)
            return print_module(m)
        t = text()
        assert t == text()
        assert "w_rom_p0" in t or n == 2
        f = tmp_path / f"c{n}" / "dut_m.v"
        f.parent.mkdir()
        f.write_text(t)
        r = subprocess.run(["verilator", "--lint-only", "-Wall", str(f)], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_mvau_cycles_shapes_and_errors():
    assert mvau_cycles(288, 64, 32, 8) == 8 * 9 and mvau_cycles(7, 5, 3, 2) == 9
    for n_in, n_out, budget in [(288, 64, 9), (288, 64, 100), (64, 15, 1024), (7, 5, 1)]:
        shapes = mvau_shapes(n_in, n_out, budget)
        assert shapes and all(mvau_cycles(n_in, n_out, s, p) <= budget for s, p in shapes)
        lanes = [s * p for s, p in shapes]
        assert lanes == sorted(lanes)
        # no shape with fewer lanes meets the budget
        best = min(s * p for s in range(1, n_in + 1) for p in range(1, n_out + 1)
                   if mvau_cycles(n_in, n_out, s, p) <= budget) if n_in * n_out < 400 else None
        assert best is None or lanes[0] == best
    assert (12, 16) in mvau_shapes(288, 64, 100) or (24, 8) in mvau_shapes(288, 64, 100)
    with pytest.raises(ValueError, match="lanes"):
        mvau_cycles(7, 5, 8, 1)
    W = np.ones((2, 3), dtype=np.int64)
    with pytest.raises(ValueError, match="offsets"):
        mvau_netlist("m", W, [0, 0], IntType(False, 2), [0, 2], 6, IntType(False, 3),
                     [IntType(False, 3)] * 2, None, [], 1, 1)
    with pytest.raises(ValueError, match="outside"):
        mvau_netlist("m", W, [0, 0], IntType(False, 2), [0, 2, 5], 6, IntType(False, 3),
                     [IntType(False, 3)] * 2, None, [], 1, 1)


@pytest.mark.slow
@needs("yosys")
def test_mvau_cost_tracks_yosys(tmp_path):
    """mvau_cost within 25 % of yosys synth_xilinx LUT+CARRY4 on two small units (its
    calibration error: mean 7 %, worst 17 %)."""
    from heatq_export.estimate import estimate_module
    rng = np.random.default_rng(5)
    W = rng.integers(-8, 8, (16, 32))
    it = IntType(False, 4)
    c = rng.integers(-10, 10, 16)
    acc = _acc_types(W, c, it)
    for simd, pe in [(4, 2), (8, 4)]:
        m, _, _ = mvau_netlist("cost_m", W, c, it, [4 * i for i in range(32)], 128,
                               IntType(False, 4), acc, RequantSpec(2, 0, 15, Overflow.SATURATE),
                               [], simd, pe)
        f = tmp_path / f"cost_{simd}x{pe}.v"
        f.write_text(print_module(m))
        got = estimate_module([f], "cost_m", ("xilinx",), progress=False)["lut_carry"]
        est = mvau_cost(W, it, simd, pe)
        assert abs(est / got - 1) < 0.25, (simd, pe, est, got)
