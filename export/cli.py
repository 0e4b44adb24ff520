"""``heatq-export DIR --target TARGET -o OUT``: emit a target for a run directory.

The targets and their options come from :data:`heatq_export.emitters.EMITTERS`: this module
offers every option any target declares and names nothing target-specific itself.  The
bundle holds the generated sources, the IR they came from (``model.ir.json`` +
``model.npz``) and ``summary.json`` (``{"target", "files": {path: sha256}, ...}``), written
atomically by :func:`heatq_export.export.export_graph`.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from heatq import progress
from heatq.cli_common import fail_cleanly, force_option
from heatq.cli_help import version_callback
from heatq.files import load_graph

from .base import EmitOption
from .emitters import EMITTERS
from .export import export_graph


def _merged_options() -> dict[str, tuple[EmitOption, list[str]]]:
    """Every target option by name, with the targets that declare it."""
    merged: dict[str, tuple[EmitOption, list[str]]] = {}
    for target, cls in EMITTERS.items():
        for opt in cls.options:
            if opt.name in merged:
                merged[opt.name][1].append(target)
            else:
                merged[opt.name] = (opt, [target])
    return merged


def _option_parameter(opt: EmitOption, targets: list[str]) -> inspect.Parameter:
    """A typer parameter for ``opt``: a flag for bools, else a value defaulting to None (so
    "not given" is seen and the target's own default applies)."""
    text = f"{', '.join(targets)}: {opt.help}"
    if opt.bare is not None:
        text += f" (the flag alone: {opt.bare})"
    if opt.type is bool:
        info, annotation = typer.Option(False, opt.flag, help=text), bool
    else:
        info, annotation = typer.Option(None, opt.flag, help=text), Optional[opt.type]
    return inspect.Parameter(opt.name, inspect.Parameter.KEYWORD_ONLY, default=info,
                             annotation=annotation)


def export(directory: Path = typer.Argument(..., help="run directory (model.ir.json + model.npz)"),
           target: str = typer.Option(..., "--target", "-t", help=", ".join(EMITTERS)),
           out: Path = typer.Option(..., "--out", "-o", help="output directory"),
           force: bool = force_option(),
           quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
           version: bool = typer.Option(False, "--version", is_eager=True,
                                        callback=version_callback("heatq-export"),
                                        help="print the version and exit"),
           **target_options: Any) -> None:
    """Emit bit-exact C, HLS C++ or Verilog for a trained run."""
    progress.set_quiet(quiet)
    given = {k: v for k, v in target_options.items() if v is not None and v is not False}
    graph = load_graph(directory)
    summary = export_graph(graph, target, out, force=force, inputs=(directory,), **given)
    typer.echo(f"{'file':<40} sha256")
    for path, digest in summary["files"].items():
        typer.echo(f"{path:<40} {digest[:16]}")
    typer.echo(f"target {target}: {len(summary['files'])} files written to {out}")
    if isinstance(summary.get("report", {}).get("estimate"), dict):
        from .estimate import print_estimate

        print_estimate(summary)


_fixed = [p for p in inspect.signature(export).parameters.values()
          if p.kind is not inspect.Parameter.VAR_KEYWORD]
export.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    _fixed + [_option_parameter(o, t) for o, t in _merged_options().values()])

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0],
                  pretty_exceptions_enable=False)
app.command()(export)


def bare_values(argv: list[str]) -> list[str]:
    """``argv`` with the ``bare`` value of an option given alone inserted after it (typer
    has no optional-value option): ``--estimate`` followed by nothing, another option or a
    token that is not one of its values (the run directory) reads ``--estimate xilinx``."""
    bare = {o.flag: o for o, _ in _merged_options().values() if o.bare is not None}
    out: list[str] = []
    for i, tok in enumerate(argv):
        out.append(tok)
        opt = bare.get(tok)
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if opt is not None and (nxt is None or nxt.startswith("-") or not opt.takes(nxt)):
            out.append(opt.bare)  # type: ignore[arg-type]
    return out


def main() -> None:
    sys.argv = [sys.argv[0], *bare_values(sys.argv[1:])]
    fail_cleanly(app, "heatq-export")
