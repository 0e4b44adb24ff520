"""cocotb test bench for a heatq Verilog export (cocotb 2.x; run by :mod:`heatq_sim.runner`).

The job file named by ``$HEATQ_SIM_JOB`` (JSON) gives the export's port map, the saved
graph (``heatq.ir.save``) and the input batch (``.npy``).  The bench has the usual parts:

* :class:`StreamDriver` drives ``s_tdata`` / ``s_tvalid`` / ``s_tlast`` back to back,
  advancing only on a ``s_tvalid && s_tready`` handshake;
* :class:`ResultMonitor` samples every output port at each rising edge with ``m_tvalid``;
* the oracle is :func:`heatq.ir.run` on the same batch;
* :class:`InOrderChecker` compares the i-th result with the oracle's i-th output, exactly.

It writes ``{"mismatches", "results", "cycles", "first_accept", "out_cycles", ...}`` to the
job's ``result`` path and fails the test on any mismatch, a missing result or ``err``.
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
from heatq_sim.vectors import compare, input_beats


class StreamDriver:
    """AXI-Stream-like source: one beat per handshake."""

    def __init__(self, dut, beats: list[tuple[int, int]], stream: bool):
        self.dut, self.beats, self.stream = dut, beats, stream
        self.k = 0
        self.first_accept: int | None = None
        self.accepts: list[int] = []

    def present(self) -> None:
        d = self.dut
        if self.k < len(self.beats):
            data, last = self.beats[self.k]
            d.s_tdata.value = data
            if self.stream:
                d.s_tlast.value = last
            d.s_tvalid.value = 1
        else:
            d.s_tvalid.value = 0

    def on_edge(self, cycle: int, valid: int, ready: int) -> None:
        """Called with the values sampled at a rising edge."""
        if valid and ready:
            if self.first_accept is None:
                self.first_accept = cycle
            if self.beats[self.k][1]:
                self.accepts.append(cycle)
            self.k += 1
            self.present()


class ResultMonitor:
    def __init__(self, dut, ports):
        self.handles = [getattr(dut, o["port"]) for o in ports["outputs"]]
        self.rows: list[list[int]] = []
        self.cycles: list[int] = []

    def on_edge(self, cycle: int, valid: int) -> None:
        if valid:
            self.rows.append([int(h.value) for h in self.handles])
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
    ref = run(graph, x)  # the oracle
    stream = ports["mode"] == "stream"
    beats = input_beats(ports, x)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.s_tvalid.value = 0
    if stream:
        dut.s_tlast.value = 0
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    drv = StreamDriver(dut, beats, stream)
    mon = ResultMonitor(dut, ports)
    drv.present()
    n = len(x)
    max_cycles = int(job.get("max_cycles", 10_000_000))
    cycle = 0
    err = 0
    # one loop samples each edge for both the driver and the monitor (the values read
    # right at the edge are the pre-edge values the DUT saw)
    while len(mon.rows) < n and cycle < max_cycles:
        await RisingEdge(dut.clk)
        valid, ready = int(dut.s_tvalid.value), int(dut.s_tready.value)
        mon.on_edge(cycle, int(dut.m_tvalid.value))
        err |= int(dut.err.value)
        drv.on_edge(cycle, valid, ready)
        cycle += 1
    res = InOrderChecker(ports, ref).check(mon.rows)
    res.update({"rows": mon.rows, "cycles": cycle, "first_accept": drv.first_accept,
                "out_cycles": mon.cycles,
                "last_accepts": drv.accepts, "err": err})
    Path(job["result"]).write_text(json.dumps(res))
    assert res["mismatches"] == 0, f"{res['mismatches']} mismatches: {res['first'][:2]}"
    assert not err, "err flag set"
