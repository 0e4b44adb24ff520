"""The shape ops of a QONNX import (:mod:`heatq.interop.onnx_import`): ``MaxPool`` ->
``MAXPOOL2D``, ``Flatten`` / a ``Reshape`` to ``[1, n]`` (batch 1 baked in) -> ``FLATTEN``
(nothing when the tensor is already a vector), a ``Reshape`` to the same per-sample shape ->
nothing.  Each handler takes the importer and the ONNX node."""

from __future__ import annotations

import numpy as np

from ..ir import FlattenAttrs, MaxPool2dAttrs, Op
from .qonnx_model import attrs_of, refuse


def maxpool(imp, node) -> None:
    a = attrs_of(node)
    k, s = a.get("kernel_shape", []), a.get("strides", [1, 1])
    ok = (len(k) == 2 and k[0] == k[1] and len(set(s)) == 1
          and all(p == 0 for p in a.get("pads", [0, 0, 0, 0]))
          and all(d == 1 for d in a.get("dilations", [1, 1]))
          and not a.get("ceil_mode", 0) and a.get("auto_pad", "NOTSET") == "NOTSET"
          and (len(node.output) == 1 or not node.output[1]))
    if not ok:
        raise refuse(imp.label, node, "only square kernels, one stride, no padding, floor mode "
                                      "and no indices output are supported")
    x = imp.value(node.input[0], node)
    imp.add(Op.MAXPOOL2D, MaxPool2dAttrs(int(k[0]), int(s[0])), [x], node, node.output[0])


def _flatten_to(imp, node, x: int) -> None:
    if len(imp.b.nodes[x].shape) == 1:
        imp.acts[node.output[0]] = imp.acts_of(x)
    else:
        imp.add(Op.FLATTEN, FlattenAttrs(), [x], node, node.output[0])


def flatten(imp, node) -> None:
    if attrs_of(node).get("axis", 1) != 1:
        raise refuse(imp.label, node, "only axis 1 (keep the batch) is supported")
    _flatten_to(imp, node, imp.value(node.input[0], node))


def reshape(imp, node) -> None:
    target = imp.m.get_initializer(node.input[1]) if len(node.input) > 1 else None
    x = imp.value(node.input[0], node)
    shape = imp.b.nodes[x].shape
    if target is None:
        raise refuse(imp.label, node, "the target shape is not a constant")
    t = [int(v) for v in np.ravel(target)]
    n = int(np.prod(shape))
    if t[:1] in ([1], [-1]) and t[1:] in ([n], [-1]):
        return _flatten_to(imp, node, x)
    if t[:1] in ([1], [-1]) and tuple(t[1:]) == tuple(shape):
        imp.acts[node.output[0]] = imp.acts_of(x)
        return None
    raise refuse(imp.label, node, f"reshape of {list(shape)} to {t} is not a flatten "
                                  "(batch 1)")
