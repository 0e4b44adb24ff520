"""Layer modules: one constant matrix-vector product (an :class:`~heatq.ir.adders.AdderGraph`)
plus its requantizer, built as an RTL netlist and printed.

Module interface (every layer module)::

    clk, rst, in_valid, x[NX-1:0]  ->  out_valid, y[n_out*WY-1:0]   (y registered)

Input ``i`` of the adder graph is ``x[off_i +: w_i]`` (read only in the cycle of
``in_valid``); output ``j`` is ``y[j*WY +: WY]``.  Latency: one cycle when combinational,
``latency(adder graph) + 1`` when pipelined (``max_carry``).  The sums come from the mapper
:func:`heatq_export.rtl.adders.adder_mapper` selects (``arith="adders"``) or from bit heaps
(``arith="heap"``, :mod:`heatq_export.rtl.heap`; ``"auto"``: the cheaper by
:mod:`heatq_export.rtl.cost`), the requantizer from
:func:`heatq_export.rtl.requant.spec_requant_cells` on the REQUANT's plan.

Signal names: inputs as the caller names them (``x_c3_k12``: input channel 3, window tap 12;
``x_e7``: vector element 7), adders ``s<level>_n<id>`` (adder-graph node ``id`` at adder-tree
level ``level``; ``_d<k>``: delayed ``k`` cycles), outputs ``acc_o<j>`` (the product plus
constants of output ``j``), ``rnd_o<j>`` (HALF_EVEN: plus its rounding increment), ``q_o<j>`` (after the shift),
``w_o<j>`` (wrapped) and ``y_o<j>``
(the output element); bit-heap names (``h_o<j>``, counters ``<sum>_t<stage>_k<col>_<n>``):
:mod:`heatq_export.rtl.heap`.
"""

from __future__ import annotations

from dataclasses import dataclass

from heatq.ir import IntType, Overflow, Rounding
from heatq.ir.adders import AdderGraph

from .base import EmitError
from .rtl import netlist as nl
from .rtl.adders import LOGIC_ADD, AdderNetlist, map_adders
from .rtl.cost import adders_cost, best_arith, heap_cost
from .rtl.heap import heap_sums
from .rtl.lint import add_unused_sink
from .rtl.requant import spec_requant_cells
from .rtl.verilog import print_module


@dataclass(frozen=True)
class RequantSpec:
    """The requantizer after the product: the REQUANT attributes the plan is made from.
    ``rounding`` is FLOOR (a HALF_UP constant is already inside the adder graph) or HALF_EVEN
    (its increment depends on the data: the requantizer adds it, one adder with a carry-in)."""

    shift: int
    lo: int
    hi: int
    overflow: Overflow
    rounding: Rounding = Rounding.FLOOR




def _adder_sum(an: AdderNetlist, g: AdderGraph, j: int) -> nl.Value:
    """Output ``j``'s value (``Output.type`` bits) from the adders."""
    o = g.outputs[j]
    if o.node is None:
        return nl.Const(o.type.width, o.const)
    src = an.at(o.node, g.latency - g.ready(o.node)) if g.pipelined else an.base(o.node)
    return nl.shifted(src, o.shift, 0, o.type.width - 1)


def _outputs(m: nl.Module, sum_of, g: AdderGraph, requant, out_type: IntType):
    """The ``y_o<j>`` signals: each output's value ``sum_of(j)`` (made in output order),
    requantized when ``requant``."""
    ys = []
    for j, o in enumerate(g.outputs):
        vt = o.type
        val = sum_of(j)
        acc = m.comb(f"acc_o{j}", val, vt.signed)
        if requant is None:
            e = nl.shifted(acc, 0, 0, out_type.width - 1)
        else:
            e = spec_requant_cells(m, acc, requant, o.lo, o.hi, out_type, f"o{j}")
        ys.append(m.comb(f"y_o{j}", e, out_type.signed))
    return ys


def _clocking(m: nl.Module, an: AdderNetlist | None, lat: int, ctl, y: nl.Signal,
              yv: nl.Value) -> None:
    """The valid pipeline and the one clocked process of the adders' registers and ``y``.
    Registers advance only while a token is in flight (the other cycles' contents belong to
    no token), which also keeps simulators fast."""
    clk, rst, iv, out_valid = ctl
    vp = m.signal("vpipe", lat + 1)
    shift = nl.cat(iv, nl.bits(vp, lat - 1, 0)) if lat else iv
    m.reg(vp, nl.Mux(rst, nl.Const(lat + 1, 0), shift), clk)
    m.assign(out_valid, nl.bit(vp, lat))
    if an is None or not an.regs:
        m.reg(y, yv, clk, iv)
        return
    busy = m.comb("busy", nl.Or(iv, nl.Reduce("|", vp)))
    for dsts, value in an.regs:
        m.reg(dsts, value, clk, busy)
    m.reg(y, yv, clk, busy)


ARITH_CHOICES = ("adders", "heap", "auto")


