"""The *widened* network of a balanced weight split, in torch (split-then-heat).

``heatq split RUN --weights balanced[:K] --to B`` (without ``--acts``) turns each selected
product ``y = W x + b`` (signed b-bit integer weights ``W`` at binary point ``w_frac``) into K
products of the same input with ``B``-bit weights ``P_i = floor((W + i) / K)`` (each
``floor(W/K)`` or ``ceil(W/K)``; ``sum_i P_i = W`` by Hermite's identity; see
:func:`heatq.passes.split_weights.balanced_planes`, the one implementation of the split) and
one ADD.  The widened torch layer (:class:`heatq.quant.WideConv2d` /
:class:`heatq.quant.WideLinear`) holds those K parts as one parameter ``[K, *W.shape]`` at the
base's ``w_frac``, each part quantized to ``B`` bits, summed in the forward pass.

Why the start is exact: each part's float value is ``P_i * 2**-w_frac``, which the layer's
quantizer maps back to ``P_i`` (``|P_i| <= 2**(B-1) - 1``, nothing clips, nothing rounds), and
``sum_i P_i = W``; so in eval the widened layer computes the base layer's integers, and the
widened network's logits, every layer's integers and its accuracy equal the base's before any
training.  Heating then trains the K parts separately (they are K times the weights, each
``B`` bits: the slides' "a wider network needs fewer bits").

A model spec ``{"model": ..., "widen": {layer: K, ...}}`` rebuilds the widened network
(:func:`heatq.models.build_model` calls :func:`apply_widen`); its state dict loads as usual.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import UserError
from .ir import IRError
from .quant import QConv2d, QLinear, WideConv2d, WideLinear, _WideParts


def _wide_of(step, parts: int):
    """A fresh widened twin of ``step`` (shapes, stride and bits copied; weights
    re-initialised).  The twin of a conv with a batch norm (:class:`heatq.resnet.QConvBN`) is a
    plain :class:`WideConv2d`: a quantized network's batch norm is already folded into the
    weights the parts split, so the twin has none."""
    if isinstance(step, QConv2d):
        c_out, c_in, k, _ = step.weight.shape
        return WideConv2d(c_in, c_out, k, step.bits, parts, stride=step.stride)
    c_out, c_in = step.weight.shape
    return WideLinear(c_in, c_out, step.bits, parts)


def apply_widen(net, widen: dict) -> None:
    """Replace, in place, each layer named in ``widen`` (``{name: K}``) of the QNet ``net``
    by its K-part widened twin (same name, position, bits).  UserError for a name that is not
    a conv2d / linear layer or a K that is not an integer >= 1."""
    if not isinstance(widen, dict):
        raise UserError(f"model spec 'widen' must map layer names to part counts, got {widen!r}")
    steps = dict(net.steps())
    for name, k in widen.items():
        step = steps.get(name)
        if not isinstance(step, (QConv2d, QLinear)) or isinstance(step, _WideParts):
            raise UserError(f"model spec 'widen': {name!r} is not a conv2d or linear layer")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise UserError(f"model spec 'widen': layer {name} needs an integer K >= 1, got {k!r}")
        parent, _, leaf = name.rpartition(".")
        setattr(net.get_submodule(parent) if parent else net, leaf, _wide_of(step, k))


def widen_plan(net, bits: int, k: int | None = None, layers=None) -> dict[str, np.ndarray]:
    """The balanced split of ``net``'s layers to ``bits``-bit weights: ``{name: parts}``,
    ``parts`` int64 ``[K, *W.shape]`` with ``sum(parts) == W`` (the layer's integer weights).
    ``layers``: names (None: every weighted layer); like the IR pass, a layer whose weights
    already fit ``bits`` is left alone.  IRError (from the split) when ``k`` copies cannot hold
    the weights; UserError when the layer needs the scale-2 binary form (no widened twin) or is
    already widened."""
    from .passes.split_common import fits_bits
    from .passes.split_weights import balanced_planes

    chosen = dict(net.weighted())
    if layers is not None:
        chosen = {n: chosen[n] for n in layers if n in chosen}
    out = {}
    for name, step in chosen.items():
        if isinstance(step, _WideParts):
            raise UserError(f"layer {name} is already widened; split the base run instead")
        if not getattr(step, "folded", True):
            raise UserError(f"layer {name}: its batch norm is not folded into the weights (a "
                            f"float network); split a quantized run")
        w = step.integer_params(0)[0].numpy()
        if fits_bits(w, bits):
            continue
        planes, scale = balanced_planes(w, bits, k, f"widen: {name}")
        if scale != 1:
            raise UserError(f"layer {name}: the balanced binary split needs weights of one parity "
                            f"(mixed ones need the doubled form, which has no widened network)")
        out[name] = np.stack([d for _, d, _ in planes]).astype(np.int64)
    return out


def widen_model(base, bits: int, k: int | None = None, layers=None):
    """``(widened QNet, {name: K})``: ``base`` (a quantized QNet) with every layer of
    :func:`widen_plan` widened and initialised by the exact split (module docstring): each
    part ``P_i * 2**-w_frac`` at the base's ``w_frac``, ``bits`` bits, the base's bias, the
    base's stride.  Every other parameter and buffer is the base's (a widened layer's folded
    batch norm's are dropped).  The result is in the base's mode, in eval."""
    from .models import build_model

    plan = widen_plan(base, bits, k, layers)
    widen = {name: int(p.shape[0]) for name, p in plan.items()}
    net = build_model({**base.spec, "widen": {**base.spec.get("widen", {}), **widen}})
    own = net.state_dict()
    # a folded batch norm's buffers (``<layer>.bn.*``, ``<layer>.bn_folded``) have no place in
    # the twin: they are in the weights being split
    state = {key: v for key, v in base.state_dict().items()
             if key in own or not any(key.startswith(f"{name}.") for name in plan)}
    for name, parts in plan.items():
        frac = int(state[f"{name}.w_frac"])
        state[f"{name}.weight"] = torch.from_numpy(parts.astype(np.float64) * 2.0 ** -frac).float()
        state[f"{name}.w_bits"] = torch.tensor(int(bits), dtype=torch.int64)
    net.load_state_dict(state)
    mode = next((s.mode for _, s in base.steps()), "quant")
    net.set_mode(mode)
    net.eval()
    return net, widen


def check_exact(net, base_graph, widen: dict) -> None:
    """IRError unless each widened layer's parts sum to ``base_graph``'s integer weights."""
    steps = dict(net.steps())
    for name in widen:
        parts = steps[name].integer_params(0)[0].numpy()
        if not np.array_equal(parts.sum(axis=0), base_graph.by_name(name).attrs.weight):
            raise IRError(f"widen: layer {name}: the parts do not sum to the base weights")


__all__ = ["apply_widen", "widen_plan", "widen_model", "check_exact"]
