"""The emitter contract and the one place that writes an export to disk.

An emitter turns an :class:`~heatq.ir.IntGraph` into ``{relative_path: str | bytes}``.  It
writes nothing, computes no widths (it reads ``node.type``) and is deterministic: the same graph
gives byte-identical files.  Each emitter declares

- ``target``: its name on the command line (``heatq-export -t NAME``);
- ``supported_ops``: the ops it renders; :meth:`Emitter.check_graph` refuses any other op with
  a one-line :class:`EmitError` before ``emit`` runs;
- ``options``: its command-line options (:class:`EmitOption`: name, type, help, default),
  passed to its constructor as keyword arguments (``heatq-export`` offers the union of all
  targets' options and refuses one the chosen target does not declare);
- optionally :meth:`Emitter.finish`: work on the written export before it is moved into
  place (the Verilog resource estimate), so it is part of the same atomic write.

The runners that execute an export are ``heatq_export.runners.RUNNERS``, each naming the
target it runs.  :func:`write_export` writes the files into a temporary directory next to the
destination and renames it into place, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

from heatq.files import atomic_dir
from heatq.ir import IntGraph, Op


class EmitError(ValueError):
    """The graph cannot be rendered for this target (e.g. a node wider than the target's
    integer types, or an op the target has no unit for); the message names the node."""


@dataclass(frozen=True)
class EmitOption:
    """One target option: ``name`` is the constructor keyword (``max_carry``), shown on the
    command line as ``--max-carry``; ``type`` is ``int``, ``str`` or ``bool``; ``minimum``
    (ints only) is checked before anything is written.  ``bare`` (str options): the value of
    the flag given alone (``--estimate`` = ``--estimate xilinx``; the Python API passes
    True), ``choices`` the words its value is made of (comma-separated): on the command line
    the token after the flag is its value only when it is made of them."""

    name: str
    type: type
    help: str
    default: Any = None
    minimum: int | None = None
    bare: str | None = None
    choices: tuple[str, ...] = ()

    def takes(self, token: str) -> bool:
        """True when ``token`` is a value of this option (see ``choices``)."""
        return not self.choices or all(p in self.choices for p in token.split(","))

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


class Emitter(abc.ABC):
    """One target.  Subclasses set ``target``, ``supported_ops`` (and optionally ``options``)
    and implement :meth:`emit`."""

    target: ClassVar[str] = ""
    supported_ops: ClassVar[frozenset[Op]] = frozenset()
    options: ClassVar[tuple[EmitOption, ...]] = ()

    def check_graph(self, graph: IntGraph) -> None:
        """Raise :class:`EmitError` naming the first node whose op this target does not render."""
        for node in graph.nodes:
            if node.op not in self.supported_ops:
                raise EmitError(f"{self.target}: op {node.op.value} ({node.label()}) is not "
                                "supported")

    @abc.abstractmethod
    def emit(self, graph: IntGraph) -> dict[str, str | bytes]:
        """Return the generated files as ``{relative_path: text or bytes}``."""

    def summary(self, graph: IntGraph, files: Mapping[str, str | bytes]) -> dict[str, Any]:
        """Target-specific entries for ``summary.json`` (e.g. the top module's name)."""
        return {}

    def finish(self, export_dir: Path) -> None:
        """Called on the complete export (files and ``summary.json`` written) in its temporary
        directory, before it replaces the destination; may update ``summary.json`` there."""


def sha256_text(text: str | bytes) -> str:
    """sha256 of a generated file (text is hashed as UTF-8)."""
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def write_export(out_dir: str | Path, target: str, files: Mapping[str, str | bytes],
                 extra: Mapping[str, Any] | None = None,
                 finish: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """Write ``files`` and ``summary.json`` (``{"target", "files": {path: sha256}, **extra}``)
    into ``out_dir`` atomically, replacing an existing directory (the caller has checked it
    with :func:`heatq.files.prepare_output`); ``finish(tmp_dir)`` runs on the complete
    export before it is moved into place.  Returns the summary as finally written."""
    summary = {"target": target, "files": {p: sha256_text(t) for p, t in sorted(files.items())}}
    summary.update(extra or {})
    with atomic_dir(out_dir) as tmp:
        for rel, text in sorted(files.items()):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(text, bytes):
                path.write_bytes(text)
            else:
                path.write_text(text)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        if finish is not None:
            finish(tmp)
            summary = json.loads((tmp / "summary.json").read_text())
    return summary
