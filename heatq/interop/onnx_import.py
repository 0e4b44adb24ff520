"""``import_qonnx``: a QONNX model (as Brevitas ``export_qonnx`` writes it) -> an exact
:class:`~heatq.ir.IntGraph`.  See docs/import.md.

The model is first normalised with qonnx's transformations (:func:`.qonnx_model.normalise`).
Then, node by node, in topological order:

* the ``Quant`` on the graph input -> the ``INPUT`` node: its integers ``q`` (signed or not,
  ``min_int..max_int`` of the Quant) at binary point ``f`` (scale ``2**-f``).  The imported
  graph's input is this integer image of the model's input, ``q = clip(round(x * 2**f))``
  (:func:`input_integers` computes it from float inputs);
* a ``Quant`` on a float initializer -> constant integers (weights, biases), checked to be
  integers times the power-of-two scale;
* ``Conv`` -> ``CONV2D``, ``Gemm`` (``transB`` 0 or 1) / ``MatMul`` (+ a constant ``Add``) ->
  ``DENSE``: weights are the Quant's integers (per-channel power-of-two scales are brought to
  the finest one, exactly, by left shifts), the bias must be an integer at the accumulator's
  binary point (input scale x weight scale), else it is refused;
* ``Relu`` + activation ``Quant`` -> ``REQUANT`` (``shift = f_acc - f_out``, possibly negative;
  ``SATURATE`` to the Quant's range, ``lo`` raised to 0 by the Relu) rounding as the Quant's
  ``rounding_mode`` says: ``ROUND`` (= ``HALF_EVEN``) -> ``HALF_EVEN``, ``FLOOR`` -> ``FLOOR``,
  ``HALF_UP`` on a non-negative range -> ``HALF_UP``; a lone ``Relu`` -> ``REQUANT`` shift 0;
* ``MaxPool`` -> ``MAXPOOL2D``; ``Flatten`` / a ``Reshape`` to ``[1, n]`` (batch 1 baked in)
  -> ``FLATTEN``; ``Identity`` / ``Dropout`` pass through; ``Add`` of two tensors at one binary
  point -> ``ADD``.

The graph's outputs are the model's outputs, e.g. the last ``Gemm`` without an output Quant:
logits at the accumulator's binary point.  Real (e.g. per-channel float) weight scales before
[Relu ->] an unsigned activation Quant are folded into THRESHOLD integer thresholds
(:mod:`.qonnx_threshold`).  Anything else -- another non-power-of-two scale (it needs a real
multiplier), a non-zero zero point, a per-channel activation scale, another op -- is a
:class:`~heatq.errors.UserError` ``<file>: node '<name>' (<op>): <why>``.

Every IR node is named after the ONNX node it computes; ``meta["onnx_tensors"]`` maps each
IR name to the ONNX tensor holding ``value * 2**-frac`` of it (the source model's name).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import (
    AddAttrs, Conv2dAttrs, DenseAttrs, GraphBuilder, InputAttrs, IntGraph, IRError, Op, Overflow,
    RequantAttrs, Rounding,
)
from .qonnx_shapes import flatten, maxpool, reshape
from .qonnx_threshold import fold_real
from .qonnx_model import QuantInfo, attrs_of, constant_integers, load_model, normalise, \
    quant_info, refuse

SUPPORTED = ("Quant", "Conv", "Gemm", "MatMul", "Add", "Relu", "MaxPool", "Flatten", "Reshape",
             "Identity", "Dropout")
FLOAT32_EXACT_BITS = 24  # float32 represents every integer below 2**24 exactly


def import_qonnx(source) -> IntGraph:
    """The exact integer graph of a QONNX model (a path or an ``onnx.ModelProto``); raises
    :class:`~heatq.errors.UserError` naming the file and node for what it cannot represent."""
    model, label, _ = load_model(source)
    return _Importer(normalise(model, label), label).run()


def input_integers(graph: IntGraph, x: np.ndarray) -> np.ndarray:
    """The imported graph's input (int64 ``[N, *shape]``) for the model's float input ``x``:
    what the model's input Quant computes, ``clip(round(x * 2**frac), lo, hi)`` (its rounding
    mode: ROUND = half to even, FLOOR, HALF_UP)."""
    q = graph.meta["input_quant"]
    v = np.asarray(x, dtype=np.float64) * 2.0 ** q["frac"]
    mode = q["rounding"]
    r = np.rint(v) if mode == "half_even" else np.floor(v + 0.5) if mode == "half_up" \
        else np.floor(v)
    return np.clip(r, q["lo"], q["hi"]).astype(np.int64)


@dataclass(frozen=True)
class _Act:
    """An activation tensor: the IR node ``node`` holds it, or, with ``relu`` (the ONNX Relu
    node), the tensor is ``relu(node)`` and not yet in the graph."""

    node: int
    relu: object = None


_ROUNDING = {"ROUND": Rounding.HALF_EVEN, "HALF_EVEN": Rounding.HALF_EVEN,
             "FLOOR": Rounding.FLOOR}


class _Importer:
    """One translation: ONNX nodes in order -> GraphBuilder nodes."""

    def __init__(self, model, label: str) -> None:
        self.m, self.label = model, label
        self.b = GraphBuilder()
        self.acts: dict[str, _Act] = {}
        self.consts: dict[str, tuple[np.ndarray, QuantInfo]] = {}
        self.tensors: dict[str, str] = {}
        self.skip: set[str] = set()
        self.weight_bits: dict[str, int] = {}
        self.act_bits: dict[str, int] = {}
        self.input_quant: dict | None = None
        self.offsets: dict[int, int] = {}  # real binary point - IR frac (after a THRESHOLD)

    def run(self) -> IntGraph:
        graph = self.m.graph
        if len(graph.input) != 1:
            names = ", ".join(i.name for i in graph.input)
            raise refuse_model(self.label, f"expected one graph input, found {names}")
        for node in graph.node:
            if node.name in self.skip:
                continue
            handler = _HANDLERS.get(node.op_type)
            if handler is None or node.domain not in ("", "ai.onnx", "qonnx.custom_op.general"):
                raise refuse(self.label, node, "unsupported op (heatq imports "
                                               + ", ".join(SUPPORTED) + ")")
            handler(self, node)
        if self.input_quant is None:
            raise refuse_model(self.label, "the graph input goes through no Quant (its integer "
                                           "range and binary point are unknown)")
        outputs = [self.value(o.name, None) for o in graph.output]
        meta = {"source": "qonnx", "model": self.label, "onnx_tensors": self.tensors,
                "input_quant": self.input_quant, "weight_bits": self.weight_bits,
                "act_bits": self.act_bits,
                "frac_offsets": {self.b.nodes[i].name: o for i, o in self.offsets.items()
                                 if o and self.b.nodes[i].name in self.tensors}}
        try:
            g = self.b.build(outputs, meta)
        except IRError as e:
            raise refuse_model(self.label, str(e)) from None
        wide = [n.name for n in g.nodes if n.op in (Op.CONV2D, Op.DENSE)
                and max(-n.lo, n.hi) >= 1 << FLOAT32_EXACT_BITS]
        return IntGraph(g.nodes, g.outputs, {**meta, "float32_inexact": wide}) if wide else g

    # ---------------------------------------------------------------- tensors and nodes

    def act(self, tensor: str, node) -> _Act:
        """The activation ``tensor`` read by ``node``; refused when nothing imported makes it."""
        a = self.acts.get(tensor)
        if a is None:
            what = ("the graph input without a Quant" if tensor in
                    [i.name for i in self.m.graph.input] else "not an imported activation")
            raise refuse(self.label, node, f"input '{tensor}' is {what}")
        return a

    def value(self, tensor: str, node) -> int:
        """The IR node id holding ``tensor`` (a pending Relu becomes a REQUANT shift 0)."""
        if node is None and tensor not in self.acts:
            raise refuse_model(self.label, f"graph output '{tensor}' is not an imported tensor")
        a = self.act(tensor, node)
        if a.relu is None:
            return a.node
        arg = self.b.nodes[a.node]
        attrs = RequantAttrs(0, 0, max(arg.hi, 0), Rounding.FLOOR, Overflow.SATURATE)
        return self.add(Op.REQUANT, attrs, [a.node], a.relu, tensor)

    def add(self, op: Op, attrs, args: list[int], node, tensor: str | None) -> int:
        """Append the IR node computing ONNX ``node``'s output ``tensor`` (None: a value no
        ONNX tensor holds); it inherits its first argument's binary-point offset."""
        name, k = node.name, 1
        while name in self.tensors or name == "input":
            name, k = f"{node.name}.{k}", k + 1
        try:
            nid = self.b.add(op, attrs, args, name)
        except IRError as e:
            raise refuse(self.label, node, str(e)) from None
        if args and args[0] in self.offsets:
            self.offsets[nid] = self.offsets[args[0]]
        if tensor is not None:
            self.tensors[name] = tensor
            self.acts[tensor] = _Act(nid)
        return nid

    def acts_of(self, nid: int) -> _Act:
        """The activation held by IR node ``nid`` (no pending Relu)."""
        return _Act(nid)

    def frac(self, nid: int) -> int:
        """The real binary point of node ``nid`` (its IR frac plus any offset)."""
        return self.b.nodes[nid].type.frac + self.offsets.get(nid, 0)

    # ---------------------------------------------------------------- constants

    def weights(self, node, tensor: str) -> tuple[np.ndarray, int | None, int]:
        """(int64 weights, w_frac, w_bits) of the Quant output ``tensor``; per-channel
        power-of-two scales are brought to the finest binary point exactly (left shifts).
        ``w_frac`` is None for real (non-power-of-two) scales: the caller folds them."""
        if tensor not in self.consts:
            why = ("float weights without a Quant (their integers are undefined)"
                   if self.m.get_initializer(tensor) is not None
                   else "weights that are not a Quant of an initializer")
            raise refuse(self.label, node, why)
        q, info = self.consts[tensor]
        if info.fracs is None:
            needed = max(2, int(np.abs(q).max(initial=0)).bit_length() + 1)
            self.weight_bits[node.name] = max(info.bits, needed)
            return q, None, max(info.bits, needed)
        fracs = np.broadcast_to(info.fracs, q.shape)
        w_frac = int(info.fracs.max())
        w = q * (np.int64(1) << (w_frac - fracs))
        needed = max(2, int(np.abs(w).max(initial=0)).bit_length() + 1)
        self.weight_bits[node.name] = max(info.bits, needed)
        return w, w_frac, max(info.bits, needed)

    def bias_real(self, node, tensor: str) -> np.ndarray:
        """The real values (float64) of bias ``tensor``: a Quant of an initializer, or a float
        initializer; refused by name otherwise."""
        if tensor in self.consts:
            q, info = self.consts[tensor]
            return q.astype(np.float64) * info.scale
        if self.m.get_initializer(tensor) is not None:
            return np.asarray(self.m.get_initializer(tensor), dtype=np.float64)
        raise refuse(self.label, node, f"bias '{tensor}' is not a constant")

    def bias(self, node, tensor: str | None, acc_frac: int, n_out: int) -> np.ndarray:
        """The bias (int64 [n_out]) at the accumulator's binary point ``acc_frac``: a Quant of
        an initializer or a float initializer, refused unless an exact integer there."""
        if not tensor:
            return np.zeros(n_out, dtype=np.int64)
        real = self.bias_real(node, tensor)
        scaled = real * 2.0 ** acc_frac
        if not np.array_equal(scaled, np.rint(scaled)):
            raise refuse(self.label, node, f"bias is not an integer multiple of the "
                                           f"accumulator's step 2**-{acc_frac} (its scale must "
                                           "be input scale x weight scale)")
        if scaled.size not in (1, n_out):
            raise refuse(self.label, node, f"bias has {scaled.size} values for {n_out} outputs")
        return np.broadcast_to(np.rint(scaled).astype(np.int64).ravel(), (n_out,)).copy()


