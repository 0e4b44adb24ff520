"""What ``heatq heat`` writes for a point (:mod:`heatq.heat.job`): the chosen network as a run
directory (IR, model, config, ``summary.json``, ``heating.png``), checked layer by layer
against its integer graph first."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..check import validate_activations
from ..qnet_ir import convert
from ..rundir import read_json, save_run, write_json
from ..errors import UserError
from .job import Job, Point
from .report import plot_heating


def convert_checked(job: Job):
    """The integer graph of ``job.model``, checked layer by layer against it on up to 256
    validation images; returns (graph, number of images checked)."""
    config = job.config
    graph = convert(job.model, job.oc.matrix, {
        "dataset": config.get("dataset"), "train_per_class": config.get("train_per_class"),
        "seed": int(config.get("seed", 0)), "input_code": job.ic.spec,
        "output_code": job.oc.name}, job.oc.decoder)
    n_check = min(256, len(job.data.y_val))
    check = validate_activations(job.model, graph,
                                 job.ic.encode_numpy(job.x_val_raw[:n_check]), progress=False,
                                 decoder=job.oc.decoder)
    if not check["all_equal"]:
        raise RuntimeError(f"heated network and its integer graph differ: {check['layers']}")
    return graph, n_check


def result_fields(job: Job, point: Point) -> dict:
    """The summary's description of the exported network: bits, accuracies, the constraint
    with its margin, and the three costs."""
    cm, refs, m, bits = job.cm, job.final_refs, point.measured, point.bits
    weight_bits = {k: int(bits[k]) for k in cm.weighted}
    act_bits = {k: int(bits[k]) for k in cm.acts}
    constraint = job.final_constraint(point.max_acc_drop)
    v = constraint.judge(m["acc_val"], m["ok"])
    n_w = sum(cm.n_weights.values())
    total = cm.weight_bits_total(bits)
    return {
        "weight_bits": weight_bits, "act_bits": act_bits,
        "acc_float": refs["acc_float_test"], "acc_heated": m["acc_test"],
        "start": job.refs.get("start"),
        "acc_float_val": refs["ref_val"], "acc_heated_val": m["acc_val"],
        "acc_float_val_unquantized": refs["acc_float_val"], "acc_run_val": refs["acc_run_val"],
        "reference_against": refs["against"],
        "acc_drop_val": v.drop, "acc_drop_test": 100.0 * (refs["acc_float_test"] - m["acc_test"]),
        "acc_drop_val_se": v.se,
        "margin": {**constraint.describe(), "points": v.margin},
        "max_acc_drop": point.max_acc_drop, "slack": point.max_acc_drop - v.upper,
        "constraint_met": v.met,
        "total_weight_bits": total, "n_weights": n_w,
        "mean_weight_bits": float(np.mean(list(weight_bits.values()))),
        "bits_per_weight": total / n_w, "bops": cm.bops(bits), "split_luts": cm.split_luts(bits),
    }


def heat_fields(job: Job, point: Point) -> dict:
    """The summary's record of the search: what heating itself ended with, the settings,
    the bounds, the data sizes and every trial."""
    cm, data = job.cm, job.data
    heated = point.heated
    v = job.final_constraint(point.max_acc_drop).judge(heated["acc_val"], heated["ok"])
    n_confirm = 0 if job.confirm is None else len(job.confirm.y_val)
    return {
        "exported": point.exported,
        "heated_result": {"weight_bits": {k: int(point.search_bits[k]) for k in cm.weighted},
                          "act_bits": {k: int(point.search_bits[k]) for k in cm.acts},
                          "acc_drop_val": v.drop, "margin_val": v.margin,
                          "constraint_met": v.met},
        "acc_run_float_test": _read_optional(job.directory / "summary.json").get("acc_float"),
        "bit_bounds": {k: [job.lo[k], job.hi[k]] for k in cm.knobs},
        "source": str(job.directory), "n_train": len(data.y_train),
        "n_val": len(data.y_val) + n_confirm, "n_val_search": len(data.y_val),
        "n_val_confirm": n_confirm,
        "n_test": len(data.y_test), "val_fraction": job.val_fraction, "trials": point.trials,
        "reference": job.reference, "heated_bits": point.heated_bits, "history": point.history,
        "heating_snapshot": None if point.snapshot is None else {
            k: v for k, v in point.snapshot.items() if k != "state"},
    }


def write_point(job: Job, point: Point, where: Path, summary: dict) -> None:
    """Write the point's network as a run directory into ``where`` (a temporary directory
    the caller renames): model, IR, config, ``summary.json`` (``summary``, completed with the
    self-check's image count) and ``heating.png``."""
    job.model.load_state_dict(point.state)
    graph, n_check = convert_checked(job)
    summary["check_val_samples"] = n_check
    config = {k: v for k, v in job.config.items() if k not in ("split", "base_run")}
    if "split" in job.config:  # split-then-heat: a normal run again, widened
        config["widened_from"] = job.config.get("base_run")
    new_config = {**config, "weight_bits": summary["weight_bits"],
                  "act_bits": summary["act_bits"], "val_fraction": job.val_fraction,
                  "val_seed": job.val_seed, "distributed": job.cfg.ctx.record(),
                  "heat": {k: summary[k] for k in ("max_acc_drop", "objective", "solver",
                                                   "min_bits", "max_bits", "seed",
                                                   "val_fraction", "source")}}
    where.mkdir(parents=True, exist_ok=True)
    save_run(where, job.model, graph, new_config)
    write_json(where / "summary.json", summary)
    plot_heating(point.history, [t for t in point.trials if t["accepted"]],
                 where / "heating.png",
                 f"heatq heat: {config.get('dataset')}, {config['model'].get('model')}",
                 floor=summary["acc_float_val"] - summary["max_acc_drop"] / 100.0)


def _read_optional(path: Path) -> dict:
    try:
        return read_json(path) if path.exists() else {}
    except UserError:
        return {}
