"""Help text and ``--version`` for both command-line programs.

Typer's own help shows value placeholders as ``<int>`` / ``<bool>`` and required arguments
as ``{directory}``; :func:`command` gives the click command of a Typer app with the usual
forms instead: ``--n INTEGER``, flags without a placeholder, ``DIRECTORY`` in the usage line.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import typer

_NAMES = {int: "INTEGER", float: "FLOAT", str: "TEXT", Path: "PATH", bool: "BOOLEAN"}


def version() -> str:
    """The installed heatq version (pyproject's ``version``)."""
    try:
        return metadata.version("heatq")
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return "unknown"


def version_callback(prog: str):
    """An eager ``--version`` option's callback: print ``prog VERSION`` and exit 0."""
    def show(value: bool) -> None:
        if value:
            typer.echo(f"{prog} {version()}")
            raise typer.Exit(0)
    return show


def _annotation(param):
    desc = getattr(param, "type_descriptor", None)
    return getattr(desc, "annotation", None)


def _plain(param) -> None:
    if getattr(param, "metavar", None) is not None:
        return
    if getattr(param, "param_type_name", "") == "argument":
        name = param.name.upper()
        param.metavar = name
        # the usage line: DIRECTORY, not {directory}; no type column
        param._usage_display_name = lambda: name if param.nargs == 1 else f"{name}..."
        param.display_type_rich = lambda ctx: None
        return
    if getattr(param, "is_flag", False) or _annotation(param) is bool:
        param.metavar = ""
        return
    ann = _annotation(param)
    param.metavar = _NAMES.get(ann, getattr(ann, "__name__", "VALUE").upper())


def _plain_help_option(cmd) -> None:
    """``--help`` is made when help is shown: give it no placeholder either."""
    make = cmd.get_help_option

    def get_help_option(ctx):
        opt = make(ctx)
        if opt is not None:
            opt.metavar = ""
        return opt
    cmd.get_help_option = get_help_option


def _walk(cmd) -> None:
    _plain_help_option(cmd)
    for p in getattr(cmd, "params", []):
        _plain(p)
    for sub in getattr(cmd, "commands", {}).values():
        _walk(sub)


def command(app: typer.Typer):
    """The click command of ``app`` with plain placeholders (see the module docstring)."""
    cmd = typer.main.get_command(app)
    _walk(cmd)
    return cmd
