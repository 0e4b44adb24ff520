"""The lanes of the folded matrix-vector unit (:mod:`.mvau`): the schedule, the weights as
per-step digit codes, and the step sums of the PE lanes as netlist cells.

A weight of lane ``(p, k)`` (PE lane ``p``, SIMD lane ``k``) is written in the lane's own type
(the narrowest holding every weight the lane sees over the steps: two's complement when one
is negative) as radix-4 digits: digit ``d`` covers bits ``2d, 2d+1`` (the last may be one
bit) and is unsigned (``0..3``), except the top digit of a signed lane (``-2..1``, or ``-1..0``
for one bit).  Its partial product is a multiple of the lane input selected by the digit's
code bits from the ROM: ``0, x, 2x, 3x`` (``3x = x + 2x``, once per SIMD lane, shared by the
PE lanes) or, for a negative digit, the complement ``~(m*x) = -m*x - 1`` (no adder; the
missing ``4**d`` of each negative digit is a constant of its output, added once in
``corr[j]``).  One LUT per product bit selects
(at most 5 inputs: two code bits and three multiple bits), and the lane's digits sum with the
rest of its PE row.  A digit whose code is the same at every step needs no ROM bit (code 0:
no term).

Binary lanes ({-1,+1} weights on 1-bit inputs): ``w*x = xnor(x, b) + b - 1`` with ``b = [w ==
+1]``; ``corr[j] = -(#-1 weights of row j)``; padding entries read ``x = 0`` with ``b = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heatq.ir import IntType

from . import netlist as nl

# code -> multiple of x, per digit kind
MULTS = {("u", 2): (0, 1, 2, 3), ("u", 1): (0, 1), ("s", 2): (0, 1, -2, -1), ("s", 1): (0, -1)}
# radix 4; 1: one term per weight bit (x & w_b, the sign bit complemented), measured larger
# (yosys synth_xilinx LUT+CARRY4: seed CNN conv4 12x16 lanes 9,093 vs 7,762; fc 16x5 2,963 vs
# 2,939)
DIGIT_BITS = 2


def mvau_cycles(n_in: int, n_out: int, simd: int, pe: int) -> int:
    """Cycles per input vector: ``ceil(n_out/pe) * ceil(n_in/simd)``."""
    if not (1 <= simd <= n_in and 1 <= pe <= n_out):
        raise ValueError(f"lanes simd={simd}, pe={pe} outside 1..{n_in} x 1..{n_out}")
    return -(-n_out // pe) * -(-n_in // simd)


@dataclass(frozen=True)
class Fold:
    """The schedule: ``nf`` output folds of ``pe`` lanes, ``sf`` input folds of ``simd``;
    ``bo`` / ``bi`` the widths of ``fold_o`` / ``fold_i`` (0: no counter)."""

    n_out: int
    n_in: int
    simd: int
    pe: int

    @property
    def nf(self) -> int:
        return -(-self.n_out // self.pe)

    @property
    def sf(self) -> int:
        return -(-self.n_in // self.simd)

    @property
    def bo(self) -> int:
        return (self.nf - 1).bit_length()

    @property
    def bi(self) -> int:
        return (self.sf - 1).bit_length()

    def out_index(self, f: int, p: int) -> int | None:
        j = f * self.pe + p
        return j if j < self.n_out else None

    def in_index(self, s: int, k: int) -> int | None:
        i = s * self.simd + k
        return i if i < self.n_in else None

    def lanes(self, w: np.ndarray) -> np.ndarray:
        """``w`` as ``[nf, sf, pe, simd]`` (Python ints), zero-padded."""
        out = np.zeros((self.nf * self.pe, self.sf * self.simd), dtype=object)
        out[:self.n_out, :self.n_in] = w
        return out.reshape(self.nf, self.pe, self.sf, self.simd).transpose(0, 2, 1, 3)


def is_binary(weights, in_type: IntType) -> bool:
    """Every weight -1 or +1 and 1-bit inputs: the XNOR-popcount lanes apply."""
    return in_type.width == 1 and bool(np.all(np.abs(np.asarray(weights, dtype=object)) == 1))


@dataclass(frozen=True)
class Term:
    """One partial product of PE lane ``p``: SIMD lane ``k``'s digit ``d`` (weight ``coef =
    4**d``; ``2**d`` when DIGIT_BITS is 1), its code at every step ``f*sf + s``, ``mults`` (code -> multiple; None: binary
    XNOR) and ``nb`` code bits."""

    p: int
    k: int
    d: int
    coef: int
    codes: tuple[int, ...]
    mults: tuple[int, ...] | None
    nb: int

    def varying(self) -> list[int]:
        """The code bits that change over the steps (ROM bits)."""
        return [b for b in range(self.nb) if len({c >> b & 1 for c in self.codes}) > 1]

    def value_range(self, xlo: int, xhi: int) -> tuple[int, int]:
        """The range of the term's value (complemented negative multiples: ``m*x - 1``)."""
        if self.mults is None:
            return 0, 1
        vals = [0]
        for c in set(self.codes):
            m = self.mults[c]
            vals += [m * x - (m < 0) for x in (xlo, xhi)]
        return min(vals), max(vals)


@dataclass
class Lanes:
    """Every term (PE lane by PE lane) and ``corr[j]``: the constant added to output ``j``."""

    terms: list[Term]
    corr: list[int]
    binary: bool

    def needs_x3(self, k: int) -> bool:
        return any(t.k == k and t.mults is not None and 3 in [t.mults[c] for c in t.codes]
                   for t in self.terms)


