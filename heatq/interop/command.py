"""``heatq import MODEL.onnx --out RUN``: a QONNX model (e.g. Brevitas ``export_qonnx``) as a
heatq run directory.

The run holds ``model.ir.json`` + ``model.npz`` (the exact integer graph, the formats of
:mod:`heatq.ir.serialize`) and ``summary.json`` (``{"source": "qonnx", "model": path,
"sha256": ..., "input": the input Quant, "layers": [...]}``), written atomically
(:func:`heatq.files.atomic_dir`); an existing run is replaced only with ``--force``, anything
else never.  ``heatq-export RUN -t c|hls|verilog|...`` exports it and ``heatq check RUN``
compares it with qonnx's execution of the source model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import typer

from ..cli_common import force_option
from ..errors import UserError


def layer_table(graph) -> list[dict]:
    """One row per node: name, op, shape, type (``s9.3``), range and the ONNX tensor."""
    tensors = graph.meta.get("onnx_tensors", {})
    return [{"name": n.name, "op": n.op.value, "shape": list(n.shape),
             "type": n.type.c_style(), "range": [n.lo, n.hi], "onnx_tensor": tensors.get(n.name)}
            for n in graph.nodes]


def import_run(model: str | Path, out: str | Path, force: bool = False) -> dict:
    """Import ``model`` into the run directory ``out``; returns the summary written there."""
    from ..files import atomic_dir, prepare_output, write_json
    from ..ir import save
    from .onnx_import import import_qonnx

    model = Path(model)
    if not model.is_file():
        raise UserError(f"{model}: file not found" if not model.exists()
                        else f"{model}: not a file")
    prepare_output(out, "run", force, inputs=(model,))
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    graph = import_qonnx(model)
    summary = {"source": "qonnx", "model": str(model.resolve()), "sha256": digest,
               "input": graph.meta["input_quant"], "outputs": [graph.nodes[o].name
                                                                for o in graph.outputs],
               "layers": layer_table(graph)}
    if graph.meta.get("float32_inexact"):
        summary["float32_inexact"] = graph.meta["float32_inexact"]
    with atomic_dir(out) as tmp:
        save(graph, tmp)
        write_json(tmp / "summary.json", summary)
    return summary


def print_import(summary: dict, out: Path) -> None:
    """The short table ``heatq import`` prints."""
    q = summary["input"]
    typer.echo(f"imported {summary['model']} (sha256 {summary['sha256'][:16]})")
    typer.echo(f"input: {'s' if q['signed'] else 'u'}{q['bits']} integers {q['lo']}..{q['hi']} "
               f"= x * 2**{q['frac']} rounded {q['rounding']}")
    typer.echo(f"{'layer':<28}{'op':<11}{'shape':<16}{'type':<10}onnx tensor")
    for row in summary["layers"]:
        shape = "x".join(str(d) for d in row["shape"]) or "()"
        typer.echo(f"{row['name']:<28}{row['op']:<11}{shape:<16}{row['type']:<10}"
                   f"{row['onnx_tensor'] or '-'}")
    for name in summary.get("float32_inexact", []):
        typer.echo(f"note: {name}'s accumulator exceeds 2**24: qonnx's float32 execution of "
                   "the source may round there; the integer graph is exact")
    typer.echo(f"run written to {out} (outputs: {', '.join(summary['outputs'])})")


def import_model(model: Path = typer.Argument(..., help="a QONNX / ONNX model file"),
                 out: Path = typer.Option(..., "--out", "-o", help="run directory to write"),
                 force: bool = force_option(),
                 quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
                 ) -> None:
    """Import a QONNX model as an exact integer network (a run directory)."""
    from .. import progress

    progress.set_quiet(quiet)
    summary = import_run(model, out, force)
    if not quiet:
        print_import(summary, out)
