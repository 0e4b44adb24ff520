"""C and HLS C++ targets against the reference interpreter: exact equality, every sample.

Each graph is compiled (C: gcc with -Werror and the undefined-behaviour and address
sanitizers, which abort on any report; HLS: g++ with hls4ml's ap_int headers) and run on
random vectors plus corner vectors (all lo, all hi, and inputs that maximise / minimise the
accumulators of the first weighted layer).  A missing compiler skips (fails with CI=true).
"""

from __future__ import annotations

import numpy as np
import pytest

from heatq.errors import UserError
from heatq.ir import IntType, Op, run
from heatq.ir.testing import acc73 as build_huge
from heatq.ir.testing import add_vec as build_add
from heatq.ir.testing import concat_mix as build_concat
from heatq.ir.testing import requant_fanout as build_mlp
from heatq.ir.testing import corner_vectors
from heatq.ir.testing import small_cnn as build_cnn
from heatq.ir.testing import threshold_mix as build_threshold
from heatq.ir.testing import wide64 as build_wide
from heatq_export.build import compare_with_interp, compile_target, run_executable
from heatq_export.clike import EmitError
from heatq_export.clike_types import threshold_table
from heatq_export.emitters import EMITTERS, get_emitter

from tools import require_tool

COMPILER = {"c": "gcc", "hls": "g++"}
N_RANDOM = 50
REFUSED = {Op.CMVM}  # C and HLS: lowered graphs are exported unlowered


BUILDERS = {"cnn": build_cnn, "mlp": build_mlp, "wide": build_wide, "huge": build_huge,
            "threshold": build_threshold, "add": build_add, "concat": build_concat}
CASES = [(t, name) for t in ("c", "hls")
         for name in ("cnn", "mlp", "wide", "threshold", "add", "concat")] + \
    [("hls", "huge")]


@pytest.fixture(scope="module")
def graphs():
    return {name: b(np.random.default_rng(100 + i)) for i, (name, b) in
            enumerate(BUILDERS.items())}


def make_vectors(graph, rng) -> np.ndarray:
    """The corner vectors (heatq.ir.testing) plus N_RANDOM random ones drawn from ``rng``."""
    return corner_vectors(graph, n_random=N_RANDOM, seed=int(rng.integers(1 << 31)))


@pytest.mark.parametrize("target,name", CASES)
def test_target_matches_interpreter(target, name, graphs, tmp_path):
    require_tool(COMPILER[target], f"the {target} target")
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
