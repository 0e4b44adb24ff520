"""``heatq heat``: heat a trained run, find the fewest bits per layer under an accuracy
constraint, and write the result as a new run directory.

    heatq heat RUN --max-acc-drop 0.5 [--objective bits|bops] [--solver greedy|ilp]
               [--min-bits 1] [--max-bits 8] [--strict] --out RUN2

Pipeline: load the run; carve a validation split from its *training* images (the test split
is only reported); measure the reference accuracy; heat with learned continuous bits and dual
ascent (:mod:`heatq.heat.lagrange`); quench; finalise to integer bits by greedy bit-peeling or
the ILP (:mod:`heatq.heat.finalize`), every candidate fine-tuned briefly and accepted only if
the validation drop stays within ``max_acc_drop``; convert, self-check the integer graph
against the network on the validation images, and write the run atomically.

Which network is written, and why, is recorded as ``summary["exported"]`` and printed:
``heated`` (the constraint is met); when no heated bit widths met it, ``source run
(unheated)`` if the source run's own network meets it within the bit bounds, else ``best
found`` (the smaller validation drop of the two; ``constraint_met`` false).  ``--strict``
writes nothing and exits 1 instead of falling back.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import torch
import typer
from tqdm import tqdm

from ..check import validate_activations
from ..qnet_ir import convert
from ..data import load_dataset, split_validation
from ..errors import UserError
from ..files import FORCE_HELP, prepare_output
from ..models import QNet
from ..progress import bars
from ..rundir import atomic_dir, codes_of, load_model, read_json, save_run, write_json
from ..train import encode
from .lagrange import OBJECTIVES, CostModel, HeatSettings, bounds, cost_model, heat_phase
from .loop import Data, LoopConfig, paired_se
from .noise import SCHEDULES, set_step_rule
from .report import format_table, plot_heating
from .search import Search, finalise, measure, met
from .start import check_heatable, start

SOLVERS = ("greedy", "ilp")
MAX_BITS = 16


def _check_args(directory: Path, max_acc_drop: float, objective: str, solver: str,
                min_bits: int, max_bits: int, epochs: int, finetune_epochs: int,
                val_fraction: float, schedule: str, threads: int) -> None:
    if not Path(directory).is_dir():
        raise UserError(f"{directory}: no such run directory")
    check_heatable(Path(directory))
    if not max_acc_drop >= 0 or max_acc_drop > 100:
        raise UserError(f"--max-acc-drop must be between 0 and 100 (points), got {max_acc_drop}")
    if objective not in OBJECTIVES:
        raise UserError(f"unknown --objective {objective!r}; choose bits or bops")
    if solver not in SOLVERS:
        raise UserError(f"unknown --solver {solver!r}; choose greedy or ilp")
    if not 1 <= min_bits <= MAX_BITS:
        raise UserError(f"--min-bits must be between 1 and {MAX_BITS}, got {min_bits}")
    if max_bits is not None and not min_bits <= max_bits <= MAX_BITS:
        raise UserError(f"need --min-bits <= --max-bits <= {MAX_BITS}, "
                        f"got {min_bits} and {max_bits}")
    if epochs < 0 or finetune_epochs < 1:
        raise UserError("--epochs must be >= 0 and --finetune-epochs >= 1")
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"--val-fraction must be in (0, 1), got {val_fraction}")
    if schedule not in SCHEDULES:
        raise UserError(f"unknown --schedule {schedule!r}; choose linear or cosine")
    if threads < 1:
        raise UserError(f"--threads must be >= 1, got {threads}")


def _check_more(noise_margin: float, quench_epochs: int, ref_epochs: int | None,
                min_bits: int, max_act_bits: int | None) -> None:
    if not noise_margin >= 0:
        raise UserError(f"--noise-margin must be >= 0, got {noise_margin}")
    if quench_epochs < 0:
        raise UserError(f"--quench-epochs must be >= 0, got {quench_epochs}")
    if ref_epochs is not None and ref_epochs < 0:
        raise UserError(f"--ref-epochs must be >= 0, got {ref_epochs}")
    if max_act_bits is not None and not min_bits <= max_act_bits <= MAX_BITS:
        raise UserError(f"need --min-bits <= --max-act-bits <= {MAX_BITS}, "
                        f"got {min_bits} and {max_act_bits}")


def _load_data(config: dict, val_fraction: float, seed: int, ic, oc) -> tuple[Data, np.ndarray]:
    """(encoded data, the raw validation images).  The run's own dataset and test split; the
    validation images come out of its training split."""
    name = config.get("dataset")
    if not name:
        raise UserError("config.json names no dataset")
    ds = load_dataset(name, train_per_class=config.get("train_per_class"),
                      seed=int(config.get("seed", 0)))
    x_tr, y_tr, x_val, y_val = split_validation(ds.x_train, ds.y_train, val_fraction, seed)
    return Data(encode(ic, x_tr), y_tr, encode(ic, x_val), y_val, encode(ic, ds.x_test),
                ds.y_test, oc), x_val


@dataclass
class _Run:
    """The source run, the data heating uses and its loop settings."""

    directory: Path
    model: QNet
    config: dict
    ic: object
    oc: object
    data: Data
    x_val_raw: np.ndarray
    cfg: LoopConfig
    held_out: bool
    val_fraction: float
    val_seed: int


def _open_run(directory: Path, val_fraction: float, seed: int, progress: bool) -> _Run:
    """Load the run and its data: a run that kept a validation split out of its training
    (config ``val_fraction`` / ``val_seed``) is measured on that one."""
    model, config = load_model(directory)
    ic, oc = codes_of(config)
    held_out = config.get("val_fraction") is not None and config.get("val_seed") is not None
    if held_out:
        val_fraction, val_seed = float(config["val_fraction"]), int(config["val_seed"])
    else:
        val_seed = seed
    data, x_val_raw = _load_data(config, val_fraction, val_seed, ic, oc)
    train_cfg = config.get("train") or {}
    cfg = LoopConfig(batch_size=int(train_cfg.get("batch_size", 64)),
                     weight_decay=float(train_cfg.get("weight_decay", 1e-4)),
                     max_shift=int(train_cfg.get("max_shift", 2)), progress=bars(progress))
    if tuple(data.x_val.shape[1:]) != tuple(model.input_shape):
        raise UserError(f"dataset {config['dataset']} gives inputs of shape "
                        f"{tuple(data.x_val.shape[1:])}, the model expects {model.input_shape}")
    return _Run(Path(directory), model, config, ic, oc, data, x_val_raw, cfg, held_out,
                val_fraction, val_seed)


def _bits_in(model: QNet, knobs) -> dict:
    steps = dict(model.steps())
    return {k: int(steps[k].bits) for k in knobs}


def _choose(run: _Run, model: QNet, bits: dict, heated: dict, refs: dict, lo: dict, hi: dict,
            max_acc_drop: float, strict: bool) -> tuple[QNet, dict, dict, dict]:
    """(network, bits, its measurements, ``exported`` record): the heated network if it meets
    the constraint, else the fallback described in the module docstring."""
    if met(heated, max_acc_drop):
        return model, bits, heated, {"network": "heated", "reason": (
            f"the fewest bits found within {max_acc_drop} pt of the reference (validation)")}
    best = f"best heated validation drop {heated['drop_val']:.2f} pt > {max_acc_drop} pt"
    if strict:
        typer.echo(f"heatq: error: no bit widths met the constraint ({best}); --strict: "
                   "nothing written", err=True)
        raise typer.Exit(1)
    src, _ = load_model(run.directory)
    src_bits = _bits_in(src, bits)
    within = all(lo[k] <= b <= hi[k] for k, b in src_bits.items())
    m = measure(src, run.data, run.oc, refs)
    why = (f"source run: validation drop {m['drop_val']:.2f} pt"
           + ("" if within else ", bit widths outside --min-bits/--max-bits"))
    if within and met(m, max_acc_drop):
        return src, src_bits, m, {"network": "source run (unheated)", "reason": (
            f"no heated bit widths met the constraint ({best}); the source run meets it "
            f"({why})")}
    if within and m["drop_val"] < heated["drop_val"]:
        model, bits, heated = src, src_bits, m
        what = "the source run (unheated), the smaller drop"
    else:
        what = "the heated network with the smallest drop"
    return model, bits, heated, {"network": "best found (constraint NOT met)", "reason": (
        f"no network met the constraint ({best}; {why}); exported {what}")}


def _convert_checked(model: QNet, run: _Run):
    """The integer graph of ``model``, checked layer by layer against it on up to 256
    validation images; returns (graph, number of images checked)."""
    config = run.config
    graph = convert(model, run.oc.matrix, {"dataset": config.get("dataset"),
                                           "train_per_class": config.get("train_per_class"),
                                           "seed": int(config.get("seed", 0)),
                                           "input_code": run.ic.spec, "output_code": run.oc.name})
    n_check = min(256, len(run.data.y_val))
    check = validate_activations(model, graph, run.ic.encode_numpy(run.x_val_raw[:n_check]),
                                 progress=False)
    if not check["all_equal"]:
        raise RuntimeError(f"heated network and its integer graph differ: {check['layers']}")
    return graph, n_check


def _result_fields(cm: CostModel, bits: dict, m: dict, refs: dict, max_acc_drop: float) -> dict:
    """The summary's description of the exported network."""
    weight_bits = {k: int(bits[k]) for k in cm.weighted}
    act_bits = {k: int(bits[k]) for k in cm.acts}
    n_w = sum(cm.n_weights.values())
    total = cm.weight_bits_total(bits)
    return {
        "weight_bits": weight_bits, "act_bits": act_bits,
        "acc_float": refs["acc_float_test"], "acc_heated": m["acc_test"],
        "start": refs.get("start"),
        "acc_float_val": refs["ref_val"], "acc_heated_val": m["acc_val"],
        "acc_float_val_unquantized": refs["acc_float_val"], "acc_run_val": refs["acc_run_val"],
        "acc_drop_val": m["drop_val"],
        "acc_drop_test": 100.0 * (refs["acc_float_test"] - m["acc_test"]),
        "acc_drop_val_se": paired_se(refs["ref_ok"], m["ok"]),
        "max_acc_drop": max_acc_drop, "slack": max_acc_drop - m["drop_val"],
        "constraint_met": met(m, max_acc_drop),
        "total_weight_bits": total, "n_weights": n_w,
        "mean_weight_bits": float(np.mean(list(weight_bits.values()))),
        "bits_per_weight": total / n_w, "bops": cm.bops(bits),
    }


