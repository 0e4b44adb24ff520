"""CMVM: a constant matrix-vector product computed by its adder graph
(:class:`~heatq.ir.adders.AdderGraph`), the lowered form of DENSE and CONV2D.

``layout`` says which vectors of the argument the adder graph sees:

- ``"dense"``: arg [n_in] -> [n_out];
- ``"conv2d"``: arg [C_in, H, W], stride ``stride``, zero padding ``padding``; at each output
  position the ``kernel`` x ``kernel`` window in ``(c_in, ky, kx)`` order is the input ->
  [n_out, Ho, Wo] (``Ho = (H + 2 padding - kernel) // stride + 1``, as CONV2D);
- ``"pointwise"``: arg [C, H, W] -> per pixel the C channel values -> [n_out, H, W], or arg [n]
  -> [n_out].

The output range is that of the adder graph's outputs; the binary point is the argument's
plus ``w_frac``.  The rule checks that every adder-graph input range contains the argument's
range (and 0 when padded), so the adder graph's exact ranges hold for every input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..adders import AdderGraph
from ..errors import IRError
from . import Op
from .base import Arg, OpSpec, Range, Shape
from .conv2d import window_columns

LAYOUTS = ("dense", "conv2d", "pointwise")


@dataclass(frozen=True, eq=False)
class CmvmAttrs:
    """``graph``: the adder graph (n_in inputs, n_out outputs); ``layout``: one of
    ``LAYOUTS``; ``kernel`` / ``padding`` / ``stride``: the window of the "conv2d" layout
    (1 / 0 / 1 otherwise); ``w_frac``: binary point of the constant matrix."""

    graph: AdderGraph
    layout: str
    kernel: int = 1
    padding: int = 0
    w_frac: int = 0
    stride: int = 1


def _out_shape(a: CmvmAttrs, x: Shape) -> Shape:
    n_in, n_out = a.graph.n_in, len(a.graph.outputs)
    if a.layout == "conv2d":
        if len(x) != 3:
            raise IRError(f"cmvm conv2d expects a [C, H, W] input, got shape {x}")
        k, p = a.kernel, a.padding
        if x[0] * k * k != n_in:
            raise IRError(f"cmvm conv2d: {x[0]} channels x {k}x{k} window = {x[0] * k * k} "
                          f"values, but the adder graph has {n_in} inputs")
        s = a.stride
        ho, wo = (x[1] + 2 * p - k) // s + 1, (x[2] + 2 * p - k) // s + 1
        if ho < 1 or wo < 1:
            raise IRError(f"cmvm conv2d kernel {k} does not fit input {x[1]}x{x[2]}")
        return (n_out, ho, wo)
    if a.kernel != 1 or a.padding != 0 or a.stride != 1:
        raise IRError(f"cmvm {a.layout}: kernel {a.kernel} / padding {a.padding} / stride "
                      f"{a.stride} must be 1 / 0 / 1")
    if a.layout == "dense" and len(x) != 1:
        raise IRError(f"cmvm dense expects a flat input, got shape {x}")
    if len(x) not in (1, 3):
        raise IRError(f"cmvm pointwise expects a [C, H, W] or [n] input, got shape {x}")
    if x[0] != n_in:
        raise IRError(f"cmvm {a.layout}: the input has {x[0]} values per vector, the adder "
                      f"graph {n_in} inputs")
    return (n_out,) + tuple(x[1:])


def _shape(a: CmvmAttrs, args: list[Arg]) -> Shape:
    if not isinstance(a.graph, AdderGraph):
        raise IRError(f"cmvm graph must be an AdderGraph, got {type(a.graph).__name__}")
    if a.layout not in LAYOUTS:
        raise IRError(f"cmvm layout {a.layout!r} is not one of {', '.join(LAYOUTS)}")
    if a.kernel < 1 or a.padding < 0 or a.stride < 1:
        raise IRError(f"cmvm kernel {a.kernel} / padding {a.padding} / stride {a.stride} "
                      "invalid")
    if not a.graph.outputs:
        raise IRError("cmvm adder graph has no outputs")
    shape = _out_shape(a, args[0].shape)
    lo, hi = args[0].lo, args[0].hi
    if a.padding:
        lo, hi = min(lo, 0), max(hi, 0)
    for i, inp in enumerate(a.graph.inputs):
        if not (inp.lo <= lo and hi <= inp.hi):
            raise IRError(f"cmvm adder-graph input {i} covers {inp.lo}..{inp.hi}, but the "
                          f"argument{' (zero-padded)' if a.padding else ''} spans {lo}..{hi}")
    return shape


def _range(a: CmvmAttrs, args: list[Arg]) -> Range:
    return min(o.lo for o in a.graph.outputs), max(o.hi for o in a.graph.outputs)


def _evaluate(node, args: list[np.ndarray], arg_nodes) -> np.ndarray:
    a, x = node.attrs, args[0]
    if x.ndim == 2:  # dense, or pointwise over a vector: one product per sample
        return a.graph.evaluate(x, check=False)
    cols = window_columns(x, a.kernel, a.padding, a.stride)  # [N, Ho, Wo, n_in]
    n, ho, wo, n_in = cols.shape
    y = a.graph.evaluate(cols.reshape(n * ho * wo, n_in), check=False)
    return y.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)


SPEC = OpSpec(Op.CMVM, CmvmAttrs, 1, _shape, _range,
              lambda a, args: args[0].frac + a.w_frac, _evaluate, "cmvm")
