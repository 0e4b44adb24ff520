"""Resource estimates without vendor tools: yosys per layer module.

Two flows on the same module:

* ``xilinx``: ``synth_xilinx -flatten -nodsp -noiopad -noclkbuf`` (7-series cells):
  ``lut`` (LUT1..LUT6 plus INV cells), ``carry4``, ``ff`` (FDRE/FDSE/FDCE/FDPE), ``srl``,
  ``muxf`` (MUXF7/MUXF8) and ``lut_carry = lut + carry4`` (the comparison metric);
* ``lut6``: vendor-neutral ``synth -flatten; abc -lut 6``: ``lut6`` (``$lut`` cells, adders
  included, no carry chain) and ``ff``.

Yosys takes seconds to minutes per layer (the big conv layers are the slow ones), so this
runs only on request (``heatq-export ... --target verilog --estimate``, inside the export's
atomic write: an interrupted estimate leaves no export behind), with a spinner per layer and
flow.  The total says what it covers: ``covers`` (the layers summed), ``skipped`` ({layer:
reason} for every layer missing from the total or from one of its metrics; a metric not
measured for every covered layer is null, never a partial sum) and ``scope`` (the top
module's own stream logic is not estimated).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

import typer

from heatq.progress import activity

FF_XILINX = ("FDRE", "FDSE", "FDCE", "FDPE")
SRL_XILINX = ("SRL16E", "SRLC32E", "SRLC16E")


def _yosys_cells(files: Iterable[str | Path], top: str, script: str,
                 timeout: float | None) -> dict[str, int]:
    if shutil.which("yosys") is None:
        raise FileNotFoundError("yosys not found on PATH")
    with tempfile.TemporaryDirectory(prefix="heatq_yosys_") as tmp:
        out = Path(tmp) / "stat.json"
        reads = "".join(f"read_verilog {Path(f).resolve()}; " for f in files)
        cmd = f"{reads}{script.format(top=top)}; tee -q -o {out} stat -json"
        r = subprocess.run(["yosys", "-q", "-p", cmd], capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0 or not out.exists():
            raise RuntimeError(f"yosys failed on {top}:\n{(r.stdout + r.stderr)[-3000:]}")
        doc = json.loads(out.read_text())
    return {k: int(v) for k, v in doc["design"]["num_cells_by_type"].items()}


def estimate_module(files: Iterable[str | Path], top: str, flows: tuple[str, ...] = ("xilinx", "lut6"),
                    timeout: float | None = None, label: str = "",
                    progress: bool = True) -> dict[str, Any]:
    """LUT / CARRY4 / FF counts of module ``top`` (defined in ``files``); each yosys run
    shows ``yosys {label or top} (flow)`` with its elapsed time."""
    files = list(files)
    res: dict[str, Any] = {"module": top}
    t0 = time.perf_counter()
    if "xilinx" in flows:
        with activity(f"yosys {label or top} (xilinx)", progress):
            c = _yosys_cells(files, top,
                             "synth_xilinx -flatten -nodsp -noiopad -noclkbuf -top {top}",
                             timeout)
        lut = sum(v for k, v in c.items() if k.startswith("LUT") or k == "INV")
        res.update({
            "lut": lut, "carry4": c.get("CARRY4", 0),
            "ff": sum(c.get(k, 0) for k in FF_XILINX),
            "srl": sum(c.get(k, 0) for k in SRL_XILINX),
            "muxf": c.get("MUXF7", 0) + c.get("MUXF8", 0),
            "lut_carry": lut + c.get("CARRY4", 0),
        })
    if "lut6" in flows:
        with activity(f"yosys {label or top} (lut6)", progress):
            c = _yosys_cells(files, top, "synth -flatten -top {top}; abc -lut 6; opt_clean",
                             timeout)
        res["lut6"] = c.get("$lut", 0)
        res["ff_generic"] = sum(v for k, v in c.items() if "DFF" in k.upper())
    res["seconds"] = round(time.perf_counter() - t0, 2)
    return res


KEYS = ("lut", "carry4", "ff", "srl", "muxf", "lut_carry", "lut6", "ff_generic")
FLOW_KEYS = {"xilinx": ("lut", "carry4", "ff", "srl", "muxf", "lut_carry"),
             "lut6": ("lut6", "ff_generic")}
SCOPE = ("the layer modules named in covers; the top module's own stream logic (line "
         "buffers, pooling, requantization, decode, handshake) is not estimated")


def total(est: dict[str, dict], flows: tuple[str, ...], skipped: dict[str, str]) -> dict:
    """The sum over the estimated layers ``est`` of every metric of ``flows``; a metric that
    some layer lacks is None.  ``skipped`` ({layer: reason}) is recorded as given."""
    keys = [k for f in flows for k in FLOW_KEYS[f]]
    out: dict[str, Any] = {k: (sum(e[k] for e in est.values())
                               if all(k in e for e in est.values()) else None) for k in keys}
    out.update(covers=list(est), skipped=dict(skipped), scope=SCOPE)
    return out


def estimate_export(out_dir: str | Path, layers: Iterable[str] | None = None,
                    flows: tuple[str, ...] = ("xilinx", "lut6"),
                    timeout: float | None = None,
                    lut6_max_adders: int | None = 4000, progress: bool = True) -> dict[str, Any]:
    """Estimate every layer module of a Verilog export (or the named layers) and store the
    numbers in ``summary.json`` under ``report.estimate`` (per layer and a ``total``, see the
    module docstring).  Returns the updated summary.  The ``lut6`` flow (ABC LUT mapping of
    every adder) is slow on big layers: it is skipped, and said so, for layers with more than
    ``lut6_max_adders`` adders (None: never skip)."""
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
    skipped = {name: "not requested" for name in every if name not in names}
    est: dict[str, Any] = {}
    for i, name in enumerate(names):
        fl = flows
        if (lut6_max_adders is not None and "lut6" in flows
                and report[name].get("adders", 0) > lut6_max_adders):
            fl = tuple(f for f in flows if f != "lut6")
            why = f"{report[name]['adders']} adders > {lut6_max_adders} (abc -lut 6 too slow)"
            skipped[name] = f"lut6 flow (lut6, ff_generic) not run: {why}"
        mod = report[name]["module"]
        est[name] = estimate_module([out_dir / f"{mod}.v"], mod, fl, timeout,
                                    label=f"{i + 1}/{len(names)} {name}", progress=progress)
        if fl != flows:
            est[name]["lut6_skipped"] = skipped[name]
    est["total"] = total(dict(est), flows, skipped)
    est["flow"] = {"xilinx": "yosys synth_xilinx -flatten -nodsp -noiopad -noclkbuf",
                   "lut6": "yosys synth -flatten; abc -lut 6"}
    report["estimate"] = est
    summary["report"] = report
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def _cell(v) -> str:
    return "-" if v is None else str(v)


def format_estimate(summary: dict) -> str:
    """The estimate of an export's summary as a table: one row per layer, the total, and
    what the total does not cover."""
    est = summary["report"]["estimate"]
    tot = est["total"]
    cols = ("lut", "carry4", "lut_carry", "ff", "lut6")
    head = ("LUT", "CARRY4", "LUT+CARRY4", "FF", "LUT6")
    lines = [f"{'yosys estimate':<28}" + "".join(f"{h:>11}" for h in head) + f"{'seconds':>9}"]
    for name in tot["covers"]:
        e = est[name]
        lines.append(f"  {name:<26}" + "".join(f"{_cell(e.get(c)):>11}" for c in cols)
                     + f"{e.get('seconds', 0):>9.1f}")
    lines.append(f"  {'total':<26}" + "".join(f"{_cell(tot.get(c)):>11}" for c in cols))
    lines.append(f"total covers {len(tot['covers'])} layer modules: {', '.join(tot['covers'])}")
    for name, why in tot["skipped"].items():
        lines.append(f"  skipped {name}: {why}")
    lines.append(f"the total counts {SCOPE}")
    return "\n".join(lines)


def print_estimate(summary: dict) -> None:
    """Print :func:`format_estimate` (``heatq-export --estimate``)."""
    typer.echo(format_estimate(summary))
