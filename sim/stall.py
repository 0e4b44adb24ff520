"""The benches' handshake plan: a timing phase (the host back to back, ``m_tready`` held 1:
the measured latency / II are checked against the cycle model), then a stalled phase (a
seeded random ``m_tready`` pattern, a long initial hold, random host gaps) that is checked
for exactness only.

Both benches (the cocotb bench and the Verilator harness, :mod:`heatq_sim.verilator`, which
carries a C++ copy of :class:`SplitMix64` and :class:`Pattern`) draw the same numbers in the
same cycles, so a plan gives the same cycle-by-cycle stimulus in Icarus and in Verilator.
Per cycle, after the rising edge: the driver, if it offers no beat and beats remain, offers
the next one (in the stalled phase only when :meth:`Pattern.offer` says so; once offered a
beat is held until ``s_tvalid && s_tready``, as AXI-Stream requires); then ``m_tready`` for
the next cycle: 1 until the timing phase's results are all taken, then
:meth:`Pattern.ready`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

MASK = (1 << 64) - 1
GAP_SALT = 0x5DEECE66D  # the host-gap stream's seed: the plan's seed XOR this
ONE = 1 << 24  # probabilities as 24-bit integer thresholds (exact in C and Python)


class SplitMix64:
    """Steele, Lea and Flood's splitmix64: 64-bit outputs from a 64-bit counter."""

    def __init__(self, seed: int):
        self.s = seed & MASK

    def next(self) -> int:
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def threshold(p: float) -> int:
    """Probability ``p`` (0 <= p < 1) as a 24-bit threshold: an event when ``x >> 40 < t``."""
    return int(round(p * ONE))


@dataclass(frozen=True)
class Plan:
    """``n_plain`` results / ``beats_plain`` input beats in the timing phase; stalled phase:
    a stall of 1..``burst`` cycles starts in a cycle with probability ``stall``; ``m_tready``
    low for its first ``hold`` cycles; the host idles before a beat with probability
    ``gaps`` per cycle; ``seed`` seeds both streams."""

    n_plain: int
    beats_plain: int
    stall: float = 0.0
    burst: int = 1
    hold: int = 0
    gaps: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if not (0 <= self.stall < 1 and 0 <= self.gaps < 1):
            raise ValueError(f"stall {self.stall} and gaps {self.gaps} must lie in [0, 1)")
        if self.burst < 1 or self.hold < 0:
            raise ValueError(f"stall burst {self.burst} must be >= 1, hold {self.hold} >= 0")

    def harness_args(self) -> list[str]:
        """The Verilator harness's arguments for this plan (integers)."""
        return [str(v) for v in (self.n_plain, self.beats_plain, threshold(self.stall),
                                 self.burst, self.hold, threshold(self.gaps), self.seed & MASK)]

    def as_dict(self) -> dict:
        return asdict(self)


class Pattern:
    """The stalled phase's draws (see the module docstring)."""

    def __init__(self, plan: Plan):
        self.r, self.g = SplitMix64(plan.seed), SplitMix64(plan.seed ^ GAP_SALT)
        self.t_stall, self.t_gap = threshold(plan.stall), threshold(plan.gaps)
        self.burst, self.left = plan.burst, plan.hold

    def ready(self) -> int:
        """``m_tready`` for the next cycle."""
        if self.left > 0:
            self.left -= 1
            return 0
        if self.t_stall == 0:
            return 1
        x = self.r.next()
        if (x >> 40) < self.t_stall:
            self.left = (x & 0xFFFFFFFF) % self.burst  # cycles after this one
            return 0
        return 1

    def offer(self) -> bool:
        """Whether the host offers its next beat in the next cycle."""
        return self.t_gap == 0 or (self.g.next() >> 40) >= self.t_gap


class Counters:
    """What a bench counts about the output handshake: ``held`` (cycles with ``m_tvalid &&
    !m_tready``), ``ready_low`` (cycles ``m_tready`` was 0), ``violations`` (cycles after a
    held one where ``m_tvalid`` fell or an output port changed), ``host_waits`` (cycles with
    ``s_tvalid && !s_tready``)."""

    def __init__(self):
        self.held = self.ready_low = self.violations = self.host_waits = 0
        self._prev: list[int] | None = None

    def on_edge(self, m_valid: int, m_ready: int, row: list[int] | None,
                s_valid: int, s_ready: int) -> None:
        """One cycle's sampled values (``row``: the output ports, when ``m_valid``)."""
        if self._prev is not None and (not m_valid or row != self._prev):
            self.violations += 1
        self._prev = row if (m_valid and not m_ready) else None
        self.held += int(bool(m_valid and not m_ready))
        self.ready_low += int(not m_ready)
        self.host_waits += int(bool(s_valid and not s_ready))

    def as_dict(self) -> dict:
        return {"m_tvalid_held": self.held, "m_tready_low": self.ready_low,
                "hold_violations": self.violations, "host_waits": self.host_waits}


__all__ = ["Counters", "Pattern", "Plan", "SplitMix64", "threshold"]
