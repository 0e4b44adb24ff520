"""heatq IR -> an hls4ml layer list with every precision pinned (the ``--target hls4ml`` plan).

:func:`plan` maps an :class:`~heatq.ir.IntGraph` onto the layer dictionaries hls4ml's own
frontends hand to ``ModelGraph.from_layer_list`` (class names, attributes and weight arrays
as the Keras frontend writes them: channels-last, Dense kernels ``[n_in, n_out]``, Conv2D
kernels ``[K, K, C_in, C_out]``) plus a per-layer ``Precision`` configuration that leaves
nothing to hls4ml's defaults.  Every tensor is an ``ap_fixed`` / ``ap_ufixed`` of exactly its
IR node's width; its binary point ``frac`` is the node's own, except where noted below, so a
stored integer ``q`` is the real value ``q * 2**-frac`` that hls4ml computes with.

Exactness, op by op (docs/hls4ml.md has the table):

- ``conv2d`` / ``dense``: ``Conv2D`` / ``Dense`` with weights ``w * 2**-wf`` in
  ``ap_fixed<max(w_bits, 2), .>``, bias at the output's binary point, ``accum_t`` =
  ``result_t`` = the node's type: every product and partial sum lies in the node's range
  (docs/ir.md section 4), so ap_fixed arithmetic never wraps or rounds.  ``wf`` is the IR's
  ``w_frac`` unless the product feeds a ``sign_bits`` (then its binary point is lowered to 0,
  see there).
- ``requant``: a ``linear`` ``Activation`` whose ``result_t`` has the output's width and
  binary point (a cast: ``shift`` is the change of binary point) with rounding ``AP_TRN``
  (FLOOR), ``AP_RND`` (HALF_UP: ties toward +inf) or ``AP_RND_CONV`` (HALF_EVEN) and
  overflow ``AP_SAT`` / ``AP_SAT_SYM`` / ``AP_WRAP``.  ap_fixed saturates and wraps to the
  whole type, so ``lo..hi`` must be the type's full range (or ``-hi..hi`` with SAT_SYM);
  any other range is refused by name.
- ``maxpool2d``: ``MaxPooling2D`` (valid padding = floor mode); ``flatten``: ``Reshape``
  (channels-last order: the next Dense's weight columns are permuted to match); a flatten
  nothing reads is no layer (hls4ml removes a final Reshape): its output is its argument's.
- ``sign_bits``: a ``linear`` cast to ``ap_ufixed<1,1,AP_TRN,AP_SAT>``: exact when the
  argument's binary point is <= 0 (its values are integers, ``x > 0`` iff ``x >= 1``), which
  the producing product's binary point is chosen to be; otherwise refused.
- ``hamming_decode``: a ``Dense`` computing ``-d_k = sum_l (2 c_kl - 1) x_l - sum_l c_kl``
  and a ``Softmax`` with ``implementation: argmax`` (strict ``>``, so the lowest index wins
  ties, as the IR's); its output is the one-hot of the class, which the runner turns into the
  index.
- ``argmax``: a ``Softmax`` with ``implementation: argmax`` on the argument's own precision
  (the same strict ``>`` scan: ties to the lowest index); refused when hls4ml stores the
  vector in another order than the IR (a channels-last flatten), where a tie would resolve
  differently.  Output one-hot, as for ``hamming_decode``.
- ``global_avgpool``: ``GlobalAveragePooling2D``; ``result_t`` is the node's type at binary
  point ``frac + k`` (``H * W = 2**k``: it holds the mean), ``accum_t`` that type ``k`` bits
  wider at the same binary point (it holds the real sum, up to ``2**k`` times the mean).
  ``avg`` sums the ``2**k`` values in ``accum_t`` (every partial sum is the node's integer
  range ``n * lo .. n * hi`` read at ``2**-frac``, so nothing wraps) and divides by ``2**k``
  in ``accum_t``: ap_fixed's ``/`` keeps the dividend's ``frac + k`` fraction bits, which hold
  the quotient exactly; the cast to ``result_t`` drops only high bits that repeat its sign.
- ``add`` of two arguments with shifts 0 stored alike (one binary point, one element order:
  a residual sum from :func:`heatq.ir.residual.aligned_add`): a ``Merge`` ``add`` whose
  ``result_t`` is the node's type: ap_fixed's sum of two fixed-point values is computed in a
  type holding both, then cast to the node's type, which holds it.  Other ADDs (shifts, more
  arguments) are refused.
- ``threshold``, ``cmvm``, ``bit``, ``concat``: no hls4ml layer computes them
  exactly; refused (the check in :class:`~heatq_export.hls4ml_project.Hls4mlEmitter`).

Values cross the C-simulation bridge as ``double``, so a graph output wider than 53 bits (or
an input wider than 53) is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from heatq.ir import IntGraph, IntType, Node, Op, Rounding
from heatq.ir.ops.global_avgpool import pooled_log2
from heatq.ir.requant import requant_plan

from .base import EmitError

SUPPORTED = frozenset({Op.INPUT, Op.CONV2D, Op.DENSE, Op.REQUANT, Op.MAXPOOL2D, Op.FLATTEN,
                       Op.SIGN_BITS, Op.HAMMING_DECODE, Op.ARGMAX, Op.GLOBAL_AVGPOOL, Op.ADD})
DOUBLE_BITS = 53  # the bridge passes values as C doubles: exact up to 53 significant bits
NOTES = {
    "accum": "accum_t = result_t = the node's IR type: every product and partial sum lies in "
             "its range (docs/ir.md section 4), so nothing wraps; hls4ml's default accum_t "
             "(the model precision ap_fixed<16,6>, hls4ml issue 324) would overflow",
    "weight": "ap_fixed<max(w_bits, 2), .> at the weights' binary point: the integers exactly "
              "(1-bit weights are +-1, two bits signed)",
    "requant": "a linear Activation: the cast to result_t is the shift (change of binary point)"
               ", rounding AP_TRN = FLOOR, AP_RND = HALF_UP, AP_RND_CONV = HALF_EVEN, overflow "
               "AP_SAT / AP_SAT_SYM / AP_WRAP onto the whole output type",
    "sign_bits": "a linear Activation to ap_ufixed<1,1,AP_TRN,AP_SAT> of an integer-valued "
                 "argument (its product's binary point is lowered to <= 0)",
    "global_avgpool": "GlobalAveragePooling2D, result_t = the node's type at binary point "
                      "frac + k (H*W = 2**k), accum_t k bits wider at that binary point: the "
                      "sum never wraps and the division by 2**k is exact in its fraction bits",
    "add": "Merge add of two arguments at one binary point (shifts 0), result_t = the node's "
           "type: the exact sum of two ap_fixed values, cast to a type that holds it",
    "hamming_decode": "Dense -d_k = sum (2c-1) x - sum c, then Softmax implementation=argmax "
                      "(first maximum = lowest index on ties); output one-hot",
    "argmax": "Softmax implementation=argmax on the argument's precision (first maximum = "
              "lowest index on ties, in the IR's element order); output one-hot",
    "strategy": "Latency, io_parallel, ReuseFactor 1: dense_latency / conv_2d_latency_cl sum "
                "the products in accum_t, exactly; Resource and io_stream were not checked; the "
                "distributed-arithmetic strategy (da4ml) sizes its own adders from the input "
                "and weight ranges and does not read accum_t",
}
ROUNDING = {Rounding.FLOOR: "AP_TRN", Rounding.HALF_UP: "AP_RND",
            Rounding.HALF_EVEN: "AP_RND_CONV"}


def precision(t: IntType, frac: int, rounding: str = "AP_TRN", overflow: str = "AP_WRAP") -> str:
    """The hls4ml precision string of ``t``'s integers read at binary point ``frac``:
    ``ap_fixed<W, W - frac, Q, O>`` (signed) or ``ap_ufixed<...>`` (unsigned), W = t.width."""
    kind = "ap_fixed" if t.signed else "ap_ufixed"
    return f"{kind}<{t.width},{t.width - frac},{rounding},{overflow}>"


@dataclass
class Tensor:
    """Where an IR node's values live in the hls4ml model: the layer whose output holds them,
    its binary point (hls4ml value = q * 2**-frac), ``perm`` (hls4ml's flat element i is the
    IR's flat element perm[i]: channels-last for [C, H, W]) and ``onehot`` (a class index
    carried as its one-hot vector)."""

    layer: str
    frac: int
    perm: np.ndarray
    onehot: bool = False
    output: str = ""  # the layer that is the model output for it ("" = ``layer``)

    @property
    def output_layer(self) -> str:
        return self.output or self.layer

    def info(self) -> dict[str, Any]:
        return {"layer": self.output_layer, "frac": self.frac, "onehot": self.onehot,
                "channels_last": bool(len(self.perm) and
                                      not np.array_equal(self.perm, np.arange(len(self.perm))))}


@dataclass
class Plan:
    """The layer list, per-layer precisions (``HLSConfig.LayerName``), each IR node's tensor,
    the model outputs (hls4ml layer names, without repeats) and the reasons for each pin."""

    layers: list[dict[str, Any]] = field(default_factory=list)
    precisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    tensors: dict[int, Tensor] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=lambda: dict(NOTES))


def layer_name(node: Node) -> str:
    """A C identifier for ``node``: ``n<id>_<name with non-word characters as _>``."""
    return f"n{node.id}_" + re.sub(r"\W", "_", node.name or node.op.value)


def channels_last(shape: tuple[int, ...]) -> np.ndarray:
    """``perm`` for a tensor of per-sample ``shape``: [C, H, W] is stored H, W, C."""
    idx = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)
    return (idx.transpose(1, 2, 0) if len(shape) == 3 else idx).reshape(-1)


def label(graph: IntGraph, node: Node) -> str:
    """``node.label()``, with its nearest named argument for an unnamed node (so a refusal
    names a layer)."""
    if node.name:
        return node.label()
    cur = node
    while cur.args and not cur.name:
        cur = graph.nodes[cur.args[0]]
    return f"{node.label()} after {cur.label()}"


def _product_frac(graph: IntGraph, node: Node) -> int:
    """The hls4ml binary point of a conv2d / dense: the node's, lowered to <= 0 when a
    ``sign_bits`` reads it (its test ``x > 0`` needs integer values)."""
    users = [n for n in graph.nodes if node.id in n.args]
    if any(u.op is Op.SIGN_BITS for u in users):
        return min(node.type.frac, 0)
    return node.type.frac


def _requant_modes(node: Node, src: Node, where: str) -> tuple[str, str]:
    """(rounding, overflow) of the cast that is ``node``: exact when every clip or wrap the
    REQUANT can need lands on its type's own bounds (ap_fixed saturates / wraps to the whole
    type), i.e. a clipped end is the type's end (or ``-hi`` with AP_SAT_SYM) and a wrap that
    can happen is onto the whole type."""
    a, t = node.attrs, node.type
    rp = requant_plan(a, src.lo, src.hi)
    t_lo, t_hi = (-(1 << (t.width - 1)), (1 << (t.width - 1)) - 1) if t.signed else \
        (0, (1 << t.width) - 1)
    if rp.wrap:
        overflow, ok = "AP_WRAP", not rp.wrap_needed or (a.lo, a.hi) == (t_lo, t_hi)
    else:
        sym = t.signed and rp.clip_lo and a.lo == t_lo + 1
        overflow = "AP_SAT_SYM" if sym else "AP_SAT"
        ok = (not rp.clip_lo or a.lo == t_lo or sym) and (not rp.clip_hi or a.hi == t_hi)
    if not ok:
        raise EmitError(f"hls4ml: requant {where}: {a.overflow.value} onto {a.lo}..{a.hi} "
                        f"is not onto the whole {t.c_style()} (ap_fixed {a.overflow.value}s to "
                        "its type's bounds only)")
    return ROUNDING[a.rounding], overflow


def _weights(node: Node, wt: Tensor) -> np.ndarray:
    """The integer weights in hls4ml's kernel layout, input columns permuted by ``wt.perm``."""
    w = node.attrs.weight
    if node.op is Op.DENSE:
        return w[:, wt.perm].T  # [n_in, n_out], row i = hls4ml input element i
    return w.transpose(2, 3, 1, 0)  # [K, K, C_in, C_out]


