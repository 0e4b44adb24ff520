"""``--target bundle``: the synthesis bundle for an FPGA team."""

from __future__ import annotations

from .base import EmitError, Emitter


class BundleEmitter(Emitter):
    """the synthesis bundle for an FPGA team."""

    target = "bundle"

    def emit(self, graph):
        raise EmitError("bundle: not built yet")
