"""``simulate()``: run a heatq Verilog export against the interpreter.

* ``simulator="icarus"`` (default): the cocotb bench :mod:`heatq_sim.cocotb_bench` through
  cocotb's runner API (``cocotb_tools.runner``; cocotb 2.x, Icarus Verilog 11);
* ``simulator="verilator"``: the generated C++ harness of :mod:`heatq_sim.verilator`
  (``verilator --cc --exe --build``; works with Debian's 5.006, which cocotb 2.x does not
  support), compared with the interpreter in this process.

Both feed the images back to back and compare every result, in order, with
:func:`heatq.ir.run`; they also check the design's measured latency and initiation interval
against the cycle model stated in the export's report.

Before simulating, the export's sha256 manifest (``summary.json["files"]``) is checked: files
edited, missing or added since the export are reported (the simulation still runs: editing
the RTL on purpose is allowed).  The simulator build is kept in ``EXPORT/.heatq-sim/``, in a
directory named by the sha256 of the Verilog sources (and the waveform format), so a rerun
on unchanged files does not recompile.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from heatq.errors import UserError
from heatq.ir import IntGraph, run, save
from heatq.progress import activity

from . import verilator as vl
from .stall import Plan
from .vectors import compare, input_beats, load_ports

CACHE = ".heatq-sim"
WAVE_FORMATS = ("vcd", "fst")
HANDSHAKE_COUNTERS = ("m_tvalid_held", "m_tready_low", "hold_violations", "host_waits")
STALL, STALL_BURST, GAPS = 0.25, 8, 0.1  # the default stalled phase


def manifest_changes(export_dir: str | Path) -> dict[str, list[str]]:
    """Files of ``export_dir`` that differ from its manifest (``summary.json["files"]``,
    path -> sha256): ``{"edited", "missing", "added"}`` (added: ``*.v`` files the manifest
    does not list, which the simulators would compile too)."""
    export_dir = Path(export_dir)
    files = json.loads((export_dir / "summary.json").read_text()).get("files", {})
    edited, missing = [], []
    for rel, digest in sorted(files.items()):
        p = export_dir / rel
        if not p.is_file():
            missing.append(rel)
        elif hashlib.sha256(p.read_bytes()).hexdigest() != digest:
            edited.append(rel)
    added = sorted(p.name for p in export_dir.glob("*.v") if p.name not in files)
    return {"edited": edited, "missing": missing, "added": added}


def _wave_format(waves: str | Path | None) -> str | None:
    if waves is None:
        return None
    fmt = Path(waves).suffix.lstrip(".").lower()
    if fmt not in WAVE_FORMATS:
        raise UserError(f"--waves {waves}: the file name must end in .vcd or .fst")
    return fmt


def build_dir(root: Path, export_dir: Path, simulator: str, ports: dict,
              waves: str | None) -> Path:
    """``root/<simulator>[-<waves>]-<sha256[:16]>`` for the export's Verilog sources and
    ports; other builds of the same kind in ``root`` (of earlier sources) are removed."""
    h = hashlib.sha256(json.dumps(ports, sort_keys=True).encode())
    for p in sorted(Path(export_dir).glob("*.v")):
        h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    kind = simulator + (f"-{waves}" if waves else "")
    name = f"{kind}-{h.hexdigest()[:16]}"
    if root.is_dir():
        for old in root.iterdir():
            if old.name != name and re.fullmatch(re.escape(kind) + r"-[0-9a-f]{16}", old.name):
                shutil.rmtree(old, ignore_errors=True)
    return root / name


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


def _icarus_runner(waves: str | None):
    """cocotb's Icarus runner; with ``waves="vcd"`` vvp is told to write VCD, not FST."""
    from cocotb_tools.runner import get_runner

    runner = get_runner("icarus")
    if waves == "vcd":
        base = type(runner)

        class _VcdIcarus(base):  # type: ignore[misc, valid-type]
            def _test_command(self):
                return [["-vcd" if a == "-fst" else a for a in c]
                        for c in super()._test_command()]

        runner = _VcdIcarus()
    return runner


