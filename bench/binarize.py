"""Exact binarization bench: float, heated, exactly binarized, split-then-heated and Brevitas
binary networks of the seed CNN, side by side (issue 10 item 7).

For each dataset (mnist5k; fashion with 1000 training images per class) and seed:

* ``float`` / ``qat-4``: ``heatq train`` as ``heatq demo`` does (seed CNN, bitplane:4 ->
  hadamard:15, 4-bit QAT, 20 % of the training images held out for validation);
* ``heated``: ``heatq heat --max-acc-drop 0.5`` on that run (the demo's settings);
* ``split W+A``: the exact binary split of the heated run (``heatq split --weights W --acts A
  --to binary``, every W in bitplane/csd/balanced and A in thermometer/bitplane): its figures
  (weights, weight bits, fan-in growth, adders per output vector) and its accuracy *measured*
  by the IR interpreter on the test images, with the number of predictions equal to the
  unsplit heated network's;
* ``split-then-heat``: ``heatq split --weights balanced --to 2`` of the same 4-bit run the
  heated row started from (``--sth-from heated``: of the heated run), i.e. the widened
  network of issue 10 item 4, then ``heatq heat`` on it with the same settings; then its exact
  binary split (``--sth-split``).  A refused step (nothing to split; a split run that
  ``heatq heat`` cannot take) makes the row "not available", saying why;
* ``brevitas-w1a1``: Brevitas QAT of the same CNN with binary weights (sign * mean |w|) and
  1-bit ReLUs, from the run's float weights, on the run's training images (validation part
  excluded), the run's QAT epochs (``accuracy_bits.brevitas_cnn`` / ``fit_brevitas``).

``--estimate``: yosys LUT + CARRY4 (``synth_xilinx``) of the whole exported Verilog network
(top module and every layer) of the heated, split and split-then-heated networks.

Writes ``binarize.json`` (every row), ``binarize.md`` (tables) and ``binarize.png``
(accuracy vs LUT+CARRY4, or vs adders without ``--estimate``) into ``--out``; trained runs,
split runs and finished rows are kept under ``--out``/work and reused by a rerun with the same
settings.

    python bench/binarize.py --quick                       # smoke run, a few minutes
    python bench/binarize.py --jobs 2 --out bench/results  # the real measurement (long)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy_bits import (  # noqa: E402
    _setup, add_training_args, brevitas_cnn, execute, fit_brevitas)

SPLITS = [(w, a) for w in ("bitplane", "csd", "balanced") for a in ("thermometer", "bitplane")]
FIGS = ("products", "fan_in", "weights", "weight_bits", "adders", "adder_bits")


# ------------------------------------------------------------------------------ helpers

def _quiet(fn, *args, **kw):
    """Call ``fn`` with its tables (stdout) swallowed: the rows go to the JSON instead."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kw)


def _key(p: dict) -> dict:
    """What a cached row depends on (JSON-normalised: tuples become lists)."""
    return json.loads(json.dumps({k: v for k, v in p.items() if k not in (
        "threads", "estimate", "estimate_timeout", "keeps")}, default=str))


def _cached(p: dict, fn) -> dict:
    """``fn(p)``, or the row a previous run with the same parameters left in ``p["cache"]``
    (its outputs ``p["keeps"]`` still there).  A "not available" row is not kept: a rerun
    tries again (the missing piece may have landed since)."""
    key = _key(p)
    path = Path(p["cache"])
    if path.is_file() and all(Path(d).exists() for d in p.get("keeps", ())):
        doc = json.loads(path.read_text())
        if doc.get("params") == key:
            return {**doc["row"], "cached": True}
    row = fn(p)
    if not row.get("not_available"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"params": key, "row": row}, indent=1, default=str) + "\n")
    return row


def _test_data(run_dir: Path, n: int | None):
    """(encoded test images, labels) of a run's dataset, the first ``n`` (None: all)."""
    from heatq.codes import parse_input_code
    from heatq.data import load_dataset
    from heatq.files import read_json

    c = read_json(run_dir / "config.json")
    ds = load_dataset(c["dataset"], train_per_class=c.get("train_per_class"), seed=c["seed"])
    x = parse_input_code(c["input_code"]).encode_numpy(ds.x_test)
    return x[:n], ds.y_test[:n]


