"""``convert``: a trained quantized :class:`~heatq.models.QNet` -> :class:`~heatq.ir.IntGraph`.

Each step becomes one IR node with the step's name: QConv2d -> CONV2D (a ResNet's conv with
its batch norm folded in, any stride), QLinear -> DENSE, QReLU -> REQUANT (HALF_UP, SATURATE
to 0..2**bits-1), MaxPool -> MAXPOOL2D, Flatten -> FLATTEN, QGlobalAvgPool ->
GLOBAL_AVGPOOL, a residual block's QAdd -> :func:`heatq.ir.residual.aligned_add` (the walk
over the network is :func:`heatq.models.walk`, shared with the forward pass); the code logits then feed SIGN_BITS (``code_bits``) and HAMMING_DECODE (``class``).
A widened layer (:mod:`heatq.widen`, K weight parts) becomes K products of the same argument,
``<layer>.part0`` .. ``<layer>.part{K-1}`` (the bias in part 0, each part at the layer's bits and
``w_frac``), and one ``ADD`` (shifts 0) carrying the layer's name: exactly the graph of the
balanced weight split, with ``meta["regroup"]`` / ``meta["products"]`` saying so.
The learned input thresholds (:mod:`heatq.thresholds`, input code ``learned:T``) become
``<name>.copy``, a CONCAT of T copies of the pixel channel (wiring), and ``<name>``, a THRESHOLD
with one frozen threshold per channel; the INPUT is then the raw pixels, unsigned 8-bit (0..255).
The integers are read with the very functions the quantized forward pass uses, so the
graph computes exactly what the model computes (``heatq check`` proves it per layer).
"""

from __future__ import annotations

import numpy as np

from .ir import (
    AddAttrs, ConcatAttrs, Conv2dAttrs, DenseAttrs, FlattenAttrs, GlobalAvgPoolAttrs, GraphBuilder,
    HammingDecodeAttrs, InputAttrs, IntGraph, MaxPool2dAttrs, Op, Overflow, RequantAttrs,
    Rounding, SignBitsAttrs, ThresholdAttrs,
)
from .ir.residual import aligned_add
from .models import QNet, walk
from .quant import Flatten, MaxPool, QConv2d, QLinear, QReLU, _WideParts, part_name
from .resnet import QGlobalAvgPool
from .thresholds import COPY, LearnedThermometer

CODE_BITS = "code_bits"
CLASS = "class"


def convert(model: QNet, codebook: np.ndarray, meta: dict | None = None,
            decoder=None) -> IntGraph:
    """The integer graph of ``model`` (in quant mode) with a Hamming decoder over ``codebook``
    (uint8 [K, L]), or the learned ``decoder`` (:class:`heatq.decoder.Decoder`: DENSE with
    1-bit weights over the code bits, SIGN_BITS between layers, ARGMAX; ``meta["decoder"]``
    names it).  The input is the binary code planes (unsigned 1-bit, frac 0), or, for a model
    with learned input thresholds, the raw pixels (unsigned 8-bit, 0..255, frac 0)."""
    b = GraphBuilder()
    node = b.add(Op.INPUT, InputAttrs(model.input_shape, 0, input_top(model), 0), name="input")
    walker = GraphWalker(b)
    logits, _ = walk(model, walker, node, 0)
    weight_bits, act_bits, regroup = walker.weight_bits, walker.act_bits, walker.regroup
    bits = b.add(Op.SIGN_BITS, SignBitsAttrs(), [logits], CODE_BITS)
    if decoder is None:
        cls = b.add(Op.HAMMING_DECODE, HammingDecodeAttrs(codebook), [bits], CLASS)
    else:
        cls = decoder.add_to_graph(b, bits, CLASS)
    info = {"model": model.spec, "weight_bits": weight_bits, "act_bits": act_bits}
    if decoder is not None:
        info["decoder"] = decoder.spec.spec
    if regroup:
        info.update(_split_meta(b, regroup))
    info.update(meta or {})
    return b.build([logits, bits, cls], info)


class GraphWalker:
    """:func:`heatq.models.walk`'s IR interpreter: each step becomes its IR node(s)
    (:func:`add_step`), a residual sum :func:`heatq.ir.residual.aligned_add`; collects the
    layers' widths and a widened layer's regroup entries."""

    def __init__(self, b: GraphBuilder) -> None:
        self.b = b
        self.weight_bits: dict[str, int] = {}
        self.act_bits: dict[str, int] = {}
        self.regroup: dict[str, list] = {}

    def step(self, name: str, step, node: int, frac: int) -> tuple[int, int]:
        node, frac, parts = add_step(self.b, node, name, step, frac)
        record_bits(self.weight_bits, self.act_bits, name, step)
        if parts is not None:
            self.regroup[name] = parts
        return node, frac

    def add(self, name: str, step, nodes: list[int], fracs: list[int]) -> tuple[int, int]:
        return aligned_add(self.b, nodes, name), max(fracs)


def input_top(model: QNet) -> int:
    """The largest input value: 255 (8-bit pixels) when the first step is
    :class:`~heatq.thresholds.LearnedThermometer`, else 1 (binary code planes)."""
    first = next((s for _, s in model.steps()), None)
    return 255 if isinstance(first, LearnedThermometer) else 1


