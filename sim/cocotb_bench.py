"""cocotb test bench for a heatq Verilog export (cocotb 2.x; run by :mod:`heatq_sim.runner`).

The job file named by ``$HEATQ_SIM_JOB`` (JSON) gives the export's port map, the saved
graph (``heatq.ir.save``), the input batch (``.npy``) and the handshake plan
(:class:`heatq_sim.stall.Plan`: a timing phase with ``m_tready`` held 1 and the host back to
back, then a stalled phase with a seeded random ``m_tready`` pattern and host gaps).  The
bench has the usual parts:

* :class:`StreamDriver` drives ``s_tdata`` / ``s_tvalid`` / ``s_tlast``, holding each beat
  until a ``s_tvalid && s_tready`` handshake (idle cycles between beats in the stalled phase);
* :class:`ResultMonitor` samples every output port at each rising edge with ``m_tvalid &&
  m_tready``, and :class:`heatq_sim.stall.Counters` checks that a held result stays put;
* the oracle is :func:`heatq.ir.run` on the same batch;
* :class:`InOrderChecker` compares the i-th result with the oracle's i-th output, exactly.

It writes ``{"mismatches", "results", "cycles", "first_accept", "out_cycles", "handshake",
...}`` to the job's ``result`` path and fails the test on any mismatch, a missing result,
``err`` or a held result that changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from heatq.ir import load, run
from heatq_sim.stall import Counters, Pattern, Plan
from heatq_sim.vectors import compare, input_beats


class StreamDriver:
    """AXI-Stream source: a beat is offered (in the stalled phase: when the pattern says so)
    and held until its handshake."""

    def __init__(self, dut, beats: list[tuple[int, int]], stream: bool, plan: Plan,
                 pattern: Pattern):
        self.dut, self.beats, self.stream = dut, beats, stream
        self.plan, self.pattern = plan, pattern
        self.k = 0
        self.offered = False
        self.first_accept: int | None = None
        self.accepts: list[int] = []

    def present(self) -> None:
        """Choose the next cycle's ``s_tvalid`` / ``s_tdata`` / ``s_tlast``."""
        d = self.dut
        if not self.offered and self.k < len(self.beats):
            self.offered = self.k < self.plan.beats_plain or self.pattern.offer()
        if self.offered:
            data, last = self.beats[self.k]
            d.s_tdata.value = data
            if self.stream:
                d.s_tlast.value = last
        d.s_tvalid.value = int(self.offered)

    def on_edge(self, cycle: int, valid: int, ready: int) -> None:
        """Called with the values sampled at a rising edge."""
        if valid and ready:
            if self.first_accept is None:
                self.first_accept = cycle
            if self.beats[self.k][1]:
                self.accepts.append(cycle)
            self.k += 1
            self.offered = False
        self.present()


class ResultMonitor:
    def __init__(self, dut, ports):
        self.handles = [getattr(dut, o["port"]) for o in ports["outputs"]]
        self.rows: list[list[int]] = []
        self.cycles: list[int] = []

    def sample(self) -> list[int]:
        return [int(h.value) for h in self.handles]

    def on_edge(self, cycle: int, row: list[int] | None, take: int) -> None:
        if take:
            self.rows.append(row)
            self.cycles.append(cycle)


class InOrderChecker:
    def __init__(self, ports, ref):
        self.ports, self.ref = ports, ref

    def check(self, rows):
        return compare(self.ports, rows, self.ref)


@cocotb.test()
async def run_vectors(dut):
    job = json.loads(Path(os.environ["HEATQ_SIM_JOB"]).read_text())
    ports = job["ports"]
    graph = load(job["graph"])
    x = np.load(job["inputs"], allow_pickle=False)
    plan = Plan(**job["plan"])
    ref = run(graph, x)  # the oracle
    stream = ports["mode"] == "stream"
    beats = input_beats(ports, x)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.s_tvalid.value = 0
    dut.m_tready.value = 1
    if stream:
        dut.s_tlast.value = 0
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    pattern = Pattern(plan)
    drv = StreamDriver(dut, beats, stream, plan, pattern)
    mon, counts = ResultMonitor(dut, ports), Counters()
    drv.present()
    dut.m_tready.value = 1 if plan.n_plain > 0 else pattern.ready()
    n = len(x)
    max_cycles = int(job.get("max_cycles", 10_000_000))
    cycle = 0
    err = 0
    # one loop samples each edge for the driver, the monitor and the counters (the values
    # read right at the edge are the pre-edge values the DUT saw), then sets the inputs of
    # the next cycle
    while len(mon.rows) < n and cycle < max_cycles:
        await RisingEdge(dut.clk)
        valid, ready = int(dut.s_tvalid.value), int(dut.s_tready.value)
        m_valid, m_ready = int(dut.m_tvalid.value), int(dut.m_tready.value)
        row = mon.sample() if m_valid else None
        mon.on_edge(cycle, row, m_valid and m_ready)
        counts.on_edge(m_valid, m_ready, row, valid, ready)
        err |= int(dut.err.value)
        drv.on_edge(cycle, valid, ready)
        dut.m_tready.value = 1 if len(mon.rows) < plan.n_plain else pattern.ready()
        cycle += 1
    res = InOrderChecker(ports, ref).check(mon.rows)
    res.update({"rows": mon.rows, "cycles": cycle, "first_accept": drv.first_accept,
                "out_cycles": mon.cycles, "handshake": counts.as_dict(),
                "last_accepts": drv.accepts, "err": err})
    Path(job["result"]).write_text(json.dumps(res))
    assert res["mismatches"] == 0, f"{res['mismatches']} mismatches: {res['first'][:2]}"
    assert not err, "err flag set"
    assert counts.violations == 0, f"{counts.violations} held results changed"
