"""Heating: rounding noise scaled by a temperature, and soft staircases for 1-2 bit layers.

A layer quantized to ``b`` bits at the power-of-two step ``delta = 2**-frac`` rounds each value
to the nearest level; the error is (almost) uniform on ``[-delta/2, delta/2)``.  Heating
replaces the rounding, in training, by

    w~ = w + tau * delta * u,      u ~ U(-1/2, 1/2)

with a temperature ``tau`` that rises from 0 to 1 (``linear`` or ``cosine``): at ``tau = 1``
the noise has exactly the range of the rounding error.  Activations (the quantized ReLU) get
the same treatment on their positive part after the clip at ``(2**b - 1) * delta``.

For 1-2 bits uniform noise is a poor model of rounding (the levels are far apart, the error
is anything but independent of the value), so those layers go through a *soft staircase*
instead: ``delta * soft_round(w / delta, s)`` clipped to the levels, whose sharpness ``s``
rises with ``tau`` from nearly the identity (s = 2) to nearly the hard staircase (s = 60).

With learned, continuous bits ``beta`` (see :mod:`heatq.heat.lagrange`) the noise step follows
beta: ``delta = step(b) * bound(b) / bound(beta)`` with ``b = ceil(beta)`` the layer's integer
bits, ``step(b)`` its power-of-two step and ``bound`` the largest integer level (2**(b-1) - 1 for
weights, 2**b - 1 for activations): equal to the rounding step at integer beta, coarser below,
differentiable in ``beta``, so the gradient of the loss tells how much a coarser grid hurts.
The gradient in ``beta`` always comes from a zero-valued "ghost" noise term at full amplitude
(as at tau = 1), so the bits are defended from the start of heating, and a layer in the soft
regime gets it too.

Everything here is used only in the training forward pass (``mode == "heat"``); evaluation and
:mod:`heatq.qnet_ir` always read the hard integers, so the result maps to REQUANT shifts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..models import QNet
from ..quant import QReLU, QWeighted, largest_frac, mse_weight_frac, weight_bound

SCHEDULES = ("linear", "cosine")


def tau_at(progress: float, schedule: str = "cosine", hold: float = 0.0) -> float:
    """Temperature at ``progress`` in [0, 1] of the heating: rises 0 -> 1 over the first
    ``1 - hold`` of it (``linear``: p, ``cosine``: (1 - cos(pi p)) / 2), then stays at 1."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if not 0.0 <= hold < 1.0:
        raise ValueError(f"hold must be in [0, 1), got {hold}")
    p = min(1.0, max(0.0, float(progress)) / (1.0 - hold))
    return p if schedule == "linear" else 0.5 * (1.0 - math.cos(math.pi * p))


def sharpness_at(tau: float, s0: float = 2.0, s1: float = 60.0) -> float:
    """Soft-staircase sharpness at temperature ``tau``: geometric from ``s0`` to ``s1``."""
    return s0 * (s1 / s0) ** min(1.0, max(0.0, tau))


def soft_round(x: torch.Tensor, s: float) -> torch.Tensor:
    """A soft staircase: ``floor(x) + g(x - floor(x))`` with ``g`` a sigmoid rescaled so that
    g(0) = 0 and g(1) = 1 (continuous everywhere).  s -> 0: identity; s -> inf: round."""
    fl = torch.floor(x).detach()
    r = x - fl
    lo = 1.0 / (1.0 + math.exp(0.5 * s))
    hi = 1.0 - lo
    return fl + (torch.sigmoid(s * (r - 0.5)) - lo) / (hi - lo)


