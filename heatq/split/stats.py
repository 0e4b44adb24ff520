"""Per-layer cost of a split: what each original product (DENSE / CONV2D) of the base graph
became in the split graph, before and after.

The nodes of an original layer ``L`` in a graph are found from ``meta["regroup"][L]`` (the
nodes whose shifted sum is ``L``; ``[[L, 0]]`` when absent): from each, back through ADD
nodes (and the exact halving REQUANT of a scale-2 weight split), down to the products.
Figures (Python ints):

- ``products``: how many DENSE / CONV2D nodes compute the layer;
- ``fan_in``: inputs summed per output value, over all its products (``C_in*K*K`` or
  ``n_in`` each; a thermometer split of a 4-bit input multiplies it by 15);
- ``weights`` / ``weight_bits``: weight count and ``sum(count * w_bits)`` of those products;
- ``adders`` / ``adder_bits`` (None without lowering): the two-operand adders (and their total
  width) of one output vector (one pixel of a conv) in :func:`heatq.passes.lower.lower_products`'
  adder graphs of the layer's products, of the pointwise CMVM in front of a REQUANT reading one
  of the layer's nodes (the rounding constant the split could not fold into a product), and of
  the recombination: an ADD of ``m`` arguments costs ``(m - 1) * C`` adders of its output width
  per vector (C its first dimension).  Each product is lowered on its own (the same adder
  graph as in the whole lowered graph), so a long lowering shows which product it is at;
- ``luts`` (None without lowering): a model of the 7-series LUT + CARRY4 cells of those
  adders, the metric ``heatq-export --estimate`` measures with yosys (``lut_carry``), see
  :func:`adder_luts`; plus one LUT per threshold comparator of a thermometer unit feeding the
  layer (``[a >= k]`` of a b-bit activation: ``ceil(b / 6)`` LUTs per channel and unit;
  bit-plane units are wires).
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from ..ir import GraphBuilder, InputAttrs, IntGraph, Node, Op
from ..ir.adders import AdderGraph
from ..passes.lower import lower_products
from ..progress import activity
from .options import PRODUCTS

FIGURES = ("products", "fan_in", "weights", "weight_bits", "adders", "adder_bits", "luts")


def _logic_add() -> int:
    from heatq_export.verilog_layers import LOGIC_ADD  # the Verilog target's gate threshold

    return LOGIC_ADD


def adder_luts(ag: AdderGraph) -> int:
    """LUT + CARRY4 cells of adder graph ``ag`` as the Verilog target builds it
    (combinational, :mod:`heatq_export.rtl.adders`; yosys ``synth_xilinx``'s ``lut_carry``),
    modelled per adder from its ``L = ad.carry`` added bits (its width less the low bits
    wired past from one operand; ranges are exact, so the width is the adder's own):

    - ``L > LOGIC_ADD`` (3): a carry chain, ``L - 1`` LUTs (one per sum bit, the propagate
      XOR; the top bit is the chain's carry out) + ``ceil((L - 1) / 4)`` CARRY4;
    - ``1 <= L <= 3``: ripple gates, ``max(L - 1, 1)`` LUTs, no carry cell (sum bit i reads
      at most ``2 (i + 1) <= 6`` operand bits; yosys merges the gates of adder trees over
      1-bit inputs with their neighbours about as much as the top bit costs);
    - ``L = 0``: wires.

    A shared subexpression counts once.  Against yosys on the heated demo CNN's layer
    modules and on {-1,+1} parts (docs/splitting.md): -8.2 % .. +2.5 %."""
    gate = _logic_add()
    return sum(adder_cells(ad.carry, gate) for ad in ag.adders)


def adder_cells(bits: int, gate: int | None = None) -> int:
    """LUT + CARRY4 cells of one adder of ``bits`` added bits (:func:`adder_luts`)."""
    if bits <= 0:
        return 0
    gate = _logic_add() if gate is None else gate
    return max(bits - 1, 1) + (0 if bits <= gate else -(-(bits - 1) // 4))


def layer_nodes(graph: IntGraph, name: str) -> tuple[list[Node], list[Node]]:
    """(products, recombination nodes) that compute original layer ``name`` in ``graph``:
    back from its regroup nodes and the node named ``name`` through ADDs, and through a
    REQUANT of an ADD (the exact halving of a scale-2 weight split), down to the products."""
    parts = (graph.meta.get("regroup") or {}).get(name, [[name, 0]])
    prods: dict[int, Node] = {}
    via: dict[int, Node] = {}
    # from the node carrying the name too: after an activation split and a scale-2 weight
    # split the regroup entries are the halving REQUANTs, below the ADD that sums them
    stack = [graph.by_name(p) for p, _ in parts]
    if name in {n.name for n in graph.named()}:
        stack.append(graph.by_name(name))
    while stack:
        n = stack.pop()
        if n.op in PRODUCTS:
            prods[n.id] = n
        elif n.id not in via and (n.op is Op.ADD or (
                n.op is Op.REQUANT and graph.nodes[n.args[0]].op is Op.ADD)):
            via[n.id] = n
            stack.extend(graph.nodes[a] for a in n.args)
    return sorted(prods.values(), key=lambda n: n.id), sorted(via.values(), key=lambda n: n.id)


def _consumers(graph: IntGraph) -> dict[int, list[Node]]:
    users: dict[int, list[Node]] = {n.id: [] for n in graph.nodes}
    for n in graph.nodes:
        for a in n.args:
            users[a].append(n)
    return users


def _alone(graph: IntGraph, node: Node, fused: Node | None) -> IntGraph:
    """``node`` (a product or a REQUANT) on an INPUT of its argument's shape, range and
    binary point, followed by ``fused`` (its REQUANT) when given: lowering it gives the same
    CMVM as lowering the whole graph (that depends only on the weights, the argument's range
    and the folded rounding constant)."""
    arg = graph.nodes[node.args[0]]
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs(arg.shape, arg.lo, arg.hi, arg.type.frac), [], "input")
    y = b.add(node.op, node.attrs, [x], node.name)
    if fused is not None:
        y = b.add(Op.REQUANT, fused.attrs, [y], fused.name)
    return b.build([y])


def _digest(v) -> object:
    if isinstance(v, np.ndarray):
        return (v.shape, str(v.dtype), hashlib.sha1(np.ascontiguousarray(v).tobytes()).hexdigest())
    if isinstance(v, (tuple, list)):
        return tuple(_digest(x) for x in v)
    return repr(v)


def lowering_key(graph: IntGraph, node: Node, fused: Node | None) -> tuple:
    """What the CMVM of :func:`_alone` depends on: the op and attrs of ``node`` (weights and
    bias by content), its argument's shape, range and binary point, ``fused``'s attrs.  Equal
    keys give equal adder graphs (the thermometer units of one activation all feed products
    with the same weights and a 0..1 argument, so they are lowered once)."""
    arg = graph.nodes[node.args[0]]
    attrs = tuple((f.name, _digest(getattr(node.attrs, f.name)))
                  for f in dataclasses.fields(node.attrs))
    req = None if fused is None else repr(fused.attrs)
    return (node.op.value, attrs, arg.shape, int(arg.lo), int(arg.hi), arg.type.frac, req)


def adder_costs(graph: IntGraph, act=None, cache: dict | None = None
                ) -> dict[int, tuple[int, int, int]]:
    """``{node id: (adders, adder bits, luts)}`` of one output vector: for every product of
    ``graph``, its CMVM's, and for every node read by a REQUANT that
    :func:`lower_products` gives a pointwise CMVM (one not fused with the product it reads),
    that CMVM's.  Each is lowered alone (:func:`_alone`), so ``act`` (a
    :class:`heatq.progress.Activity`) can show how far it is; ``cache`` (a dict kept by the
    caller, keyed by :func:`lowering_key`) lowers each distinct product once."""
    users, outs = _consumers(graph), set(graph.outputs)
    cache = {} if cache is None else cache
    todo = []
    for n in graph.nodes:
        if n.op in PRODUCTS:
            c = users[n.id]
            fused = c[0] if len(c) == 1 and c[0].op is Op.REQUANT and n.id not in outs else None
            todo.append((n.id, n, fused))
        elif n.op is Op.REQUANT:
            arg = graph.nodes[n.args[0]]
            if not (arg.op in PRODUCTS and len(users[arg.id]) == 1 and arg.id not in outs):
                todo.append((arg.id, n, None))
    cost: dict[int, tuple[int, int, int]] = {}
    for i, (key, node, fused) in enumerate(todo):
        if act is not None:
            act.note(f"{i + 1}/{len(todo)} {node.name or node.label()}")
        ck = lowering_key(graph, node, fused)
        if ck not in cache:
            cmvm = next(m for m in lower_products(_alone(graph, node, fused)).nodes
                        if m.op is Op.CMVM)
            s = cmvm.attrs.graph.stats()
            cache[ck] = (s["adders"], s["adder_bits"], adder_luts(cmvm.attrs.graph))
        cost[key] = tuple(a + b for a, b in zip(cost.get(key, (0, 0, 0)), cache[ck]))
    return cost


def _unit_luts(graph: IntGraph, prods: list[Node]) -> int:
    """LUTs of the threshold comparators making the thermometer units ``prods`` read: per
    THRESHOLD node, ``C * T * ceil(b / 6)`` (C channels, T thresholds, b-bit argument)."""
    units = {graph.nodes[p.args[0]].id for p in prods
             if graph.nodes[p.args[0]].op is Op.THRESHOLD}
    total = 0
    for i in units:
        n = graph.nodes[i]
        c, t = n.attrs.thresholds.shape
        total += c * t * -(-graph.nodes[n.args[0]].type.width // 6)
    return total


def layer_figures(graph: IntGraph, name: str,
                  costs: dict[int, tuple[int, int, int]] | None) -> dict[str, int | None]:
    """The figures of the module docstring for original layer ``name`` of ``graph``."""
    prods, via = layer_nodes(graph, name)
    fig: dict[str, int | None] = {
        "products": len(prods),
        "fan_in": sum(int(p.attrs.weight[0].size) for p in prods),
        "weights": sum(int(p.attrs.weight.size) for p in prods),
        "weight_bits": sum(int(p.attrs.weight.size) * p.attrs.w_bits for p in prods),
        "adders": None, "adder_bits": None, "luts": None,
    }
    if costs is not None:
        adders = bits = luts = 0
        for n in [*prods, *via]:
            a, b, c = costs.get(n.id, (0, 0, 0))
            adders, bits, luts = adders + a, bits + b, luts + c
        for n in via:
            if n.op is not Op.ADD:
                continue
            m, w = (len(n.args) - 1) * n.shape[0], n.type.width
            adders, bits, luts = adders + m, bits + m * w, luts + m * adder_cells(w)
        fig.update(adders=adders, adder_bits=bits, luts=luts + _unit_luts(graph, prods))
    return fig


def split_figures(base: IntGraph, split: IntGraph, adders: bool = True,
                  progress: bool = True, cache: dict | None = None) -> dict[str, dict]:
    """``{layer: {"before": figures, "after": figures}}`` for every product of ``base``;
    ``adders``: lower both graphs to adder graphs (minutes for a binarized CNN; distinct
    products once, ``cache`` as in :func:`adder_costs`)."""
    costs_b = costs_s = None
    cache = {} if cache is None else cache
    if adders:
        with activity("lowering the base network to adder graphs", progress) as act:
            costs_b = adder_costs(base, act, cache)
        with activity("lowering the split network to adder graphs", progress) as act:
            costs_s = adder_costs(split, act, cache)
    return {n.name: {"before": layer_figures(base, n.name, costs_b),
                     "after": layer_figures(split, n.name, costs_s)}
            for n in base.nodes if n.op in PRODUCTS}


def totals(layers: dict[str, dict]) -> dict[str, dict]:
    """Sums of every figure over the layers (None stays None)."""
    out = {}
    for side in ("before", "after"):
        out[side] = {f: (None if any(v[side][f] is None for v in layers.values())
                         else sum(v[side][f] for v in layers.values())) for f in FIGURES}
    return out


def bit_listing(graph: IntGraph) -> tuple[dict[str, int], dict[str, int]]:
    """The seed's listing of a graph: ``({product: w_bits}, {product input: bits})``, the
    inputs' widths as unsigned ``hi.bit_length()`` (1 for a binary unit)."""
    weights, acts = {}, {}
    for n in graph.nodes:
        if n.op in PRODUCTS:
            weights[n.name or n.label()] = n.attrs.w_bits
            arg = graph.nodes[n.args[0]]
            acts.setdefault(arg.name or arg.label(), max(int(arg.hi), 1).bit_length())
    return weights, acts


def binarization(graph: IntGraph) -> dict[str, int]:
    """How far ``graph`` is binary: its products, and how many of them have weights in
    {-1,+1} (``w_bits`` 1), in {-1,0,1} (at most 2 bits), and only 0/1 inputs."""
    prods = [n for n in graph.nodes if n.op in PRODUCTS]
    ins = [graph.nodes[n.args[0]] for n in prods]
    return {"products": len(prods),
            "binary_weights": sum(n.attrs.w_bits == 1 for n in prods),
            "ternary_weights": sum(n.attrs.w_bits <= 2 for n in prods),
            "binary_inputs": sum(0 <= a.lo and a.hi <= 1 for a in ins)}
