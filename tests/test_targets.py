"""The conformance suite (ladder rung 4): every target runner x every corpus graph, exact.

The executors (issue 12: all agree bit for bit on the corpus and on the trained seed CNN,
tests/test_executors_trained.py), each with the rule it runs by:

* ``interp``: :func:`heatq.ir.run`, the reference interpreter (docs/ir.md section 6): every
  other executor is compared with it;
* ``torch``: the graph on PyTorch operators in float64 (export/torch_run.py), exact below
  ``2**53``; refuses a node whose range or partial sums leave it;
* ``c``: the C99 export compiled by gcc (-Werror, UB + address sanitizers), 64-bit integers;
* ``hls``: the HLS C++ export (ap_int / ap_uint) compiled by g++;
* ``icarus``: the Verilog export in cocotb + Icarus (also checks latency / II against the
  report's cycle model);
* ``verilator``: the Verilog export through the Verilator harness (same checks);
* ``qonnx``: the QONNX export (``model.onnx``) executed by qonnx's ``execute_onnx``
  (onnxruntime underneath);
* ``hls4ml``: the hls4ml project's C simulation (``compile()`` + ``predict()``, g++);

and ``interp-lowered``: ``lower_products``' adder-graph form run by the interpreter (what
the Verilog target builds from).  ``test_the_executors_are_registered`` pins this list.

Each case exports a graph of :func:`heatq.ir.testing.corpus` for the runner's target, runs it
on :func:`heatq.ir.testing.corner_vectors` with ``thorough=True`` (range corners, per-channel
extremes of the first weighted layer, conv windows at the borders, seeded random vectors) and requires every output of every
vector to equal
:func:`heatq.ir.run`'s (``np.array_equal`` on integers).  A target that cannot take a graph
must refuse it with ``EmitError`` at export time, and each such refusal is listed in
``REFUSED`` below with its reason; a listed refusal that starts to export fails too, so the
list stays true.  A missing tool skips (fails with ``CI=true``, tests/tools.py).

Verilator builds cost 10-60 s each, so the default run sends ``VERILATOR_FAST`` through
Verilator and the rest of the corpus only in ``test_target_slow`` (``-m slow``); every graph
goes through Icarus in the default run.  hls4ml's ``compile()`` (g++ -O3 of the project) costs
10-95 s per graph, so only ``HLS4ML_FAST`` compiles in the default run (its refusals are checked
there too) and the rest in ``test_target_slow``.
"""

from __future__ import annotations

import numpy as np
import pytest

from heatq.ir import Op, Overflow, Rounding, run
from heatq.ir.testing import corner_vectors, corpus
from heatq_export.base import EmitError
from heatq_export.runners import RUNNERS

from tools import require_tool

CORPUS = corpus()

# (runner, graph) -> why the target refuses it (EmitError at export; asserted, not skipped)
REFUSED: dict[tuple[str, str], str] = {
    ("c", "acc73"): "a 73-bit accumulator does not fit C99's 64-bit integer types",
    ("c", "cmvm_layouts"): "the C-like targets do not render CMVM (they take DENSE / CONV2D)",
    ("hls", "cmvm_layouts"): "the C-like targets do not render CMVM (they take DENSE / CONV2D)",
    **{(sim, g): why for sim in ("icarus", "verilator") for g, why in {
        "pool3": "Verilog max pooling is 2x2 / stride 2 only",
        "threshold_mix": "the streamed input feeds a conv window and th_in (the window stalls "
                         "the host, th_in would not wait); th_in is also a [C, H, W] output",
        "add_map": "sum_map fuses into one conv over CONCAT(in, in), but the streamed input "
                   "also feeds in_bit1 (the window stalls the host, in_bit1 would not wait)",
    }.items()},
    **{("torch", g): "a node beyond float64's exact integers (|v| < 2**53)"
       for g in ("wide64", "acc73", "half_even_wide", "argmax_wide")},
    **{("qonnx", g): "a node beyond float32's exact integers (|v| <= 2**24): onnxruntime's "
       "Conv / Gemm and QONNX's Quant compute in float32" for g in (
           "wide64", "acc73", "s16_dense", "half_even_wide", "argmax_wide")},
    **{("hls4ml", g): why for g, why in {
        "requant_fanout": "shl_sat saturates onto -100..100, not onto its type's bounds "
                          "(ap_fixed saturates / wraps onto the whole type only)",
        "wide64": "its REQUANTs saturate onto ranges that are not their types' bounds; "
                  "THRESHOLD has no hls4ml layer",
        "acc73": "THRESHOLD has no hls4ml layer (and a 73-bit output exceeds the bridge's "
                 "doubles)",
        "threshold_mix": "THRESHOLD has no hls4ml layer",
        "threshold_map": "THRESHOLD has no hls4ml layer",
        "requant_chain_sat": "rq2 saturates onto -3..4, not onto its type's bounds",
        "requant_chain_wrap": "rq3 wraps onto -3..4, not onto its type's bounds",
        "cmvm_layouts": "CMVM has no hls4ml layer (hls4ml takes Dense / Conv2D)",
        "add_vec": "ADD (shifted sums) is not mapped onto hls4ml's Merge",
        "add_map": "ADD (shifted sums) is not mapped onto hls4ml's Merge",
        "bit_map": "BIT has no hls4ml layer",
        "concat_mix": "BIT and CONCAT are not mapped onto hls4ml layers",
        "half_even_vec": "he_s3 saturates onto -20..20, not onto its type's bounds",
    }.items()},
}
VERILATOR_FAST = ("requant_fanout", "bits1", "wide64", "acc73",  # 1-bit, 64- and 73-bit ports
                  "residual")  # the residual join, stride-2 windows and the GAP unit