def add_step(b: GraphBuilder, node: int, name: str, step,
             frac: int) -> tuple[int, int, list | None]:
    """Append the IR form of one quantized step reading ``node`` (binary point ``frac``), named
    ``name``: (its node id, its output binary point, the regroup entries of a widened layer or
    None).  QConv2d -> CONV2D, QLinear -> DENSE, a widened layer -> its parts and an ADD,
    QReLU -> REQUANT (HALF_UP, SATURATE to 0..2**bits-1), MaxPool -> MAXPOOL2D, Flatten ->
    FLATTEN, LearnedThermometer -> CONCAT ``<name>.copy`` + THRESHOLD; TypeError for any
    other step."""
    if isinstance(step, LearnedThermometer):
        return _input_thresholds(b, node, name, step, frac), 0, None
    if isinstance(step, _WideParts):
        node, parts = _widened(b, node, name, step, frac)
        return node, frac + int(step.w_frac), parts
    if isinstance(step, (QConv2d, QLinear)):
        w, bias = (t.numpy() for t in step.integer_params(frac))
        return _product(b, node, name, step, w, bias), frac + int(step.w_frac), None
    if isinstance(step, QReLU):
        a_frac = int(step.a_frac)
        attrs = RequantAttrs(frac - a_frac, 0, step.top, Rounding.HALF_UP, Overflow.SATURATE)
        return b.add(Op.REQUANT, attrs, [node], name), a_frac, None
    if isinstance(step, MaxPool):
        return b.add(Op.MAXPOOL2D, MaxPool2dAttrs(2, 2), [node], name), frac, None
    if isinstance(step, Flatten):
        return b.add(Op.FLATTEN, FlattenAttrs(), [node], name), frac, None
    if isinstance(step, QGlobalAvgPool):
        pool = b.add(Op.GLOBAL_AVGPOOL, GlobalAvgPoolAttrs(), [node], name)
        return pool, b.nodes[pool].type.frac, None
    raise TypeError(f"convert: no IR form for step {name} ({type(step).__name__})")


def _input_thresholds(b: GraphBuilder, node: int, name: str, step: LearnedThermometer,
                      frac: int) -> int:
    """The learned thresholds' two nodes: pixel [1, H, W] -> ``<name>.copy`` (CONCAT of T
    copies: [T, H, W], unsigned 0..255) -> ``<name>`` (THRESHOLD, row j = [t_j]: [T, H, W] of
    0/1).  A CONCAT, not a 1x1 CONV2D with weights +1: the Verilog target builds a 1x1 conv as
    a window unit, which would leave the host unpaced in front of the first 'same'-padded
    conv's window (:func:`heatq_export.verilog._paced_window` walks THRESHOLD and CONCAT of one
    argument); CONCAT is wiring in every target.  Returns the THRESHOLD's id."""
    if frac != 0:
        raise ValueError(f"{name}: learned thresholds need integer pixels (frac 0), got {frac}")
    t = step.integer_thresholds().numpy().astype(np.int64)
    copy = b.add(Op.CONCAT, ConcatAttrs(len(t)), [node] * len(t), f"{name}.{COPY}")
    return b.add(Op.THRESHOLD, ThresholdAttrs(t.reshape(len(t), 1)), [copy], name)


def record_bits(weight_bits: dict, act_bits: dict, name: str, step) -> None:
    """Note a step's width in ``weight_bits`` (weighted layers) or ``act_bits`` (QReLU)."""
    if isinstance(step, (QConv2d, QLinear)):
        weight_bits[name] = step.bits
    elif isinstance(step, QReLU):
        act_bits[name] = step.bits


def _product(b: GraphBuilder, arg: int, name: str, step, w: np.ndarray, bias: np.ndarray) -> int:
    """One CONV2D / DENSE node of ``step``'s kind with integer weights ``w``, bias ``bias``."""
    if isinstance(step, QConv2d):
        attrs = Conv2dAttrs(w, bias, step.bits, int(step.w_frac), step.stride, step.padding)
        return b.add(Op.CONV2D, attrs, [arg], name)
    return b.add(Op.DENSE, DenseAttrs(w, bias, step.bits, int(step.w_frac)), [arg], name)


def _widened(b: GraphBuilder, arg: int, name: str, step, frac: int) -> tuple[int, list]:
    """The K part products of a widened layer and the ADD named ``name``; (ADD id, regroup
    entries ``[[part name, 0], ...]``)."""
    parts, bias = (t.numpy() for t in step.integer_params(frac))
    zero = np.zeros_like(bias)
    ids = [_product(b, arg, part_name(name, i), step, p, bias if i == 0 else zero)
           for i, p in enumerate(parts)]
    node = b.add(Op.ADD, AddAttrs((0,) * len(ids)), ids, name)
    return node, [[part_name(name, i), 0] for i in range(len(ids))]


def _split_meta(b: GraphBuilder, regroup: dict[str, list]) -> dict:
    """``meta["regroup"]`` (every named node but the parts -> itself, each widened layer ->
    its parts) and ``meta["products"]`` (every product of the unwidened network -> the
    products computing it), as the split passes write them (:mod:`heatq.passes.split_common`)."""
    parts = {p for entries in regroup.values() for p, _ in entries}
    names = [n for n in b.nodes if n.name and n.name not in parts]
    return {"regroup": {n.name: regroup.get(n.name, [[n.name, 0]]) for n in names},
            "products": {n.name: [p for p, _ in regroup.get(n.name, [[n.name, 0]])]
                         for n in names if n.name in regroup or n.op in (Op.DENSE, Op.CONV2D)}}
