"""``convert_module`` (``heatq.convert``): a user's own ``nn.Module`` built from heatq's
quantized layers -> the exact :class:`~heatq.ir.IntGraph` of its quantized forward pass.

The module is traced with ``torch.fx``, heatq's steps (:class:`heatq.quant.QuantStep`:
QConv2d, QLinear, QReLU, MaxPool, Flatten, widened layers) being leaf modules.  Each step is
called as ``y, frac = step(x, frac)``: the binary point travels with the tensor, as in
:class:`heatq.models.QNet`.  A step reading the model's input gets the input's binary point as
an integer constant (the input tensor holds ``q * 2**-frac``); every other step must get the
``frac`` its argument's step returned (or that very integer).  Each step becomes the IR node(s)
that :func:`heatq.qnet_ir.add_step` writes for it, named by the module's qualified name; the
graph's outputs are the tensors the module returns.

Anything else in the traced graph -- a torch function or method (``x + y``, ``torch.cat``,
``x.relu()``), a module that is not a heatq step (``nn.Conv2d``, ``nn.ReLU``), a step in
float mode, a model in training mode, control flow fx cannot trace -- is refused with a
one-line :class:`~heatq.errors.UserError` naming the node.
"""

from __future__ import annotations

import operator

import numpy as np

from ..errors import UserError
from ..ir import GraphBuilder, InputAttrs, IntGraph, IRError, Op


def convert_module(model, example_input, input_range: tuple[int, int] | None = None,
                   meta: dict | None = None) -> IntGraph:
    """The integer graph of ``model`` (eval mode, its steps in ``"quant"`` mode) for inputs
    shaped like ``example_input`` (a float tensor ``[N, *shape]`` or ``[*shape]`` holding
    ``q * 2**-frac``).  ``input_range=(lo, hi)`` is the integer range of ``q``; by default the
    narrowest unsigned (or signed) power-of-two range holding the example's integers
    (the interpreter rejects inputs outside it)."""
    import torch

    from ..quant import QuantStep

    if model.training:
        raise UserError("convert: the model is in training mode (training would change its "
                        "binary points); call model.eval() first")
    steps = {name: m for name, m in model.named_modules() if isinstance(m, QuantStep)}
    for name, m in steps.items():
        if m.mode == "float":
            raise UserError(f"convert: layer '{name}' is in float mode; its integers are "
                            "defined in 'quant' mode (after quantization-aware training)")
    graph = _trace(model, QuantStep)
    x = torch.as_tensor(example_input)
    return _Converter(graph, steps, x, input_range).run(meta or {})


def _trace(model, leaf_cls):
    """The fx graph of ``model`` with heatq's steps as leaves; UserError if fx cannot trace."""
    import torch.fx as fx

    class _Tracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return isinstance(m, leaf_cls) or super().is_leaf_module(m, qualname)

    try:
        return _Tracer().trace(model)
    except Exception as e:  # fx raises TraceError, TypeError ... on code it cannot trace
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise UserError(f"convert: torch.fx cannot trace {type(model).__name__}.forward "
                        f"({first.strip()[:160]})") from None


def _range_of(q: np.ndarray) -> tuple[int, int]:
    """The narrowest ``0..2**b-1`` or ``-2**(b-1)..2**(b-1)-1`` holding ``q``."""
    lo, hi = int(q.min(initial=0)), int(q.max(initial=0))
    if lo >= 0:
        return 0, (1 << max(1, hi.bit_length())) - 1
    b = max((-lo - 1).bit_length(), hi.bit_length()) + 1
    return -(1 << (b - 1)), (1 << (b - 1)) - 1