def _icarus(export_dir: Path, graph: IntGraph, x: np.ndarray, top: str, ports, work: Path,
            bdir: Path, max_cycles: int, waves: Path | None, progress: bool, plan: Plan
            ) -> dict[str, Any]:
    if shutil.which("iverilog") is None:
        raise FileNotFoundError("iverilog not found on PATH")
    fmt = _wave_format(waves)
    work.mkdir(parents=True, exist_ok=True)
    save(graph, work, "graph")
    np.save(work / "inputs.npy", np.asarray(x, dtype=np.int64))
    job = {"ports": ports, "graph": str(work / "graph.ir.json"), "inputs": str(work / "inputs.npy"),
           "result": str(work / "result.json"), "max_cycles": max_cycles,
           "plan": plan.as_dict()}
    (work / "job.json").write_text(json.dumps(job))
    srcs = sorted(str(p) for p in Path(export_dir).resolve().glob("*.v"))
    runner = _icarus_runner(fmt)
    cached = (bdir / "sim.vvp").is_file() and (bdir / "stamp").is_file()
    if not cached:
        (bdir / "stamp").unlink(missing_ok=True)
    # cached: the runner still needs its build step, which then compiles nothing (the
    # directory is named by the sources' sha256 and sim.vvp is newer than they are)
    with activity(f"icarus: {'reusing the build of' if cached else 'compiling'} {top}",
                  progress and not cached):
        runner.build(sources=srcs, hdl_toplevel=top, build_dir=str(bdir), always=not cached,
                     timescale=("1ns", "1ps"), log_file=str(bdir / "build.log"),
                     waves=fmt is not None)
    (bdir / "stamp").write_text("built\n")
    t0 = time.perf_counter()
    plusargs = [f"+dumpfile_path={Path(waves).resolve()}"] if fmt else []
    with activity(f"icarus: simulating {len(x)} vectors", progress):
        try:
            runner.test(test_module="heatq_sim.cocotb_bench", hdl_toplevel=top,
                        build_dir=str(bdir), test_dir=str(work), waves=fmt is not None,
                        plusargs=plusargs, extra_env={"HEATQ_SIM_JOB": str(work / "job.json")},
                        results_xml=str(work / "results.xml"), log_file=str(work / "sim.log"))
        except SystemExit:  # under pytest cocotb exits on a failed bench; result.json says why
            pass
    wall = time.perf_counter() - t0
    res_path = Path(job["result"])
    if not res_path.exists():
        log = (work / "sim.log").read_text()[-3000:] if (work / "sim.log").exists() else ""
        raise RuntimeError(f"cocotb bench wrote no result; log tail:\n{log}")
    res = json.loads(res_path.read_text())
    res.update(wall_s=wall, build_cached=cached)
    return res


def _verilator(export_dir: Path, graph: IntGraph, x: np.ndarray, top: str, ports, work: Path,
               bdir: Path, max_cycles: int, waves: Path | None, progress: bool, plan: Plan
               ) -> dict[str, Any]:
    exe, cached = vl.build(export_dir, top, ports, bdir, waves=_wave_format(waves),
                           progress=progress)
    r = vl.run(exe, input_beats(ports, x), len(x), work, max_cycles, waves=waves,
               progress=progress, plan=plan)
    cmp = compare(ports, r["rows"], run(graph, x))
    info = r["info"]
    return {**cmp, "rows": r["rows"], "out_cycles": r["out_cycles"],
            "first_accept": info.get("first_accept"), "cycles": info.get("cycles", 0),
            "err": info.get("err", 0), "wall_s": r["wall_s"], "build_cached": cached,
            "handshake": {k: info.get(k) for k in HANDSHAKE_COUNTERS}}


SIMULATORS = {"icarus": _icarus, "verilator": _verilator}


def _stall_plan(ports: dict, d: dict, x: np.ndarray, stall: float, burst: int,
                hold: int | None, images: int | None, gaps: float, seed: int
                ) -> tuple[Plan, np.ndarray]:
    """The handshake plan and the whole batch: ``x`` (the timing phase) then the stalled
    phase's images, ``x`` in reverse order, repeated as needed (default count: the output
    queue's entries + 4, so the default hold, the latency + entries + 2 results' IIs of
    ``m_tready`` low, fills the queue and stalls the host)."""
    entries = ports.get("output_queue", {}).get("entries", 2)
    ii, lat = d.get("ii") or 1, d.get("latency") or 0
    if images is None:
        images = entries + 4 if (stall or gaps or hold) else 0
    if images < 0 or len(x) == 0 and images:
        raise UserError(f"stall images {images}: must be >= 0 (and the batch not empty)")
    if hold is None:
        hold = lat + (entries + 2) * ii if images else 0
    beats_plain = len(input_beats(ports, x[:1])) * len(x)
    try:
        plan = Plan(len(x), beats_plain, stall, burst, hold, gaps, seed)
    except ValueError as e:
        raise UserError(f"stall plan: {e}") from None
    order = (len(x) - 1 - np.arange(images)) % max(len(x), 1)
    return plan, np.concatenate([x, x[order]]) if images else x


def _max_cycles(d: dict, plan: Plan, n: int, n_all: int) -> int:
    """A cycle budget for the whole run: the timing phase back to back, the stalled phase
    slowed by its pattern (m_tready high a fraction ~ 1 / (1 + stall * (burst + 1) / 2) of the
    cycles, the host idle a fraction ``gaps``), with a factor 2 of margin."""
    ii, lat = d.get("ii") or 1, d.get("latency") or 0
    base = (n + 4) * ii + 4 * lat + 10_000
    slow = (1 + plan.stall * (plan.burst + 1) / 2) / (1 - plan.gaps)
    return int(base + plan.hold + 2 * ((n_all - n + 4) * ii + lat) * slow)


