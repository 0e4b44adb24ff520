"""``heatq heat --sweep 0.25,0.5,1,2``: the accuracy-vs-bits Pareto front in one command.

The bounds are taken tightest first.  The reference, the data and the start network are built
once (:func:`heatq.heat.job.open_job`); heating runs once, at the tightest bound; every looser
bound then starts its finalisation from the previous point's network (which meets the looser
bound too) and peels further.  A bound that no network meets is recorded as such and the next
one starts from the last feasible point (or heats afresh if there is none).

Writes into ``--out`` (atomically, as one directory): ``drop-<D>/`` (a run directory per
feasible point, as ``heatq heat`` writes it), ``pareto.json`` (every point: bits, accuracies,
costs, margin, whether it is on the front) and ``pareto.png`` (test and validation accuracy
against the objective's cost and against total weight bits), and ``summary.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ..errors import UserError
from ..files import atomic_dir
from ..rundir import write_json
from .job import Job, NoFeasibleNetwork, search_point

MAX_POINTS = 16


def parse_sweep(text: str) -> list[float]:
    """``"0.25,0.5,1,2"`` -> [0.25, 0.5, 1.0, 2.0] (sorted, unique; each in (0, 100])."""
    try:
        drops = sorted({float(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise UserError(f"--sweep takes comma-separated drops in points, e.g. 0.25,0.5,1,2; "
                        f"got {text!r}") from None
    if not drops or not all(0 <= d <= 100 for d in drops):
        raise UserError(f"--sweep drops must be between 0 and 100 points, got {text!r}")
    if len(drops) > MAX_POINTS:
        raise UserError(f"--sweep takes at most {MAX_POINTS} drops, got {len(drops)}")
    return drops


def point_name(drop: float) -> str:
    """The point's run directory: ``drop-0.25``, ``drop-1`` (``%g``)."""
    return f"drop-{drop:g}"


def pareto_front(rows: list[dict], cost_key: str) -> list[bool]:
    """Which rows are not dominated: no other row has cost <= and validation accuracy >=,
    one of them strictly (infeasible rows are never on the front)."""
    front = []
    for r in rows:
        if not r["constraint_met"]:
            front.append(False)
            continue
        dominated = any(o is not r and o["constraint_met"] and o[cost_key] <= r[cost_key]
                        and o["acc_heated_val"] >= r["acc_heated_val"]
                        and (o[cost_key] < r[cost_key] or o["acc_heated_val"] > r["acc_heated_val"])
                        for o in rows)
        front.append(not dominated)
    return front


ROW_KEYS = ("max_acc_drop", "constraint_met", "weight_bits", "act_bits", "acc_heated",
            "acc_heated_val", "acc_drop_val", "acc_drop_test", "total_weight_bits", "bops",
            "split_luts", "margin", "exported", "seconds")


def run_sweep(job: Job, drops: list[float], out: Path, t0: float, strict: bool) -> dict:
    """Every point of the sweep into ``out``; returns the sweep's summary."""
    from .command import point_summary  # the one-point summary, shared
    from .output import write_point
    from .report import plot_pareto

    rows, prev = [], None
    cost_key = {"bits": "total_weight_bits"}.get(job.cm.objective, job.cm.objective)
    with atomic_dir(out) as tmp:
        for d in drops:
            t1 = time.time()
            try:
                point = search_point(job, d, after=prev, strict=strict)
            except NoFeasibleNetwork as e:
                typer.echo(f"--max-acc-drop {d:g}: {e}")
                rows.append({"max_acc_drop": d, "constraint_met": False, "error": str(e)})
                continue
            summary = point_summary(job, point, t1)
            write_point(job, point, tmp / point_name(d), summary)
            rows.append({**{k: summary[k] for k in ROW_KEYS}, "run": point_name(d)})
            typer.echo(f"--max-acc-drop {d:g}: {_describe(summary, cost_key)}")
            prev = point
        met_rows = [r for r in rows if r["constraint_met"]]
        for r, on in zip(met_rows, pareto_front(met_rows, cost_key)):
            r["pareto"] = on
        doc = {"objective": job.cm.objective, "cost_key": cost_key, "points": rows,
               "source": str(job.directory), "acc_float": job.refs["acc_float_test"],
               "acc_float_val": job.refs["ref_val"]}
        write_json(tmp / "pareto.json", doc)
        if met_rows:
            plot_pareto(doc, tmp / "pareto.png")
        summary = {"sweep": drops, "points": len(met_rows), "objective": job.cm.objective,
                   "seconds": round(time.time() - t0, 1), "source": str(job.directory)}
        write_json(tmp / "summary.json", summary)
    typer.echo(f"sweep written to {out}: {len(met_rows)} of {len(drops)} bounds met "
               f"(pareto.json, pareto.png)")
    return {**summary, "pareto": doc}


def _describe(s: dict, cost_key: str) -> str:
    w = " ".join(str(b) for b in s["weight_bits"].values())
    a = " ".join(str(b) for b in s["act_bits"].values())
    return (f"weights {w} | acts {a} | {cost_key} {s[cost_key]} | val drop "
            f"{s['acc_drop_val']:.2f} pt (+{s['margin']['points']:.2f} margin), test drop "
            f"{s['acc_drop_test']:.2f} pt")
