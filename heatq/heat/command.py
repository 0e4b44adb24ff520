"""``heatq heat``: heat a trained run, find the fewest bits per layer under an accuracy
constraint, and write the result as a new run directory.

    heatq heat RUN --max-acc-drop 0.5 [--objective bits|bops] [--solver greedy|ilp]
               [--min-bits 1] [--max-bits 8] --out RUN2

Pipeline: load the run; carve a validation split from its *training* images (the test split
is only reported); measure the reference accuracy; heat with learned continuous bits and dual
ascent (:mod:`heatq.heat.lagrange`); quench; finalise to integer bits by greedy bit-peeling or
the ILP (:mod:`heatq.heat.finalize`), every candidate fine-tuned briefly and accepted only if
the validation drop stays within ``max_acc_drop``; convert, self-check the integer graph
against the network on the validation images, and write the run atomically.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import torch
import typer
from tqdm import tqdm

from ..check import validate_activations
from ..convert import convert
from ..data import load_dataset, split_validation
from ..errors import UserError
from ..models import QNet, build_model, set_layer_bits
from ..quant import QReLU, QWeighted
from ..rundir import (atomic_dir, codes_of, load_float_model, load_model, read_json, save_run,
                      write_json)
from ..train import TrainConfig, calibrate, encode, fit
from .finalize import greedy_peel, greedy_raise, ilp_search, monotone_harm
from .lagrange import OBJECTIVES, CostModel, HeatSettings, bounds, cost_model, heat_phase
from .loop import Data, LoopConfig, evaluate, finetune, paired_se
from .noise import SCHEDULES, set_bits, set_step_rule
from .report import format_table, plot_heating

SOLVERS = ("greedy", "ilp")
MAX_BITS = 16


class _Search:
    """The current network and its bits; ``probe`` and ``accept`` for the finalisers."""

    def __init__(self, model: QNet, data: Data, cm: CostModel, ref_acc_val: float,
                 max_acc_drop: float, ft_epochs: int, ft_lr: float, soft_bits: int,
                 cfg: LoopConfig, gen: torch.Generator, bar, ref_ok=None,
                 noise_margin: float = 0.0) -> None:
        self.model, self.data, self.cm = model, data, cm
        self.ref, self.delta = ref_acc_val, max_acc_drop
        self.ref_ok, self.z = ref_ok, noise_margin
        self.ft_epochs, self.ft_lr, self.soft_bits = ft_epochs, ft_lr, soft_bits
        self.cfg, self.gen, self.bar = cfg, gen, bar
        self.steps = dict(model.steps())
        self.bits = {k: self.steps[k].bits for k in cm.knobs}
        self.state = copy.deepcopy(model.state_dict())
        self.trials: list[dict] = []
        self.best: dict | None = None  # smallest drop seen (for an impossible constraint)

    def _set(self, bits: dict) -> None:
        set_bits(self.model, bits)

    def probe(self, bits: dict) -> float:
        """Validation loss of the current network rounded to ``bits`` (no training)."""
        self.model.load_state_dict(self.state)
        self._set(bits)
        _, loss = evaluate(self.model, self.data.x_val, self.data.y_val, self.data.code)
        return loss

    def cost(self, bits: dict) -> float:
        return float(self.cm.cost(bits))

    def accept(self, bits: dict, epochs: int | None = None, soft: bool = True,
               force: bool = False) -> bool:
        """Fine-tune the current network at ``bits``; keep it if the constraint holds (or
        ``force``)."""
        self.model.load_state_dict(self.state)
        self._set(bits)
        ep = self.ft_epochs if epochs is None else epochs
        finetune(self.model, self.data, ep, self.ft_lr, self.cfg, self.gen,
                 soft_epochs=ep // 2 if soft else 0, soft_bits=self.soft_bits)
        acc, loss, mask = evaluate(self.model, self.data.x_val, self.data.y_val,
                                   self.data.code, exact=True, mask=True)
        drop = 100.0 * (self.ref - acc)
        se = paired_se(self.ref_ok, mask)
        ok = drop + self.z * se <= self.delta + 1e-9
        row = {"bits": dict(bits), "acc_val": acc, "loss_val": loss, "acc_drop_val": drop,
               "se_val": se,
               "total_weight_bits": self.cm.weight_bits_total(bits), "bops": self.cm.bops(bits),
               "cost": self.cost(bits), "accepted": bool(ok or force)}
        self.trials.append(row)
        state = copy.deepcopy(self.model.state_dict())
        if self.best is None or drop < self.best["acc_drop_val"]:
            self.best = {**row, "state": state}
        if ok or force:
            self.state, self.bits = state, dict(bits)
        else:
            self.model.load_state_dict(self.state)
        self.bar.update(1)
        self.bar.set_postfix(wbits=self.cm.weight_bits_total(self.bits), drop=f"{drop:.2f}")
        return ok


def _check_args(directory: Path, max_acc_drop: float, objective: str, solver: str,
                min_bits: int, max_bits: int, epochs: int, finetune_epochs: int,
                val_fraction: float, schedule: str, threads: int) -> None:
    if not Path(directory).is_dir():
        raise UserError(f"{directory}: no such run directory")
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


def _reference(directory: Path, model: QNet, config: dict, data: Data, held_out: bool,
               ref_epochs: int | None, seed: int, cfg: LoopConfig) -> tuple[QNet, dict]:
    """The network heating starts from, which also gives the reference accuracy.

    A run that held a validation split out of its training (config ``val_fraction`` and
    ``val_seed``) starts from its float network (``model_float.pt``, the network the run's
    ``acc_float`` measured, before quantization-aware training) or, without that file (a
    heated run), from the run as it is.  A run trained on every training image has seen the
    validation images, so its validation accuracy is inflated and no honest drop can be
    measured against it: the float network is then retrained on the training part alone
    (``ref_epochs``, default the run's float epochs; 0 keeps the run's weights and its
    optimistic reference)."""
    train_cfg = config.get("train") or {}
    epochs = int(train_cfg.get("epochs", 30)) if ref_epochs is None else ref_epochs
    ref = load_float_model(directory, config) if held_out else None
    if ref is not None:
        set_layer_bits(ref, *_bits_of(model))
        info = {"network": "run's float network (before QAT)", "held_out": True, "epochs": 0}
    elif held_out or epochs == 0:
        return model, {"network": "run", "held_out": held_out, "epochs": 0}
    else:
        ref = build_model(config["model"])
        set_layer_bits(ref, *_bits_of(model))
        ref.set_mode("float")
        tc = TrainConfig(epochs=epochs, seed=seed, batch_size=cfg.batch_size,
                         lr=float(train_cfg.get("lr", 3e-3)), weight_decay=cfg.weight_decay,
                         max_shift=cfg.max_shift, progress=cfg.progress)
        fit(ref, data.x_train, data.y_train, data.code, epochs, tc.lr, tc,
            "reference (float, training part)")
        info = {"network": "retrained on the training part", "held_out": False,
                "epochs": epochs}
    ref.set_mode("quant")
    calibrate(ref, data.x_train)
    ref.eval()
    return ref, info


def _bits_of(model: QNet) -> tuple[dict, dict]:
    w = {n: s.bits for n, s in model.steps() if isinstance(s, QWeighted)}
    a = {n: s.bits for n, s in model.steps() if isinstance(s, QReLU)}
    return w, a


def heat(
    directory: Annotated[Path, typer.Argument(help="trained run directory")],
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
    threads: Annotated[int, typer.Option(help="torch threads")] = 1,
    progress: Annotated[bool, typer.Option(help="progress bars")] = True,
) -> dict:
    """Heat a run: the fewest bits per layer whose validation accuracy stays within
    --max-acc-drop points of float; writes a new run directory (IR, model, summary, plot)."""
    _check_args(directory, max_acc_drop, objective, solver, min_bits, max_bits, epochs,
                finetune_epochs, val_fraction, schedule, threads)
    if not noise_margin >= 0:
        raise UserError(f"--noise-margin must be >= 0, got {noise_margin}")
    if quench_epochs < 0:
        raise UserError(f"--quench-epochs must be >= 0, got {quench_epochs}")
    if ref_epochs is not None and ref_epochs < 0:
        raise UserError(f"--ref-epochs must be >= 0, got {ref_epochs}")
    if max_act_bits is not None and not min_bits <= max_act_bits <= MAX_BITS:
        raise UserError(f"need --min-bits <= --max-act-bits <= {MAX_BITS}, "
                        f"got {min_bits} and {max_act_bits}")
    t0 = time.time()
    torch.set_num_threads(threads)
    model, config = load_model(directory)
    ic, oc = codes_of(config)
    held_out = config.get("val_fraction") is not None and config.get("val_seed") is not None
    if held_out:  # the run kept a validation split out of its training: use that one
        val_fraction, val_seed = float(config["val_fraction"]), int(config["val_seed"])
    else:
        val_seed = seed
    data, x_val_raw = _load_data(config, val_fraction, val_seed, ic, oc)
    train_cfg = config.get("train") or {}
    cfg = LoopConfig(batch_size=int(train_cfg.get("batch_size", 64)),
                     weight_decay=float(train_cfg.get("weight_decay", 1e-4)),
                     max_shift=int(train_cfg.get("max_shift", 2)), progress=progress)
    if tuple(data.x_val.shape[1:]) != tuple(model.input_shape):
        raise UserError(f"dataset {config['dataset']} gives inputs of shape "
                        f"{tuple(data.x_val.shape[1:])}, the model expects {model.input_shape}")

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model, reference = _reference(Path(directory), model, config, data, held_out, ref_epochs,
                                  seed, cfg)
    # reference: the network unquantized, and as quantized; the stricter (higher) one
    model.set_mode("float")
    acc_float_val, _ = evaluate(model, data.x_val, data.y_val, oc)
    acc_float_test, _ = evaluate(model, data.x_test, data.y_test, oc)
    model.set_mode("quant")
    acc_run_val, _, run_ok = evaluate(model, data.x_val, data.y_val, oc, exact=True, mask=True)
    ref_val = max(acc_float_val, acc_run_val)
    model.set_mode("float")
    _, _, float_ok = evaluate(model, data.x_val, data.y_val, oc, mask=True)
    ref_ok = float_ok if acc_float_val >= acc_run_val else run_ok
    model.set_mode("quant")
    set_step_rule(model, "mse")
    cm = cost_model(model, objective, MAX_BITS)
    hs = HeatSettings(epochs=epochs, schedule=schedule)
    lo, hi = bounds(cm, model, min_bits, max_bits, max_act_bits)
    heated_bits, history, snapshot = heat_phase(model, data, cm, ref_val, max_acc_drop, lo, hi,
                                                hs, cfg, gen, ref_ok, noise_margin)
    log: list[dict] = []
    with tqdm(desc="finalising", disable=not progress, leave=False) as bar:
        search = _Search(model, data, cm, ref_val, max_acc_drop, finetune_epochs, 5e-4,
                         hs.soft_bits, cfg, gen, bar, ref_ok, noise_margin)
        feasible = search.accept(heated_bits, epochs=quench_epochs, soft=False, force=True)
        if snapshot is not None and (not feasible
                                     or snapshot["cost"] < search.cost(search.bits)):
            # a cheaper (or the only) feasible point seen while heating: start from it
            search.state, search.bits = snapshot["state"], snapshot["bits"]
            search.trials.append({k: v for k, v in snapshot.items() if k != "state"}
                                 | {"accepted": True, "from_heating": True,
                                    "total_weight_bits": cm.weight_bits_total(snapshot["bits"]),
                                    "bops": cm.bops(snapshot["bits"])})
            feasible = True
        if not feasible:  # repair: is the constraint reachable at all?
            start_state, start_bits = search.state, search.bits
            if search.accept(hi, epochs=max(quench_epochs, finetune_epochs), soft=False):
                search.state, search.bits = start_state, start_bits
                feasible = greedy_raise(start_bits, hi, search.cost, search.probe,
                                        search.accept, log) is not None
                if not feasible:  # should not happen (all-max held): fall back to it
                    search.accept(hi, force=True)
                    feasible = True
        if feasible:
            if solver == "greedy":
                greedy_peel(search.bits, lo, search.cost, search.probe, search.accept, log)
            else:
                base = search.probe(search.bits)
                domains = {k: list(range(lo[k], hi[k] + 1)) for k in cm.knobs}
                harm = {k: monotone_harm({b: search.probe({**search.bits, k: b}) - base
                                          for b in domains[k]}) for k in cm.knobs}
                ilp_search(search.bits, domains, harm, cm.lin, cm.quad, search.cost,
                           search.accept, log=log)
        else:
            search.state, search.bits = search.best["state"], search.best["bits"]
        if quench_epochs and feasible:  # polish the choice; kept only if validation agrees
            before = next((t for t in reversed(search.trials)
                           if t["accepted"] and t["bits"] == search.bits), None)
            kept = search.state
            if search.accept(search.bits, epochs=quench_epochs, soft=False):
                last = search.trials[-1]
                if before is not None and last["acc_val"] < before["acc_val"]:
                    search.state = kept
                    last["accepted"] = False

    model.load_state_dict(search.state)  # bits and binary points included
    model.set_mode("quant")
    model.eval()
    acc_val, _, final_ok = evaluate(model, data.x_val, data.y_val, oc, exact=True, mask=True)
    acc_test, _ = evaluate(model, data.x_test, data.y_test, oc, exact=True)
    drop_val = 100.0 * (ref_val - acc_val)
    graph = convert(model, oc.matrix, {"dataset": config.get("dataset"),
                                       "train_per_class": config.get("train_per_class"),
                                       "seed": int(config.get("seed", 0)),
                                       "input_code": ic.spec, "output_code": oc.name})
    n_check = min(256, len(data.y_val))
    x_check = ic.encode_numpy(x_val_raw[:n_check])
    check = validate_activations(model, graph, x_check, progress=False)
    if not check["all_equal"]:
        raise RuntimeError(f"heated network and its integer graph differ: {check['layers']}")

    bits = search.bits
    weight_bits = {k: int(bits[k]) for k in cm.weighted}
    act_bits = {k: int(bits[k]) for k in cm.acts}
    n_w = sum(cm.n_weights.values())
    total = cm.weight_bits_total(bits)
    run_summary = _read_optional(Path(directory) / "summary.json")
    summary = {
        "weight_bits": weight_bits, "act_bits": act_bits,
        "acc_float": acc_float_test, "acc_heated": acc_test,
        "acc_float_val": ref_val, "acc_heated_val": acc_val,
        "acc_float_val_unquantized": acc_float_val, "acc_run_val": acc_run_val,
        "acc_run_float_test": run_summary.get("acc_float"),
        "acc_drop_val": drop_val, "acc_drop_test": 100.0 * (acc_float_test - acc_test),
        "acc_drop_val_se": paired_se(ref_ok, final_ok),
        "max_acc_drop": max_acc_drop, "slack": max_acc_drop - drop_val,
        "constraint_met": bool(drop_val <= max_acc_drop + 1e-9),
        "total_weight_bits": total, "n_weights": n_w,
        "mean_weight_bits": float(np.mean(list(weight_bits.values()))),
        "bits_per_weight": total / n_w, "bops": cm.bops(bits),
        "objective": objective, "solver": solver, "min_bits": min_bits, "max_bits": max_bits,
        "bit_bounds": {k: [lo[k], hi[k]] for k in cm.knobs},
        "seed": seed, "source": str(directory), "n_train": len(data.y_train),
        "n_val": len(data.y_val), "n_test": len(data.y_test),
        "heated_bits": heated_bits, "reference": reference,
        "heating_snapshot": None if snapshot is None else {
            k: v for k, v in snapshot.items() if k != "state"}, "heating": asdict(hs), "finetune_epochs": finetune_epochs,
        "quench_epochs": quench_epochs, "val_fraction": val_fraction,
        "noise_margin": noise_margin,
        "history": history, "trials": search.trials, "check_val_samples": n_check,
        "seconds": round(time.time() - t0, 1),
    }
    new_config = {**config, "weight_bits": weight_bits, "act_bits": act_bits,
                  "val_fraction": val_fraction, "val_seed": val_seed,
                  "heat": {k: summary[k] for k in ("max_acc_drop", "objective", "solver",
                                                   "min_bits", "max_bits", "seed",
                                                   "val_fraction", "source")}}
    with atomic_dir(out) as tmp:
        save_run(tmp, model, graph, new_config)
        write_json(tmp / "summary.json", summary)
        plot_heating(history, [t for t in search.trials if t["accepted"]], tmp / "heating.png",
                     f"heatq heat: {config.get('dataset')}, {config['model'].get('model')}",
                     floor=ref_val - max_acc_drop / 100.0)
    typer.echo(format_table(summary))
    typer.echo(f"run written to {out}")
    return summary


def _read_optional(path: Path) -> dict:
    try:
        return read_json(path) if path.exists() else {}
    except UserError:
        return {}
