"""A folded matrix-vector unit (the idea of FINN's MVAU; our own code): ``y = requant(W @ x +
c)`` computed by ``pe`` output lanes x ``simd`` input lanes over ``cycles`` clock cycles, the
weights in a ROM instead of wired into constant adder trees.

Schedule: output fold ``f = 0..NF-1`` (``NF = ceil(n_out/pe)``), inside it input fold ``s =
0..SF-1`` (``SF = ceil(n_in/simd)``): one step per cycle, ``cycles = NF * SF``.  In step
``(f, s)`` PE lane ``p`` computes output ``j = f*pe + p`` from inputs ``i = s*simd + k``
(``k < simd``); lanes beyond ``n_in`` / ``n_out`` (the last folds of a non-divisor shape) hold
zero weights.  Two stages, one cycle apart:

* A (fetch, counters ``fold_o`` / ``fold_i``): ``x_s<k>`` <= SIMD lane ``k``'s input (a mux
  tree over the input registers by ``fold_i``), ``w_p<p>`` <= ``w_rom_p<p>[{fold_o, fold_i}]``
  (PE lane ``p``'s varying weight code bits, one :class:`~.netlist.LutTable`), ``c_p<p>`` <=
  ``c_rom_p<p>[fold_o]`` (the outputs' constants).  Registering them keeps synthesis from
  copying the mux and ROM logic into every product;
* B (add; ``run_b``, ``first_i_b``, ``last_i_b``, ``last_b``): the lanes' partial products
  (:mod:`.mvau_lanes`: radix-4 weight digits selecting ``0, x, 2x, 3x`` or their complements;
  binary layers: XNOR) summed per PE lane as one constant product over the terms
  (:func:`heatq.lower.lower_cmvm`, exact-width adders from :mod:`.adders`), ``acc_next_p<p> =
  (first input fold ? c_p<p> : acc_p<p>) + sum_p<p>``; after the last input fold of output
  fold ``f < NF-1`` the lanes' results shift into ``slot_p<p>_f<k>`` (a shift register per
  lane: no write decoder); after the last step every output is requantized
  (:func:`.requant.spec_requant_cells`, on :func:`heatq.ir.requant.requant_plan`) and ``y``
  registered.

Exactness: every cell adds, subtracts or selects, so arithmetic modulo ``2**WA_p`` is exact
for any value that fits ``WA_p`` bits; ``WA_p`` (signed accumulator ``acc_p<p>``) is the widest
``acc_types[j].width`` of lane ``p``'s outputs and output ``j`` reads the low
``acc_types[j].width`` bits with that type's signedness.  The partial sums of the first folds
may wrap; the final value is exact because ``acc_types[j]`` holds it (the caller's contract:
for every input the module receives).

Timing (the layer-module contract): ``x`` is read only in the cycle of ``in_valid`` (the
input registers load then); stage A runs in the ``cycles`` cycles after it, stage B one cycle
behind, ``y`` is registered at the end of the last stage-B step: ``latency = cycles + 2``
(``out_valid`` high one cycle, ``latency`` cycles after ``in_valid``, where a layer module of
latency 1 raises it in the next cycle); ``in_valid`` may come again ``cycles`` cycles later;
``y`` holds until the next result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heatq.ir import IntType
from heatq.lower import lower_cmvm

from . import netlist as nl
from .adders import LOGIC_ADD, AdderNetlist, map_adders
from .heap import heap_sums
from .lint import add_unused_sink
from .mvau_lanes import (  # mvau_cycles, mvau_shapes, is_binary: part of this module's API
    Fold, Lanes, is_binary, lane_terms, mvau_cycles, mvau_shapes, rom_entries, term_graph,
    term_value,
)
from .requant import spec_requant_cells

REG_ROM = True


def _x_lanes(m: nl.Module, fd: Fold, xr: list[nl.Signal], fold_i, binary: bool,
             signed: bool, clk, run) -> list[nl.Signal]:
    """``x_s<k>``: input ``s*simd + k`` of input fold ``s``, registered (a mux tree on
    ``fold_i``'s bits; padding entries are don't-cares, binary: 0)."""
    zero = nl.Const(xr[0].width, 0)
    out = []
    for k in range(fd.simd):
        ents: list[nl.Value | None] = [None] * (1 << fd.bi)
        for s in range(fd.sf):
            i = fd.in_index(s, k)
            ents[s] = xr[i] if i is not None else (zero if binary else None)
        for lvl in range(fd.bi):
            nxt = []
            for a, b in zip(ents[0::2], ents[1::2]):
                if b is None or b is a:
                    nxt.append(a)
                elif a is None:
                    nxt.append(b)
                else:
                    nxt.append(nl.Mux(nl.bit(fold_i, lvl), b, a))
            ents = nxt
        xs = m.signal(f"x_s{k}", xr[0].width, signed and not binary)
        m.reg(xs, ents[0], clk, run)
        out.append(xs)
    return out


def _table(m: nl.Module, name: str, index: nl.Value | None, entries: list[int],
           width: int) -> nl.Value:
    """``entries[index]`` (``width`` bits, two's complement) as the LutTable ``name``; missing
    entries are 0; a Const when there is no index."""
    mask = (1 << width) - 1
    if index is None:
        return nl.Const(width, entries[0] & mask)
    table = [0] * (1 << index.width)
    table[:len(entries)] = [e & mask for e in entries]
    return m.comb(name, nl.LutTable(index, tuple(table), width))


def _lane_sums(m: nl.Module, fd: Fold, lanes: Lanes, xs: list[nl.Signal], index,
               in_type: IntType, arith: str, clk, run):
    """The PE lanes' step sums (one adder graph for all lanes; :mod:`.mvau_lanes`): per lane
    ``(signal, shift)`` (the sum is ``signal << shift``) or None (no terms: 0)."""
    if not lanes.terms:  # every weight zero
        return [None] * fd.pe
    W, ranges = term_graph(fd, lanes, in_type)
    g = lower_cmvm(W, ranges, cse=False)
    w3 = IntType.for_range(3 * min(in_type.min, 0), 3 * in_type.max).width
    x3 = [m.comb(f"x3_s{k}", nl.Add(nl.shifted(x, 0, 0, w3 - 1), nl.shifted(x, 1, 0, w3 - 1)),
                 x.signed) if lanes.needs_x3(k) else None for k, x in enumerate(xs)]
    roms, code_bits = [], []
    for p in range(fd.pe):
        lane = [t for t in lanes.terms if t.p == p]
        cols = [[c >> b & 1 for c in t.codes] for t in lane for b in t.varying()]
        rom = _table(m, f"w_rom_p{p}", index, rom_entries(fd, cols), len(cols)) if cols \
            else None
        if rom is not None and REG_ROM:
            q = m.signal(f"w_p{p}", rom.width)
            m.reg(q, rom, clk, run)
            rom = q
        roms.append(rom)
        used = 0
        for t in lane:
            bits: list = []
            for b in range(t.nb):
                if b in t.varying():
                    bits.append(nl.bit(rom, used))
                    used += 1
                else:
                    bits.append(t.codes[0] >> b & 1)
            code_bits.append(bits)
    inputs, names = [], []
    for i, (t, bits) in enumerate(zip(lanes.terms, code_bits)):
        width = g.inputs[i].type.width
        val = term_value(t, xs[t.k], x3[t.k], bits, width)
        inputs.append(lambda v=val: v)
        names.append(f"t_p{t.p}_s{t.k}" if lanes.binary else f"t_p{t.p}_s{t.k}_d{t.d}")
    signed = [inp.type.signed for inp in g.inputs]
    if arith == "heap":
        return [(v, 0) for v in heap_sums(m, g, inputs, names, signed)]
    an = AdderNetlist(m, g, inputs, names, signed)
    map_adders(an, LOGIC_ADD)
    return [None if o.node is None else (an.base(o.node), o.shift) for o in g.outputs]


def _all_ones(m: nl.Module, name: str, sig: nl.Signal | None, k: int) -> nl.Value:
    """``sig == k`` for a counter that never exceeds ``k``: the AND of the bits set in ``k``
    (1 when there is no counter)."""
    if sig is None:
        return nl.Const(1, 1)
    ones = [nl.bit(sig, b) for b in range(sig.width) if k >> b & 1]
    return m.comb(name, nl.Reduce("&", nl.cat(*ones)) if len(ones) > 1 else ones[0])


def _control(m: nl.Module, fd: Fold, clk, rst, iv):
    """Stage A (the step being fetched): ``run``, the fold counters, ``first_i`` / ``last_i``
    (first / last input fold) and ``last`` (the last step); stage B (the step being added,
    one cycle later): ``run_b``, ``first_b``, ``last_i_b``, ``last_b``.  Returns (run,
    fold_o, fold_i, stage-B signals)."""
    run = m.signal("run", 1)
    fold_o = m.signal("fold_o", fd.bo) if fd.bo else None
    fold_i = m.signal("fold_i", fd.bi) if fd.bi else None
    end_i = _all_ones(m, "end_i", fold_i, fd.sf - 1)
    last_i = m.comb("last_i", nl.And(run, end_i) if fold_i is not None else run)
    end_o = _all_ones(m, "end_o", fold_o, fd.nf - 1)
    last = m.comb("last", nl.And(last_i, end_o) if fold_o is not None else last_i)
    m.reg(run, nl.Mux(rst, nl.Const(1, 0), nl.Or(iv, nl.And(run, nl.Not(last)))), clk)
    first = None
    if fold_i is not None:
        nxt = nl.Add(fold_i, nl.Const(fd.bi, 1))
        m.reg(fold_i, nl.Mux(nl.Or(iv, last_i), nl.Const(fd.bi, 0), nxt), clk, nl.Or(iv, run))
        first = m.comb("first_i", nl.Not(nl.Reduce("|", fold_i)))
    if fold_o is not None:
        nxt = nl.Add(fold_o, nl.Const(fd.bo, 1))
        m.reg(fold_o, nl.Mux(iv, nl.Const(fd.bo, 0), nxt), clk, nl.Or(iv, last_i))
    a = [run, last_i, last] + ([first] if first is not None else [])
    b = [m.signal(nm, 1) for nm in ("run_b", "last_i_b", "last_b", "first_i_b")[:len(a)]]
    m.reg(tuple(b), nl.Mux(rst, nl.Const(len(a), 0), nl.cat(*a)), clk)
    return run, fold_o, fold_i, _StageB(*b[:3], b[3] if first is not None else None)


@dataclass(frozen=True)
class _StageB:
    run: nl.Signal
    last_i: nl.Signal
    last: nl.Signal
    first: nl.Signal | None


def _widths(fd: Fold, acc_types: list[IntType]) -> list[int]:
    """``WA_p``: the widest output type of lane ``p``."""
    return [max(acc_types[j].width for f in range(fd.nf)
                if (j := fd.out_index(f, p)) is not None) for p in range(fd.pe)]


def _accumulate(m, fd, clk, run, fold_o, sb: _StageB, sums, consts, wa) -> list[nl.Signal]:
    """``acc_next_p<p>``: the lane's value after the step in stage B (``c_p<p>``, the
    outputs' constants registered from ``c_rom_p<p>[fold_o]``, added in the first input
    fold); ``acc_p<p>`` registers it when there are several input folds."""
    out = []
    for p in range(fd.pe):
        cs = [consts[j] if (j := fd.out_index(f, p)) is not None else 0 for f in range(fd.nf)]
        c = _table(m, f"c_rom_p{p}", fold_o, cs, wa[p])
        if fold_o is not None:
            q = m.signal(f"c_p{p}", wa[p], True)
            m.reg(q, c, clk, run)
            c = q
        if sums[p] is None:
            sv: nl.Value = nl.Const(wa[p], 0)
        else:
            sig, shift = sums[p]
            sv = nl.shifted(sig, shift, 0, wa[p] - 1)
        sv = m.comb(f"sum_p{p}", sv, True)
        if sb.first is None:
            out.append(m.comb(f"acc_next_p{p}", nl.Add(c, sv), True))
            continue
        acc = m.signal(f"acc_p{p}", wa[p], True)
        nxt = m.comb(f"acc_next_p{p}", nl.Add(nl.Mux(sb.first, c, acc), sv), True)
        m.reg(acc, nxt, clk, sb.run)
        out.append(nxt)
    return out


def _slots(m, fd, clk, last_i, nxt, acc_types) -> list[nl.Signal]:
    """Output ``j``'s final value source: ``slot_p<p>_f<f>`` for the output folds before the
    last (a shift register per lane, shifting after each output fold), ``acc_next_p<p>`` for
    the last."""
    src: list[nl.Signal | None] = [None] * fd.n_out
    for p in range(fd.pe):
        chain = []
        for f in range(fd.nf - 1):
            ws = [acc_types[j].width for g in range(f + 1)
                  if (j := fd.out_index(g, p)) is not None]
            chain.append(m.signal(f"slot_p{p}_f{f}", max(ws), True))
        for f, s in enumerate(chain):
            feed = chain[f + 1] if f + 1 < len(chain) else nxt[p]
            m.reg(s, nl.shifted(feed, 0, 0, s.width - 1), clk, last_i)
            src[f * fd.pe + p] = s
        j = fd.out_index(fd.nf - 1, p)
        if j is not None:
            src[j] = nxt[p]
    return src  # type: ignore[return-value]


def _ranges(w: np.ndarray, const, in_type: IntType, acc_types,
            known=None) -> list[tuple[int, int]]:
    """Output ``j``'s range: ``W @ x + c`` over ``in_type``'s range (or ``known[j]``), within
    ``acc_types[j]``."""
    a, b = w * in_type.min, w * in_type.max  # object arrays: Python ints
    los = np.minimum(a, b).sum(axis=1) + np.asarray(const, dtype=object)
    his = np.maximum(a, b).sum(axis=1) + np.asarray(const, dtype=object)
    out = []
    for j in range(w.shape[0]):
        lo, hi = int(los[j]), int(his[j])
        if known is not None:
            lo, hi = max(lo, int(known[j][0])), min(hi, int(known[j][1]))
        lo, hi = max(lo, acc_types[j].min), min(hi, acc_types[j].max)
        if lo > hi:
            raise ValueError(f"output {j}: acc type {acc_types[j].c_style()} holds none of "
                             "its values")
        out.append((lo, hi))
    return out


def _check(w, const, in_type, in_off, nx, acc_types, simd, pe) -> None:
    n_out, n_in = w.shape
    mvau_cycles(n_in, n_out, simd, pe)
    if len(const) != n_out or len(acc_types) != n_out or len(in_off) != n_in:
        raise ValueError(f"mvau: {n_out}x{n_in} weights with {len(const)} constants, "
                         f"{len(acc_types)} acc types, {len(in_off)} input offsets")
    if any(o < 0 or o + in_type.width > nx for o in in_off):
        raise ValueError(f"mvau: an input lies outside x[{nx - 1}:0]")


def mvau_netlist(name: str, weights, const, in_type: IntType, in_off: list[int], nx: int,
                 out_type: IntType, acc_types: list[IntType], requant, header: list[str],
                 simd: int, pe: int, in_names: list[str] | None = None,
                 arith: str = "adders",
                 acc_ranges: list[tuple[int, int]] | None = None) -> tuple[nl.Module, int, int]:
    """The folded layer module (see the module docstring) and its ``(module, latency,
    cycles)``.  ``weights`` integer ``[n_out, n_in]``, ``const`` ``[n_out]``; input ``i`` is
    ``x[in_off[i] +: in_type.width]`` (``in_type``'s signedness); ``acc_types[j]`` holds
    output ``j`` before the requantizer (``requant``: a RequantSpec with FLOOR or HALF_EVEN
    rounding, or None: ``y`` is the low ``out_type.width`` bits); output ``j`` is ``y[j*WY +: WY]``,
    ``WY = out_type.width``.  ``in_names``: the input registers' names (default ``x_e<i>``).
    ``arith``: "adders" (exact-width adders) or "heap" (bit heap) for the lane sums (heap
    measured 1.7x larger on fc 16x5).  ``acc_ranges``: output ``j``'s value range when known
    (the adder graph's ``Output.lo/hi``: fewer clips), else from the weights and ``in_type``."""
    w = np.asarray(weights, dtype=object)
    _check(w, const, in_type, in_off, nx, acc_types, simd, pe)
    n_out, n_in = w.shape
    fd = Fold(n_out, n_in, simd, pe)
    lanes = lane_terms(fd, w, in_type)
    binary = lanes.binary
    cycles = mvau_cycles(n_in, n_out, simd, pe)
    m = nl.Module(name, list(header) + _header(fd, in_type, out_type, acc_types, binary,
                                               cycles))
    clk, rst, iv = (m.input(p, 1) for p in ("clk", "rst", "in_valid"))
    x = m.input("x", nx)
    out_valid = m.output("out_valid", 1)
    y = m.output("y", n_out * out_type.width)
    names = in_names or [f"x_e{i}" for i in range(n_in)]
    xr = [m.signal(names[i], in_type.width, in_type.signed) for i in range(n_in)]
    for i, r in enumerate(xr):
        m.reg(r, nl.bits(x, in_off[i] + in_type.width - 1, in_off[i]), clk, iv)
    run, fold_o, fold_i, sb = _control(m, fd, clk, rst, iv)
    index = (nl.cat(*[s for s in (fold_i, fold_o) if s is not None])
             if (fold_i or fold_o) else None)
    xs = _x_lanes(m, fd, xr, fold_i, binary, in_type.signed, clk, run)
    sums = _lane_sums(m, fd, lanes, xs, index, in_type, arith, clk, run)
    wa = _widths(fd, acc_types)
    consts = [int(c) + lanes.corr[j] for j, c in enumerate(const)]
    nxt = _accumulate(m, fd, clk, run, fold_o, sb, sums, consts, wa)
    src = _slots(m, fd, clk, sb.last_i, nxt, acc_types)
    ys = []
    for j, (lo, hi) in enumerate(_ranges(w, const, in_type, acc_types, acc_ranges)):
        at = acc_types[j]
        acc = m.comb(f"acc_o{j}", nl.shifted(src[j], 0, 0, at.width - 1), at.signed)
        if requant is None:
            e = nl.shifted(acc, 0, 0, out_type.width - 1)
        else:
            e = spec_requant_cells(m, acc, requant, lo, hi, out_type, f"o{j}")
        ys.append(m.comb(f"y_o{j}", e, out_type.signed))
    m.reg(y, nl.cat(*ys), clk, sb.last)
    m.reg(out_valid, nl.Mux(rst, nl.Const(1, 0), sb.last), clk)
    add_unused_sink(m)
    return m, cycles + 2, cycles


def _header(fd: Fold, in_type, out_type, acc_types, binary, cycles) -> list[str]:
    wa = _widths(fd, acc_types)
    kind = "binary: XNOR lanes + popcount" if binary else "weights in ROM, shift-add lanes"
    return [f"MVAU {fd.n_out}x{fd.n_in} ({kind}): {fd.pe} PE x {fd.simd} SIMD lanes, "
            f"{fd.nf} output x {fd.sf} input folds",
            f"cycles {cycles} per vector (II), latency {cycles + 2}; inputs "
            f"{in_type.c_style()}, accumulators {min(wa)}..{max(wa)} bits (two's "
            f"complement, modulo), output {out_type.c_style()}"]


# LUT+CARRY4 per unit of each structure counted by _cost_terms: least squares (relative
# error, the multiplexer's 1/3 LUT per data input fixed) over 16 units measured with yosys
# synth_xilinx -flatten -nodsp -noiopad -noclkbuf (export/estimate.py estimate_module):
# the seed CNN's fc (15x64) at 1x1, 4x1, 8x5, 16x5, 64x1, 8x15 and conv4 (64x288) at 12x16
# and 32x16, random 16x32 / 12x40 / 10x20 / 32x16 products of 2..4-bit weights on u2 / u4 /
# s4 inputs and two binary 24x48 ones (288 .. 19,900 LUT+CARRY4); error mean 7 %, worst 17 %
# (a 10x20 s4 x w2 unit, under).
COST = {"adder_bit": 0.888, "sel_bit": 1.728, "acc_bit": 0.697, "rom_bit": 0.624,
        "mux_in": 0.33, "out_bit": 0.265, "control": 66.2}


def _cost_terms(weights, in_type: IntType, simd: int, pe: int) -> dict[str, float]:
    """The structure counts :func:`mvau_cost` weighs: adder carry bits of the lane sums,
    accumulator bits, ROM bits (times the LUTs a function of the ROM index needs), selected
    term bits, multiplexer data inputs, output bits (requantizer and read-out)."""
    w = np.asarray(weights, dtype=object)
    n_out, n_in = w.shape
    fd = Fold(n_out, n_in, simd, pe)
    lanes = lane_terms(fd, w, in_type)
    adder_bits = sel_bits = 0
    if lanes.terms:
        W, ranges = term_graph(fd, lanes, in_type)
        g = lower_cmvm(W, ranges, cse=False)
        adder_bits = sum(ad.width - ad.passthrough for ad in g.adders)
        sel_bits = sum(inp.type.width for inp, t in zip(g.inputs, lanes.terms) if t.varying())
    lo_hi = _ranges(w, np.zeros(n_out, dtype=np.int64), in_type, [IntType(True, 62)] * n_out)
    acc_w = [IntType.for_range(lo, hi).width for lo, hi in lo_hi]
    wa = _widths(fd, [IntType(True, a) for a in acc_w])
    rom_lut = max(1, 1 << max(0, fd.bi + fd.bo - 6))
    rom_bits = sum(len(t.varying()) for t in lanes.terms)
    mux_in = in_type.width * sum(
        sum(fd.in_index(s, k) is not None for s in range(fd.sf)) - 1 for k in range(fd.simd))
    return {"adder_bit": adder_bits, "sel_bit": sel_bits, "acc_bit": sum(wa),
            "rom_bit": rom_bits * rom_lut, "mux_in": mux_in, "out_bit": sum(acc_w),
            "control": 1.0}


def mvau_cost(weights, in_type: IntType, simd: int, pe: int) -> int:
    """Estimated LUT+CARRY4 (yosys ``synth_xilinx -nodsp``) of :func:`mvau_netlist` for these
    weights and lanes, requantizer included: a weighted count of its structures
    (:func:`_cost_terms`, weights :data:`COST`: mean error 7 %, worst 17 % on the 16
    calibration units)."""
    terms = _cost_terms(weights, in_type, simd, pe)
    return int(round(sum(COST[k] * v for k, v in terms.items())))


__all__ = ["mvau_netlist", "mvau_cycles", "mvau_cost", "mvau_shapes", "is_binary"]
