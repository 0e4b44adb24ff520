"""Bit-serial layer modules: a constant matrix-vector product ``y = W @ x + c`` over the input
activations' bit planes, one plane per cycle, through an adder tree for 1-bit inputs.

For ``a``-bit inputs the module takes ``a`` cycles per token (its II) instead of one, and its
adder tree adds 1-bit terms (``g1 = lower_cmvm(W, [(0, 1)] * n_in)``: about ``1/a`` of the
parallel tree's adder bits), at the price of an ``a``-bit shift register per input, one
accumulator and one constant adder per output.

Arithmetic (exact): an unsigned ``a``-bit input is ``x = sum_b 2**b x_b``; a signed one is
``x = -2**(a-1) x_{a-1} + sum_{b<a-1} 2**b x_b`` (its MSB plane negative), computed as the
unsigned ``x' = x + 2**(a-1)`` (the MSB inverted) with ``-2**(a-1) * sum_i W[j, i]`` moved into
the constant, so every plane is added.  Per output ``j``, MSB plane first::

    acc_j <= (first plane ? 0 : acc_j << 1) + T_j(plane)        (modulo 2**acc width)
    y_j   <= requant(acc_j' + c'_j)                              (after the last plane)

with ``T_j`` the tree's output ``j`` and ``c'`` the constant (bias, rounding constant and
the signed-input offset) added once.  The accumulator is as wide as the product's exact
type (``acc_types[j]``): the true value lies in that type, and everything is computed modulo
``2**width``, so the result is exact (shifts and additions are ring operations).

Module contract (as every folded layer, :mod:`heatq_export.fold`): ports ``clk, rst,
in_valid, x[NX-1:0] -> out_valid, y[n_out*WY-1:0]``; ``x`` is read only in the cycle of
``in_valid`` (captured into ``xr``); ``in_valid`` at most once every ``cycles = a`` cycles;
``out_valid`` one cycle, ``latency = a + 1`` cycles after ``in_valid``; ``y`` registered,
held until the next result.

Signal names: ``xr`` (the captured input fields, each shifting its next plane into its MSB),
``p_<input name>`` (input ``i``'s current plane bit), the tree's adders ``s<level>_n<id>``,
``t_o<j>`` (the tree's output ``j``, extended to the accumulator), ``acc_o<j>`` (the
accumulator), ``sum_o<j>`` (accumulator after this plane), ``v_o<j>`` (the product plus
constants), ``rnd_o<j>`` / ``q_o<j>`` / ``w_o<j>`` / ``y_o<j>`` (requantizer, as in
:mod:`heatq_export.verilog_layers`), ``vpipe`` (plane phase: bit k high in the cycle of plane
``a-1-k``; bit ``a`` is ``out_valid``).
"""

from __future__ import annotations

import numpy as np

from heatq.ir import IntType
from heatq.ir.adders import AdderGraph

from . import netlist as nl
from .adders import LOGIC_ADD, AdderNetlist, map_adders
from .cost import best_arith
from .heap import heap_sums
from .lint import add_unused_sink
from .requant import spec_requant_cells



def bitserial_cycles(in_type: IntType) -> int:
    """Cycles per token of the bit-serial design: one per input bit plane."""
    return in_type.width


def signed_offset_const(weights: np.ndarray, const, in_type: IntType) -> list[int]:
    """``c'_j``: ``const_j`` minus ``2**(a-1) * sum_i W[j, i]`` for signed ``a``-bit inputs
    (computed on ``x + 2**(a-1)``, unsigned), else ``const_j`` (Python ints)."""
    c = [int(v) for v in np.asarray(const).tolist()]
    if not in_type.signed:
        return c
    half = 1 << (in_type.width - 1)
    return [cj - half * sum(int(v) for v in row) for cj, row in
            zip(c, np.asarray(weights).tolist())]


def _plane_sums(m: nl.Module, g1: AdderGraph, planes, names, arith: str) -> list[nl.Value]:
    """The tree's outputs over the plane bits: the bit heap (:mod:`heatq_export.rtl.heap`)
    for ``arith`` heap, or auto when the cost model finds it cheaper; else the adder mapper."""
    if arith == "heap" or (arith == "auto" and best_arith(g1) == "heap"):
        return list(heap_sums(m, g1, planes, names, [False] * g1.n_in))
    an = AdderNetlist(m, g1, planes, names, [False] * g1.n_in)
    map_adders(an, LOGIC_ADD)
    out: list[nl.Value] = []
    for o in g1.outputs:
        if o.node is None:
            out.append(nl.Const(o.type.width, o.const))
            continue
        v = nl.shifted(an.base(o.node), o.shift, 0, o.type.width - 1)
        out.append(nl.Add(v, nl.Const(o.type.width, o.const)) if o.const else v)
    return out


