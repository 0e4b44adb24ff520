"""The netlist of a bit-heap plan (:mod:`.heap`): counters, the final carry-propagate adder.

Counters are written as full / half adders of their bits (``form="gates"``, the default:
``<counter>_s<i>`` / ``<counter>_c<i>`` are the sum and carry of its i-th adder) or as one
constant table each (``form="table"``, an ``nl.LutTable`` printed as a ``case``); either
way every output bit is a function of at most six input bits.  Inverted heap bits are
``~bit`` inside the counter or final-adder operand; constant-1 bits fold into the table
(gates: a ``1'b1`` operand the synthesis folds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import netlist as nl

if TYPE_CHECKING:
    from .heap import Bit, Counter, HeapPlan, SumPlan

COUNTER_FORM = "gates"


def _table(c: Counter) -> tuple[list[Bit], tuple[int, ...]]:
    """The counter's non-constant input bits (index order) and its table."""
    real = [(b, w) for b, w in zip(c.ins, c.weights) if b[0] != "1"]
    k0 = sum(w for b, w in zip(c.ins, c.weights) if b[0] == "1")
    mask = (1 << c.outs) - 1
    table = tuple((k0 + sum(w * ((k >> i & 1) ^ int(b[3])) for i, (b, w) in enumerate(real)))
                  & mask for k in range(1 << len(real)))
    return [b for b, _ in real], table


def _cat(parts: list[nl.Value]) -> nl.Value:
    """``nl.cat`` with runs of consecutive bits of one signal merged into one slice
    (``h[2:0]``, not ``{h[2], h[1], h[0]}``)."""
    out: list[nl.Value] = []
    for p in parts:
        q = out[-1] if out else None
        if isinstance(p, nl.Slice) and isinstance(q, nl.Slice) and p.sig is q.sig \
                and p.lo == q.hi + 1:
            out[-1] = nl.bits(p.sig, p.hi, q.lo)
            if not isinstance(out[-1], nl.Slice):  # the whole signal
                out[-1] = nl.Slice(p.sig, p.hi, q.lo)
            continue
        out.append(p)
    return nl.cat(*[nl.bits(v.sig, v.hi, v.lo) if isinstance(v, nl.Slice) else v
                    for v in out])


class _Builder:
    def __init__(self, m: nl.Module, inputs, in_names, in_signed, form: str):
        self.m, self.inputs, self.in_names, self.in_signed = m, inputs, in_names, in_signed
        self.sigs: dict[tuple[str, int], nl.Signal] = {}
        self.form = form

    def table_counter(self, c: Counter, nm: str, ctr: list) -> nl.Signal:
        """A counter as one constant table (a ``case``) over its non-constant inputs."""
        bits, table = _table(c)
        if not bits:
            return self.m.comb(nm, nl.Const(c.outs, table[0]))
        idx = nl.cat(*[self.raw(b, ctr) for b in bits])
        return self.m.comb(nm, nl.LutTable(idx, table, c.outs))

    def gate_counter(self, c: Counter, nm: str, ctr: list) -> nl.Signal:
        """A counter as full / half adders of its bits (``<nm>_s<i>``, ``<nm>_c<i>``: sum
        and carry of the i-th), column by column; synthesis maps each output bit, a
        function of at most 6 inputs, to one LUT."""
        m = self.m
        cols: list[list[nl.Value]] = [[] for _ in range(c.outs + 2)]
        for b, w in zip(c.ins, c.weights):
            cols[w.bit_length() - 1].append(self.value(b, ctr))
        outs: list[nl.Value] = []
        n = 0
        for k in range(c.outs):
            col = cols[k]
            while len(col) > 1:
                a, b = col.pop(0), col.pop(0)
                if col:  # three bits: a full adder, else a half adder
                    d = col.pop(0)
                    ab = nl.Xor(a, b)
                    s_, cy = nl.Xor(ab, d), nl.Or(nl.And(a, b), nl.And(d, ab))
                else:
                    s_, cy = nl.Xor(a, b), nl.And(a, b)
                col.append(m.comb(f"{nm}_s{n}", s_))
                if k + 1 < c.outs:
                    cols[k + 1].append(m.comb(f"{nm}_c{n}", cy))
                n += 1
            outs.append(col[0] if col else nl.Const(1, 0))
        return m.comb(nm, nl.cat(*outs))

    def source(self, kind: str, idx: int) -> nl.Signal:
        if (kind, idx) not in self.sigs:  # an input, made when first read
            self.sigs[(kind, idx)] = self.m.comb(self.in_names[idx], self.inputs[idx](),
                                                 self.in_signed[idx])
        return self.sigs[(kind, idx)]

    def raw(self, bit: Bit, ctr: list) -> nl.Value:
        kind, idx, b, _ = bit
        if kind == "1":
            return nl.Const(1, 1)
        if kind == "c":
            return nl.bit(ctr[idx], b)
        return nl.bit(self.source(kind, idx), b)

    def value(self, bit: Bit | None, ctr: list) -> nl.Value:
        if bit is None:
            return nl.Const(1, 0)
        v = self.raw(bit, ctr)
        return nl.Not(v) if bit[3] else v

    def build(self, p: SumPlan, name: str) -> nl.Signal:
        m, ctr = self.m, []
        seen: dict[tuple[int, int], int] = {}
        for c in p.counters:
            key = (c.stage, c.col)
            n = seen.get(key, 0)
            seen[key] = n + 1
            nm = f"{name}_t{c.stage}_k{c.col}_{n}"
            ctr.append(self.table_counter(c, nm, ctr) if self.form == "table"
                       else self.gate_counter(c, nm, ctr))
        W, k0 = p.type.width, p.cpa_low
        parts = [self.value(p.rows[0][k], ctr) for k in range(k0)]
        if k0 < W:
            a = _cat([self.value(p.rows[0][k], ctr) for k in range(k0, W)])
            b = _cat([self.value(p.rows[1][k], ctr) for k in range(k0, W)])
            parts.append(m.comb(f"{name}_cpa", nl.Add(a, b)))
        return m.comb(name, _cat(parts), p.type.signed)


def build_plan(m: nl.Module, plan: HeapPlan, inputs, in_names, in_signed,
               prefix: str = "h", form: str = COUNTER_FORM) -> list[nl.Signal]:
    """The netlist of ``plan`` in ``m``: the kept sums, then one signal per output
    (``<prefix>_o<j>``).  ``form``: counters as ``"gates"`` (full / half adders) or
    ``"table"`` (a ``case`` table each)."""
    b = _Builder(m, inputs, in_names, in_signed, form)
    for n, p in plan.shared.items():
        b.sigs[("s", n)] = b.build(p, p.name)
    return [b.build(p, f"{prefix}_{p.name}") for p in plan.outputs]
