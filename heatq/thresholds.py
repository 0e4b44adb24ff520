"""Learned input thresholds: the ``learned:T`` input code as the network's first step.

:class:`LearnedThermometer` takes raw pixels ``[N, 1, H, W]`` (unsigned 8-bit values 0..255 as
floats, binary point 0) and gives ``T`` binary channels ``[N, T, H, W]``: channel ``j`` is
``x >= t_j`` (0/1), with ``t_j`` an integer in 1..255, learned during training and frozen by
rounding.  The learned parameter is ``theta`` (T floats) in units of 1/256 of the pixel range
(``t_j = theta_j * 256``), so the optimiser's learning rate moves a threshold by pixels per
step, as it moves the network's weights; it starts at the fixed thermometer's evenly spaced
thresholds (:func:`heatq.codes.thermometer_thresholds`), exactly.

* forward (every mode: 'float', 'quant', 'heat'; training or not): the hard comparison with the
  integer thresholds ``t_int = floor(clamp(theta * 256, 1, 255) + 1/2)`` (round half up), so
  the network always computes exactly what the IR computes, wherever training stops;
* backward: straight through a sigmoid surrogate, ``d out / d t = d sigmoid((x - t) / tau) / d t``
  (``tau`` in pixels, ``t = theta * 256`` unclamped, so a threshold pushed beyond 1..255 still
  gets a gradient back), which moves the thresholds towards the pixels where the loss wants a
  channel to switch.

The IR form (:func:`heatq.qnet_ir.add_step`): ``<name>.copy``, a CONCAT of T copies of the
pixel channel (``[T, H, W]``, unsigned 0..255: wiring in every target), then ``<name>``, a
THRESHOLD with one threshold per channel (``[[t_0], ..., [t_{T-1}]]``, 0/1 outputs).  The trace
(:meth:`heatq.models.QNet.forward`) names both, so ``heatq check`` compares both.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .codes import thermometer_thresholds
from .quant import QuantStep

SCALE = 256.0  # theta units: one unit is the whole pixel range
T_MIN, T_MAX = 1, 255  # an integer threshold compares unsigned 8-bit pixels
COPY = "copy"  # the suffix of the CONCAT node that copies the pixel to T channels


class LearnedThermometer(QuantStep):
    """``T`` learned thresholds over one channel of pixels (see the module docstring).
    ``tau``: the surrogate's temperature in pixels (a plain attribute, not saved)."""

    def __init__(self, n: int, tau: float = 8.0) -> None:
        super().__init__()
        init = torch.tensor(thermometer_thresholds(int(n)), dtype=torch.float32) / SCALE
        self.theta = nn.Parameter(init)
        self.tau = float(tau)

    @property
    def n(self) -> int:
        """T, the number of binary channels."""
        return int(self.theta.shape[0])

    def thresholds_float(self) -> torch.Tensor:
        """The thresholds in pixels, clamped to 1..255 (theta's dtype)."""
        return torch.clamp(self.theta * SCALE, T_MIN, T_MAX)

    def integer_thresholds(self) -> torch.Tensor:
        """The frozen thresholds: int64 [T], each in 1..255 (round half up of the clamped
        float thresholds; exact in float32 and float64 alike, since ``theta * 256`` is)."""
        with torch.no_grad():
            return torch.floor(self.thresholds_float() + 0.5).long()

    def forward(self, x: torch.Tensor, frac: int) -> tuple[torch.Tensor, int]:
        if int(frac) != 0:
            raise ValueError(f"learned thresholds compare integer pixels (binary point 0), "
                             f"got binary point {frac}")
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"learned thresholds take pixels [N, 1, H, W], got {tuple(x.shape)}")
        t_int = self.integer_thresholds().to(x.dtype).view(1, -1, 1, 1)
        hard = (x >= t_int).to(x.dtype)
        if not torch.is_grad_enabled() or not self.theta.requires_grad:
            return hard, 0
        soft = torch.sigmoid((x - self.theta.view(1, -1, 1, 1) * SCALE) / self.tau)
        return soft + (hard - soft).detach(), 0

    def traced_nodes(self, x: torch.Tensor, frac: int) -> dict[str, tuple[torch.Tensor, int]]:
        """The IR's intermediate node: ``{"copy": (x repeated T times, binary point 0)}``."""
        return {COPY: (x.expand(-1, self.n, -1, -1), frac)}
