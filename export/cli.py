"""``heatq-export DIR --target c|hls|verilog -o OUT``: emit a target for a run directory.

The bundle holds the generated sources, the IR they came from (``model.ir.json`` +
``model.npz``, so the oracle travels with the hardware) and ``summary.json``
(``{"target", "files": {path: sha256}, ...}``).  Written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from heatq.cli_common import fail_cleanly
from heatq.errors import UserError
from heatq.files import load_graph
from heatq.ir import IntGraph
from heatq.ir.serialize import graph_to_json

from .base import EmitError, write_export
from .emitters import get_emitter


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def export_graph(graph: IntGraph, target: str, out: Path, **options) -> dict:
    """Emit ``target`` for ``graph`` into ``out``; returns the summary written there."""
    options = {k: v for k, v in options.items() if v is not None}
    try:
        emitter = get_emitter(target, **options)
    except TypeError:
        raise UserError(f"target {target} does not take option(s) "
                        f"{', '.join('--' + k.replace('_', '-') for k in options)}") from None
    try:
        emitter.check_graph(graph)
        files = dict(emitter.emit(graph))
    except EmitError as e:
        raise UserError(f"target {target}: {e}") from None
    ir_text, arrays = graph_to_json(graph, "model.npz")
    files["model.ir.json"] = ir_text
    files["model.npz"] = _npz_bytes(arrays)
    return write_export(out, target, files, emitter.summary(graph, files))


app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0],
                  pretty_exceptions_enable=False)


@app.command()
def export(directory: Path = typer.Argument(..., help="run directory (model.ir.json + model.npz)"),
           target: str = typer.Option(..., "--target", "-t", help="c, hls or verilog"),
           out: Path = typer.Option(..., "--out", "-o", help="output directory"),
           max_carry: Optional[int] = typer.Option(None, "--max-carry",
                                                   help="verilog: longest carry chain (bits)"),
           estimate: bool = typer.Option(False, "--estimate",
                                         help="verilog: yosys LUT/CARRY4/FF estimate")) -> None:
    """Emit bit-exact C, HLS C++ or Verilog for a trained run."""
    if max_carry is not None and max_carry < 1:
        raise UserError(f"--max-carry must be >= 1, got {max_carry}")
    options = {"max_carry": max_carry}
    summary = export_graph(load_graph(directory), target, out, **options)
    if estimate:
        if target != "verilog":
            raise UserError("--estimate needs --target verilog")
        from .estimate import estimate_export

        summary = estimate_export(out)
    typer.echo(f"{'file':<40} sha256")
    for path, digest in summary["files"].items():
        typer.echo(f"{path:<40} {digest[:16]}")
    typer.echo(f"target {target}: {len(summary['files'])} files written to {out}")


def main() -> None:
    fail_cleanly(app, "heatq-export")
