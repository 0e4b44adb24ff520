"""``heatq handoff RUN -o DIR`` and ``heatq verify-bundle DIR``: the synthesis bundle for an
FPGA team, and the check that none of its files changed.

``handoff`` is ``heatq-export RUN -t bundle -o DIR`` (:class:`heatq_export.bundle.BundleEmitter`)
with the main Verilog options; ``verify-bundle`` rechecks every file against
``manifest.json`` and prints one line per missing, edited or extra file (exit 1), or ``OK``
with the counts (exit 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from heatq.cli_common import force_option
from heatq.errors import UserError


def handoff(run: Path = typer.Argument(..., help="a run directory (or an IR file)"),
            out: Path = typer.Option(..., "--out", "-o", help="bundle directory to write"),
            clock_period: float = typer.Option(10.0, "--clock-period",
                                               help="clock period of clk in ns"),
            fold: Optional[str] = typer.Option(None, "--fold", help="layer folding: none | auto"),
            arith: Optional[str] = typer.Option(None, "--arith",
                                                help="layer arithmetic: adders | heap | auto"),
            ii: Optional[int] = typer.Option(None, "--ii", help="target II for --fold"),
            max_carry: Optional[int] = typer.Option(None, "--max-carry",
                                                    help="longest carry chain (bits)"),
            estimate: Optional[str] = typer.Option(None, "--estimate", help="also run the "
                                                   "yosys estimate: xilinx | ice40 | "
                                                   "ice40-up5k | all (slow)"),
            golden_images: Optional[int] = typer.Option(None, "--golden-images",
                                                        help="test images in the golden "
                                                        "vectors (default 20; 0: corner "
                                                        "vectors only)"),
            force: bool = force_option(),
            quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output")) -> None:
    """Write the synthesis bundle of a run: RTL, file list, FuseSoC core, EDAM, constraints,
    test benches with golden vectors, report, README and manifest."""
    from heatq import progress
    from heatq.files import load_graph
    from heatq_export.export import export_graph

    progress.set_quiet(quiet)
    graph = load_graph(run)
    opts = {"clock_period": float(clock_period), "fold": fold, "arith": arith, "ii": ii,
            "max_carry": max_carry, "estimate": estimate, "golden_images": golden_images}
    summary = export_graph(graph, "bundle", out, force=force, inputs=(run,), **opts)
    b = summary["bundle"]
    typer.echo(f"bundle {b['vlnv']}: {len(summary['files']) + 2} files written to {out} "
               f"(heatq verify-bundle {out} rechecks them)")


def verify_bundle(directory: Path = typer.Argument(..., help="a bundle directory")) -> None:
    """Recheck every file of a bundle against its manifest.json (sha256): exit 1 naming each
    missing, edited or extra file."""
    from heatq_export.bundle_manifest import verify

    try:
        manifest, problems = verify(directory)
    except ValueError as e:
        raise UserError(str(e)) from None
    for line in problems:
        typer.echo(f"heatq verify-bundle: error: {directory}/{line}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"OK: {len(manifest['files'])} files match manifest.json (sha256); "
               f"heatq {manifest.get('heatq_version')}, IR sha256 "
               f"{str(manifest.get('ir_sha256'))[:16]}")