def uniform_noise(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """u ~ U(-1/2, 1/2) of the shape of ``like``."""
    if generator is not None and generator.device != like.device:  # a CPU generator, on CUDA
        return (torch.rand(like.shape, generator=generator, dtype=like.dtype) - 0.5).to(like.device)
    return torch.rand(like.shape, generator=generator, dtype=like.dtype, device=like.device) - 0.5


def continuous_bound(beta: torch.Tensor) -> torch.Tensor:
    """Largest integer weight level as a smooth function of continuous bits: ``2**(b-1) - 1``
    for b >= 2 (so 1, 3, 7, ... at 2, 3, 4 bits) and ``2**(b-2)`` below (0.5 at one bit:
    the distance between the two 1-bit levels is twice the largest weight)."""
    return torch.where(beta >= 2, 2.0 ** (beta - 1) - 1, 2.0 ** (beta - 2))


def soft_weight(w: torch.Tensor, delta: float, bits: int, s: float) -> torch.Tensor:
    """Soft staircase onto the ``bits``-bit signed weight levels at step ``delta``."""
    x = w / delta
    if bits == 1:  # levels -1, +1: a soft sign
        return delta * (2.0 * soft_round(torch.clamp((x + 1) / 2, 0, 1), s) - 1.0)
    b = weight_bound(bits)
    return delta * torch.clamp(soft_round(torch.clamp(x, -b - 0.5, b + 0.5), s), -b, b)


def soft_act(c: torch.Tensor, delta: float, top: int, s: float) -> torch.Tensor:
    """Soft staircase onto the unsigned activation levels 0..top at step ``delta``."""
    return delta * torch.clamp(soft_round(c / delta, s), 0, top)


@dataclass
class Heater:
    """The state of heating that the quantized steps read in mode ``"heat"``.

    ``tau``: temperature in [0, 1]; ``sharpness``: of the soft staircases; ``soft_bits``:
    layers with at most this many (integer) bits use the soft staircase, the others noise;
    ``beta``: optional continuous bits per layer name (tensors with gradients; the step's
    integer ``bits`` must be kept at ``ceil(beta)`` by the caller); ``generator``: the noise.
    """

    tau: float = 0.0
    sharpness: float = 2.0
    soft_bits: int = 2
    beta: dict[str, torch.Tensor] = field(default_factory=dict)
    generator: torch.Generator | None = None

    def _delta(self, step, fixed: float, bound_fn) -> torch.Tensor | float:
        """The noise step: the layer's own power-of-two step at its integer bits, scaled, with
        learned bits ``beta``, by ``bound(bits) / bound(beta)`` (equal at integer beta, coarser
        below it; differentiable in beta)."""
        beta = self.beta.get(getattr(step, "heat_name", ""))
        if beta is None:
            return fixed
        return fixed * float(bound_fn(torch.tensor(float(step.bits)))) / \
            bound_fn(beta).clamp_min(1e-6)

    @staticmethod
    def _ghost(u: torch.Tensor, delta) -> torch.Tensor | float:
        """Zero in value; in gradient, the noise at full amplitude (tau = 1) as a function of
        the learned bits: the bits see the harm the final rounding will do, whatever tau is
        now (at small tau the real noise is too weak to defend any bit)."""
        return u * (delta - delta.detach()) if torch.is_tensor(delta) else 0.0

    def weight(self, step: QWeighted, w: torch.Tensor) -> torch.Tensor:
        """Heated weights of ``step`` (its ``w_frac`` is already set for its integer bits)."""
        fixed = 2.0 ** -int(step.w_frac)
        delta = self._delta(step, fixed, continuous_bound)
        u = uniform_noise(w, self.generator)
        if step.bits <= self.soft_bits:
            return soft_weight(w, fixed, step.bits, self.sharpness) + self._ghost(u, delta)
        return w + self.tau * _value(delta) * u + self._ghost(u, delta)

    def act(self, step: QReLU, y: torch.Tensor) -> torch.Tensor:
        """Heated activations of ``step`` (its ``a_frac`` is already tracked)."""
        fixed = 2.0 ** -int(step.a_frac)
        c = torch.clamp(y, 0, step.top * fixed)
        delta = self._delta(step, fixed, lambda b: 2.0 ** b - 1)
        u = uniform_noise(c, self.generator) * (c > 0)
        if step.bits <= self.soft_bits:
            return soft_act(c, fixed, step.top, self.sharpness) + self._ghost(u, delta)
        return c + self.tau * _value(delta) * u + self._ghost(u, delta)


def _value(delta):
    return delta.detach() if torch.is_tensor(delta) else delta


def attach(model: QNet, heater: Heater | None) -> None:
    """Give every quantized step ``heater`` (None detaches) and its layer name."""
    for name, step in model.steps():
        if isinstance(step, (QWeighted, QReLU)):
            step.heat_name = name
            step.heater = heater


def set_step_rule(model: QNet, rule: str) -> None:
    """``"max"`` or ``"mse"`` binary points (see :mod:`heatq.quant`) on every step."""
    for _, step in model.steps():
        step.step_rule = rule


def set_bits(model: QNet, bits: dict[str, int]) -> None:
    """Change layers' widths and re-derive their binary points without data, as a training
    forward would: weights from the weights (by the step's rule); an activation keeps the
    offset its last tracked binary point had from the no-clipping one."""
    steps = dict(model.steps())
    with torch.no_grad():
        for name, b in bits.items():
            step = steps[name]
            if step.bits == int(b):
                continue
            if isinstance(step, QWeighted):
                step.bits = int(b)
                f = largest_frac(float(step.weight.detach().abs().max()), weight_bound(step.bits))
                if step.step_rule == "mse":
                    f = mse_weight_frac(step.weight, step.bits, f)
                step.w_frac.fill_(f)
            elif isinstance(step, QReLU):
                amax = float(step.amax)
                offset = int(step.a_frac) - largest_frac(amax, step.top) if amax > 0 else 0
                step.bits = int(b)
                if amax > 0:
                    step.a_frac.fill_(largest_frac(amax, step.top) + max(0, offset))
