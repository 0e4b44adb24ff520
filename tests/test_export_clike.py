"""C and HLS C++ targets against the reference interpreter: exact equality, every sample.

Each graph is compiled (C: gcc with -Werror and the undefined-behaviour and address
sanitizers, which abort on any report; HLS: g++ with hls4ml's ap_int headers) and run on
random vectors plus corner vectors (all lo, all hi, and inputs that maximise / minimise the
accumulators of the first weighted layer).  A missing compiler skips (fails with CI=true).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from heatq.ir.testing_residual import gap_mix as build_gap
from heatq_export.build import SANITIZER_ENV, compare_with_interp, compile_target, run_executable
from heatq_export.clike import EmitError
from heatq_export.clike_types import threshold_table
from heatq_export.emitters import EMITTERS, get_emitter

from tools import require_tool

COMPILER = {"c": "gcc", "hls": "g++"}
N_RANDOM = 50
REFUSED = {Op.CMVM}  # C and HLS: lowered graphs are exported unlowered


BUILDERS = {"cnn": build_cnn, "mlp": build_mlp, "wide": build_wide, "huge": build_huge,
            "threshold": build_threshold, "add": build_add, "concat": build_concat,
            "gap": build_gap}
CASES = [(t, name) for t in ("c", "hls")
         for name in ("cnn", "mlp", "wide", "threshold", "add", "concat", "gap")] + \
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
    with pytest.raises(UserError, match=r"known targets: (.*, )?c, hls, .*verilog"):
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


# ---- HALF_EVEN's C expression, alone: every width class, ties of both signs ---------------
HE_TYPES = [IntType(s, w) for s, w in ((True, 5), (False, 5), (True, 8), (False, 8),
                                       (True, 17), (False, 31), (True, 33), (False, 40),
                                       (True, 63), (False, 63), (True, 64), (False, 64))]
HE_CASES = [(t, s) for t in HE_TYPES
            for s in sorted({1, 2, 3, t.width // 2, t.width - 1, t.width, t.width + 1})]


@pytest.fixture(scope="module")
def half_even_exe(tmp_path_factory):
    """One C program (gcc -Werror, UB sanitizer) reading ``case x`` lines and printing
    ``CEmitter.shr(x, type, shift, 0, half_even=True)`` of each."""
    require_tool("gcc", "the C target")
    from heatq_export.build import C_FLAGS
    from heatq_export.c import CEmitter, stdint_name
    import subprocess

    em = CEmitter()
    em._used = set()
    body = []
    for k, (t, s) in enumerate(HE_CASES):
        conv, fmt, cast = ("strtoll", "%lld", "long long") if t.signed else \
            ("strtoull", "%llu", "unsigned long long")
        body.append(f"        case {k}: {{ const {stdint_name(t, 'x')} x = "
                    f"({stdint_name(t, 'x')}){conv}(buf, 0, 10); (void)x; "
                    f"printf(\"{fmt}\\n\", ({cast})({em.shr('x', t, s, 0, half_even=True)})); "
                    "break; }")
    src = "\n".join(["#include <stdint.h>", "#include <stdio.h>", "#include <stdlib.h>",
                     *em.helpers(), "int main(void)", "{", "    int k; char buf[64];",
                     '    while (scanf("%d %63s", &k, buf) == 2) {', "        switch (k) {",
                     *body, "        default: return 1;", "        }", "    }",
                     "    return 0;", "}", ""])
    d = tmp_path_factory.mktemp("half_even_c")
    (d / "he.c").write_text(src)
    subprocess.run(["gcc", *C_FLAGS, "-o", str(d / "he"), str(d / "he.c")], check=True,
                   capture_output=True)
    return d / "he"


@st.composite
def _he_inputs(draw):
    out = []
    for _ in range(draw(st.integers(1, 40))):
        k = draw(st.integers(0, len(HE_CASES) - 1))
        t, s = HE_CASES[k]
        tie = draw(st.integers(t.min >> s, t.max >> s)) * (1 << s) + (1 << (s - 1))
        x = draw(st.one_of(st.integers(t.min, t.max), st.sampled_from([t.min, t.max]),
                           st.sampled_from([tie - 1, tie, tie + 1])))
        out.append((k, min(max(x, t.min), t.max)))
    return out


@settings(max_examples=60, deadline=None)
@given(_he_inputs())
def test_c_half_even_shift_rounds_like_fraction_round(half_even_exe, pairs):
    """C's HALF_EVEN shift against Python's ``round(Fraction(x, 2**s))`` (half to even,
    exact at every width), ties included, without a sanitizer report."""
    import subprocess
    from fractions import Fraction

    r = subprocess.run([str(half_even_exe)], input="".join(f"{k} {x}\n" for k, x in pairs),
                       capture_output=True, text=True, env=SANITIZER_ENV, check=True)
    got = [int(v) for v in r.stdout.split()]
    want = [round(Fraction(x, 1 << HE_CASES[k][1])) for k, x in pairs]
    assert got == want, [(HE_CASES[k], x, g, w) for (k, x), g, w in zip(pairs, got, want)
                         if g != w][:3]


def test_a_program_past_its_time_limit_is_a_one_line_build_error(tmp_path, graphs):
    """The limit covers the whole batch (default: grows with N); past it, BuildError, one line
    (no TimeoutExpired traceback)."""
    from heatq_export.build import BASE_TIMEOUT, PER_SAMPLE_TIMEOUT, BuildError

    exe = tmp_path / "model"
    exe.write_text("#!/bin/sh\nsleep 5\n")
    exe.chmod(0o755)
    x = np.zeros((2, 4), dtype=np.int64)
    with pytest.raises(BuildError, match=r"^\S+model did not finish 2 samples within 0.2 s$"):
        run_executable(exe, x, graphs["add"], timeout=0.2)
    assert BASE_TIMEOUT >= 300 and PER_SAMPLE_TIMEOUT > 0
