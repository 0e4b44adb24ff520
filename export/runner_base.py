"""The runner contract: a runner exports a graph for its target and executes the export.

:class:`Runner` (``name``, ``target``, ``tools``, :meth:`Runner.export`, :meth:`Runner.run`)
and :class:`RunnerError`; the registry of every runner is ``heatq_export.runners.RUNNERS``.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import numpy as np

from heatq.ir import IntGraph

from .base import write_export
from .emitters import get_emitter

__all__ = ["Runner", "RunnerError"]


class RunnerError(RuntimeError):
    """The target ran but did not produce a result for every input (or raised its error
    flag); the message says what happened."""


class Runner(abc.ABC):
    """Export with :attr:`target`'s emitter, then execute; subclasses implement :meth:`run`."""

    name: str = ""
    target: str | None = None
    tools: tuple[str, ...] = ()

    def export(self, graph: IntGraph, out: str | Path, **options: Any) -> dict[str, Any]:
        """Write ``graph``'s export for :attr:`target` into ``out`` (replacing it); returns the
        summary.  Raises :class:`EmitError` when the target refuses the graph."""
        em = get_emitter(self.target, **options)
        em.check_graph(graph)
        files = em.emit(graph)
        return write_export(out, self.target, files, em.summary(graph, files))

    @abc.abstractmethod
    def run(self, export_dir: str | Path, graph: IntGraph, x: np.ndarray) -> list[np.ndarray]:
        """The outputs of the export in ``export_dir`` on the batch ``x`` ``[N, *input]``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