def refuse_model(label: str, why: str):
    """A refusal about the model as a whole (no one node to name)."""
    from .qonnx_model import Refusal

    return Refusal(f"{label}: {why}")


# -------------------------------------------------------------------- op handlers


def _rounding(imp: _Importer, node, mode: str, lo: int) -> Rounding:
    if mode in _ROUNDING:
        return _ROUNDING[mode]
    if mode == "HALF_UP" and lo >= 0:  # QONNX's HALF_UP is away from zero: = ties up on >= 0
        return Rounding.HALF_UP
    raise refuse(imp.label, node, f"rounding_mode {mode} on the range {lo}.. is not supported "
                                  "(heatq rounds half to even, floor, or half up on >= 0)")


def _quant(imp: _Importer, node) -> None:
    src = node.input[0]
    if imp.m.get_initializer(src) is not None:
        info = quant_info(imp.m, imp.label, node, real_ok=True)
        imp.consts[node.output[0]] = (constant_integers(imp.m, imp.label, node, info), info)
        return
    info = quant_info(imp.m, imp.label, node)
    if len(set(info.fracs.ravel().tolist())) != 1:
        raise refuse(imp.label, node, "a per-channel activation scale is not supported (no "
                                      "exact THRESHOLD fold implemented)")
    f = int(info.fracs.ravel()[0])
    if src == imp.m.graph.input[0].name and src not in imp.acts:
        return _input(imp, node, info, f)
    a = imp.act(src, node)
    lo, hi = (max(info.lo, 0), max(info.hi, 0)) if a.relu is not None else (info.lo, info.hi)
    rounding = _rounding(imp, node, info.rounding, lo)
    attrs = RequantAttrs(imp.frac(a.node) - f, lo, hi, rounding, Overflow.SATURATE)
    imp.add(Op.REQUANT, attrs, [a.node], node, node.output[0])
    imp.act_bits[node.name] = info.bits