# hls4ml's compile() is 5-10 s (mlp, argmax_mix) to 95 s (seed_cnn) of g++ -O3
HLS4ML_FAST = ("mlp", "argmax_mix")


def _cases(slow: bool) -> list[tuple[str, str]]:
    out = []
    for r in RUNNERS:
        for g in CORPUS:
            is_slow = (r == "verilator" and g not in VERILATOR_FAST) or (
                r == "hls4ml" and g not in HLS4ML_FAST and (r, g) not in REFUSED)
            if is_slow == slow:
                out.append((r, g))
    return out


def _first_mismatch(got: np.ndarray, want: np.ndarray) -> str:
    bad = np.argwhere(got.astype(object) != want.astype(object))
    i = tuple(int(v) for v in bad[0])
    return f"{len(bad)} elements differ; first at {i}: got {got[i]}, want {want[i]}"


def check_target(runner_name: str, graph_name: str, tmp_path) -> None:
    runner, graph = RUNNERS[runner_name], CORPUS[graph_name]
    for tool in runner.tools:
        require_tool(tool, f"the {runner_name} runner")
    out = tmp_path / "export"
    reason = REFUSED.get((runner_name, graph_name))
    if reason is not None:
        with pytest.raises(EmitError) as e:
            runner.export(graph, out)
        msg = str(e.value)
        assert "\n" not in msg, "a refusal is one line"
        assert any(n.name and n.name in msg for n in graph.nodes[1:]), f"names no node: {msg}"
        return
    runner.export(graph, out)
    x = corner_vectors(graph, thorough=True)
    got = runner.run(out, graph, x)
    want = run(graph, x)
    assert len(got) == len(want) == len(graph.outputs)
    for k, (g, w) in enumerate(zip(got, want)):
        node = graph.nodes[graph.outputs[k]]
        assert g.shape == w.shape, f"output {k} ({node.label()}): shape {g.shape} != {w.shape}"
        assert np.array_equal(g.astype(object), w.astype(object)), \
            f"{runner_name} {graph_name} output {k} ({node.label()}): {_first_mismatch(g, w)}"
    sim = getattr(runner, "last_result", None)
    if sim is not None:  # RTL: the measured latency / II are the report's cycle model
        assert sim["timing_matches_model"], {k: sim[k] for k in (
            "latency", "model_latency", "ii", "model_ii")}