def _add_product(p: Plan, graph: IntGraph, node: Node) -> None:
    src = p.tensors[node.args[0]]
    frac = _product_frac(graph, node)
    wf = frac - src.frac
    bits = max(node.attrs.w_bits, 2)
    name = layer_name(node)
    bias = node.attrs.bias
    bt = IntType.for_range(min(int(bias.min()), 0), max(int(bias.max()), 0), frac)
    w = _weights(node, src).astype(np.float64) * 2.0 ** -wf
    layer = {"class_name": "Dense" if node.op is Op.DENSE else "Conv2D", "name": name,
             "inputs": [src.layer], "weight_data": w,
             "bias_data": bias.astype(np.float64) * 2.0 ** -frac, "use_bias": True,
             "data_format": "channels_last"}
    if node.op is Op.DENSE:
        layer.update(n_in=int(w.shape[0]), n_out=int(w.shape[1]))
    else:
        a, (c_in, h, wd) = node.attrs, graph.nodes[node.args[0]].shape
        layer.update(in_height=h, in_width=wd, n_chan=c_in, n_filt=node.shape[0],
                     out_height=node.shape[1], out_width=node.shape[2],
                     filt_height=a.weight.shape[2], filt_width=a.weight.shape[3],
                     stride_height=a.stride, stride_width=a.stride, dilation=1,
                     pad_top=a.padding, pad_bottom=a.padding, pad_left=a.padding,
                     pad_right=a.padding)
    p.layers.append(layer)
    acc = precision(node.type, frac)
    p.precisions[name] = {"weight": precision(IntType(True, bits, 0), wf),
                          "bias": precision(bt, frac), "accum": acc, "result": acc}
    p.tensors[node.id] = Tensor(name, frac, channels_last(node.shape))


