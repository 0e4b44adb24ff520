"""Heating over seeds: does ``heatq heat --max-acc-drop D`` meet its bound on every seed, how
few bits does it reach, and does a seed give the same result when run again?

For each seed, in a worker process with one torch thread and deterministic algorithms
(:func:`heatq.provenance.make_deterministic`): ``heatq train`` (the seed CNN, 4-bit weights
and activations, 20 % of the training images held out as the validation split) into
``OUT/runs/seed-S/train``, then ``heatq heat`` of that run into ``OUT/runs/seed-S/heat``
(its printed table in ``OUT/runs/seed-S/heat.log``).  Writes ``OUT/heat_seeds.json`` (per
seed: accuracies, drops, margin, bits, costs, seconds, the SHA-256 of the heated run's
``model.ir.json`` and ``model.pt``) and ``OUT/heat_seeds.md`` (a table and a summary line).
The test drop is against the run's own float test accuracy (``heatq train``'s ``acc_float``).

``--compare A.json B.json`` says per seed whether two such files hold the same result (IR and
model hashes, bits, accuracies) and exits 1 if any seed differs.

    python bench/heat_seeds.py --quick --out /tmp/heat_seeds       # smoke run, digits mlp
    python bench/heat_seeds.py --dataset mnist5k --seeds 0,1,2,3,4 --jobs 2 --out bench/out/hs
    python bench/heat_seeds.py --compare bench/out/hs/heat_seeds.json other/heat_seeds.json
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

FULL = {"dataset": "mnist5k", "model": "seed-cnn", "seeds": "0,1,2,3,4", "epochs": 30,
        "qat_epochs": 15, "heat_epochs": 20, "finetune_epochs": 2, "quench_epochs": 3}
QUICK = {"dataset": "digits", "model": "mlp", "seeds": "0,1", "epochs": 2, "qat_epochs": 1,
         "heat_epochs": 2, "finetune_epochs": 1, "quench_epochs": 1}
COMPARED = ("ir_sha256", "pt_sha256", "train_ir_sha256", "weight_bits", "act_bits",
            "acc_float", "acc_heated_val", "acc_heated", "constraint_met")
MAX_W_BITS, MAX_A_BITS = 3, 2  # the target: weights <= 3, activations <= 2 bits


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record(seed: int, train: dict, heat: dict, heat_dir: Path, train_dir: Path,
            seconds: tuple[float, float]) -> dict:
    """One seed's row of heat_seeds.json from the train and heat summaries."""
    wb, ab = heat["weight_bits"], heat["act_bits"]
    return {
        "seed": seed, "acc_float": train["acc_float"], "acc_heated_val": heat["acc_heated_val"],
        "acc_heated": heat["acc_heated"], "drop_val": heat["acc_drop_val"],
        "drop_test": 100.0 * (train["acc_float"] - heat["acc_heated"]),
        "drop_test_vs_reference": heat["acc_drop_test"], "margin": heat.get("margin"),
        "constraint_met": bool(heat["constraint_met"]),
        "exported": (heat.get("exported") or {}).get("network"),
        "weight_bits": wb, "act_bits": ab, "max_weight_bits": max(wb.values()),
        "max_act_bits": max(ab.values()), "total_weight_bits": heat["total_weight_bits"],
        "bops": heat.get("bops"), "split_luts": heat.get("split_luts"),
        "seconds_train": round(seconds[0], 1), "seconds_heat": round(seconds[1], 1),
        "seconds": round(sum(seconds), 1),
        "ir_sha256": _sha256(heat_dir / "model.ir.json"),
        "pt_sha256": _sha256(heat_dir / "model.pt"),
        "train_ir_sha256": _sha256(train_dir / "model.ir.json"),
        "splits": {k: v["sha256"] for k, v in train["provenance"]["splits"].items()},
    }


