"""Mappers from an :class:`~heatq.ir.adders.AdderGraph` to netlist cells: where adder
arithmetic is chosen.

Each adder ``value = (+/-)(a << sa) (+/-)(b << sb) | + const`` (see :mod:`heatq.ir.adders`)
is ``W = ad.width`` bits, two's complement when ``ad.type.signed``; its ``p =
ad.passthrough`` low bits come from one operand alone (the other is shifted past them) and
are wired around the carry chain, so only the ``L = W - p`` high bits are added.  Mappers:

* :class:`CarryChainAdders` -- ``X + Y`` / ``X - Y`` on ``L`` bits (synthesis maps it onto a
  carry chain);
* :class:`RippleGateAdders` -- adders of at most ``max_bits`` carry bits as XOR/AND/OR ripple
  gates, wider ones as carry chains (narrow adders then merge into LUTs with their
  neighbours);
* :class:`SegmentedAdders` -- pipelined graphs (``max_carry = K``): every adder registered,
  one with more than K carry bits split into K-bit slices with registered carries.

:func:`adder_mapper` selects one from the graph and the ``logic_add`` option.
"""

from __future__ import annotations

from heatq.ir.adders import Adder, AdderGraph
from heatq.lower.digits import trailing_zeros

from . import netlist as nl


def operands(ad: Adder):
    """(X, Y, sub): value = X + Y or X - Y; X, Y are ('n', node, shift) or ('c', const)."""
    a, b = ad.a, ad.b
    if b is None:
        if a.neg:
            return ("c", ad.const), ("n", a.node, a.shift), True
        return ("n", a.node, a.shift), ("c", ad.const), False
    if a.neg:
        return ("n", b.node, b.shift), ("n", a.node, a.shift), True
    return ("n", a.node, a.shift), ("n", b.node, b.shift), b.neg


def _zeros(op) -> int:
    return op[2] if op[0] == "n" else trailing_zeros(op[1])


class AdderNetlist:
    """The signals of one adder graph inside a module: inputs, adders, delayed copies.

    ``inputs[i]`` is a callable returning input ``i``'s value (``in_types[i].width`` bits) and
    ``in_names[i]`` the name of its signal (made when first read).  Adder node ``id`` at level
    ``l`` is ``s<l>_n<id>``; a copy delayed ``k`` cycles gets the suffix ``_d<k>``.  Registered
    assignments are collected in ``regs`` (the layer puts them into one clocked process)."""

    def __init__(self, m: nl.Module, g: AdderGraph, inputs, in_names, in_signed):
        self.m, self.g = m, g
        self.inputs, self.in_names, self.in_signed = inputs, in_names, in_signed
        self.regs: list[tuple[tuple[nl.Signal, ...], nl.Value]] = []
        self.sigs: dict[tuple[int, int], nl.Signal] = {}

    def name(self, n: int) -> str:
        if n < self.g.n_in:
            return self.in_names[n]
        ad = self.g.adders[n - self.g.n_in]
        return f"s{ad.level}_n{ad.id}"

    def base(self, n: int) -> nl.Signal:
        if (n, 0) not in self.sigs:
            if n >= self.g.n_in:
                raise KeyError(f"adder {n} read before it is built")
            self.sigs[(n, 0)] = self.m.comb(self.in_names[n], self.inputs[n](),
                                            self.in_signed[n])
        return self.sigs[(n, 0)]

    def at(self, n: int, delay: int) -> nl.Signal:
        """Node ``n`` delayed ``delay`` cycles (a chain of registers, made on demand)."""
        if delay == 0:
            return self.base(n)
        key = (n, delay)
        if key not in self.sigs:
            prev = self.at(n, delay - 1)
            s = self.m.signal(f"{self.name(n)}_d{delay}", prev.width, prev.signed)
            self.regs.append(((s,), prev))
            self.sigs[key] = s
        return self.sigs[key]

    def set(self, ad: Adder, sig: nl.Signal) -> None:
        self.sigs[(ad.id, 0)] = sig

    def operand_bits(self, op, lo: int, hi: int, delay_of) -> nl.Value:
        """Bits hi..lo of an operand (node << shift, or a constant)."""
        if op[0] == "c":
            return nl.Const(hi - lo + 1, op[1] >> lo)
        _, n, s = op
        return nl.shifted(delay_of(n), s, lo, hi)

    def split(self, ad: Adder, delay_of):
        """(low, xs, ys, sub): the ``p`` pass-through low bits (None when p = 0) and the
        ``L``-bit high parts of the two operands."""
        X, Y, sub = operands(ad)
        W, p = ad.width, ad.passthrough
        low = None
        if p:
            src = [op for op in (X, Y) if _zeros(op) < p]
            if len(src) > 1 or (src and src[0] is not X and sub):
                raise ValueError(f"adder {ad.id}: two operands reach its low {p} bits")
            low = self.operand_bits(src[0], 0, p - 1, delay_of) if src else nl.Const(p, 0)
        xs = self.operand_bits(X, p, W - 1, delay_of)
        ys = self.operand_bits(Y, p, W - 1, delay_of)
        return low, xs, ys, sub


