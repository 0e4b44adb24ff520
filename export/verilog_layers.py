"""Verilog for one lowered product: an :class:`~heatq.lower.AdderGraph` plus its requantizer.

Module interface (every layer module)::

    clk, rst, in_valid, x[NX-1:0]  ->  out_valid, y[n_out*WY-1:0]   (y registered)

Input ``i`` of the adder graph is ``x[off_i +: w_i]`` (read only in the cycle of
``in_valid``); output ``j`` is ``y[j*WY +: WY]``.  Latency: one cycle when combinational,
``latency(adder graph) + 1`` when pipelined (``max_carry``): every adder is then registered
and an adder whose carry chain is longer than K bits is split into K-bit slices with
registered carries, the high operand bits and the finished low sum bits riding along in
registers.  Each adder is exactly as wide as its node's type; the low bits that pass
straight through from one operand are wired around the carry chain.
"""

from __future__ import annotations

from dataclasses import dataclass

from heatq.ir import IntType, Overflow
from heatq.lower import AdderGraph

from .verilog_netlist import VModule, const


@dataclass(frozen=True)
class RequantSpec:
    """The requantizer after the product (its rounding constant is already inside the
    adder graph): drop ``shift`` bits (floor) / append ``-shift`` zeros, then clip to
    ``lo..hi`` (SATURATE) or wrap."""

    shift: int
    lo: int
    hi: int
    overflow: Overflow


LOGIC_ADD = 3  # default of layer_module(logic_add=...): see there


def _tz(c: int) -> int:
    return (c & -c).bit_length() - 1 if c else 1 << 30


def _operands(ad):
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
    return op[2] if op[0] == "n" else _tz(op[1])


