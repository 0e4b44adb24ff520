"""Residual sums: :func:`aligned_add`, the one way a graph adds values at different binary
points (a ResNet block's main path and its shortcut), used by the torch converter
(:mod:`heatq.qnet_ir`) and the conformance corpus alike.

``ADD`` (docs/ir.md §5.11) needs every argument at one binary point.  An argument at a
coarser point ``f < F`` (``F`` the finest of them) first goes through ``<name>.align<i>``, a
``REQUANT`` with ``shift = -(F - f)``: an exact left shift whose bounds are the shifted
argument's own range (``lo << k .. hi << k``), so it never rounds or clips and only moves
the binary point.  Then one ``ADD`` with shifts 0 named ``name``: its range is the exact sum
of the aligned ranges, so its type holds every value (no target can overflow it).
"""

from __future__ import annotations

from .graph import GraphBuilder
from .ops import AddAttrs, Op, RequantAttrs
from .types import Overflow, Rounding

ALIGN = "align"


def align_node(b: GraphBuilder, arg: int, frac: int, name: str) -> int:
    """``arg`` at binary point ``frac`` (>= its own): itself when equal, else the exact left
    shift ``<name>`` (REQUANT, shift ``-(frac - arg frac)``, FLOOR, SATURATE onto its exact
    range)."""
    node = b.nodes[arg]
    k = frac - node.type.frac
    if k < 0:
        raise ValueError(f"{name}: cannot align frac {node.type.frac} down to {frac} exactly")
    if k == 0:
        return arg
    attrs = RequantAttrs(-k, node.lo << k, node.hi << k, Rounding.FLOOR, Overflow.SATURATE)
    return b.add(Op.REQUANT, attrs, [arg], name)


def aligned_add(b: GraphBuilder, args: list[int], name: str) -> int:
    """The exact sum of ``args`` (same shape, any binary points) at the finest of their
    binary points: the coarser ones through :func:`align_node` (``<name>.align<i>``, ``i`` the
    argument's position), then ``ADD`` (shifts 0) named ``name``.  Returns the ADD's id."""
    frac = max(b.nodes[a].type.frac for a in args)
    aligned = [align_node(b, a, frac, f"{name}.{ALIGN}{i}") for i, a in enumerate(args)]
    return b.add(Op.ADD, AddAttrs((0,) * len(aligned)), aligned, name)