def _with_low(low: nl.Value | None, high: nl.Value) -> nl.Value:
    return high if low is None else nl.cat(low, high)


class CarryChainAdders:
    """Every adder a ``+`` / ``-`` of its ``L`` carry bits (combinational graphs)."""

    def sum(self, an: AdderNetlist, name: str, xs, ys, sub: bool) -> nl.Value:
        return nl.Sub(xs, ys) if sub else nl.Add(xs, ys)

    def adder(self, an: AdderNetlist, ad: Adder) -> None:
        low, xs, ys, sub = an.split(ad, an.base)
        name = an.name(ad.id)
        an.set(ad, an.m.comb(name, _with_low(low, self.sum(an, name, xs, ys, sub)),
                             ad.type.signed))


class RippleGateAdders(CarryChainAdders):
    """Adders of at most ``max_bits`` carry bits as ripple-carry gates (XOR, AND, OR), the
    others as carry chains.  The operands are ``<name>_a`` and ``<name>_b`` (``~y`` for a
    subtraction, with carry-in 1), the carries 1-bit ``<name>_c<i>``."""

    def __init__(self, max_bits: int):
        self.max_bits = max_bits

    def sum(self, an: AdderNetlist, name: str, xs, ys, sub: bool) -> nl.Value:
        L = xs.width
        if L > self.max_bits:
            return super().sum(an, name, xs, ys, sub)
        m = an.m
        a = m.comb(f"{name}_a", xs)
        b = m.comb(f"{name}_b", nl.Not(ys) if sub else ys)
        out: list[nl.Value] = []
        c: nl.Value | None = nl.Const(1, 1) if sub else None
        for i in range(L):
            ai, bi = nl.bit(a, i), nl.bit(b, i)
            if c is None:
                out.append(nl.Xor(ai, bi))
                nxt = nl.And(ai, bi)
            elif isinstance(c, nl.Const):
                out.append(nl.Not(nl.Xor(ai, bi)))
                nxt = nl.Or(ai, bi)
            else:
                out.append(nl.Xor(nl.Xor(ai, bi), c))
                nxt = nl.Or(nl.And(ai, bi), nl.And(c, nl.Xor(ai, bi)))
            if i < L - 1:
                c = m.comb(f"{name}_c{i + 1}", nxt)
        return nl.cat(*out)


