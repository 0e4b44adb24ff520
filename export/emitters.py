"""The registry of source emitters: ``target name -> Emitter class``.  Adding a target is one
entry here; its options and supported ops are declared by the class itself."""

from __future__ import annotations

from heatq.errors import UserError

from .base import Emitter
from .bundle import BundleEmitter
from .c import CEmitter
from .hls import HLSEmitter
from .hls4ml_project import Hls4mlEmitter
from .qonnx import QonnxEmitter
from .verilog import VerilogEmitter

EMITTERS: dict[str, type[Emitter]] = {"c": CEmitter, "hls": HLSEmitter,
                                      "verilog": VerilogEmitter, "qonnx": QonnxEmitter,
                                      "hls4ml": Hls4mlEmitter, "bundle": BundleEmitter}


def emitter_class(target: str) -> type[Emitter]:
    """The Emitter class of ``target``; :class:`UserError` listing the known targets."""
    try:
        return EMITTERS[target]
    except KeyError:
        raise UserError(f"unknown export target {target!r}; known targets: "
                        f"{', '.join(sorted(EMITTERS))}") from None


def get_emitter(target: str, **kwargs) -> Emitter:
    """An emitter instance for ``target``; ``kwargs`` go to its constructor.
    Raises :class:`UserError` for an unknown target, listing the known ones."""
    return emitter_class(target)(**kwargs)
