"""The ``hls4ml`` runner: an hls4ml export's C simulation, compiled and run by hls4ml itself.

:meth:`Hls4mlRunner.run` copies the project into a temporary directory, links it with
``hls4ml.converters.link_existing_project`` (the project's ``hls4ml_config.yml``), compiles it
with ``compile()`` (the project's ``build_lib.sh``: g++ -O3 of ``firmware/`` and the ctypes
bridge) and calls ``predict()`` on the batch as ``float64`` (the bridge's ``_double`` entry
point).  Inputs are sent as their real values ``q * 2**-frac`` in hls4ml's channels-last
order; every output value ``v`` is turned back into ``q = v * 2**frac``, which must be an
integer in the node's range (checked), and into the IR's [C, H, W] order; a
``hamming_decode`` output arrives as the one-hot vector of hls4ml's argmax ``Softmax`` and
becomes its index (exactly one 1 per sample, checked).  The outputs are passed in the order
the export recorded (``summary.json``), not ``hls4ml_config.yml``'s, which hls4ml 1.3 sorts by
name (a multi-output project with 10 or more layers would get its buffers swapped).  The layout and binary points come
from :func:`heatq_export.hls4ml_layers.plan`, checked against the export's ``summary.json``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from heatq.ir.interp import value_dtype

from .hls4ml_layers import Tensor, plan
from .runner_base import Runner, RunnerError


def _to_ints(v: np.ndarray, t: Tensor, node) -> np.ndarray:
    """hls4ml's output values ``[N, size]`` (float64) -> the IR's integers ``[N, *shape]``."""
    n = len(v)
    if t.onehot:
        if not (np.isin(v, (0.0, 1.0)).all() and (v.sum(axis=1) == 1).all()):
            raise RunnerError(f"hls4ml: output {node.label()} is not one-hot")
        q = v.argmax(axis=1)
    else:
        q = np.ldexp(v, t.frac)
        if not (np.isfinite(q).all() and (q == np.rint(q)).all()):
            raise RunnerError(f"hls4ml: output {node.label()} has values off its binary point "
                              f"2**-{t.frac}")
        ordered = np.empty_like(q)
        ordered[:, t.perm] = q
        q = ordered
    if len(q) and (q.min() < node.lo or q.max() > node.hi):
        raise RunnerError(f"hls4ml: output {node.label()} leaves its range {node.lo}..{node.hi}")
    return q.astype(value_dtype(node.type)).reshape((n, *node.shape))


class Hls4mlRunner(Runner):
    """An hls4ml export compiled (g++, via hls4ml's ``compile()``) and run by ``predict()``."""

    name = "hls4ml"
    target = "hls4ml"
    tools = ("g++",)

    def run(self, export_dir, graph, x):
        from hls4ml.converters import link_existing_project

        export_dir = Path(export_dir)
        p = plan(graph)
        recorded = json.loads((export_dir / "summary.json").read_text()).get("hls4ml", {})
        if recorded.get("outputs") != p.outputs:
            raise RunnerError(f"hls4ml: {export_dir} was not exported from this graph "
                              f"(outputs {recorded.get('outputs')} != {p.outputs})")
        n = len(x)
        inp = p.tensors[0]
        xf = np.ldexp(np.asarray(x, dtype=np.int64).reshape(n, -1)[:, inp.perm]
                      .astype(np.float64), -inp.frac)
        with tempfile.TemporaryDirectory(prefix="heatq-hls4ml-run-") as tmp:
            prj = Path(tmp) / "prj"
            shutil.copytree(export_dir, prj)
            (prj / "build_lib.sh").chmod(0o755)  # hls4ml runs ./build_lib.sh
            model = link_existing_project(prj)
            model.config.config["OutputDir"] = str(prj)
            # hls4ml_config.yml lists OutputShapes sorted by name (yaml.dump), which is not the
            # top function's argument order once layer indices reach 10 (layer10_out sorts
            # before layer9_out): use the order the export recorded from the ModelGraph
            model.out_vars = [model.VariableWrapper(name, shape)
                              for name, shape in recorded["output_variables"]]
            try:
                model.compile()
            except Exception as e:  # hls4ml raises a bare Exception for a failed build_lib.sh
                raise RunnerError(f"hls4ml: {e}") from None
            y = model.predict(np.ascontiguousarray(xf)) if n else None
        outs = []
        for o in graph.outputs:
            node, t = graph.nodes[o], p.tensors[o]
            if n == 0:
                outs.append(np.zeros((0, *node.shape), dtype=value_dtype(node.type)))
                continue
            k = p.outputs.index(t.output_layer)
            v = y[k] if isinstance(y, list) else y
            outs.append(_to_ints(np.asarray(v, dtype=np.float64).reshape(n, -1), t, node))
        return outs