def simulate(export_dir: str | Path, graph: IntGraph, x: np.ndarray,
             simulator: str = "icarus", work_dir: str | Path | None = None,
             max_cycles: int | None = None, waves: str | Path | None = None,
             clock_mhz: float = 100.0, progress: bool = True,
             keep_rows: bool = False, stall: float = STALL, stall_burst: int = STALL_BURST,
             stall_hold: int | None = None, stall_images: int | None = None,
             gaps: float = GAPS, seed: int = 0) -> dict[str, Any]:
    """Simulate ``export_dir`` (a Verilog export) on the batch ``x`` and compare with
    ``heatq.ir.run(graph, x)``.  The build is kept under ``work_dir`` (default
    ``export_dir/.heatq-sim``); ``waves``: also write a waveform (``.vcd`` or ``.fst``).

    Two phases in one run (:mod:`heatq_sim.stall`): ``x`` with ``m_tready`` held 1 and the
    host back to back (latency and II measured here), then ``stall_images`` more images
    (``x`` reversed; default: the output queue's entries + 4, none when ``stall``,
    ``gaps`` and ``stall_hold`` are all 0) under back-pressure: ``m_tready`` low for the
    first ``stall_hold`` cycles (default: long enough to fill the queue and stall the host),
    then a stall of 1..``stall_burst`` cycles starts in a cycle with probability ``stall``;
    the host idles before a beat with probability ``gaps``; ``seed`` seeds both.  Every
    result of both phases is compared, in order.

    Returns ``{"simulator", "n", "mismatches" (both phases), "first_mismatches", "err",
    "cycles_per_image", "latency", "ii", "model_latency", "model_ii", "timing_matches_model",
    "sim_images_per_s" (the simulator's speed), "clock_mhz" (assumed), "hw_images_per_s"
    (clock / II: the hardware's throughput at that clock), "build_cached", "manifest",
    "wall_s", "stall"}`` (``stall``: the plan, ``images``, ``mismatches`` among them, and
    the counters ``m_tvalid_held`` (cycles a result waited for m_tready), ``m_tready_low``,
    ``hold_violations`` (a held result that changed or vanished: must be 0) and
    ``host_waits`` (cycles s_tvalid && !s_tready)), and with ``keep_rows`` the raw
    output-port words of ``x`` (``"rows"``: one list per result, in port order)."""
    if simulator not in SIMULATORS:
        raise UserError(f"unknown simulator {simulator!r} (icarus or verilator)")
    if not clock_mhz > 0:
        raise UserError(f"--clock-mhz must be > 0, got {clock_mhz}")
    _wave_format(waves)
    export_dir = Path(export_dir)
    top, ports, report = load_ports(export_dir)
    changes = manifest_changes(export_dir)
    x = np.asarray(x)
    n = len(x)
    d = report.get("design", {})
    plan, x_all = _stall_plan(ports, d, x, stall, stall_burst, stall_hold, stall_images,
                              gaps, seed)
    max_cycles = max_cycles or _max_cycles(d, plan, n, len(x_all))
    root = Path(work_dir) if work_dir is not None else export_dir / CACHE
    bdir = build_dir(root, export_dir, simulator, ports, _wave_format(waves))
    bdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="heatq_sim_") as tmp:
        r = SIMULATORS[simulator](export_dir, graph, x_all, top, ports, Path(tmp), bdir,
                                  max_cycles, waves, progress, plan)
    out = {"simulator": simulator, "n": n, "mismatches": r["mismatches"]}
    plain = r["out_cycles"][:n]  # the timing phase (the stalled one follows it)
    cycles = plain[-1] + 1 if len(plain) == n and n else r["cycles"]
    out.update(_timing(plain, r["first_accept"], n, cycles, report))
    wall = r["wall_s"]
    ii = out["ii"] or out["model_ii"] or out["cycles_per_image"]
    out.update({
        "sim_images_per_s": len(x_all) / wall if wall > 0 else None,
        "clock_mhz": float(clock_mhz),
        "hw_images_per_s": clock_mhz * 1e6 / ii if ii else None,
        "wall_s": wall, "err": int(bool(r["err"])), "first_mismatches": r["first"],
        "build_cached": bool(r["build_cached"]), "manifest": changes,
        "waves": None if waves is None else str(waves),
        "stall": {**plan.as_dict(), "images": len(x_all) - n,
                  "mismatches": sum(1 for i in r["bad"] if i >= n),
                  **r["handshake"]},
    })
    if keep_rows:
        out["rows"] = r["rows"][:n]
    return out


def result_path(out_dir: str | Path, simulator: str) -> Path:
    """``OUT/sim-<simulator>.json``: one result file per simulator."""
    return Path(out_dir) / f"sim-{simulator}.json"


def write_sim_json(out_dir: str | Path, result: dict[str, Any]) -> Path:
    """Write ``OUT/sim-<simulator>.json`` (what ``heatq sim`` does)."""
    p = result_path(out_dir, result["simulator"])
    p.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return p
