"""Test inputs for simulation: dataset images encoded like the graph's input, and corners."""

from __future__ import annotations

import numpy as np

from heatq.codes import parse_input_code
from heatq.data import load_dataset
from heatq.ir import IntGraph


def dataset_inputs(graph: IntGraph, spec: str = "mnist5k", n: int = 20,
                   input_code: str | None = None, seed: int = 0) -> np.ndarray:
    """The first ``n`` test images of dataset ``spec``, encoded into the graph's input planes
    (``input_code``, else ``graph.meta["input_code"]``, else ``bitplane:C``; ``learned:T``
    gives the raw pixels, one channel).  Images of another size than the graph's input are rejected."""
    node = graph.nodes[0]
    if len(node.shape) != 3:
        raise ValueError("dataset images need a [C, H, W] graph input")
    c, h, w = node.shape
    code = input_code or graph.meta.get("input_code") or f"bitplane:{c}"
    ic = parse_input_code(code)
    if ic.input_channels != c:
        raise ValueError(f"input code {code} gives {ic.input_channels} input channels, "
                         f"graph expects {c}")
    ds = load_dataset(spec, seed=seed)
    x = ds.x_test[:n]
    if x.shape[1:] != (h, w):
        raise ValueError(f"{spec} images are {x.shape[1:]}, graph expects {(h, w)}")
    return ic.encode_numpy(x).astype(np.int64)
