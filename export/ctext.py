"""Text helpers for the C-like targets: an indenting line buffer, exact integer literals,
C identifiers."""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator

from .base import EmitError

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


class Lines:
    """An indenting line emitter: ``L("x;")`` appends a line, ``with L.block("if (c)"):`` opens
    a braced, indented block."""

    def __init__(self, indent: str = "    ") -> None:
        self._lines: list[str] = []
        self._indent = indent
        self.level = 0

    def __call__(self, *lines: str) -> "Lines":
        for line in lines:
            self._lines.append(self._indent * self.level + line if line else "")
        return self

    @contextmanager
    def block(self, head: str, tail: str = "}") -> Iterator["Lines"]:
        self(f"{head} {{" if head else "{")
        self.level += 1
        try:
            yield self
        finally:
            self.level -= 1
            self(tail)

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def int_literal(v: int) -> str:
    """A C / C++ integer constant with the exact value ``v`` (``LL`` / ``ULL`` past 32 bits)."""
    v = int(v)
    if -(1 << 31) < v < (1 << 31):
        return str(v)
    if v == INT64_MIN:
        return "(-9223372036854775807LL - 1)"
    if INT64_MIN < v <= INT64_MAX:
        return f"{v}LL"
    if 0 <= v < (1 << 64):
        return f"{v}ULL"
    raise EmitError(f"constant {v} does not fit a 64-bit literal")


def identifier(name: str) -> str:
    """``name`` made into a C identifier (letters, digits, underscores; no leading digit)."""
    out = re.sub(r"[^A-Za-z0-9_]", "_", name) or "model"
    return "m_" + out if out[0].isdigit() else out
