"""``convert``: a trained quantized :class:`~heatq.models.QNet` -> :class:`~heatq.ir.IntGraph`.

Each step becomes one IR node with the step's name: QConv2d -> CONV2D, QLinear -> DENSE,
QReLU -> REQUANT (HALF_UP, SATURATE to 0..2**bits-1), MaxPool -> MAXPOOL2D, Flatten ->
FLATTEN; the code logits then feed SIGN_BITS (``code_bits``) and HAMMING_DECODE (``class``).
The integers are read with the very functions the quantized forward pass uses, so the
graph computes exactly what the model computes (``heatq check`` proves it per layer).
"""

from __future__ import annotations

import numpy as np

from .ir import (
    Conv2dAttrs, DenseAttrs, FlattenAttrs, GraphBuilder, HammingDecodeAttrs, InputAttrs, IntGraph,
    MaxPool2dAttrs, Op, Overflow, RequantAttrs, Rounding, SignBitsAttrs,
)
from .models import QNet
from .quant import Flatten, MaxPool, QConv2d, QLinear, QReLU

CODE_BITS = "code_bits"
CLASS = "class"


def convert(model: QNet, codebook: np.ndarray, meta: dict | None = None) -> IntGraph:
    """The integer graph of ``model`` (in quant mode) with a Hamming decoder over ``codebook``
    (uint8 [K, L]).  The input is the binary code planes (unsigned 1-bit, frac 0)."""
    b = GraphBuilder()
    node = b.add(Op.INPUT, InputAttrs(model.input_shape, 0, 1, 0), name="input")
    frac = 0
    weight_bits, act_bits = {}, {}
    for name, step in model.steps():
        if isinstance(step, (QConv2d, QLinear)):
            w, bias = (t.numpy() for t in step.integer_params(frac))
            wf = int(step.w_frac)
            if isinstance(step, QConv2d):
                attrs = Conv2dAttrs(w, bias, step.bits, wf, 1, step.padding)
                node = b.add(Op.CONV2D, attrs, [node], name)
            else:
                node = b.add(Op.DENSE, DenseAttrs(w, bias, step.bits, wf), [node], name)
            frac += wf
            weight_bits[name] = step.bits
        elif isinstance(step, QReLU):
            a_frac = int(step.a_frac)
            attrs = RequantAttrs(frac - a_frac, 0, step.top, Rounding.HALF_UP, Overflow.SATURATE)
            node = b.add(Op.REQUANT, attrs, [node], name)
            frac = a_frac
            act_bits[name] = step.bits
        elif isinstance(step, MaxPool):
            node = b.add(Op.MAXPOOL2D, MaxPool2dAttrs(2, 2), [node], name)
        elif isinstance(step, Flatten):
            node = b.add(Op.FLATTEN, FlattenAttrs(), [node], name)
        else:
            raise TypeError(f"convert: no IR form for step {name} ({type(step).__name__})")
    logits = node
    bits = b.add(Op.SIGN_BITS, SignBitsAttrs(), [logits], CODE_BITS)
    cls = b.add(Op.HAMMING_DECODE, HammingDecodeAttrs(codebook), [bits], CLASS)
    info = {"model": model.spec, "weight_bits": weight_bits, "act_bits": act_bits}
    info.update(meta or {})
    return b.build([logits, bits, cls], info)
