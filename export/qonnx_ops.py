"""One lowering per IR op for the QONNX target (docs/qonnx.md has the table).

``lower(b, graph, node, names)`` appends the ONNX nodes that compute IR node ``node`` to the
:class:`~heatq_export.qonnx_build.ModelBuilder` ``b``; the tensor it produces is named
``names[node.id]`` and holds ``q * 2**-frac`` for the node's integers ``q`` and binary point
``frac = node.type.frac``.  Helper tensors are named ``<tensor>.<role>``.  Widths come from
the nodes' types and ranges; the exactness of float32 is checked before (``qonnx.py``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from heatq.ir import IntGraph, Op, Overflow, Rounding
from heatq.ir.requant import requant_plan

from .qonnx_build import ModelBuilder, cover_range, pow2, quant_range

Lowering = Callable[[ModelBuilder, IntGraph, object, list], str]


def _real(a, frac: int) -> np.ndarray:
    """Integers ``a`` as real float values ``a * 2**-frac`` (float64; exact below 2**53)."""
    return np.asarray(a, dtype=np.float64) * pow2(-frac)


def _arg(graph, node, k=0):
    return graph.nodes[node.args[k]]


def _input(b, graph, node, names):
    """A Quant on the graph input ``<name>.raw``: the identity on valid inputs, it states the
    input's integer type (clamp range covering ``lo..hi``, scale ``2**-frac``)."""
    return b.quant(names[node.id] + ".raw", names[node.id], node.shape, node.type.frac,
                   cover_range(node.lo, node.hi), "ROUND")


def _params(b, out, weight, bias, w_frac, f_out, w_bits=None) -> list[str]:
    """The weight and bias tensors of a product: weights signed narrow ``w_bits`` (1 bit:
    QONNX's bipolar, the IR's +-1), biases the narrowest signed range holding them."""
    w, c = np.asarray(weight), np.asarray(bias)
    if w_bits is None:  # a CMVM's matrix: the narrowest symmetric range
        w_bits = int(np.abs(w).max(initial=0)).bit_length() + 1
    w_rng = (True, w_bits > 1, w_bits)
    c_rng = cover_range(min(int(c.min(initial=0)), -1), int(c.max(initial=0)))
    return [b.param(out + ".weight", w, w_frac, w_rng), b.param(out + ".bias", c, f_out, c_rng)]


def _conv(b, out, x, shape, weight, bias, w_frac, f_out, stride, padding, w_bits=None):
    k = np.asarray(weight).shape[-1]
    ins = [x, *_params(b, out, weight, bias, w_frac, f_out, w_bits)]
    return b.node("Conv", ins, out, shape, kernel_shape=[k, k], strides=[stride, stride],
                  pads=[padding] * 4)


def _gemm(b, out, x, shape, weight, bias, w_frac, f_out, w_bits=None):
    ins = [x, *_params(b, out, weight, bias, w_frac, f_out, w_bits)]
    return b.node("Gemm", ins, out, shape, transB=1)


def _conv2d(b, graph, node, names):
    a = node.attrs
    return _conv(b, names[node.id], names[node.args[0]], node.shape, a.weight, a.bias,
                 a.w_frac, node.type.frac, a.stride, a.padding, a.w_bits)


def _dense(b, graph, node, names):
    a = node.attrs
    return _gemm(b, names[node.id], names[node.args[0]], node.shape, a.weight, a.bias,
                 a.w_frac, node.type.frac, a.w_bits)


def _cmvm(b, graph, node, names):
    """The adder graph's matrix ``W`` and constant ``c`` (``AdderGraph.matrix``) as the
    product it computes: Conv (``conv2d``; ``pointwise`` on a feature map, 1x1) or Gemm."""
    a, x = node.attrs, _arg(graph, node)
    w, c = a.graph.matrix()
    out, src = names[node.id], names[node.args[0]]
    if a.layout == "conv2d":
        w = w.reshape(len(w), x.shape[0], a.kernel, a.kernel)
        return _conv(b, out, src, node.shape, w, c, a.w_frac, node.type.frac, 1, a.padding)
    if len(x.shape) == 3:  # pointwise over a feature map
        return _conv(b, out, src, node.shape, w.reshape(*w.shape, 1, 1), c, a.w_frac,
                     node.type.frac, 1, 0)
    return _gemm(b, out, src, node.shape, w, c, a.w_frac, node.type.frac)


