"""Incremental construction of an adder graph: :class:`AdderBuilder` creates adders one at a
time and tracks, for every node, its coefficient vector over the inputs (so its exact range),
its level and, with ``max_carry``, the cycle its value is ready
(see :mod:`heatq.ir.adders`).
"""

from __future__ import annotations

from heatq.ir import IntType
from heatq.ir.adders import Adder, InputNode, Term, coeff_range

from .digits import trailing_zeros

SignedTerm = tuple[int, int, int]  # (node, shift, sign): sign * (node << shift), sign +1/-1


class AdderBuilder:
    """Adders over ``inputs`` (node ids ``0 .. n_in-1``); adder ``k`` is node ``n_in + k``.
    ``max_carry``: the pipelining bound of :class:`~heatq.ir.adders.AdderGraph` (None:
    combinational)."""

    def __init__(self, inputs: list[InputNode], max_carry: int | None):
        self.inputs = inputs
        self.n_in = len(inputs)
        self.max_carry = max_carry
        self.coef: list[dict[int, int]] = [{i: 1} for i in range(self.n_in)]
        self.cst: list[int] = [0] * self.n_in
        self.adders: list[Adder] = []
        self.levels: list[int] = [0] * self.n_in  # per node (inputs, then adders)
        self.widths: list[int] = [i.type.width for i in inputs]

    def width(self, n: int) -> int:
        return self.node_type(n).width

    def node_type(self, n: int) -> IntType:
        return self.inputs[n].type if n < self.n_in else self.adders[n - self.n_in].type

    def level(self, n: int) -> int:
        return 0 if n < self.n_in else self.adders[n - self.n_in].level

    def ready(self, n: int) -> int:
        return 0 if n < self.n_in else self.adders[n - self.n_in].ready

    def arrival(self, n: int) -> int:
        """When node ``n``'s value is available: its ready cycle when pipelined, else its level."""
        return self.ready(n) if self.max_carry else self.level(n)

    def range(self, n: int) -> tuple[int, int]:
        if n < self.n_in:
            return self.inputs[n].lo, self.inputs[n].hi
        a = self.adders[n - self.n_in]
        return a.lo, a.hi

    def _linear(self, a: Term, b: Term | None, const: int) -> tuple[dict[int, int], int]:
        """Coefficients over the inputs and constant of ``(+/-)a (+/-)b + const``."""
        coef: dict[int, int] = {}
        cst = const
        for t in (a, b):
            if t is None:
                continue
            f = -(1 << t.shift) if t.neg else 1 << t.shift
            for i, c in self.coef[t.node].items():
                coef[i] = coef.get(i, 0) + f * c
            cst += f * self.cst[t.node]
        return {i: c for i, c in coef.items() if c}, cst

    @staticmethod
    def _passthrough(a: Term, b: Term | None, const: int, width: int) -> int:
        """Low result bits that pass straight through from one operand (no carry enters them)."""
        za = a.shift
        zb = b.shift if b is not None else trailing_zeros(const)
        low_pos = (not a.neg) if za <= zb else (b is None or not b.neg)
        if za == zb:
            passthrough = za
        else:
            passthrough = max(za, zb) if low_pos else min(za, zb)
        return min(passthrough, width - 1)

    def add(self, a: Term, b: Term | None, const: int = 0) -> int:
        """Create one adder ``(+/-)a (+/-)b + const`` and return its node id."""
        assert not (b is not None and const), "an adder adds a term or a constant, not both"
        assert not (a.neg and b is not None and b.neg), "at most one operand is negated"
        coef, cst = self._linear(a, b, const)
        lo, hi = coeff_range(coef, self.inputs, cst)
        typ = IntType.for_range(lo, hi)
        passthrough = self._passthrough(a, b, const, typ.width)
        carry = max(1, typ.width - passthrough)
        K = self.max_carry
        segments = -(-carry // K) if K else 1
        ops = [a.node] + ([b.node] if b is not None else [])
        level = max(self.level(n) for n in ops) + 1
        ready = max(self.ready(n) for n in ops) + segments if K else level
        nid = self.n_in + len(self.adders)
        self.adders.append(Adder(nid, a, b, const, lo, hi, typ, level, ready, passthrough,
                                 carry, segments))
        self.coef.append(coef)
        self.cst.append(cst)
        self.levels.append(level)
        self.widths.append(typ.width)
        return nid

    def combine(self, t1: SignedTerm, t2: SignedTerm, positive: bool = False) -> SignedTerm:
        """Add two signed shifted terms; returns the new term ``(node, shift, sign)``.
        ``positive``: when the signs differ, make the result's sign positive (an output's
        root: no extra adder to negate it)."""
        (n1, s1, g1), (n2, s2, g2) = t1, t2
        if (s1, n1) > (s2, n2):  # t1: the lower shift
            (n1, s1, g1), (n2, s2, g2) = (n2, s2, g2), (n1, s1, g1)
        m = s1
        if g1 == g2:
            nid = self.add(Term(n1, 0), Term(n2, s2 - m))
            return nid, m, g1
        if positive and g1 < 0:  # high minus low: the low bits no longer pass straight
            nid = self.add(Term(n2, s2 - m), Term(n1, 0, True))
            return nid, m, 1
        # signs differ: keep the low operand positive so its low bits pass straight through
        nid = self.add(Term(n1, 0), Term(n2, s2 - m, True))
        return nid, m, g1
