"""``--target bundle``: the synthesis bundle for an FPGA team (``heatq handoff`` writes the
same from a run directory).

The Verilog export (:class:`~heatq_export.verilog.VerilogEmitter`, same options: ``fold``,
``arith``, ``ii``, ``max_carry``, ``estimate``) with its sources under ``rtl/``, plus:

* ``TOP.f`` (the RTL in compile order), ``TOP.core`` (FuseSoC CAPI2: targets ``sim``,
  ``lint``, ``synth``), ``edam.json`` (edalize), ``constraints/TOP.xdc`` and ``.sdc`` (the
  clock ``clk``, ``clock_period`` ns);
* ``tb/``: a self-checking Verilog test bench (the FuseSoC ``sim`` target) and a standalone
  cocotb one (``make -C tb`` / ``pytest tb/``, needing only cocotb and Icarus), both on the
  golden vectors in ``tb/vectors/`` (:mod:`heatq_export.bundle_vectors`: test images and
  corner vectors, outputs from :func:`heatq.ir.run`); they drive ``m_tready`` with a seeded
  random stall pattern when the top has that port;
* ``report.json`` (the Verilog report; with ``estimate``, the yosys figures too),
  ``README.md`` for the team, and ``manifest.json`` (:mod:`heatq_export.bundle_manifest`:
  every file's sha256, heatq's version, the IR's sha256, the tools' versions), written last,
  inside the atomic write.

Templates: ``hdl_templates/bundle_*.tmpl`` (:mod:`heatq_export.bundle_files`).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

from heatq.cli_help import version
from heatq.ir import IntGraph

from .base import EmitOption, sha256_text
from .bundle_files import BundleContext, bundle_texts, compile_order, top_ports
from .bundle_manifest import write_manifest
from .bundle_vectors import golden_files, golden_inputs
from .verilog import VerilogEmitter


def vlnv(top: str, release: str) -> str:
    """The core's VLNV ``heatq:bundle:TOP:VERSION`` (a release FuseSoC parses)."""
    v = release if re.fullmatch(r"\d+(\.\d+)*", release) else "0.0.0"
    return f"heatq:bundle:{top}:{v}"


class BundleEmitter(VerilogEmitter):
    """``BundleEmitter(clock_period=10.0, golden_images=20, xilinx_part=..., intel_family=...,
    intel_device=..., **verilog_options)``.

    ``clock_period``: ns, the constraints' clock on ``clk`` (and the test benches' clock).
    ``golden_images``: the first N test images of the graph's dataset (N seeded random
    vectors when it records none), followed by the corner vectors; 0: corner vectors only.
    The parts / devices go to the core's vivado and quartus tool options."""

    target = "bundle"
    options = VerilogEmitter.options + (
        EmitOption("clock_period", float, "clock period of clk in ns (constraints, "
                   "test benches)", default=10.0),
        EmitOption("golden_images", int, "test images in the golden vectors (then the "
                   "corner vectors; 0: corner vectors only)", default=20, minimum=0),
        EmitOption("xilinx_part", str, "the Vivado part of the synth target",
                   default="xc7a100tcsg324-1"),
        EmitOption("intel_family", str, "the Quartus family of the synth target",
                   default="Cyclone V"),
        EmitOption("intel_device", str, "the Quartus device of the synth target",
                   default="5CGXFC7C7F23C8"))

    def __init__(self, clock_period: float = 10.0, golden_images: int = 20,
                 xilinx_part: str = "xc7a100tcsg324-1", intel_family: str = "Cyclone V",
                 intel_device: str = "5CGXFC7C7F23C8", **verilog_options: Any):
        super().__init__(**verilog_options)
        if isinstance(clock_period, bool) or not isinstance(clock_period, (int, float)) \
                or not clock_period > 0:
            raise ValueError(f"--clock-period must be a number of ns > 0, got {clock_period!r}")
        if golden_images < 0:
            raise ValueError(f"--golden-images must be >= 0, got {golden_images}")
        for flag, v in (("--xilinx-part", xilinx_part), ("--intel-device", intel_device),
                        ("--intel-family", intel_family)):
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.-]*", v):
                raise ValueError(f"{flag} {v!r}: letters, digits, ' ', '_', '.', '-' only")
        self.bundle_options = {"clock_period": float(clock_period), "xilinx_part": xilinx_part,
                               "intel_family": intel_family, "intel_device": intel_device,
                               "estimate": bool(self.estimate)}
        self.golden_images = golden_images
        self._vlnv = vlnv(self.top, version())

    def emit(self, graph: IntGraph) -> dict[str, str]:
        d = self.design(graph)
        rtl = compile_order(d.files, d.top)
        ports = top_ports(d.ports)
        sched = d.report["design"]
        n_in = golden_inputs(graph, self.golden_images)
        ii = sched["ii"] or 1
        model = {"latency": sched["latency"], "ii": sched["ii"],
                 "max_cycles": 2 * (len(n_in.x) + 4) * ii + 4 * (sched["latency"] or 0)
                 + 10_000}
        files: dict[str, str] = {f"rtl/{k}": v for k, v in d.files.items()}
        files.update(golden_files(graph, d.ports, n_in, model,
                                  self.bundle_options["clock_period"]))
        golden = json.loads(files["tb/vectors/vectors.json"])
        ctx = BundleContext(d.top, self._vlnv, version(), d, rtl, ports,
                            self.bundle_options, golden)
        files.update(bundle_texts(ctx))
        return files

    def summary(self, graph: IntGraph, files: Mapping[str, str]) -> dict[str, Any]:
        out = super().summary(graph, files)
        out["bundle"] = {"vlnv": self._vlnv, "golden_images": self.golden_images,
                         **self.bundle_options}
        return out

    def finish(self, export_dir) -> None:
        """``estimate``: the yosys figures into report.json and summary.json; then the
        manifest, over every file (inside the atomic write)."""
        root = Path(export_dir)
        if self.estimate:
            self._estimate(root)
        write_manifest(root, self.top, self._vlnv, version())

    def _estimate(self, root: Path) -> None:
        """Run :func:`heatq_export.estimate.estimate_export` on a Verilog-export copy of the
        RTL (it reads that layout) and keep its ``report["estimate"]``."""
        from .estimate import estimate_export

        summary = json.loads((root / "summary.json").read_text())
        with tempfile.TemporaryDirectory(prefix="heatq_bundle_est_") as tmp:
            t = Path(tmp)
            for p in (root / "rtl").glob("*.v"):
                shutil.copyfile(p, t / p.name)
            (t / "summary.json").write_text(json.dumps({**summary, "target": "verilog"}))
            est = estimate_export(t, **self.estimate)["report"]["estimate"]
        report = json.loads((root / "report.json").read_text())
        report["estimate"] = est
        text = json.dumps(report, indent=2, sort_keys=True) + "\n"
        (root / "report.json").write_text(text)
        summary["report"]["estimate"] = est
        summary["files"]["report.json"] = sha256_text(text)
        (root / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
