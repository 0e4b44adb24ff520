"""Writing output safely and reading run files, without importing torch.

Every command that writes an output directory (``train``, ``heat``, ``demo``,
``heatq-export``) calls :func:`prepare_output` before any long work: a user's own files are
never replaced, a path that cannot be written is refused at once, and an earlier heatq output
of the same kind is replaced only with ``--force``.  :func:`atomic_dir` then gives a temporary
directory that replaces the destination only when the block succeeds, so a failed command
never leaves a half-written output directory.  Directories and files come out with the
umask's modes (``0o777 & ~umask`` / ``0o666 & ~umask``), as ``mkdir`` and ``open`` would make
them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from .errors import UserError
from .ir import IntGraph, IRError, load

KINDS = ("run", "export", "demo", "sweep")
# what ``heatq demo`` writes into its --out (heatq/demo.py), besides its summary.json
DEMO_ENTRIES = ("run-4bit", "run", "export-c", "export-hls", "export-qonnx", "export-hls4ml",
                "export-verilog", "bundle", "run-binary", "export-binary-c",
                "export-binary-hls")  # what heatq.demo writes
_A = {"run": "a run", "export": "an export", "demo": "a demo", "sweep": "a heating sweep"}
FORCE_HELP = "replace an earlier heatq output of the same kind at --out (never anything else)"


def _summary(path: Path) -> dict | None:
    try:
        doc = json.loads((path / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def output_kind(path: str | Path) -> str | None:
    """Which heatq output the directory ``path`` holds, from what heatq writes there:
    ``"export"`` (``summary.json`` with ``target`` and ``files``, by heatq-export), ``"run"``
    (``summary.json`` without ``target`` beside ``model.ir.json``, by train / heat),
    ``"sweep"`` (``summary.json`` with ``sweep`` beside ``pareto.json``, by ``heatq heat
    --sweep``), ``"demo"`` (only the demo's runs and exports, :data:`DEMO_ENTRIES`, and its
    ``summary.json``: a directory of the user's own runs is not a demo); None for anything
    else (a file, a user's directory, an empty one)."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return None
    summary = _summary(path)
    if summary is not None and "target" in summary and "files" in summary:
        return "export"
    if summary is not None and "sweep" in summary and (path / "pareto.json").is_file():
        return "sweep"
    if summary is not None and (path / "model.ir.json").is_file():
        return "run"
    subs = [p for p in path.iterdir() if p.name != "summary.json"]
    if subs and all(p.name in DEMO_ENTRIES and output_kind(p) in ("run", "export")
                    for p in subs):
        return "demo"
    return None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _inside(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def _check_location(out: Path, full: Path, real: Path, inputs: Iterable[str | Path]) -> Path:
    """Refuse the root, the current directory (or one holding it), an input (or a path inside
    or around one) and a path under a file; return the nearest existing ancestor."""
    if full.parent == full:
        raise UserError(f"{out}: cannot write an output at the file system root")
    if _inside(Path(os.path.realpath(os.getcwd())), real):
        raise UserError(f"{out} is the current directory or contains it; choose another "
                        "output directory")
    for inp in inputs:
        r_in = Path(os.path.realpath(inp))
        if _inside(real, r_in):
            where = "is the input" if real == r_in else "is inside the input"
            raise UserError(f"{out} {where} {inp}; choose another output directory")
        if _inside(r_in, real):
            raise UserError(f"{out} contains the input {inp}; choose another output directory")
    parent = full.parent
    while not os.path.lexists(parent):
        parent = parent.parent
    if not parent.is_dir():
        said = parent if out.is_absolute() else os.path.relpath(parent)
        raise UserError(f"{out}: {said} is a file, not a directory")
    return parent


def _check_existing(out: Path, full: Path, kind: str, force: bool) -> None:
    """Refuse an existing ``full`` unless it is empty or a heatq ``kind`` output and ``force``."""
    if not os.path.lexists(full):
        return
    if full.is_symlink():
        raise UserError(f"{out} is a symbolic link; give the directory itself")
    if not full.is_dir():
        raise UserError(f"{out} exists and is a file, not a heatq {kind}; choose another "
                        "output directory")
    if not any(full.iterdir()):
        return
    found = output_kind(full)
    if found is None:
        raise UserError(f"{out} exists and is not a heatq {kind}; heatq never replaces other "
                        "files (not even with --force): choose another output directory")
    if found != kind:
        raise UserError(f"{out} is a heatq {found}, not {_A[kind]}; choose another output "
                        "directory")
    if not force:
        raise UserError(f"{out} already holds a heatq {kind}; use --force to replace it")


def _check_writable(out: Path, parent: Path) -> None:
    """Create and remove a probe directory in ``parent`` (where the output will be made)."""
    try:
        probe = tempfile.mkdtemp(dir=parent, prefix=".heatq-probe.")
    except OSError as e:
        raise UserError(f"{out}: cannot write in {parent} ({e.strerror or e})") from None
    os.rmdir(probe)


def prepare_output(out: str | Path, kind: str, force: bool = False,
                   inputs: Iterable[str | Path] = ()) -> Path:
    """Check, before any long work, that ``out`` may become a heatq ``kind`` output
    (``"run"``, ``"export"`` or ``"demo"``); writes nothing.  Raises :class:`UserError` (one
    line) for: an existing non-empty path heatq did not write (never replaced, even with
    ``force``), a heatq output of another kind, one of the same kind without ``force``, a file,
    a path under a file, a location that cannot be written, the current directory, and ``out``
    equal to, inside or around any of ``inputs``.  Returns ``out`` as an absolute path."""
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    out = Path(out)
    full = Path(os.path.abspath(out))
    real = Path(os.path.realpath(out))
    parent = _check_location(out, full, real, list(inputs))
    _check_existing(out, full, kind, force)
    _check_writable(out, parent)
    return full


def _apply_umask(root: Path) -> None:
    """Give ``root`` and everything under it the modes ``mkdir``/``open`` give under the
    umask (temporary-file helpers make 0700 / 0600); executables keep their x bits."""
    mask = _umask()
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        base = 0o777 if path.is_dir() or mode & 0o111 else 0o666
        os.chmod(path, base & ~mask)


@contextmanager
def atomic_dir(out: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``out``; on success it replaces ``out``, on any
    error it is removed, so no half-written output is ever left.  As a last guard (callers
    check first with :func:`prepare_output`) an existing non-empty ``out`` that is not a
    heatq output is never replaced."""
    out = Path(os.path.abspath(out))
    made = []  # parent directories this call creates, deepest first (removed on failure)
    parent = out.parent
    while not os.path.lexists(parent):
        made.append(parent)
        parent = parent.parent
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp."))
    try:
        yield tmp
        _apply_umask(tmp)
        if os.path.lexists(out):
            _replace(out, tmp)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for d in made:
            try:
                os.rmdir(d)
            except OSError:
                break
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _replace(out: Path, tmp: Path) -> None:
    """Swap ``tmp`` in for the existing ``out`` (the old one restored if the swap fails)."""
    if out.is_symlink() or not out.is_dir() or (any(out.iterdir())
                                                and output_kind(out) is None):
        raise UserError(f"{out} exists and is not a heatq output; not replaced")
    trash = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old."))
    try:
        os.replace(out, trash / "old")
    except OSError:
        os.rmdir(trash)
        raise
    try:
        os.replace(tmp, out)
    except OSError:
        os.replace(trash / "old", out)
        os.rmdir(trash)
        raise
    shutil.rmtree(trash)


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
