"""``--target hls4ml``: an hls4ml project built through hls4ml's API."""

from __future__ import annotations

from .base import EmitError, Emitter


class Hls4mlEmitter(Emitter):
    """an hls4ml project built through hls4ml's API."""

    target = "hls4ml"

    def emit(self, graph):
        raise EmitError("hls4ml: not built yet")
