"""The emitter contract and the one place that writes an export to disk.

An emitter turns an :class:`~heatq.ir.IntGraph` into ``{relative_path: text}``.  It writes
nothing, computes no widths (it reads ``node.type``) and is deterministic: the same graph
gives byte-identical text.  :func:`write_export` writes the files into a temporary directory
next to the destination and renames it into place, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import abc
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from heatq.files import atomic_dir
from heatq.ir import IntGraph


class EmitError(ValueError):
    """The graph cannot be rendered for this target (e.g. a node wider than the target's
    integer types, or an op the target has no unit for); the message names the node."""


class Emitter(abc.ABC):
    """One target.  Subclasses set ``target`` and implement :meth:`emit`."""

    target: str = ""

    @abc.abstractmethod
    def emit(self, graph: IntGraph) -> dict[str, str]:
        """Return the generated files as ``{relative_path: text}``."""

    def summary(self, graph: IntGraph, files: Mapping[str, str]) -> dict[str, Any]:
        """Target-specific entries for ``summary.json`` (e.g. the top module's name)."""
        return {}


def sha256_text(text: str | bytes) -> str:
    """sha256 of a generated file (text is hashed as UTF-8)."""
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def write_export(out_dir: str | Path, target: str, files: Mapping[str, str | bytes],
                 extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ``files`` and ``summary.json`` (``{"target", "files": {path: sha256}, **extra}``)
    into ``out_dir`` atomically, replacing an existing directory.  Returns the summary."""
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
    return summary
