"""A LUT + CARRY4 cost model of a layer's arithmetic (yosys ``synth_xilinx -flatten -nodsp
-noiopad -noclkbuf``, 7-series cells), used by every chooser (``--arith auto``, the fold
planner).

* :func:`adders_cost`: the adder graph as two-input adders (:mod:`.adders`): an adder of
  ``L`` carry bits on a carry chain is ``L`` LUTs (the propagate XORs) + ``ceil(L / 4)``
  CARRY4 (times :data:`CARRY_ADDER_SCALE`); one of at most ``logic_add`` carry bits written
  as ripple gates (combinational graphs) :data:`GATE_LUT_PER_BIT` a bit, no CARRY4.
* :func:`heap_cost`: the bit-heap mapping (:mod:`.heap`): one LUT per counter output
  bit (times :data:`COUNTER_SCALE`), plus the final carry-propagate adder of ``L`` bits
  (``L`` LUTs + ``ceil(L / 4)`` CARRY4, times :data:`CPA_SCALE`) per sum.
* :func:`best_arith`: ``"adders"`` or ``"heap"``, the cheaper (``"adders"`` for a
  pipelined graph: the heap is combinational).

Calibration: the coefficients below are a least-squares fit of yosys 0.23 ``synth_xilinx``
LUT + CARRY4 (``heatq_export.estimate.estimate_module``) on four bare combinational
modules (random seeded matrices: 16x8 signed 4-bit weights x unsigned 4-bit inputs, 100x8
+-1 x 1-bit, 32x6 signed 5-bit x signed 5-bit, 72x8 signed 4-bit x 1-bit; the script and
table: docs/arith.md).  yosys' ABC remaps whole cones (``-luts 2:2,3,6:5,10,20``: also
LUT7/LUT8 as MUXF7/8), so the counts are not a sum of parts: the fitted adder model is
within 5 % of yosys on these four (+5, +2, -1, -1 %), the heap model within 17 %
(+11, +17, 0, -17 %); ``--arith auto`` chose the cheaper arithmetic on 3 of the 4 (the
miss: 100x8 +-1, adders 917 / heap 870 measured, 936 / 1019 estimated).

"""

from __future__ import annotations

import weakref

from heatq.ir.adders import AdderGraph

from .adders import LOGIC_ADD

# fitted coefficients (module docstring): LUT+CARRY4 per modelled unit
CARRY_ADDER_SCALE = 0.90  # carry-chain adders: x (L LUT + ceil(L / 4) CARRY4)
GATE_LUT_PER_BIT = 0.42  # ripple-gate adders: per carry bit (ABC merges them with neighbours)
COUNTER_SCALE = 1.18  # bit heap: per counter output bit (one LUT each before ABC)
CPA_SCALE = 1.34  # bit heap: x (L LUT + ceil(L / 4) CARRY4) of each final adder

_PLANS: "weakref.WeakKeyDictionary[AdderGraph, object]" = weakref.WeakKeyDictionary()


def carry_adder_cost(bits: int) -> int:
    """LUT + CARRY4 of one ``bits``-bit carry-chain adder."""
    return bits + (bits + 3) // 4 if bits > 0 else 0


def adders_cost(g: AdderGraph, logic_add: int = LOGIC_ADD) -> int:
    """Estimated LUT + CARRY4 of ``g`` built by :func:`~.adders.map_adders` (every adder's
    carry bits; ripple gates for at most ``logic_add`` of them when combinational)."""
    total = 0.0
    for ad in g.adders:
        L = ad.carry
        if not g.pipelined and 0 < L <= logic_add:
            total += GATE_LUT_PER_BIT * L
        else:
            total += CARRY_ADDER_SCALE * carry_adder_cost(L)
    return int(round(total))


def plan_cost(plan) -> int:
    """Estimated LUT + CARRY4 of a :class:`~.heap.HeapPlan`."""
    total = 0.0
    for p in plan.sums():
        total += COUNTER_SCALE * sum(c.outs for c in p.counters
                                     if any(b[0] != "1" for b in c.ins))
        total += CPA_SCALE * carry_adder_cost(p.type.width - p.cpa_low)
    return int(round(total))


def best_heap_plan(g: AdderGraph):
    """The cheaper (by :func:`plan_cost`) of the plans keeping no sums and keeping the
    shared ones (cached per graph)."""
    from .heap import heap_plan

    hit = _PLANS.get(g)
    if hit is None:
        plans = [heap_plan(g, "none"), heap_plan(g, "shared")]
        hit = min(plans, key=plan_cost)  # ties: "none" (fewer signals)
        _PLANS[g] = hit
    return hit


def heap_cost(g: AdderGraph) -> int:
    """Estimated LUT + CARRY4 of ``g`` built by :func:`~.heap.heap_sums`."""
    return plan_cost(best_heap_plan(g))


def best_arith(g: AdderGraph, logic_add: int = LOGIC_ADD) -> str:
    """``"heap"`` when its estimate is below the adders', else ``"adders"`` (always for a
    pipelined graph)."""
    if g.pipelined:
        return "adders"
    return "heap" if heap_cost(g) < adders_cost(g, logic_add) else "adders"
