"""``export_graph``: the one function that turns a graph into an export directory, for the
``heatq-export`` command, the pipeline and the demo alike.

Order: the target and its options are validated, then the output location
(:func:`heatq.files.prepare_output`), then the graph's ops (:meth:`Emitter.check_graph`), and
only then is anything emitted or written, atomically (:func:`heatq_export.base.write_export`).
The bundle holds the generated sources, the IR they came from (``model.ir.json`` +
``model.npz``, so the oracle travels with the hardware) and ``summary.json``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from heatq.errors import UserError
from heatq.files import prepare_output
from heatq.progress import activity
from heatq.ir import IntGraph
from heatq.ir.serialize import graph_to_json

from .base import EmitError, Emitter, EmitOption, write_export
from .emitters import EMITTERS, emitter_class


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _check_value(target: str, opt: EmitOption, value: Any) -> None:
    if opt.bare is not None and value is True:  # the flag alone (the emitter maps it)
        return
    if opt.type is bool:
        ok = isinstance(value, bool)
    else:
        types = (int, float) if opt.type is float else opt.type  # 10 is a fine float
        ok = isinstance(value, types) and not isinstance(value, bool)
    if not ok:
        raise UserError(f"target {target}: {opt.flag} takes {opt.type.__name__}, got {value!r}")
    if opt.minimum is not None and value < opt.minimum:
        raise UserError(f"target {target}: {opt.flag} must be >= {opt.minimum}, got {value}")


def make_emitter(target: str, options: Mapping[str, Any]) -> Emitter:
    """The emitter for ``target`` built with ``options`` (only those the user gave), after
    checking each is declared by the target and has the right type and range."""
    cls = emitter_class(target)
    declared = {o.name: o for o in cls.options}
    for name, value in options.items():
        if name not in declared:
            flag = "--" + name.replace("_", "-")
            owners = [t for t, c in EMITTERS.items() if any(o.name == name for o in c.options)]
            known = ", ".join(o.flag for o in cls.options) or "none"
            raise UserError(f"target {target} does not take {flag}"
                            + (f" (an option of {', '.join(owners)})" if owners else "")
                            + f"; {target}'s options: {known}")
        _check_value(target, declared[name], value)
    try:
        return cls(**options)
    except ValueError as e:
        raise UserError(f"target {target}: {e}") from None


def _emit(emitter: Emitter, graph: IntGraph) -> dict[str, str | bytes]:
    target = emitter.target
    try:
        emitter.check_graph(graph)
        with activity(f"emitting {target}"):
            files = dict(emitter.emit(graph))
    except EmitError as e:
        msg = str(e)
        raise UserError(msg if msg.startswith(f"{target}:") else f"target {target}: {msg}") \
            from None
    ir_text, arrays = graph_to_json(graph, "model.npz")
    files["model.ir.json"] = ir_text
    files["model.npz"] = _npz_bytes(arrays)
    return files


def export_graph(graph: IntGraph, target: str, out: str | Path, force: bool = False,
                 inputs: Iterable[str | Path] = (), **options) -> dict:
    """Emit ``target`` for ``graph`` into ``out``; returns the summary written there.
    ``options`` are the target's declared options (None values are dropped); ``force``
    replaces an earlier heatq export at ``out``; ``inputs`` are the directories the graph
    came from (``out`` may not be, be inside or contain any of them)."""
    options = {k: v for k, v in options.items() if v is not None}
    emitter = make_emitter(target, options)
    prepare_output(out, "export", force, inputs)
    files = _emit(emitter, graph)
    return write_export(out, target, files, emitter.summary(graph, files), emitter.finish)
