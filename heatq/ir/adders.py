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

from .errors import IRError
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

    def matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """The product this graph computes, ``y = W @ x + c``: ``(W [n_out, n_in], c [n_out])``,
        found by walking each node's coefficient vector (exact: Python ints; int64 arrays
        when every entry fits, else object arrays)."""
        coef: list[dict[int, int]] = [{i: 1} for i in range(self.n_in)]
        const: list[int] = [0] * self.n_in

        def scaled(t: Term) -> tuple[dict[int, int], int]:
            k = -(1 << t.shift) if t.neg else 1 << t.shift
            return {i: k * v for i, v in coef[t.node].items()}, k * const[t.node]

        for ad in self.adders:
            ca, ka = scaled(ad.a)
            if ad.b is not None:
                cb, kb = scaled(ad.b)
                for i, v in cb.items():
                    ca[i] = ca.get(i, 0) + v
                ka += kb
            else:
                ka += ad.const
            coef.append(ca)
            const.append(ka)
        rows = [[0] * self.n_in for _ in self.outputs]
        consts = []
        for j, o in enumerate(self.outputs):
            if o.node is None:
                consts.append(o.const)
                continue
            for i, v in coef[o.node].items():
                rows[j][i] = v << o.shift
            consts.append((const[o.node] << o.shift) + o.const)
        big = max((abs(v) for r in rows for v in r), default=0) > 2 ** INT64_SAFE_WIDTH or \
            max((abs(v) for v in consts), default=0) > 2 ** INT64_SAFE_WIDTH
        dt = object if big else np.int64
        return (np.array(rows, dtype=dt).reshape(len(self.outputs), self.n_in),
                np.array(consts, dtype=dt))

    # ------------------------------------------------------------------ report
    def to_saved(self) -> tuple[dict, dict[str, np.ndarray]]:
        """For :mod:`heatq.ir.serialize`: see :func:`adder_graph_to_saved`."""
        return adder_graph_to_saved(self)

    @staticmethod
    def from_saved(doc: dict, arrays: dict[str, np.ndarray]) -> "AdderGraph":
        """For :mod:`heatq.ir.serialize`: see :func:`adder_graph_from_saved`."""
        return adder_graph_from_saved(doc, arrays)

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


# ---------------------------------------------------------------------- saving and loading
def _int64_table(rows: list[list[int]], ncol: int, what: str) -> np.ndarray:
    info = np.iinfo(np.int64)
    for r in rows:
        for v in r:
            if not info.min <= v <= info.max:
                raise IRError(f"adder graph {what} value {v} does not fit int64 (cannot save)")
    return np.array(rows, dtype=np.int64).reshape(len(rows), ncol)


def adder_graph_to_saved(g: AdderGraph) -> tuple[dict, dict[str, np.ndarray]]:
    """The adder graph as a JSON object (``max_carry``, ``meta``) and int64 tables:
    ``inputs`` [n_in, 2] (lo, hi), ``adders`` [n, 7] (a.node, a.shift, a.neg, b.node or -1,
    b.shift, b.neg, const), ``outputs`` [n_out, 3] (node or -1, shift, const).  Everything else
    (ranges, types, timing) is derived again on load."""
    adders = [[ad.a.node, ad.a.shift, int(ad.a.neg)]
              + ([ad.b.node, ad.b.shift, int(ad.b.neg)] if ad.b else [-1, 0, 0]) + [ad.const]
              for ad in g.adders]
    outputs = [[-1 if o.node is None else o.node, o.shift, o.const] for o in g.outputs]
    arrays = {"inputs": _int64_table([[i.lo, i.hi] for i in g.inputs], 2, "input range"),
              "adders": _int64_table(adders, 7, "adder"),
              "outputs": _int64_table(outputs, 3, "output")}
    return {"max_carry": g.max_carry, "meta": dict(g.meta)}, arrays


def _check_table(a, ncol: int, what: str) -> list[list[int]]:
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[1] != ncol or a.dtype.kind not in "iu":
        raise IRError(f"adder graph {what} must be an integer [n, {ncol}] table, got "
                      f"{a.dtype} {a.shape}")
    return [[int(v) for v in r] for r in a.tolist()]


def _term(node: int, shift: int, neg: int, n_nodes: int, k: int) -> Term:
    if not 0 <= node < n_nodes or shift < 0 or neg not in (0, 1):
        raise IRError(f"adder {k}: operand (node {node}, shift {shift}, neg {neg}) is not an "
                      f"earlier node with a non-negative shift")
    return Term(node, shift, bool(neg))


def adder_graph_from_saved(doc: dict, arrays: dict[str, np.ndarray]) -> AdderGraph:
    """Rebuild an adder graph saved by :func:`adder_graph_to_saved`: every range, type and
    timing field is derived again by the adder builder; raises IRError on a malformed table."""
    from heatq.lower.builder import AdderBuilder  # the one place adder ranges are derived

    mc = doc.get("max_carry")
    if mc is not None and (type(mc) is not int or mc < 1):
        raise IRError(f"adder graph max_carry must be null or an integer >= 1, got {mc!r}")
    inputs = []
    for lo, hi in _check_table(arrays["inputs"], 2, "inputs"):
        if lo > hi:
            raise IRError(f"adder graph input range {lo}..{hi} is empty")
        inputs.append(InputNode(lo, hi, IntType.for_range(lo, hi)))
    b = AdderBuilder(inputs, mc)
    for k, (an, ash, ang, bn, bsh, bng, c) in enumerate(_check_table(arrays["adders"], 7, "adders")):
        n_nodes = len(inputs) + k
        ta = _term(an, ash, ang, n_nodes, k)
        tb = None if bn == -1 else _term(bn, bsh, bng, n_nodes, k)
        if (tb is not None and c) or (tb is not None and ta.neg and tb.neg):
            raise IRError(f"adder {k}: adds a term and a constant, or negates both operands")
        b.add(ta, tb, c)
    n_nodes = len(inputs) + len(b.adders)
    outputs = []
    for node, s, c in _check_table(arrays["outputs"], 3, "outputs"):
        if node == -1:
            outputs.append(Output(None, 0, c, c, c, IntType.for_range(c, c)))
            continue
        if not 0 <= node < n_nodes or s < 0:
            raise IRError(f"adder graph output (node {node}, shift {s}) is not a node")
        lo, hi = b.range(node)
        lo, hi = (lo << s) + c, (hi << s) + c
        outputs.append(Output(node, s, c, lo, hi, IntType.for_range(lo, hi)))
    return AdderGraph(tuple(inputs), tuple(b.adders), tuple(outputs), mc, dict(doc.get("meta", {})))
