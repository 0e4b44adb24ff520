"""Networks as ordered lists of quantized *steps* (see :mod:`heatq.quant`).

A model's forward pass threads ``(tensor, frac)`` through its steps; the step names
(``conv_block_1.conv2d``, ``fc.lin`` ...) are the layer names used by the IR, ``heatq check``
and every report.  The last step is a linear layer whose outputs are the code logits.
"""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn as nn

from .errors import UserError
from .ir.residual import ALIGN
from .quant import Flatten, MaxPool, QConv2d, QLinear, QReLU, QuantStep, QWeighted, part_name
from .resnet import resnet20


class QNet(nn.Module):
    """A sequence of named steps; nested module names give the layer names."""

    def __init__(self, blocks: dict[str, nn.Module], input_shape: tuple[int, ...],
                 spec: dict) -> None:
        super().__init__()
        for name, block in blocks.items():
            self.add_module(name, block)
        self.input_shape = tuple(input_shape)
        self.spec = dict(spec)

    def steps(self) -> Iterator[tuple[str, QuantStep]]:
        """(layer name, step) in forward order."""
        for name, module in self.named_modules():
            if isinstance(module, QuantStep):
                yield name, module

    def weighted(self) -> Iterator[tuple[str, QWeighted]]:
        """(layer name, layer) for the layers with weights."""
        return ((n, s) for n, s in self.steps() if isinstance(s, QWeighted))

    def set_mode(self, mode: str) -> None:
        """'float' (no quantization) or 'quant' on every step."""
        for _, s in self.steps():
            s.mode = mode

    def forward(self, x: torch.Tensor, trace: bool = False):
        """Code logits [N, L]; with ``trace`` also ``{name: (tensor, frac)}`` per step (and,
        for a widened layer, per weight part: ``{name}.part{i}``, as the IR names them; for a
        step with ``traced_nodes``, such as the learned input thresholds, each of its
        intermediate IR nodes ``{name}.{suffix}``; for a residual sum, each argument shifted
        to the sum's binary point, ``{add}.align{i}``, as :func:`heatq.ir.residual.aligned_add`
        names it)."""
        walker = TorchWalker(trace)
        x, _ = walk(self, walker, x, 0)
        return (x, walker.seen) if trace else x


def walk(module: nn.Module, walker, value, frac: int, prefix: str = ""):
    """Thread ``(value, frac)`` through ``module``'s children in order, the one description of
    a network's data flow that both the torch forward pass (:class:`TorchWalker`) and the IR
    converter (:mod:`heatq.qnet_ir`) interpret: a :class:`QuantStep` child goes to
    ``walker.step(name, step, value, frac)``, a child with its own ``walk`` (a residual block)
    threads itself, any other module's children are walked in order.  Names are the dotted
    module names (``stage1.block1.conv1``); returns the last ``(value, frac)``."""
    for child_name, child in module.named_children():
        name = f"{prefix}{child_name}"
        if isinstance(child, QuantStep):
            value, frac = walker.step(name, child, value, frac)
        elif hasattr(child, "walk"):
            value, frac = child.walk(walker, value, frac, name)
        else:
            value, frac = walk(child, walker, value, frac, name + ".")
    return value, frac


class TorchWalker:
    """:func:`walk`'s torch interpreter: runs each step; with ``trace`` records
    ``seen[name] = (tensor, frac)`` for every IR node the step becomes."""

    def __init__(self, trace: bool = False) -> None:
        self.seen: dict | None = {} if trace else None

    def step(self, name: str, step: QuantStep, x: torch.Tensor, frac: int):
        y, f = step(x, frac)
        if self.seen is not None:
            self.seen[name] = (y, f)
            parts = getattr(step, "traced_parts", None)
            if parts is not None:
                self.seen.update({part_name(name, i): (t, f) for i, t in parts(x, frac).items()})
            nodes = getattr(step, "traced_nodes", None)
            if nodes is not None:
                self.seen.update({f"{name}.{k}": v for k, v in nodes(x, frac).items()})
        return y, f

    def add(self, name: str, step: QuantStep, values: list, fracs: list[int]):
        y, f = step(values, fracs)
        if self.seen is not None:
            self.seen[name] = (y, f)
            self.seen.update({f"{name}.{ALIGN}{i}": (v, f)
                              for i, (v, fi) in enumerate(zip(values, fracs)) if fi < f})
        return y, f


def _conv_block(c_in: int, c_out: int, k: int, w_bits: int, a_bits: int) -> nn.Module:
    block = nn.Module()
    block.conv2d = QConv2d(c_in, c_out, k, w_bits)
    block.act = QReLU(a_bits)
    block.pool = MaxPool()
    return block


def _head(n_in: int, n_out: int, w_bits: int) -> nn.Module:
    head = nn.Module()
    head.lin = QLinear(n_in, n_out, w_bits)
    return head


