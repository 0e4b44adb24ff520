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

With learned, continuous bits ``beta`` (see :mod:`heatq.heat.lagrange`) the step follows beta:
``delta = 2**ceil(log2(m / bound(beta)))`` (``m`` = the largest |w|, ``bound`` the largest
integer level), a power of two in value and differentiable in ``beta`` through the straight-
through estimator, so the gradient of the loss tells how much a finer or coarser grid hurts.
A layer in the soft regime still gets that gradient from a zero-valued "ghost" noise term.

Everything here is used only in the training forward pass (``mode == "heat"``); evaluation and
:mod:`heatq.convert` always read the hard integers, so the result maps to REQUANT shifts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..models import QNet
from ..quant import QReLU, QWeighted, largest_frac, ste, weight_bound

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
    return torch.rand(like.shape, generator=generator, dtype=like.dtype, device=like.device) - 0.5


def continuous_bound(beta: torch.Tensor) -> torch.Tensor:
    """Largest integer weight level as a smooth function of continuous bits: ``2**(b-1) - 1``
    for b >= 2 (so 1, 3, 7, ... at 2, 3, 4 bits) and ``2**(b-2)`` below (0.5 at one bit:
    the distance between the two 1-bit levels is twice the largest weight)."""
    return torch.where(beta >= 2, 2.0 ** (beta - 1) - 1, 2.0 ** (beta - 2))


def pow2_step(step: torch.Tensor) -> torch.Tensor:
    """``2**ceil(log2(step))`` in value, the gradient of ``step`` (straight through)."""
    return ste(step, 2.0 ** torch.ceil(torch.log2(step.detach())))


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

    def _delta(self, step, m: torch.Tensor, fixed: float, bound_fn) -> torch.Tensor | float:
        beta = self.beta.get(getattr(step, "heat_name", ""))
        if beta is None:
            return fixed
        return pow2_step(m / bound_fn(beta).clamp_min(1e-6))

    def weight(self, step: QWeighted, w: torch.Tensor) -> torch.Tensor:
        """Heated weights of ``step`` (its ``w_frac`` is already set for its integer bits)."""
        fixed = 2.0 ** -int(step.w_frac)
        m = w.detach().abs().max().clamp_min(1e-12)
        delta = self._delta(step, m, fixed, continuous_bound)
        u = uniform_noise(w, self.generator)
        if step.bits <= self.soft_bits:
            out = soft_weight(w, fixed, step.bits, self.sharpness)
            if torch.is_tensor(delta):  # ghost noise: zero value, the gradient for beta
                out = out + self.tau * u * (delta - delta.detach())
            return out
        return w + self.tau * delta * u

    def act(self, step: QReLU, y: torch.Tensor) -> torch.Tensor:
        """Heated activations of ``step`` (its ``a_frac`` is already tracked)."""
        fixed = 2.0 ** -int(step.a_frac)
        c = torch.clamp(y, 0, step.top * fixed)
        m = step.amax.clamp_min(1e-12)
        delta = self._delta(step, m, fixed, lambda b: 2.0 ** b - 1)
        u = uniform_noise(c, self.generator) * (c > 0)
        if step.bits <= self.soft_bits:
            out = soft_act(c, fixed, step.top, self.sharpness)
            if torch.is_tensor(delta):
                out = out + self.tau * u * (delta - delta.detach())
            return out
        return c + self.tau * delta * u


def attach(model: QNet, heater: Heater | None) -> None:
    """Give every quantized step ``heater`` (None detaches) and its layer name."""
    for name, step in model.steps():
        if isinstance(step, (QWeighted, QReLU)):
            step.heat_name = name
            step.heater = heater


def refresh_fracs(model: QNet) -> None:
    """Re-derive every binary point from the current weights and activation ranges for the
    current bit widths (what a training-mode forward would do), without any data."""
    with torch.no_grad():
        for _, step in model.steps():
            if isinstance(step, QWeighted):
                m = float(step.weight.detach().abs().max())
                step.w_frac.fill_(largest_frac(m, weight_bound(step.bits)))
            elif isinstance(step, QReLU) and float(step.amax) > 0:
                step.a_frac.fill_(largest_frac(float(step.amax), step.top))