def _requant(b, graph, node, names):
    """Quant (FLOOR, or ROUND = half to even; HALF_UP with ``shift > 0`` as FLOOR at one bit
    more, ``+1``, FLOOR of the half) whose clamp range is the SATURATE range where a Quant
    range matches (else a Clip follows); WRAP: an unclamped Quant, then Mod (fmod) twice."""
    a, x = node.attrs, _arg(graph, node)
    out, src, f_in, f_out = names[node.id], names[node.args[0]], x.type.frac, node.type.frac
    plan = requant_plan(a, x.lo, x.hi)
    mode = "ROUND" if a.rounding is Rounding.HALF_EVEN and a.shift > 0 else "FLOOR"
    if a.rounding is Rounding.HALF_UP and a.shift > 0:
        s1, f1 = a.shift - 1, f_in - (a.shift - 1)
        half = b.quant(src, out + ".floor", node.shape, f1,
                       cover_range(x.lo >> s1, x.hi >> s1), "FLOOR")
        src = b.scalar_op("Add", half, pow2(-f1), out + ".half_up", node.shape)
    if a.overflow is Overflow.WRAP and plan.wrap_needed:
        return _wrap(b, out, src, node.shape, f_out, plan, mode)
    if a.overflow is Overflow.WRAP:
        return b.quant(src, out, node.shape, f_out, cover_range(plan.q_lo, plan.q_hi), mode)
    rng = quant_range(a.lo if plan.clip_lo else plan.q_lo, not plan.clip_lo,
                      a.hi if plan.clip_hi else plan.q_hi, not plan.clip_hi)
    if rng is not None:
        return b.quant(src, out, node.shape, f_out, rng, mode)
    q = b.quant(src, out + ".quant", node.shape, f_out, cover_range(node.lo, node.hi), mode)
    return b.node("Clip", [q, b.const(out + ".lo", pow2(-f_out) * node.lo),
                           b.const(out + ".hi", pow2(-f_out) * node.hi)], out, node.shape)


def _wrap(b, out, src, shape, f_out, plan, mode):
    """``lo + ((u - lo) mod 2**k)`` on the real values (unit ``2**-f_out``): fmod is exact,
    ``fmod(fmod(t, m) + m, m)`` is the floor modulo."""
    unit = pow2(-f_out)
    u = b.quant(src, out + ".quant", shape, f_out, cover_range(plan.q_lo, plan.q_hi), mode)
    m = b.const(out + ".modulus", unit * (plan.hi - plan.lo + 1))
    t = b.scalar_op("Add", u, -unit * plan.lo, out + ".offset", shape)
    t = b.node("Mod", [t, m], out + ".mod", shape, fmod=1)
    t = b.node("Add", [t, m], out + ".mod_pos", shape)
    t = b.node("Mod", [t, m], out + ".wrapped", shape, fmod=1)
    return b.scalar_op("Add", t, unit * plan.lo, out, shape)


def _maxpool(b, graph, node, names):
    a = node.attrs
    return b.node("MaxPool", [names[node.args[0]]], names[node.id], node.shape,
                  kernel_shape=[a.kernel, a.kernel], strides=[a.stride, a.stride])


def _flatten(b, graph, node, names):
    return b.node("Flatten", [names[node.args[0]]], names[node.id], node.shape, axis=1)


def _sign_bits(b, graph, node, names):
    """MultiThreshold with one global threshold of one unit: ``q >= 1`` is ``q > 0``."""
    x = _arg(graph, node)
    return b.multithreshold(names[node.args[0]], names[node.id], node.shape,
                            _real([[1]], x.type.frac), "BINARY")


def _threshold(b, graph, node, names):
    """MultiThreshold ``x >= t`` (THRESHOLD counts ``t <= q``); thresholds clamped into
    ``lo..hi+1`` of the argument (same counts, float32-exact)."""
    x = _arg(graph, node)
    t = np.clip(np.asarray(node.attrs.thresholds).astype(object), x.lo, x.hi + 1)
    dt = "BINARY" if node.type.width == 1 else f"UINT{node.type.width}"
    return b.multithreshold(names[node.args[0]], names[node.id], node.shape,
                            _real(t.astype(np.int64), x.type.frac), dt)