def predictions(run_dir: Path, n: int | None, batch: int = 250) -> tuple[np.ndarray, np.ndarray]:
    """(predicted classes, labels) of a run's IR graph (the interpreter) on the test images."""
    from heatq.files import load_graph
    from heatq.ir.interp import run

    graph = load_graph(run_dir)
    x, y = _test_data(run_dir, n)
    pred = np.concatenate([run(graph, x[i:i + batch])[-1] for i in range(0, len(x), batch)])
    return pred.astype(np.int64), y


def graph_figures(run_dir: Path, adders: bool) -> dict:
    """Totals (products, fan-in, weights, weight bits, adders, adder bits) of a run's graph."""
    from heatq.files import load_graph
    from heatq.split.stats import split_figures, totals

    g = load_graph(run_dir)
    return totals(split_figures(g, g, adders=adders, progress=False))["after"]


def estimate_luts(run_dir: Path, export_dir: Path, timeout: float) -> dict:
    """yosys ``synth_xilinx`` of the whole Verilog export of ``run_dir`` (top module with
    every layer): LUT, CARRY4, LUT+CARRY4, FF.  The export runs as ``heatq-export`` under
    ``timeout`` too (lowering a binarized CNN can be slow)."""
    from heatq_export.estimate import estimate_module

    t0 = time.time()
    exe = Path(sys.executable).with_name("heatq-export")
    r = subprocess.run([str(exe), str(run_dir), "--target", "verilog", "-o", str(export_dir),
                        "--force", "-q"], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"heatq-export failed: {(r.stdout + r.stderr).strip()[-500:]}")
    t_export = time.time() - t0
    top = json.loads((export_dir / "summary.json").read_text())["top"]
    est = estimate_module(sorted(export_dir.glob("*.v")), top, ("xilinx",),
                          timeout=max(60.0, timeout - t_export), progress=False)
    return {k: est[k] for k in ("lut", "carry4", "lut_carry", "ff")} | {
        "export_seconds": round(t_export, 1), "yosys_seconds": est["seconds"]}