def _add_cast(p: Plan, node: Node, frac: int, modes: tuple[str, str], t: IntType) -> None:
    src = p.tensors[node.args[0]]
    name = layer_name(node)
    p.layers.append({"class_name": "Activation", "name": name, "inputs": [src.layer],
                     "activation": "linear"})
    p.precisions[name] = {"result": precision(t, frac, *modes)}
    p.tensors[node.id] = Tensor(name, frac, src.perm)


def _add_pool(p: Plan, graph: IntGraph, node: Node) -> None:
    src = p.tensors[node.args[0]]
    c, h, w = graph.nodes[node.args[0]].shape
    a, name = node.attrs, layer_name(node)
    p.layers.append({"class_name": "MaxPooling2D", "name": name, "inputs": [src.layer],
                     "data_format": "channels_last", "in_height": h, "in_width": w,
                     "n_filt": c, "out_height": node.shape[1], "out_width": node.shape[2],
                     "pool_height": a.kernel, "pool_width": a.kernel, "stride_height": a.stride,
                     "stride_width": a.stride, "pad_top": 0, "pad_bottom": 0, "pad_left": 0,
                     "pad_right": 0})
    t = precision(node.type, src.frac)
    p.precisions[name] = {"result": t, "accum": t}
    p.tensors[node.id] = Tensor(name, src.frac, channels_last(node.shape))


