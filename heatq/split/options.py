"""``heatq split`` options: parsed and checked against the run's graph before any work.

Every mistake is a :class:`heatq.errors.UserError` with one line: an unknown ``--weights`` /
``--acts`` kind, ``balanced:K`` without an integer K >= 2, ``--to`` that is neither
``binary``, ``ternary`` nor a bit count >= 1, a ``--layers`` name that is not a product
(DENSE / CONV2D) of the graph, nothing to split, and a run that is not quantized (a selected
layer with weights wider than 16 bits, or, when splitting activations, a signed or wider than
16-bit input).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from ..ir import IntGraph, Node, Op

WEIGHT_KINDS = ("bitplane", "csd", "balanced")
ACT_KINDS = ("thermometer", "bitplane")
PRODUCTS = (Op.DENSE, Op.CONV2D)
MAX_BITS = 16  # widest signed weight / unsigned activation a split accepts


@dataclass(frozen=True)
class SplitOptions:
    """What to split.  ``weights``: a weight split kind or None; ``k``: the copies of
    ``balanced:K`` (None: from ``to``); ``acts``: an activation split kind or None; ``to``:
    ``"binary"`` (1-bit weights, {-1,+1}), ``"ternary"`` ({-1,0,1}, 2-bit) or a signed weight
    width >= 3; ``layers``: product names, or None for every product."""

    weights: str | None
    k: int | None
    acts: str | None
    to: str | int
    layers: tuple[str, ...] | None

    @property
    def target_bits(self) -> int:
        """Signed weight width the weight split aims at (binary 1, ternary 2)."""
        return {"binary": 1, "ternary": 2}.get(self.to, self.to)  # type: ignore[arg-type]

    def to_json(self) -> dict:
        return {"weights": self.weights, "k": self.k, "acts": self.acts, "to": self.to,
                "layers": list(self.layers) if self.layers is not None else None}


def parse_weights(text: str | None) -> tuple[str | None, int | None]:
    """``bitplane`` | ``csd`` | ``balanced`` | ``balanced:K`` -> (kind, K or None)."""
    if text is None:
        return None, None
    kind, sep, arg = text.partition(":")
    if kind not in WEIGHT_KINDS or (sep and kind != "balanced"):
        raise UserError(f"unknown --weights {text!r}; choose bitplane, csd, balanced or "
                        "balanced:K")
    if not sep:
        return kind, None
    if not arg.strip().isdigit() or int(arg) < 2:
        raise UserError(f"--weights balanced:K needs an integer K >= 2 (the copies of each "
                        f"input), got {arg!r}")
    return kind, int(arg)


def parse_acts(text: str | None) -> str | None:
    if text is not None and text not in ACT_KINDS:
        raise UserError(f"unknown --acts {text!r}; choose thermometer or bitplane")
    return text


def parse_to(text: str) -> str | int:
    """``binary`` | ``ternary`` | B >= 1 (1 is binary, 2 is ternary: a 2-bit signed symmetric
    weight is one of -1, 0, 1)."""
    t = text.strip().lower()
    if t in ("binary", "ternary"):
        return t
    if not t.isdigit() or int(t) < 1:
        raise UserError(f"--to must be binary, ternary or a number of weight bits >= 1, "
                        f"got {text!r}")
    return {1: "binary", 2: "ternary"}.get(int(t), int(t))


def parse_layers(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(s.strip() for s in text.split(","))
    if not all(names):
        raise UserError(f"--layers {text!r}: empty layer name (give names separated by commas)")
    dup = next((s for i, s in enumerate(names) if s in names[:i]), None)
    if dup is not None:
        raise UserError(f"--layers names {dup!r} twice")
    return names


def parse_options(weights: str | None, acts: str | None, to: str,
                  layers: str | None) -> SplitOptions:
    """The command's options, parsed (no graph needed)."""
    kind, k = parse_weights(weights)
    acts_kind = parse_acts(acts)
    target = parse_to(to)
    if kind is None and acts_kind is None:
        raise UserError("nothing to split: give --weights KIND, --acts KIND or both")
    if kind and acts_kind and target not in ("binary", "ternary"):
        raise UserError(f"--to {to}: with --weights and --acts the split goes until binary "
                        "(--to binary or ternary); for wider weights give --weights alone")
    return SplitOptions(kind, k, acts_kind, target, parse_layers(layers))


def products(graph: IntGraph) -> list[Node]:
    return [n for n in graph.nodes if n.op in PRODUCTS]


def selected(graph: IntGraph, opts: SplitOptions) -> list[Node]:
    """The products ``opts`` selects; refuses unknown names and nodes that are no product."""
    prods = products(graph)
    listing = ", ".join(n.name or n.label() for n in prods) or "none"
    if opts.layers is None:
        if not prods:
            raise UserError("the run's graph has no dense or conv2d layer to split")
        return prods
    chosen = []
    for name in opts.layers:
        try:
            node = graph.by_name(name)
        except KeyError:
            raise UserError(f"--layers: unknown layer {name!r}; products: {listing}") from None
        if node.op not in PRODUCTS:
            raise UserError(f"--layers: {name!r} is a {node.op.value}, not a product (dense / "
                            f"conv2d); products: {listing}")
        chosen.append(node)
    return chosen


def check_graph(graph: IntGraph, opts: SplitOptions, run: str) -> list[Node]:
    """The selected products, once the run is known to be quantized for this split and the
    split would change something."""
    chosen = selected(graph, opts)
    for n in chosen:
        bits = n.attrs.w_bits
        if bits > MAX_BITS:
            raise UserError(f"{run} is not quantized: layer {n.name or n.label()} has "
                            f"{bits}-bit weights (split takes at most {MAX_BITS})")
        if opts.acts is not None:
            arg = graph.nodes[n.args[0]]
            if arg.lo < 0 or arg.hi >= 1 << MAX_BITS:
                raise UserError(f"{run} is not quantized: the input of layer "
                                f"{n.name or n.label()} spans {arg.lo}..{arg.hi} (splitting "
                                f"activations needs unsigned ones of at most {MAX_BITS} bits)")
    narrow_w = opts.weights is None or all(n.attrs.w_bits <= opts.target_bits for n in chosen)
    binary_in = opts.acts is None or all(graph.nodes[n.args[0]].hi <= 1 for n in chosen)
    if narrow_w and binary_in:
        what = []
        if opts.weights is not None:
            what.append(f"at most {max(n.attrs.w_bits for n in chosen)}-bit weights, already "
                        f"within --to {opts.to}")
        if opts.acts is not None:
            what.append("1-bit inputs")
        raise UserError(f"nothing to split: the selected layers have {' and '.join(what)}")
    return chosen