class _Converter:
    """Walks the fx graph: values are ``("t", ir node id)`` for tensors, ``("f", frac)`` for
    binary points, ``("s", ir id, frac)`` for a step's ``(y, frac)`` result."""

    def __init__(self, graph, steps: dict, x, input_range) -> None:
        self.graph, self.steps, self.x, self.input_range = graph, steps, x, input_range
        self.b = GraphBuilder()
        self.env: dict = {}
        self.input_node = None
        self.weight_bits: dict[str, int] = {}
        self.act_bits: dict[str, int] = {}
        self.regroup: dict[str, list] = {}

    def refuse(self, node, why: str) -> UserError:
        return UserError(f"convert: node '{node.name}' ({node.op} {_target(node)}): {why}")

    def run(self, meta: dict) -> IntGraph:
        from ..qnet_ir import _split_meta

        outputs = None
        for node in self.graph.nodes:
            if node.op == "placeholder":
                self.placeholder(node)
            elif node.op == "call_module":
                self.env[node] = self.call_step(node)
            elif node.op == "call_function" and node.target is operator.getitem:
                self.env[node] = self.getitem(node)
            elif node.op == "output":
                outputs = self.outputs(node)
            else:
                raise self.refuse(node, "heatq.convert handles only heatq.quant steps (and "
                                        "unpacking their (tensor, frac) results)")
        info = {"source": "module", "weight_bits": self.weight_bits, "act_bits": self.act_bits}
        if self.regroup:
            info.update(_split_meta(self.b, self.regroup))
        try:
            return self.b.build(outputs, {**info, **meta})
        except IRError as e:
            raise UserError(f"convert: {e}") from None

    def placeholder(self, node) -> None:
        if self.input_node is None:
            self.input_node = node
            self.env[node] = ("x",)
        elif node.args and isinstance(node.args[0], int):  # forward(self, x, frac=0)
            self.env[node] = ("f", int(node.args[0]))
        else:
            raise self.refuse(node, "forward takes one tensor (and optionally a binary point "
                                    "with an integer default)")

    def input_id(self, node, frac: int) -> int:
        """The INPUT node (made on first use, at binary point ``frac``)."""
        if self.b.nodes:
            inp = self.b.nodes[0]
            if inp.type.frac != frac:
                raise self.refuse(node, f"the input is read at binary point {frac} here and "
                                        f"{inp.type.frac} elsewhere")
            return 0
        x = self.x.detach().double().numpy()
        shape = tuple(x.shape[1:]) if x.ndim >= 2 else tuple(x.shape)
        q = x * 2.0 ** frac
        if not np.array_equal(q, np.rint(q)):
            raise self.refuse(node, f"example_input is not integers times 2**-{frac}")
        lo, hi = self.input_range or _range_of(np.rint(q).astype(np.int64))
        return self.b.add(Op.INPUT, InputAttrs(shape, int(lo), int(hi), frac), [], "input")

    def frac_of(self, node, arg) -> int | None:
        if isinstance(arg, int) and not isinstance(arg, bool):
            return arg
        v = self.env.get(arg) if not isinstance(arg, (int, float, bool)) else None
        if v is not None and v[0] == "f":
            return v[1]
        raise self.refuse(node, f"the binary point argument {arg!r} is not an integer or a "
                                "step's returned frac")

    def call_step(self, node):
        from ..qnet_ir import add_step, record_bits

        name = node.target
        step = self.steps.get(name)
        if step is None:
            raise self.refuse(node, "not a heatq quantized layer (QConv2d, QLinear, QReLU, "
                                    "MaxPool, Flatten)")
        if len(node.args) != 2 or node.kwargs:
            raise self.refuse(node, "a step is called as step(x, frac)")
        src, frac = self.env.get(node.args[0]), self.frac_of(node, node.args[1])
        if src is None or src[0] not in ("x", "t"):
            raise self.refuse(node, f"argument {node.args[0]!r} is not a tensor of the network")
        if src[0] == "x":
            arg = self.input_id(node, frac)
        else:
            arg = src[1]
            if self.b.nodes[arg].type.frac != frac:
                raise self.refuse(node, f"called with frac {frac}, but its argument is at "
                                        f"binary point {self.b.nodes[arg].type.frac}")
        try:
            nid, out_frac, parts = add_step(self.b, arg, name, step, frac)
        except (IRError, TypeError) as e:
            raise self.refuse(node, str(e)) from None
        record_bits(self.weight_bits, self.act_bits, name, step)
        if parts is not None:
            self.regroup[name] = parts
        return ("s", nid, out_frac)

    def getitem(self, node):
        src, idx = self.env.get(node.args[0]), node.args[1]
        if src is None or src[0] != "s" or idx not in (0, 1):
            raise self.refuse(node, "only y, frac = step(x, frac) unpacking is supported")
        return ("t", src[1]) if idx == 0 else ("f", src[2])

    def outputs(self, node) -> list[int]:
        res = node.args[0]
        items = list(res) if isinstance(res, (tuple, list)) else [res]
        ids = []
        for item in items:
            v = self.env.get(item) if not isinstance(item, (int, float)) else ("f",)
            if v is None or v[0] == "x":
                raise self.refuse(node, f"output {item!r} is not a step's tensor")
            if v[0] == "s":
                ids.append(v[1])
            elif v[0] == "t":
                ids.append(v[1])
        if not ids:
            raise self.refuse(node, "the module returns no tensor")
        return ids


def _target(node) -> str:
    t = node.target
    return t if isinstance(t, str) else getattr(t, "__name__", repr(t))