def lane_terms(fd: Fold, w: np.ndarray, in_type: IntType) -> Lanes:
    """The terms of weights ``w`` (``[n_out, n_in]``) on inputs of ``in_type``."""
    if is_binary(w, in_type):
        wb = -w if in_type.signed else w  # a signed 1-bit input is -1 times its bit
        wl = fd.lanes(wb)
        terms = [Term(p, k, 0, 1, tuple(int(v >= 0) for v in wl[:, :, p, k].ravel()), None, 1)
                 for p in range(fd.pe) for k in range(fd.simd)]
        return Lanes(terms, [-int(np.sum(wb[j] < 0)) for j in range(fd.n_out)], True)
    wl = fd.lanes(w)
    terms = []
    for p in range(fd.pe):
        for k in range(fd.simd):
            col = [int(v) for v in wl[:, :, p, k].ravel()]
            wt = IntType.for_range(min(col + [0]), max(col + [0]))
            n_dig = -(-wt.width // DIGIT_BITS)
            for d in range(n_dig):
                nb = min(DIGIT_BITS, wt.width - DIGIT_BITS * d)
                kind = "s" if wt.signed and d == n_dig - 1 else "u"
                codes = tuple((v >> DIGIT_BITS * d) & ((1 << nb) - 1) for v in col)
                if any(codes):
                    terms.append(Term(p, k, d, 1 << (DIGIT_BITS * d), codes,
                                      MULTS[(kind, nb)], nb))
    corr = [0] * fd.n_out
    for t in terms:  # a complemented multiple is 1 short: its weight 4**d, once per step
        for step, c in enumerate(t.codes):
            j = fd.out_index(step // fd.sf, t.p)
            if t.mults[c] < 0 and j is not None:
                corr[j] += t.coef
    return Lanes(terms, corr, False)


def term_graph(fd: Fold, lanes: Lanes, in_type: IntType):
    """The PE lanes' step sums as one constant product over the terms (row ``p``: lane
    ``p``'s terms): ``(W [pe, T], ranges)``."""
    W = np.zeros((fd.pe, max(1, len(lanes.terms))), dtype=np.int64)
    for t, term in enumerate(lanes.terms):
        W[term.p, t] = term.coef
    return W, [term.value_range(in_type.min, in_type.max) for term in lanes.terms]


def rom_entries(fd: Fold, cols: list[list[int]]) -> list[int]:
    """ROM entry ``(f << bi) | s``: bit ``t`` is ``cols[t][f*sf + s]``."""
    out = [0] * (fd.nf << fd.bi)
    for f in range(fd.nf):
        for s in range(fd.sf):
            step = f * fd.sf + s
            out[(f << fd.bi) | s] = sum(c[step] << t for t, c in enumerate(cols))
    return out


def _select(code_bits: list, options: list):
    """``options[code]`` by the code bits (a Value, or an int when the bit is constant);
    None options are codes that never occur."""
    for b in code_bits:
        nxt = []
        for lo, hi in zip(options[0::2], options[1::2]):
            if lo is None or hi is None:  # a code that never occurs: don't care
                nxt.append(hi if lo is None else lo)
            elif isinstance(b, int):
                nxt.append(hi if b else lo)
            else:
                nxt.append(nl.Mux(b, hi, lo))
        options = nxt
    return options[0]


def term_value(term: Term, x: nl.Signal, x3: nl.Signal | None, code_bits: list,
               width: int) -> nl.Value:
    """The term's ``width``-bit value: ``xnor(x, b)`` (binary) or the multiple its code
    selects (``code_bits[b]``: a ROM bit, or its constant value)."""
    if term.mults is None:
        b = code_bits[0]
        return (x if b else nl.Not(x)) if isinstance(b, int) else nl.Not(nl.Xor(x, b))
    seen = set(term.codes)

    def mult(m: int) -> nl.Value:
        if not m:
            return nl.Const(width, 0)
        base = nl.shifted(x3, 0, 0, width - 1) if abs(m) == 3 else \
            nl.shifted(x, abs(m) - 1, 0, width - 1)
        return base if m > 0 else nl.Not(base)
    opts = [mult(term.mults[c]) if c in seen else None for c in range(1 << term.nb)]
    return _select(code_bits, opts)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def mvau_shapes(n_in: int, n_out: int, max_cycles: int) -> list[tuple[int, int]]:
    """The lane shapes ``(simd, pe)`` worth costing that take at most ``max_cycles`` cycles:
    for each number of output folds, the fewest PE lanes giving it and the fewest SIMD lanes
    that meet the budget, plus the nearest divisor shape (no padding lanes) when it is at
    most 1.5x the lanes.  Sorted by lanes, divisor shapes first among equals."""
    if max_cycles < 1:
        raise ValueError(f"max_cycles {max_cycles} < 1")
    found: set[tuple[int, int]] = set()
    for nf in sorted({-(-n_out // pe) for pe in range(1, n_out + 1)}):
        sf_max = max_cycles // nf
        if sf_max < 1:
            continue
        pe = -(-n_out // nf)
        sf = -(-n_in // -(-n_in // sf_max))  # input folds of the fewest SIMD lanes
        simd = -(-n_in // sf)
        found.add((simd, pe))
        dp = min(d for d in _divisors(n_out) if d >= pe)
        ds = min(d for d in _divisors(n_in) if d >= simd)
        if ds * dp <= 1.5 * simd * pe:
            found.add((ds, dp))
    return sorted(found, key=lambda sp: (sp[0] * sp[1], n_in % sp[0] + n_out % sp[1],
                                         mvau_cycles(n_in, n_out, *sp)))