def seed_cnn(in_channels: int, code_length: int, w_bits: int = 4, a_bits: int = 4,
             image_size: int = 28) -> QNet:
    """The seed network: conv_block(C,8,5), conv_block(8,16,3), conv_block(16,32,3),
    conv_block(32,64,3) (conv + quantized ReLU + maxpool2, 'same' padding), fc(64 -> L)."""
    size = image_size
    for _ in range(4):
        size //= 2
    if size < 1:
        raise UserError(f"seed-cnn needs images of at least 16x16, got {image_size}x{image_size}")
    widths = [(in_channels, 8, 5), (8, 16, 3), (16, 32, 3), (32, 64, 3)]
    blocks = {f"conv_block_{i + 1}": _conv_block(ci, co, k, w_bits, a_bits)
              for i, (ci, co, k) in enumerate(widths)}
    blocks["flatten"] = Flatten()
    blocks["fc"] = _head(64 * size * size, code_length, w_bits)
    spec = {"model": "seed-cnn", "in_channels": in_channels, "code_length": code_length,
            "w_bits": w_bits, "a_bits": a_bits, "image_size": image_size}
    return QNet(blocks, (in_channels, image_size, image_size), spec)


def mlp(in_channels: int, code_length: int, w_bits: int = 4, a_bits: int = 4,
        image_size: int = 28, hidden: int = 128,
        image_shape: tuple[int, int] | list[int] | None = None) -> QNet:
    """A small MLP: flatten, hidden_1 (linear + quantized ReLU), fc (-> code logits).

    The input is ``image_size`` x ``image_size``, or ``image_shape`` = (H, W) when given
    (any H, W >= 1, e.g. 1 x 10 features of a tabular dataset); the spec records the one given."""
    h, w = (image_size, image_size) if image_shape is None else (int(image_shape[0]),
                                                                 int(image_shape[1]))
    if h < 1 or w < 1:
        raise UserError(f"mlp: image shape must be at least 1x1, got {h}x{w}")
    hid = nn.Module()
    hid.lin = QLinear(in_channels * h * w, hidden, w_bits)
    hid.act = QReLU(a_bits)
    blocks = {"flatten": Flatten(), "hidden_1": hid, "fc": _head(hidden, code_length, w_bits)}
    spec = {"model": "mlp", "in_channels": in_channels, "code_length": code_length,
            "w_bits": w_bits, "a_bits": a_bits,
            **({"image_size": image_size} if image_shape is None else {"image_shape": [h, w]}),
            "hidden": hidden}
    return QNet(blocks, (in_channels, h, w), spec)


MODELS = {"seed-cnn": seed_cnn, "mlp": mlp, "resnet20": resnet20}
NON_SQUARE = ("mlp",)  # the models that take H x W inputs with H != W


def image_spec(model: str, h: int, w: int, who: str) -> dict:
    """The spec entries for H x W inputs: ``{"image_size": h}`` when square, else
    ``{"image_shape": [h, w]}`` for a model in :data:`NON_SQUARE`; UserError naming ``who``
    (the dataset) for another model."""
    if h == w:
        return {"image_size": h}
    if model not in NON_SQUARE:
        raise UserError(f"{who}: {model} needs square images, got {h}x{w} "
                        f"(models for any H x W: {', '.join(NON_SQUARE)})")
    return {"image_shape": [h, w]}


INPUT_CODE = "input_code"  # the name of the learned input thresholds' step (and IR node)


def with_input_thresholds(net: QNet, n: int) -> QNet:
    """``net`` (whose body takes ``n`` binary channels) behind a first step ``input_code``, the
    ``n`` learned thresholds of :class:`heatq.thresholds.LearnedThermometer`: the new network
    takes raw pixels ``(1, H, W)``, and its spec records ``input_thresholds: n``."""
    from .thresholds import LearnedThermometer

    if int(net.input_shape[0]) != int(n):
        raise UserError(f"input_thresholds {n}: the model takes {net.input_shape[0]} channels "
                        f"(in_channels must equal the number of thresholds)")
    blocks = {INPUT_CODE: LearnedThermometer(int(n)), **dict(net.named_children())}
    return QNet(blocks, (1, *net.input_shape[1:]), {**net.spec, "input_thresholds": int(n)})


def build_model(spec: dict) -> QNet:
    """Rebuild a model from its ``spec`` dict (as saved in summary.json / the torch state).
    ``spec["input_thresholds"]`` (T, optional) puts T learned input thresholds first
    (:func:`with_input_thresholds`, the ``learned:T`` input code); ``spec["widen"]``
    (``{layer: K}``, optional) rebuilds the widened network of a balanced weight split
    (:mod:`heatq.widen`); the spec is kept in ``model.spec``."""
    kwargs = {k: v for k, v in spec.items() if k not in ("model", "widen", "input_thresholds")}
    name = spec.get("model")
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    net = MODELS[name](**kwargs)
    if spec.get("input_thresholds"):
        net = with_input_thresholds(net, int(spec["input_thresholds"]))
    if spec.get("widen"):
        from .widen import apply_widen

        apply_widen(net, spec["widen"])
        net.spec["widen"] = dict(spec["widen"])
    return net


def set_layer_bits(model: QNet, weight_bits: dict[str, int] | None = None,
                   act_bits: dict[str, int] | None = None) -> None:
    """Change per-layer bit widths (names as in ``model.steps()``)."""
    steps = dict(model.steps())
    for table in (weight_bits or {}), (act_bits or {}):
        for name, b in table.items():
            if name not in steps:
                raise UserError(f"no layer named {name!r}")
            if int(b) < 1:
                raise UserError(f"layer {name}: bit width must be >= 1, got {b}")
            steps[name].bits = int(b)
