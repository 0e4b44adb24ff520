"""Layer modules in Icarus against numpy: random small products (signed / unsigned / odd input
ranges, constants, combinational and pipelined with small max-carry) and every requantizer
branch (floor shift, left shift, clip by bit tests and by comparators, wrap)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from heatq.ir import IntType, Overflow
from heatq.lower import lower_cmvm
from heatq_export.verilog_layers import RequantSpec, layer_module
from heatq_sim.vector_tb import vector_tb

from tools import needs

pytestmark = needs("iverilog")

def _requant_ref(v: np.ndarray, rq: RequantSpec) -> np.ndarray:
    v = v.astype(object)
    v = v >> rq.shift if rq.shift >= 0 else v * (1 << -rq.shift)
    if rq.overflow is Overflow.SATURATE:
        return np.minimum(np.maximum(v, rq.lo), rq.hi)
    return rq.lo + (v - rq.lo) % (rq.hi - rq.lo + 1)


def _run(tmp: Path, W, ranges, const, K, rq, seed, **kw) -> str:
    g = lower_cmvm(W, ranges, const, max_carry=K)
    in_types = [IntType.for_range(lo, hi) for lo, hi in ranges]
    offs = np.concatenate([[0], np.cumsum([t.width for t in in_types])]).astype(int)
    rng = np.random.default_rng(seed)
    X = np.array([[lo for lo, _ in ranges], [hi for _, hi in ranges]]
                 + [[int(rng.integers(lo, hi + 1)) for lo, hi in ranges] for _ in range(60)])
    v = X @ W.T + np.array(const)
    want = v if rq is None else _requant_ref(v, rq)
    if rq is None:
        ot = IntType.for_range(min(o.lo for o in g.outputs), max(o.hi for o in g.outputs))
    else:
        outs = _requant_ref(np.array([[o.lo for o in g.outputs], [o.hi for o in g.outputs]]), rq)
        ot = IntType.for_range(int(outs.min()), int(outs.max())) if rq.overflow is \
            Overflow.SATURATE else IntType.for_range(rq.lo, rq.hi)
    text, lat = layer_module("dut_m", g, in_types, offs[:-1].tolist(), int(offs[-1]), ot, rq, "t",
                             **kw)
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "dut_m.v").write_text(text)
    (tmp / "in.hex").write_text("".join(
        format(sum((int(a) & ((1 << t.width) - 1)) << int(o)
                   for a, t, o in zip(row, in_types, offs)), "x") + "\n" for row in X.tolist()))
    n = len(X)
    conn = ".clk(clk), .rst(1'b0), .in_valid(1'b1), .x(x), .out_valid(), .y(y)"
    (tmp / "tb.v").write_text(vector_tb("dut_m", conn, int(offs[-1]), len(const) * ot.width, n,
                                        n + lat, tmp / "in.hex", tmp / "out.txt"))
    r = subprocess.run(["iverilog", "-g2001", "-o", str(tmp / "a.vvp"), str(tmp / "tb.v"),
                        str(tmp / "dut_m.v")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    subprocess.run(["vvp", "-n", str(tmp / "a.vvp")], check=True, capture_output=True)
    lines = (tmp / "out.txt").read_text().split()[lat:lat + n]
    assert len(lines) == n
    w = ot.width
    for i, ln in enumerate(lines):
        val = int(ln, 16)
        got = []
        for j in range(len(const)):
            e = (val >> (j * w)) & ((1 << w) - 1)
            if ot.signed and e >> (w - 1):
                e -= 1 << w
            got.append(e)
        assert got == [int(a) for a in want[i]], (i, got, list(want[i]))
    return text


CASES = [
    # (n_out, n_in, wmax, ranges kind, K, requant)
    (4, 6, 7, "u4", None, None),
    (3, 5, 100, "s5", 3, None),
    (5, 4, 7, "mixed", 2, None),
    (2, 7, 31, "odd", None, None),
    (4, 6, 7, "u4", None, RequantSpec(3, 0, 15, Overflow.SATURATE)),
    (4, 6, 7, "s5", 4, RequantSpec(2, -8, 7, Overflow.SATURATE)),
    (3, 5, 7, "u4", None, RequantSpec(1, 3, 20, Overflow.SATURATE)),
    (3, 5, 7, "s5", 3, RequantSpec(-2, -100, 90, Overflow.SATURATE)),
    (3, 5, 7, "s5", None, RequantSpec(2, 0, 15, Overflow.WRAP)),
    (3, 5, 7, "u4", 2, RequantSpec(1, -8, 7, Overflow.WRAP)),
    (2, 3, 7, "u1", None, RequantSpec(9, 0, 3, Overflow.SATURATE)),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_layer_module_exact(tmp_path, case):
    n_out, n_in, wmax, kind, K, rq = CASES[case]
    rng = np.random.default_rng(case)
    W = rng.integers(-wmax, wmax + 1, size=(n_out, n_in))
    W[0, 0] = 0
    ranges = {"u4": [(0, 15)] * n_in, "s5": [(-16, 15)] * n_in, "u1": [(0, 1)] * n_in,
              "mixed": [(-3, 9), (0, 1), (-128, -5), (7, 7)][:n_in],
              "odd": [(-5, 300), (2, 11), (-1, 0), (0, 5), (-40, -39), (3, 3), (-7, 7)][:n_in]}[kind]
    const = rng.integers(-50, 51, size=n_out).tolist()
    _run(tmp_path, W, ranges, const, K, rq, case)


@pytest.mark.parametrize("logic_add", [3, 64])
@pytest.mark.parametrize("kind", ["u1", "s5", "odd"])
def test_gate_level_adders_exact_and_lint_clean(tmp_path, kind, logic_add):
    """Narrow adders written as ripple-carry gates (``logic_add``; 64: every adder, with
    subtractions, signed operands and pass-through low bits) still simulate exactly and
    lint clean."""
    rng = np.random.default_rng(7)
    n_in = 7
    W = rng.integers(-13, 14, size=(5, n_in))
    ranges = {"u1": [(0, 1)] * n_in, "s5": [(-16, 15)] * n_in,
              "odd": [(-5, 300), (2, 11), (-1, 0), (0, 5), (-40, -39), (0, 1), (-7, 7)]}[kind]
    const = [0, 3, -17, 0, 40]
    text = _run(tmp_path, W, ranges, const, None, None, 7, logic_add=logic_add)
    plain = _run(tmp_path / "plain", W, ranges, const, None, None, 7, logic_add=0)
    assert "_c1 = " not in plain
    if logic_add == 64 or kind == "u1":
        assert "_c1 = " in text
    if shutil.which("verilator"):
        r = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "dut_m",
                            str(tmp_path / "dut_m.v")], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