class _Gen:
    def __init__(self, m: VModule, g: AdderGraph, in_types, in_off, logic_add: int = 0):
        self.m, self.g = m, g
        self.logic_add = logic_add
        self.in_types, self.in_off = in_types, in_off
        self.pipelined = g.pipelined
        self.regs: list[str] = []  # nonblocking assignments of the one clocked block
        self.names: dict[tuple[int, int], str] = {}

    def base(self, n: int) -> str:
        if (n, 0) in self.names:
            return self.names[(n, 0)]
        assert n < self.g.n_in
        t = self.in_types[n]
        name = self.m.comb(f"i{n}", t.width, self.m.sel("x", self.in_off[n] + t.width - 1,
                                                       self.in_off[n]), t.signed)
        self.names[(n, 0)] = name
        return name

    def at(self, n: int, delay: int) -> str:
        """Node ``n`` delayed ``delay`` cycles (a chain of registers, made on demand)."""
        if delay == 0:
            return self.base(n)
        key = (n, delay)
        if key not in self.names:
            prev = self.at(n, delay - 1)
            w = self.m.width[prev]
            name = self.m.reg(f"n{n}_d{delay}" if n >= self.g.n_in else f"i{n}_d{delay}", w,
                              self.m.signed[prev])
            self.regs.append(f"{name} <= {self.m.all(prev)};")
            self.names[key] = name
        return self.names[key]

    def bits(self, op, lo: int, hi: int, delay_of) -> str:
        """Bits hi..lo of an operand (node << shift, or a constant)."""
        if op[0] == "c":
            return const(hi - lo + 1, op[1] >> lo)
        _, n, s = op
        return self.m.ext(delay_of(n), s, lo, hi)

    def adder(self, ad) -> None:
        m, g = self.m, self.g
        X, Y, sub = _operands(ad)
        W, p = ad.width, ad.passthrough
        L = W - p
        if self.pipelined:
            start = ad.ready - ad.segments
            delay_of = lambda n: self.at(n, start - g.ready(n))  # noqa: E731
        else:
            delay_of = self.base
        low = None
        if p:
            src = [op for op in (X, Y) if _zeros(op) < p]
            assert len(src) <= 1 and (not src or src[0] is X or not sub), (ad, "low bits")
            low = self.bits(src[0], 0, p - 1, delay_of) if src else f"{p}'d0"
        xs = self.bits(X, p, W - 1, delay_of)
        ys = self.bits(Y, p, W - 1, delay_of)
        op = "-" if sub else "+"
        name = f"n{ad.id}"
        # narrow adders as gates, combinational graphs only: between registers the carry
        # chain maps better (measured), and gates gain by merging with their neighbours
        gates = L <= self.logic_add and not self.pipelined
        expr = self.gate_sum(name, L, xs, ys, sub) if gates else f"{xs} {op} {ys}"
        if not self.pipelined:
            m.comb(name, W, f"{{{expr}, {low}}}" if low else expr, ad.type.signed)
            self.names[(ad.id, 0)] = name
            return
        K = g.max_carry
        NS = ad.segments
        if NS == 1:
            m.reg(name, W, ad.type.signed)
            self.regs.append(f"{name} <= {{{expr}, {low}}};" if low else f"{name} <= {expr};")
            self.names[(ad.id, 0)] = name
            return
        # segmented: K-bit slices, registered carries
        x0 = m.comb(f"{name}_x", L, xs)
        y0 = m.comb(f"{name}_y", L, f"~({ys})" if sub else ys)
        xk, yk, ck, sk, pk = x0, y0, None, None, low
        for k in range(NS):
            sw = min(K, L - k * K)
            last = k == NS - 1
            xa = m.sel(xk, sw - 1, 0)
            ya = m.sel(yk, sw - 1, 0)
            cin = m.all(ck) if ck else ("1'b1" if sub else None)
            if not last:
                c_next = m.reg(f"{name}_c{k + 1}", 1)
                s_next = m.reg(f"{name}_s{k}", (k + 1) * K)
                summ = f"{{1'b0, {xa}}} + {{1'b0, {ya}}}"
                if cin:
                    summ += f" + {{{sw}'d0, {cin}}}"
                rhs = f"{{{summ}, {m.all(sk)}}}" if sk else summ
                self.regs.append(f"{{{c_next}, {s_next}}} <= {rhs};")
                rest = L - (k + 1) * K
                x_next = m.reg(f"{name}_x{k + 1}", rest)
                y_next = m.reg(f"{name}_y{k + 1}", rest)
                self.regs.append(f"{x_next} <= {m.sel(xk, L - k * K - 1, sw)};")
                self.regs.append(f"{y_next} <= {m.sel(yk, L - k * K - 1, sw)};")
                if p:
                    p_next = m.reg(f"{name}_p{k + 1}", p)
                    self.regs.append(f"{p_next} <= {m.all(pk) if k else pk};")
                    pk = p_next
                xk, yk, ck, sk = x_next, y_next, c_next, s_next
            else:
                s_last = m.reg(f"{name}_s{k}", L)
                if sw == 1:
                    summ = f"{xa} ^ {ya} ^ {cin}"
                else:
                    summ = f"{xa} + {ya} + {{{sw - 1}'d0, {cin}}}"
                self.regs.append(f"{s_last} <= {{{summ}, {m.all(sk)}}};")
                if p:
                    p_next = m.reg(f"{name}_p{k + 1}", p)
                    self.regs.append(f"{p_next} <= {m.all(pk) if k else pk};")
                    pk = p_next
                expr = f"{{{m.all(s_last)}, {m.all(pk)}}}" if p else m.all(s_last)
                m.comb(name, W, expr, ad.type.signed)
        self.names[(ad.id, 0)] = name

    def gate_sum(self, name: str, L: int, xs: str, ys: str, sub: bool) -> str:
        """``xs + ys`` (``xs - ys`` when ``sub``) modulo ``2**L`` as ripple-carry gates (XOR,
        AND, OR) instead of ``+``: synthesis then maps a narrow adder into LUTs together with
        its neighbours rather than onto a carry chain of its own.  Returns an ``L``-bit
        expression; the carries are 1-bit signals ``<name>_c<i>``."""
        m = self.m
        a = m.comb(f"{name}_a", L, xs)
        b = m.comb(f"{name}_b", L, f"~({ys})" if sub else ys)
        bits, c = [], "1'b1" if sub else None
        for i in range(L):
            ai, bi = m.bit(a, i), m.bit(b, i)
            if c is None:
                bits.append(f"{ai} ^ {bi}")
                nxt = f"{ai} & {bi}"
            elif c == "1'b1":
                bits.append(f"~({ai} ^ {bi})")
                nxt = f"{ai} | {bi}"
            else:
                bits.append(f"{ai} ^ {bi} ^ {m.all(c)}")
                nxt = f"({ai} & {bi}) | ({m.all(c)} & ({ai} ^ {bi}))"
            if i < L - 1:
                c = m.comb(f"{name}_c{i + 1}", 1, nxt)
        return bits[0] if L == 1 else "{" + ", ".join(f"({t})" for t in reversed(bits)) + "}"