def resolve_arith(g: AdderGraph, arith: str, logic_add: int = LOGIC_ADD) -> str:
    """The arithmetic a layer of graph ``g`` is built with: ``"adders"`` or ``"heap"``
    (``"auto"``: the cheaper by :func:`heatq_export.rtl.cost.best_arith`).  ``"heap"``
    with a pipelined graph is an EmitError, a ValueError (the bit heap is combinational)."""
    if arith not in ARITH_CHOICES:
        raise ValueError(f"arith {arith!r}: choose one of {', '.join(ARITH_CHOICES)}")
    if arith == "heap" and g.pipelined:  # EmitError (a ValueError): one line from the CLI
        raise EmitError(f"--arith heap builds combinational bit heaps, but the adder graph "
                         f"is pipelined (--max-carry {g.max_carry}); use --arith heap "
                         f"without --max-carry, or --arith adders / auto")
    return best_arith(g, logic_add) if arith == "auto" else arith


def _arith_line(g: AdderGraph, arith: str, chosen: str, logic_add: int) -> str:
    est = f"estimated LUT+CARRY4: adders {adders_cost(g, logic_add)}"
    if not g.pipelined:
        est += f", heap {heap_cost(g)}"
    how = "bit heap (generalised parallel counters + one carry-propagate adder per sum)" \
        if chosen == "heap" else "two-input adders"
    return f"arithmetic: {how}{' (--arith auto)' if arith == 'auto' else ''}; {est}"


def layer_netlist(name: str, g: AdderGraph, in_types: list[IntType], in_off: list[int],
                  nx: int, out_type: IntType, requant: RequantSpec | None,
                  header: list[str], registered: bool = True, logic_add: int = LOGIC_ADD,
                  in_names: list[str] | None = None,
                  arith: str = "adders") -> tuple[nl.Module, int]:
    """The netlist of one layer module and its latency in cycles (see :func:`layer_module`).
    ``arith``: ``"adders"`` (the adder mapper), ``"heap"`` (bit heaps,
    :func:`heatq_export.rtl.heap.heap_sums`; combinational graphs only) or ``"auto"``
    (:func:`resolve_arith`); anything but ``"adders"`` adds an ``arithmetic:`` header
    line."""
    chosen = resolve_arith(g, arith, logic_add)
    if not registered and g.pipelined:
        raise ValueError("a pipelined adder graph needs the registered module")
    if arith != "adders":
        header = list(header) + [_arith_line(g, arith, chosen, logic_add)]
    m = nl.Module(name, list(header))
    ctl = [m.input(p, 1) for p in ("clk", "rst", "in_valid")] if registered else []
    x = m.input("x", nx)
    if registered:
        ctl.append(m.output("out_valid", 1))
    y = m.output("y", len(g.outputs) * out_type.width)
    names = in_names or [f"x_e{i}" for i in range(g.n_in)]
    inputs = [(lambda o=o, t=t: nl.bits(x, o + t.width - 1, o)) for o, t in zip(in_off, in_types)]
    signed = [t.signed for t in in_types]
    an: AdderNetlist | None = None
    if chosen == "heap":
        sum_of = heap_sums(m, g, inputs, names, signed).__getitem__
    else:
        an = AdderNetlist(m, g, inputs, names, signed)
        map_adders(an, logic_add)
        sum_of = lambda j: _adder_sum(an, g, j)  # noqa: E731
    ys = _outputs(m, sum_of, g, requant, out_type)
    yv = nl.cat(*ys)
    if registered:
        _clocking(m, an, g.latency, ctl, y, yv)
    else:
        m.assign(y, yv)
    add_unused_sink(m)
    return m, (g.latency + 1 if registered else 0)


def layer_module(name: str, g: AdderGraph, in_types: list[IntType], in_off: list[int],
                 nx: int, out_type: IntType, requant: RequantSpec | None,
                 doc: str | list[str], registered: bool = True, logic_add: int = LOGIC_ADD,
                 in_names: list[str] | None = None, arith: str = "adders") -> tuple[str, int]:
    """The Verilog text of one layer module and its latency in cycles.

    ``doc``: the header comment (a string or lines).  ``registered=False`` (combinational
    adder graphs only): a bare ``x -> y`` module with no clock and no registers (latency 0),
    e.g. for side-by-side comparisons.  ``logic_add``: in a combinational graph, adders whose
    carry chain is at most that many bits are ripple-carry gates
    (:class:`~heatq_export.rtl.adders.RippleGateAdders`); 0: every adder is a carry chain.
    The default (3) only touches products of very narrow inputs (the binary input planes),
    where yosys ``synth_xilinx`` measured fewer LUTs; pipelined graphs keep carry chains
    (measurements: docs/verilog.md, bench/results/hw_cmvm.md).  ``arith``: see
    :func:`layer_netlist` (docs/arith.md)."""
    header = doc.splitlines() if isinstance(doc, str) else doc
    m, lat = layer_netlist(name, g, in_types, in_off, nx, out_type, requant, header,
                           registered, logic_add, in_names, arith)
    return print_module(m), lat