def run_seed(p: dict) -> dict:
    """Worker: train then heat one seed (one torch thread, deterministic algorithms)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from heatq.heat.command import heat
    from heatq.pipeline import train_run
    from heatq.provenance import make_deterministic

    make_deterministic(1)
    seed, root = p["seed"], Path(p["out"]) / "runs" / f"seed-{p['seed']}"
    t0 = time.time()
    train = train_run(root / "train", p["dataset"], p["model"], weight_bits=4, act_bits=4,
                      epochs=p["epochs"], qat_epochs=p["qat_epochs"], seed=seed,
                      train_per_class=p["train_per_class"], progress=False, val_fraction=0.2,
                      force=True)
    t1 = time.time()
    with open(root / "heat.log", "w") as log, contextlib.redirect_stdout(log):
        summary = heat(root / "train", root / "heat", max_acc_drop=p["max_acc_drop"],
                       objective=p["objective"], solver=p["solver"], epochs=p["heat_epochs"],
                       finetune_epochs=p["finetune_epochs"], quench_epochs=p["quench_epochs"],
                       seed=seed, progress=False, force=True)
    return _record(seed, train, summary, root / "heat", root / "train",
                   (t1 - t0, time.time() - t1))


def run_all(args) -> list[dict]:
    """Every seed in a pool of ``--jobs`` worker processes (spawned: no torch state shared);
    a seed that fails gives a row with ``error`` (one line)."""
    keys = ("dataset", "model", "train_per_class", "max_acc_drop", "objective", "solver",
            "epochs", "qat_epochs", "heat_epochs", "finetune_epochs", "quench_epochs", "out")
    base = {k: getattr(args, k) for k in keys}
    rows = []
    with ProcessPoolExecutor(max_workers=args.jobs,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_seed, {**base, "seed": s}): s for s in args.seeds}
        for fut in as_completed(futures):
            seed = futures[fut]
            try:
                row = fut.result()
            except Exception as e:  # noqa: BLE001 - report every seed, then exit 1
                first = (str(e).splitlines() or [""])[0]
                row = {"seed": seed, "error": f"{type(e).__name__}: {first}"[:300]}
            print(_line(row), flush=True)
            rows.append(row)
    return sorted(rows, key=lambda r: r["seed"])


def _line(row: dict) -> str:
    if "error" in row:
        return f"seed {row['seed']}: FAILED: {row['error']}"
    return (f"seed {row['seed']}: val drop {row['drop_val']:.2f} pt, test drop "
            f"{row['drop_test']:.2f} pt, met {row['constraint_met']}, weights "
            f"{_bits(row['weight_bits'])}, acts {_bits(row['act_bits'])}, {row['seconds']} s")


def _bits(bits: dict) -> str:
    return " ".join(str(b) for b in bits.values())


def counts(rows: list[dict], bound: float) -> dict:
    """The acceptance counts over the seeds (a failed seed counts as not met)."""
    ok = [r for r in rows if "error" not in r]
    return {"n": len(rows), "failed": len(rows) - len(ok),
            "constraint_met_val": sum(r["constraint_met"] for r in ok),
            "test_drop_within": sum(r["drop_test"] <= bound + 1e-9 for r in ok),
            "low_bits": sum(r["max_weight_bits"] <= MAX_W_BITS
                            and r["max_act_bits"] <= MAX_A_BITS for r in ok)}


def summary_line(c: dict, bound: float) -> str:
    n = c["n"]
    return (f"constraint met {c['constraint_met_val']}/{n} on validation, test drop <= "
            f"{bound} pt {c['test_drop_within']}/{n}, weights <= {MAX_W_BITS} and acts <= "
            f"{MAX_A_BITS} bits {c['low_bits']}/{n}"
            + (f" ({c['failed']} failed)" if c["failed"] else ""))


def markdown(rows: list[dict], settings: dict, c: dict) -> str:
    """heat_seeds.md: the settings, one table row per seed, the summary line."""
    head = ("| seed | float test % | heated val % | heated test % | drop val | drop test | "
            "margin | met | weight bits | act bits | total w bits | BOPs | split LUTs | s | "
            "IR sha256 |")
    lines = [f"heatq heat over seeds: {settings['dataset']} {settings['model']}, "
             f"--max-acc-drop {settings['max_acc_drop']}, --objective {settings['objective']}, "
             f"--solver {settings['solver']}", "", head, "|" + "---|" * head.count(" | ")
             + "---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['seed']} | failed: {r['error']} |")
            continue
        margin = r["margin"]["points"] if isinstance(r["margin"], dict) else r["margin"]
        cells = [r["seed"], f"{100 * r['acc_float']:.2f}", f"{100 * r['acc_heated_val']:.2f}",
                 f"{100 * r['acc_heated']:.2f}", f"{r['drop_val']:.2f}",
                 f"{r['drop_test']:.2f}", "-" if margin is None else f"{margin:.2f}",
                 "yes" if r["constraint_met"] else "NO", _bits(r["weight_bits"]),
                 _bits(r["act_bits"]), r["total_weight_bits"], r["bops"] or "-",
                 "-" if r["split_luts"] is None else r["split_luts"], r["seconds"],
                 r["ir_sha256"][:12]]
        lines.append("| " + " | ".join(str(x) for x in cells) + " |")
    return "\n".join(lines + ["", summary_line(c, settings["max_acc_drop"]), ""])


def _replace_into(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it onto ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _load(path: str) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"heat_seeds: {path}: cannot read ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("seeds"), list):
        raise SystemExit(f"heat_seeds: {path}: not a heat_seeds.json (no seeds list)")
    return doc


def compare(a: dict, b: dict) -> tuple[list[str], bool]:
    """(one line per seed, whether any seed differs) for two heat_seeds.json documents.  A
    seed differs when it is missing from one, failed in either, or any :data:`COMPARED`
    field differs; differences in versions or settings are listed first (they explain,
    they do not count)."""
    lines = []
    for what in ("settings", "versions"):
        da, db = a.get(what) or {}, b.get(what) or {}
        diff = [f"{k} {da.get(k)!r} vs {db.get(k)!r}" for k in sorted(set(da) | set(db))
                if da.get(k) != db.get(k)]
        if diff:
            lines.append(f"{what} differ: " + "; ".join(diff))
    ra, rb = ({r["seed"]: r for r in d["seeds"]} for d in (a, b))
    differ = False
    for seed in sorted(set(ra) | set(rb)):
        if seed not in ra or seed not in rb:
            why = f"only in {'A' if seed in ra else 'B'}"
        elif "error" in ra[seed] or "error" in rb[seed]:
            why = "failed in " + " and ".join(n for n, r in (("A", ra), ("B", rb))
                                              if "error" in r[seed])
        else:
            why = ", ".join(k for k in COMPARED if ra[seed].get(k) != rb[seed].get(k))
        differ = differ or bool(why)
        lines.append(f"seed {seed}: " + (f"DIFFERENT ({why})" if why else "identical"))
    return lines, differ


def _seeds(text: str) -> list[int]:
    seeds = [int(s) for s in text.split(",") if s.strip()]
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"need distinct seeds >= 0, got {text!r}")
    return seeds


def parse_args(argv=None):
    """The options; ``--quick`` fills every option not given with a tiny run (digits, mlp,
    seeds 0 and 1, 2 epochs)."""
    from heatq.heat.lagrange import OBJECTIVES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"),
                    help="compare two heat_seeds.json files; exit 1 if any seed differs")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    ap.add_argument("--dataset")
    ap.add_argument("--model", help="seed-cnn (default) | mlp")
    ap.add_argument("--seeds", help="comma list (default 0,1,2,3,4)")
    ap.add_argument("--train-per-class", type=int, default=None)
    ap.add_argument("--max-acc-drop", type=float, default=0.5)
    ap.add_argument("--objective", default="split_luts", help=" | ".join(OBJECTIVES))
    ap.add_argument("--solver", default="greedy")
    for name in ("epochs", "qat-epochs", "heat-epochs", "finetune-epochs", "quench-epochs"):
        ap.add_argument(f"--{name}", type=int)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (1 thread each)")
    ap.add_argument("--out", help="output directory (required unless --compare)")
    args = ap.parse_args(argv)
    if args.compare:
        return args
    for k, v in (QUICK if args.quick else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    try:
        args.seeds = _seeds(args.seeds)
    except ValueError as e:
        ap.error(f"--seeds: {e}")
    if args.out is None:
        ap.error("--out is required")
    if args.objective not in OBJECTIVES:
        ap.error(f"--objective: heatq heat has no objective {args.objective!r} "
                 f"(choose {', '.join(OBJECTIVES)})")
    if args.jobs < 1:
        ap.error("--jobs must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.compare:
        lines, differ = compare(_load(args.compare[0]), _load(args.compare[1]))
        print("\n".join(lines))
        return 1 if differ else 0
    from heatq.provenance import versions

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(args, k) for k in (
        "dataset", "model", "train_per_class", "max_acc_drop", "objective", "solver", "epochs",
        "qat_epochs", "heat_epochs", "finetune_epochs", "quench_epochs")}
    t0 = time.time()
    rows = run_all(args)
    c = counts(rows, args.max_acc_drop)
    doc = {"settings": settings, "versions": versions(), "seeds": rows, "counts": c,
           "summary": summary_line(c, args.max_acc_drop), "seconds": round(time.time() - t0, 1)}
    _replace_into(out / "heat_seeds.json", json.dumps(doc, indent=2, sort_keys=True) + "\n")
    text = markdown(rows, settings, c)
    _replace_into(out / "heat_seeds.md", text)
    print(text)
    return 1 if c["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
