"""``validate_split``: every original named layer, regrouped from a split graph's trace, against
the unsplit graph's trace, sample by sample ("Validating activations 100 %").

A split graph's ``meta["regroup"]`` (:mod:`heatq.passes.split_common`) maps each named node of
the base graph to ``[[node_name, shift], ...]`` in the split graph: the layer's value is
``sum value(node_name) << shift``.  A layer missing from the map is looked up under its own
name.  Values are compared as exact integers (int64, or Python ints when the shifted sum could
leave int64).
"""

from __future__ import annotations

import numpy as np

from heatq.ir import IntGraph, IRError, run
from heatq.ir.ops.base import INT64_MAX_WIDTH, pyints


def regroup_plan(split_graph: IntGraph, base_graph: IntGraph) -> dict[str, list[tuple[int, int]]]:
    """``{layer: [(split node id, shift), ...]}`` for every named node of ``base_graph``;
    IRError when a layer or a node it names is missing, or the shapes differ."""
    regroup = split_graph.meta.get("regroup") or {}
    ids = {n.name: n.id for n in split_graph.named()}
    plan = {}
    for layer in base_graph.named():
        entries = regroup.get(layer.name, [[layer.name, 0]])
        missing = [name for name, _ in entries if name not in ids]
        if missing or not entries:
            raise IRError(f"split graph: layer {layer.name!r} of the base graph regroups from "
                          f"{missing or 'no nodes'}, not in the split graph")
        for name, _ in entries:
            if split_graph.nodes[ids[name]].shape != layer.shape:
                raise IRError(f"split graph: {name!r} has shape "
                              f"{split_graph.nodes[ids[name]].shape} but layer {layer.name!r} "
                              f"has {layer.shape}")
        plan[layer.name] = [(ids[name], int(s)) for name, s in entries]
    return plan


def _regrouped(split_graph: IntGraph, values: list, entries: list[tuple[int, int]]):
    """``sum values[id] << shift``, exact."""
    wide = sum(1 << (split_graph.nodes[i].type.width + s) for i, s in entries) \
        >= (1 << INT64_MAX_WIDTH)
    total = None
    for i, s in entries:
        v = values[i]
        v = pyints(v) << s if wide or v.dtype == object else v.astype(np.int64) << np.int64(s)
        total = v if total is None else total + v
    return total


def _equal_per_sample(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = a.shape[0]
    eq = np.asarray(a == b, dtype=bool) if a.dtype == object or b.dtype == object else a == b
    return eq.reshape(n, -1).all(axis=1)


def validate_split(split_graph: IntGraph, base_graph: IntGraph, x, batch: int = 64) -> dict:
    """Compare every named layer of ``base_graph`` with its regrouped value in ``split_graph``
    on every sample of ``x`` ([N, *input shape], run ``batch`` samples at a time).

    Returns ``{"layers": {name: fraction of samples on which every element is equal},
    "all_equal": bool, "n_samples": N}`` (layers in the base graph's node order).  IRError for
    an empty batch, different input shapes, or a layer the split graph cannot regroup."""
    x = np.asarray(x)
    if split_graph.nodes[0].shape != base_graph.nodes[0].shape:
        raise IRError(f"split graph input {split_graph.nodes[0].shape} differs from the base "
                      f"graph's {base_graph.nodes[0].shape}")
    if x.ndim < 1 or x.shape[0] == 0:
        raise IRError("validate_split needs at least one sample")
    if batch < 1:
        raise IRError(f"validate_split: batch must be >= 1, got {batch}")
    plan = regroup_plan(split_graph, base_graph)
    base_ids = {n.name: n.id for n in base_graph.named()}
    equal = dict.fromkeys(plan, 0)
    for start in range(0, x.shape[0], batch):
        xb = x[start:start + batch]
        base_v, split_v = run(base_graph, xb, trace=True), run(split_graph, xb, trace=True)
        for name, entries in plan.items():
            got = _regrouped(split_graph, split_v, entries)
            equal[name] += int(_equal_per_sample(got, base_v[base_ids[name]]).sum())
    n = int(x.shape[0])
    layers = {name: equal[name] / n for name in plan}
    return {"layers": layers, "all_equal": all(v == n for v in equal.values()), "n_samples": n}


__all__ = ["validate_split", "regroup_plan"]
