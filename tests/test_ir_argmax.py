"""ARGMAX in the IR: shape / range / type rules, the interpreter against a naive Python-int
first-maximum scan (and against np.argmax where int64 holds the values), ties to the lowest
index, signed extremes and values beyond 64 bits, the JSON round trip and contract errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heatq.ir import (
    ArgmaxAttrs, DenseAttrs, GraphBuilder, InputAttrs, IntType, IRError, Op, load, run, save,
)

SETTINGS = settings(derandomize=True, max_examples=80, deadline=None, database=None)


def argmax_graph(k: int, lo: int, hi: int, frac: int = 0):
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((k,), lo, hi, frac))
    a = b.add(Op.ARGMAX, ArgmaxAttrs(), [x], "cls")
    return b.build([a])


def naive_argmax(rows: list[list[int]]) -> list[int]:
    """First index of the maximum, by a plain scan over Python ints."""
    out = []
    for row in rows:
        best = 0
        for i, v in enumerate(row):
            if v > row[best]:
                best = i
        out.append(best)
    return out


@st.composite
def cases(draw):
    signed = draw(st.booleans())
    width = draw(st.sampled_from([1, 2, 3, 8, 31, 32, 52, 62, 63, 64, 65, 70]))
    t = IntType(signed, width)
    k = draw(st.integers(1, 12))
    pool = [t.min, t.max, 0 if t.min <= 0 else t.min] + draw(
        st.lists(st.integers(t.min, t.max), min_size=1, max_size=4))  # few values: many ties
    rows = draw(st.lists(st.lists(st.sampled_from(pool), min_size=k, max_size=k),
                         min_size=1, max_size=6))
    return t, k, rows


@SETTINGS
@given(cases())
def test_argmax_matches_first_maximum_scan(case):
    t, k, rows = case
    g = argmax_graph(k, t.min, t.max, frac=3)
    node = g.nodes[1]
    assert node.shape == () and (node.lo, node.hi) == (0, k - 1)
    assert node.type.frac == 0 and not node.type.signed
    (out,) = run(g, np.array(rows, dtype=object))
    assert out.dtype == np.int64
    assert out.tolist() == naive_argmax(rows)
    if t.width <= 63:
        assert out.tolist() == np.argmax(np.array(rows, dtype=np.int64), axis=1).tolist()


def test_ties_go_to_lowest_index():
    g = argmax_graph(5, -8, 7)
    x = np.array([[3, 7, 7, -8, 7],     # three maxima -> 1
                  [-8, -8, -8, -8, -8],  # all equal -> 0
                  [-1, -2, -1, -3, -1],  # negative maxima -> 0
                  [-8, -7, 0, 0, 6]])    # last -> 4
    assert run(g, x)[0].tolist() == [1, 0, 0, 4]


def test_signed_extremes_and_beyond_64_bits():
    big = 1 << 69
    g = argmax_graph(4, -big, big)
    x = np.array([[-big, -big + 1, -big, -big + 1],
                  [big - 1, big, -big, big],
                  [-1, -big, 0, -1]], dtype=object)
    assert run(g, x)[0].tolist() == [1, 1, 2]
    g64 = argmax_graph(3, -(1 << 63), (1 << 63) - 1)  # the int64 extremes compare as signed
    x64 = np.array([[-(1 << 63), (1 << 63) - 1, -1], [-(1 << 63), -(1 << 63), -(1 << 63)]],
                   dtype=object)
    assert run(g64, x64)[0].tolist() == [1, 0]


def test_single_element_and_output_type():
    g = argmax_graph(1, -5, 5)
    assert (g.nodes[1].lo, g.nodes[1].hi) == (0, 0)
    assert run(g, np.array([[-5], [5]]))[0].tolist() == [0, 0]
    g10 = argmax_graph(10, 0, 1)
    assert g10.nodes[1].type == IntType(False, 4, 0)


def test_after_dense_with_ties():
    """DENSE of +-1 weights over bits then ARGMAX: rows with equal scores pick the lower one."""
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((3,), 0, 1))
    w = np.array([[1, -1, 1], [1, -1, 1], [-1, 1, -1]])
    d = b.add(Op.DENSE, DenseAttrs(w, np.array([0, 0, 1]), 1), [x], "scores")
    a = b.add(Op.ARGMAX, ArgmaxAttrs(), [d], "cls")
    g = b.build([d, a])
    bits = np.array([[a_, b_, c_] for a_ in (0, 1) for b_ in (0, 1) for c_ in (0, 1)])
    scores, cls = run(g, bits)
    assert cls.tolist() == naive_argmax(scores.tolist())
    assert 0 in cls.tolist() and 2 in cls.tolist()


def test_round_trip(tmp_path):
    g = argmax_graph(6, -100, 100, frac=2)
    save(g, tmp_path / "g.json")
    g2 = load(tmp_path / "g.json")
    assert g2.nodes[1].op is Op.ARGMAX and isinstance(g2.nodes[1].attrs, ArgmaxAttrs)
    x = np.array([[1, 100, -100, 100, 3, 0], [-100] * 6])
    assert run(g2, x)[0].tolist() == run(g, x)[0].tolist() == [1, 0]


@pytest.mark.parametrize("shape", [(2, 3), (1, 2, 2), (2, 2, 2)])
def test_rejects_non_vectors(shape):
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs(shape, 0, 3))
    with pytest.raises(IRError, match="argmax expects a vector"):
        b.add(Op.ARGMAX, ArgmaxAttrs(), [x], "cls")


def test_rejects_scalar_and_wrong_arity():
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((4,), 0, 3))
    s = b.add(Op.ARGMAX, ArgmaxAttrs(), [x], "cls")
    with pytest.raises(IRError, match="argmax expects a vector"):
        b.add(Op.ARGMAX, ArgmaxAttrs(), [s], "again")
    with pytest.raises(IRError, match="argument"):
        b.add(Op.ARGMAX, ArgmaxAttrs(), [x, x])
    with pytest.raises(IRError, match="ArgmaxAttrs"):
        b.add(Op.ARGMAX, None, [x])


def test_hls4ml_plan_refuses_a_channels_last_argument():
    """hls4ml stores a flattened [C, H, W] map channels-last: its first maximum is not the
    IR's on ties, so the plan refuses by name; a [C, 1, 1] map (same order) is accepted."""
    from heatq.ir import FlattenAttrs
    from heatq_export.base import EmitError
    from heatq_export.hls4ml_layers import plan

    def graph(shape):
        b = GraphBuilder()
        x = b.add(Op.INPUT, InputAttrs(shape, 0, 3), name="in")
        f = b.add(Op.FLATTEN, FlattenAttrs(), [x], "flat")
        return b.build([b.add(Op.ARGMAX, ArgmaxAttrs(), [f], "cls")])

    with pytest.raises(EmitError, match=r"argmax node 2 \(cls\).*channels-last"):
        plan(graph((2, 2, 2)))
    p = plan(graph((4, 1, 1)))
    assert p.layers[-1]["class_name"] == "Softmax" and p.tensors[2].onehot