def _with_estimate(p: dict, row: dict, run_dir: Path) -> dict:
    """``row`` with ``luts`` (:func:`estimate_luts`) when ``--estimate`` asks and it lacks it;
    an estimate that fails or times out is recorded as ``luts_error``."""
    if not p.get("estimate") or "luts" in row or "error" in row or row.get("not_available"):
        return row
    try:
        row["luts"] = estimate_luts(run_dir, Path(p["work"]) / "export" / run_dir.name,
                                    p["estimate_timeout"])
        row.pop("luts_error", None)
    except (subprocess.TimeoutExpired, RuntimeError, FileNotFoundError) as e:
        row["luts_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    return row


def _bits_row(method: str, summary: dict) -> dict:
    return {"method": method, "weight_bits": summary["weight_bits"],
            "act_bits": summary["act_bits"], "total_weight_bits": summary["total_weight_bits"],
            "n_weights": summary["n_weights"]}


# ------------------------------------------------------------------------------ jobs

def job_train(p: dict) -> dict:
    """``heatq train`` as the demo does; the float and qat-4 accuracies (torch, test)."""
    from heatq.pipeline import train_run

    t0 = time.time()
    s = train_run(Path(p["run"]), p["dataset"], "seed-cnn", "bitplane:4", "hadamard:15", 4, 4,
                  p["epochs"], p["qat_epochs"], p["seed"], p["train_per_class"], False,
                  val_fraction=0.2, force=True)
    fig = graph_figures(Path(p["run"]), adders=False)
    return {"method": "float", "acc_test": s["acc_float"], "n_weights": fig["weights"],
            "total_weight_bits": 32 * fig["weights"],
            "qat4": {"acc_test": s["acc_quant"], "acc_ir": s["acc_ir"],
                     "total_weight_bits": fig["weight_bits"]},
            "seconds": round(time.time() - t0, 1)}


def job_heat(p: dict) -> dict:
    """``heatq heat --max-acc-drop`` on the trained run; the heated network's IR accuracy and
    predictions (saved for the split rows to compare with)."""
    from heatq.heat.command import heat

    t0 = time.time()
    s = _quiet(heat, Path(p["run"]), Path(p["heated"]), max_acc_drop=p["drop"], seed=p["seed"],
               epochs=p["heat_epochs"], finetune_epochs=p["finetune_epochs"],
               quench_epochs=p["quench_epochs"], threads=p["threads"], progress=False,
               force=True)
    pred, y = predictions(Path(p["heated"]), p["n_test"])
    np.save(p["pred"], pred)
    fig = graph_figures(Path(p["heated"]), adders=p["adders"])
    return {**_bits_row("heated", s), "acc_test": float((pred == y).mean()),
            "acc_torch": s["acc_heated"], "acc_drop_val": s["acc_drop_val"],
            "constraint_met": s["constraint_met"], "exported": s["exported"]["network"],
            "figures": fig, "fan_in_growth": 1.0, "n_test": len(y),
            "seconds": round(time.time() - t0, 1)}


def _split_eval(p: dict, src: Path, out: Path, weights: str, acts: str, to: str = "binary"):
    """``heatq split`` of ``src`` into ``out`` and, with ``p["pred"]``, the split network's
    IR accuracy on the test images and how many predictions equal the unsplit ones."""
    from heatq.split.command import split_run
    from heatq.split.options import parse_options

    t0 = time.time()
    s = _quiet(split_run, src, out, parse_options(weights, acts, to, None), force=True,
               adders=p["adders"], progress=False)
    row = {"figures": s["totals"]["after"], "base_figures": s["totals"]["before"],
           "fan_in_growth": s["totals"]["after"]["fan_in"] / s["totals"]["before"]["fan_in"],
           "binarization": s["binarization"], "split_seconds": round(time.time() - t0, 1)}
    if acts is not None:
        t0 = time.time()
        pred, y = predictions(out, p["n_test"])
        base = np.load(p["pred"]) if "pred" in p else predictions(src, p["n_test"])[0]
        row.update(acc_test=float((pred == y).mean()), n_test=len(y),
                   same_predictions=int((pred == base).sum()),
                   verify_seconds=round(time.time() - t0, 1))
    return row


def job_split(p: dict) -> dict:
    """The exact binary split of the heated run, verified on the test images."""
    t0 = time.time()
    row = {"method": f"split {p['weights']}+{p['acts']}", "weights_kind": p["weights"],
           "acts_kind": p["acts"],
           **_split_eval(p, Path(p["heated"]), Path(p["dir"]), p["weights"], p["acts"])}
    row["seconds"] = round(time.time() - t0, 1)
    return row


def job_sth(p: dict) -> dict:
    """Split-then-heat: the weights-only balanced split of ``p["src"]`` (the 4-bit run, or
    the heated one) to ``p["to"]`` bits (the widened network), ``heatq heat`` on it, then the
    exact binary split of the result (``p["then"]``).  A refused step (nothing to split,
    a split run ``heatq heat`` cannot take) makes the row "not available", saying why."""
    from heatq.errors import UserError
    from heatq.heat.command import heat

    t0 = time.time()
    wide, sth = Path(p["wide"]), Path(p["sth"])
    step = f"heatq split {Path(p['src']).name} --weights balanced --to {p['to']}"
    try:
        widen = _split_eval({**p, "adders": False}, Path(p["src"]), wide, "balanced", None,
                            str(p["to"]))
        step = f"heatq heat {wide.name}"
        s = _quiet(heat, wide, sth, max_acc_drop=p["drop"], seed=p["seed"],
                   epochs=p["heat_epochs"], finetune_epochs=p["finetune_epochs"],
                   quench_epochs=p["quench_epochs"], threads=p["threads"], progress=False,
                   force=True)
    except UserError as e:
        return {"method": "split-then-heat", "not_available": f"{step}: {e}",
                "seconds": round(time.time() - t0, 1)}
    pred, y = predictions(sth, p["n_test"])
    np.save(p["pred_sth"], pred)
    row = {**_bits_row("split-then-heat", s), "acc_test": float((pred == y).mean()),
           "acc_torch": s["acc_heated"], "acc_drop_val": s["acc_drop_val"],
           "constraint_met": s["constraint_met"], "n_test": len(y), "widen": widen,
           "figures": graph_figures(sth, adders=p["adders"])}
    w, a = p["then"]
    row["binary"] = {"method": f"split-then-heat, split {w}+{a}",
                     **_split_eval({**p, "pred": p["pred_sth"], "adders": p["adders_binary"]},
                                   sth, Path(p["sth_bin"]), w, a)}
    # fan-in growth of both against the unsplit network (the heated one's fan-in)
    row["fan_in_growth"] = widen["fan_in_growth"]
    row["binary"]["fan_in_growth"] = (row["binary"]["figures"]["fan_in"]
                                      / widen["base_figures"]["fan_in"])
    row["seconds"] = round(time.time() - t0, 1)
    return row


def job_brevitas(p: dict) -> dict:
    """Brevitas binary-weight, 1-bit-activation QAT from the run's float weights, on the
    run's training images (its validation part excluded) for the run's QAT epochs."""
    torch = _setup(p["threads"])
    from heatq.codes import parse_input_code, parse_output_code
    from heatq.data import load_dataset, split_validation
    from heatq.files import read_json
    from heatq.models import build_model
    from heatq.rundir import FLOAT_STATE
    from heatq.train import TrainConfig, encode

    t0 = time.time()
    run = Path(p["run"])
    c = read_json(run / "config.json")
    ds = load_dataset(c["dataset"], train_per_class=c.get("train_per_class"), seed=c["seed"])
    ic = parse_input_code(c["input_code"])
    oc = parse_output_code(c["output_code"], ds.n_classes, seed=c["seed"])
    x_tr, y_tr, _, _ = split_validation(ds.x_train, ds.y_train, c["val_fraction"],
                                        c["val_seed"])
    qnet = build_model(c["model"])
    qnet.load_state_dict(torch.load(run / FLOAT_STATE, weights_only=True))
    cfg = TrainConfig(**{**c["train"], "progress": False})
    net = brevitas_cnn(ic.channels, oc.length, 1, ds.image_shape[0], act_bits=1)
    acc, nw = fit_brevitas(qnet, net, encode(ic, x_tr), y_tr, encode(ic, ds.x_test),
                           ds.y_test, oc, cfg, p["seed"])
    n = int(sum(nw.values()))
    return {"method": "brevitas-w1a1", "acc_test": acc, "n_weights": n,
            "total_weight_bits": n, "weight_bits": {k: 1 for k in nw}, "act_bits": 1,
            "qat_epochs": cfg.qat_epochs, "seconds": round(time.time() - t0, 1)}


JOBS = {"train": job_train, "heat": job_heat, "split": job_split, "sth": job_sth,
        "brevitas": job_brevitas}
OUTPUT_DIR = {"train": "run", "heat": "heated", "split": "dir", "sth": "sth"}


def _run(kind: str, p: dict) -> dict:
    try:
        _setup(p["threads"])
        row = _cached(p, JOBS[kind])
        if kind in OUTPUT_DIR and kind != "train":
            row = _with_estimate(p, row, Path(p[OUTPUT_DIR[kind]]))
            if kind == "sth" and "binary" in row:
                row["binary"] = _with_estimate(p, row["binary"], Path(p["sth_bin"]))
            _store(p, row)
    except Exception as e:  # noqa: BLE001 - a bench row records its failure and goes on
        row = {"method": p.get("label", kind), "error": f"{type(e).__name__}: {e}",
               "trace": traceback.format_exc()[-2000:]}
    row.update({"dataset": p["dataset"], "seed": p["seed"], "job": kind})
    return row


def _store(p: dict, row: dict) -> None:
    """Keep an estimate added to the cached row of these parameters."""
    path = Path(p["cache"])
    if row.get("not_available") or not path.is_file():
        return
    doc = json.loads(path.read_text())
    if doc.get("params") != _key(p):
        return
    doc["row"] = {k: v for k, v in row.items() if k != "cached"}
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")


# ------------------------------------------------------------------------------ driver

def plan(args) -> list[tuple[str, dict, list]]:
    """Job trees per dataset and seed: train -> (heat -> every split, split-then-heat,
    brevitas) (``--sth-from heated``: split-then-heat under heat)."""
    trees = []
    for ds_name in args.datasets:
        tpc = args.fashion_per_class if ds_name == "fashion" else args.mnist_per_class
        for seed in args.seeds:
            w = Path(args.out) / "binarize-work" / f"{ds_name}_s{seed}"
            base = {"dataset": ds_name, "train_per_class": tpc, "seed": seed,
                    "epochs": args.epochs, "qat_epochs": args.qat_epochs,
                    "threads": args.threads, "estimate": args.estimate,
                    "estimate_timeout": args.estimate_timeout, "work": str(w),
                    "run": str(w / "run-4bit")}
            heat_p = {**base, "drop": args.drop, "heat_epochs": args.heat_epochs,
                      "finetune_epochs": args.finetune_epochs,
                      "quench_epochs": args.quench_epochs, "heated": str(w / "heated"),
                      "n_test": args.n_test, "adders": args.adders}
            pred = {"pred": str(w / "heated_pred.npy")}
            kids = [("split", {**heat_p, **pred, "weights": sw, "acts": sa,
                               "label": f"split {sw}+{sa}", "dir": str(w / f"split-{sw}-{sa}"),
                               "cache": str(w / f"split-{sw}-{sa}.row.json"),
                               "keeps": [str(w / f"split-{sw}-{sa}")]}, [])
                    for sw, sa in args.splits]
            sth = ("sth", {**heat_p, "to": args.sth_to, "then": args.sth_split,
                           "adders_binary": args.adders and not args.quick,
                           "src": base["run"] if args.sth_from == "qat4" else heat_p["heated"],
                           "label": "split-then-heat", "wide": str(w / "widened"),
                           "sth": str(w / "sth"), "sth_bin": str(w / "sth-binary"),
                           "pred_sth": str(w / "sth_pred.npy"),
                           "cache": str(w / "sth.row.json"),
                           "keeps": [str(w / "sth"), str(w / "sth_pred.npy")]}, [])
            if "sth" in args.methods and args.sth_from == "heated":
                kids.append(sth)
            deps = [("heat", {**heat_p, **pred, "label": "heated",
                              "cache": str(w / "heated.row.json"),
                              "keeps": [str(w / "heated"), pred["pred"]]}, kids)]
            if "sth" in args.methods and args.sth_from == "qat4":
                deps.append(sth)
            if "brevitas" in args.methods:
                deps.append(("brevitas", {**base, "label": "brevitas-w1a1",
                                          "cache": str(w / "brevitas.row.json")}, []))
            trees.append(("train", {**base, "label": "float", "cache": str(w / "train.row.json"),
                                    "keeps": [base["run"]]}, deps))
    return trees


def flat_rows(rows: list[dict]) -> list[dict]:
    """The table's rows: a train row gives float and qat-4, a split-then-heat row also its
    binary split."""
    out = []
    for r in rows:
        out.append(r)
        if r.get("job") == "train" and "qat4" in r:
            out.append({**r, **r["qat4"], "method": "qat-4", "job": "qat4"})
        if r.get("job") == "sth" and "binary" in r:
            out.append({**r["binary"], "dataset": r["dataset"], "seed": r["seed"],
                        "job": "sth-binary"})
    return out


def _mean(vals: list) -> float | None:
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def _fmt(v, spec: str = ".0f") -> str:
    return "-" if v is None else format(v, spec)


def _group_line(ds: str, m: str, rs: list[dict]) -> str:
    accs = [r["acc_test"] for r in rs]
    fig = [r.get("figures", {}) for r in rs]
    w = _mean([f.get("weights", r.get("n_weights")) for f, r in zip(fig, rs)])
    wb = _mean([f.get("weight_bits", r.get("total_weight_bits")) for f, r in zip(fig, rs)])
    same = [r for r in rs if "same_predictions" in r]
    ver = "; ".join(f"{r['same_predictions']}/{r['n_test']}" for r in same) or "-"
    lut = _mean([(r.get("luts") or {}).get("lut_carry") for r in rs])
    return (f"| {ds} | {m} | {len(rs)} | {100 * np.mean(accs):.2f} | "
            f"{100 * min(accs):.2f}..{100 * max(accs):.2f} | {_fmt(w)} | {_fmt(wb)} | "
            f"{_fmt(_mean([r.get('fan_in_growth') for r in rs]), '.2f')} | "
            f"{_fmt(_mean([f.get('adders') for f in fig]))} | "
            f"{_fmt(_mean([f.get('luts') for f in fig]))} | {_fmt(lut)} | {ver} |")


def _bits_table(rows: list[dict]) -> list[str]:
    """The slides' table: bits per layer of the heated network vs the split-then-heated one."""
    heated = {(r["dataset"], r["seed"]): r for r in rows
              if r.get("job") == "heat" and "error" not in r}
    sth = {(r["dataset"], r["seed"]): r for r in rows
           if r.get("job") == "sth" and "weight_bits" in r}
    flt = {(r["dataset"], r["seed"]): r["acc_test"] for r in rows
           if r.get("job") == "train" and "acc_test" in r}
    lines = ["", "Bits per layer (weights; activations), heated base network vs split-then-heat",
             "", "| dataset | seed | network | weight bits per layer | act bits per layer | "
             "total weight bits | test acc % | vs float (pt) |", "|---|---|---|---|---|---|---|---|"]
    for key in sorted(heated):
        for name, r in (("heated", heated[key]), ("split-then-heat", sth.get(key))):
            if r is None:
                continue
            wb = " ".join(str(v) for v in r["weight_bits"].values())
            ab = " ".join(str(v) for v in r["act_bits"].values())
            drop = _fmt(100 * (r["acc_test"] - flt[key]) if key in flt else None, "+.2f")
            lines.append(f"| {key[0]} | {key[1]} | {name} | {wb} | {ab} | "
                         f"{r['total_weight_bits']} | {100 * r['acc_test']:.2f} | {drop} |")
    return lines


def summarise(rows: list[dict]) -> str:
    """Markdown: per dataset and method the mean over seeds; the bits-per-layer table; what
    was not available or failed."""
    lines = ["| dataset | method | seeds | test acc % (mean) | min..max | weights | weight bits | "
             "fan-in growth | adders | LUT model | LUT+CARRY4 (yosys) | predictions = unsplit |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    order = ["train", "qat4", "heat", "split", "sth", "sth-binary", "brevitas"]
    groups: dict[tuple, list] = {}
    for r in flat_rows(rows):
        if "acc_test" in r and "error" not in r:
            groups.setdefault((r["dataset"], order.index(r["job"]), r["method"]), []).append(r)
    for (ds, _, m), rs in sorted(groups.items()):
        lines.append(_group_line(ds, m, rs))
    lines += _bits_table(rows)
    for r in flat_rows(rows):
        where = f"{r['dataset']} seed {r['seed']} {r['method']}"
        if r.get("not_available"):
            lines.append(f"\nnot available: {where}: {r['not_available']}")
        if r.get("luts_error"):
            lines.append(f"\nno LUT estimate: {where}: {r['luts_error']}")
        if "error" in r:
            lines.append(f"\nfailed: {where}: {r['error']}")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, metric: str) -> None:
    """Test accuracy vs ``metric`` ("lut_carry" or "adders"), one panel per dataset; float,
    qat-4 and Brevitas (no hardware figure) as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in flat_rows(rows) if "acc_test" in r and "error" not in r]
    datasets = sorted({r["dataset"] for r in rows}) or ["none"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.5), squeeze=False)
    style = {"heat": ("*", "tab:red"), "split": ("o", "tab:blue"), "sth": ("^", "tab:orange"),
             "sth-binary": ("s", "tab:purple")}
    lines = {"train": ("float", "gray", "--"), "qat4": ("qat-4", "tab:cyan", ":"),
             "brevitas": ("brevitas w1a1", "tab:green", "-.")}
    for ax, ds in zip(axes[0], datasets):
        for r in rows:
            if r["dataset"] != ds:
                continue
            x = ((r.get("luts") or {}).get("lut_carry") if metric == "lut_carry"
                 else r.get("figures", {}).get("adders"))
            if r["job"] in style and x is not None:
                marker, color = style[r["job"]]
                ax.scatter(x, 100 * r["acc_test"], marker=marker, color=color, s=40)
                text = r["method"].replace("split-then-heat", "sth").replace("split ", "")
                ax.annotate(text, (x, 100 * r["acc_test"]), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")
            elif r["job"] in lines:
                _, color, ls = lines[r["job"]]
                ax.axhline(100 * r["acc_test"], color=color, ls=ls, lw=0.8)
        for label, color, ls in lines.values():
            ax.plot([], [], color=color, ls=ls, label=label)
        for job, (marker, color) in style.items():
            ax.scatter([], [], marker=marker, color=color, label={
                "heat": "heated", "split": "exact binary split", "sth": "split-then-heat",
                "sth-binary": "split-then-heat, binary split"}[job])
        ax.set_xscale("log")
        ax.set_title(ds)
        ax.set_xlabel("yosys LUT + CARRY4 (whole network)" if metric == "lut_carry"
                      else "adders per output vector (sum over layers)")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 seed, mnist5k at 100 "
                    "images per class, tiny epochs, one split, 200 test images, no adder "
                    "count for the binary split of the split-then-heated network")
    ap.add_argument("--datasets", default="mnist5k,fashion")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--splits", default=",".join(f"{w}:{a}" for w, a in SPLITS),
                    help="WEIGHTS:ACTS pairs of the exact binary split")
    ap.add_argument("--methods", default="sth,brevitas", help="besides float/heated/splits")
    ap.add_argument("--drop", type=float, default=0.5, help="heatq heat --max-acc-drop")
    ap.add_argument("--sth-to", default="2", help="split-then-heat: --weights balanced --to B")
    ap.add_argument("--sth-from", choices=("qat4", "heated"), default="qat4",
                    help="split-then-heat starts from the 4-bit run (as the heated row) or "
                    "from the heated one")
    ap.add_argument("--sth-split", default="bitplane:bitplane",
                    help="the exact binary split of the split-then-heated network")
    add_training_args(ap)
    ap.add_argument("--n-test", type=int, default=None,
                    help="test images for the IR accuracies (default all)")
    ap.add_argument("--no-adders", dest="adders", action="store_false",
                    help="skip the adder counts (lowering to adder graphs)")
    ap.add_argument("--estimate", action="store_true",
                    help="yosys LUT+CARRY4 of every exported network (slow)")
    ap.add_argument("--estimate-timeout", type=float, default=1800.0,
                    help="seconds per network for export + yosys")
    ap.add_argument("--jobs", type=int, default=1, help="parallel worker processes")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--out", default="bench/results")
    args = ap.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds, args.n_test = "mnist5k", "0", args.n_test or 200
        args.splits = "bitplane:bitplane"
        args.epochs, args.qat_epochs, args.heat_epochs = 4, 2, 2
        args.finetune_epochs, args.quench_epochs = 1, 1
        args.mnist_per_class = 100
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.splits = [tuple(s.split(":")) for s in args.splits.split(",") if s]
    args.sth_split = tuple(args.sth_split.split(":"))
    args.methods = set(args.methods.split(","))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    notes = []
    if "brevitas" in args.methods:
        try:
            import brevitas  # noqa: F401
        except ImportError:
            notes.append("brevitas-w1a1: not available: brevitas is not installed "
                         "(pip install -e '.[bench]')")
            args.methods.discard("brevitas")
    out = Path(args.out)
    (out / "binarize-work").mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    def log(row):
        acc = (f"{100 * row['acc_test']:.2f} %" if "acc_test" in row
               else row.get("error") or f"not available: {row.get('not_available')}")
        print(f"[{time.time() - t0:6.0f} s] {row['dataset']} seed {row['seed']} "
              f"{row['method']}: {acc}{' (cached)' if row.get('cached') else ''}", flush=True)

    rows = execute(plan(args), args.jobs, log, run=_run)
    settings = {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()}
    (out / "binarize.json").write_text(json.dumps(
        {"settings": settings, "notes": notes, "seconds": round(time.time() - t0, 1),
         "rows": rows}, indent=2, default=str) + "\n")
    table = "\n".join([summarise(rows)] + [f"\n{n}" for n in notes])
    (out / "binarize.md").write_text(table + "\n")
    metric = "lut_carry" if args.estimate else "adders"
    plot(rows, out / "binarize.png", metric)
    print(table)
    print(f"wrote {out}/binarize.json, .md, .png in {time.time() - t0:.0f} s")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
