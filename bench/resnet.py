"""ResNet-20 over seeds: float, 4-bit QAT, heated and its exact binary split, every target.

For each seed, the user's commands, in order (each its own process, one torch thread):

    heatq train --model resnet20 --dataset D [--train-per-class K] --epochs E --qat-epochs Q
                --seed S -o OUT/seed-S/train                         # float + 4-bit QAT
    heatq check OUT/seed-S/train --n C                               # first C test images
    heatq heat OUT/seed-S/train -o OUT/seed-S/heat --max-acc-drop 1 --epochs H ...
    heatq check OUT/seed-S/heat --n C
    heatq split OUT/seed-S/heat -o OUT/seed-S/split --weights bitplane --acts bitplane
                --to binary; heatq check OUT/seed-S/split --n N      # every product 1-bit
    heatq-export OUT/seed-S/heat -t c|hls -o OUT/seed-S/<t>; heatq run-target OUT/seed-S/<t>
                --n N                          # first N test images + corners (HLS: --n-hls)

Writes ``OUT/resnet.json`` (per seed: accuracies, bits, the split's and each target's result,
the commands and their seconds) and ``OUT/resnet.md`` (one table).  Accuracies are on the
dataset's whole test set (``acc_float``, ``acc_quant`` of ``heatq train``; ``acc_heated`` of
``heatq heat``; the split graph computes exactly the heated graph, which ``heatq split``
verifies layer by layer, so its accuracy is the heated one).

    python bench/resnet.py --quick --out /tmp/resnet_quick        # digits 8x8, 1 seed, minutes
    python bench/resnet.py --dataset fashion32x3 --train-per-class 300 --seeds 0,1,2 --jobs 2 \\
        --out bench/results/resnet
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

BIN = Path(sys.executable).parent
QUICK = {"dataset": "digits", "train_per_class": None, "seeds": "0", "epochs": 4,
         "qat_epochs": 2, "heat_epochs": 2, "finetune_epochs": 1, "quench_epochs": 1,
         "solver": "ilp", "n_target": 50, "n_hls": 10, "n_check": 300}
FULL = {"dataset": "fashion32x3", "train_per_class": 300, "seeds": "0,1,2", "epochs": 12,
        "qat_epochs": 6, "heat_epochs": 10, "finetune_epochs": 2, "quench_epochs": 2,
        "solver": "ilp", "n_target": 200, "n_hls": 20, "n_check": 2000}


def _run(cmd: list[str], log: Path) -> float:
    """Run one heatq command (its output appended to ``log``); seconds; exit on failure."""
    t = time.time()
    with log.open("a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {r.returncode}); see {log}")
    return round(time.time() - t, 1)


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _bits_summary(bits: dict) -> dict:
    v = list(bits.values())
    return {"mean": round(sum(v) / len(v), 2), "max": max(v), "min": min(v)}


def run_seed(p: dict) -> dict:
    """Every command of one seed; its row of resnet.json."""
    root, s = Path(p["out"]) / f"seed-{p['seed']}", str(p["seed"])
    root.mkdir(parents=True, exist_ok=True)
    log = root / "commands.log"
    h, e = str(BIN / "heatq"), str(BIN / "heatq-export")
    tpc = ["--train-per-class", str(p["train_per_class"])] if p["train_per_class"] else []
    cmds = {
        "train": [h, "train", "--model", "resnet20", "--dataset", p["dataset"], *tpc,
                  "--epochs", str(p["epochs"]), "--qat-epochs", str(p["qat_epochs"]),
                  "--seed", s, "-o", str(root / "train"), "--force", "-q"],
        "check_train": [h, "check", str(root / "train"), "--n", str(p["n_check"]), "-q"],
        "heat": [h, "heat", str(root / "train"), "-o", str(root / "heat"), "--max-acc-drop", "1",
                 "--epochs", str(p["heat_epochs"]), "--finetune-epochs",
                 str(p["finetune_epochs"]), "--quench-epochs", str(p["quench_epochs"]),
                 "--solver", p["solver"], "--force", "-q"],
        "check_heat": [h, "check", str(root / "heat"), "--n", str(p["n_check"]), "-q"],
        "split": [h, "split", str(root / "heat"), "-o", str(root / "split"), "--weights",
                  "bitplane", "--acts", "bitplane", "--to", "binary", "--no-adders", "--force",
                  "-q"],
        "check_split": [h, "check", str(root / "split"), "--n", str(p["n_target"]), "-q"],
    }
    done = {"train": "train/summary.json", "check_train": "train/check.json",
            "heat": "heat/summary.json", "check_heat": "heat/check.json",
            "split": "split/summary.json", "check_split": "split/check.json"}
    for t in p["targets"]:
        n = p["n_hls"] if t == "hls" else p["n_target"]
        cmds[f"export_{t}"] = [e, str(root / "heat"), "-t", t, "-o", str(root / t), "--force"]
        cmds[f"run_{t}"] = [h, "run-target", str(root / t), "--n", str(n), "-q"]
        done.update({f"export_{t}": f"{t}/summary.json", f"run_{t}": f"{t}/run.json"})
    old = _json(root / "row.json")["seconds"] if (root / "row.json").exists() else {}
    seconds = {}
    for k, c in cmds.items():  # --resume: a step whose output is there is not run again
        resumed = p["resume"] and (root / done[k]).exists()
        seconds[k] = old.get(k) if resumed else _run(c, log)
        if not resumed:
            _save_seconds(root, seconds)
    train, heat = _json(root / "train" / "summary.json"), _json(root / "heat" / "summary.json")
    row = {
        "seed": p["seed"], "acc_float": train["acc_float"], "acc_quant": train["acc_quant"],
        "acc_heated": heat["acc_heated"], "drop_val": heat["acc_drop_val"],
        "constraint_met": bool(heat["constraint_met"]),
        "weight_bits": _bits_summary(heat["weight_bits"]),
        "act_bits": _bits_summary(heat["act_bits"]),
        "check_train": _json(root / "train" / "check.json")["all_equal"],
        "check_heat": _json(root / "heat" / "check.json")["all_equal"],
        "split": _split_result(root / "split"),
        "targets": {t: _target_result(root / t) for t in p["targets"]},
        "commands": {k: " ".join(c) for k, c in cmds.items()}, "seconds": seconds,
    }
    (root / "row.json").write_text(json.dumps(row, indent=1) + "\n")
    return row


def _save_seconds(root: Path, seconds: dict) -> None:
    """The seconds of the steps run so far (``row.json``, completed at the end), so that a
    resumed seed keeps the times of the steps it does not rerun."""
    path = root / "row.json"
    row = _json(path) if path.exists() else {}
    row["seconds"] = {**row.get("seconds", {}), **seconds}
    path.write_text(json.dumps(row, indent=1) + "\n")


def _split_result(directory: Path) -> dict:
    """The split's widths and its layer-by-layer check against the heated graph."""
    summ, check = _json(directory / "summary.json"), _json(directory / "check.json")
    return {"all_equal": check["all_equal"], "n_samples": check["n_samples"],
            "weight_bits": _bits_summary(summ["weight_bits"]) if summ["weight_bits"] else None,
            "act_bits": _bits_summary(summ["act_bits"]) if summ["act_bits"] else None,
            "n_nodes": summ["n_nodes"]}


