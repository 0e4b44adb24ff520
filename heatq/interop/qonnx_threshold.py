"""Folding a real (non-power-of-two, e.g. per-channel float) weight scale into integer
thresholds, FINN's streamlining idea, for :mod:`heatq.interop.onnx_import`.

A ``Conv`` / ``Gemm`` / ``MatMul`` whose weight Quant has real scales ``s_o`` (one per output
channel ``o``), reading an input at ``2**-f_in``, computes ``acc_o * g_o`` with the integer
accumulator ``acc_o = b_o + sum w x`` and the real step ``g_o = 2**-f_in * s_o``.  When its only
consumer is an (optional ``Relu`` and an) unsigned activation ``Quant`` with a power-of-two
scale ``2**-f``, that Quant's integer is ``q = clip(round(acc_o * r_o), 0, hi)`` with
``r_o = g_o * 2**f``: a non-decreasing step function of the integer ``acc_o``, i.e. the number
of thresholds ``t[o, k] = min{a : round(a * r_o) >= k}`` (``k = 1 .. hi``) at or below it -- an
IR ``THRESHOLD`` after the integer product, exact for every accumulator value.  The thresholds
are computed in exact rational arithmetic from the scales' float values (ties as the Quant's
rounding mode says).  The bias must be an integer at the step ``g_o`` (up to float32 rounding
of the exported bias scale, which Brevitas computes as input scale x weight scale).

The THRESHOLD output is ``q`` (frac 0 in the IR) with real value ``q * 2**-f``: the importer
records the offset ``f`` so later layers and the tensor comparison use the real binary point
(``meta["frac_offsets"]``).  The product node itself has no ONNX tensor (its real scale is not
a power of two) and is not compared.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..ir import Op, Rounding, ThresholdAttrs
from .qonnx_model import quant_info, refuse


def _output_scales(imp, node, w: np.ndarray) -> np.ndarray:
    """The real weight scale of each output channel (float64 [O]); refused if it varies
    along an input axis."""
    q, info = imp.consts[node.input[1]]
    full = np.broadcast_to(info.scale, q.shape)
    if full.shape != w.shape:
        full = full.T
    rows = full.reshape(w.shape[0], -1)
    if not np.all(rows == rows[:, :1]):
        raise refuse(imp.label, node, "a real weight scale that varies along an input axis "
                                      "cannot be folded")
    return rows[:, 0].astype(np.float64)


def _next_quant(imp, node):
    """(Relu node or None, the activation Quant) consuming ``node`` alone, else refused."""
    why = ("a real (non-power-of-two) weight scale is folded into thresholds only when the "
           "layer's sole consumer is [Relu ->] an unsigned activation Quant")
    outputs = {o.name for o in imp.m.graph.output}
    users = imp.m.find_consumers(node.output[0]) or []
    relu = None
    if len(users) == 1 and users[0].op_type == "Relu" and node.output[0] not in outputs:
        relu = users[0]
        users = imp.m.find_consumers(relu.output[0]) or []
        if relu.output[0] in outputs:
            users = []
    last = relu or node
    if len(users) != 1 or users[0].op_type != "Quant" or last.output[0] in outputs:
        raise refuse(imp.label, node, why)
    return relu, users[0]


def _threshold(num: Fraction, k: int, mode: Rounding) -> int:
    """min{a integer : round(a * r) >= k} for ``num = (k - 1/2) / r`` (FLOOR: ``k / r``)."""
    if mode is Rounding.FLOOR or mode is Rounding.HALF_UP:
        return math.ceil(num)
    if num.denominator == 1:  # a * r == k - 1/2 exactly: half to even reaches k iff k even
        return int(num) if k % 2 == 0 else int(num) + 1
    return math.ceil(num)


def thresholds(ratios: list[Fraction], hi: int, mode: Rounding) -> np.ndarray:
    """int64 [O, hi]: row o holds ``t[o, k]`` for k = 1..hi of ``round(acc * ratios[o])``."""
    rows = []
    for r in ratios:
        row = []
        for k in range(1, hi + 1):
            num = Fraction(k) / r if mode is Rounding.FLOOR else (Fraction(k) - Fraction(1, 2)) / r
            row.append(_threshold(num, k, mode))
        rows.append(row)
    return np.array(rows, dtype=np.int64)


def _bias(imp, node, tensor, steps: np.ndarray) -> np.ndarray:
    """The bias as integers at the per-channel real steps (rel. error below 1e-6: float32)."""
    n = len(steps)
    if not tensor:
        return np.zeros(n, dtype=np.int64)
    real = imp.bias_real(node, tensor)
    real = np.broadcast_to(real.ravel(), (n,)) if real.size in (1, n) else None
    if real is None:
        raise refuse(imp.label, node, "bias size differs from the output channels")
    units = real / steps
    ints = np.rint(units)
    if np.any(np.abs(units - ints) > 1e-6 * np.maximum(1.0, np.abs(ints))):
        raise refuse(imp.label, node, "bias is not an integer multiple of the accumulator's "
                                      "step (input scale x weight scale)")
    return ints.astype(np.int64)


def fold_real(imp, node, x: int, op: Op, w: np.ndarray, bias_tensor, make_attrs) -> None:
    """The product ``op`` (integer weights ``w``, attributes from ``make_attrs(bias)``) of the
    layer ``node`` with real weight scales, then the THRESHOLD of its activation Quant."""
    relu, quant = _next_quant(imp, node)
    info = quant_info(imp.m, imp.label, quant)
    if len(set(info.fracs.ravel().tolist())) != 1:
        raise refuse(imp.label, quant, "a per-channel activation scale is not supported")
    if info.lo < 0 and relu is None:
        raise refuse(imp.label, quant, "a signed Quant after a real-scaled layer is not "
                                       "supported (thresholds count from 0)")
    from .onnx_import import _rounding

    mode = _rounding(imp, quant, info.rounding, 0)
    f_out, f_in = int(info.fracs.ravel()[0]), imp.frac(x)
    steps = _output_scales(imp, node, w) * 2.0 ** -f_in
    prod = imp.add(op, make_attrs(_bias(imp, node, bias_tensor, steps)), [x], node, None)
    ratios = [Fraction(float(s)) * Fraction(2) ** (f_out - f_in)
              for s in _output_scales(imp, node, w)]
    t = thresholds(ratios, info.hi, mode)
    nid = imp.add(Op.THRESHOLD, ThresholdAttrs(t), [prod], quant, quant.output[0])
    imp.offsets[nid] = f_out
    imp.act_bits[quant.name] = info.bits
    imp.skip.update({quant.name} | ({relu.name} if relu is not None else set()))
