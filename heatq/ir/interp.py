"""The reference interpreter: the oracle every target is checked against.

``run(graph, x)`` evaluates a batch: ``x`` has shape ``[N, *input_shape]`` and holds integers.
Each node's values are int64 when the node's type is at most 62 bits wide, else NumPy object
arrays of Python ints, so no value can ever wrap.  Each op's evaluation is in its module of
:mod:`heatq.ir.ops` (``SPECS[op].evaluate``); this module checks the input and runs them in
order.  Products and sums are exact (see :mod:`heatq.ir.ops.weighted`).
"""

from __future__ import annotations

import numpy as np

from .errors import IRError
from .graph import IntGraph
from .ops import SPECS
from .ops.base import INT64_MAX_WIDTH, as_dtype, value_dtype


def check_input(graph: IntGraph, x: np.ndarray) -> np.ndarray:
    """Validate a batch against the INPUT node (shape, integrality, range); returns it typed."""
    node = graph.nodes[0]
    x = np.asarray(x)
    if x.dtype == object and not all(isinstance(e, (int, np.integer)) and not isinstance(e, bool)
                                     for e in x.ravel()):
        raise IRError("input batch holds non-integer values")
    if x.shape[1:] != node.shape:
        raise IRError(f"input batch has per-sample shape {x.shape[1:]}, graph expects {node.shape}")
    if x.dtype.kind not in "iub" and x.dtype != object:
        raise IRError(f"input must hold integers, got dtype {x.dtype}")
    if x.size and (x.min() < node.lo or x.max() > node.hi):
        raise IRError(f"input values {x.min()}..{x.max()} exceed the input range "
                      f"{node.lo}..{node.hi}")
    return as_dtype(x, node.type)


def run(graph: IntGraph, x: np.ndarray, trace: bool = False):
    """Evaluate ``graph`` on a batch.  Returns the list of output arrays (in ``graph.outputs``
    order), or with ``trace=True`` a list with every node's values, indexed by node id."""
    values: list[np.ndarray | None] = [None] * len(graph.nodes)
    values[0] = check_input(graph, x)
    last_use = {a: n.id for n in graph.nodes for a in n.args}
    keep = set(graph.outputs)
    for node in graph.nodes[1:]:
        arg_nodes = [graph.nodes[a] for a in node.args]
        out = SPECS[node.op].evaluate(node, [values[a] for a in node.args], arg_nodes)
        values[node.id] = as_dtype(np.asarray(out), node.type)
        if not trace:
            for a in node.args:
                if last_use.get(a) == node.id and a not in keep:
                    values[a] = None
    return values if trace else [values[o] for o in graph.outputs]


__all__ = ["run", "check_input", "value_dtype", "INT64_MAX_WIDTH"]
