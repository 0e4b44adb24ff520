"""Data-parallel training speed: the same training in 1 and in N processes, side by side.

For each process count (``--nproc``, default 1 and 2) the bench launches itself under
``python -m torch.distributed.run --standalone --nproc_per_node P`` (one OpenMP thread per
process); every process builds the same network and data (``--model`` on ``--dataset``,
``--train-per-class`` images per class, seed 0) and runs heatq's training
(:func:`heatq.train.train`: ``--epochs`` float + ``--qat-epochs`` quantized epochs, global
batch 64) inside :func:`heatq.distributed.session`; rank 0 times the training alone (not the
start-up, data loading, conversion or IR evaluation) and records the accuracies.  Prints a
table and writes ``--out`` (JSON: every row, the speed ratios, the machine).

    nice -n 10 python bench/ddp.py                       # seed-cnn, mnist5k, 1 vs 2 processes
    python bench/ddp.py --model resnet20 --dataset fashion32x3 --train-per-class 100

Wall-clock times on a shared machine vary with its load: the JSON records the CPU count and
the load average before each row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def worker(args: argparse.Namespace) -> None:
    """One process of a torchrun launch: train once, rank 0 writes the timing row."""
    sys.path.insert(0, str(ROOT))
    import torch

    from heatq.codes import parse_input_code, parse_output_code
    from heatq.data import load_dataset
    from heatq.distributed import session
    from heatq.models import build_model, image_spec
    from heatq.provenance import make_deterministic
    from heatq.train import TrainConfig, encode, train

    make_deterministic(1)
    ds = load_dataset(args.dataset, train_per_class=args.train_per_class, seed=0)
    ic = parse_input_code("bitplane:4")
    oc = parse_output_code("hadamard:15", ds.n_classes, seed=0)
    h, w = ds.image_shape
    spec = {"model": args.model, "in_channels": ic.body_channels(ds.colours),
            "code_length": oc.length, "w_bits": 4, "a_bits": 4,
            **image_spec(args.model, h, w, args.dataset)}
    x_train, x_test = encode(ic, ds.x_train), encode(ic, ds.x_test[:args.n_test])
    y_test = ds.y_test[:args.n_test]
    with session("cpu") as ctx:
        torch.manual_seed(0)
        net = build_model(spec)
        cfg = TrainConfig(epochs=args.epochs, qat_epochs=args.qat_epochs, seed=0,
                          progress=False)
        t0 = time.perf_counter()
        metrics = train(net, x_train, ds.y_train, x_test, y_test, oc, cfg, ctx=ctx)
        seconds = time.perf_counter() - t0
        if ctx.main:
            row = {"nproc": ctx.world_size, "seconds_train": round(seconds, 2),
                   "n_train": int(len(ds.y_train)), "n_test": int(len(y_test)),
                   "steps_per_epoch": ctx.steps_per_epoch(len(x_train), cfg.batch_size),
                   **{k: metrics[k] for k in ("acc_float", "acc_quant", "loss_float",
                                              "loss_quant")}}
            Path(args.row).write_text(json.dumps(row))


def launch(args: argparse.Namespace, nproc: int, row: Path) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node", str(nproc), str(Path(__file__).resolve()), "--worker",
           "--row", str(row), "--model", args.model, "--dataset", args.dataset,
           "--train-per-class", str(args.train_per_class), "--epochs", str(args.epochs),
           "--qat-epochs", str(args.qat_epochs), "--n-test", str(args.n_test)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    result = json.loads(row.read_text())
    result.update(seconds_wall=round(time.perf_counter() - t0, 2), load_before=round(load, 2))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="seed-cnn")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--train-per-class", type=int, default=200)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--qat-epochs", type=int, default=1)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--nproc", default="1,2", help="comma-separated process counts")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ddp.json")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--row", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    counts = [int(c) for c in args.nproc.split(",")]
    rows = []
    for n in counts:
        rows.append(launch(args, n, args.out.with_suffix(f".row{n}.tmp")))
        args.out.with_suffix(f".row{n}.tmp").unlink()
    base = rows[0]["seconds_train"]
    for r in rows:
        r["speedup_vs_first"] = round(base / r["seconds_train"], 3)
    doc = {"bench": "ddp", "model": args.model, "dataset": args.dataset,
           "train_per_class": args.train_per_class, "epochs": args.epochs,
           "qat_epochs": args.qat_epochs, "global_batch": 64, "threads_per_process": 1,
           "backend": "gloo", "cpu_count": os.cpu_count(),
           "command": "python bench/ddp.py " + " ".join(sys.argv[1:]), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{'processes':>9} {'train s':>8} {'speed-up':>8} {'steps/ep':>8} {'acc float':>9} "
          f"{'acc quant':>9} {'load':>5}")
    for r in rows:
        print(f"{r['nproc']:>9} {r['seconds_train']:>8.1f} {r['speedup_vs_first']:>8.2f} "
              f"{r['steps_per_epoch']:>8} {100 * r['acc_float']:>8.2f}% "
              f"{100 * r['acc_quant']:>8.2f}% {r['load_before']:>5.1f}")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
