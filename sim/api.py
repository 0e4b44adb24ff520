"""``simulate()``: run a heatq Verilog export against the interpreter.

* ``simulator="icarus"`` (default): the cocotb bench :mod:`heatq_sim.cocotb_bench` through
  cocotb's runner API (``cocotb_tools.runner``; cocotb 2.x, Icarus Verilog 11);
* ``simulator="verilator"``: the generated C++ harness of :mod:`heatq_sim.verilator`
  (``verilator --cc --exe --build``; works with Debian's 5.006, which cocotb 2.x does not
  support), compared with the interpreter in this process.

Both feed the images back to back and compare every result, in order, with
:func:`heatq.ir.run`; they also check the design's measured latency and initiation interval
against the cycle model stated in the export's report.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from heatq.ir import IntGraph, run, save

from . import verilator as vl
from .vectors import compare, input_beats, load_ports


def _timing(out_cycles: list[int], first_accept: int | None, n: int, cycles: int,
            report: dict[str, Any]) -> dict[str, Any]:
    d = report.get("design", {})
    cpi = (float(np.mean(np.diff(out_cycles))) if len(out_cycles) > 1
           else float(cycles) / max(n, 1))
    lat = (out_cycles[0] - first_accept) if out_cycles and first_accept is not None else None
    ii = int(np.diff(out_cycles)[-1]) if len(out_cycles) > 1 else None
    return {
        "cycles_per_image": cpi,
        "latency": lat,
        "ii": ii,
        "model_latency": d.get("latency"),
        "model_ii": d.get("ii"),
        "timing_matches_model": (lat == d.get("latency")
                                 and (ii is None or ii == d.get("ii"))),
    }


def _icarus(export_dir: Path, graph: IntGraph, x: np.ndarray, top: str, ports, work: Path,
            max_cycles: int) -> dict[str, Any]:
    if shutil.which("iverilog") is None:
        raise FileNotFoundError("iverilog not found on PATH")
    from cocotb_tools.runner import get_runner

    work.mkdir(parents=True, exist_ok=True)
    save(graph, work, "graph")
    np.save(work / "inputs.npy", np.asarray(x, dtype=np.int64))
    job = {"ports": ports, "graph": str(work / "graph.ir.json"), "inputs": str(work / "inputs.npy"),
           "result": str(work / "result.json"), "max_cycles": max_cycles}
    (work / "job.json").write_text(json.dumps(job))
    srcs = sorted(str(p) for p in Path(export_dir).resolve().glob("*.v"))
    runner = get_runner("icarus")
    runner.build(sources=srcs, hdl_toplevel=top, build_dir=str(work / "build"), always=True,
                 timescale=("1ns", "1ps"), log_file=str(work / "build.log"))
    res_path = Path(job["result"])
    if res_path.exists():
        res_path.unlink()
    t0 = time.perf_counter()
    runner.test(test_module="heatq_sim.cocotb_bench", hdl_toplevel=top,
                build_dir=str(work / "build"), test_dir=str(work),
                extra_env={"HEATQ_SIM_JOB": str(work / "job.json")},
                results_xml=str(work / "results.xml"), log_file=str(work / "sim.log"))
    wall = time.perf_counter() - t0
    if not res_path.exists():
        log = (work / "sim.log").read_text()[-3000:] if (work / "sim.log").exists() else ""
        raise RuntimeError(f"cocotb bench wrote no result; log tail:\n{log}")
    res = json.loads(res_path.read_text())
    res["wall_s"] = wall
    return res


def simulate(export_dir: str | Path, graph: IntGraph, x: np.ndarray,
             simulator: str = "icarus", work_dir: str | Path | None = None,
             max_cycles: int | None = None) -> dict[str, Any]:
    """Simulate ``export_dir`` (a Verilog export) on the batch ``x`` and compare with
    ``heatq.ir.run(graph, x)``.  Returns ``{"simulator", "n", "mismatches",
    "cycles_per_image", "images_per_s", "latency", "ii", "model_latency", "model_ii",
    "timing_matches_model", "err", "first_mismatches"}``."""
    export_dir = Path(export_dir)
    top, ports, report = load_ports(export_dir)
    x = np.asarray(x)
    n = len(x)
    d = report.get("design", {})
    per = d.get("ii") or 1
    max_cycles = max_cycles or (n + 4) * per + 4 * (d.get("latency") or 0) + 10_000
    tmp = None
    if work_dir is None:
        tmp = tempfile.mkdtemp(prefix="heatq_sim_")
        work = Path(tmp)
    else:
        work = Path(work_dir)
    try:
        if simulator == "icarus":
            r = _icarus(export_dir, graph, x, top, ports, work / "icarus", max_cycles)
            cmp = {k: r[k] for k in ("n", "results", "mismatches", "first")}
            out_cycles, first, cycles, err = (r["out_cycles"], r["first_accept"], r["cycles"],
                                              r["err"])
            wall = r["wall_s"]
        elif simulator == "verilator":
            exe = vl.build(export_dir, top, ports, work / "verilator")
            ref = run(graph, x)
            r = vl.run(exe, input_beats(ports, x), n, work / "verilator" / "run", max_cycles)
            cmp = compare(ports, r["rows"], ref)
            out_cycles, first = r["out_cycles"], r["info"].get("first_accept")
            cycles, err, wall = r["info"].get("cycles", 0), r["info"].get("err", 0), r["wall_s"]
        else:
            raise ValueError(f"unknown simulator {simulator!r} (icarus or verilator)")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    out = {"simulator": simulator, "n": n, "mismatches": cmp["mismatches"]}
    out.update(_timing(out_cycles, first, n, cycles, report))
    out["images_per_s"] = n / wall if wall > 0 else None
    out["wall_s"] = wall
    out["err"] = int(bool(err))
    out["first_mismatches"] = cmp["first"]
    return out


def write_sim_json(out_dir: str | Path, result: dict[str, Any]) -> Path:
    """Write ``OUT/sim.json`` (what ``heatq sim`` does)."""
    p = Path(out_dir) / "sim.json"
    p.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return p
