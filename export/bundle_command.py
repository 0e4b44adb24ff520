"""``heatq handoff RUN -o DIR`` and ``heatq verify-bundle DIR``: the synthesis bundle for an
FPGA team, and the check that none of its files changed."""

from __future__ import annotations

from pathlib import Path

import typer

from heatq.cli_common import force_option
from heatq.errors import UserError


def handoff(run: Path = typer.Argument(..., help="a run directory (or an IR file)"),
            out: Path = typer.Option(..., "--out", "-o", help="bundle directory to write"),
            force: bool = force_option()) -> None:
    """Write the synthesis bundle of a run: RTL, file list, FuseSoC core, constraints,
    standalone testbench, report, README and manifest."""
    raise UserError("heatq handoff: not built yet")


def verify_bundle(directory: Path = typer.Argument(..., help="a bundle directory")) -> None:
    """Recheck every file of a bundle against its manifest.json (sha256)."""
    raise UserError("heatq verify-bundle: not built yet")