def _add_global_pool(p: Plan, graph: IntGraph, node: Node) -> None:
    """``GlobalAveragePooling2D`` (channels-last input, output ``[C]`` in the IR's order) at
    binary point ``src.frac + k``; accum_t ``k`` bits wider (see the module docstring)."""
    src, shape = p.tensors[node.args[0]], graph.nodes[node.args[0]].shape
    k, name = pooled_log2(shape), layer_name(node)
    frac, t = src.frac + k, node.type
    p.layers.append({"class_name": "GlobalAveragePooling2D", "name": name,
                     "inputs": [src.layer], "data_format": "channels_last", "keepdims": False,
                     "in_height": shape[1], "in_width": shape[2], "n_filt": shape[0]})
    p.precisions[name] = {"result": precision(t, frac),
                          "accum": precision(IntType(t.signed, t.width + k, t.frac), frac)}
    p.tensors[node.id] = Tensor(name, frac, np.arange(shape[0]))


def _add_merge(p: Plan, graph: IntGraph, node: Node) -> None:
    """ADD as a ``Merge`` ``add`` of two arguments stored alike (see the module docstring)."""
    src = [p.tensors[a] for a in node.args]
    alike = {(t.frac, t.perm.tobytes(), t.onehot) for t in src}
    if node.attrs.shifts != (0, 0) or len(alike) != 1 or src[0].onehot:
        raise EmitError(f"hls4ml: add {label(graph, node)} (shifts {node.attrs.shifts}): only "
                        "a sum of two arguments with shifts 0, stored at one binary point in "
                        "one order, maps onto hls4ml's Merge add")
    name = layer_name(node)
    p.layers.append({"class_name": "Merge", "op": "add", "name": name,
                     "inputs": [t.layer for t in src]})
    p.precisions[name] = {"result": precision(node.type, src[0].frac)}
    p.tensors[node.id] = Tensor(name, src[0].frac, src[0].perm)