def _input(imp: _Importer, node, info: QuantInfo, f: int) -> None:
    shape = imp.m.get_tensor_shape(node.input[0])
    if not shape or len(shape) < 2 or any(not isinstance(d, int) or d < 1 for d in shape[1:]):
        raise refuse(imp.label, node, f"input shape {shape} is not [batch, ...] with fixed sizes")
    nid = imp.b.add(Op.INPUT, InputAttrs(tuple(shape[1:]), info.lo, info.hi, f), [], "input")
    imp.tensors["input"] = node.output[0]
    imp.acts[node.output[0]] = _Act(nid)
    mode = _rounding(imp, node, info.rounding, info.lo).value
    imp.input_quant = {"tensor": node.input[0], "node": node.name, "frac": f, "lo": info.lo,
                       "hi": info.hi, "bits": info.bits, "signed": info.signed,
                       "rounding": mode}


def _relu(imp: _Importer, node) -> None:
    a = imp.act(node.input[0], node)
    imp.acts[node.output[0]] = _Act(a.node, a.relu if a.relu is not None else node)


def _alias(imp: _Importer, node) -> None:
    imp.acts[node.output[0]] = imp.act(node.input[0], node)


def _conv(imp: _Importer, node) -> None:
    a = attrs_of(node)
    w, w_frac, w_bits = imp.weights(node, node.input[1])
    k = w.shape[2:]
    strides, pads = a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0])
    checks = [(a.get("group", 1) == 1, f"group {a.get('group')} (only 1)"),
              (all(d == 1 for d in a.get("dilations", [1, 1])), "dilations other than 1"),
              (a.get("auto_pad", "NOTSET") == "NOTSET", f"auto_pad {a.get('auto_pad')}"),
              (len(k) == 2 and k[0] == k[1], f"kernel {list(k)} is not square 2-D"),
              (len(set(strides)) == 1, f"strides {strides} differ"),
              (len(set(pads)) == 1, f"pads {pads} are not one value on every side")]
    for ok, why in checks:
        if not ok:
            raise refuse(imp.label, node, f"{why} is not supported")
    x = imp.value(node.input[0], node)
    bias_t = node.input[2] if len(node.input) > 2 else None
    if w_frac is None:
        return fold_real(imp, node, x, Op.CONV2D, w, bias_t, lambda b: Conv2dAttrs(
            w, b, w_bits, 0, int(strides[0]), int(pads[0])))
    bias = imp.bias(node, bias_t, imp.frac(x) + w_frac, w.shape[0])
    attrs = Conv2dAttrs(w, bias, w_bits, w_frac, int(strides[0]), int(pads[0]))
    imp.add(Op.CONV2D, attrs, [x], node, node.output[0])


