"""The reference interpreter: the oracle every target is checked against.

``run(graph, x)`` evaluates a batch: ``x`` has shape ``[N, *input_shape]`` and holds integers.
Each node's values are int64 when the node's type is at most 62 bits wide, else NumPy object
arrays of Python ints, so no value can ever wrap.  Products and sums are exact: CONV2D and
DENSE use float64 BLAS only when range analysis proves every partial sum is below 2**53 in
magnitude (then float64 arithmetic on integers is exact), and integer arithmetic otherwise.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .graph import IntGraph, Node
from .ops import Op
from .requant import requant_array
from .rules import IRError
from .types import IntType, Rounding

INT64_MAX_WIDTH = 62
FLOAT64_EXACT = 1 << 53


def value_dtype(t: IntType):
    """The NumPy dtype that holds every value of ``t`` without wrapping."""
    return np.int64 if t.width <= INT64_MAX_WIDTH else object


def _pyints(v: np.ndarray) -> np.ndarray:
    """An object array of Python ints with the values of integer array ``v``."""
    out = np.empty(v.shape, dtype=object)
    out.ravel()[:] = [int(e) for e in v.ravel()] if v.size else []
    return out


def _as_dtype(v: np.ndarray, t: IntType) -> np.ndarray:
    if value_dtype(t) is object:
        return _pyints(v)
    return v.astype(np.int64, copy=False)


def _fits_int64(*values: int) -> bool:
    return all(-(1 << INT64_MAX_WIDTH) < int(v) < (1 << INT64_MAX_WIDTH) for v in values)


def _matmul_exact(x: np.ndarray, w: np.ndarray, bound: int) -> np.ndarray:
    """``x @ w`` on integers (x [..., K], w [K, M]), exact; ``bound`` caps |every partial sum|."""
    if bound < FLOAT64_EXACT and x.dtype != object:
        return np.rint(x.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)
    if _fits_int64(bound) and x.dtype != object:
        return x.astype(np.int64) @ w.astype(np.int64)
    return _pyints(x) @ _pyints(w)


def _abs_bound(arg: Node, w: np.ndarray) -> int:
    """A bound on |every partial sum of w[j] . x| (Python ints: it cannot wrap)."""
    m = max(abs(arg.lo), abs(arg.hi))
    rows = w.reshape(w.shape[0], -1)
    return max((sum(abs(int(v)) for v in row) for row in rows.tolist()), default=0) * m


def _add_bias(acc: np.ndarray, bias: np.ndarray, node: Node) -> np.ndarray:
    """``acc + bias`` in the node's value dtype (Python ints when it is wider than int64)."""
    if value_dtype(node.type) is object or acc.dtype == object:
        return _pyints(acc) + _pyints(bias)
    return acc + bias


def _conv2d(node: Node, args: list[np.ndarray], arg_nodes: list[Node]) -> np.ndarray:
    a = node.attrs
    x = args[0]
    p = a.padding
    if p:
        x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        if x.dtype == object:  # np.pad fills object arrays with np.int64 zeros
            x = _pyints(x)
    k = a.weight.shape[2]
    win = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::a.stride, ::a.stride]
    n, c, ho, wo = win.shape[:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n, ho, wo, c * k * k)
    w2 = a.weight.reshape(a.weight.shape[0], -1).T
    acc = _matmul_exact(cols, w2, _abs_bound(arg_nodes[0], a.weight))
    return _add_bias(acc, a.bias, node).transpose(0, 3, 1, 2)


def _dense(node: Node, args: list[np.ndarray], arg_nodes: list[Node]) -> np.ndarray:
    a = node.attrs
    acc = _matmul_exact(args[0], a.weight.T, _abs_bound(arg_nodes[0], a.weight))
    return _add_bias(acc, a.bias, node)


def _requant(node: Node, args: list[np.ndarray], arg_nodes: list[Node]) -> np.ndarray:
    return requant_array(args[0], node.attrs)


def requant_tail(v: np.ndarray, attrs) -> np.ndarray:
    """REQUANT after its rounding constant was added: floor shift, then saturate or wrap."""
    return requant_array(v, replace(attrs, rounding=Rounding.FLOOR))


def _maxpool2d(node: Node, args: list[np.ndarray], arg_nodes: list[Node]) -> np.ndarray:
    a = node.attrs
    _, ho, wo = node.shape
    win = sliding_window_view(args[0], (a.kernel, a.kernel), axis=(2, 3))
    win = win[:, :, ::a.stride, ::a.stride][:, :, :ho, :wo]
    return win.max(axis=(4, 5))


def _flatten(node: Node, args: list[np.ndarray], arg_nodes: list[Node]) -> np.ndarray:
    return args[0].reshape(args[0].shape[0], -1)


def _sign_bits(node: Node, args: list[np.ndarray], arg_nodes: list[Node]) -> np.ndarray:
    return (args[0] > 0).astype(np.int64)


def _hamming_decode(node: Node, args: list[np.ndarray], arg_nodes: list[Node]) -> np.ndarray:
    cb = node.attrs.codebook.astype(np.int64)
    dist = (args[0][:, None, :].astype(np.int64) != cb[None, :, :]).sum(axis=2)
    return np.argmin(dist, axis=1).astype(np.int64)  # argmin keeps the first (lowest) index


EVAL: dict[Op, Callable[[Node, list[np.ndarray], list[Node]], np.ndarray]] = {
    Op.CONV2D: _conv2d,
    Op.DENSE: _dense,
    Op.REQUANT: _requant,
    Op.MAXPOOL2D: _maxpool2d,
    Op.FLATTEN: _flatten,
    Op.SIGN_BITS: _sign_bits,
    Op.HAMMING_DECODE: _hamming_decode,
}


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
    return _as_dtype(x, node.type)


def run(graph: IntGraph, x: np.ndarray, trace: bool = False):
    """Evaluate ``graph`` on a batch.  Returns the list of output arrays (in ``graph.outputs``
    order), or with ``trace=True`` a list with every node's values, indexed by node id."""
    values: list[np.ndarray | None] = [None] * len(graph.nodes)
    values[0] = check_input(graph, x)
    last_use = {a: n.id for n in graph.nodes for a in n.args}
    keep = set(graph.outputs)
    for node in graph.nodes[1:]:
        arg_nodes = [graph.nodes[a] for a in node.args]
        out = EVAL[node.op](node, [values[a] for a in node.args], arg_nodes)
        values[node.id] = _as_dtype(np.asarray(out), node.type)
        if not trace:
            for a in node.args:
                if last_use.get(a) == node.id and a not in keep:
                    values[a] = None
    return values if trace else [values[o] for o in graph.outputs]
