"""Resource estimates without vendor tools: yosys per layer module.

Two flows on the same module:

* ``xilinx``: ``synth_xilinx -flatten -nodsp -noiopad -noclkbuf`` (7-series cells):
  ``lut`` (LUT1..LUT6 plus INV cells), ``carry4``, ``ff`` (FDRE/FDSE/FDCE/FDPE), ``srl``,
  ``muxf`` (MUXF7/MUXF8) and ``lut_carry = lut + carry4`` (the comparison metric);
* ``lut6``: vendor-neutral ``synth -flatten; abc -lut 6``: ``lut6`` (``$lut`` cells, adders
  included, no carry chain) and ``ff``.

Yosys takes seconds to minutes per layer (the big conv layers are the slow ones), so this
runs only on request (``heatq-export ... --target verilog --estimate``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

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
                    timeout: float | None = None) -> dict[str, Any]:
    """LUT / CARRY4 / FF counts of module ``top`` (defined in ``files``)."""
    files = list(files)
    res: dict[str, Any] = {"module": top}
    t0 = time.perf_counter()
    if "xilinx" in flows:
        c = _yosys_cells(files, top, "synth_xilinx -flatten -nodsp -noiopad -noclkbuf -top {top}",
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
        c = _yosys_cells(files, top, "synth -flatten -top {top}; abc -lut 6; opt_clean", timeout)
        res["lut6"] = c.get("$lut", 0)
        res["ff_generic"] = sum(v for k, v in c.items() if "DFF" in k.upper())
    res["seconds"] = round(time.perf_counter() - t0, 2)
    return res


def estimate_export(out_dir: str | Path, layers: Iterable[str] | None = None,
                    flows: tuple[str, ...] = ("xilinx", "lut6"),
                    timeout: float | None = None,
                    lut6_max_adders: int | None = 4000) -> dict[str, Any]:
    """Estimate every layer module of a Verilog export (or the named layers) and store the
    numbers in ``summary.json`` under ``report.estimate`` (per layer and a total).  Returns
    the updated summary.  The ``lut6`` flow (ABC LUT mapping of every adder) is slow on big
    layers: it is skipped, and said so, for layers with more than ``lut6_max_adders``
    adders (None: never skip)."""
    out_dir = Path(out_dir)
    path = out_dir / "summary.json"
    summary = json.loads(path.read_text())
    if summary.get("target") != "verilog":
        raise ValueError(f"{out_dir}: not a verilog export")
    report = summary.get("report", {})
    names = [k for k, v in report.items() if isinstance(v, dict) and "module" in v]
    if layers is not None:
        want = list(layers)
        unknown = set(want) - set(names)
        if unknown:
            raise ValueError(f"unknown layers {sorted(unknown)}; layers: {names}")
        names = want
    est: dict[str, Any] = {}
    for name in names:
        mod = report[name]["module"]
        fl = flows
        skip = (lut6_max_adders is not None and "lut6" in flows
                and report[name].get("adders", 0) > lut6_max_adders)
        if skip:
            fl = tuple(f for f in flows if f != "lut6")
        est[name] = estimate_module([out_dir / f"{mod}.v"], mod, fl, timeout)
        if skip:
            est[name]["lut6_skipped"] = (f"{report[name]['adders']} adders > "
                                         f"{lut6_max_adders} (abc -lut 6 too slow)")
    keys = ("lut", "carry4", "ff", "srl", "muxf", "lut_carry", "lut6", "ff_generic")
    est["total"] = {k: sum(e.get(k, 0) for e in est.values()) for k in keys}
    est["flow"] = {"xilinx": "yosys synth_xilinx -flatten -nodsp -noiopad -noclkbuf",
                   "lut6": "yosys synth -flatten; abc -lut 6"}
    report["estimate"] = est
    summary["report"] = report
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
