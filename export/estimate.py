"""Resource estimates without vendor tools: yosys on each layer module and on the whole top.

Two flows per layer module, one (``xilinx``) on the whole design:

* ``xilinx``: ``synth_xilinx -flatten -nodsp -noiopad -noclkbuf -top T`` (7-series cells):
  ``lut`` (LUT1..LUT6 plus INV cells), ``carry4``, ``ff`` (FDRE/FDSE/FDCE/FDPE), ``srl``,
  ``muxf`` (MUXF7/MUXF8), ``bram18`` (RAMB18E1 + 2 x RAMB36E1), ``lutram`` (RAM32M / RAM64M /
  RAMxxX1x cells) and ``lut_carry = lut + carry4`` (the comparison metric);
* ``lut6``: vendor-neutral ``synth -flatten; abc -lut 6``: ``lut6`` (``$lut`` cells, adders
  included, no carry chain) and ``ff``.

What the totals cover (``report.estimate``): ``total`` sums the layer modules only (``covers``,
``skipped``, ``scope``, as before); ``design`` is the whole top flattened (every module: line
buffers, FIFOs, windows, pooling, requantization, Hamming decoder, handshake), and
``design["minus_layers"]`` the difference, the stream units (plus whatever flattening saves
across module boundaries).  ``--estimate ice40`` adds ``ice40`` (:mod:`.ice40`: synth_ice40 +
nextpnr place-and-route of the whole top).

Every yosys / nextpnr result is cached under ``${XDG_CACHE_HOME:-~/.cache}/heatq/estimate/``
by the sha256 of the sources, the script and the tools' versions (:func:`cached`), so an
estimate repeated on unchanged modules costs nothing; the layer modules and the design run in
parallel (``jobs`` processes, default the core count).  This runs on request only
(``heatq-export ... --target verilog --estimate``, inside the export's atomic write: an
interrupted estimate leaves no export behind).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable

import typer

from heatq.progress import activity, bars, wanted

from .estimate_cache import cache_dir, cache_key, cached, kill_running, run_tool, tool_lock

FF_XILINX = ("FDRE", "FDSE", "FDCE", "FDPE")
SRL_XILINX = ("SRL16E", "SRLC32E", "SRLC16E")
XILINX_SCRIPT = "synth_xilinx -flatten -nodsp -noiopad -noclkbuf -top {top}"
LUT6_SCRIPT = "synth -flatten -top {top}; abc -lut 6; opt_clean"


def yosys_cells(files: Iterable[str | Path], top: str, script: str,
                timeout: float | None) -> dict[str, Any]:
    """``{"cells": {cell type: count}, "seconds"}`` of yosys ``script`` (``{top}`` filled in)
    on ``files``, cached (:func:`cached`)."""
    files = [Path(f).resolve() for f in files]
    script = script.format(top=top)

    def run() -> dict:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="heatq_yosys_") as tmp:
            out = Path(tmp) / "stat.json"
            reads = "".join(f"read_verilog {f}; " for f in files)
            r = run_tool(["yosys", "-q", "-p", f"{reads}{script}; tee -q -o {out} stat -json"],
                         timeout)
            if r.returncode != 0 or not out.exists():
                raise RuntimeError(f"yosys failed on {top}:\n{r.stdout[-3000:]}")
            doc = json.loads(out.read_text())
        cells = {k: int(v) for k, v in doc["design"]["num_cells_by_type"].items()}
        return {"cells": cells, "seconds": round(time.perf_counter() - t0, 2)}

    return cached(cache_key(files, script, ["yosys"]), run)


# --------------------------------------------------------------------------- one module
def xilinx_metrics(c: dict[str, int]) -> dict[str, int]:
    """The xilinx flow's metrics from its cell counts."""
    lut = sum(v for k, v in c.items() if k.startswith("LUT") or k == "INV")
    return {"lut": lut, "carry4": c.get("CARRY4", 0),
            "ff": sum(c.get(k, 0) for k in FF_XILINX),
            "srl": sum(c.get(k, 0) for k in SRL_XILINX),
            "muxf": c.get("MUXF7", 0) + c.get("MUXF8", 0),
            "bram18": c.get("RAMB18E1", 0) + 2 * c.get("RAMB36E1", 0),
            "lutram": sum(v for k, v in c.items() if k.startswith("RAM") and "RAMB" not in k),
            "lut_carry": lut + c.get("CARRY4", 0)}


