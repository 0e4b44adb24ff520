"""An imported graph against qonnx's own execution of its source model.

:func:`qonnx_layer_values` runs the source model with ``qonnx.core.onnx_exec.execute_onnx``
(onnxruntime underneath; ``return_full_exec_context``), one sample at a time, on the float
inputs ``q * 2**-frac`` of the imported graph's integer inputs ``q``, and reads every tensor
named in ``graph.meta["onnx_tensors"]`` back as integers (``value * 2**frac`` of the IR node,
plus its ``meta["frac_offsets"]`` entry after a THRESHOLD fold; None where that is not an
integer).  :func:`check_imported` is ``heatq check`` for an imported
run directory: every layer, on the graph's corner vectors and seeded random inputs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..ir import IntGraph, run


def _load_source(source):
    """The source as a ModelWrapper with every tensor's shape inferred (execute_onnx needs
    them; qonnx's InferShapes changes no value)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    from .qonnx_model import load_model

    model = load_model(source)[0] if not isinstance(source, ModelWrapper) else source
    return model.transform(InferShapes())


def qonnx_layer_values(source, graph: IntGraph, q: np.ndarray) -> dict[str, np.ndarray | None]:
    """``{IR node name: int64 [N, *shape] or None}`` from qonnx executing ``source`` (a path, a
    ModelProto or a ModelWrapper) on the integer inputs ``q`` ``[N, *input]``; None when the
    tensor is not an integer at the node's binary point (or has another shape)."""
    from qonnx.core.onnx_exec import execute_onnx

    model = _load_source(source)
    tensors = graph.meta["onnx_tensors"]
    name_in = model.graph.input[0].name
    x = np.asarray(q, dtype=np.float64) * 2.0 ** -graph.nodes[0].type.frac
    per: dict[str, list] = {n: [] for n in tensors}
    for i in range(len(x)):
        ctx = execute_onnx(model, {name_in: x[i:i + 1].astype(np.float32)},
                           return_full_exec_context=True)
        for name, t in tensors.items():
            per[name].append(np.asarray(ctx[t], dtype=np.float64))
    out: dict[str, np.ndarray | None] = {}
    offsets = graph.meta.get("frac_offsets", {})  # after a THRESHOLD fold: real - IR frac
    for name, parts in per.items():
        node = graph.by_name(name)
        frac = node.type.frac + offsets.get(name, 0)
        v = np.concatenate(parts) * 2.0 ** frac if parts else np.zeros((0,))
        ok = v.shape[1:] == tuple(node.shape) and np.array_equal(v, np.rint(v))
        out[name] = np.rint(v).astype(np.int64) if ok else None
    return out


def compare_with_qonnx(source, graph: IntGraph, q: np.ndarray) -> dict:
    """Every layer of ``graph`` (the names in ``meta["onnx_tensors"]``) on ``q``:
    ``{"n_samples", "layers": {name: fraction of samples equal}, "all_equal"}``; the
    interpreter's values are compared with qonnx's, element for element."""
    ref = qonnx_layer_values(source, graph, q)
    values = run(graph, np.asarray(q, dtype=np.int64), trace=True)
    layers = {}
    for name, r in sorted(ref.items(), key=lambda item: graph.by_name(item[0]).id):
        mine = values[graph.by_name(name).id]
        if r is None:
            layers[name] = 0.0
            continue
        eq = (r.reshape(len(r), -1) == np.asarray(mine).reshape(len(r), -1)).all(axis=1)
        layers[name] = float(eq.mean()) if len(eq) else 1.0
    return {"n_samples": int(len(q)), "layers": layers,
            "all_equal": all(v == 1.0 for v in layers.values())}


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check_imported(directory: str | Path, summary: dict, n: int | None = None) -> dict:
    """``heatq check`` for a run that ``heatq import`` wrote: the interpreter against qonnx's
    execution of the source model (which must be unchanged: same sha256) on the graph's corner
    vectors and ``n`` (default 64) seeded random inputs; writes nothing."""
    from ..files import load_graph
    from ..ir.corners import corner_vectors

    source = Path(summary.get("model", ""))
    if not source.is_file():
        raise UserError(f"{directory}: imported from {source}, which is gone; heatq check "
                        "compares with qonnx's execution of that file")
    if sha256_file(source) != summary.get("sha256"):
        raise UserError(f"{directory}: {source} changed since the import (sha256 differs); "
                        "import it again")
    graph = load_graph(directory)
    q = corner_vectors(graph, n_random=64 if n is None else int(n))
    result = compare_with_qonnx(source, graph, q)
    result["split"] = "corner + random inputs vs qonnx"
    return result
