"""``--target qonnx``: the integer network as a QONNX model (model.onnx)."""

from __future__ import annotations

from .base import EmitError, Emitter


class QonnxEmitter(Emitter):
    """the integer network as a QONNX model (model.onnx)."""

    target = "qonnx"

    def emit(self, graph):
        raise EmitError("qonnx: not built yet")
