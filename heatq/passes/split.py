"""Exact splitting until binarization (issue 10): :func:`split_weights`, :func:`split_acts`
and :func:`binarize`, each also a :class:`~heatq.passes.Pass`.

- :mod:`heatq.passes.split_weights`: bit-plane (two's complement, or the offset form with
  {-1,+1} planes), canonical-signed-digit and balanced weight splits, with their identities;
- :mod:`heatq.passes.split_acts`: thermometer (THRESHOLD) and bit-plane (BIT) units;
- :mod:`heatq.passes.split_common`: the parts, the ADD that sums them and ``meta["regroup"]``;
- :func:`heatq.split_check.validate_split` regroups every original layer from a split graph's
  trace and compares it with the unsplit graph's ("Validating activations 100 %").
"""

from __future__ import annotations

from heatq.ir import IntGraph, IRError

from .base import Pass
from .split_acts import KINDS as ACT_KINDS
from .split_acts import SplitActs, split_acts
from .split_common import PRODUCTS, fits_bits, target_bits
from .split_weights import KINDS as WEIGHT_KINDS
from .split_weights import SplitWeights, split_weights


class Binarize(Pass):
    """``split_acts(acts)`` then ``split_weights(weights, to)``: afterwards every selected
    DENSE / CONV2D (all, or those that regroup into ``layers``) has weights in {-1,+1}
    (``to="binary"``) or {-1,0,1} (``to="ternary"``) and a 1-bit argument; checked, IRError
    naming the node otherwise.  A product whose argument is signed and wider than 1 bit cannot
    be binarized (IRError from split_acts).

    Preserves: what both passes preserve (every graph output and every named node's values);
    ``meta["regroup"]`` maps every original named layer to its parts."""

    name = "binarize"

    def __init__(self, weights: str = "bitplane", acts: str = "thermometer", to="binary",
                 layers=None, k: int | None = None):
        self.bits = target_bits(to, self.name)
        if self.bits > 2:
            raise IRError(f"binarize: to must be binary or ternary, got {to!r}")
        self.acts = SplitActs(acts, layers)
        self.weights, self.to, self.layers, self.k = weights, to, layers, k
        SplitWeights(weights, to, None, k)  # validates the kind now

    def __call__(self, graph: IntGraph) -> IntGraph:
        g = self.acts(graph)
        names = None if self.layers is None else self._parts_of(g)
        g = SplitWeights(self.weights, self.to, names, self.k)(g)
        self.check(g, names)
        return g

    def _parts_of(self, g: IntGraph) -> list[str]:
        """The product names in ``g`` that regroup into the selected original layers."""
        regroup, products = g.meta["regroup"], {n.name for n in g.named() if n.op in PRODUCTS}
        return sorted({name for layer in self.layers for name, _ in regroup.get(layer, [])
                       if name in products})

    def check(self, g: IntGraph, names=None) -> None:
        """IRError unless every (selected) product is binary: weights valid for the target
        and an argument 1 bit wide."""
        for n in g.nodes:
            if n.op in PRODUCTS and (names is None or n.name in names):
                arg = g.nodes[n.args[0]]
                if not fits_bits(n.attrs.weight, self.bits) or arg.type.width != 1:
                    raise IRError(f"binarize: {n.op.value} {n.label()} is not binary (weights "
                                  f"for {self.to!r}, a {arg.type.c_style()} input)")


def binarize(graph: IntGraph, weights: str = "bitplane", acts: str = "thermometer",
             to="binary", layers=None, k: int | None = None) -> IntGraph:
    """``Binarize(weights, acts, to, layers, k)(graph)``: see :class:`Binarize`."""
    return Binarize(weights, acts, to, layers, k)(graph)


__all__ = ["Binarize", "binarize", "SplitWeights", "split_weights", "SplitActs", "split_acts",
           "WEIGHT_KINDS", "ACT_KINDS"]
