"""Writing output safely and reading run files, without importing torch.

``atomic_dir`` gives a temporary directory that replaces the destination only when the
block succeeds, so a failed command never leaves a half-written output directory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UserError
from .ir import IntGraph, IRError, load


@contextmanager
def atomic_dir(out: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``out``; on success it replaces ``out``, on any
    error it is removed, so no half-written output is ever left."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp."))
    try:
        yield tmp
        if out.exists():
            trash = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old."))
            os.replace(out, trash / "old")
            os.replace(tmp, out)
            shutil.rmtree(trash)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as stable, indented JSON, atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    """Read a JSON file, or raise UserError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None


def load_graph(directory: str | Path) -> IntGraph:
    """The integer graph of a run or export directory, verified; UserError if broken."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory")
    try:
        return load(directory / "model.ir.json")
    except IRError as e:
        raise UserError(str(e)) from None
