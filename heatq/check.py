"""``heatq check``: "validating activations" — torch model vs the integer interpreter.

For every named layer, the fraction of samples whose integer activations in the quantized
PyTorch model (run in float64, where its arithmetic on these integers is exact, then scaled
by ``2**frac``) equal the interpreter's, element for element.  The gate is 100 % everywhere.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from tqdm import tqdm

from .qnet_ir import CLASS, CODE_BITS
from .ir import IntGraph
from .ir.interp import run
from .ir.ops.hamming_decode import hamming_distances
from .models import QNet
from .progress import bars


def _torch_integers(t: torch.Tensor, frac: int) -> np.ndarray | None:
    """``t * 2**frac`` as int64 when every element is an exact integer, else None."""
    v = (t.detach().double() * 2.0 ** frac).numpy()
    r = np.rint(v)
    return r.astype(np.int64) if np.array_equal(r, v) else None


def _per_sample_equal(a: np.ndarray | None, b: np.ndarray) -> np.ndarray:
    if a is None or a.shape != b.shape:
        return np.zeros(len(b), dtype=bool)
    return (a.reshape(len(a), -1) == b.reshape(len(b), -1).astype(a.dtype)).all(axis=1)


@torch.no_grad()
def validate_activations(model: QNet, graph: IntGraph, x_codes: np.ndarray,
                         batch: int = 250, progress: bool = True, decoder=None) -> dict:
    """Compare every named layer on ``x_codes`` (the graph's inputs, [N, C, H, W]: uint8 0/1
    code planes, or the raw pixels [N, 1, H, W] of a ``learned:T`` input code); a graph
    with a learned decoder is compared with ``decoder`` (the run's :class:`heatq.decoder.Decoder`)
    run on the model's code bits.  Returns ``{"n_samples", "layers": {name: fraction_equal}, "all_equal"}``."""
    model.eval()
    m = copy.deepcopy(model).double()
    names = [n.name for n in graph.nodes if n.name and n.name != "input"]
    equal = {name: 0 for name in names}
    for i in tqdm(range(0, len(x_codes), batch), desc="validating activations",
                  disable=not bars(progress), leave=False):
        xb = x_codes[i:i + batch]
        logits, seen = m(torch.from_numpy(xb.astype(np.float64)), trace=True)
        values = run(graph, xb.astype(np.int64), trace=True)
        torch_ints = {name: _torch_integers(t, f) for name, (t, f) in seen.items()}
        bits = (logits > 0).long().numpy()
        torch_ints[CODE_BITS] = bits
        if decoder is None:
            cb = graph.by_name(CLASS).attrs.codebook.astype(np.int64)
            torch_ints[CLASS] = np.argmin(hamming_distances(bits, cb), axis=1)
        else:  # the run's own decoder (config.json), not the graph's copy of it
            torch_ints.update(zip(decoder.node_names(), decoder.trace(bits)))
            torch_ints[CLASS] = decoder.predict(bits)
        for name in names:
            equal[name] += int(_per_sample_equal(torch_ints.get(name),
                                                 values[graph.by_name(name).id]).sum())
    n = len(x_codes)
    layers = {name: equal[name] / n if n else 0.0 for name in names}
    return {"n_samples": n, "layers": layers, "all_equal": all(v == 1.0 for v in layers.values())}
