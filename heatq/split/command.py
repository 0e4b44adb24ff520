"""``heatq split``: turn a run's integer network into an exactly equivalent split one.

    heatq split RUN [--weights bitplane|csd|balanced[:K]] [--acts thermometer|bitplane]
                [--to binary|ternary|B] [--layers L1,L2] [--no-adders] --out DIR [--force] [-q]
    heatq split RUN --auto [--objective adder_bits|weight_bits] [--to ...] [--layers ...] ...

Every option, the run's graph and ``--out`` (:func:`heatq.files.prepare_output`, kind
"run") are checked before any work (:mod:`heatq.split.options`).  The passes are
:mod:`heatq.passes.split`'s: ``--weights`` alone is ``split_weights``, ``--acts`` alone
``split_acts``, both ``binarize`` (activations, then weights).  The split run directory,
written atomically, holds ``model.ir.json`` / ``model.npz`` (the split graph, its
``meta["regroup"]`` saying how its nodes sum to each original layer), ``base.ir.json`` /
``base.npz`` (the unsplit graph, which ``heatq check`` compares against), ``config.json``
(RUN's, plus ``split``: the options and ``base_run``: RUN) and ``summary.json`` (``kind``
"run", the per-layer figures of :mod:`heatq.split.stats`, the bit listing).

A weights-only balanced split (``--weights balanced[:K]`` without ``--acts``, also with
``--layers``) also writes ``model.pt``: the torch state of the *widened* network
(:mod:`heatq.widen`: each split layer holds its K weight parts, initialised by the exact split),
and ``config.json``'s model spec gains ``"widen": {layer: K}``; ``summary["widened"]`` is that
map (None for the other kinds, which have no torch network, with ``summary["widen_note"]``
saying why).  ``heatq heat`` takes such a run (split-then-heat) and refuses the others.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch
import typer

from ..cli_common import force_option
from ..errors import UserError
from ..files import atomic_dir, load_graph, prepare_output, read_json, write_json
from ..ir import IntGraph, IRError, load, save
from ..models import QNet
from .auto import AutoOptions, auto_split, check_auto, parse_auto
from .options import SplitOptions, check_graph, parse_options
from .report import format_split
from .stats import binarization, bit_listing, split_figures, totals

BASE_STEM = "base"  # base.ir.json + base.npz: the unsplit graph of a split run


def apply_split(graph: IntGraph, opts: SplitOptions) -> IntGraph:
    """The split graph (:mod:`heatq.passes.split`)."""
    from ..passes import split as passes

    layers = list(opts.layers) if opts.layers is not None else None
    if opts.weights and opts.acts:
        return passes.binarize(graph, weights=opts.weights, acts=opts.acts, to=opts.to,
                               layers=layers, k=opts.k)
    if opts.weights:
        return passes.split_weights(graph, kind=opts.weights, to=opts.to, layers=layers,
                                    k=opts.k)
    return passes.split_acts(graph, kind=opts.acts, layers=layers)


def load_base(directory: str | Path) -> IntGraph:
    """The unsplit graph stored in a split run directory; UserError when it is missing or
    broken."""
    path = Path(directory) / f"{BASE_STEM}.ir.json"
    if not path.is_file():
        raise UserError(f"{path}: file not found (a split run keeps its unsplit graph there)")
    try:
        return load(path)
    except IRError as e:
        raise UserError(str(e)) from None


def split_run(run: Path, out: Path, opts: SplitOptions | AutoOptions, force: bool = False,
              adders: bool = True, progress: bool = True) -> dict:
    """Split the run in ``run`` as ``opts`` says (an :class:`AutoOptions`: the automatic
    split of :mod:`heatq.split.auto`) and write the split run ``out``; returns its summary
    (see the module docstring)."""
    run = Path(run)
    if not run.is_dir():
        raise UserError(f"{run}: no such run directory")
    graph = load_graph(run)
    config = read_json(run / "config.json")
    if "split" in config:
        raise UserError(f"{run} is already a split run; split its base run "
                        f"{config.get('base_run', '')}".rstrip())
    auto, cache = None, {}  # cache: adder costs of distinct products (heatq.split.stats)
    if isinstance(opts, AutoOptions):
        cands = check_auto(graph, opts, str(run))
        prepare_output(out, "run", force, inputs=(run,))
        split, auto = auto_split(graph, opts, cands, cache, progress)
    else:
        check_graph(graph, opts, str(run))
        prepare_output(out, "run", force, inputs=(run,))
        split = apply_split(graph, opts)  # under a second for the binarized seed CNN
    net, widen, note = widened(run, graph, opts)
    layers = split_figures(graph, split, adders=adders, progress=progress, cache=cache)
    w_bits, a_bits = bit_listing(split)
    base_summary = read_json(run / "summary.json") if (run / "summary.json").is_file() else {}
    summary = {"kind": "run", "split": opts.to_json(), "base_run": os.path.abspath(run),
               "dataset": config.get("dataset"), "model": base_summary.get("model"),
               "layers": layers, "totals": totals(layers), "adders_counted": adders,
               "binarization": binarization(split), "weight_bits": w_bits, "act_bits": a_bits,
               "n_nodes": {"before": len(graph.nodes), "after": len(split.nodes)}}
    if auto is not None:
        summary["auto"] = auto
    summary["widened"] = widen
    if note:
        summary["widen_note"] = note
    model_spec = {**config.get("model", {}), "widen": widen} if widen else config.get("model")
    with atomic_dir(out) as tmp:
        save(split, tmp)
        save(graph, tmp, BASE_STEM)
        if net is not None:
            torch.save(net.state_dict(), tmp / "model.pt")
        write_json(tmp / "config.json", {**config, "model": model_spec, "split": opts.to_json(),
                                         "base_run": os.path.abspath(run)})
        write_json(tmp / "summary.json", summary)
    return summary


def widened(run: Path, graph: IntGraph, opts) -> tuple[QNet | None, dict | None, str | None]:
    """``(widened network, {layer: K}, None)`` for a weights-only balanced split of ``run``
    (whose integer graph is ``graph``), checked to sum to ``graph``'s weights; else
    ``(None, None, why not)``."""
    from ..rundir import load_model
    from ..widen import check_exact, widen_model

    if not isinstance(opts, SplitOptions) or opts.weights != "balanced" or opts.acts:
        return None, None, "only weights-only balanced splits have a widened torch network"
    base, config = load_model(run)
    if config.get("model", {}).get("widen"):
        return None, None, f"{run} is already widened (split-then-heat output)"
    try:
        net, widen = widen_model(base, opts.target_bits, opts.k, opts.layers)
    except UserError as e:
        return None, None, str(e)
    check_exact(net, graph, widen)
    return net, widen, None


def split(run: Path = typer.Argument(..., help="a run directory (train or heat output)"),
          weights: Optional[str] = typer.Option(
              None, "--weights", help="split the weights: bitplane | csd | balanced[:K] "
              "(K copies of each input)"),
          acts: Optional[str] = typer.Option(
              None, "--acts", help="split the activations into binary units: thermometer | "
              "bitplane (with --weights too: until every layer is binary)"),
          to: str = typer.Option("binary", "--to", help="weights to reach: binary (-1 or +1) "
                                 "| ternary (-1, 0 or +1) | B (signed bits >= 1)"),
          layers: Optional[str] = typer.Option(
              None, "--layers", help="only these products (dense / conv2d names, comma "
              "separated; default all)"),
          auto: bool = typer.Option(
              False, "--auto", help="choose the split per layer (exact): the candidate of "
              "least --objective"),
          objective: Optional[str] = typer.Option(
              None, "--objective", help="with --auto: adder_bits (default) | luts (LUT + "
              "CARRY4 model) | weight_bits"),
          max_acc_drop: Optional[float] = typer.Option(
              None, "--max-acc-drop", help="--auto with split-then-heat: widen (balanced, "
              "2-bit parts), heat within D points, then the exact automatic split"),
          no_adders: bool = typer.Option(
              False, "--no-adders", help="skip the adder counts (lowering every product to "
              "adder graphs can take minutes)"),
          out: Path = typer.Option(..., "--out", "-o", help="split run directory to write"),
          force: bool = force_option(),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output")) -> None:
    """Split layers and weights into an exactly equivalent network (until binary); writes a
    run directory that `heatq check` validates against the unsplit network."""
    if auto or max_acc_drop is not None:
        opts = parse_auto(objective, to, layers, weights, acts, no_adders, max_acc_drop)
    elif objective is not None:
        raise UserError("--objective is for --auto")
    else:
        opts = parse_options(weights, acts, to, layers)
    if isinstance(opts, AutoOptions) and opts.max_acc_drop is not None:
        from .auto import split_then_heat

        summary = split_then_heat(run, out, opts, force=force, progress=not quiet)
    else:
        summary = split_run(run, out, opts, force=force, adders=not no_adders,
                            progress=not quiet)
    typer.echo(format_split(summary))
    if summary.get("widened"):
        parts = ", ".join(f"{name} x{k}" for name, k in summary["widened"].items())
        typer.echo(f"widened torch network (model.pt, for heatq heat): {parts}")
    typer.echo(f"split run written to {out}")
