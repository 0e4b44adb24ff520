"""Quantized PyTorch layers whose forward pass equals the IR's integer semantics exactly.

Every quantized tensor is ``integer * 2**-frac`` with a power-of-two scale per layer:

* weights: signed, symmetric narrow range ``|w_int| <= 2**(bits-1) - 1`` (1 bit: w in {-1,+1}),
  ``w_int = clamp(round(w * 2**w_frac))``; ``w_frac`` is the largest exponent at which the
  largest weight needs no clipping, re-chosen from the weights in training mode and frozen
  in a buffer, so evaluation and :mod:`heatq.qnet_ir` read the very same integers;
* biases: ``round(b * 2**(in_frac + w_frac))`` at the accumulator's binary point;
* activations after ReLU: unsigned ``bits``, ``a_int = clamp(floor(y * 2**a_frac + 1/2), 0,
  2**bits - 1)`` (the IR's REQUANT with HALF_UP rounding and SATURATE to 0..2**bits-1);
  ``a_frac`` follows a running maximum of the activations in training mode.

Gradients pass the rounding by a straight-through estimator.  Each layer is a *step* with
``forward(x, frac) -> (y, frac)`` so the binary point travels with the tensor.  A layer's
``mode`` is ``"float"`` (no quantization, for pre-training) or ``"quant"``; ``"heat"`` hands
the forward pass to the step's ``heater`` (see :mod:`heatq.heat.noise`: rounding noise scaled by
a temperature, soft staircases), which only :mod:`heatq.heat` sets.

A step's ``step_rule`` (a plain attribute, default ``"max"``: the rule above) may be set to
``"mse"``: in training mode the binary point is then the one, from the no-clipping one up to a
few finer ones, with the least squared rounding error (clipping the largest values); low bit
widths need it.  Either way the chosen point is frozen in the buffer that evaluation and
:mod:`heatq.qnet_ir` read.

Each layer's bit width is a buffer (``w_bits`` / ``a_bits``, read and written through the
``bits`` attribute), so per-layer widths travel with the state dict; a state dict saved
without them loads too, keeping the widths the model was built with.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from heatq.ir.ops.weighted import weight_bound  # the IR's weight range, also used here


def ste(x_float: torch.Tensor, x_quant: torch.Tensor) -> torch.Tensor:
    """Value of ``x_quant`` with the gradient of ``x_float`` (straight-through estimator)."""
    return x_float + (x_quant - x_float).detach()


def largest_frac(max_abs: float, bound: int, lo: int = -32, hi: int = 32) -> int:
    """The largest f in lo..hi with ``max_abs * 2**f <= bound`` (exact, no log rounding)."""
    if max_abs <= 0:
        return hi
    f = int(math.floor(math.log2(bound / max_abs)))
    while f < hi and math.ldexp(max_abs, f + 1) <= bound:
        f += 1
    while f > lo and math.ldexp(max_abs, f) > bound:
        f -= 1
    return max(lo, min(hi, f))


def mse_weight_frac(w: torch.Tensor, bits: int, f_max: int, extra: int = 4) -> int:
    """The binary point in ``f_max .. f_max + extra`` whose rounding (with clipping to the
    ``bits``-bit levels) has the least squared error on ``w`` (ties: the smallest)."""
    w = w.detach()
    errs = [float(((integer_weights(w, bits, f) * 2.0 ** -f - w) ** 2).sum())
            for f in range(f_max, f_max + extra + 1)]
    return f_max + min(range(len(errs)), key=errs.__getitem__)


def mse_act_frac(y: torch.Tensor, top: int, f_max: int, extra: int = 3) -> int:
    """Like :func:`mse_weight_frac` for unsigned activations ``y >= 0`` (levels 0..top)."""
    y = y.detach()
    errs = [float(((torch.clamp(torch.floor(y * 2.0 ** f + 0.5), 0, top) * 2.0 ** -f - y) ** 2)
                  .sum()) for f in range(f_max, f_max + extra + 1)]
    return f_max + min(range(len(errs)), key=errs.__getitem__)


def integer_weights(w: torch.Tensor, bits: int, frac: int) -> torch.Tensor:
    """Integer weights (as a float tensor of integers) for ``bits`` bits at ``frac``."""
    scaled = w * (2.0 ** frac)
    if bits == 1:
        return torch.where(scaled >= 0, torch.ones_like(w), -torch.ones_like(w))
    b = weight_bound(bits)
    return torch.clamp(torch.round(scaled), -b, b)


class QuantStep(nn.Module):
    """Base of every step: a ``mode`` flag ('float', 'quant' or 'heat') shared by quantized
    layers.  In mode 'heat' the step's ``heater`` (an object with ``weight(step, w)`` and
    ``act(step, y)``, set by :mod:`heatq.heat`) gives the training forward pass; in eval
    mode 'heat' computes exactly what 'quant' computes."""

    heater = None
    step_rule = "max"

    def __init__(self) -> None:
        super().__init__()
        self.mode = "float"


class _BitsBuffer:
    """``bits`` as a plain int attribute stored in the int64 buffer named ``buffer``."""

    def __init__(self, buffer: str) -> None:
        self.buffer = buffer

    def __get__(self, obj, objtype=None):
        return self if obj is None else int(getattr(obj, self.buffer))

    def __set__(self, obj, value) -> None:
        getattr(obj, self.buffer).fill_(int(value))


def _load_bits_tolerantly(module: nn.Module, buffer: str, state_dict: dict, prefix: str) -> None:
    """State dicts written before widths were buffers lack ``buffer``: keep the built width."""
    key = prefix + buffer
    if key not in state_dict:
        state_dict[key] = getattr(module, buffer).clone()


class QWeighted(QuantStep):
    """Shared weight and bias quantization of QConv2d and QLinear."""

    bits = _BitsBuffer("w_bits")

    def _init_quant(self, bits: int) -> None:
        self.register_buffer("w_bits", torch.tensor(int(bits), dtype=torch.int64))
        self.register_buffer("w_frac", torch.tensor(0, dtype=torch.int64))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        _load_bits_tolerantly(self, "w_bits", state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def weight_transform(self, w: torch.Tensor) -> torch.Tensor:
        """The weight used in the forward pass (hook for heating)."""
        if self.training:
            f = largest_frac(float(w.detach().abs().max()), weight_bound(self.bits))
            if self.step_rule == "mse":
                f = mse_weight_frac(w, self.bits, f)
            self.w_frac.fill_(f)
            if self.mode == "heat" and self.heater is not None:
                return self.heater.weight(self, w)
        f = int(self.w_frac)
        return ste(w, integer_weights(w, self.bits, f) * 2.0 ** -f)

    def quantized_params(self, in_frac: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) as used by the forward pass at input binary point ``in_frac``."""
        if self.mode == "float":
            return self.weight, self.bias
        w = self.weight_transform(self.weight)
        f = in_frac + int(self.w_frac)
        b = ste(self.bias, torch.round(self.bias * 2.0 ** f) * 2.0 ** -f)
        return w, b

    def integer_params(self, in_frac: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Integer (weight, bias) as int64 tensors, exactly as the quantized forward uses them."""
        f = int(self.w_frac)
        with torch.no_grad():
            w = integer_weights(self.weight.detach().double(), self.bits, f)
            b = torch.round(self.bias.detach().double() * 2.0 ** (in_frac + f))
        return w.long(), b.long()


class QConv2d(QWeighted):
    """Conv2d ('same' zero padding ``kernel // 2``, ``stride`` 1 or more) with ``bits``-bit
    power-of-two weights."""

    def __init__(self, c_in: int, c_out: int, kernel: int, bits: int = 4, stride: int = 1) -> None:
        super().__init__()
        conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
        self.weight, self.bias = conv.weight, conv.bias
        self.padding = kernel // 2
        self.stride = int(stride)
        self._init_quant(bits)

    def forward(self, x: torch.Tensor, frac: int) -> tuple[torch.Tensor, int]:
        w, b = self.quantized_params(frac)
        return (F.conv2d(x, w, b, stride=self.stride, padding=self.padding),
                frac + int(self.w_frac))


class QLinear(QWeighted):
    """Linear layer with ``bits``-bit power-of-two weights."""

    def __init__(self, n_in: int, n_out: int, bits: int = 4) -> None:
        super().__init__()
        lin = nn.Linear(n_in, n_out)
        self.weight, self.bias = lin.weight, lin.bias
        self._init_quant(bits)

    def forward(self, x: torch.Tensor, frac: int) -> tuple[torch.Tensor, int]:
        w, b = self.quantized_params(frac)
        return F.linear(x, w, b), frac + int(self.w_frac)


class QReLU(QuantStep):
    """ReLU quantized to ``bits`` unsigned bits at a power-of-two step ``2**-a_frac``."""

    bits = _BitsBuffer("a_bits")

    def __init__(self, bits: int = 4, momentum: float = 0.05) -> None:
        super().__init__()
        self.register_buffer("a_bits", torch.tensor(int(bits), dtype=torch.int64))
        self.momentum = momentum
        self.register_buffer("a_frac", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("amax", torch.tensor(0.0))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        _load_bits_tolerantly(self, "a_bits", state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def top(self) -> int:
        """Largest integer activation, ``2**bits - 1``."""
        return (1 << self.bits) - 1

    def _track(self, y: torch.Tensor) -> None:
        m = float(y.detach().max())
        a = float(self.amax)
        self.amax.fill_(m if a == 0 else (1 - self.momentum) * a + self.momentum * m)
        f = largest_frac(float(self.amax), self.top)
        if self.step_rule == "mse":
            f = mse_act_frac(y, self.top, f)
        self.a_frac.fill_(f)

    def act_transform(self, y: torch.Tensor) -> torch.Tensor:
        """Quantized ReLU output (hook for heating)."""
        f = int(self.a_frac)
        q = torch.clamp(torch.floor(y * 2.0 ** f + 0.5), 0, self.top) * 2.0 ** -f
        return ste(torch.clamp(y, 0, self.top * 2.0 ** -f), q)

    def forward(self, y: torch.Tensor, frac: int) -> tuple[torch.Tensor, int]:
        if self.mode == "float":
            return F.relu(y), frac
        if self.training:
            self._track(F.relu(y))
            if self.mode == "heat" and self.heater is not None:
                return self.heater.act(self, y), int(self.a_frac)
        return self.act_transform(y), int(self.a_frac)


class MaxPool(QuantStep):
    """2x2 max pooling, stride 2 (floor mode); the binary point is unchanged."""

    def forward(self, x: torch.Tensor, frac: int) -> tuple[torch.Tensor, int]:
        return F.max_pool2d(x, 2), frac


class Flatten(QuantStep):
    """Flatten [N, C, H, W] to [N, C*H*W] in C order."""

    def forward(self, x: torch.Tensor, frac: int) -> tuple[torch.Tensor, int]:
        return torch.flatten(x, 1), frac


def part_name(layer: str, i: int) -> str:
    """The name of part ``i`` of the widened layer ``layer`` (trace and IR): ``layer.part{i}``."""
    return f"{layer}.part{i}"


class _WideParts:
    """The K weight parts of a *widened* layer (see :mod:`heatq.widen`): one parameter
    ``weight`` of shape ``[K, *w.shape]`` at ONE shared binary point ``w_frac`` (chosen, in
    training mode, from the largest part value, as for any layer), each part quantized to the
    layer's ``bits`` (signed, ``|part_int| <= 2**(bits-1) - 1``; 1 bit: -1 or +1).  The forward
    pass sums the K quantized parts, which is exactly the K-fold wider product over K copies of
    the input (``sum_i P_i x = (sum_i P_i) x``, exact on these integers); the bias is part 0's.
    The weight count (``weight.numel()``) is K times the unwidened layer's.
    ``integer_params`` gives the parts as int64 ``[K, *w.shape]`` and the bias (int64 [C_out],
    at ``in_frac + w_frac``)."""

    def _make_parts(self, parts: int) -> None:
        if int(parts) < 1:
            raise ValueError(f"a widened layer needs >= 1 parts, got {parts}")
        w = self.weight.detach()
        self.weight = nn.Parameter(w.unsqueeze(0).repeat(int(parts), *([1] * w.dim()))
                                   / int(parts))

    @property
    def parts(self) -> int:
        """K, the number of weight parts."""
        return int(self.weight.shape[0])

    def part_values(self, x: torch.Tensor, frac: int, op) -> dict[int, torch.Tensor]:
        """Each part's own product ``op(x, part_i, bias if i == 0 else 0)`` (for tracing; the
        binary point is the layer's output point)."""
        w, b = self.quantized_params(frac)
        zero = torch.zeros_like(b)
        return {i: op(x, w[i], b if i == 0 else zero) for i in range(self.parts)}


class WideConv2d(_WideParts, QConv2d):
    """:class:`QConv2d` widened to ``parts`` weight parts (see :class:`_WideParts`)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, bits: int = 4, parts: int = 2,
                 stride: int = 1):
        super().__init__(c_in, c_out, kernel, bits, stride)
        self._make_parts(parts)

    def _conv(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, b, stride=self.stride, padding=self.padding)

    def forward(self, x: torch.Tensor, frac: int) -> tuple[torch.Tensor, int]:
        w, b = self.quantized_params(frac)
        return self._conv(x, w.sum(0), b), frac + int(self.w_frac)

    def traced_parts(self, x: torch.Tensor, frac: int) -> dict[int, torch.Tensor]:
        return self.part_values(x, frac, self._conv)


class WideLinear(_WideParts, QLinear):
    """:class:`QLinear` widened to ``parts`` weight parts (see :class:`_WideParts`)."""

    def __init__(self, n_in: int, n_out: int, bits: int = 4, parts: int = 2):
        super().__init__(n_in, n_out, bits)
        self._make_parts(parts)

    def forward(self, x: torch.Tensor, frac: int) -> tuple[torch.Tensor, int]:
        w, b = self.quantized_params(frac)
        return F.linear(x, w.sum(0), b), frac + int(self.w_frac)

    def traced_parts(self, x: torch.Tensor, frac: int) -> dict[int, torch.Tensor]:
        return self.part_values(x, frac, F.linear)
