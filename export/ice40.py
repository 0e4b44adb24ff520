"""Open place-and-route on a Lattice iCE40: yosys ``synth_ice40`` + ``nextpnr-ice40``.

:func:`estimate_ice40` synthesizes the whole top (``synth_ice40 -top T -json``), reports the
mapped cells -- ``lut4`` (SB_LUT4), ``carry`` (SB_CARRY), ``ram`` (SB_RAM40_4K, plus
SB_SPRAM256KA on the UP5K), ``ff`` (every SB_DFF* cell) -- then places and routes it with
nextpnr (``--freq 12 --timing-allow-fail``: the clock target is only the report's reference)
and reads nextpnr's JSON report: ``fmax_mhz`` (the clock's achieved frequency), ``lc`` (logic
cells used), ``io`` (SB_IO used).  A design that does not fit is a result, not an error:
``fits`` False, the measured size (the yosys cell counts and nextpnr's utilisation lines) and
``reason`` ("does not fit HX8K (7680 LUT4): ICESTORM_LC 9876/7680").

Pins: the designs' ports are wide (the logits alone are 180 bits on the seed CNN), more than
a package bonds (HX8K ct256: 206 IO, UP5K sg48: 39).  When the top's port bits (clk and rst
aside) exceed ``device.io - 4``, it is wrapped in a generated harness (:func:`harness`):
every input bit comes from a shift register fed by one pin (``sin``), every output bit is
loaded (``load``) into a shift register read out on one pin (``sout``), so nothing is
optimized away and the design sees registered inputs.  The harness costs ``in_bits +
out_bits`` FFs and about ``out_bits`` LUT4 (the load muxes); the result says
``harness: {"in_bits", "out_bits"}`` (None: the top was placed with its own ports, IO placed
freely, no PCF).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .estimate_cache import cache_key, cached, run_tool
from .rtl import netlist as nl
from .rtl.verilog import print_module


@dataclass(frozen=True)
class Device:
    """An iCE40 part as nextpnr names it: ``--{name} --package {package}``; ``lut4`` logic
    cells, ``ram`` 4 kbit blocks, ``io`` bonded user pins of the package."""

    name: str
    package: str
    lut4: int
    ram: int
    io: int


DEVICES = {"hx8k": Device("hx8k", "ct256", 7680, 32, 206),
           "up5k": Device("up5k", "sg48", 5280, 30, 39),
           "hx1k": Device("hx1k", "tq144", 1280, 16, 96)}
HARNESS = "heatq_pnr_harness"
_PORT = re.compile(r"^\s*(input|output)\s+wire\s+(?:signed\s+)?(?:\[(\d+):0\]\s+)?(\w+)", re.M)


def top_ports(text: str, top: str) -> list[tuple[str, str, int]]:
    """``[(direction, name, width)]`` of module ``top`` in ``text`` (a printed heatq
    module: one port declaration a line)."""
    m = re.search(rf"^module\s+{top}\s*\((.*?)\);", text, re.M | re.S)
    if m is None:
        raise ValueError(f"module {top} not found")
    return [(d, name, int(hi) + 1 if hi else 1) for d, hi, name in _PORT.findall(m.group(1))]


def harness(top: str, ports: list[tuple[str, str, int]]) -> str:
    """The pin harness of ``top`` (see the module docstring): ports ``clk, rst, sin, load ->
    sout``; input bits in port order, LSB first, shifted in from ``sin``; output bits loaded
    when ``load`` is 1, else shifted out MSB first on ``sout``."""
    m = nl.Module(HARNESS, header=[
        f"{HARNESS}: {top} behind four pins for place-and-route (its ports are wider than",
        "the package): inputs shifted in on sin, outputs loaded (load) and shifted out on sout."])
    clk, rst = m.input("clk", 1), m.input("rst", 1)
    sin, load, sout = m.input("sin", 1), m.input("load", 1), m.output("sout", 1)
    ins = [(n, w) for d, n, w in ports if d == "input" and n not in ("clk", "rst")]
    outs = [(n, w) for d, n, w in ports if d == "output"]
    n_in, n_out = sum(w for _, w in ins), sum(w for _, w in outs)
    conns = [nl.Port("clk", clk), nl.Port("rst", rst)]
    if n_in:
        shift_in = m.signal("shift_in", n_in)
        m.reg(shift_in, nl.cat(sin, *([nl.bits(shift_in, n_in - 2, 0)] if n_in > 1 else [])),
              clk)
        lo = 0
        for name, w in ins:
            conns.append(nl.Port(name, nl.bits(shift_in, lo + w - 1, lo)))
            lo += w
    results = [m.signal(f"top_{name}", w) for name, w in outs]
    conns += [nl.Port(name, s, True) for (name, _), s in zip(outs, results)]
    m.instance(top, "u_top", [], conns)
    shift_out = m.signal("shift_out", n_out)
    shifted = nl.cat(nl.const(1, 0), nl.bits(shift_out, n_out - 2, 0)) if n_out > 1 \
        else nl.const(1, 0)
    m.reg(shift_out, nl.Mux(load, nl.cat(*results), shifted), clk)
    m.assign(sout, nl.bit(shift_out, n_out - 1))
    return print_module(m)


def _cells(cells: dict[str, int]) -> dict[str, int]:
    return {"lut4": cells.get("SB_LUT4", 0), "carry": cells.get("SB_CARRY", 0),
            "ram": cells.get("SB_RAM40_4K", 0) + cells.get("SB_SPRAM256KA", 0),
            "ff": sum(v for k, v in cells.items() if k.startswith("SB_DFF"))}


_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)", re.M)


def _place(netlist: Path, top: str, dev: Device, tmp: Path, timeout) -> dict[str, Any]:
    """nextpnr on the synthesized ``netlist``: Fmax and utilisation, or why it failed."""
    rep, log = tmp / "report.json", tmp / "nextpnr.log"
    r = run_tool(["nextpnr-ice40", f"--{dev.name}", "--package", dev.package, "--json",
                  str(netlist), "--top", top, "--report", str(rep), "--freq", "12",
                  "--timing-allow-fail", "--pcf-allow-unconstrained", "--seed", "1",
                  "-q", "-l", str(log)], timeout)
    text = log.read_text(errors="replace") if log.exists() else r.stdout
    util = {k: {"used": int(u), "available": int(a)} for k, u, a in _UTIL.findall(text)}
    out: dict[str, Any] = {"utilisation": util}
    if r.returncode != 0 or not rep.exists():
        errors = [ln for ln in text.splitlines() if ln.startswith("ERROR")]
        over = [f"{k} {v['used']}/{v['available']}" for k, v in util.items()
                if v["used"] > v["available"]]
        out.update(lc=util.get("ICESTORM_LC", {}).get("used"),
                   io=util.get("SB_IO", {}).get("used"))
        out.update(fits=False, reason=f"does not fit {dev.name.upper()} ({dev.lut4} LUT4): "
                   + "; ".join(over + errors[:1] or [text.strip()[-300:]]))
        return out
    doc = json.loads(rep.read_text())
    util = {k: {"used": v["used"], "available": v["available"]}
            for k, v in doc.get("utilization", {}).items()}
    fmax = [v["achieved"] for v in doc.get("fmax", {}).values()]
    out.update(fits=True, utilisation=util, fmax_mhz=round(min(fmax), 2) if fmax else None,
               lc=util.get("ICESTORM_LC", {}).get("used"), io=util.get("SB_IO", {}).get("used"))
    return out


def estimate_ice40(files: Iterable[str | Path], top: str, device: str = "hx8k",
                   timeout: float | None = None) -> dict[str, Any]:
    """synth_ice40 + nextpnr-ice40 of module ``top`` (defined in ``files``) on ``device``
    (:data:`DEVICES`); cached like every estimate (key: sources, harness, scripts, yosys and
    nextpnr versions).  See the module docstring for the keys."""
    dev = DEVICES[device]
    files = sorted(Path(f).resolve() for f in files)
    named = [f for f in files if f.name == f"{top}.v"]  # a heatq export: the top's own file
    ports = top_ports("\n".join(f.read_text() for f in named or files), top)
    bits_in = sum(w for d, n, w in ports if d == "input" and n not in ("clk", "rst"))
    bits_out = sum(w for d, _, w in ports if d == "output")
    wrap = bits_in + bits_out > dev.io - 4
    script = (f"synth_ice40 -top {HARNESS if wrap else top} -json {{json}}; "
              f"nextpnr-ice40 --{dev.name} --package {dev.package} --freq 12 --seed 1")
    with tempfile.TemporaryDirectory(prefix="heatq_ice40_") as tmp:
        tmp_dir = Path(tmp)
        sources = list(files)
        if wrap:
            sources.append(tmp_dir / f"{HARNESS}.v")
            sources[-1].write_text(harness(top, ports))
        key = cache_key(sources, script, ["yosys", "nextpnr-ice40"])

        def run() -> dict:
            t0 = time.perf_counter()
            pnr_top = HARNESS if wrap else top
            netlist, stat = tmp_dir / "netlist.json", tmp_dir / "stat.json"
            reads = "".join(f"read_verilog {f}; " for f in sources)
            r = run_tool(["yosys", "-q", "-p", f"{reads}synth_ice40 -top {pnr_top} -json "
                          f"{netlist}; tee -q -o {stat} stat -json"], timeout)
            if r.returncode != 0 or not stat.exists():
                raise RuntimeError(f"yosys synth_ice40 failed on {top}:\n{r.stdout[-3000:]}")
            cells = json.loads(stat.read_text())["design"]["num_cells_by_type"]
            res: dict[str, Any] = {"device": dev.name, "package": dev.package,
                                   **_cells(cells), "top": pnr_top,
                                   "harness": {"in_bits": bits_in, "out_bits": bits_out}
                                   if wrap else None}
            res["synth_seconds"] = round(time.perf_counter() - t0, 2)
            res.update(_place(netlist, pnr_top, dev, tmp_dir, timeout))
            res["seconds"] = round(time.perf_counter() - t0, 2)
            return res

        return cached(key, run)


def format_ice40(device: str, r: dict) -> str:
    """One line per iCE40 result: the size and Fmax, or why it does not fit."""
    size = (f"LUT4 {r['lut4']}, carry {r['carry']}, RAM {r['ram']}, FF {r['ff']}"
            + (f", LC {r['lc']}, IO {r['io']}" if r.get("fits") else ""))
    pins = ("" if r.get("harness") is None else
            f"; ports behind a 4-pin shift harness ({r['harness']['in_bits']} in + "
            f"{r['harness']['out_bits']} out bits, counted)")
    head = f"iCE40 {device.upper()} ({r['package']}), synth_ice40 + nextpnr: {size}"
    how = ("cached" if r.get("cached") else f"{r.get('seconds', 0):.1f} s")
    if r.get("fits"):
        return f"{head}; Fmax {r['fmax_mhz']} MHz{pins} [{how}]"
    return f"{head}; {r['reason']}{pins} [{how}]"