def _target_result(directory: Path) -> dict:
    res = _json(directory / "run.json")
    return {"n": res["n_vectors"], "mismatches": res["mismatches"], "accuracy": res["accuracy"]}


def markdown(rows: list[dict], settings: dict) -> str:
    head = ("| seed | float | 4-bit QAT | heated (drop on val) | heated weight bits mean / max "
            "| act bits mean / max | binary split | check | " + " | ".join(
                f"{t} mismatches" for t in settings["targets"]) + " |")
    lines = [f"ResNet-20 on {settings['dataset']} ({settings['train_per_class'] or 'all'} "
             f"training images per class), epochs {settings['epochs']} + QAT "
             f"{settings['qat_epochs']}, heating {settings['heat_epochs']} epochs (fine-tune "
             f"{settings['finetune_epochs']}, quench {settings['quench_epochs']}, solver "
             f"{settings['solver']}, "
             "`--max-acc-drop 1`); accuracies on the whole test set.", "", head,
             "|" + "---|" * (8 + len(settings["targets"]))]
    for r in rows:
        split = r["split"]
        lines.append(
            f"| {r['seed']} | {100 * r['acc_float']:.2f} % | {100 * r['acc_quant']:.2f} % | "
            f"{100 * r['acc_heated']:.2f} % ({r['drop_val']:+.2f}) | "
            f"{r['weight_bits']['mean']} / {r['weight_bits']['max']} | "
            f"{r['act_bits']['mean']} / {r['act_bits']['max']} | "
            f"{'exact' if split['all_equal'] else 'DIFFERS'} on {split['n_samples']} | "
            f"{'100 %' if r['check_train'] and r['check_heat'] else 'FAILED'} | "
            + " | ".join(f"{v['mismatches']} of {v['n']}" for v in r["targets"].values()) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="digits, 1 seed, few epochs")
    for k, v in FULL.items():
        ap.add_argument("--" + k.replace("_", "-"), type=type(v) if v is not None else int,
                        default=None)
    ap.add_argument("--targets", default="c,hls")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--resume", action="store_true",
                    help="skip the steps whose outputs are already in OUT (e.g. after a stop)")
    ap.add_argument("--out", required=True, type=Path)
    a = ap.parse_args(argv)
    settings = dict(QUICK if a.quick else FULL)
    settings.update({k: getattr(a, k) for k in FULL if getattr(a, k) is not None})
    settings["targets"] = a.targets.split(",")
    seeds = [int(s) for s in str(settings["seeds"]).split(",")]
    params = [{**settings, "seed": s, "out": str(a.out), "resume": a.resume} for s in seeds]
    a.out.mkdir(parents=True, exist_ok=True)
    t = time.time()
    with ProcessPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        rows = list(pool.map(run_seed, params))
    result = {"settings": settings, "rows": rows, "seconds": round(time.time() - t, 1)}
    (a.out / "resnet.json").write_text(json.dumps(result, indent=1) + "\n")
    md = markdown(rows, settings)
    (a.out / "resnet.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