def estimate_module(files: Iterable[str | Path], top: str, flows: tuple[str, ...] = ("xilinx", "lut6"),
                    timeout: float | None = None, label: str = "",
                    progress: bool = True) -> dict[str, Any]:
    """LUT / CARRY4 / FF counts of module ``top`` (defined in ``files``); each yosys run
    shows ``yosys {label or top} (flow)`` with its elapsed time.  ``seconds``: the yosys time
    (of the run that filled the cache when ``cached``)."""
    files = list(files)
    res: dict[str, Any] = {"module": top}
    seconds, hits = 0.0, []
    if "xilinx" in flows:
        with activity(f"yosys {label or top} (xilinx)", progress):
            r = yosys_cells(files, top, XILINX_SCRIPT, timeout)
        res.update(xilinx_metrics(r["cells"]))
        seconds, hits = seconds + r["seconds"], hits + [r["cached"]]
    if "lut6" in flows:
        with activity(f"yosys {label or top} (lut6)", progress):
            r = yosys_cells(files, top, LUT6_SCRIPT, timeout)
        res["lut6"] = r["cells"].get("$lut", 0)
        res["ff_generic"] = sum(v for k, v in r["cells"].items() if "DFF" in k.upper())
        seconds, hits = seconds + r["seconds"], hits + [r["cached"]]
    res["seconds"] = round(seconds, 2)
    res["cached"] = bool(hits) and all(hits)
    return res


# --------------------------------------------------------------------------- totals
KEYS = ("lut", "carry4", "ff", "srl", "muxf", "lut_carry", "lut6", "ff_generic")
FLOW_KEYS = {"xilinx": ("lut", "carry4", "ff", "srl", "muxf", "bram18", "lutram", "lut_carry"),
             "lut6": ("lut6", "ff_generic")}
SCOPE = ("the layer modules named in covers only; the top module's own stream logic (line "
         "buffers, FIFOs, windows, pooling, requantization, decode, handshake) is in design "
         "(the whole top) minus this total (design.minus_layers)")
DESIGN_SCOPE = ("the whole top flattened: every module (layers, line buffers, FIFOs, windows, "
                "pooling, Hamming decoder, handshake)")


def total(est: dict[str, dict], flows: tuple[str, ...], skipped: dict[str, str]) -> dict:
    """The sum over the estimated layers ``est`` of every metric of ``flows``; a metric that
    some layer lacks is None.  ``skipped`` ({layer: reason}) is recorded as given."""
    keys = [k for f in flows for k in FLOW_KEYS[f]]
    out: dict[str, Any] = {k: (sum(e[k] for e in est.values())
                               if all(k in e for e in est.values()) else None) for k in keys}
    out.update(covers=list(est), skipped=dict(skipped), scope=SCOPE)
    return out


def design_entry(res: dict, tot: dict | None) -> dict:
    """The whole top's xilinx result, with what it covers and ``minus_layers`` (design minus
    the layer total, per metric; None where a layer was not requested or the metric is not
    in the total)."""
    out = {**res, "covers": DESIGN_SCOPE}
    complete = tot is not None and "not requested" not in tot["skipped"].values()
    out["minus_layers"] = {k: (res[k] - tot[k] if complete and tot.get(k) is not None else None)
                           for k in FLOW_KEYS["xilinx"]}
    return out


# --------------------------------------------------------------------------- the export
def _parallel(jobs: list[tuple[str, Callable[[], dict]]], workers: int, desc: str,
              progress: bool) -> dict[str, dict]:
    """Run ``[(label, fn)]`` on ``workers`` threads (each waits on its own tool process);
    one activity for the batch (its note: the finished and running jobs; off a terminal one
    line per finished job).  The first error stops the batch: running tools are killed."""
    results: dict[str, dict] = {}
    running = {label for label, _ in jobs}
    plain = wanted(progress) and not bars(progress)

    def one(act, label: str, fn: Callable[[], dict]) -> None:
        res = fn()
        with tool_lock:
            results[label] = res
            running.discard(label)
            act.note(f"{len(results)}/{len(jobs)} done; running {', '.join(sorted(running))}")
        if plain:
            how = "cached" if res.get("cached") else f"{res.get('seconds', 0):.1f} s"
            print(f"  {label}: {how}", file=sys.stderr, flush=True)

    with activity(desc, progress) as act:
        pool = ThreadPoolExecutor(max_workers=max(1, workers))
        futures = [pool.submit(one, act, label, fn) for label, fn in jobs]
        try:
            for f in futures:
                f.result()
        except BaseException:
            for f in futures:
                f.cancel()
            kill_running()
            raise
        finally:
            pool.shutdown(wait=True)
    return {label: results[label] for label, _ in jobs}


