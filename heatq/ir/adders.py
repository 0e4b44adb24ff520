"""The adder graph: the lowered form of a constant matrix-vector product.

An :class:`AdderGraph` computes ``y = W @ x + c`` for a constant integer matrix ``W [out, in]``
and constant ``c`` with two-operand adders over shifted inputs.  Nodes ``0 .. n_in-1`` are the
inputs, node ``n_in + k`` is ``adders[k]``.  Every adder is

    value = (+/-)(a.node << a.shift) + (+/-)(b.node << b.shift) + const     (at most one negated)

with either ``b`` or ``const`` present (never both; ``const`` alone is a constant adder).
Each node carries its exact integer range (interval arithmetic over the inputs' ranges, done
on the node's coefficient vector over the inputs, so shared subexpressions do not widen it)
and the :class:`~heatq.ir.IntType` derived from that range: two's complement arithmetic modulo
``2**width`` of every adder is exact by construction.

Timing: ``level`` is the adder-tree depth (inputs are level 0).  With ``max_carry = K`` every
adder is registered and an adder whose carry chain (``carry`` bits: its width less the low
bits that pass straight through from one operand) is longer than K is split into
``segments = ceil(carry / K)`` K-bit slices with registered carries; ``ready`` is then the
clock cycle at which its full value sits in a register (inputs are ready at cycle 0).
Without ``max_carry`` the graph is combinational and ``ready == level``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .types import IntType

INT64_SAFE_WIDTH = 62


@dataclass(frozen=True)
class Term:
    """``(+/-) node << shift``."""

    node: int
    shift: int = 0
    neg: bool = False


@dataclass(frozen=True)
class InputNode:
    """One input of the product: integer range ``lo..hi`` and its type."""

    lo: int
    hi: int
    type: IntType


@dataclass(frozen=True)
class Adder:
    """One two-operand adder (see the module docstring).  ``id`` is its node id."""

    id: int
    a: Term
    b: Term | None
    const: int
    lo: int
    hi: int
    type: IntType
    level: int
    ready: int
    passthrough: int
    carry: int
    segments: int

    @property
    def width(self) -> int:
        return self.type.width


@dataclass(frozen=True)
class Output:
    """Output ``j``: ``node << shift`` (``node`` None: the constant ``const`` alone).
    ``lo..hi`` / ``type`` are the exact range and type of the output value."""

    node: int | None
    shift: int
    const: int
    lo: int
    hi: int
    type: IntType


@dataclass(frozen=True, eq=False)
class AdderGraph:
    """A lowered constant matrix-vector product (immutable)."""

    inputs: tuple[InputNode, ...]
    adders: tuple[Adder, ...]
    outputs: tuple[Output, ...]
    max_carry: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_in(self) -> int:
        return len(self.inputs)

    def node(self, i: int) -> InputNode | Adder:
        return self.inputs[i] if i < self.n_in else self.adders[i - self.n_in]

    def node_type(self, i: int) -> IntType:
        return self.node(i).type

    def ready(self, i: int) -> int:
        return 0 if i < self.n_in else self.adders[i - self.n_in].ready

    @property
    def pipelined(self) -> bool:
        return self.max_carry is not None

    @property
    def latency(self) -> int:
        """Clock cycles from inputs to outputs (0: combinational)."""
        if not self.pipelined:
            return 0
        return max((self.ready(o.node) for o in self.outputs if o.node is not None), default=0)

    @property
    def depth(self) -> int:
        """Adder depth: the largest adder-tree level of any output."""
        lv = [0] + [self.adders[o.node - self.n_in].level for o in self.outputs
                    if o.node is not None and o.node >= self.n_in]
        return max(lv)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, x: np.ndarray, check: bool = True) -> np.ndarray:
        """``[N, n_in]`` integers -> ``[N, n_out]``, exactly as the hardware computes it.
        With ``check``, every node's values are asserted inside its range."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_in:
            raise ValueError(f"expected [N, {self.n_in}] inputs, got {x.shape}")
        wide = any(a.type.width > INT64_SAFE_WIDTH for a in self.adders) or any(
            o.type.width > INT64_SAFE_WIDTH for o in self.outputs)
        dt = object if wide else np.int64
        vals: list[np.ndarray] = [None] * (self.n_in + len(self.adders))  # type: ignore
        for i, inp in enumerate(self.inputs):
            v = x[:, i].astype(dt)
            if check and v.size and (v.min() < inp.lo or v.max() > inp.hi):
                raise ValueError(f"input {i} outside its range {inp.lo}..{inp.hi}")
            vals[i] = v

        def term(t: Term) -> np.ndarray:
            v = vals[t.node] * (1 << t.shift) if t.shift else vals[t.node]
            return -v if t.neg else v

        for ad in self.adders:
            v = term(ad.a)
            v = v + term(ad.b) if ad.b is not None else v + ad.const
            if check and v.size and (v.min() < ad.lo or v.max() > ad.hi):
                raise AssertionError(f"adder {ad.id} value outside {ad.lo}..{ad.hi}")
            vals[ad.id] = v
        out = np.empty((x.shape[0], len(self.outputs)), dtype=dt)
        for j, o in enumerate(self.outputs):
            if o.node is None:
                out[:, j] = o.const
            else:
                out[:, j] = vals[o.node] * (1 << o.shift) + o.const
        return out

    # ------------------------------------------------------------------ report
    def stats(self) -> dict[str, Any]:
        """Adders, total adder bits, longest carry chain per stage, depth and latency.

        ``carry_per_stage`` maps a stage to the longest carry-propagate chain in it: the stage
        is the adder level in a combinational graph and the clock cycle (register to register)
        in a pipelined one."""
        per_stage: dict[int, int] = {}
        for ad in self.adders:
            if self.pipelined:
                first = ad.ready - ad.segments + 1
                for k in range(ad.segments):
                    seg = min(self.max_carry, ad.carry - k * self.max_carry)
                    per_stage[first + k] = max(per_stage.get(first + k, 0), seg)
            else:
                per_stage[ad.level] = max(per_stage.get(ad.level, 0), ad.carry)
        return {
            "adders": len(self.adders),
            "adder_bits": sum(ad.width for ad in self.adders),
            "carry_bits": sum(ad.carry for ad in self.adders),
            "longest_carry": max((ad.carry if not self.pipelined
                                  else min(ad.carry, self.max_carry) for ad in self.adders),
                                 default=0),
            "carry_per_stage": {str(k): per_stage[k] for k in sorted(per_stage)},
            "adder_depth": self.depth,
            "pipeline_depth": self.latency,
            "max_carry": self.max_carry,
        }


def coeff_range(coef: dict[int, int], inputs: tuple[InputNode, ...] | list[InputNode],
                const: int = 0) -> tuple[int, int]:
    """Exact range of ``const + sum_i coef[i] * x_i`` over independent ``x_i in lo_i..hi_i``."""
    lo = hi = const
    for i, c in coef.items():
        a, b = c * inputs[i].lo, c * inputs[i].hi
        lo += min(a, b)
        hi += max(a, b)
    return lo, hi
