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
* ``heatq-O-D``:  ``heatq heat`` on the ste-4 run with ``--objective O`` (``--heatq-objectives``,
                  default bits and split_luts) and ``--max-acc-drop D``: the fewest bits per
                  layer (learned bits, dual ascent, finalisation); it spends its own heating
                  and fine-tune epochs on top of ste-4's (reported in the table).

Every row records its total weight bits, its BOPs (sum over weighted layers of MACs x weight
bits x input bits; the first layer's input is the 1-bit code planes) and its split_luts (sum
of weights x weight bits x (2**input bits - 1): the exact binary split's fan-in growth with
thermometer units), all from one cost model (:func:`costs`).

Writes ``accuracy_bits.json`` (every row, and the equal-cost comparison), ``accuracy_bits.md``
(the summary table, then heatq against each baseline at equal total weight bits and at equal
BOPs, interpolated between the baseline's bit widths) and ``accuracy_bits.png`` (test accuracy
vs total weight bits and vs BOPs) into ``--out`` (:mod:`accuracy_bits_report`).  Brevitas is a
bench-only dependency (``pip install brevitas``); without it those rows are skipped, saying so.

    python bench/accuracy_bits.py --quick                 # smoke run, about a minute
    python bench/accuracy_bits.py --datasets mnist5k --seeds 3 --jobs 2 --out bench/out
                                                          # the real measurement (long)
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy_bits_report import equal_cost, format_equal_cost, plot, summarise  # noqa: E402

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


def costs(cm, weight_bits: dict, act_bits: dict) -> dict:
    """BOPs and split_luts of one bit assignment on cost model ``cm``
    (:func:`heatq.heat.lagrange.cost_model`: layers in forward order, MACs, weight counts):
    BOPs = sum over weighted layers of MACs x b x a_in, split_luts = sum of weights x b x
    (2**a_in - 1), b the layer's weight bits, a_in the bits of the activation feeding it (the
    first layer's input, the code planes: 1)."""
    bits = {**weight_bits, **act_bits}
    a_in, bops, luts = 1, 0, 0
    for k in cm.knobs:
        if k in cm.acts:
            a_in = int(bits[k])
        elif k in cm.macs:
            bops += cm.macs[k] * int(bits[k]) * a_in
            luts += cm.n_weights[k] * int(bits[k]) * (2 ** a_in - 1)
    return {"bops": int(bops), "split_luts": int(luts)}


def model_costs(model, weight_bits: dict, act_bits: dict) -> dict:
    """:func:`costs` on the cost model of heatq ``model`` (its architecture only)."""
    from heatq.heat.lagrange import cost_model

    return costs(cost_model(model, "bits"), weight_bits, act_bits)


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
            "total_weight_bits": total, "n_weights": nw, **model_costs(model, wb, ab),
            "qat_epochs": qat_epochs, "seconds": time.time() - t0}


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
    """Brevitas QAT at uniform ``bits`` (weights and ReLUs) from the same float weights; the
    bits are listed under the heatq model's layer names (the same network, layer by layer)."""
    t0 = time.time()
    torch, qnet, ds, ic, oc, xtr, xte = _from_float(p, p["bits"])
    cfg = _cfg(p)
    net = brevitas_cnn(ic.channels, oc.length, p["bits"], ds.image_shape[0])
    acc, nw = fit_brevitas(qnet, net, xtr, ds.y_train, xte, ds.y_test, oc, cfg, p["seed"])
    wb, ab, total, n = _total_bits(qnet)
    assert total == int(sum(nw.values())) * p["bits"] and n == sum(nw.values())
    return {"method": f"brevitas-{p['bits']}", "acc_test": acc, "weight_bits": wb,
            "act_bits": ab, "total_weight_bits": total, "n_weights": n,
            **model_costs(qnet, wb, ab), "qat_epochs": cfg.qat_epochs,
            "seconds": time.time() - t0}


