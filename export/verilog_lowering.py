"""The lowered graph the Verilog emitter reads: ``heatq.passes.lower.lower_products``.

Every DENSE / CONV2D becomes a CMVM node; in the result every REQUANT's argument is a CMVM
whose only consumer it is (the REQUANT's rounding constant folded into it).
"""

from __future__ import annotations

from heatq.ir import IntGraph


def lower(graph: IntGraph, max_carry: int | None, cse: bool) -> IntGraph:
    """``lower_products(graph, max_carry, cse)``."""
    try:
        from heatq.passes.lower import lower_products
    except ImportError:  # until heatq.passes lands: the same graph from heatq.lower
        return _from_lower_graph(graph, max_carry, cse)
    return lower_products(graph, max_carry=max_carry, cse=cse)


def _from_lower_graph(graph: IntGraph, max_carry, cse) -> IntGraph:
    from dataclasses import replace

    import numpy as np

    from heatq.ir import CmvmAttrs, GraphBuilder, Op, Rounding
    from heatq.lower import lower_cmvm, lower_graph

    lg = lower_graph(graph, max_carry=max_carry, cse=cse)
    b = GraphBuilder()
    new: dict[int, int] = {}
    fused = {p.requant for p in lg.plans if p.requant is not None and p.node != p.requant}
    for n in graph.nodes:
        args = [new[a] for a in n.args]
        if n.op in (Op.DENSE, Op.CONV2D):
            p = lg.plan(n.id)
            conv = n.op is Op.CONV2D
            at = CmvmAttrs(p.cmvm, "conv2d" if conv else "dense",
                           n.attrs.weight.shape[2] if conv else 1,
                           n.attrs.padding if conv else 0, n.attrs.w_frac)
            new[n.id] = b.add(Op.CMVM, at, args, n.name + (".rounded" if p.round_const else ""))
            if p.requant is not None:
                rq = graph.nodes[p.requant]
                new[rq.id] = b.add(Op.REQUANT, replace(rq.attrs, rounding=Rounding.FLOOR),
                                   [new[n.id]], rq.name)
        elif n.op is Op.REQUANT and n.id not in fused:
            p = lg.plan(n.id)
            arg = graph.nodes[n.args[0]]
            size = arg.shape[0]
            cm = p.cmvm if p is not None else lower_cmvm(
                np.eye(size, dtype=np.int64), [(arg.lo, arg.hi)] * size, max_carry=max_carry)
            pre = b.add(Op.CMVM, CmvmAttrs(cm, "pointwise"), args, n.name + ".pre")
            new[n.id] = b.add(Op.REQUANT, replace(n.attrs, rounding=Rounding.FLOOR), [pre],
                              n.name)
        elif n.op is not Op.REQUANT:
            new[n.id] = b.add(n.op, n.attrs, args, n.name)
    return b.build([new[o] for o in graph.outputs], graph.meta)
