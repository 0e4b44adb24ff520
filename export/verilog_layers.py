"""Layer modules: one constant matrix-vector product (an :class:`~heatq.ir.adders.AdderGraph`)
plus its requantizer, built as an RTL netlist and printed.

Module interface (every layer module)::

    clk, rst, in_valid, x[NX-1:0]  ->  out_valid, y[n_out*WY-1:0]   (y registered)

Input ``i`` of the adder graph is ``x[off_i +: w_i]`` (read only in the cycle of
``in_valid``); output ``j`` is ``y[j*WY +: WY]``.  Latency: one cycle when combinational,
``latency(adder graph) + 1`` when pipelined (``max_carry``).  The adders come from the mapper
:func:`heatq_export.rtl.adders.adder_mapper` selects, the requantizer from
:func:`heatq_export.rtl.requant.requant_cells` on the REQUANT's plan.

Signal names: inputs as the caller names them (``x_c3_k12``: input channel 3, window tap 12;
``x_e7``: vector element 7), adders ``s<level>_n<id>`` (adder-graph node ``id`` at adder-tree
level ``level``; ``_d<k>``: delayed ``k`` cycles), outputs ``acc_o<j>`` (the product plus
constants of output ``j``), ``q_o<j>`` (after the shift), ``w_o<j>`` (wrapped) and ``y_o<j>``
(the output element).
"""

from __future__ import annotations

from dataclasses import dataclass

from heatq.ir import IntType, Overflow, Rounding
from heatq.ir.adders import AdderGraph
from heatq.ir.requant import requant_plan

from .rtl import netlist as nl
from .rtl.adders import AdderNetlist, map_adders
from .rtl.lint import add_unused_sink
from .rtl.requant import requant_cells
from .rtl.verilog import print_module


@dataclass(frozen=True)
class RequantSpec:
    """The requantizer after the product, whose rounding constant is already inside the
    adder graph (so ``rounding`` is FLOOR): the REQUANT attributes the plan is made from."""

    shift: int
    lo: int
    hi: int
    overflow: Overflow
    rounding: Rounding = Rounding.FLOOR


LOGIC_ADD = 3  # default of layer_module(logic_add=...): see there


def _outputs(m: nl.Module, an: AdderNetlist, g: AdderGraph, requant, out_type: IntType):
    """The ``y_o<j>`` signals: each output's value, requantized when ``requant``."""
    ys = []
    for j, o in enumerate(g.outputs):
        vt = o.type
        if o.node is None:
            val: nl.Value = nl.Const(vt.width, o.const)
        else:
            src = an.at(o.node, g.latency - g.ready(o.node)) if g.pipelined else an.base(o.node)
            val = nl.shifted(src, o.shift, 0, vt.width - 1)
        acc = m.comb(f"acc_o{j}", val, vt.signed)
        if requant is None:
            e = nl.shifted(acc, 0, 0, out_type.width - 1)
        else:
            e = requant_cells(m, acc, requant_plan(requant, o.lo, o.hi), out_type, f"o{j}")
        ys.append(m.comb(f"y_o{j}", e, out_type.signed))
    return ys


def _clocking(m: nl.Module, an: AdderNetlist, lat: int, ctl, y: nl.Signal,
              yv: nl.Value) -> None:
    """The valid pipeline and the one clocked process of the adders' registers and ``y``.
    Registers advance only while a token is in flight (the other cycles' contents belong to
    no token), which also keeps simulators fast."""
    clk, rst, iv, out_valid = ctl
    vp = m.signal("vpipe", lat + 1)
    shift = nl.cat(iv, nl.bits(vp, lat - 1, 0)) if lat else iv
    m.reg(vp, nl.Mux(rst, nl.Const(lat + 1, 0), shift), clk)
    m.assign(out_valid, nl.bit(vp, lat))
    if not an.regs:
        m.reg(y, yv, clk, iv)
        return
    busy = m.comb("busy", nl.Or(iv, nl.Reduce("|", vp)))
    for dsts, value in an.regs:
        m.reg(dsts, value, clk, busy)
    m.reg(y, yv, clk, busy)


def layer_netlist(name: str, g: AdderGraph, in_types: list[IntType], in_off: list[int],
                  nx: int, out_type: IntType, requant: RequantSpec | None,
                  header: list[str], registered: bool = True, logic_add: int = LOGIC_ADD,
                  in_names: list[str] | None = None,
                  arith: str = "adders") -> tuple[nl.Module, int]:
    """The netlist of one layer module and its latency in cycles (see :func:`layer_module`)."""
    if arith != "adders":
        raise ValueError(f"arith {arith!r} is not built yet")
    if not registered and g.pipelined:
        raise ValueError("a pipelined adder graph needs the registered module")
    m = nl.Module(name, list(header))
    ctl = [m.input(p, 1) for p in ("clk", "rst", "in_valid")] if registered else []
    x = m.input("x", nx)
    if registered:
        ctl.append(m.output("out_valid", 1))
    y = m.output("y", len(g.outputs) * out_type.width)
    names = in_names or [f"x_e{i}" for i in range(g.n_in)]
    inputs = [(lambda o=o, t=t: nl.bits(x, o + t.width - 1, o)) for o, t in zip(in_off, in_types)]
    an = AdderNetlist(m, g, inputs, names, [t.signed for t in in_types])
    map_adders(an, logic_add)
    ys = _outputs(m, an, g, requant, out_type)
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
                 in_names: list[str] | None = None) -> tuple[str, int]:
    """The Verilog text of one layer module and its latency in cycles.

    ``doc``: the header comment (a string or lines).  ``registered=False`` (combinational
    adder graphs only): a bare ``x -> y`` module with no clock and no registers (latency 0),
    e.g. for side-by-side comparisons.  ``logic_add``: in a combinational graph, adders whose
    carry chain is at most that many bits are ripple-carry gates
    (:class:`~heatq_export.rtl.adders.RippleGateAdders`); 0: every adder is a carry chain.
    The default (3) only touches products of very narrow inputs (the binary input planes),
    where yosys ``synth_xilinx`` measured fewer LUTs; pipelined graphs keep carry chains
    (measurements: docs/verilog.md, bench/results/hw_cmvm.md)."""
    header = doc.splitlines() if isinstance(doc, str) else doc
    m, lat = layer_netlist(name, g, in_types, in_off, nx, out_type, requant, header,
                           registered, logic_add, in_names)
    return print_module(m), lat