def _add_hamming(p: Plan, node: Node) -> None:
    src = p.tensors[node.args[0]]
    book = node.attrs.codebook.astype(np.int64)  # [K, L]
    k, n = book.shape
    dist = f"{layer_name(node)}_negdist"
    w = (2 * book - 1)[:, src.perm].T.astype(np.float64)
    p.layers.append({"class_name": "Dense", "name": dist, "inputs": [src.layer],
                     "weight_data": w, "bias_data": -book.sum(axis=1).astype(np.float64),
                     "use_bias": True, "n_in": n, "n_out": k})
    acc = precision(IntType.for_range(-n, n, 0), 0)
    p.precisions[dist] = {"weight": "ap_fixed<2,2>", "bias": precision(IntType.for_range(
        -n, 0, 0), 0), "accum": acc, "result": acc}
    _softmax_argmax(p, node, dist, k)


def _softmax_argmax(p: Plan, node: Node, src_layer: str, k: int) -> None:
    """``Softmax`` (``implementation: argmax``) of ``src_layer``: the one-hot of the first
    maximum, as ``node``'s tensor."""
    name = layer_name(node)
    p.layers.append({"class_name": "Softmax", "name": name, "inputs": [src_layer],
                     "activation": "softmax", "implementation": "argmax", "axis": -1})
    p.precisions[name] = {"result": "ap_ufixed<1,1>"}
    p.tensors[node.id] = Tensor(name, 0, np.arange(k), onehot=True)


def _add_argmax(p: Plan, graph: IntGraph, node: Node) -> None:
    src = p.tensors[node.args[0]]
    k = graph.nodes[node.args[0]].size
    if not np.array_equal(src.perm, np.arange(k)):
        raise EmitError(f"hls4ml: argmax {label(graph, node)}: its argument is stored "
                        "channels-last (a flattened feature map), so ties would go to the "
                        "lowest hls4ml index, not the IR's")
    _softmax_argmax(p, node, src.layer, k)


