"""The ONNX graph builder of the QONNX target: nodes, float32 constants, value infos, and the
two QONNX custom ops (``Quant``, ``MultiThreshold``) or their plain-ONNX equivalents.

Every tensor is float32 and carries a real value ``q * 2**-frac`` (the QONNX convention), with
a symbolic batch dimension ``N`` first.  ``onnx`` is imported inside the functions that need
it (``heatq-export`` must start fast); :class:`ModelBuilder` collects plain Python records and
:meth:`ModelBuilder.model` turns them into a ``ModelProto``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from heatq.cli_help import version

QONNX_DOMAIN = "qonnx.custom_op.general"
ONNX_OPSET = 13
QONNX_OPSET = 1
BATCH = "N"
FLAVOURS = ("qonnx", "plain")


def quant_range(lo: int, lo_free: bool, hi: int, hi_free: bool) -> tuple[bool, bool, int] | None:
    """The narrowest QONNX ``Quant`` clamp range ``(signed, narrow, bit_width)`` whose bounds
    ``A..B`` satisfy ``A == lo`` (or ``A <= lo`` when ``lo_free``) and ``B == hi`` (or
    ``B >= hi`` when ``hi_free``); None if no bit width gives one.  Ranges: unsigned
    ``0..2**b-1``, signed ``-2**(b-1)..2**(b-1)-1``, signed narrow ``-(2**(b-1)-1)..``;
    never a 1-bit signed Quant (QONNX makes that bipolar, -1/+1)."""
    for bits in range(1, 66):
        half = 1 << (bits - 1)
        kinds = [(False, False, 0, (1 << bits) - 1)]
        if bits >= 2:
            kinds += [(True, True, -half + 1, half - 1), (True, False, -half, half - 1)]
        for signed, narrow, a, b in kinds:
            if (a <= lo if lo_free else a == lo) and (b >= hi if hi_free else b == hi):
                return signed, narrow, bits
    return None


def cover_range(lo: int, hi: int) -> tuple[bool, bool, int]:
    """The narrowest Quant range holding ``lo..hi`` (no value is clamped)."""
    r = quant_range(lo, True, hi, True)
    assert r is not None, (lo, hi)
    return r


def pow2(e: int) -> float:
    """``2.0**e`` (exact; the caller keeps ``e`` inside float32's normal range)."""
    return float(2.0 ** e)


@dataclass
class _Node:
    op_type: str
    inputs: list[str]
    output: str
    domain: str
    attrs: dict[str, Any]


@dataclass
class ModelBuilder:
    """Collects the nodes, initializers and value infos of one model.  ``flavour`` is
    ``"qonnx"`` (Quant / MultiThreshold custom ops) or ``"plain"`` (standard ops only)."""

    flavour: str = "qonnx"
    nodes: list[_Node] = field(default_factory=list)
    inits: dict[str, np.ndarray] = field(default_factory=dict)
    shapes: dict[str, tuple[tuple[int, ...], int, bool]] = field(default_factory=dict)

    # ------------------------------------------------------------------ primitives
    def const(self, name: str, value) -> str:
        """A float32 initializer (an array or a scalar) named ``name``."""
        assert name not in self.inits and name not in self.shapes, name
        self.inits[name] = np.asarray(value, dtype=np.float32)
        return name

    def node(self, op_type: str, inputs: list[str], output: str, shape: tuple[int, ...],
             domain: str = "", elem: str = "float", **attrs) -> str:
        """One node producing tensor ``output`` of per-sample ``shape`` (the ONNX node has
        the output's name); ``elem`` is ``"float"``, ``"int64"`` or ``"bool"``."""
        assert output not in self.shapes and output not in self.inits, output
        self.nodes.append(_Node(op_type, list(inputs), output, domain, attrs))
        self.shapes[output] = (tuple(shape), {"float": 1, "int64": 7, "bool": 9}[elem], True)
        return output

    def scalar_op(self, op_type: str, x: str, value: float, out: str, shape) -> str:
        """``op_type(x, value)`` with a float32 scalar constant ``<out>.c``."""
        return self.node(op_type, [x, self.const(out + ".c", value)], out, shape)

    # ------------------------------------------------------------------ quantizers
    def quant(self, x: str, out: str, shape, frac: int, rng: tuple[bool, bool, int],
              mode: str) -> str:
        """``Quant``: ``out = clamp_round(x / 2**-frac) * 2**-frac`` with the clamp range
        ``rng`` = ``(signed, narrow, bit_width)`` and ``mode`` ``"ROUND"`` (half to even) or
        ``"FLOOR"``; in the plain flavour Mul, Clip, Round / Floor, Mul."""
        signed, narrow, bits = rng
        if self.flavour == "qonnx":
            ins = [x, self.const(out + ".scale", pow2(-frac)),
                   self.const(out + ".zeropt", 0.0), self.const(out + ".bitwidth", bits)]
            return self.node("Quant", ins, out, shape, QONNX_DOMAIN, signed=int(signed),
                             narrow=int(narrow), rounding_mode=mode)
        half = 1 << (bits - 1)
        lo = (-half + int(narrow)) if signed else 0
        hi = half - 1 if signed else (1 << bits) - 1
        y = self.scalar_op("Mul", x, pow2(frac), out + ".int", shape)
        y = self.node("Clip", [y, self.const(out + ".lo", lo), self.const(out + ".hi", hi)],
                      out + ".clamped", shape)
        y = self.node("Round" if mode == "ROUND" else "Floor", [y], out + ".rounded", shape)
        return self.scalar_op("Mul", y, pow2(-frac), out, shape)

    def param(self, name: str, ints: np.ndarray, frac: int, rng: tuple[bool, bool, int]) -> str:
        """A constant integer tensor (weights, biases) as its real values ``ints * 2**-frac``:
        in the QONNX flavour a float initializer ``<name>.float`` behind a ``Quant`` (scale
        ``2**-frac``, clamp range ``rng``, ROUND: the identity on these values) whose output
        ``<name>`` states the integer type, as Brevitas exports weights; else the
        initializer ``<name>``."""
        real = np.asarray(ints, dtype=np.float64) * pow2(-frac)
        if self.flavour != "qonnx":
            return self.const(name, real)
        src = self.const(name + ".float", real)
        signed, narrow, bits = rng
        ins = [src, self.const(name + ".scale", pow2(-frac)), self.const(name + ".zeropt", 0.0),
               self.const(name + ".bitwidth", bits)]
        self.nodes.append(_Node("Quant", ins, name, QONNX_DOMAIN, {
            "signed": int(signed), "narrow": int(narrow), "rounding_mode": "ROUND"}))
        self.shapes[name] = (tuple(real.shape), 1, False)
        return name

    def multithreshold(self, x: str, out: str, shape, thresholds: np.ndarray,
                       out_dtype: str) -> str:
        """``MultiThreshold``: ``out[n, c, ...] = #{k : x[n, c, ...] >= t[c, k]}`` (channel
        axis 1; ``t`` ``[C, T]`` or ``[1, T]`` for every channel); plain flavour:
        GreaterOrEqual against the thresholds broadcast on a new last axis, Cast, ReduceSum."""
        t = np.asarray(thresholds, dtype=np.float64)
        if self.flavour == "qonnx":
            layout = {1: "NC", 2: "NCW", 3: "NCHW"}[len(shape)]
            return self.node("MultiThreshold", [x, self.const(out + ".thresholds", t)], out,
                             shape, QONNX_DOMAIN, out_dtype=out_dtype, out_scale=1.0,
                             out_bias=0.0, data_layout=layout)
        tb = t.reshape((t.shape[0],) + (1,) * (len(shape) - 1) + (t.shape[1],))
        xe = self.node("Unsqueeze", [x, self.int_const(out + ".axis", [-1])], out + ".x",
                       (*shape, 1))
        ge = self.node("GreaterOrEqual", [xe, self.const(out + ".thresholds", tb)],
                       out + ".ge", (*shape, t.shape[1]), elem="bool")
        cnt = self.node("Cast", [ge], out + ".count", (*shape, t.shape[1]), to=1)
        return self.node("ReduceSum", [cnt, self.int_const(out + ".axes", [-1])], out, shape,
                         keepdims=0)

    def int_const(self, name: str, value) -> str:
        """An int64 initializer (axes, shapes)."""
        assert name not in self.inits and name not in self.shapes, name
        self.inits[name] = np.asarray(value, dtype=np.int64)
        return name

    # ------------------------------------------------------------------ assembly
    def model(self, graph_name: str, inputs: dict[str, tuple[int, ...]], outputs: list[str],
              doc: str, metadata: dict[str, str]):
        """The ``ModelProto``: graph inputs ``{name: per-sample shape}``, graph outputs (each
        once), a value info for every other tensor, fixed producer fields."""
        from onnx import helper, numpy_helper

        def vi(name, shape, elem=1, batched=True):
            return helper.make_tensor_value_info(name, elem,
                                                 [BATCH, *shape] if batched else list(shape))

        nodes = [helper.make_node(n.op_type, n.inputs, [n.output], name=n.output,
                                  domain=n.domain or None, **n.attrs) for n in self.nodes]
        g_in = [vi(k, s) for k, s in inputs.items()]
        g_out = [vi(o, *self.shapes[o]) for o in outputs]
        inner = [vi(k, *v) for k, v in self.shapes.items() if k not in set(outputs)]
        inits = [numpy_helper.from_array(v, k) for k, v in self.inits.items()]
        graph = helper.make_graph(nodes, graph_name, g_in, g_out, inits, doc_string=doc,
                                  value_info=inner)
        opsets = [helper.make_opsetid("", ONNX_OPSET)]
        if self.flavour == "qonnx":
            opsets.append(helper.make_opsetid(QONNX_DOMAIN, QONNX_OPSET))
        model = helper.make_model(graph, opset_imports=opsets, producer_name="heatq",
                                  producer_version=version(), ir_version=8)
        helper.set_model_props(model, metadata)
        return model