def _write(out: Path, model: QNet, graph, run: _Run, summary: dict, history: list,
           trials: list) -> None:
    config = {k: v for k, v in run.config.items() if k not in ("split", "base_run")}
    if "split" in run.config:  # split-then-heat: a normal run again, widened
        config["widened_from"] = run.config.get("base_run")
    new_config = {**config, "weight_bits": summary["weight_bits"],
                  "act_bits": summary["act_bits"], "val_fraction": run.val_fraction,
                  "val_seed": run.val_seed,
                  "heat": {k: summary[k] for k in ("max_acc_drop", "objective", "solver",
                                                   "min_bits", "max_bits", "seed",
                                                   "val_fraction", "source")}}
    with atomic_dir(out) as tmp:
        save_run(tmp, model, graph, new_config)
        write_json(tmp / "summary.json", summary)
        plot_heating(history, [t for t in trials if t["accepted"]], tmp / "heating.png",
                     f"heatq heat: {config.get('dataset')}, {config['model'].get('model')}",
                     floor=summary["acc_float_val"] - summary["max_acc_drop"] / 100.0)


def _heat_fields(run: _Run, search: Search, heated: dict, exported: dict, max_acc_drop: float,
                 lo: dict, hi: dict, settings: dict) -> dict:
    """The summary's record of the search: what heating itself ended with, the settings,
    the bounds, the data sizes and every trial."""
    cm, data = search.cm, run.data
    return {
        "exported": exported,
        "heated_result": {"weight_bits": {k: int(search.bits[k]) for k in cm.weighted},
                          "act_bits": {k: int(search.bits[k]) for k in cm.acts},
                          "acc_drop_val": heated["drop_val"],
                          "constraint_met": met(heated, max_acc_drop)},
        "acc_run_float_test": _read_optional(run.directory / "summary.json").get("acc_float"),
        **settings, "bit_bounds": {k: [lo[k], hi[k]] for k in cm.knobs},
        "source": str(run.directory), "n_train": len(data.y_train), "n_val": len(data.y_val),
        "n_test": len(data.y_test), "val_fraction": run.val_fraction, "trials": search.trials,
    }