def _requant_tail(m: VModule, v: str, vt: IntType, vlo: int, vhi: int, rq: RequantSpec,
                  yt: IntType, j: int) -> str:
    """Shift (floor) and clip / wrap ``v`` into ``yt``; returns a ``yt.width``-bit expression."""
    s = rq.shift
    wv = vt.width
    if s > 0:
        qlo, qhi = vlo >> s, vhi >> s
        if wv > s:
            q = m.comb(f"q{j}", wv - s, m.sel(v, wv - 1, s), vt.signed)
        elif vt.signed:
            q = m.comb(f"q{j}", 1, m.bit(v, wv - 1), True)
        else:
            q = m.comb(f"q{j}", 1, "1'b0", False)
            m.all(v)
    elif s < 0:
        qlo, qhi = vlo << -s, vhi << -s
        q = m.comb(f"q{j}", wv - s, f"{{{m.all(v)}, {-s}'d0}}", vt.signed)
    else:
        qlo, qhi = vlo, vhi
        q = v
    wq, sq = m.width[q], m.signed[q]
    wy = yt.width
    if rq.overflow is Overflow.WRAP:
        span = rq.hi - rq.lo + 1
        if rq.lo not in (0, -(span // 2)):
            raise NotImplementedError(f"REQUANT WRAP to {rq.lo}..{rq.hi} (only 0.. or "
                                      "symmetric two's complement ranges)")
        return m.ext(q, 0, 0, wy - 1)
    lo, hi = rq.lo, rq.hi
    conds = []
    if qlo < lo:
        if sq and lo == 0:
            lt = m.bit(q, wq - 1)
        elif sq:
            lt = f"($signed({m.all(q)}) < $signed({const(wq, lo)}))"
        else:
            lt = f"({m.all(q)} < {const(wq, lo)})"
        conds.append((lt, const(wy, lo)))
    if qhi > hi:
        k = (hi + 1).bit_length() - 1
        pow2 = hi >= 0 and (1 << k) == hi + 1 and lo >= 0
        if pow2 and not sq and k < wq:
            gt = f"(|{m.sel(q, wq - 1, k)})"
        elif pow2 and sq and k <= wq - 2:
            gt = f"(|{m.sel(q, wq - 2, k)})"
        elif sq:
            gt = f"($signed({m.all(q)}) > $signed({const(wq, hi)}))"
        else:
            gt = f"({m.all(q)} > {const(wq, hi)})"
        conds.append((gt, const(wy, hi)))
    val = m.ext(q, 0, 0, wy - 1)
    for cond, c in reversed(conds):
        val = f"{cond} ? {c} : ({val})" if "?" in val else f"{cond} ? {c} : {val}"
    return val


def layer_module(name: str, g: AdderGraph, in_types: list[IntType], in_off: list[int],
                 nx: int, out_type: IntType, requant: RequantSpec | None,
                 doc: str, registered: bool = True, logic_add: int = LOGIC_ADD
                 ) -> tuple[str, int]:
    """The Verilog text of one layer module and its latency in cycles.

    ``registered=False`` (combinational adder graphs only): a bare ``x -> y`` module with
    no clock and no registers (latency 0), e.g. for side-by-side comparisons.
    ``logic_add``: in a combinational graph, adders whose carry chain is at most that many
    bits are written as ripple-carry gates (see :meth:`_Gen.gate_sum`); 0: every adder is a
    ``+``.  The default (3) only touches products of very narrow inputs (the binary input
    planes): yosys ``synth_xilinx`` LUT+CARRY4 on the seed CNN's conv1 (100x8, 1-bit inputs)
    falls 11% (trained, 1341 -> 1199) and 10% (random, 2047 -> 1846); 4-bit and 8-bit
    inputs give no carry chain that short (64x10 and 256x64 bench matrices: identical text);
    5 bits lost on conv1 and conv2, and pipelined graphs lose with gates (conv1 1465 ->
    1536), so they keep ``+``."""
    if not registered and g.pipelined:
        raise ValueError("a pipelined adder graph needs the registered module")
    m = VModule(name, doc)
    if registered:
        m.input("clk", 1)
        m.input("rst", 1)
        m.input("in_valid", 1)
    m.input("x", nx)
    n_out = len(g.outputs)
    wy = out_type.width
    if registered:
        m.output("out_valid", 1)
    m.output("y", n_out * wy, reg=registered)
    gen = _Gen(m, g, in_types, in_off, logic_add)
    for ad in g.adders:
        gen.adder(ad)
    lat = g.latency
    vals = []
    for j, o in enumerate(g.outputs):
        vt = o.type
        if o.node is None:
            v = m.comb(f"v{j}", vt.width, const(vt.width, o.const), vt.signed)
        else:
            src = gen.at(o.node, lat - g.ready(o.node)) if g.pipelined else gen.base(o.node)
            v = m.comb(f"v{j}", vt.width, m.ext(src, o.shift, 0, vt.width - 1), vt.signed)
        if requant is None:
            vals.append(m.ext(v, 0, 0, wy - 1))
        else:
            vals.append(_requant_tail(m, v, vt, o.lo, o.hi, requant, out_type, j))
    for j, e in enumerate(vals):
        m.comb(f"r{j}", wy, e, out_type.signed)
    cat = ", ".join(m.all(f"r{j}") for j in reversed(range(n_out)))
    yv = f"{{{cat}}}" if n_out > 1 else cat
    if not registered:
        m.line(f"assign y = {yv};")
        return m.render(), 0
    # valid pipeline; pipeline registers advance only while a token is in flight (the
    # other cycles' contents belong to no token), which also keeps simulators fast
    vp = m.reg("vpipe", lat + 1)
    clk, rst, iv = m.all("clk"), m.all("rst"), m.all("in_valid")
    shift = f"{{{m.sel(vp, lat - 1, 0)}, {iv}}}" if lat else iv
    m.line(f"always @(posedge {clk}) {vp} <= {rst} ? {lat + 1}'d0 : {shift};")
    m.line(f"assign out_valid = {m.bit(vp, lat)};")
    if gen.regs:
        busy = m.wire("busy", 1, f"{iv} | (|{m.all(vp)})")
        m.line(f"always @(posedge {clk}) if ({m.all(busy)}) begin")
        for r in gen.regs:
            m.line("    " + r)
        m.line(f"    y <= {yv};")
        m.line("end")
    else:
        m.line(f"always @(posedge {clk}) if ({iv}) y <= {yv};")
    return m.render(), lat + 1
