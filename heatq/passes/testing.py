"""The one test helper for passes: :func:`assert_preserves`."""

from __future__ import annotations

import numpy as np

from heatq.ir import IntGraph, run

from .base import Pass


def assert_preserves(pass_: Pass, graph: IntGraph, x: np.ndarray) -> IntGraph:
    """Run ``pass_`` on ``graph`` and assert: the result verifies; on the batch ``x`` the
    interpreter gives equal outputs (exact integer equality, in ``graph.outputs`` order) and
    equal values for every node name present in both graphs.  Returns the rewritten graph;
    raises AssertionError naming the first difference."""
    after = pass_(graph)
    after.verify()
    before_v = run(graph, x, trace=True)
    after_v = run(after, x, trace=True)
    assert len(after.outputs) == len(graph.outputs), (
        f"{pass_.name}: {len(after.outputs)} outputs, was {len(graph.outputs)}")
    for k, (a, b) in enumerate(zip(graph.outputs, after.outputs)):
        assert np.array_equal(before_v[a], after_v[b]), (
            f"{pass_.name}: output {k} ({graph.nodes[a].label()}) differs")
    names = {n.name: n.id for n in after.named()}
    for n in graph.named():
        if n.name in names:
            assert np.array_equal(before_v[n.id], after_v[names[n.name]]), (
                f"{pass_.name}: the values of {n.name!r} differ")
    return after
