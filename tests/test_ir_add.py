"""ADD against a naive Python-int model: random shapes, 1..4 arguments with random alignment
shifts, signed / unsigned and wider-than-64-bit values; the range is exact (the input all at
its low / high end reaches it, every argument being monotone in the input); wrong arity,
shape, binary point and shifts rejected; a save / load round trip keeps the node."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatq.ir import (
    AddAttrs, FlattenAttrs, GraphBuilder, InputAttrs, IRError, Op, RequantAttrs, Rounding, load,
    run, save,
)
from heatq.ir.ops.base import INT64_MAX_WIDTH
from test_ir_interp import SETTINGS


def naive_add(arg_values, shifts):
    """``y = sum_i (x_i << s_i)`` per element, with Python ints on nested lists."""
    if isinstance(arg_values[0], list):
        return [naive_add(list(parts), shifts) for parts in zip(*arg_values)]
    return sum(int(v) << s for v, s in zip(arg_values, shifts))


def add_graph(shape, lo, hi, clips, shifts):
    """ADD over arguments derived from one input: ``None`` is the input itself, ``(l, h)`` a
    saturating REQUANT (shift 0) into ``l..h`` -- each monotone non-decreasing in the input."""
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs(shape, lo, hi), name="in")
    args = [x if c is None else
            b.add(Op.REQUANT, RequantAttrs(0, c[0], c[1], Rounding.FLOOR), [x], name=f"clip{i}")
            for i, c in enumerate(clips)]
    y = b.add(Op.ADD, AddAttrs(tuple(shifts)), args, name="sum")
    return b.build([y])


@st.composite
def cases(draw):
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    scale = draw(st.sampled_from([1, 1, 1, 1 << 66]))
    lo = draw(st.integers(-30, 30)) * scale
    hi = lo + draw(st.integers(0, 60)) * scale
    n = draw(st.integers(1, 4))
    clips = []
    for _ in range(n):
        if draw(st.booleans()):
            clips.append(None)
        else:
            c_lo = draw(st.integers(-40, 40)) * scale
            clips.append((c_lo, c_lo + draw(st.integers(0, 50)) * scale))
    # some shifts leave int64 from int64 arguments
    shifts = [draw(st.sampled_from([0, 1, 2, 5, 8, 33, 61, 70])) for _ in range(n)]
    return shape, lo, hi, clips, shifts


@SETTINGS
@given(cases(), st.integers(0, 2**32 - 1))
def test_add_matches_naive_model_and_range_is_exact(case, seed):
    shape, lo, hi, clips, shifts = case
    g = add_graph(shape, lo, hi, clips, shifts)
    node = g.nodes[-1]
    rnd = np.random.default_rng(seed)
    draws = [lo + int(rnd.integers(0, 1 << 62)) % (hi - lo + 1) for _ in range(5 * node.size)]
    x = np.array(draws + [lo] * node.size + [hi] * node.size, dtype=object).reshape((7,) + shape)
    if -(1 << 62) < lo and hi < (1 << 62):
        x = x.astype(np.int64)
    values = run(g, x, trace=True)
    y = values[node.id]
    args = [values[a].tolist() for a in node.args]
    assert y.tolist() == naive_add(args, shifts)
    assert y.dtype == (np.int64 if node.type.width <= INT64_MAX_WIDTH else object)
    # exact: every argument is monotone non-decreasing in x and every shift is >= 0
    flat = [int(v) for v in np.asarray(y[5]).ravel()], [int(v) for v in np.asarray(y[6]).ravel()]
    assert (min(flat[0]), max(flat[1])) == (node.lo, node.hi)
    assert node.type.frac == 0 and node.type.signed == (node.lo < 0)


def test_add_values_and_range_by_hand():
    g = add_graph((3,), -4, 5, [None, (0, 3), (-2, 1)], [0, 2, 5])
    x = np.array([[-4, 0, 5], [1, 2, 3]])
    (y,) = run(g, x)
    # x + (clip(x,0,3) << 2) + (clip(x,-2,1) << 5)
    assert y.tolist() == [[-4 - 64, 0, 5 + 12 + 32], [1 + 4 + 32, 2 + 8 + 32, 3 + 12 + 32]]
    assert (g.nodes[-1].lo, g.nodes[-1].hi) == (-4 + 0 - 64, 5 + 12 + 32)


def test_add_leaves_int64_exactly():
    """int64 arguments whose shifted sum needs more than 62 bits: Python ints, no wrap."""
    g = add_graph((2,), 0, (1 << 40) - 1, [None, None], [0, 30])
    x = np.array([[(1 << 40) - 1, 3]], dtype=np.int64)
    (y,) = run(g, x)
    assert y.dtype == object
    assert y.tolist() == [[((1 << 40) - 1) * ((1 << 30) + 1), 3 * ((1 << 30) + 1)]]


def test_one_argument_add_is_a_shift():
    g = add_graph((2, 2, 2), -3, 3, [None], [4])
    x = np.arange(-3, 5).clip(-3, 3).reshape(1, 2, 2, 2)
    assert np.array_equal(run(g, x)[0], x * 16)
    assert (g.nodes[-1].lo, g.nodes[-1].hi) == (-48, 48)


def builder():
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((2, 2, 2), 0, 7), name="in")
    return b, x


def test_wrong_arity_is_rejected():
    b, x = builder()
    with pytest.raises(IRError, match=r"add 'y': expects 2 argument\(s\), got 3"):
        b.add(Op.ADD, AddAttrs((0, 1)), [x, x, x], name="y")
    with pytest.raises(IRError, match=r"add: expects 1 argument\(s\), got 0"):
        b.add(Op.ADD, AddAttrs((0,)), [])


def test_shape_mismatch_is_rejected():
    b, x = builder()
    f = b.add(Op.FLATTEN, FlattenAttrs(), [x])
    with pytest.raises(IRError, match=r"add 'y': argument 1 has shape \(8,\) but argument 0 "
                                      r"has \(2, 2, 2\)"):
        b.add(Op.ADD, AddAttrs((0, 0)), [x, f], name="y")


def test_frac_mismatch_is_rejected():
    b, x = builder()
    r = b.add(Op.REQUANT, RequantAttrs(1, 0, 7), [x])  # frac -1
    with pytest.raises(IRError, match=r"add: argument 2 has frac -1 but argument 0 has frac 0"):
        b.add(Op.ADD, AddAttrs((0, 0, 1)), [x, x, r])


@pytest.mark.parametrize("shifts,needle", [
    ((), "at least one argument"),
    ((0, -1), r"shifts\[1\] = -1 is negative"),
    ((0, True), r"shifts\[1\] must be an integer"),
    ((0.5,), r"shifts\[0\] must be an integer"),
    (3, "must be a tuple of integers"),
])
def test_bad_shifts_are_rejected(shifts, needle):
    with pytest.raises(IRError, match=needle):
        AddAttrs(shifts)


def test_shifts_are_normalised_to_a_tuple_of_ints():
    a = AddAttrs([np.int64(2), 0])
    assert a.shifts == (2, 0) and all(type(s) is int for s in a.shifts)


def test_add_round_trip_and_tampered_shift(tmp_path):
    g = add_graph((2, 3), -(1 << 70), 1 << 70, [None, (-5, 9)], [3, 64])
    path = save(g, tmp_path)
    back = load(path)
    node = back.nodes[-1]
    assert node.op is Op.ADD and node.attrs.shifts == (3, 64)
    assert (node.lo, node.hi, node.type) == (g.nodes[-1].lo, g.nodes[-1].hi, g.nodes[-1].type)
    x = np.array([[[-(1 << 70), 0, 7], [1 << 70, -6, 10]]], dtype=object)
    assert run(back, x)[0].tolist() == run(g, x)[0].tolist()
    doc = json.loads(path.read_text())
    assert doc["nodes"][-1]["attrs"] == {"shifts": [3, 64]}
    doc["nodes"][-1]["attrs"]["shifts"] = [3, -1]
    path.write_text(json.dumps(doc))
    with pytest.raises(IRError, match=r"model.ir.json: node 2 \(sum\): add: shifts\[1\] = -1"):
        load(path)
