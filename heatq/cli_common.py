"""What both command-line programs share: user mistakes end as one line and exit code 2."""

from __future__ import annotations

import sys

import typer

from .errors import UserError
from .ir import IRError


def fail_cleanly(app: typer.Typer, prog: str) -> None:
    """Run ``app``; a UserError or IRError prints ``prog: error: ...`` and exits 2.
    (Usage errors are typer's own: a usage line and exit code 2.)"""
    try:
        app(prog_name=prog)
    except (UserError, IRError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