def _layer_jobs(out_dir: Path, report: dict, names: list[str], flows, timeout,
                lut6_max_adders, skipped: dict[str, str]):
    """``[(layer, job, lut6 skipped)]`` for the layer modules ``names``; a layer over
    ``lut6_max_adders`` adders gets no lut6 flow, and ``skipped`` says why."""
    jobs = []
    for i, name in enumerate(names):
        fl = flows
        if (lut6_max_adders is not None and "lut6" in flows
                and report[name].get("adders", 0) > lut6_max_adders):
            fl = tuple(f for f in flows if f != "lut6")
            why = f"{report[name]['adders']} adders > {lut6_max_adders} (abc -lut 6 too slow)"
            skipped[name] = f"lut6 flow (lut6, ff_generic) not run: {why}"
        mod = report[name]["module"]

        def job(mod=mod, fl=fl, label=f"{i + 1}/{len(names)} {name}"):
            return estimate_module([out_dir / f"{mod}.v"], mod, fl, timeout, label=label,
                                   progress=False)
        jobs.append((name, job, fl != flows))
    return jobs


def _whole(sources: list[Path], top: str, timeout: float | None) -> dict[str, Any]:
    """The xilinx flow on the whole design (every source, ``top`` flattened)."""
    r = yosys_cells(sources, top, XILINX_SCRIPT, timeout)
    return {"module": top, **xilinx_metrics(r["cells"]), "seconds": r["seconds"],
            "cached": r["cached"]}


def estimate_export(out_dir: str | Path, layers: Iterable[str] | None = None,
                    flows: tuple[str, ...] = ("xilinx", "lut6"),
                    timeout: float | None = None,
                    lut6_max_adders: int | None = 4000, progress: bool = True,
                    design: bool = True, ice40: tuple[str, ...] = (),
                    jobs: int | None = None) -> dict[str, Any]:
    """Estimate the layer modules of a Verilog export (every one, or the named ``layers``)
    with ``flows``, the whole top (``design``: the xilinx flow) and, for each iCE40 device in
    ``ice40`` (``"hx8k"``, ``"up5k"``), synth_ice40 + nextpnr place-and-route; store them in
    ``summary.json`` under ``report.estimate`` (per layer, ``total``, ``design``, ``ice40``:
    see the module docstring).  Returns the updated summary.  The ``lut6`` flow is skipped,
    and said so, for layers with more than ``lut6_max_adders`` adders (None: never skip).
    ``jobs``: parallel tool processes (default: the core count)."""
    out_dir = Path(out_dir)
    path = out_dir / "summary.json"
    summary = json.loads(path.read_text())
    if summary.get("target") != "verilog":
        raise ValueError(f"{out_dir}: not a verilog export")
    report = summary.get("report", {})
    every = [k for k, v in report.items() if isinstance(v, dict) and "module" in v]
    names = every if layers is None else list(layers)
    unknown = set(names) - set(every)
    if unknown:
        raise ValueError(f"unknown layers {sorted(unknown)}; layers: {every}")
    from .ice40 import DEVICES, estimate_ice40

    bad = [d for d in ice40 if d not in DEVICES]
    if bad:
        raise ValueError(f"unknown iCE40 device {bad[0]!r}; devices: {', '.join(DEVICES)}")
    skipped = {name: "not requested" for name in every if name not in names}
    layer_jobs = _layer_jobs(out_dir, report, names, flows, timeout, lut6_max_adders, skipped) \
        if flows else []
    top = summary.get("top", "heatq_top")
    sources = sorted(out_dir.glob("*.v"))
    work = [(name, fn) for name, fn, _ in layer_jobs]
    if design:
        work.insert(0, ("design", lambda: _whole(sources, top, timeout)))
    for dev in ice40:
        work.insert(0, (f"ice40 {dev}", lambda dev=dev: estimate_ice40(
            sources, top, dev, timeout)))
    what = ", ".join(filter(None, [f"{len(layer_jobs)} layer modules" if layer_jobs else "",
                                   "the whole design" if design else "",
                                   *(f"iCE40 {d} place-and-route" for d in ice40)]))
    workers = jobs or os.cpu_count() or 1
    res = _parallel(work, workers, f"yosys: {what} ({min(workers, len(work))} processes)",
                    progress) if work else {}
    est: dict[str, Any] = {}
    for name, _, lut6_skipped in layer_jobs:
        est[name] = res[name]
        if lut6_skipped:
            est[name]["lut6_skipped"] = skipped[name]
    if layer_jobs:
        est["total"] = total(dict(est), flows, skipped)
    if design:
        est["design"] = design_entry(res["design"], est.get("total"))
    if ice40:
        est["ice40"] = {dev: res[f"ice40 {dev}"] for dev in ice40}
    est["flow"] = {"xilinx": "yosys " + XILINX_SCRIPT.format(top="T"),
                   "lut6": "yosys " + LUT6_SCRIPT.format(top="T"),
                   "cache": str(cache_dir())}
    report["estimate"] = est
    summary["report"] = report
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


