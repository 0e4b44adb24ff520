"""Bit-heap arithmetic: the sums of an :class:`~heatq.ir.adders.AdderGraph` as columns of
weighted bits compressed by generalised parallel counters, then one carry-propagate adder.

Each sum (an output of the graph, or a shared subexpression kept as its own sum) is
``const + sum_src coef_src * src`` over sources (inputs, kept sums).  Every ``coef`` becomes
signed digits (:func:`heatq.lower.digits.digits`) and every source its bits, so the sum is a
heap of bits ``b * 2**k``:

* a negative weight (a negative digit, or the sign bit of a two's complement source) uses
  ``-b * 2**k = (~b) * 2**k - 2**k``: the inverted bit joins column ``k`` and ``-2**k`` the
  constant;
* all constants are gathered into one, taken modulo ``2**W`` (``W`` = the sum's exact type
  width) and added as its 1-bits (a constant bit folds into the counter that takes it);
* columns ``>= W`` are dropped: arithmetic modulo ``2**W`` is exact because the true value
  fits ``W`` bits (its type comes from its exact range).

Compression (:func:`compress`) runs in stages (Dadda-like: each stage has a target height,
the largest of 2, 4, 8, ... below the tallest column; columns are visited low to high and
compressed while their projected next-stage height, carries from lower columns included,
exceeds it), with the most bit-efficient counter the column allows (:data:`COUNTERS`:
every counter has at most 6 inputs, so each output bit is one LUT6): (6):3, (1,5):3,
(2,3):3, (1,4):3, (5):3, (3):2, and (2):2 only to reach two rows.  Its outputs at
columns ``>= W`` are not built.  The two rows left go to one ``+`` (a carry chain) over the
columns from the lowest one of height two; columns below it are wires.

Binary layers ({-1,+1} weights on 1-bit inputs) are then counters of the bits ``x_i`` and
``~x_i`` with one constant: ``y = popcount(x or ~x) - K``, no adder of inverted bits.

Which sums are kept (:func:`heap_plan`'s ``keep``): ``"none"`` flattens every output to
the digits of its row of ``g.matrix()``; ``"shared"`` keeps the graph's adders read twice
or more (its common subexpressions) as sums of their own, read as sources.
:func:`heap_sums` builds whichever :mod:`.cost` rates cheaper.

Signal names (``p`` = the ``prefix``, default ``h``): ``<p>_o<j>`` output ``j``;
``s<level>_n<id>`` a kept shared node (as the adder mappers name it);
``<sum>_t<stage>_k<col>_<n>``: counter ``n`` of that stage whose lowest input column is
``col``; ``<sum>_cpa``: the final carry-propagate adder.  Inputs are named as the caller
says (``x_c<c>_k<t>``, ``x_e<i>``).  The netlist of a plan: :mod:`.heap_rtl`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from heatq.ir import IntType
from heatq.ir.adders import AdderGraph
from heatq.lower.digits import digits

from . import netlist as nl
from .heap_rtl import COUNTER_FORM, build_plan

# (bits taken from column k, from column k+1): every counter has <= 6 inputs and its value
# (at most 7) fits 3 outputs; ordered by bits removed per output LUT, then by inputs.
COUNTERS: tuple[tuple[int, int], ...] = ((6, 0), (5, 1), (3, 2), (4, 1), (5, 0), (3, 0))
HALF_ADDER = (2, 0)

# A bit: (kind, index, bit, inverted); kind "x": input ``index``; "s": kept sum ``index``
# (an adder-graph node id); "c": output ``bit`` of counter ``index`` of the same sum;
# "1": the constant one.
Bit = tuple
ONE: Bit = ("1", 0, 0, False)


@dataclass
class Counter:
    """``sum(weight * bit)`` of ``ins`` (weights 1: column ``col``, 2: column ``col + 1``),
    ``outs`` output bits kept (columns ``col .. col + outs - 1``, all below the width)."""

    ins: tuple[Bit, ...]
    weights: tuple[int, ...]
    col: int
    outs: int
    stage: int


@dataclass
class SumPlan:
    """One sum: ``type`` (the exact type of its value), its counters and the two rows left
    (one bit or None per column) for the carry-propagate adder."""

    name: str
    type: IntType
    counters: list[Counter] = field(default_factory=list)
    rows: tuple[list, list] = ((), ())

    @property
    def cpa_low(self) -> int:
        """The lowest column with two bits (the carry-propagate adder starts there);
        the width when none has."""
        r0, r1 = self.rows
        return next((k for k in range(self.type.width) if r0[k] is not None
                     and r1[k] is not None), self.type.width)


@dataclass
class HeapPlan:
    """Kept shared sums (adder node id -> plan, in node order) and one plan per output."""

    keep: str
    shared: dict[int, SumPlan]
    outputs: list[SumPlan]
    src_types: dict[tuple[str, int], IntType]

    def sums(self) -> list[SumPlan]:
        return list(self.shared.values()) + self.outputs


# ---------------------------------------------------------------------- terms
def _input_src(g: AdderGraph, i: int):
    inp = g.inputs[i]
    return ("x", i), inp.type, (inp.lo if inp.lo == inp.hi else None)


def _flat_terms(g: AdderGraph, keep: str):
    """(shared node ids, {sum key: (coefs {src: int}, const)}): sum key ``("s", id)`` for a
    kept node, ``("o", j)`` for output ``j``."""
    if keep == "none":
        W, c = g.matrix()
        out = {}
        for j in range(len(g.outputs)):
            out[("o", j)] = ({("x", i): int(v) for i, v in enumerate(W[j].tolist()) if v},
                             int(c[j]))
        return [], out
    if keep != "shared":
        raise ValueError(f"keep must be 'none' or 'shared', got {keep!r}")
    refs: dict[int, int] = {}
    for ad in g.adders:
        for t in (ad.a, ad.b):
            if t is not None:
                refs[t.node] = refs.get(t.node, 0) + 1
    for o in g.outputs:
        if o.node is not None:
            refs[o.node] = refs.get(o.node, 0) + 1
    kept = [ad.id for ad in g.adders if refs.get(ad.id, 0) >= 2]
    ks = set(kept)
    memo: dict[int, tuple[dict, int]] = {}

    def expand(n: int, top: bool = False) -> tuple[dict, int]:
        if n < g.n_in:
            return {("x", n): 1}, 0
        if n in ks and not top:
            return {("s", n): 1}, 0
        if n in memo and not top:
            return memo[n]
        ad = g.adders[n - g.n_in]
        coef: dict = {}
        const = ad.const
        for t in (ad.a, ad.b):
            if t is None:
                continue
            sub, sc = expand(t.node)
            k = -(1 << t.shift) if t.neg else 1 << t.shift
            for s, v in sub.items():
                coef[s] = coef.get(s, 0) + k * v
            const += k * sc
        res = ({s: v for s, v in coef.items() if v}, const)
        if not top:
            memo[n] = res
        return res

    out = {("s", n): expand(n, top=True) for n in kept}
    for j, o in enumerate(g.outputs):
        if o.node is None:
            out[("o", j)] = ({}, o.const)
            continue
        coef, const = expand(o.node)
        out[("o", j)] = ({s: v << o.shift for s, v in coef.items()},
                         (const << o.shift) + o.const)
    return kept, out


def heap_columns(coefs: dict, const: int, width: int, src_types) -> list[list[Bit]]:
    """The bit heap of ``const + sum coefs[src] * src`` modulo ``2**width``: one list of bits
    per column (see the module docstring).  ``src_types[src]``: (IntType, constant value or
    None); a constant source folds into the constant."""
    cols: list[list[Bit]] = [[] for _ in range(width)]
    for src, coef in sorted(coefs.items()):
        t, cval = src_types[src]
        if cval is not None:
            const += coef * cval
            continue
        for s, g in digits(coef):
            for b in range(t.width):
                k = b + s
                if k >= width:
                    break
                neg = (g < 0) != (t.signed and b == t.width - 1)
                cols[k].append((src[0], src[1], b, neg))
                if neg:
                    const -= 1 << k
    const %= 1 << width
    for k in range(width):
        if const >> k & 1:
            cols[k].append(ONE)
    return cols


# ---------------------------------------------------------------------- compression
def _pick(cur: list, nxt_col: list | None, need: int, final: bool):
    """The counter shape for a column of ``cur`` bits (``nxt_col``: the bits of column
    k+1 not yet taken) that must lose ``need`` bits, or None.  The first of
    :data:`COUNTERS` that fits: overshooting a column is no loss (each counter output is
    one LUT, whatever column its removed bits came from)."""
    n1 = len(nxt_col) if nxt_col is not None else 0
    for a, b in COUNTERS:
        if len(cur) >= a and n1 >= b:
            return a, b
    if final and len(cur) >= 2 and need >= 1:
        return HALF_ADDER
    return None


def _out_bits(a: int, b: int) -> int:
    return max(1, (a + 2 * b).bit_length())


def compress(cols: list[list[Bit]], width: int, max_stages: int = 64):
    """Counters and the two final rows for a heap ``cols`` (see the module docstring):
    returns ``(counters, (row0, row1))``.  Counter ``n``'s output ``o`` is the bit
    ``("c", n, o, False)``."""
    counters: list[Counter] = []
    cols = [list(c) for c in cols]
    for stage in range(max_stages):
        top = max((len(c) for c in cols), default=0)
        if top <= 2:
            break
        t = 2
        while t * 2 < top:
            t *= 2
        nxt: list[list[Bit]] = [[] for _ in range(width)]
        for k in range(width):
            cur = cols[k]
            while cur:
                need = len(nxt[k]) + len(cur) - t
                if need <= 0:
                    break
                shape = _pick(cur, cols[k + 1] if k + 1 < width else None, need, t == 2)
                if shape is None:
                    break
                a, b = shape
                ins = tuple(cur[:a]) + (tuple(cols[k + 1][:b]) if b else ())
                del cur[:a]
                if b:
                    del cols[k + 1][:b]
                outs = min(_out_bits(a, b), width - k)
                n = len(counters)
                counters.append(Counter(ins, (1,) * a + (2,) * b, k, outs, stage + 1))
                for o in range(outs):
                    nxt[k + o].append(("c", n, o, False))
            nxt[k].extend(cur)
        cols = nxt
    else:
        raise RuntimeError("bit heap: compression did not converge")
    rows = ([c[0] if len(c) > 0 else None for c in cols],
            [c[1] if len(c) > 1 else None for c in cols])
    return counters, rows


def heap_plan(g: AdderGraph, keep: str = "none") -> HeapPlan:
    """The bit-heap plan of every output of ``g`` (combinational or not: the plan does not
    use the graph's timing).  ``keep``: ``"none"`` (outputs from ``g.matrix()``) or
    ``"shared"`` (the graph's adders read twice or more kept as sums)."""
    kept, terms = _flat_terms(g, keep)
    src_types: dict = {}
    for i in range(g.n_in):
        key, t, cval = _input_src(g, i)
        src_types[key] = (t, cval)
    shared: dict[int, SumPlan] = {}
    for n in kept:
        ad = g.adders[n - g.n_in]
        shared[n] = _sum_plan(f"s{ad.level}_n{ad.id}", ad.type, *terms[("s", n)], src_types)
        src_types[("s", n)] = (ad.type, None)
    outs = [_sum_plan(f"o{j}", o.type, *terms[("o", j)], src_types)
            for j, o in enumerate(g.outputs)]
    return HeapPlan(keep, shared, outs, {k: v[0] for k, v in src_types.items()})


def _sum_plan(name: str, t: IntType, coefs: dict, const: int, src_types) -> SumPlan:
    cols = heap_columns(coefs, const, t.width, src_types)
    counters, rows = compress(cols, t.width)
    return SumPlan(name, t, counters, rows)


# ---------------------------------------------------------------------- evaluation
def _bit_val(bit: Bit, env: dict, ctr: list[int]) -> int:
    kind, idx, b, inv = bit
    if kind == "1":
        v = 1
    elif kind == "c":
        v = ctr[idx] >> b & 1
    else:
        v = env[(kind, idx)] >> b & 1
    return v ^ int(inv)


def eval_sum(p: SumPlan, env: dict) -> int:
    """The value of sum ``p`` for source values ``env`` ({("x", i) | ("s", id): int}),
    computed from its counters and rows as the hardware does (modulo ``2**width``, read
    with the type's signedness)."""
    ctr: list[int] = []
    for c in p.counters:
        v = sum(w * _bit_val(b, env, ctr) for b, w in zip(c.ins, c.weights))
        ctr.append(v & ((1 << c.outs) - 1))
    W = p.type.width
    tot = 0
    for row in p.rows:
        tot += sum(_bit_val(b, env, ctr) << k for k, b in enumerate(row) if b is not None)
    tot &= (1 << W) - 1
    return tot - (1 << W) if p.type.signed and tot >> (W - 1) else tot


def evaluate_plan(plan: HeapPlan, x) -> list[list[int]]:
    """Outputs ``[N][n_out]`` (Python ints) of ``plan`` on integer input rows ``x``."""
    res = []
    for row in x:
        env = {("x", i): int(v) for i, v in enumerate(row)}
        for n, p in plan.shared.items():
            env[("s", n)] = eval_sum(p, env)
        res.append([eval_sum(p, env) for p in plan.outputs])
    return res


def heap_sums(m: nl.Module, g: AdderGraph, inputs, in_names, in_signed,
              prefix: str = "h", keep: str | None = None,
              form: str = COUNTER_FORM) -> list[nl.Signal]:
    """One signal per output of ``g`` holding its value (product plus constants, the
    output's ``type`` width and signedness, exact), built as bit heaps (module docstring).
    ``inputs[i]()`` returns input ``i``'s value (``in_signed[i]``: two's complement),
    named ``in_names[i]`` when first read.  ``keep``: None picks the cheaper of
    ``"none"`` / ``"shared"`` by :func:`heatq_export.rtl.cost.heap_cost`.  Combinational:
    a pipelined graph (``max_carry``) is refused."""
    if g.pipelined:
        raise ValueError("bit-heap arithmetic is combinational: the graph is pipelined "
                         f"(max_carry {g.max_carry})")
    from .cost import best_heap_plan

    plan = heap_plan(g, keep) if keep else best_heap_plan(g)
    return build_plan(m, plan, inputs, in_names, in_signed, prefix, form)
