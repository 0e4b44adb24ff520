"""``heatq import MODEL.onnx --out RUN``: a QONNX model (e.g. Brevitas ``export_qonnx``) as a
heatq run directory."""

from __future__ import annotations

from pathlib import Path

import typer

from ..cli_common import force_option
from ..errors import UserError


def import_model(model: Path = typer.Argument(..., help="a QONNX / ONNX model file"),
                 out: Path = typer.Option(..., "--out", "-o", help="run directory to write"),
                 force: bool = force_option(),
                 quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
                 ) -> None:
    """Import a QONNX model as an exact integer network (a run directory)."""
    raise UserError("heatq import: not built yet")