# --------------------------------------------------------------------------- the option
ESTIMATE_CHOICES = ("xilinx", "ice40", "ice40-up5k", "all")
ESTIMATE_HELP = ("yosys estimate, slow: xilinx (LUT/CARRY4/FF per layer and of the whole "
                 "design) | ice40 (synth_ice40 + nextpnr place-and-route on an "
                 "HX8K: LUT4, carry, RAM, FF, Fmax) | ice40-up5k | all (xilinx + ice40); "
                 "comma-separated")


def estimate_request(value: bool | str | None) -> dict[str, Any]:
    """The ``--estimate`` value (True: the flag alone, ``"xilinx"``; a comma-separated list
    of :data:`ESTIMATE_CHOICES`) as :func:`estimate_export` keywords; ``{}``: no estimate."""
    if value is None or value is False:
        return {}
    parts = ["xilinx"] if value is True else [p.strip() for p in str(value).split(",")]
    bad = [p for p in parts if p not in ESTIMATE_CHOICES]
    if bad or not parts:
        raise ValueError(f"--estimate {value!r}: choose from {', '.join(ESTIMATE_CHOICES)} "
                         "(comma-separated)")
    if "all" in parts:
        parts += ["xilinx", "ice40"]
    xilinx = "xilinx" in parts
    devices = tuple(d for p, d in (("ice40", "hx8k"), ("ice40-up5k", "up5k")) if p in parts)
    return {"flows": ("xilinx", "lut6") if xilinx else (), "design": xilinx, "ice40": devices}


# --------------------------------------------------------------------------- the table
def _cell(v) -> str:
    return "-" if v is None else str(v)


COLS = (("lut", "LUT"), ("carry4", "CARRY4"), ("lut_carry", "LUT+CARRY4"), ("ff", "FF"),
        ("lut6", "LUT6"))


def _row(name: str, e: dict, seconds: bool = True) -> str:
    s = ("cached" if e.get("cached") else f"{e.get('seconds', 0):.1f}") if seconds else ""
    return (f"  {name:<26}" + "".join(f"{_cell(e.get(c)):>11}" for c, _ in COLS)
            + (f"{s:>9}" if s else ""))


def format_estimate(summary: dict) -> str:
    """The estimate of an export's summary as a table: one row per layer, the layer total,
    the whole design and their difference, each with what it covers; then the iCE40
    place-and-route results."""
    est = summary["report"]["estimate"]
    lines = []
    tot, des = est.get("total"), est.get("design")
    if tot is not None or des is not None:
        lines.append(f"{'yosys estimate (xilinx)':<28}" + "".join(f"{h:>11}" for _, h in COLS)
                     + f"{'seconds':>9}")
    if tot is not None:
        lines += [_row(name, est[name]) for name in tot["covers"]]
        lines.append(_row("total", tot, seconds=False))
    if des is not None:
        lines.append(_row("design", des))
        lines.append(_row("stream units", des["minus_layers"], seconds=False))
    if tot is not None:
        lines.append(f"total covers {len(tot['covers'])} layer modules: "
                     f"{', '.join(tot['covers'])} (the layer modules only)")
        lines += [f"  skipped {name}: {why}" for name, why in tot["skipped"].items()]
    if des is not None:
        lines.append(f"design: {des['module']}, {des['covers']}; also SRL {des['srl']}, "
                     f"LUTRAM {des['lutram']}, BRAM18 {des['bram18']}, MUXF {des['muxf']}")
        lines.append("stream units: design - total (the top's own logic; flattening may also "
                     "save logic across module boundaries)")
    if tot is not None:
        lines.append(f"the total counts {SCOPE}")
    from .ice40 import format_ice40

    lines += [format_ice40(dev, r) for dev, r in est.get("ice40", {}).items()]
    return "\n".join(lines)


def print_estimate(summary: dict) -> None:
    """Print :func:`format_estimate` (``heatq-export --estimate``)."""
    typer.echo(format_estimate(summary))
