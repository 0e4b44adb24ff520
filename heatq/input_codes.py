"""Input codes: 8-bit pixels -> binary channels (the network's input), grey or colour.

An 8-bit pixel ``x`` (unsigned, 0..255) becomes ``n`` binary channels (each 0 or 1):

* ``bitplane:N`` (1 <= N <= 8): channel ``j`` is bit ``7 - j`` of ``x`` (MSB first), so the
  channels are the top ``N`` bits and ``sum_j c_j * 2**(7-j) == x & mask`` with
  ``mask = 0xFF & ~(2**(8-N) - 1)``.
* ``thermometer:N`` (1 <= N <= 255): channel ``j`` is ``x >= t_j``. The default thresholds
  are evenly spaced, ``t_j = round_half_up((j+1) * 256 / (N+1))`` for ``j = 0..N-1``; they
  are strictly increasing integers in 1..255, so the number of ones equals the number of
  thresholds ``<= x``. An ``InputCode`` built directly may carry other (e.g. learned)
  thresholds, subject to the same rules.
* ``learned:T`` (1 <= T <= 255): a thermometer whose T thresholds are learned per input
  channel during training (:mod:`heatq.thresholds`), so the code is part of the network: the
  encoder passes the raw pixels through as ONE channel (``[N, 1, H, W]``, unsigned 8-bit,
  0..255) and the network's first step ``input_code`` compares them with its frozen integer
  thresholds (channel j is ``x >= t_j``, t_j in 1..255, not necessarily sorted).  ``thresholds``
  holds the initial values, the evenly spaced ones of ``thermometer:T``.

Colour images ``[N, C, H, W]`` are coded per colour channel: ``C * n`` channels, channel
``c*n + j`` is code channel j of colour c (``bitplane:4`` on RGB: R's 4 bit planes, then G's,
then B's); ``learned:T`` takes grey images only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UserError

__all__ = ["InputCode", "INPUT_CODE_KINDS", "parse_input_code", "thermometer_thresholds"]

INPUT_CODE_KINDS = ("bitplane", "thermometer", "learned")

_MAX_BITPLANES = 8
_MAX_THERMOMETER = 255


def thermometer_thresholds(n: int) -> tuple[int, ...]:
    """Evenly spaced thresholds ``t_j = round_half_up((j+1)*256/(n+1))``, j = 0..n-1.

    Computed in exact integer arithmetic: ``((j+1)*512 + (n+1)) // (2*(n+1))``. For
    1 <= n <= 255 the step 256/(n+1) is >= 1, so the values are strictly increasing and lie
    in 1..255.
    """
    if not 1 <= n <= _MAX_THERMOMETER:
        raise ValueError(f"thermometer size must be in 1..{_MAX_THERMOMETER}, got {n}")
    return tuple(((j + 1) * 512 + (n + 1)) // (2 * (n + 1)) for j in range(n))


@dataclass(frozen=True)
class InputCode:
    """A binary code for unsigned 8-bit pixels.

    ``kind``: ``'bitplane'``, ``'thermometer'`` or ``'learned'``; ``n``: number of binary
    channels the network body sees; ``thresholds``: for thermometer codes, ``n`` strictly
    increasing ints in 1..255 (channel j is ``x >= thresholds[j]``); for learned codes the
    initial thresholds (the network learns its own); empty for bit-plane codes.
    """

    kind: str
    n: int
    thresholds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in INPUT_CODE_KINDS:
            raise ValueError(f"unknown input code kind {self.kind!r}; expected one of {INPUT_CODE_KINDS}")
        if not isinstance(self.n, (int, np.integer)) or isinstance(self.n, bool):
            raise TypeError(f"n must be an int, got {type(self.n).__name__}")
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "thresholds", tuple(int(t) for t in self.thresholds))
        if self.kind == "bitplane":
            if not 1 <= self.n <= _MAX_BITPLANES:
                raise ValueError(f"bitplane code needs 1 <= n <= {_MAX_BITPLANES}, got {self.n}")
            if self.thresholds:
                raise ValueError("bitplane code takes no thresholds")
        else:
            if not 1 <= self.n <= _MAX_THERMOMETER:
                raise ValueError(f"{self.kind} code needs 1 <= n <= {_MAX_THERMOMETER}, got {self.n}")
            if not self.thresholds:
                object.__setattr__(self, "thresholds", thermometer_thresholds(self.n))
            t = self.thresholds
            if len(t) != self.n:
                raise ValueError(f"thermometer code needs {self.n} thresholds, got {len(t)}")
            if any(not 1 <= v <= 255 for v in t) or any(a >= b for a, b in zip(t, t[1:])):
                raise ValueError(f"thresholds must be strictly increasing ints in 1..255, got {t}")

    @property
    def channels(self) -> int:
        """Number of binary channels per pixel that the network body sees (== n); for a
        learned code the network's first step makes them."""
        return self.n

    @property
    def learned(self) -> bool:
        """True for ``learned:T``: the thresholds live in the network (:mod:`heatq.thresholds`)."""
        return self.kind == "learned"

    @property
    def input_channels(self) -> int:
        """Channels of the encoded input, the graph's INPUT: 1 (raw pixels) for a learned code,
        else ``n`` (0/1 planes)."""
        return 1 if self.learned else self.n

    @property
    def spec(self) -> str:
        """The spec string (``bitplane:N`` / ``thermometer:N``) naming this code's kind and size."""
        return f"{self.kind}:{self.n}"

    def body_channels(self, colours: int = 1) -> int:
        """Binary channels the network body sees for images with ``colours`` colour channels:
        ``colours * n`` (the spec's ``in_channels``); a learned code takes grey images only."""
        self._check_colours(colours)
        return colours * self.n

    def input_channels_for(self, colours: int = 1) -> int:
        """Channels of the encoded input (the graph's INPUT) for images with ``colours`` colour
        channels: ``colours * n``, or 1 (raw grey pixels) for a learned code."""
        self._check_colours(colours)
        return colours * self.input_channels

    def _check_colours(self, colours: int) -> None:
        if self.learned and colours != 1:
            raise UserError(f"input code {self.spec}: learned thresholds take grey images only, "
                            f"these have {colours} colour channels (use bitplane:N or "
                            "thermometer:N)")

    def encode_numpy(self, x: np.ndarray) -> np.ndarray:
        """Encode uint8 images into uint8 0/1 channels: grey ``[N, H, W]`` -> ``[N, n, H, W]``,
        colour ``[N, C, H, W]`` -> ``[N, C*n, H, W]`` with channel ``c*n + j`` = code channel
        j (bit-plane j, MSB first, or thermometer level j) of colour c.  A learned code gives
        the grey pixels themselves, uint8 0..255 ``[N, 1, H, W]`` (colour: UserError)."""
        x = np.asarray(x)
        if x.dtype != np.uint8:
            raise TypeError(f"encode_numpy expects uint8 pixels, got {x.dtype}")
        if x.ndim not in (3, 4):
            raise ValueError(f"encode_numpy expects [N, H, W] or [N, C, H, W], got shape {x.shape}")
        colours = 1 if x.ndim == 3 else x.shape[1]
        self._check_colours(colours)
        if self.learned:
            return x[:, None, :, :].copy()
        n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        xe = x.reshape(n, colours, 1, h, w)
        if self.kind == "bitplane":
            shifts = np.arange(7, 7 - self.n, -1, dtype=np.uint8).reshape(1, 1, -1, 1, 1)
            planes = ((xe >> shifts) & np.uint8(1)).astype(np.uint8)
        else:
            t = np.asarray(self.thresholds, dtype=np.int16).reshape(1, 1, -1, 1, 1)
            planes = (xe.astype(np.int16) >= t).astype(np.uint8)
        return planes.reshape(n, colours * self.n, h, w)

    def encode_torch(self, x):
        """Encode an integer tensor, grey ``[N, H, W]`` or colour ``[N, C, H, W]`` (values
        0..255), into float32 0/1 ``[N, n, H, W]`` / ``[N, C*n, H, W]`` in
        :meth:`encode_numpy`'s channel order (a learned code: the grey pixels as float32
        0..255, ``[N, 1, H, W]``).

        The result is on ``x``'s device. Float inputs are rejected (pass raw pixel integers).
        """
        import torch

        if x.dtype.is_floating_point or x.dtype == torch.bool or x.dtype.is_complex:
            raise TypeError(f"encode_torch expects integer pixels (uint8/int), got {x.dtype}")
        if x.dim() not in (3, 4):
            raise ValueError(f"encode_torch expects [N, H, W] or [N, C, H, W], got shape "
                             f"{tuple(x.shape)}")
        xi = x.to(torch.int32)
        if x.dtype != torch.uint8 and xi.numel() and (int(xi.min()) < 0 or int(xi.max()) > 255):
            raise ValueError("encode_torch expects pixel values in 0..255")
        colours = 1 if x.dim() == 3 else int(x.shape[1])
        self._check_colours(colours)
        if self.learned:
            return xi.unsqueeze(1).to(torch.float32)
        n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        xe = xi.reshape(n, colours, 1, h, w)
        if self.kind == "bitplane":
            shifts = torch.arange(7, 7 - self.n, -1, dtype=torch.int32,
                                  device=x.device).view(1, 1, -1, 1, 1)
            planes = (xe >> shifts) & 1
        else:
            t = torch.tensor(self.thresholds, dtype=torch.int32, device=x.device).view(1, 1, -1, 1, 1)
            planes = xe >= t
        return planes.to(torch.float32).reshape(n, colours * self.n, h, w)


def _parse_kind_int(spec: str, what: str) -> tuple[str, int]:
    kind, sep, arg = spec.strip().partition(":")
    if not sep or not arg.strip().isdigit():
        raise UserError(f"bad {what} {spec!r}")
    return kind.strip().lower(), int(arg)


def parse_input_code(spec: str) -> InputCode:
    """Parse ``bitplane:N`` (1..8), ``thermometer:N`` or ``learned:T`` (1..255); bad specs
    raise UserError."""
    if not isinstance(spec, str):
        raise UserError(f"input code spec must be a string, got {spec!r}")
    usage = "expected bitplane:N (1<=N<=8), thermometer:N or learned:N (1<=N<=255)"
    try:
        kind, n = _parse_kind_int(spec, "input code")
    except UserError:
        raise UserError(f"bad input code {spec!r}: {usage}") from None
    if kind == "bitplane" and 1 <= n <= _MAX_BITPLANES:
        return InputCode("bitplane", n)
    if kind in ("thermometer", "learned") and 1 <= n <= _MAX_THERMOMETER:
        return InputCode(kind, n)
    raise UserError(f"bad input code {spec!r}: {usage}")