def format_exported(summary: dict) -> str:
    """One line: which network was written and why."""
    e = summary["exported"]
    return f"exported: {e['network']}: {e['reason']}"


def heat(
    directory: Annotated[Path, typer.Argument(
        help="run directory (trained or heated; or a balanced weight split, widened)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="run directory to write")],
    max_acc_drop: Annotated[float, typer.Option(
        help="allowed validation accuracy drop vs float, in points")] = 0.5,
    objective: Annotated[str, typer.Option(help="bits (total weight bits) | bops")] = "bits",
    solver: Annotated[str, typer.Option(help="greedy (bit-peeling) | ilp (PuLP/CBC)")] = "greedy",
    min_bits: Annotated[int, typer.Option(help="fewest bits per layer")] = 1,
    max_bits: Annotated[Optional[int], typer.Option(
        help="most weight bits per layer (default: the run's own widths)")] = None,
    max_act_bits: Annotated[Optional[int], typer.Option(
        help="most activation bits per layer (default: the run's own widths)")] = None,
    epochs: Annotated[int, typer.Option(help="heating epochs (tau 0 -> 1)")] = 20,
    finetune_epochs: Annotated[int, typer.Option(help="fine-tune epochs per candidate")] = 2,
    quench_epochs: Annotated[int, typer.Option(help="hard-rounding epochs after heating")] = 3,
    ref_epochs: Annotated[Optional[int], typer.Option(
        help="float epochs to retrain the reference without the validation images "
             "(default: the run's; 0: keep the run's weights)")] = None,
    schedule: Annotated[str, typer.Option(help="tau schedule: linear | cosine")] = "cosine",
    noise_margin: Annotated[float, typer.Option(
        help="accept a candidate only if its validation drop plus this many standard errors "
             "(of the paired accuracy difference) is within --max-acc-drop")] = 0.0,
    val_fraction: Annotated[float, typer.Option(
        help="fraction of the training images held out for the constraint")] = 0.2,
    seed: Annotated[int, typer.Option(help="validation split, noise and shuffling")] = 0,
    strict: Annotated[bool, typer.Option(
        "--strict", help="exit 1, writing nothing, when no heated bit widths meet the constraint "
             "(default: fall back to the source run if it meets it, and say so)")] = False,
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
    threads: Annotated[int, typer.Option(help="torch threads")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress output")] = False,
    progress: Annotated[bool, typer.Option(hidden=True)] = True,
) -> dict:
    """Heat a run: the fewest bits per layer whose validation accuracy stays within
    --max-acc-drop points of float; writes a new run directory (IR, model, summary, plot)."""
    _check_args(directory, max_acc_drop, objective, solver, min_bits, max_bits, epochs,
                finetune_epochs, val_fraction, schedule, threads)
    _check_more(noise_margin, quench_epochs, ref_epochs, min_bits, max_act_bits)
    prepare_output(out, "run", force, inputs=(directory,))
    settings = {"objective": objective, "solver": solver, "min_bits": min_bits,
                "max_bits": max_bits, "seed": seed, "finetune_epochs": finetune_epochs,
                "quench_epochs": quench_epochs, "noise_margin": noise_margin}
    t0 = time.time()
    torch.set_num_threads(threads)
    progress = progress and not quiet
    run = _open_run(directory, val_fraction, seed, progress)
    data, cfg = run.data, run.cfg
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model, reference, refs = start(run, ref_epochs, seed)
    set_step_rule(model, "mse")
    cm = cost_model(model, objective, MAX_BITS)
    hs = HeatSettings(epochs=epochs, schedule=schedule)
    lo, hi = bounds(cm, model, min_bits, max_bits, max_act_bits)
    heated_bits, history, snapshot = heat_phase(model, data, cm, refs["ref_val"], max_acc_drop,
                                                lo, hi, hs, cfg, gen, refs["ref_ok"],
                                                noise_margin)
    with tqdm(desc="finalising", disable=not bars(progress), leave=False) as bar:
        search = Search(model, data, cm, refs["ref_val"], max_acc_drop, finetune_epochs, 5e-4,
                         hs.soft_bits, cfg, gen, bar, refs["ref_ok"], noise_margin)
        finalise(search, heated_bits, snapshot, lo, hi, solver, quench_epochs, finetune_epochs)
    model.load_state_dict(search.state)  # bits and binary points included
    heated = measure(model, data, run.oc, refs)
    model, bits, m, exported = _choose(run, model, dict(search.bits), heated, refs, lo, hi,
                                       max_acc_drop, strict)
    graph, n_check = _convert_checked(model, run)
    summary = _result_fields(cm, bits, m, refs, max_acc_drop)
    summary.update(_heat_fields(run, search, heated, exported, max_acc_drop, lo, hi, settings),
                   reference=reference, heated_bits=heated_bits, history=history,
                   heating_snapshot=None if snapshot is None else {
                       k: v for k, v in snapshot.items() if k != "state"},
                   heating=asdict(hs), check_val_samples=n_check,
                   seconds=round(time.time() - t0, 1))
    _write(out, model, graph, run, summary, history, search.trials)
    typer.echo(format_table(summary))
    typer.echo(format_exported(summary))
    typer.echo(f"run written to {out}")
    return summary


def _read_optional(path: Path) -> dict:
    try:
        return read_json(path) if path.exists() else {}
    except UserError:
        return {}
