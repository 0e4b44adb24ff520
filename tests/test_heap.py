"""Bit-heap arithmetic (export/rtl/heap.py, export/rtl/cost.py, ``--arith heap|auto``):

* the heap plan evaluated in pure Python against numpy (hypothesis: random matrices,
  signed / unsigned / odd input ranges, constants; both ways of keeping sums);
* layer modules built with ``arith="heap"`` in Icarus against numpy (the vector bench of
  tests/test_verilog_layers.py): signed / unsigned inputs of 1..8 bits, many negative
  weights, +-1 weights on 1-bit inputs, an all-zero row, a constant-only output, requant;
  ``verilator --lint-only -Wall`` clean; byte-identical on rerun;
* binary layers map to counters only (no carry-propagate adder before the last one);
* ``--arith heap`` with ``--max-carry`` is refused in one line; ``auto`` picks by the cost
  model;
* small networks through the conformance path (Icarus) with ``--arith heap`` / ``auto``
  (an MLP; a small CNN under ``-m slow``).
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatq.ir import Overflow
from heatq.lower import lower_cmvm
from heatq_export.base import EmitError
from heatq_export.rtl import netlist as nl
from heatq_export.rtl.cost import adders_cost, best_arith, heap_cost
from heatq_export.rtl.heap import heap_plan, evaluate_plan, heap_sums
from heatq_export.verilog_layers import RequantSpec, resolve_arith

from test_verilog_layers import _run
from tools import require_tool


def _ranges(kind: str, n: int, bits: int) -> list[tuple[int, int]]:
    if kind == "u":
        return [(0, (1 << bits) - 1)] * n
    return [(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)] * n


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 7), st.integers(1, 8), st.sampled_from("us"),
       st.integers(0, 2 ** 31), st.sampled_from(["none", "shared"]))
def test_plan_matches_numpy(n_out, n_in, bits, kind, seed, keep):
    rng = np.random.default_rng(seed)
    if kind == "s" and bits == 1:
        bits = 2
    ranges = _ranges(kind, n_in, bits)
    if seed % 3 == 0:  # odd ranges, constant inputs
        ranges = [(int(a), int(a + b)) for a, b in zip(rng.integers(-40, 40, n_in),
                                                         rng.integers(0, 60, n_in))]
    W = rng.integers(-40, 41, size=(n_out, n_in))
    W[rng.random(W.shape) < 0.3] = 0
    c = rng.integers(-100, 101, size=n_out)
    g = lower_cmvm(W, ranges, c)
    X = np.array([[lo for lo, _ in ranges], [hi for _, hi in ranges]]
                 + [[int(rng.integers(lo, hi + 1)) for lo, hi in ranges] for _ in range(30)])
    got = np.array(evaluate_plan(heap_plan(g, keep), X.tolist()), dtype=object)
    assert np.array_equal(got, (X @ W.T + c).astype(object))


CASES = [  # (n_out, n_in, weights, input kind, bits, requant)
    (4, 6, "signed", "u", 1, None),
    (3, 5, "negative", "s", 2, None),
    (4, 6, "signed", "u", 4, RequantSpec(3, 0, 15, Overflow.SATURATE)),
    (3, 7, "negative", "s", 5, None),
    (2, 5, "signed", "u", 8, RequantSpec(2, -8, 7, Overflow.WRAP)),
    (3, 4, "negative", "s", 8, None),
    (5, 12, "binary", "u", 1, None),
]


def _weights(kind: str, n_out: int, n_in: int, rng) -> np.ndarray:
    if kind == "binary":
        return np.where(rng.random((n_out, n_in)) < 0.5, -1, 1)
    W = rng.integers(-13, 14, size=(n_out, n_in))
    if kind == "negative":
        W = -np.abs(W)
        W[0, 0] = 9
    W[-1] = 0  # an all-zero row (its output is the constant alone)
    return W


@pytest.mark.parametrize("case", range(len(CASES)))
def test_heap_layer_exact_in_icarus(tmp_path, case):
    require_tool("iverilog")
    n_out, n_in, wk, ik, bits, rq = CASES[case]
    rng = np.random.default_rng(100 + case)
    W = _weights(wk, n_out, n_in, rng)
    const = rng.integers(-30, 31, size=n_out).tolist()
    const[-1] = 0 if case % 2 else 17  # all-zero row: output 0, or the constant alone
    text = _run(tmp_path, W, _ranges(ik, n_in, bits), const, None, rq, case, arith="heap")
    assert "arithmetic: bit heap" in text and "_t1_k" in text
    again = _run(tmp_path / "again", W, _ranges(ik, n_in, bits), const, None, rq, case,
                 arith="heap")
    assert again == text  # deterministic
    if shutil.which("verilator") and case in (0, 3, 6):
        r = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "dut_m",
                            str(tmp_path / "dut_m.v")], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_binary_layer_is_counters_only():
    """+-1 weights on 1-bit inputs: popcount of x / ~x bits minus a constant; every sum is
    counters plus one final carry-propagate adder, nothing adds inverted bits before it."""
    rng = np.random.default_rng(3)
    W = np.where(rng.random((6, 40)) < 0.5, -1, 1)
    g = lower_cmvm(W, [(0, 1)] * 40, None)
    for keep in ("none", "shared"):
        plan = heap_plan(g, keep)
        assert keep == "shared" or not plan.shared
        for p in plan.outputs:
            assert p.counters and all(len(c.ins) <= 6 for c in p.counters)
    m = nl.Module("t")
    x = m.input("x", 40)
    sums = heap_sums(m, g, [lambda i=i: nl.bit(x, i) for i in range(40)],
                     [f"x_e{i}" for i in range(40)], [False] * 40, keep="none")
    adds = [s for s in m.statements if isinstance(s, nl.Comb) and isinstance(s.value, nl.Add)]
    assert len(adds) <= len(sums) and all(s.dst.name.endswith("_cpa") for s in adds)
    X = rng.integers(0, 2, size=(50, 40))
    assert np.array_equal(np.array(evaluate_plan(heap_plan(g, "none"), X.tolist())), X @ W.T)


def test_heap_refuses_pipelined_graph_and_auto_chooses():
    W = np.array([[3, -5, 7], [1, 2, -3]])
    pipe = lower_cmvm(W, [(0, 15)] * 3, [0, 1], max_carry=4)
    with pytest.raises(EmitError, match="--max-carry") as e:  # a ValueError: one line
        resolve_arith(pipe, "heap")
    assert "\n" not in str(e.value)
    assert resolve_arith(pipe, "auto") == "adders" == best_arith(pipe)
    with pytest.raises(ValueError, match="choose one of"):
        resolve_arith(pipe, "fast")
    binary = lower_cmvm(np.where(np.random.default_rng(0).random((8, 60)) < .5, -1, 1),
                        [(0, 1)] * 60, None)
    assert heap_cost(binary) < adders_cost(binary)
    assert resolve_arith(binary, "auto") == "heap"


def _conformance(tmp_path, g, arith: str) -> None:
    """Export ``g`` with ``--arith`` through the Icarus runner of the conformance suite and
    run its corner vectors: every output equals the IR interpreter's."""
    require_tool("iverilog")
    from heatq.ir import run
    from heatq.ir.testing import corner_vectors
    from heatq_export.runners import RUNNERS

    r = RUNNERS["icarus"]
    summary = r.export(g, tmp_path / "e", arith=arith)
    assert summary["report"]["design"]["arith"] == arith
    text = "".join(p.read_text() for p in sorted((tmp_path / "e").glob("*.v")))
    assert "arithmetic: " in text
    x = corner_vectors(g, thorough=True)
    got, want = r.run(tmp_path / "e", g, x), run(g, x)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert np.array_equal(a.astype(object), b.astype(object))
    if arith == "heap":
        assert "_cpa = " in text


@pytest.mark.parametrize("arith", ["heap", "auto"])
def test_mlp_through_conformance_path(tmp_path, arith):
    from heatq_sim.graphs import mlp_graph

    _conformance(tmp_path, mlp_graph(1, n_in=16, hidden=8, w_bits=3, act_bits=2), arith)


@pytest.mark.slow
@pytest.mark.parametrize("arith", ["heap", "auto"])
def test_small_cnn_through_conformance_path(tmp_path, arith):
    from heatq_sim.graphs import seed_cnn_graph

    g = seed_cnn_graph(0, channels=(2, 4, 4, 8, 8), kernels=(3, 3, 3, 3), size=16, w_bits=3,
                       act_bits=2)
    _conformance(tmp_path, g, arith)