class SegmentedAdders:
    """Pipelined graphs: every adder registered; one with ``L > K`` carry bits split into
    ``ceil(L / K)`` slices ``<name>_s<k>`` (the finished low sum bits, widening), registered
    carries ``<name>_c<k>``, the operands' remaining high bits ``<name>_x<k>`` /
    ``<name>_y<k>`` and the pass-through bits ``<name>_p<k>`` riding along."""

    def __init__(self, max_carry: int):
        self.K = max_carry

    def adder(self, an: AdderNetlist, ad: Adder) -> None:
        start = ad.ready - ad.segments
        low, xs, ys, sub = an.split(ad, lambda n: an.at(n, start - an.g.ready(n)))
        name = an.name(ad.id)
        m = an.m
        if ad.segments == 1:
            s = m.signal(name, ad.width, ad.type.signed)
            an.regs.append(((s,), _with_low(low, nl.Sub(xs, ys) if sub else nl.Add(xs, ys))))
            an.set(ad, s)
            return
        x = m.comb(f"{name}_x", xs)
        y = m.comb(f"{name}_y", nl.Not(ys) if sub else ys)
        an.set(ad, self._segments(an, ad, name, x, y, low, sub))

    def _segments(self, an, ad, name, xk, yk, low, sub) -> nl.Signal:
        m, K, L, p = an.m, self.K, ad.width - ad.passthrough, ad.passthrough
        ck: nl.Value | None = nl.Const(1, 1) if sub else None
        sk: nl.Signal | None = None
        pk: nl.Value | None = low
        for k in range(ad.segments):
            sw = min(K, L - k * K)
            xa, ya = nl.bits(xk, sw - 1, 0), nl.bits(yk, sw - 1, 0)
            last = k == ad.segments - 1
            if not last:
                c_next = m.signal(f"{name}_c{k + 1}", 1)
                s_next = m.signal(f"{name}_s{k}", (k + 1) * K)
                z = nl.Const(1, 0)
                summ: nl.Value = nl.Add(nl.cat(xa, z), nl.cat(ya, z))
                if ck is not None:
                    summ = nl.Add(summ, nl.cat(ck, nl.Const(sw, 0)))
                an.regs.append(((s_next, c_next), summ if sk is None else nl.cat(sk, summ)))
                rest = L - (k + 1) * K
                x_next = m.signal(f"{name}_x{k + 1}", rest)
                y_next = m.signal(f"{name}_y{k + 1}", rest)
                an.regs.append(((x_next,), nl.bits(xk, L - k * K - 1, sw)))
                an.regs.append(((y_next,), nl.bits(yk, L - k * K - 1, sw)))
                xk, yk, ck, sk = x_next, y_next, c_next, s_next
            else:
                s_last = m.signal(f"{name}_s{k}", L)
                if sw == 1:
                    summ = nl.Xor(nl.Xor(xa, ya), ck)
                else:
                    summ = nl.Add(nl.Add(xa, ya), nl.cat(ck, nl.Const(sw - 1, 0)))
                an.regs.append(((s_last,), nl.cat(sk, summ)))
            if p:
                p_next = m.signal(f"{name}_p{k + 1}", p)
                an.regs.append(((p_next,), pk))
                pk = p_next
        return m.comb(name, nl.cat(pk, s_last) if p else s_last, ad.type.signed)


LOGIC_ADD = 3
"""The default ``logic_add``: in a combinational graph, adders of at most this many carry bits
are ripple-carry gates (yosys ``synth_xilinx`` measured fewer LUTs on the binary input planes;
docs/verilog.md)."""


def adder_mapper(g: AdderGraph, logic_add: int):
    """The mapper for graph ``g``: segmented when pipelined, else ripple gates for adders of
    at most ``logic_add`` carry bits (0: carry chains only)."""
    if g.pipelined:
        return SegmentedAdders(g.max_carry)
    return RippleGateAdders(logic_add) if logic_add > 0 else CarryChainAdders()


def map_adders(an: AdderNetlist, logic_add: int) -> None:
    """Build every adder of ``an.g`` with :func:`adder_mapper`'s mapper."""
    mapper = adder_mapper(an.g, logic_add)
    for ad in an.g.adders:
        mapper.adder(an, ad)
