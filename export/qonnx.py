"""``--target qonnx``: the integer network as a QONNX model (``model.onnx``).

Standard ONNX ops (Conv, Gemm, MaxPool, GlobalAveragePool, Flatten, Concat, Sum, Mul, Sub,
Add, Mod, Clip, ArgMin, Cast) plus the QONNX custom ops ``Quant`` and ``MultiThreshold`` (domain
``qonnx.custom_op.general``); ``--flavour plain`` replaces the two custom ops by standard ones
(Mul / Clip / Round / Floor, GreaterOrEqual / ReduceSum), so onnxruntime alone runs the model.
Every tensor is float32 and carries the real value ``q * 2**-frac`` of its IR node's
integers (QONNX's convention: a Quant outputs dequantized values); the tensor of IR node
``n`` is named :func:`tensor_names` ``[n.id]`` (``n.name``; ``<op>_<id>`` when unnamed), the
graph input ``<input name>.raw``.  docs/qonnx.md has the op table.

Exactness: onnxruntime computes Conv (float32 only on its CPU provider) and Gemm in float32
and QONNX's Quant returns float32, so every integer a node's float ops compute -- its range,
every partial sum of a product (the IR's partial-sum rule), the rounding and wrap
intermediates -- must satisfy ``|v| <= 2**24``, and every binary point ``|frac| <= 100``
(normal float32 exponents).  A node beyond that is refused by name (:class:`EmitError`
stating its width), as are the ops with a ``()`` feature shape that MultiThreshold cannot
take.
"""

from __future__ import annotations

import numpy as np

from heatq.ir import IntGraph, Op, Overflow, Rounding
from heatq.ir.requant import requant_plan
from heatq.ir.ops.weighted import affine_range

from .base import EmitError, Emitter, EmitOption

EXACT_BITS = 24
EXACT = 1 << EXACT_BITS
FRAC_LIMIT = 100


def tensor_names(graph: IntGraph) -> list[str]:
    """The ONNX tensor name of every IR node, by id: its ``name``; ``<op>_<id>`` for an
    unnamed node, with ``_<id>`` appended again while that collides with a layer name."""
    taken = {n.name for n in graph.nodes if n.name}
    out = []
    for n in graph.nodes:
        name = n.name
        if not name:
            name = f"{n.op.value}_{n.id}"
            while name in taken:
                name += f"_{n.id}"
            taken.add(name)
        out.append(name)
    return out


def _mag(*values: int) -> int:
    return max(abs(int(v)) for v in values)


def _requant_bound(node, x) -> int:
    a = node.attrs
    plan = requant_plan(a, x.lo, x.hi)
    bound = _mag(node.lo, node.hi, plan.q_lo, plan.q_hi, x.lo, x.hi)
    if a.rounding is Rounding.HALF_UP and a.shift > 0:
        bound = max(bound, _mag(x.lo, x.hi) + 1)
    if a.overflow is Overflow.WRAP and plan.wrap_needed:
        span = a.hi - a.lo + 1
        bound = max(bound, _mag(plan.q_lo - a.lo, plan.q_hi - a.lo) + span, _mag(a.lo))
    return bound


def magnitude(graph: IntGraph, node) -> int:
    """The largest magnitude of any integer the float ops of ``node`` compute (in units of
    its binary points): the value that must stay within ``2**24``."""
    args = [graph.nodes[a] for a in node.args]
    base = _mag(node.lo, node.hi, *[v for a in args for v in (a.lo, a.hi)])
    if node.op is Op.REQUANT:
        return max(base, _requant_bound(node, args[0]))
    if node.op is Op.ADD:
        return max(base, sum(_mag(a.lo, a.hi) << s for a, s in zip(args, node.attrs.shifts)))
    if node.op in (Op.CONV2D, Op.DENSE):
        return max(base, int(np.abs(node.attrs.weight).max(initial=0)))
    if node.op is Op.CMVM:
        w, c = node.attrs.graph.matrix()
        lo, hi = args[0].lo, args[0].hi
        if node.attrs.padding:
            lo, hi = min(lo, 0), max(hi, 0)
        ps_lo, ps_hi = affine_range(w, c, lo, hi)  # the IR's partial-sum rule (docs/ir.md §4)
        return max(base, ps_hi, -ps_lo, _mag(*w.ravel(), 0))
    if node.op is Op.THRESHOLD:
        return base + 1
    if node.op is Op.HAMMING_DECODE:
        return max(base, 2 * node.attrs.codebook.shape[1])
    return base


