"""GraphBuilder and IntGraph.verify: every contract violation raises IRError with a message
that names the op (and layer) and the problem."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from heatq.ir import (
    Conv2dAttrs, DenseAttrs, FlattenAttrs, GraphBuilder, HammingDecodeAttrs, InputAttrs, IntGraph,
    IntType, IRError, MaxPool2dAttrs, Op, Overflow, RequantAttrs, Rounding, SignBitsAttrs,
)


def dense(n_out=2, n_in=3, w_bits=2, bias=None):
    w = np.ones((n_out, n_in), dtype=np.int64)
    return DenseAttrs(w, np.zeros(n_out, dtype=np.int64) if bias is None else bias, w_bits)


def builder(shape=(3,), lo=0, hi=7):
    b = GraphBuilder()
    b.add(Op.INPUT, InputAttrs(shape, lo, hi), name="x")
    return b


def small_graph() -> IntGraph:
    b = builder()
    d = b.add(Op.DENSE, dense(), [0], name="fc")
    r = b.add(Op.REQUANT, RequantAttrs(1, 0, 3), [d], name="relu")
    return b.build([r])


# ------------------------------------------------------------------------- builder
def test_builder_derives_shape_range_type():
    g = small_graph()
    fc, relu = g.by_name("fc"), g.by_name("relu")
    assert (fc.shape, fc.lo, fc.hi, fc.type) == ((2,), 0, 21, IntType(False, 5))
    assert (relu.shape, relu.lo, relu.hi, relu.type) == ((2,), 0, 3, IntType(False, 2, -1))
    assert [n.id for n in g.nodes] == [0, 1, 2] and g.outputs == (2,)
    assert [n.name for n in g.named()] == ["x", "fc", "relu"]
    assert g.inputs == [g.nodes[0]] and fc.size == 2 and fc.label() == "node 1 (fc)"
    with pytest.raises(KeyError):
        g.by_name("nope")


@pytest.mark.parametrize("op,attrs,args,n", [
    (Op.DENSE, dense(), [], 1),
    (Op.DENSE, dense(), [0, 0], 1),
    (Op.INPUT, InputAttrs((3,), 0, 1), [0], 0),
    (Op.REQUANT, RequantAttrs(0, 0, 1), [0, 0], 1),
    (Op.SIGN_BITS, SignBitsAttrs(), [], 1),
])
def test_wrong_arity(op, attrs, args, n):
    b = builder()
    with pytest.raises(IRError, match=rf"^{op.value} 'bad': expects {n} argument\(s\), "
                                      rf"got {len(args)}$"):
        b.add(op, attrs, args, name="bad")


@pytest.mark.parametrize("args", [[1], [5], [-1]])
def test_forward_or_bad_reference(args):
    b = builder()
    with pytest.raises(IRError, match=r"dense 'fc': argument ids .* are not earlier nodes"):
        b.add(Op.DENSE, dense(), args, name="fc")


def test_duplicate_names():
    b = builder()
    d = b.add(Op.DENSE, dense(), [0], name="fc")
    r = b.add(Op.REQUANT, RequantAttrs(0, 0, 7), [d], name="fc")
    with pytest.raises(IRError, match="layer name 'fc' is used twice"):
        b.build([r])


def test_empty_names_may_repeat():
    b = builder()
    d = b.add(Op.DENSE, dense(), [0])
    r = b.add(Op.REQUANT, RequantAttrs(0, 0, 7), [d])
    assert b.build([r]).nodes[2].label() == "node 2"


@pytest.mark.parametrize("op,attrs,want", [
    (Op.DENSE, Conv2dAttrs(np.ones((1, 3, 1, 1)), np.zeros(1), 2), "DenseAttrs"),
    (Op.REQUANT, dense(), "RequantAttrs"),
    (Op.FLATTEN, SignBitsAttrs(), "FlattenAttrs"),
    (Op.SIGN_BITS, None, "SignBitsAttrs"),
    (Op.MAXPOOL2D, {"kernel": 2}, "MaxPool2dAttrs"),
])
def test_wrong_attrs_class(op, attrs, want):
    b = builder()
    with pytest.raises(IRError, match=f"^{op.value}: attributes must be {want}$"):
        b.add(op, attrs, [0])


@pytest.mark.parametrize("lo,hi", [(0, 5), (-3, 3), (1, 3), (-4, 4)])
def test_requant_wrap_needs_power_of_two_range(lo, hi):
    b = builder()
    with pytest.raises(IRError, match=rf"requant 'r': requant WRAP needs a power-of-two range, "
                                      rf"got {lo}\.\.{hi}"):
        b.add(Op.REQUANT, RequantAttrs(0, lo, hi, Rounding.FLOOR, Overflow.WRAP), [0], name="r")


@pytest.mark.parametrize("lo,hi", [(0, 0), (0, 1), (-4, 3), (5, 12), (0, (1 << 70) - 1)])
def test_requant_wrap_power_of_two_ranges_are_fine(lo, hi):
    b = builder()
    r = b.add(Op.REQUANT, RequantAttrs(0, lo, hi, Rounding.FLOOR, Overflow.WRAP), [0])
    assert b.nodes[r].shape == (3,)


def test_requant_empty_range():
    b = builder()
    with pytest.raises(IRError, match=r"requant range 3\.\.2 is empty"):
        b.add(Op.REQUANT, RequantAttrs(0, 3, 2), [0])


@pytest.mark.parametrize("lo,hi", [(0, 2), (-1, 1), (0, 255)])
def test_hamming_decode_needs_bits(lo, hi):
    b = builder((4,), lo, hi)
    with pytest.raises(IRError, match=rf"hamming_decode input must be bits \(0\.\.1\), "
                                      rf"got {lo}\.\.{hi}"):
        b.add(Op.HAMMING_DECODE, HammingDecodeAttrs(np.eye(4, dtype=np.uint8)), [0])


def test_hamming_decode_after_sign_bits_is_fine():
    b = builder((4,), -9, 9)
    s = b.add(Op.SIGN_BITS, SignBitsAttrs(), [0])
    h = b.add(Op.HAMMING_DECODE, HammingDecodeAttrs(np.eye(4, dtype=np.uint8)), [s])
    assert b.build([h]).nodes[h].shape == ()


@pytest.mark.parametrize("cb,msg", [
    (np.eye(3, dtype=np.uint8), "expects 3 bits, got shape (4,)"),
    (np.full((2, 4), 2), "codebook values must be 0 or 1"),
    (np.zeros((0, 4)), "codebook must be [K, L], got (0, 4)"),
    (np.zeros(4), "codebook must be [K, L], got (4,)"),
])
def test_hamming_decode_codebook_errors(cb, msg):
    b = builder((4,), 0, 1)
    with pytest.raises(IRError) as e:
        b.add(Op.HAMMING_DECODE, HammingDecodeAttrs(cb), [0])
    assert msg in str(e.value)


# ------------------------------------------------------------------------- per-op rule errors
def conv(c_out=2, c_in=1, k=3, w_bits=3, **kw):
    return Conv2dAttrs(np.ones((c_out, c_in, k, k), dtype=np.int64), np.zeros(c_out, np.int64),
                       w_bits, **kw)


@pytest.mark.parametrize("shape,attrs,msg", [
    ((4,), conv(), "conv2d expects a [C, H, W] input, got shape (4,)"),
    ((1, 4, 4), Conv2dAttrs(np.ones((2, 1, 3, 2)), np.zeros(2), 3),
     "conv2d weight must be [C_out, C_in, K, K]"),
    ((2, 4, 4), conv(c_in=1), "conv2d weight has 1 input channels but the input has 2"),
    ((1, 4, 4), conv(stride=0), "stride 0 / padding 0 invalid"),
    ((1, 4, 4), conv(padding=-1), "padding -1 invalid"),
    ((1, 2, 2), conv(k=3), "conv2d kernel 3 does not fit input 2x2"),
    ((1, 4, 4), Conv2dAttrs(np.full((1, 1, 3, 3), 4), np.zeros(1), 3),
     "weight value 4 is out of range for 3-bit signed weights (|w| <= 3)"),
    ((1, 4, 4), Conv2dAttrs(np.zeros((1, 1, 3, 3)), np.zeros(1), 1),
     "1-bit weights must be -1 or +1, found 0"),
    ((1, 4, 4), Conv2dAttrs(np.ones((1, 1, 3, 3)), np.zeros(2), 2),
     "bias shape (2,) does not match 1 outputs"),
    ((1, 4, 4), conv(w_bits=0), "w_bits must be >= 1, got 0"),
])
def test_conv2d_rule_errors(shape, attrs, msg):
    b = builder(shape)
    with pytest.raises(IRError) as e:
        b.add(Op.CONV2D, attrs, [0], name="c")
    assert str(e.value).startswith("conv2d 'c': ") and msg in str(e.value), str(e.value)


def test_conv2d_padding_makes_a_small_input_fit():
    b = builder((1, 2, 2))
    c = b.add(Op.CONV2D, conv(k=3, padding=1), [0])
    assert b.nodes[c].shape == (2, 2, 2)


@pytest.mark.parametrize("shape,attrs,msg", [
    ((1, 3, 3), dense(), "dense expects a flat input, got shape (1, 3, 3)"),
    ((4,), dense(n_in=3), "dense weight shape (2, 3) does not fit input length 4"),
    ((3,), dense(w_bits=1, bias=np.zeros(3, dtype=np.int64)), "bias shape (3,) does not match 2"),
    ((3,), DenseAttrs(np.full((1, 3), 2), np.zeros(1), 2), "weight value 2 is out of range"),
])
def test_dense_rule_errors(shape, attrs, msg):
    b = builder(shape)
    with pytest.raises(IRError) as e:
        b.add(Op.DENSE, attrs, [0], name="d")
    assert str(e.value).startswith("dense 'd': ") and msg in str(e.value), str(e.value)


@pytest.mark.parametrize("shape,attrs,msg", [
    ((4,), MaxPool2dAttrs(2, 2), "maxpool2d expects a [C, H, W] input"),
    ((1, 1, 4), MaxPool2dAttrs(2, 2), "do not fit 1x4"),
    ((1, 4, 4), MaxPool2dAttrs(0, 2), "kernel 0"),
    ((1, 4, 4), MaxPool2dAttrs(2, 0), "stride 0"),
])
def test_maxpool_rule_errors(shape, attrs, msg):
    b = builder(shape)
    with pytest.raises(IRError, match="^maxpool2d: ") as e:
        b.add(Op.MAXPOOL2D, attrs, [0])
    assert msg in str(e.value)


def test_maxpool_floor_mode_shape():
    b = builder((2, 5, 7))
    p = b.add(Op.MAXPOOL2D, MaxPool2dAttrs(2, 2), [0])
    q = b.add(Op.MAXPOOL2D, MaxPool2dAttrs(3, 1), [0])
    assert b.nodes[p].shape == (2, 2, 3) and b.nodes[q].shape == (2, 3, 5)


@pytest.mark.parametrize("shape,lo,hi,msg", [
    ((0, 3), 0, 1, "input shape (0, 3) has a non-positive dimension"),
    ((3,), 2, 1, "input range 2..1 is empty"),
])
def test_input_rule_errors(shape, lo, hi, msg):
    with pytest.raises(IRError) as e:
        GraphBuilder().add(Op.INPUT, InputAttrs(shape, lo, hi))
    assert msg in str(e.value)


# ------------------------------------------------------------------------- verify
def test_verify_catches_tampered_fields():
    g = small_graph()
    for what, value in [("type", IntType(False, 8)), ("lo", -1), ("hi", 99), ("shape", (3,))]:
        nodes = list(g.nodes)
        nodes[1] = dataclasses.replace(nodes[1], **{what: value})
        with pytest.raises(IRError, match=rf"node 1 \(fc\): stored {what} .* but the rules give"):
            IntGraph(tuple(nodes), g.outputs).verify()


def test_verify_catches_order_and_references():
    g = small_graph()
    n = list(g.nodes)
    with pytest.raises(IRError, match="is at position 1: nodes must be numbered in order"):
        IntGraph((n[0], dataclasses.replace(n[1], id=5), n[2]), g.outputs).verify()
    for bad_args in [(1,), (2,)]:  # itself, a later node
        with pytest.raises(IRError, match=r"node 1 \(fc\) uses an argument that is not an "
                                          r"earlier node"):
            IntGraph((n[0], dataclasses.replace(n[1], args=bad_args), n[2]), g.outputs).verify()


def test_verify_catches_wrong_attrs_class():
    g = small_graph()
    n = list(g.nodes)
    bad = dataclasses.replace(n[2], attrs=FlattenAttrs())
    with pytest.raises(IRError, match="requant 'relu': attributes must be RequantAttrs"):
        IntGraph((n[0], n[1], bad), g.outputs).verify()


def test_verify_catches_outputs_and_inputs():
    g = small_graph()
    with pytest.raises(IRError, match="graph has no outputs"):
        IntGraph(g.nodes, ()).verify()
    with pytest.raises(IRError, match="output id 3 is not a node"):
        IntGraph(g.nodes, (3,)).verify()
    with pytest.raises(IRError, match="output id -1 is not a node"):
        IntGraph(g.nodes, (-1,)).verify()
    b = builder()
    b.add(Op.INPUT, InputAttrs((2,), 0, 1), name="x2")
    with pytest.raises(IRError, match="exactly one INPUT node, first"):
        b.build([1])


def test_graph_is_immutable():
    g = small_graph()
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.nodes[1].lo = 0
    with pytest.raises(TypeError):
        g.meta["x"] = 1
    with pytest.raises(ValueError):
        g.nodes[1].attrs.weight[0, 0] = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.nodes[1].attrs.w_bits = 8


def test_every_op_has_one_spec_and_a_documented_section():
    """SPECS covers Op exactly; each spec's doc anchor names a section of docs/ir.md."""
    import re
    from pathlib import Path

    from heatq.ir import SPECS, OpSpec

    assert set(SPECS) == set(Op)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "ir.md").read_text()
    sections = set(re.findall(r"^### 5\.\d+ `(\w+)`", doc, flags=re.M))
    for op, spec in SPECS.items():
        assert isinstance(spec, OpSpec) and spec.op is op
        assert spec.doc_anchor == op.value and spec.doc_anchor in sections, op
        assert (spec.evaluate is None) == (op is Op.INPUT)