def _capture(m: nl.Module, x: nl.Signal, in_off: list[int], in_type: IntType, ctl):
    """``xr``: the distinct input fields, captured on ``in_valid`` (a signed field with its
    MSB inverted), shifted left one bit per cycle otherwise; returns (xr, field of input i)."""
    clk, iv = ctl
    a = in_type.width
    fields = sorted(set(in_off))
    where = {o: k for k, o in enumerate(fields)}
    parts: list[nl.Value] = []
    for o in fields:
        f = nl.bits(x, o + a - 1, o)
        if in_type.signed:
            f = nl.Xor(f, nl.Const(a, 1 << (a - 1)))
        parts.append(f)
    xr = m.signal("xr", a * len(fields))
    load = nl.cat(*parts)
    if a == 1:
        m.reg(xr, load, clk, iv)
    else:
        m.reg(xr, nl.Mux(iv, load, nl.cat(nl.Const(1, 0), nl.bits(xr, xr.width - 2, 0))), clk)
    return xr, [where[o] for o in in_off]


def bitserial_netlist(name: str, g1: AdderGraph, const, in_type: IntType, in_off: list[int],
                      nx: int, out_type: IntType, acc_types: list[IntType], requant,
                      header: list[str], arith: str = "adders",
                      in_names: list[str] | None = None, weights=None,
                      acc_ranges: list[tuple[int, int]] | None = None
                      ) -> tuple[nl.Module, int, int]:
    """The bit-serial layer module (see the module docstring): ``(module, latency, cycles)``.

    ``g1``: the product lowered for 1-bit unsigned inputs (``n_in`` inputs, combinational);
    ``const`` ``[n_out]`` ints: the constant of the product (bias and rounding constant);
    ``in_type``: every input's type (input ``i`` is ``x[in_off[i] +: in_type.width]``);
    ``acc_types[j]``: the exact type of output ``j`` before the requantizer (the accumulator
    width and signedness), ``acc_ranges[j]``: its exact range (default: the type's); ``requant``
    a :class:`~heatq_export.verilog_layers.RequantSpec` or None; ``weights``: ``W`` (default
    ``g1.matrix()[0]``), needed for a signed input's offset; ``arith``: how the tree is
    summed (``adders``, or ``heap`` / ``auto`` when the bit-heap mapper exists)."""
    if g1.pipelined:
        raise ValueError("bitserial_netlist: the 1-bit tree must be combinational")
    if any(i.lo < 0 or i.hi > 1 for i in g1.inputs):
        raise ValueError("bitserial_netlist: g1 must be lowered for 1-bit unsigned inputs")
    a, n_out = in_type.width, len(g1.outputs)
    w = g1.matrix()[0] if weights is None else np.asarray(weights)
    cprime = signed_offset_const(w, const, in_type)
    ranges = acc_ranges or [(t.min, t.max) for t in acc_types]
    m = nl.Module(name, list(header))
    clk, rst, iv = (m.input(p, 1) for p in ("clk", "rst", "in_valid"))
    x = m.input("x", nx)
    out_valid = m.output("out_valid", 1)
    y = m.output("y", n_out * out_type.width)
    vp = m.signal("vpipe", a + 1)
    m.reg(vp, nl.Mux(rst, nl.Const(a + 1, 0), nl.cat(iv, nl.bits(vp, a - 1, 0))), clk)
    m.assign(out_valid, nl.bit(vp, a))
    xr, fld = _capture(m, x, in_off, in_type, (clk, iv))
    names = [f"p_{n}" for n in (in_names or [f"x_e{i}" for i in range(g1.n_in)])]
    planes = [(lambda k=k: nl.bit(xr, k * a + a - 1)) for k in fld]
    tsum = _plane_sums(m, g1, planes, names, arith)
    first, last = nl.bit(vp, 0), nl.bit(vp, a - 1)
    busy = nl.Reduce("|", nl.bits(vp, a - 1, 0)) if a > 1 else first
    ys = []
    for j, (t, at) in enumerate(zip(tsum, acc_types)):
        wa = at.width
        tr = t if isinstance(t, nl.Signal) else m.comb(f"tr_o{j}", t, g1.outputs[j].type.signed)
        tj = m.comb(f"t_o{j}", nl.shifted(tr, 0, 0, wa - 1), at.signed)
        sm = tj
        if a > 1:
            acc = m.signal(f"acc_o{j}", wa, at.signed)
            back = nl.shifted(acc, 1, 0, wa - 1)
            sm = m.comb(f"sum_o{j}", nl.Add(nl.Mux(first, nl.Const(wa, 0), back), tj), at.signed)
            m.reg(acc, sm, clk, busy)
        c = cprime[j] % (1 << wa)
        v = m.comb(f"v_o{j}", nl.Add(sm, nl.Const(wa, c)) if c else sm, at.signed)
        if requant is None:
            e = nl.shifted(v, 0, 0, out_type.width - 1)
        else:
            e = spec_requant_cells(m, v, requant, *ranges[j], out_type, f"o{j}")
        ys.append(m.comb(f"y_o{j}", e, out_type.signed))
    m.reg(y, nl.cat(*ys), clk, last)
    add_unused_sink(m)
    return m, a + 1, a


__all__ = ["bitserial_netlist", "bitserial_cycles", "signed_offset_const"]
