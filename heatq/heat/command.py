"""``heatq heat``: heat a trained run, find the fewest bits per layer under an accuracy
constraint, and write the result as a new run directory.

    heatq heat RUN --max-acc-drop 0.5 [--objective split_luts|bits|bops] [--solver greedy|ilp]
               [--noise-margin Z] [--reference float|start] [--strict] --out RUN2
    heatq heat RUN --sweep 0.25,0.5,1,2 --out SWEEP      # the accuracy-vs-bits Pareto front

Pipeline (:mod:`heatq.heat.job`): load the run; carve a validation split from its *training*
images (the test split is only reported); measure the reference accuracy; heat with learned
continuous bits and dual ascent (:mod:`heatq.heat.lagrange`); quench; finalise to integer
bits by greedy bit-peeling or the ILP (:mod:`heatq.heat.finalize`), every candidate
fine-tuned briefly and accepted only if its validation drop plus the noise margin (``Z``
paired standard errors, :mod:`heatq.heat.constraint`) stays within ``max_acc_drop``; convert,
self-check the integer graph against the network on the validation images, and write the run
atomically (:mod:`heatq.heat.output`).

The written network always meets the constraint: the heated one, else the source run, else
the network heating started from (``summary["exported"]`` says which and why); when none does
within the bit bounds the command writes nothing and exits 1 (``--strict``: only the heated
network counts).  A sweep (:mod:`heatq.heat.sweep`) heats once, at the tightest bound, and
finalises each looser bound from the previous point's network.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import torch
import typer

from ..errors import UserError
from ..files import FORCE_HELP, atomic_dir, prepare_output
from ..provenance import make_deterministic, record
from ..distributed import launch_self, session
from .job import MAX_BITS, NoFeasibleNetwork, open_job, search_point
from .lagrange import OBJECTIVES, HeatSettings
from .noise import SCHEDULES
from .output import heat_fields, result_fields, write_point
from .report import format_table
from .start import check_heatable
from .sweep import parse_sweep, run_sweep

SOLVERS = ("greedy", "ilp")
REFERENCES = ("float", "start")


def _check_args(directory: Path, max_acc_drop: float, objective: str, solver: str,
                min_bits: int, max_bits: int, epochs: int, finetune_epochs: int,
                val_fraction: float, schedule: str, threads: int) -> None:
    if not Path(directory).is_dir():
        raise UserError(f"{directory}: no such run directory")
    check_heatable(Path(directory))
    if not max_acc_drop >= 0 or max_acc_drop > 100:
        raise UserError(f"--max-acc-drop must be between 0 and 100 (points), got {max_acc_drop}")
    if objective not in OBJECTIVES:
        raise UserError(f"unknown --objective {objective!r}; choose one of "
                        f"{', '.join(OBJECTIVES)}")
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
                min_bits: int, max_act_bits: int | None, reference: str, distill: float,
                act_delay: float, confirm_fraction: float, act_bits_lr: float) -> None:
    if not act_bits_lr >= 0:
        raise UserError(f"--act-bits-lr must be >= 0, got {act_bits_lr}")
    if not 0.0 <= confirm_fraction < 1.0:
        raise UserError(f"--confirm-fraction must be in [0, 1), got {confirm_fraction}")
    if reference not in REFERENCES:
        raise UserError(f"unknown --reference {reference!r}; choose float or start")
    if not 0.0 <= distill <= 1.0:
        raise UserError(f"--distill must be in [0, 1], got {distill}")
    if not 0.0 <= act_delay < 1.0:
        raise UserError(f"--act-delay must be in [0, 1), got {act_delay}")
    if not noise_margin >= 0:
        raise UserError(f"--noise-margin must be >= 0, got {noise_margin}")
    if quench_epochs < 0:
        raise UserError(f"--quench-epochs must be >= 0, got {quench_epochs}")
    if ref_epochs is not None and ref_epochs < 0:
        raise UserError(f"--ref-epochs must be >= 0, got {ref_epochs}")
    if max_act_bits is not None and not min_bits <= max_act_bits <= MAX_BITS:
        raise UserError(f"need --min-bits <= --max-act-bits <= {MAX_BITS}, "
                        f"got {min_bits} and {max_act_bits}")


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
    sweep: Annotated[Optional[str], typer.Option(
        help="comma-separated drops (points), e.g. 0.25,0.5,1,2: one run per bound and the "
             "Pareto front (pareto.json, pareto.png) in --out; replaces --max-acc-drop")] = None,
    objective: Annotated[str, typer.Option(
        help="split_luts (the exact binary split's size: weights x weight bits x "
             "(2^a - 1) thermometer units of the input) | bits (total weight bits) | bops")
    ] = "split_luts",
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
    reference: Annotated[str, typer.Option(
        help="float: the constraint is against the float network (or the quantized start, "
             "if better) | start: against the network heating starts from")] = "float",
    schedule: Annotated[str, typer.Option(help="tau schedule: linear | cosine")] = "cosine",
    act_delay: Annotated[float, typer.Option(
        help="fraction of the heating before activation bits start to learn")] = 0.0,
    act_bits_lr: Annotated[float, typer.Option(
        help="step size of the activation bits' optimiser (weights' bits: 0.01)")] = 0.01,
    distill: Annotated[float, typer.Option(
        help="weight of the reference network's code-bit probabilities in the training "
             "targets (knowledge distillation; 0: the code bits alone)")] = 0.5,
    noise_margin: Annotated[float, typer.Option(
        help="accept a candidate only if its validation drop plus this many paired (McNemar) "
             "standard errors is within --max-acc-drop (1: one-sided 84 %)")] = 0.0,
    val_fraction: Annotated[float, typer.Option(
        help="fraction of the training images held out for the constraint")] = 0.2,
    confirm_fraction: Annotated[float, typer.Option(
        help="part of the validation images the search never sees: the written network is "
             "confirmed on them (so the search's lucky draws do not count); 0: one split")
    ] = 0.5,
    seed: Annotated[int, typer.Option(help="validation split, noise and shuffling")] = 0,
    strict: Annotated[bool, typer.Option(
        "--strict", help="only the heated network may be written (default: fall back to the "
             "source run or the start network when they meet the constraint, and say so)")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
    threads: Annotated[int, typer.Option(help="torch threads")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress output")] = False,
    progress: Annotated[bool, typer.Option(hidden=True)] = True,
    device: Annotated[str, typer.Option(
        help="where to train: cpu | auto (CUDA when present) | cuda | cuda:I; conversion and "
             "the self-check stay on the CPU")] = "cpu",
    nproc: Annotated[Optional[int], typer.Option(
        help="heat data-parallel in N processes on this machine (launches torchrun "
             "--standalone; docs/distributed.md)")] = None,
    cli: typer.Context = None,
) -> dict | None:
    """Heat a run: the fewest bits per layer whose validation accuracy stays within
    --max-acc-drop points of float; writes a new run directory (IR, model, summary, plot)."""
    _check_args(directory, max_acc_drop, objective, solver, min_bits, max_bits, epochs,
                finetune_epochs, val_fraction, schedule, threads)
    _check_more(noise_margin, quench_epochs, ref_epochs, min_bits, max_act_bits, reference,
                distill, act_delay, confirm_fraction, act_bits_lr)
    drops = parse_sweep(sweep) if sweep is not None else None
    prepare_output(out, "sweep" if drops else "run", force, inputs=(directory,))
    options = {"objective": objective, "solver": solver, "min_bits": min_bits,
               "max_bits": max_bits, "max_act_bits": max_act_bits, "seed": seed,
               "finetune_epochs": finetune_epochs, "quench_epochs": quench_epochs,
               "noise_margin": noise_margin, "reference": reference, "distill": distill,
               "ref_epochs": ref_epochs, "val_fraction": val_fraction,
               "confirm_fraction": confirm_fraction}
    if nproc is not None:
        raise typer.Exit(launch_self(cli, nproc, threads))
    t0 = time.time()
    make_deterministic(threads)
    hs = HeatSettings(epochs=epochs, schedule=schedule, act_delay=act_delay,
                      act_bits_lr=act_bits_lr)
    with session(device) as ctx:
        job = open_job(directory, options, hs, progress and not quiet and ctx.main, ctx)
        if not ctx.main:
            return follow(job, drops or [max_acc_drop], bool(drops), strict)
        if drops:
            return run_sweep(job, drops, out, t0, strict)
        return _heat_one(job, max_acc_drop, strict, out, t0)


def follow(job, drops: list[float], sweep: bool, strict: bool) -> None:
    """A data-parallel rank other than 0: the searches rank 0 runs, in its order (their
    training is collective; every rank measures and decides alike), nothing reported or
    written.  A single point's NoFeasibleNetwork is raised as on rank 0."""
    prev = None
    for d in drops:
        try:
            prev = search_point(job, d, after=prev, strict=strict)
        except NoFeasibleNetwork:
            if not sweep:
                raise


