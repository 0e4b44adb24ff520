"""The pass contract: :class:`Pass` and :class:`PassManager`."""

from __future__ import annotations

import abc
from typing import Iterable

from heatq.ir import IntGraph, IRError


class Pass(abc.ABC):
    """One IR-to-IR rewrite.  A subclass sets ``name`` and states in its docstring what it
    preserves (at least: the graph verifies, and the interpreter gives the same outputs and
    the same values for every node name present before and after)."""

    name: str = ""

    @abc.abstractmethod
    def __call__(self, graph: IntGraph) -> IntGraph:
        """Return the rewritten graph (a new one; the input is immutable)."""


class PassManager:
    """Runs ``passes`` in order, calling ``verify()`` on the graph each one returns."""

    def __init__(self, passes: Iterable[Pass]):
        self.passes = list(passes)

    def run(self, graph: IntGraph) -> IntGraph:
        """The graph after every pass; raises IRError naming the pass whose output fails
        ``verify()``."""
        for p in self.passes:
            graph = p(graph)
            try:
                graph.verify()
            except IRError as e:
                raise IRError(f"after pass {p.name}: {e}") from None
        return graph