def check_exact(graph: IntGraph) -> None:
    """Raise :class:`EmitError` naming the first node the float32 model cannot compute
    exactly (its width, the bound it needs), or that the target cannot express.  The input
    is checked through its consumers (their bounds include their arguments' ranges), so the
    message names the layer that reads a too-wide input."""
    read = {a for n in graph.nodes for a in n.args}
    for node in graph.nodes:
        if node.op is Op.INPUT and node.id in read:
            continue
        fracs = [node.type.frac] + [graph.nodes[a].type.frac for a in node.args]
        if node.op in (Op.CONV2D, Op.DENSE, Op.CMVM):
            fracs.append(node.attrs.w_frac)
        if node.op is Op.ADD:  # the Mul by 2**shift (0 << 200 passes the bound below)
            fracs.extend(node.attrs.shifts)
        need = magnitude(graph, node)
        if need > EXACT:
            raise EmitError(
                f"qonnx: {node.op.value} {node.label()} ({node.type.c_style()}, range "
                f"{node.lo}..{node.hi}) computes integers up to {need} (a "
                f"{need.bit_length()}-bit magnitude): beyond float32's exact integers "
                "(|v| <= 2**24), in which onnxruntime's Conv / Gemm and QONNX's Quant compute")
        if max(abs(f) for f in fracs) > FRAC_LIMIT:
            raise EmitError(f"qonnx: {node.op.value} {node.label()}: binary point "
                            f"{node.type.frac} beyond +-{FRAC_LIMIT} (float32 exponents)")
        if node.op in (Op.SIGN_BITS, Op.THRESHOLD) and not node.shape:
            raise EmitError(f"qonnx: {node.op.value} {node.label()}: a per-sample scalar; "
                            "MultiThreshold needs a channel axis")


class QonnxEmitter(Emitter):
    """The integer network as a QONNX model, ``model.onnx`` (float32 tensors holding
    ``q * 2**-frac``; a symbolic batch dimension ``N``).  ``flavour``: ``qonnx`` (Quant /
    MultiThreshold custom ops) or ``plain`` (standard ONNX ops only)."""

    target = "qonnx"
    supported_ops = frozenset(Op)
    options = (EmitOption("flavour", str, "qonnx (Quant / MultiThreshold custom ops) | plain "
                          "(standard ONNX ops only)", default="qonnx",
                          choices=("qonnx", "plain")),)

    def __init__(self, flavour: str = "qonnx"):
        from .qonnx_build import FLAVOURS

        if flavour not in FLAVOURS:
            raise EmitError(f"unknown flavour {flavour!r} (choose {' or '.join(FLAVOURS)})")
        self.flavour = flavour

    def check_graph(self, graph: IntGraph) -> None:
        super().check_graph(graph)
        check_exact(graph)

    def build(self, graph: IntGraph):
        """The ``onnx.ModelProto`` of ``graph`` (checked by ``onnx.checker``)."""
        import onnx

        from .qonnx_build import ModelBuilder
        from .qonnx_ops import LOWERINGS

        self.check_graph(graph)
        names = tensor_names(graph)
        b = ModelBuilder(self.flavour)
        for node in graph.nodes:
            LOWERINGS[node.op](b, graph, node, names)
        outs = list(dict.fromkeys(names[o] for o in graph.outputs))
        inp = graph.nodes[0]
        meta = {"heatq.flavour": self.flavour, "heatq.value": "q * 2**-frac",
                "heatq.input": f"{names[0]}.raw",
                "heatq.fracs": ",".join(f"{names[n.id]}={n.type.frac}" for n in graph.nodes)}
        doc = (f"heatq integer network {graph.meta.get('name', '')}: float32 tensors hold "
               f"q * 2**-frac; input {names[0]}.raw = q * 2**-{inp.type.frac}, q in "
               f"{inp.lo}..{inp.hi}")
        model = b.model(str(graph.meta.get("name", "heatq")), {f"{names[0]}.raw": inp.shape},
                        outs, doc, meta)
        try:
            onnx.checker.check_model(model, full_check=self.flavour == "plain")
        except onnx.checker.ValidationError as e:  # a bug of this emitter, not the user's
            raise EmitError(f"qonnx: onnx.checker rejects the model: "
                            f"{str(e).splitlines()[0]}") from None
        return model

    def emit(self, graph: IntGraph) -> dict[str, str | bytes]:
        return {"model.onnx": self.build(graph).SerializeToString()}

    def summary(self, graph, files):
        names = tensor_names(graph)
        return {"flavour": self.flavour, "model": "model.onnx", "dtype": "float32",
                "value": "q * 2**-frac",
                "input": {"tensor": f"{names[0]}.raw", "frac": graph.nodes[0].type.frac},
                "tensors": {names[n.id]: {"id": n.id, "frac": n.type.frac,
                                          "type": n.type.c_style()} for n in graph.nodes},
                "outputs": [names[o] for o in graph.outputs]}
