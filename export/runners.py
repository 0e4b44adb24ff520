"""Runners: execute an export on a batch of integer inputs and return its outputs.

Every runner has the same shape: ``name``, ``target`` (the emitter whose exports it runs;
None for ``interp-lowered``, which runs an IR), ``tools`` (the executables it needs on PATH),
:meth:`Runner.export` (check + emit + write, raising :class:`EmitError` for a graph the target
refuses) and :meth:`Runner.run` ``(export_dir, graph, x) -> [outputs]``: one array per graph
output in ``graph.outputs`` order, shaped ``[N, *node.shape]``, int64, or object arrays of
Python ints for nodes wider than 62 bits -- exactly what :func:`heatq.ir.run` returns, so a
caller compares with ``np.array_equal``.  The values a runner returns come from the compiled
program, the simulated RTL or the lowered graph, never from interpreting the graph itself.

* ``c`` / ``hls``: :mod:`heatq_export.build` (gcc with sanitizers / g++ with ap_int);
* ``icarus`` / ``verilator``: :func:`heatq_sim.api.simulate` (cocotb + Icarus, the Verilator
  harness); a failed build, a set ``err`` flag or a missing result raises :class:`RunnerError`;
* ``interp-lowered``: ``heatq.passes.lower.lower_products`` (the lowering the Verilog target
  builds from), run by :func:`heatq.ir.run`;
* ``torch``: :mod:`heatq_export.torch_run` (the IR on PyTorch operators, float64, exact below
  2**53); ``qonnx``: :mod:`heatq_export.qonnx_run` (the QONNX export run by qonnx's
  ``execute_onnx``); ``hls4ml``: :mod:`heatq_export.hls4ml_run` (the hls4ml project's C
  simulation, ``compile()`` + ``predict()``).

The base class and the error are in :mod:`heatq_export.runner_base`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from heatq.ir import IntGraph
from heatq.ir.interp import value_dtype

from .base import EmitError, write_export
from .hls4ml_run import Hls4mlRunner
from .qonnx_run import QonnxRunner
from .runner_base import Runner, RunnerError
from .torch_run import TorchRunner

__all__ = ["Runner", "RunnerError", "RUNNERS", "EmitError"]


class CompiledRunner(Runner):
    """``c`` (gcc, C99, -Werror, UB + address sanitizers) or ``hls`` (g++ with ap_int)."""

    def __init__(self, target: str, compiler: str):
        self.name = self.target = target
        self.tools = (compiler,)

    def run(self, export_dir, graph, x):
        from .build import compile_target, run_executable

        exe = compile_target(export_dir, self.target)
        return run_executable(exe, x, graph)


def unpack_rows(graph: IntGraph, ports: dict[str, Any], rows: Sequence[Sequence[int]]
                ) -> list[np.ndarray]:
    """Raw output-port words (one list per result, in ``ports["outputs"]`` order, which is
    ``graph.outputs`` order) -> one array per output, ``[N, *node.shape]``."""
    from heatq_sim.vectors import unpack_output

    if len(ports["outputs"]) != len(graph.outputs):
        raise RunnerError(f"the export has {len(ports['outputs'])} output ports, the graph "
                          f"{len(graph.outputs)} outputs")
    outs = []
    for k, (spec, o) in enumerate(zip(ports["outputs"], graph.outputs)):
        node = graph.nodes[o]
        dt = value_dtype(node.type)
        vals = [unpack_output(spec, int(r[k])) for r in rows]
        arr = np.array([[int(v) for v in a] for a in vals], dtype=dt) if vals else \
            np.zeros((0, node.size), dtype=dt)
        outs.append(arr.reshape((len(rows), *node.shape)))
    return outs


class SimRunner(Runner):
    """A Verilog export simulated by ``icarus`` (cocotb) or ``verilator``.  ``last_result``
    holds the latest :func:`~heatq_sim.api.simulate` summary (latency / II against the
    report's cycle model, cycles per image), without the raw rows."""

    target = "verilog"

    def __init__(self, simulator: str):
        self.name = simulator
        self.tools = ("iverilog",) if simulator == "icarus" else ("verilator",)
        self.last_result: dict[str, Any] | None = None

    def run(self, export_dir, graph, x):
        from heatq_sim.api import simulate
        from heatq_sim.vectors import load_ports

        try:
            r = simulate(export_dir, graph, x, self.name, progress=False, keep_rows=True)
        except (RuntimeError, FileNotFoundError) as e:  # a failed build or bench: one message
            raise RunnerError(f"{self.name}: {e}") from None
        rows = r.pop("rows")
        self.last_result = r
        st = r["stall"]  # the back-pressure phase (m_tready stalls), checked in simulate
        if r["err"] or len(rows) != len(x) or st["mismatches"] or st["hold_violations"]:
            first = next((m["index"] for m in r["first_mismatches"] if "ports" in m), None)
            raise RunnerError(f"{self.name}: {len(rows)} results for {len(x)} inputs, err flag "
                              f"{r['err']}, first wrong result: vector {first}; under "
                              f"m_tready stalls {st['mismatches']} wrong, "
                              f"{st['hold_violations']} held results changed")
        _, ports, _ = load_ports(export_dir)
        return unpack_rows(graph, ports, rows)


class LoweredInterpRunner(Runner):
    """``lower_products`` (adder graphs, folded rounding constants) run by the one interpreter.
    The export step lowers once to refuse what the pass cannot lower (an ``EmitError`` naming
    the node, like a target); :meth:`run` lowers again (deterministic) and interprets."""

    name = "interp-lowered"

    @staticmethod
    def _lower(graph: IntGraph) -> IntGraph:
        from heatq.ir import IRError
        from heatq.passes.lower import lower_products

        try:
            return lower_products(graph)
        except IRError as e:
            raise EmitError(f"interp-lowered: {e}") from None

    def export(self, graph, out, **options):
        if options:
            raise EmitError(f"interp-lowered takes no options, got {', '.join(options)}")
        self._lower(graph)
        return write_export(out, "interp-lowered", {})

    def run(self, export_dir, graph, x):
        from heatq.ir import run

        lowered = self._lower(graph)
        if [lowered.nodes[o].shape for o in lowered.outputs] != \
                [graph.nodes[o].shape for o in graph.outputs]:
            raise RunnerError("interp-lowered: the lowered graph's outputs differ in shape")
        return run(lowered, x)


def _runners() -> dict[str, Runner]:
    out: dict[str, Runner] = {"c": CompiledRunner("c", "gcc"),
                              "hls": CompiledRunner("hls", "g++"),
                              "icarus": SimRunner("icarus"), "verilator": SimRunner("verilator")}
    out["interp-lowered"] = LoweredInterpRunner()
    for runner in (TorchRunner(), QonnxRunner(), Hls4mlRunner()):
        out[runner.name] = runner
    return out


RUNNERS: dict[str, Runner] = _runners()
