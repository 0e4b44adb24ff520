"""``IntGraph``: an immutable, topologically ordered list of integer nodes.

Every node carries its per-sample ``shape``, its exact integer range ``lo..hi`` and the
``IntType`` derived from that range and its binary point.  Widths are decided here, once, by
the op specs (:mod:`heatq.ir.ops`); passes and emitters read ``node.type`` and never compute a width.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from .errors import IRError
from .ops import SPECS, Arg, Op
from .types import IntType


@dataclass(frozen=True, eq=False)
class Node:
    """One operation.  ``args`` are ids of earlier nodes; ``name`` is the layer name that
    ``heatq check`` and the reports use (unique within a graph, may be empty)."""

    id: int
    op: Op
    attrs: Any
    args: tuple[int, ...]
    shape: tuple[int, ...]
    lo: int
    hi: int
    type: IntType
    name: str = ""

    @property
    def size(self) -> int:
        """Number of elements per sample."""
        n = 1
        for s in self.shape:
            n *= s
        return n

    def label(self) -> str:
        """``'name'`` or ``'node N'``, for messages."""
        return f"node {self.id} ({self.name})" if self.name else f"node {self.id}"


@dataclass(frozen=True, eq=False)
class IntGraph:
    """Nodes in topological order (``nodes[i].id == i``), the ids of the outputs, and free-form
    JSON-serialisable metadata (input and output codes, layer bit widths, provenance)."""

    nodes: tuple[Node, ...]
    outputs: tuple[int, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    @property
    def inputs(self) -> list[Node]:
        return [n for n in self.nodes if n.op is Op.INPUT]

    def by_name(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def consumers(self) -> dict[int, list[int]]:
        """Node id -> the ids of the nodes that read it (once per argument, in order)."""
        out: dict[int, list[int]] = {n.id: [] for n in self.nodes}
        for n in self.nodes:
            for a in n.args:
                out[a].append(n.id)
        return out

    def named(self) -> list[Node]:
        """Nodes that have a layer name, in order."""
        return [n for n in self.nodes if n.name]

    def verify(self) -> None:
        """Check the whole contract: order, arity, attribute classes, unique names, and that
        every stored shape, range and type equals what the rules derive.  Raises IRError."""
        rebuilt = GraphBuilder()
        names: set[str] = set()
        for i, n in enumerate(self.nodes):
            if n.id != i:
                raise IRError(f"{n.label()} is at position {i}: nodes must be numbered in order")
            if n.name and n.name in names:
                raise IRError(f"layer name {n.name!r} is used twice")
            names.add(n.name)
            if any(a < 0 or a >= i for a in n.args):
                raise IRError(f"{n.label()} uses an argument that is not an earlier node: {n.args}")
            ref = rebuilt.add(n.op, n.attrs, n.args, n.name)
            r = rebuilt.nodes[ref]
            for what in ("shape", "lo", "hi", "type"):
                if getattr(r, what) != getattr(n, what):
                    raise IRError(f"{n.label()}: stored {what} {getattr(n, what)} but the rules "
                                  f"give {getattr(r, what)}")
        if not self.outputs:
            raise IRError("graph has no outputs")
        for o in self.outputs:
            if not 0 <= o < len(self.nodes):
                raise IRError(f"output id {o} is not a node")
        if len(self.inputs) != 1 or self.nodes[0].op is not Op.INPUT:
            raise IRError("graph must have exactly one INPUT node, first")


class GraphBuilder:
    """Appends nodes, deriving each node's shape, range and type from the rules."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def add(self, op: Op, attrs: Any, args: Iterable[int] = (), name: str = "") -> int:
        """Append one node and return its id.  Raises IRError on a contract violation."""
        args = tuple(int(a) for a in args)
        rule = SPECS[op]
        where = f"{op.value} {name!r}" if name else op.value
        if not isinstance(attrs, rule.attrs_cls):
            raise IRError(f"{where}: attributes must be {rule.attrs_cls.__name__}")
        n_args = rule.n_args_for(attrs)
        if len(args) != n_args:
            raise IRError(f"{where}: expects {n_args} argument(s), got {len(args)}")
        if any(a < 0 or a >= len(self.nodes) for a in args):
            raise IRError(f"{where}: argument ids {args} are not earlier nodes")
        arg_info = [Arg(self.nodes[a].shape, self.nodes[a].lo, self.nodes[a].hi,
                        self.nodes[a].type.frac) for a in args]
        try:
            shape = tuple(int(s) for s in rule.shape(attrs, arg_info))
            lo, hi = (int(v) for v in rule.range(attrs, arg_info))
            frac = int(rule.frac(attrs, arg_info))
        except IRError as e:
            raise IRError(f"{where}: {e}") from None
        node = Node(len(self.nodes), op, attrs, args, shape, lo, hi,
                    IntType.for_range(lo, hi, frac), name)
        self.nodes.append(node)
        return node.id

    def build(self, outputs: Iterable[int], meta: Mapping[str, Any] | None = None) -> IntGraph:
        graph = IntGraph(tuple(self.nodes), tuple(int(o) for o in outputs), meta or {})
        graph.verify()
        return graph