def _heat_one(job, max_acc_drop: float, strict: bool, out: Path, t0: float) -> dict:
    """One ``--max-acc-drop``: search, then write the run directory ``out``."""
    point = search_point(job, max_acc_drop, strict=strict)
    summary = point_summary(job, point, t0)
    with atomic_dir(out) as tmp:
        write_point(job, point, tmp, summary)
    typer.echo(format_table(summary))
    typer.echo(format_exported(summary))
    typer.echo(f"run written to {out}")
    return summary


def point_summary(job, point, t0: float) -> dict:
    """The run's ``summary.json`` for one point."""
    summary = result_fields(job, point)
    summary.update(heat_fields(job, point),
                   **{k: job.options[k] for k in ("objective", "solver", "min_bits", "max_bits",
                                                  "seed", "finetune_epochs", "quench_epochs",
                                                  "noise_margin", "distill",
                                                  "confirm_fraction")},
                   heating=asdict(job.hs), provenance=provenance(job),
                   distributed=job.cfg.ctx.record(),
                   seconds=round(time.time() - t0, 1))
    return summary


def provenance(job) -> dict:
    """What decides this heating run (:func:`heatq.provenance.record`): versions, threads,
    the seeds (the run's data seed, heat's validation split and noise/shuffle seed) and the
    hash of every split heat used (uint8 images and labels, hashed as ``heatq train`` hashes
    them: a heated run's hashes equal its source run's)."""
    return record(torch.get_num_threads(),
                  {"data": int(job.config.get("seed", 0)), "validation_split": job.val_seed,
                   "confirmation_split": job.val_seed, "heat": job.seed}, job.raw)