def _heatq_costs(s: dict, heat_dir: Path) -> dict:
    """BOPs and split_luts of a heated run: heat's own summary values where it has them, else
    :func:`costs` on the heated model; any disagreement between the two is recorded."""
    from heatq.rundir import load_model

    mine = model_costs(load_model(heat_dir)[0], s["weight_bits"], s["act_bits"])
    out = {k: s.get(k, v) for k, v in mine.items()}
    differ = {k: {"heat": s[k], "bench": v} for k, v in mine.items() if k in s and s[k] != v}
    return {**out, **({"cost_disagreement": differ} if differ else {})}


def job_heatq(p: dict) -> dict:
    """``heatq heat --objective O --max-acc-drop D`` on the ste-4 run directory."""
    _setup(p["threads"])
    from heatq.heat.command import heat

    import contextlib
    import io

    t0 = time.time()
    with contextlib.redirect_stdout(io.StringIO()):  # the table goes to the JSON instead
        s = heat(Path(p["run_dir"]), Path(p["heat_dir"]), max_acc_drop=p["drop"],
                 objective=p["objective"], solver=p["solver"], epochs=p["heat_epochs"],
                 finetune_epochs=p["finetune_epochs"], quench_epochs=p["quench_epochs"],
                 ref_epochs=p.get("ref_epochs"), seed=p["seed"], threads=p["threads"],
                 progress=False, force=True)
    ft = len(s["trials"])
    return {"method": p["label"], "objective": p["objective"], "acc_test": s["acc_heated"],
            "weight_bits": s["weight_bits"], "act_bits": s["act_bits"],
            "total_weight_bits": s["total_weight_bits"], "n_weights": s["n_weights"],
            **_heatq_costs(s, Path(p["heat_dir"])),
            "acc_drop_val": s["acc_drop_val"], "acc_drop_test": s.get("acc_drop_test"),
            "constraint_met": s["constraint_met"], "exported": s.get("exported"),
            "margin": s.get("margin"),
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

def _heatq_jobs(args, base: dict, run_dir: str, tag: str) -> list[tuple[str, dict, list]]:
    """The ``heatq heat`` jobs on one ste-4 run: every objective x every drop."""
    work = Path(args.out) / "work"
    return [("heatq", {**base, "drop": d, "objective": o, "label": f"heatq-{o}-{d:g}",
                       "run_dir": run_dir, "solver": args.solver,
                       "heat_dir": str(work / f"{tag}_heatq_{o}_{d:g}"),
                       "heat_epochs": args.heat_epochs, "finetune_epochs": args.finetune_epochs,
                       "quench_epochs": args.quench_epochs}, [])
            for o in args.heatq_objectives for d in args.drops]


def plan(args) -> list[tuple[str, dict, list]]:
    """Jobs as (kind, params, dependents) trees: float -> (ste-B, stemse-B, brevitas-B,
    heat-B); ste-4 -> heatq-O-D."""
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
                    kids = _heatq_jobs(args, base, ste["run_dir"], tag)
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


def add_training_args(ap) -> None:
    """The training and heating budget options both benches share (the demo's settings)."""
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--qat-epochs", type=int, default=15)
    ap.add_argument("--heat-epochs", type=int, default=20)
    ap.add_argument("--finetune-epochs", type=int, default=2)
    ap.add_argument("--quench-epochs", type=int, default=3)
    ap.add_argument("--mnist-per-class", type=int, default=None)
    ap.add_argument("--fashion-per-class", type=int, default=1000)


QUICK = {"datasets": "mnist5k", "seeds": "1", "bits": "4,2", "drops": "2"}
FULL = {"datasets": "mnist5k,fashion", "seeds": "3", "bits": "4,3,2", "drops": "0.5"}


def _seeds(text: str) -> list[int]:
    """``--seeds``: a count N (seeds 0..N-1) or a comma list of seeds (``1,2``; one seed k:
    ``k,``)."""
    if "," not in text:
        return list(range(int(text)))
    return [int(s) for s in text.split(",") if s]


def _objectives(ap, text: str) -> list[str]:
    """``--heatq-objectives``, each one checked against this heatq's ``heatq heat``."""
    from heatq.heat.lagrange import OBJECTIVES

    objectives = [o for o in text.split(",") if o]
    for o in objectives:
        if o not in OBJECTIVES:
            ap.error(f"--heatq-objectives: heatq heat has no objective {o!r} "
                     f"(this heatq has: {', '.join(OBJECTIVES)})")
    return objectives


def parse_args(argv=None):
    """The options; ``--quick`` sets a tiny run (one seed, 2 epochs, 40 images per class)
    where --datasets / --seeds / --bits / --drops are not given."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (about a minute)")
    ap.add_argument("--datasets", help="comma list of mnist5k, fashion (default both)")
    ap.add_argument("--seeds", help="a count N (seeds 0..N-1, default 3) or a comma list")
    ap.add_argument("--bits", help="uniform bit widths of the baselines (default 4,3,2)")
    ap.add_argument("--drops", help="heatq --max-acc-drop values (default 0.5)")
    ap.add_argument("--heatq-objectives", default="bits,split_luts",
                    help="heatq heat --objective values, one heatq row each")
    ap.add_argument("--methods", default="ste,stemse,brevitas,heat,heatq")
    ap.add_argument("--solver", default="greedy")
    add_training_args(ap)
    ap.add_argument("--jobs", type=int, default=1, help="parallel worker processes")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--out", default="bench/out/accuracy_bits")
    args = ap.parse_args(argv)
    for k, v in (QUICK if args.quick else FULL).items():
        setattr(args, k, getattr(args, k) or v)
    if args.quick:
        args.epochs, args.qat_epochs, args.heat_epochs = 2, 2, 2
        args.finetune_epochs, args.quench_epochs = 1, 1
        args.mnist_per_class = 40
    try:
        args.seeds = _seeds(args.seeds)
        args.bits = [int(b) for b in args.bits.split(",")]
        args.drops = [float(d) for d in args.drops.split(",")]
    except ValueError as e:
        ap.error(f"--seeds / --bits / --drops: {e}")
    args.datasets = [d for d in args.datasets.split(",") if d]
    if not set(args.datasets) <= {"mnist5k", "fashion"}:
        ap.error(f"--datasets: choose among mnist5k, fashion (got {','.join(args.datasets)})")
    args.heatq_objectives = _objectives(ap, args.heatq_objectives)
    args.methods = set(args.methods.split(","))
    if "brevitas" in args.methods:
        try:
            import brevitas  # noqa: F401
        except ImportError:
            print("brevitas is not installed (pip install brevitas): skipping its rows",
                  file=sys.stderr)
            args.methods.discard("brevitas")
    return args


def _replace_into(path: Path, write) -> None:
    """``write(tmp)`` then rename onto ``path``: a reader never sees half a file."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def write_outputs(out: Path, settings: dict, rows: list[dict]) -> str:
    """accuracy_bits.json / .md / .png; returns the Markdown."""
    comparison = equal_cost(rows)
    doc = json.dumps({"settings": settings, "rows": rows, "equal_cost": comparison},
                     indent=2, default=str) + "\n"
    text = (summarise(rows) + "\n\n### heatq at equal cost (baselines interpolated between "
            "their bit widths)\n\n" + format_equal_cost(comparison) + "\n")
    _replace_into(out / "accuracy_bits.json", lambda p: p.write_text(doc))
    _replace_into(out / "accuracy_bits.md", lambda p: p.write_text(text))
    _replace_into(out / "accuracy_bits.png", lambda p: plot(rows, p))
    return text


def main(argv=None) -> int:
    args = parse_args(argv)
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
    print(write_outputs(out, settings, rows))
    print(f"wrote {out}/accuracy_bits.json, .md, .png in {time.time() - t0:.0f} s")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
