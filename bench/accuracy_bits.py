"""Accuracy vs total weight bits: heatq heating against plain STE QAT and Brevitas QAT.

For each dataset (mnist5k; fashion with 1000 training images per class) and seed, the seed CNN
(bitplane:4 input code, hadamard:15 output code) is trained in float once; from that float
network, with the same number of quantized epochs (``--qat-epochs``) and the same optimiser:

* ``ste-B``:      plain straight-through QAT at uniform B weight and activation bits
                  (heatq's own quantizers as ``heatq train`` uses them: power-of-two steps
                  at the largest value, exactly the exported integers);
* ``stemse-B``:   the same with the least-squared-error power-of-two steps that heating uses
                  (separates the step rule's gain from heating's);
* ``brevitas-B``: Brevitas QAT at B bits (QuantConv2d / QuantReLU / QuantLinear, its default
                  per-tensor float scales, float bias: a stronger-than-hardware baseline);
* ``heat-B``:     heatq heating at uniform B bits (tau 0 -> 1 over qat_epochs - quench epochs,
                  then the quench), the same epoch budget as ste-B;
* ``heatq-D``:    ``heatq heat`` on the ste-4 run with ``--max-acc-drop D``: the fewest bits
                  per layer (learned bits, dual ascent, greedy finalisation); it spends its own
                  heating and fine-tune epochs on top of ste-4's (reported in the table).

Writes ``accuracy_bits.json`` (every row), ``accuracy_bits.md`` (the table) and
``accuracy_bits.png`` (test accuracy vs total weight bits) into ``--out``.  Brevitas is a
bench-only dependency (``pip install brevitas``); without it those rows are skipped, saying so.

    python bench/accuracy_bits.py --quick                 # smoke run, about a minute
    python bench/accuracy_bits.py --jobs 2 --out bench/out # the real measurement (long)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path

import numpy as np

WIDTHS = [(None, 8, 5), (8, 16, 3), (16, 32, 3), (32, 64, 3)]


# ------------------------------------------------------------------------------ helpers

def _setup(threads: int):
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(threads)
    return torch


def _data(p: dict):
    from heatq.codes import parse_input_code, parse_output_code
    from heatq.data import load_dataset
    from heatq.train import encode

    ds = load_dataset(p["dataset"], train_per_class=p["train_per_class"], seed=p["seed"])
    ic = parse_input_code(p["input_code"])
    oc = parse_output_code(p["output_code"], ds.n_classes, seed=p["seed"])
    return ds, ic, oc, encode(ic, ds.x_train), encode(ic, ds.x_test)


def _spec(p: dict, ic, oc, ds, bits: int) -> dict:
    return {"model": "seed-cnn", "in_channels": ic.channels, "code_length": oc.length,
            "w_bits": bits, "a_bits": bits, "image_size": ds.image_shape[0]}


def _cfg(p: dict):
    from heatq.train import TrainConfig

    return TrainConfig(epochs=p["epochs"], qat_epochs=p["qat_epochs"], seed=p["seed"],
                       progress=False)


def _total_bits(model) -> tuple[dict, dict, int, int]:
    from heatq.quant import QReLU, QWeighted

    wb = {n: s.bits for n, s in model.steps() if isinstance(s, QWeighted)}
    ab = {n: s.bits for n, s in model.steps() if isinstance(s, QReLU)}
    nw = {n: s.weight.numel() for n, s in model.steps() if isinstance(s, QWeighted)}
    return wb, ab, int(sum(nw[n] * wb[n] for n in wb)), int(sum(nw.values()))


# ------------------------------------------------------------------------------ jobs

def job_float(p: dict) -> dict:
    """Float pre-training; saves the state for every quantized method."""
    torch = _setup(p["threads"])
    from heatq.models import build_model
    from heatq.train import accuracy, fit

    t0 = time.time()
    ds, ic, oc, xtr, xte = _data(p)
    torch.manual_seed(p["seed"])
    model = build_model(_spec(p, ic, oc, ds, 4))
    cfg = _cfg(p)
    model.set_mode("float")
    fit(model, xtr, ds.y_train, oc, cfg.epochs, cfg.lr, cfg, "float")
    acc = accuracy(model, xte, ds.y_test, oc, exact=False)
    torch.save(model.state_dict(), p["float_state"])
    return {"method": "float", "acc_test": acc, "seconds": time.time() - t0}


def _from_float(p: dict, bits: int):
    torch = _setup(p["threads"])
    from heatq.models import build_model

    ds, ic, oc, xtr, xte = _data(p)
    torch.manual_seed(p["seed"])
    model = build_model(_spec(p, ic, oc, ds, bits))
    state = torch.load(p["float_state"], weights_only=True)
    model.load_state_dict({k: v for k, v in state.items() if not k.endswith(("_bits",))},
                          strict=False)
    return torch, model, ds, ic, oc, xtr, xte


def _quantized_start(model, xtr, rule: str) -> None:
    """Put a heatq model from float weights in quant mode with the step ``rule`` ("max" or
    "mse") and calibrated binary points."""
    from heatq.heat.noise import set_step_rule
    from heatq.train import calibrate

    set_step_rule(model, rule)
    model.set_mode("quant")
    calibrate(model, xtr)


def _quantized_row(method: str, model, xte, ds, oc, qat_epochs: int, t0: float) -> dict:
    """The result row of a heatq model in quant mode: its test accuracy (the exported
    integer network's) and bits."""
    from heatq.train import accuracy

    acc = accuracy(model, xte, ds.y_test, oc)
    wb, ab, total, nw = _total_bits(model)
    return {"method": method, "acc_test": acc, "weight_bits": wb, "act_bits": ab,
            "total_weight_bits": total, "n_weights": nw, "qat_epochs": qat_epochs,
            "seconds": time.time() - t0}


def _save_run(p: dict, model, ic, oc, cfg, acc_float: float, row: dict) -> None:
    """Save ``model`` as a heatq run directory at ``p["run_dir"]`` (``heatq heat`` input)."""
    from heatq.qnet_ir import convert
    from heatq.rundir import atomic_dir, save_run, write_json

    config = {"model": model.spec, "dataset": p["dataset"],
              "train_per_class": p["train_per_class"], "seed": p["seed"],
              "input_code": ic.spec, "output_code": oc.name, "codebook": oc.matrix.tolist(),
              "train": asdict(cfg)}
    graph = convert(model, oc.matrix, {"dataset": p["dataset"], "input_code": ic.spec,
                                        "output_code": oc.name})
    with atomic_dir(p["run_dir"]) as tmp:
        save_run(tmp, model, graph, config)
        write_json(tmp / "summary.json", {"acc_float": acc_float, "acc_quant": row["acc_test"],
                                          "weight_bits": row["weight_bits"],
                                          "act_bits": row["act_bits"]})


def job_ste(p: dict) -> dict:
    """Plain STE QAT at uniform ``bits``; with ``run_dir``, saved as a heatq run."""
    t0 = time.time()
    torch, model, ds, ic, oc, xtr, xte = _from_float(p, p["bits"])
    from heatq.train import accuracy, fit

    cfg = _cfg(p)
    acc_float = accuracy(model, xte, ds.y_test, oc, exact=False) if p.get("run_dir") else None
    torch.manual_seed(p["seed"])
    _quantized_start(model, xtr, p.get("rule", "max"))
    fit(model, xtr, ds.y_train, oc, cfg.qat_epochs, cfg.qat_lr, cfg, "ste")
    row = _quantized_row(p["label"], model, xte, ds, oc, cfg.qat_epochs, t0)
    if p.get("run_dir"):
        _save_run(p, model, ic, oc, cfg, acc_float, row)
        row["seconds"] = time.time() - t0
    return row


def job_heat_uniform(p: dict) -> dict:
    """heatq heating at uniform bits, the same epoch budget as STE (heat, then quench)."""
    t0 = time.time()
    torch, model, ds, ic, oc, xtr, xte = _from_float(p, p["bits"])
    from heatq.heat.lagrange import HeatSettings, bounds, cost_model, heat_phase
    from heatq.heat.loop import Data, LoopConfig, finetune

    cfg = _cfg(p)
    quench = max(1, cfg.qat_epochs // 5)
    heat_epochs = max(1, cfg.qat_epochs - quench)
    _quantized_start(model, xtr, "mse")
    n_log = min(500, len(xtr))  # history only: no decision is taken on these
    data = Data(xtr, ds.y_train, xtr[:n_log], ds.y_train[:n_log], xte, ds.y_test, oc)
    lc = LoopConfig(progress=False)
    gen = torch.Generator().manual_seed(p["seed"])
    torch.manual_seed(p["seed"])
    cm = cost_model(model, "bits", 8)
    lo, hi = bounds(cm, model, p["bits"], p["bits"])
    heat_phase(model, data, cm, 1.0, 100.0, lo, hi,
               HeatSettings(epochs=heat_epochs, learn_bits=False, lr=cfg.qat_lr), lc, gen)
    finetune(model, data, quench, cfg.qat_lr / 2, lc, gen)
    return _quantized_row(f"heat-{p['bits']}", model, xte, ds, oc, heat_epochs + quench, t0)


def binary_weight_quant():
    """Brevitas weight quantizer for 1-bit weights: sign(w) * s with a per-tensor scale
    s = mean |w| (XNOR-Net style, from the weights' statistics), gradients straight through
    inside [-s, s].  (Brevitas' default quantizer at bit_width 1 is narrow-range signed, i.e.
    only 0, so 1 bit needs this one.)"""
    from brevitas.core.function_wrapper import TensorClamp
    from brevitas.inject.enum import ScalingImplType, StatsOp
    from brevitas.quant import SignedBinaryWeightPerTensorConst

    class BinaryWeightPerTensorStats(SignedBinaryWeightPerTensorConst):
        scaling_impl_type = ScalingImplType.STATS
        scaling_stats_op = StatsOp.AVE
        tensor_clamp_impl = TensorClamp

    return BinaryWeightPerTensorStats


def binary_act_quant():
    """Brevitas activation quantizer for 1-bit ReLUs ({0, s}): Brevitas' default with the
    scale initialised from the 99th percentile of the activations instead of the 99.999th
    (at 1 bit the unit fires above s/2; from the default nearly every unit stays 0: 14 % test
    accuracy against 73 % in a 10-epoch w1a1 trial on mnist5k, 100 images per class)."""
    from brevitas.quant import Uint8ActPerTensorFloat

    class Uint1ActPerTensorFloatP99(Uint8ActPerTensorFloat):
        high_percentile_q = 99.0

    return Uint1ActPerTensorFloatP99


def brevitas_cnn(in_ch: int, code_len: int, bits: int, image_size: int,
                 act_bits: int | None = None):
    """The seed CNN in Brevitas: ``bits``-bit weights (1: :func:`binary_weight_quant`, else
    Brevitas' default per-tensor float scale), ``act_bits``-bit unsigned ReLUs (default
    ``bits``; 1: {0, s} by :func:`binary_act_quant`), float bias."""
    import brevitas.nn as qnn
    import torch.nn as nn

    wq = {"weight_quant": binary_weight_quant()} if bits == 1 else {"weight_bit_width": bits}
    a_bits = act_bits or bits
    aq = {"act_quant": binary_act_quant()} if a_bits == 1 else {}
    layers, size, c = [], image_size, in_ch
    for _, co, k in WIDTHS:
        layers += [qnn.QuantConv2d(c, co, k, padding=k // 2, bias=True, **wq),
                   qnn.QuantReLU(bit_width=a_bits, **aq), nn.MaxPool2d(2)]
        c, size = co, size // 2
    layers += [nn.Flatten(), qnn.QuantLinear(c * size * size, code_len, bias=True, **wq)]
    return nn.Sequential(*layers)


def fit_brevitas(qnet, net, xtr, ytr, xte, yte, oc, cfg, seed: int) -> tuple[float, dict]:
    """Copy the float weights and biases of heatq model ``qnet`` into the Brevitas ``net``
    (:func:`brevitas_cnn`), train it ``cfg.qat_epochs`` with heatq's own loop and optimiser
    (:func:`heatq.train.fit`); returns (test accuracy, {layer: weight count})."""
    import torch

    from heatq.quant import QWeighted
    from heatq.train import accuracy, fit

    src = [s for _, s in qnet.steps() if isinstance(s, QWeighted)]
    dst = [m for m in net if hasattr(m, "weight") and m.weight is not None]
    with torch.no_grad():
        for s, d in zip(src, dst, strict=True):
            d.weight.copy_(s.weight)
            d.bias.copy_(s.bias)
    torch.manual_seed(seed)
    fit(net, xtr, ytr, oc, cfg.qat_epochs, cfg.qat_lr, cfg, "brevitas")
    acc = accuracy(net, xte, yte, oc, exact=False)
    return acc, {f"layer{i}": int(d.weight.numel()) for i, d in enumerate(dst)}


def job_brevitas(p: dict) -> dict:
    """Brevitas QAT at uniform ``bits`` from the same float weights."""
    t0 = time.time()
    torch, qnet, ds, ic, oc, xtr, xte = _from_float(p, p["bits"])
    cfg = _cfg(p)
    net = brevitas_cnn(ic.channels, oc.length, p["bits"], ds.image_shape[0])
    acc, nw = fit_brevitas(qnet, net, xtr, ds.y_train, xte, ds.y_test, oc, cfg, p["seed"])
    return {"method": f"brevitas-{p['bits']}", "acc_test": acc,
            "weight_bits": {k: p["bits"] for k in nw}, "act_bits": {},
            "total_weight_bits": int(sum(nw.values())) * p["bits"],
            "n_weights": int(sum(nw.values())), "qat_epochs": cfg.qat_epochs,
            "seconds": time.time() - t0}


def job_heatq(p: dict) -> dict:
    """``heatq heat`` on the ste-4 run directory."""
    _setup(p["threads"])
    from heatq.heat.command import heat

    import contextlib
    import io

    t0 = time.time()
    with contextlib.redirect_stdout(io.StringIO()):  # the table goes to the JSON instead
        s = heat(Path(p["run_dir"]), Path(p["heat_dir"]), max_acc_drop=p["drop"],
                 objective="bits", solver=p["solver"], epochs=p["heat_epochs"],
                 finetune_epochs=p["finetune_epochs"], quench_epochs=p["quench_epochs"],
                 ref_epochs=p.get("ref_epochs"), seed=p["seed"], threads=p["threads"],
                 progress=False)
    ft = sum(1 for t in s["trials"])
    return {"method": f"heatq-{p['drop']:g}", "acc_test": s["acc_heated"],
            "weight_bits": s["weight_bits"], "act_bits": s["act_bits"],
            "total_weight_bits": s["total_weight_bits"], "n_weights": s["n_weights"],
            "acc_drop_val": s["acc_drop_val"], "constraint_met": s["constraint_met"],
            "acc_float_heat_ref": s["acc_float"], "ref_float_epochs": s["reference"]["epochs"],
            "qat_epochs": p["qat_epochs"] + p["heat_epochs"] + p["quench_epochs"]
            + (ft - 1) * p["finetune_epochs"],
            "note": "QAT epochs: ste-4's QAT + heating + quench + every fine-tune of the search; "
                    "plus ref_float_epochs of float retraining without the validation images",
            "seconds": time.time() - t0}


JOBS = {"float": job_float, "ste": job_ste, "heat": job_heat_uniform,
        "brevitas": job_brevitas, "heatq": job_heatq}


def _run(kind: str, p: dict) -> dict:
    try:
        row = JOBS[kind](p)
    except Exception as e:  # noqa: BLE001 - a bench row records its failure and goes on
        row = {"method": p.get("label", kind), "error": f"{type(e).__name__}: {e}",
               "trace": traceback.format_exc()[-2000:]}
    row.update({"dataset": p["dataset"], "seed": p["seed"]})
    return row


# ------------------------------------------------------------------------------ driver

def plan(args) -> list[tuple[str, dict, list]]:
    """Jobs as (kind, params, dependents) trees: float -> (ste-B, brevitas-B, heat-B);
    ste-4 -> heatq-D."""
    out = Path(args.out)
    work = out / "work"
    trees = []
    for ds_name in args.datasets:
        tpc = args.fashion_per_class if ds_name == "fashion" else args.mnist_per_class
        for seed in args.seeds:
            tag = f"{ds_name}_s{seed}"
            base = {"dataset": ds_name, "train_per_class": tpc, "seed": seed,
                    "input_code": "bitplane:4", "output_code": "hadamard:15",
                    "epochs": args.epochs, "qat_epochs": args.qat_epochs,
                    "threads": args.threads, "float_state": str(work / f"{tag}_float.pt")}
            deps = []
            for b in args.bits:
                ste = {**base, "bits": b, "label": f"ste-{b}"}
                kids = []
                if b == 4 and "heatq" in args.methods:
                    ste["run_dir"] = str(work / f"{tag}_ste4")
                    for d in args.drops:
                        kids.append(("heatq", {**base, "drop": d, "label": f"heatq-{d:g}",
                                               "run_dir": ste["run_dir"], "solver": args.solver,
                                               "heat_dir": str(work / f"{tag}_heatq{d:g}"),
                                               "heat_epochs": args.heat_epochs,
                                               "finetune_epochs": args.finetune_epochs,
                                               "quench_epochs": args.quench_epochs}, []))
                if "ste" in args.methods or kids:
                    deps.append(("ste", ste, kids))
                if "stemse" in args.methods:
                    deps.append(("ste", {**base, "bits": b, "rule": "mse",
                                         "label": f"stemse-{b}"}, []))
                if "heat" in args.methods:
                    deps.append(("heat", {**base, "bits": b, "label": f"heat-{b}"}, []))
                if "brevitas" in args.methods:
                    deps.append(("brevitas", {**base, "bits": b, "label": f"brevitas-{b}"}, []))
            trees.append(("float", {**base, "label": "float"}, deps))
    return trees


def execute(trees, jobs: int, log, run=None) -> list[dict]:
    """Run job trees ``(kind, params, dependents)`` in a process pool: ``run(kind, params)``
    (default this module's jobs) returns a row; a row without "error" starts its
    dependents.  ``log(row)`` sees each row as it comes."""
    run = run or _run
    rows = []
    import multiprocessing

    # spawn: a forked worker cannot use a CUDA-built torch that the parent has touched
    with ProcessPoolExecutor(max_workers=jobs,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        running = {pool.submit(run, k, p): (k, p, kids) for k, p, kids in trees}
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in done:
                k, p, kids = running.pop(f)
                row = f.result()
                rows.append(row)
                log(row)
                if "error" not in row:
                    for kk, pp, kkids in kids:
                        running[pool.submit(run, kk, pp)] = (kk, pp, kkids)
    return rows


def summarise(rows: list[dict]) -> str:
    """Markdown table: mean test accuracy (and spread) per dataset and method."""
    lines = ["| dataset | method | seeds | total weight bits | mean bits/layer | "
             "test acc % (mean) | min..max | QAT epochs |",
             "|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list] = {}
    for r in rows:
        if "error" in r or r["method"] == "float":
            continue
        groups.setdefault((r["dataset"], r["method"]), []).append(r)
    floats = {}
    for r in rows:
        if r.get("method") == "float" and "error" not in r:
            floats.setdefault(r["dataset"], []).append(r["acc_test"])
    for ds, accs in sorted(floats.items()):
        lines.append(f"| {ds} | float | {len(accs)} | 32-bit | - | {100 * np.mean(accs):.2f} | "
                     f"{100 * min(accs):.2f}..{100 * max(accs):.2f} | - |")
    order = {"ste": 0, "stemse": 1, "brevitas": 2, "heat": 3, "heatq": 4}
    for (ds, m), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], order.get(
            kv[0][1].split("-")[0], 9), kv[0][1])):
        accs = [r["acc_test"] for r in rs]
        bits = [r["total_weight_bits"] for r in rs]
        mean_layer = [np.mean(list(r["weight_bits"].values())) for r in rs]
        lines.append(f"| {ds} | {m} | {len(rs)} | {np.mean(bits):.0f} | {np.mean(mean_layer):.2f} | "
                     f"{100 * np.mean(accs):.2f} | {100 * min(accs):.2f}..{100 * max(accs):.2f} | "
                     f"{np.mean([r['qat_epochs'] for r in rs]):.0f} |")
    errors = [r for r in rows if "error" in r]
    for r in errors:
        lines.append(f"\nfailed: {r['dataset']} seed {r['seed']} {r['method']}: {r['error']}")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in rows})
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.2), squeeze=False)
    style = {"ste": ("o", "tab:blue"), "stemse": ("D", "tab:purple"),
             "brevitas": ("s", "tab:green"),
             "heat": ("^", "tab:orange"), "heatq": ("*", "tab:red")}
    for ax, ds in zip(axes[0], datasets):
        for fam, (marker, color) in style.items():
            pts = [(r["total_weight_bits"], 100 * r["acc_test"]) for r in rows
                   if r["dataset"] == ds and "error" not in r and r["method"].startswith(fam + "-")]
            if pts:
                x, y = zip(*pts)
                ax.scatter(x, y, marker=marker, color=color, s=80 if fam == "heatq" else 30,
                           label=fam if fam != "heatq" else "heatq heat (learned bits)")
        for r in rows:
            if r["dataset"] == ds and r["method"] == "float" and "error" not in r:
                ax.axhline(100 * r["acc_test"], color="gray", lw=0.6, ls="--")
        ax.set_title(ds)
        ax.set_xlabel("total weight bits")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_training_args(ap) -> None:
    """The training and heating budget options both benches share (the demo's settings)."""
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--qat-epochs", type=int, default=15)
    ap.add_argument("--heat-epochs", type=int, default=20)
    ap.add_argument("--finetune-epochs", type=int, default=2)
    ap.add_argument("--quench-epochs", type=int, default=3)
    ap.add_argument("--mnist-per-class", type=int, default=None)
    ap.add_argument("--fashion-per-class", type=int, default=1000)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    ap.add_argument("--datasets", default="mnist5k,fashion")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--bits", default="4,3,2")
    ap.add_argument("--drops", default="0.5", help="heatq --max-acc-drop values")
    ap.add_argument("--methods", default="ste,stemse,brevitas,heat,heatq")
    ap.add_argument("--solver", default="greedy")
    add_training_args(ap)
    ap.add_argument("--jobs", type=int, default=1, help="parallel worker processes")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--out", default="bench/out/accuracy_bits")
    args = ap.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds, args.bits, args.drops = "mnist5k", "0", "4,2", "2"
        args.epochs, args.qat_epochs, args.heat_epochs = 2, 2, 2
        args.finetune_epochs, args.quench_epochs = 1, 1
        args.mnist_per_class = 40
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.bits = [int(b) for b in args.bits.split(",")]
    args.drops = [float(d) for d in args.drops.split(",")]
    args.methods = set(args.methods.split(","))
    if "brevitas" in args.methods:
        try:
            import brevitas  # noqa: F401
        except ImportError:
            print("brevitas is not installed (pip install brevitas): skipping its rows",
                  file=sys.stderr)
            args.methods.discard("brevitas")
    out = Path(args.out)
    (out / "work").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    log_path = out / "rows.jsonl"

    def log(row):
        with open(log_path, "a") as f:
            f.write(json.dumps({k: v for k, v in row.items() if k != "trace"}) + "\n")
        acc = f"{100 * row['acc_test']:.2f} %" if "acc_test" in row else row.get("error")
        print(f"[{time.time() - t0:6.0f} s] {row['dataset']} seed {row['seed']} "
              f"{row['method']}: {acc}", flush=True)

    rows = execute(plan(args), args.jobs, log)
    settings = {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()}
    (out / "accuracy_bits.json").write_text(json.dumps({"settings": settings, "rows": rows},
                                                       indent=2, default=str) + "\n")
    table = summarise(rows)
    (out / "accuracy_bits.md").write_text(table + "\n")
    plot(rows, out / "accuracy_bits.png")
    print(table)
    print(f"wrote {out}/accuracy_bits.json, .md, .png in {time.time() - t0:.0f} s")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
