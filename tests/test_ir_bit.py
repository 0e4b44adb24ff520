"""BIT against a naive Python-int model: random shapes, signed / unsigned / wider-than-int64
ranges, every valid bit index (the sign bit included); the range is exact (both values reached
when the bit varies over lo..hi, the constant when it does not); bit indices outside the
argument's type rejected; a save / load round trip keeps the node."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from heatq.ir import BitAttrs, GraphBuilder, InputAttrs, IRError, Op, RequantAttrs, load, run, save
from test_ir_interp import SETTINGS


def naive_bit(x, bit):
    """Bit ``bit`` of each Python int, two's complement (Python's ``>>`` is arithmetic)."""
    if isinstance(x, list):
        return [naive_bit(v, bit) for v in x]
    return (int(x) >> bit) & 1


def bit_graph(shape, lo, hi, bit, frac=0):
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs(shape, lo, hi, frac), name="in")
    y = b.add(Op.BIT, BitAttrs(bit), [x], name="b")
    return b.build([y])


@st.composite
def cases(draw):
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    wide = draw(st.sampled_from([False, False, False, True]))
    ends = st.integers(-(1 << 80), 1 << 80) if wide else st.integers(-300, 300)
    lo, hi = sorted((draw(ends), draw(ends)))
    if draw(st.booleans()):  # a narrow range, where a high bit is often fixed
        hi = lo + draw(st.integers(0, 9))
    width = graph_width(lo, hi)
    return shape, lo, hi, draw(st.integers(0, width - 1)), draw(st.integers(-3, 3))


def graph_width(lo, hi):
    from heatq.ir import IntType
    return IntType.for_range(lo, hi).width


@SETTINGS
@given(cases(), st.integers(0, 2**32 - 1))
def test_bit_matches_naive_model_and_range_is_exact(case, seed):
    shape, lo, hi, bit, frac = case
    g = bit_graph(shape, lo, hi, bit, frac)
    node = g.nodes[1]
    rnd = np.random.default_rng(seed)
    size = node.size
    draws = [lo + int(rnd.integers(0, 1 << 62)) % (hi - lo + 1) for _ in range(4 * size)]
    nxt = ((lo >> bit) + 1) << bit  # the first value whose bit differs from lo's, if <= hi
    extra = [lo, hi, min(nxt, hi)]
    x = np.array(draws + [v for v in extra for _ in range(size)], dtype=object)
    x = x.reshape((7,) + shape)
    if -(1 << 62) < lo and hi < (1 << 62):
        x = x.astype(np.int64)
    (y,) = run(g, x)
    assert y.dtype == np.int64
    assert y.tolist() == naive_bit(x.tolist(), bit)
    seen = {int(v) for v in y[4:].ravel()}
    assert (min(seen), max(seen)) == (node.lo, node.hi)
    assert node.type.c_style() == "u1.0"


def test_bit_by_hand_signed():
    g = bit_graph((4,), -8, 7, 3)  # s4: bit 3 is the sign bit
    (y,) = run(g, np.array([[-8, -1, 0, 7], [-5, 5, -3, 3]]))
    assert y.tolist() == [[1, 1, 0, 0], [1, 0, 1, 0]]
    (y0,) = run(bit_graph((4,), -8, 7, 0), np.array([[-8, -1, 0, 7]]))
    assert y0.tolist() == [[0, 1, 0, 1]]


@pytest.mark.parametrize("lo,hi,bit,want", [
    (8, 15, 3, (1, 1)),      # 1xxx: bit 3 always set
    (8, 15, 2, (0, 1)),
    (16, 23, 3, (0, 0)),     # 10xxx: bit 3 always clear
    (-8, -5, 2, (0, 0)),     # 1000..1011: bit 2 clear
    (-4, -1, 2, (1, 1)),     # s3: the sign bit of a negative range
    (-4, -1, 3, None),       # s3 has no bit 3
    (-4, 3, 2, (0, 1)),
    (5, 5, 0, (1, 1)),
    (0, 0, 0, (0, 0)),
])
def test_fixed_and_varying_bits(lo, hi, bit, want):
    if want is None:
        with pytest.raises(IRError, match="is not a bit of"):
            bit_graph((1,), lo, hi, bit)
        return
    node = bit_graph((1,), lo, hi, bit).nodes[1]
    assert (node.lo, node.hi) == want
    got = {(v >> bit) & 1 for v in range(lo, hi + 1)}
    assert (min(got), max(got)) == want


def test_bit_index_outside_the_type_is_rejected():
    with pytest.raises(IRError, match=r"bit 'b': bit = 8 is not a bit of the u8.0 argument "
                                      r"\(range 0..255: bits 0..7\)"):
        bit_graph((2,), 0, 255, 8)
    with pytest.raises(IRError, match=r"bit = 8 is not a bit of the s8.0 argument"):
        bit_graph((2,), -128, 127, 8)
    bit_graph((2,), -128, 127, 7)  # the sign bit is fine


@pytest.mark.parametrize("bit,needle", [(-1, "is negative"), (True, "must be an integer"),
                                        (1.0, "must be an integer"), ("1", "must be an integer")])
def test_bad_bit_attribute_is_rejected(bit, needle):
    with pytest.raises(IRError, match=needle):
        BitAttrs(bit)


def test_bit_reads_the_stored_integer_whatever_the_frac():
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((3,), -64, 63, frac=4))
    r = b.add(Op.REQUANT, RequantAttrs(-2, -256, 255), [x])  # frac 6, values x * 4
    y = b.add(Op.BIT, BitAttrs(2), [r])
    g = b.build([y])
    assert g.nodes[y].type.frac == 0
    (out,) = run(g, np.array([[1, 2, -1]]))
    assert out.tolist() == [[1, 0, 1]]


def test_bit_round_trip_and_tampered_index(tmp_path):
    g = bit_graph((2, 2), -(1 << 70), 1 << 70, 71)  # s72: the sign bit
    path = save(g, tmp_path)
    back = load(path)
    assert back.nodes[1].op is Op.BIT and back.nodes[1].attrs.bit == 71
    x = np.array([[[-(1 << 70), -1], [0, (1 << 70)]]], dtype=object)
    assert run(back, x)[0].tolist() == run(g, x)[0].tolist() == [[[1, 1], [0, 0]]]
    doc = json.loads(path.read_text())
    doc["nodes"][1]["attrs"]["bit"] = 72
    path.write_text(json.dumps(doc))
    with pytest.raises(IRError, match=r"model.ir.json: bit 'b': bit = 72 is not a bit of the s72"):
        load(path)