def _dense(imp: _Importer, node, w: np.ndarray, w_frac: int, w_bits: int, bias_tensor,
           out: str) -> None:
    x = imp.value(node.input[0], node)
    if len(imp.b.nodes[x].shape) != 1:
        raise refuse(imp.label, node, f"input shape {list(imp.b.nodes[x].shape)} is not a "
                                      "vector (flatten first)")
    w = np.ascontiguousarray(w)
    if w_frac is None:
        return fold_real(imp, node, x, Op.DENSE, w, bias_tensor,
                         lambda b: DenseAttrs(w, b, w_bits, 0))
    bias = imp.bias(node, bias_tensor, imp.frac(x) + w_frac, w.shape[0])
    imp.add(Op.DENSE, DenseAttrs(np.ascontiguousarray(w), bias, w_bits, w_frac), [x], node, out)


def _gemm(imp: _Importer, node) -> None:
    a = attrs_of(node)
    if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
        raise refuse(imp.label, node, "alpha, beta other than 1 or transA are not supported")
    w, w_frac, w_bits = imp.weights(node, node.input[1])
    w = w if a.get("transB", 0) else w.T
    _dense(imp, node, w, w_frac, w_bits, node.input[2] if len(node.input) > 2 else None,
           node.output[0])


def _matmul(imp: _Importer, node) -> None:
    w, w_frac, w_bits = imp.weights(node, node.input[1])
    users = imp.m.find_consumers(node.output[0]) or []
    out, bias = node.output[0], None
    if len(users) == 1 and users[0].op_type == "Add" and not _is_output(imp, out):
        add = users[0]
        other = [t for t in add.input if t != out]
        if len(other) == 1 and (other[0] in imp.consts or imp.m.get_initializer(other[0])
                                is not None):
            imp.skip.add(add.name)
            out, bias = add.output[0], other[0]
    _dense(imp, node, w.T, w_frac, w_bits, bias, out)


def _is_output(imp: _Importer, tensor: str) -> bool:
    return tensor in [o.name for o in imp.m.graph.output]


def _add(imp: _Importer, node) -> None:
    if any(t in imp.consts or imp.m.get_initializer(t) is not None for t in node.input):
        raise refuse(imp.label, node, "a constant added to a tensor that is not a MatMul's "
                                      "output is not supported")
    ids = [imp.value(t, node) for t in node.input]
    fracs = {imp.frac(i) for i in ids}
    if len(fracs) != 1:
        raise refuse(imp.label, node, f"its inputs have different scales (2**-f, f in "
                                      f"{sorted(fracs)}); align them with one Quant scale")
    imp.add(Op.ADD, AddAttrs((0,) * len(ids)), ids, node, node.output[0])


_HANDLERS = {"Quant": _quant, "Conv": _conv, "Gemm": _gemm, "MatMul": _matmul, "Add": _add,
             "Relu": _relu, "MaxPool": maxpool, "Flatten": flatten, "Reshape": reshape,
             "Identity": _alias, "Dropout": _alias}
