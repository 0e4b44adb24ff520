"""The ``qonnx`` runner: a ``--target qonnx`` export executed by QONNX's own executor.

:class:`QonnxRunner` loads ``model.onnx`` into ``qonnx.core.modelwrapper.ModelWrapper`` and
runs ``qonnx.core.onnx_exec.execute_onnx`` (node by node; onnxruntime for the standard ops,
QONNX's Python implementations for Quant / MultiThreshold) on a whole batch at once: the model's
symbolic batch dimension ``N`` is set to the batch size in memory.  The integer batch ``x``
goes in as ``x * 2**-frac`` (float32, exact: the emitter refused inputs beyond 2**24); each
tensor comes back as ``q = value * 2**frac``, which must be integers (:class:`RunnerError`
otherwise).  :func:`qonnx_node_values` returns every IR node's tensor, for layer-by-layer
checks against :func:`heatq.ir.run` ``(trace=True)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from heatq.ir import IntGraph
from heatq.ir.interp import check_input, value_dtype
from .qonnx import tensor_names
from .runner_base import Runner, RunnerError

CHUNK = 4096  # images per execute_onnx call (memory of the full execution context)


def _model(export_dir: str | Path, batch: int):
    """The export's model in a ModelWrapper, its batch dimension set to ``batch``."""
    from qonnx.core.modelwrapper import ModelWrapper

    path = Path(export_dir) / "model.onnx"
    if not path.is_file():
        raise RunnerError(f"qonnx: {path} not found (export with -t qonnx)")
    try:
        return set_batch(ModelWrapper(str(path)), batch)
    except Exception as e:  # a damaged file: protobuf / onnx errors of many kinds
        raise RunnerError(f"qonnx: cannot load {path}: {_one_line(e)}") from None


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def set_batch(model, batch: int):
    """Set the symbolic batch dimension ``N`` of every value info of ``model`` (a
    ModelWrapper or ModelProto) to ``batch``, in place (execute_onnx needs concrete shapes)."""
    g = model.graph
    for vi in [*g.input, *g.output, *g.value_info]:
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].dim_param == "N":
            dims[0].dim_value = batch
    return model


def _execute(export_dir, graph: IntGraph, x: np.ndarray, wanted: list[int]
             ) -> dict[int, np.ndarray]:
    """Execute the export on ``x``; the integer values of the IR nodes ``wanted``."""
    from qonnx.core.onnx_exec import execute_onnx

    x = check_input(graph, x)
    names = tensor_names(graph)
    inp = graph.nodes[0]
    parts: dict[int, list[np.ndarray]] = {i: [] for i in wanted}
    for start in range(0, max(len(x), 1), CHUNK):
        xb = x[start:start + CHUNK]
        real = (xb.astype(np.float64) * 2.0 ** -inp.type.frac).astype(np.float32)
        model = _model(export_dir, len(xb))
        try:
            ctx = execute_onnx(model, {f"{names[0]}.raw": real}, return_full_exec_context=True)
        except Exception as e:  # onnxruntime / qonnx failures of a damaged or foreign model
            raise RunnerError(f"qonnx: execute_onnx failed: {_one_line(e)}") from None
        for i in wanted:
            parts[i].append(_integers(graph.nodes[i], names[i], ctx.get(names[i])))
    return {i: np.concatenate(v) for i, v in parts.items()}


def _integers(node, name: str, value) -> np.ndarray:
    """``value * 2**frac`` as the node's integer dtype; RunnerError unless integers."""
    if value is None:
        raise RunnerError(f"qonnx: the model has no tensor {name!r} ({node.label()})")
    q = np.asarray(value, dtype=np.float64) * 2.0 ** node.type.frac
    if q.shape[1:] != node.shape:
        raise RunnerError(f"qonnx: tensor {name!r} has shape {q.shape[1:]}, "
                          f"{node.label()} {node.shape}")
    if not np.all(np.isfinite(q)) or not np.array_equal(q, np.rint(q)):
        bad = q[~(np.isfinite(q) & (q == np.rint(q)))]
        raise RunnerError(f"qonnx: tensor {name!r} ({node.label()}) holds non-integer "
                          f"values q = value * 2**{node.type.frac}, e.g. {bad.ravel()[0]!r}")
    if value_dtype(node.type) == object:
        return np.array([int(v) for v in q.ravel()], dtype=object).reshape(q.shape)
    return q.astype(np.int64)


def qonnx_node_values(export_dir: str | Path, graph: IntGraph, x: np.ndarray
                      ) -> dict[str, np.ndarray]:
    """Every IR node's integers from QONNX's execution of the export, keyed by its tensor
    name (the node's name; ``<op>_<id>`` when unnamed): ``[N, *node.shape]`` int64."""
    names = tensor_names(graph)
    vals = _execute(export_dir, graph, x, [n.id for n in graph.nodes])
    return {names[i]: v for i, v in vals.items()}


class QonnxRunner(Runner):
    """``execute_onnx`` on the export's ``model.onnx`` (needs the ``qonnx`` package)."""

    name = "qonnx"
    target = "qonnx"
    tools: tuple[str, ...] = ()

    def run(self, export_dir, graph, x):
        vals = _execute(export_dir, graph, x, sorted(set(graph.outputs)))
        return [vals[o].copy() for o in graph.outputs]


__all__ = ["QonnxRunner", "qonnx_node_values", "set_batch"]