def _hamming(b, graph, node, names):
    """Distances ``d = x @ (1 - 2C)^T + rowsum(C)`` (Gemm, bits ``x`` at their binary
    point), then ArgMin (``select_last_index=0``: ties to the lowest index), Cast to float."""
    x, out = _arg(graph, node), names[node.id]
    c = np.asarray(node.attrs.codebook, dtype=np.int64)
    k = len(c)
    ins = [names[node.args[0]], b.const(out + ".codebook", _real(1 - 2 * c, -x.type.frac)),
           b.const(out + ".ones", c.sum(axis=1).astype(np.float64))]
    d = b.node("Gemm", ins, out + ".distance", (k,), transB=1)
    i = b.node("ArgMin", [d], out + ".index", (), elem="int64", axis=1, keepdims=0,
               select_last_index=0)
    return b.node("Cast", [i], out, (), to=1)


def _argmax(b, graph, node, names):
    """ArgMax over the vector (``select_last_index=0``: ties to the lowest index; the float32
    values order as their integers, exact within ``2**24``), Cast to float."""
    out = names[node.id]
    i = b.node("ArgMax", [names[node.args[0]]], out + ".index", (), elem="int64", axis=1,
               keepdims=0, select_last_index=0)
    return b.node("Cast", [i], out, (), to=1)


def _add(b, graph, node, names):
    """Each argument times ``2**shift`` (Mul; none for shift 0), then Sum."""
    out, terms = names[node.id], []
    for k, (a, s) in enumerate(zip(node.args, node.attrs.shifts)):
        terms.append(names[a] if s == 0 else
                     b.scalar_op("Mul", names[a], pow2(s), f"{out}.term{k}", node.shape))
    return b.node("Sum", terms, out, node.shape)


def _bit(b, graph, node, names):
    """``floor(q / 2**bit) - 2 * floor(q / 2**(bit+1))``: two FLOOR Quants, Sub, Mul."""
    x, out, bit = _arg(graph, node), names[node.id], node.attrs.bit
    f, src = x.type.frac, names[node.args[0]]
    lo_q = b.quant(src, out + ".floor", node.shape, f - bit,
                   cover_range(x.lo >> bit, x.hi >> bit), "FLOOR")
    hi_q = b.quant(lo_q, out + ".floor_next", node.shape, f - bit - 1,
                   cover_range(x.lo >> (bit + 1), x.hi >> (bit + 1)), "FLOOR")
    d = b.node("Sub", [lo_q, hi_q], out + ".bit_scaled", node.shape)
    return b.scalar_op("Mul", d, pow2(f - bit), out, node.shape)


def _global_avgpool(b, graph, node, names):
    """``GlobalAveragePool`` (``[N, C, 1, 1]``), then ``Flatten`` (``axis=1``) to ``[N, C]``.
    Its output, ``sum / 2**k``, is the IR's integer sum read at binary point ``frac_in + k``:
    every partial sum of the float32 sum is an integer (units ``2**-frac_in``) within the node's
    range (checked within ``2**24``), and the division by a power of two is exact."""
    c = node.shape[0]
    pool = b.node("GlobalAveragePool", [names[node.args[0]]], names[node.id] + ".pool",
                  (c, 1, 1))
    return b.node("Flatten", [pool], names[node.id], node.shape, axis=1)


def _concat(b, graph, node, names):
    return b.node("Concat", [names[a] for a in node.args], names[node.id], node.shape, axis=1)


LOWERINGS: dict[Op, Lowering] = {
    Op.INPUT: _input, Op.CONV2D: _conv2d, Op.DENSE: _dense, Op.CMVM: _cmvm,
    Op.REQUANT: _requant, Op.MAXPOOL2D: _maxpool, Op.FLATTEN: _flatten,
    Op.SIGN_BITS: _sign_bits, Op.THRESHOLD: _threshold, Op.HAMMING_DECODE: _hamming,
    Op.ADD: _add, Op.BIT: _bit, Op.CONCAT: _concat, Op.ARGMAX: _argmax,
    Op.GLOBAL_AVGPOOL: _global_avgpool,
}

__all__ = ["LOWERINGS"]
