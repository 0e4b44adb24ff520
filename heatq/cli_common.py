"""What both command-line programs share: user mistakes end as one line and exit code 2;
the one ``--force`` option of every command that writes an output directory."""

from __future__ import annotations

import sys

import typer

from .cli_help import command
from .errors import UserError
from .files import FORCE_HELP
from .ir import IRError


def force_option() -> bool:
    """``--force``: replace an earlier heatq output of the same kind (never anything else).
    Use as ``force: bool = force_option()``; in the Annotated style write
    ``Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False``."""
    return typer.Option(False, "--force", help=FORCE_HELP)


def _os_message(e: OSError) -> str:
    if e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return str(e)


def fail_cleanly(app: typer.Typer, prog: str) -> None:
    """Run ``app``; a UserError or IRError prints ``prog: error: ...`` and exits 2 (or the
    error's own ``exit_code``), and so does an OSError from the file system (disk full,
    permission denied: the path and the reason).  (Usage errors are typer's own: a usage line
    and exit code 2.)"""
    try:
        command(app)(prog_name=prog)
    except (UserError, IRError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 2))
    except OSError as e:
        print(f"{prog}: error: {_os_message(e)}", file=sys.stderr)
        sys.exit(2)