def _add_input(p: Plan, node: Node) -> None:
    if node.type.width > DOUBLE_BITS:
        raise EmitError(f"hls4ml: input {node.label()} is {node.type.width} bits; the "
                        f"C-simulation bridge passes doubles ({DOUBLE_BITS} bits)")
    name = layer_name(node)
    shape = [node.shape[1], node.shape[2], node.shape[0]] if len(node.shape) == 3 \
        else list(node.shape)
    p.layers.append({"class_name": "InputLayer", "name": name, "input_shape": shape})
    p.precisions[name] = {"result": precision(node.type, node.type.frac)}
    p.tensors[node.id] = Tensor(name, node.type.frac, channels_last(node.shape))


def _add_flatten(p: Plan, graph: IntGraph, node: Node) -> None:
    """A ``Reshape``, in place in io_parallel (the argument's array, precision and modes);
    none when nothing reads it (hls4ml removes a final Reshape).  hls4ml cannot make an
    in-place Reshape a model output (``inplace_parallel_reshape`` asserts), so as an output
    it is its argument's array."""
    src = p.tensors[node.args[0]]
    if not any(node.id in n.args for n in graph.nodes):
        p.tensors[node.id] = src
        return
    name = layer_name(node)
    p.layers.append({"class_name": "Reshape", "name": name, "inputs": [src.layer],
                     "target_shape": [node.size]})
    p.precisions[name] = {"result": p.precisions[src.layer]["result"]}
    p.tensors[node.id] = Tensor(name, src.frac, src.perm, output=src.output_layer)


def plan(graph: IntGraph) -> Plan:
    """The hls4ml layer list and precisions for ``graph``; :class:`EmitError` naming the node
    for anything hls4ml cannot compute exactly."""
    p = Plan()
    for node in graph.nodes:
        if node.op not in SUPPORTED:
            raise EmitError(f"hls4ml: op {node.op.value} ({label(graph, node)}) has no exact "
                            "hls4ml layer")
        if node.op is Op.INPUT:
            _add_input(p, node)
        elif node.op in (Op.CONV2D, Op.DENSE):
            _add_product(p, graph, node)
        elif node.op is Op.REQUANT:
            frac = p.tensors[node.args[0]].frac - node.attrs.shift
            modes = _requant_modes(node, graph.nodes[node.args[0]], label(graph, node))
            _add_cast(p, node, frac, modes, node.type)
        elif node.op is Op.SIGN_BITS:
            src = graph.nodes[node.args[0]]
            if p.tensors[src.id].frac > 0:
                raise EmitError(f"hls4ml: sign_bits {node.label()}: its argument {src.label()} "
                                "has fraction bits (x > 0 needs a ceiling cast ap_fixed lacks)")
            _add_cast(p, node, 0, ("AP_TRN", "AP_SAT"), IntType(False, 1, 0))
        elif node.op is Op.MAXPOOL2D:
            _add_pool(p, graph, node)
        elif node.op is Op.FLATTEN:
            _add_flatten(p, graph, node)
        elif node.op is Op.ARGMAX:
            _add_argmax(p, graph, node)
        elif node.op is Op.GLOBAL_AVGPOOL:
            _add_global_pool(p, graph, node)
        elif node.op is Op.ADD:
            _add_merge(p, graph, node)
        else:
            _add_hamming(p, node)
    for o in graph.outputs:
        node = graph.nodes[o]
        if node.op is Op.INPUT:
            raise EmitError(f"hls4ml: the input {node.label()} is a graph output")
        if node.type.width > DOUBLE_BITS:
            raise EmitError(f"hls4ml: output {label(graph, node)} is {node.type.width} bits; "
                            f"the C-simulation bridge returns doubles ({DOUBLE_BITS} bits)")
        if p.tensors[o].output_layer not in p.outputs:
            p.outputs.append(p.tensors[o].output_layer)
    return p
