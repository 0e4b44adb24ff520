"""The reference interpreter: the oracle every target is checked against.

``run(graph, x)`` evaluates a batch: ``x`` has shape ``[N, *input_shape]`` and holds integers.
Each node's values are int64 when the node's type is at most 62 bits wide, else NumPy object
arrays of Python ints, so no value can ever wrap.  Products and sums are exact: CONV2D and
DENSE use float64 BLAS only when range analysis proves every partial sum is below 2**53 in
magnitude (then float64 arithmetic on integers is exact), and integer arithmetic otherwise.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .graph import IntGraph, Node
from .ops import Op
from .rules import IRError
from .types import IntType, Overflow, Rounding

INT64_MAX_WIDTH = 62
FLOAT64_EXACT = 1 << 53


def value_dtype(t: IntType):
    """The NumPy dtype that holds every value of ``t`` without wrapping."""
    return np.int64 if t.width <= INT64_MAX_WIDTH else object


def _as_dtype(v: np.ndarray, t: IntType) -> np.ndarray:
    dt = value_dtype(t)
    if dt is object:
        return np.array([int(e) for e in v.ravel()], dtype=object).reshape(v.shape)
    return v.astype(np.int64, copy=False)


def _matmul_exact(x: np.ndarray, w: np.ndarray, bound: int) -> np.ndarray:
    """``x @ w`` on integers (x [..., K], w [K, M]), exact; ``bound`` caps |every partial sum|."""
    if bound < FLOAT64_EXACT and x.dtype != object:
        return np.rint(x.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)
    if bound <= np.iinfo(np.int64).max and x.dtype != object:
        return x.astype(np.int64) @ w.astype(np.int64)
    xo = x.astype(object)
    return xo @ w.astype(object)


def _abs_bound(node: Node, arg: Node, w: np.ndarray) -> int:
    m = max(abs(arg.lo), abs(arg.hi))
    return int(np.abs(w).sum(axis=tuple(range(1, w.ndim))).max(initial=0)) * m


def _conv2d(node: Node, args: list[np.ndarray], arg_nodes: list[Node]) -> np.ndarray:
    a = node.attrs
    x = args[0]
    p = a.padding
    if p:
        x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    k = a.weight.shape[2]
    win = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::a.stride, ::a.stride]
    n, c, ho, wo = win.shape[:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n, ho, wo, c * k * k)
    w2 = a.weight.reshape(a.weight.shape[0], -1).T
    acc = _matmul_exact(cols, w2, _abs_bound(node, arg_nodes[0], a.weight))
    acc = acc + _as_dtype(a.bias, node.type) if acc.dtype == object else acc + a.bias
    return acc.transpose(0, 3, 1, 2)


def _dense(node: Node, args: list[np.ndarray], arg_nodes: list[Node]) -> np.ndarray:
    a = node.attrs
    acc = _matmul_exact(args[0], a.weight.T, _abs_bound(node, arg_nodes[0], a.weight))
    return acc + (a.bias.astype(object) if acc.dtype == object else a.bias)


def _requant(node: Node, args: list[np.ndarray], arg_nodes: list[Node]) -> np.ndarray:
    a = node.attrs
    v = args[0]
    if v.dtype != object and arg_nodes[0].type.width + max(-a.shift, 1) > INT64_MAX_WIDTH:
        v = v.astype(object)
    if a.shift > 0:
        if a.rounding is Rounding.HALF_UP:
            v = v + (1 << (a.shift - 1))
        v = v >> a.shift
    elif a.shift < 0:
        v = v << (-a.shift)
    if a.overflow is Overflow.SATURATE:
        return np.minimum(np.maximum(v, a.lo), a.hi)
    return a.lo + (v - a.lo) % (a.hi - a.lo + 1)


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