@pytest.mark.parametrize("runner_name,graph_name", _cases(slow=False))
def test_target(runner_name, graph_name, tmp_path):
    check_target(runner_name, graph_name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("runner_name,graph_name", _cases(slow=True))
def test_target_slow(runner_name, graph_name, tmp_path):
    check_target(runner_name, graph_name, tmp_path)


EXECUTORS = {"c", "hls", "icarus", "verilator", "interp-lowered", "torch", "qonnx", "hls4ml"}


def test_the_executors_are_registered():
    """RUNNERS holds exactly the executors of the module docstring (interp is the reference,
    not a runner); qonnx and hls4ml register once export/qonnx_run.py and export/hls4ml_run.py
    exist, so this fails until both have landed."""
    assert set(RUNNERS) == EXECUTORS, f"missing {sorted(EXECUTORS - set(RUNNERS))}, " \
        f"unexpected {sorted(set(RUNNERS) - EXECUTORS)}"


def test_refusal_list_names_real_cases():
    for (r, g), reason in REFUSED.items():
        assert r in RUNNERS and g in CORPUS and reason


def test_corpus_covers_the_ir():
    """Every op, every rounding x overflow mode, shifts of each sign, signed and unsigned
    inputs, 1- and 16-bit inputs, a node of exactly 64 bits and one wider."""
    nodes = [n for g in CORPUS.values() for n in g.nodes]
    assert {n.op for n in nodes} == set(Op)
    rq = [n.attrs for n in nodes if n.op is Op.REQUANT]
    assert {(a.rounding, a.overflow) for a in rq} == {(r, o) for r in Rounding for o in Overflow}
    assert {int(np.sign(a.shift)) for a in rq} == {-1, 0, 1}
    wraps = {(a.lo, a.hi) for a in rq if a.overflow is Overflow.WRAP}
    assert any(lo == 0 for lo, _ in wraps) and any(lo == -hi - 1 for lo, hi in wraps)
    assert (-3, 4) in wraps  # an odd offset
    inputs = [g.nodes[0] for g in CORPUS.values()]
    assert {i.type.signed for i in inputs} == {False, True}
    assert {1, 16} <= {i.type.width for i in inputs}
    widths = {n.type.width for n in nodes}
    assert 64 in widths and max(widths) > 64


def test_corner_vectors_are_deterministic_and_in_range():
    for name, g in CORPUS.items():
        inp = g.nodes[0]
        for thorough in (False, True):
            x = corner_vectors(g, thorough=thorough)
            assert x.shape[1:] == inp.shape and len(x) > 16, name
            assert x.min() >= inp.lo and x.max() <= inp.hi, name
            assert np.array_equal(x, corner_vectors(g, thorough=thorough)), name
            assert not np.array_equal(x, corner_vectors(g, seed=1, thorough=thorough)), name
        assert len(np.unique(x.reshape(len(x), -1), axis=0)) == len(x), name  # no repeats
    # the default set (what heatq run-target / sim add to the images): 4 range patterns,
    # 2 per first-layer channel (up to 8), n_random -- 36 for the seed CNN, as the demo prints
    assert len(corner_vectors(CORPUS["cnn12"])) == 4 + 2 * 8 + 16


def test_corner_vectors_reach_each_channels_extremes():
    """For the first weighted layer, each output channel's largest and smallest possible sum
    (bias + sum of max / min(w * lo, w * hi)) is attained: at every position of a DENSE, at the
    centre of a CONV2D whose centre window has no padded tap."""
    checked = 0
    for name, g in CORPUS.items():
        inp, node = g.nodes[0], g.nodes[1]
        if node.op not in (Op.CONV2D, Op.DENSE):
            continue
        x = corner_vectors(g, thorough=True)
        vals = run(g, x, trace=True)[node.id]
        w = node.attrs.weight.astype(object).reshape(len(node.attrs.weight), -1)
        top = [int(b) + sum(max(v * inp.lo, v * inp.hi) for v in row)
               for b, row in zip(node.attrs.bias, w)]
        bot = [int(b) + sum(min(v * inp.lo, v * inp.hi) for v in row)
               for b, row in zip(node.attrs.bias, w)]
        if node.op is Op.CONV2D:
            vals = vals[:, :, node.shape[1] // 2, node.shape[2] // 2]
        for o in range(min(8, len(top))):
            assert int(vals[:, o].max()) == top[o] and int(vals[:, o].min()) == bot[o], (name, o)
        checked += 1
    assert checked >= 5


class _OffByOne:
    """A runner whose outputs are the interpreter's with one element changed (or which exports
    everything, for the refusal check): the suite must catch both."""

    name, target, tools = "off-by-one", None, ()

    def export(self, graph, out, **options):
        out.mkdir(parents=True, exist_ok=True)

    def run(self, export_dir, graph, x):
        outs = run(graph, x)
        outs[-1].reshape(-1)[-1] += 1
        return outs


def test_the_suite_can_fail(monkeypatch, tmp_path):
    monkeypatch.setitem(RUNNERS, "off-by-one", _OffByOne())
    with pytest.raises(AssertionError, match="1 elements differ"):
        check_target("off-by-one", "bits1", tmp_path / "a")
    monkeypatch.setitem(REFUSED, ("off-by-one", "bits1"), "pretend")
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        check_target("off-by-one", "bits1", tmp_path / "b")


def test_require_tool_skips_elsewhere_and_fails_in_ci(monkeypatch):
    missing = "heatq-no-such-tool"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"{missing} not found on PATH"):
        require_tool(missing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_tool(missing)
    assert require_tool("sh")  # present: its path


# ------------------------------------------------------------ torch: its float64 edge cases
def _torch_edges():
    """A signed input of magnitude up to 2**52 (54 bits) through REQUANT with shifts up to
    70 either way in every rounding x overflow mode, THRESHOLD at int64's ends and at
    +-2**52, and BIT up to the sign bit: the torch runner's exactness arguments, tested."""
    from heatq.ir import BitAttrs, GraphBuilder, InputAttrs, RequantAttrs, ThresholdAttrs

    big, FL, SAT, WRAP = 1 << 52, Rounding.FLOOR, Overflow.SATURATE, Overflow.WRAP
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((6,), -big, big), name="in")
    outs = [g.add(Op.REQUANT, RequantAttrs(s, -big, big, r, SAT), [x], f"sat{s}_{r.value}")
            for s in (1, 2, 51, 52, 53, 54, 62, 63, 70) for r in Rounding]
    for s, lo, hi in [(1, -(1 << 20), (1 << 20) - 1), (53, 0, 1), (3, 0, (1 << 53) - 1),
                      (0, -(1 << 60), (1 << 60) - 1), (-3, -big, big - 1), (-60, 0, 7),
                      (-2, -4, 3), (-1, -3, 4)]:
        outs += [g.add(Op.REQUANT, RequantAttrs(s, lo, hi, r, WRAP), [x], f"wrap{s}_{lo}_{r.value}")
                 for r in Rounding]
    outs += [g.add(Op.REQUANT, RequantAttrs(s, lo, hi, FL, SAT), [x], f"shl{s}_{hi}")
             for s, lo, hi in [(-1, -big, big), (-54, -5, 5), (-70, -big, (1 << 53) - 1)]]
    t = [[-(1 << 63), -big, -1, 0, big, (1 << 63) - 1]] * 6
    outs.append(g.add(Op.THRESHOLD, ThresholdAttrs(t), [x], "th"))
    outs += [g.add(Op.BIT, BitAttrs(b), [x], f"bit{b}") for b in (0, 51, 52, 53)]
    return g.build(outs)


def test_torch_exact_at_the_edge_of_float64(tmp_path):
    g = _torch_edges()
    ties = [k << s for s in (0, 1, 50, 51, 52) for k in range(-4, 5) if abs(k << s) <= 1 << 52]
    vals = np.array(sorted(set(ties + [v + d for v in ties for d in (-1, 1)
                                       if abs(v + d) <= 1 << 52])), dtype=np.int64)
    x = np.concatenate([corner_vectors(g, thorough=True),
                        np.resize(vals, (len(vals) // 6 + 1) * 6).reshape(-1, 6)])
    torch_runner = RUNNERS["torch"]
    torch_runner.export(g, tmp_path / "t")
    assert (tmp_path / "t" / "summary.json").is_file()
    for k, (got, want) in enumerate(zip(torch_runner.run(tmp_path / "t", g, x), run(g, x))):
        assert got.dtype == np.int64 and np.array_equal(got, want), \
            f"{g.nodes[g.outputs[k]].label()}: {_first_mismatch(got, want)}"


def test_torch_refuses_partial_sums_beyond_2_53(tmp_path):
    """An ADD whose range fits but whose terms' sum of magnitudes reaches 2**53, and the
    options torch does not take: one-line EmitErrors naming the node, nothing written."""
    from heatq.ir import AddAttrs, DenseAttrs, GraphBuilder, InputAttrs

    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((1,), 0, 3 << 50), name="in")
    neg = g.add(Op.DENSE, DenseAttrs([[-1]], [0], 2), [x], "neg")
    s = g.add(Op.ADD, AddAttrs((1, 1)), [x, neg], "sum")
    g = g.build([s])
    assert -(1 << 53) < g.nodes[s].lo and g.nodes[s].hi < 1 << 53
    with pytest.raises(EmitError, match=r"add node 2 \(sum\): its terms and partial sums"):
        RUNNERS["torch"].export(g, tmp_path / "t")
    with pytest.raises(EmitError, match="torch takes no options"):
        RUNNERS["torch"].export(CORPUS["bits1"], tmp_path / "t",
                                fold="auto")
    assert not (tmp_path / "t").exists()
