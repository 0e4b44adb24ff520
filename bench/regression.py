"""Regression by codes on ``diabetes:K``: MAE in target units of ordinal output codes against a
plain quantised regression head of the same network body.

Rows, each over ``--seeds`` (one torch thread, deterministic algorithms):

* ``code C``: ``heatq.pipeline.train_run`` with the mlp (hidden 128, ``--bits``-bit weights
  and activations, input code ``--input-code``) and output code C (``thermometer``, ``gray``,
  ``random:L``). ``MAE`` is the Hamming-decoded level of the *integer IR* (the hardware's
  ``class`` output) mapped to its level centre; ``MAE expected`` decodes the quantised
  network's logits by expected value (:func:`heatq.regression.expected_value_torch`, reporting
  only).  Every row also checks that the IR's MAE equals the quantised torch network's.
* ``plain head``: the same mlp body with one output (``code_length`` 1), trained with L1 loss
  on the standardised target (the same float + QAT epochs, optimiser and schedule as
  ``heatq.train``), converted to the IR; the prediction is the IR's exact integer output
  ``logit * 2**-frac``, de-standardised (the one float step, outside the network).  The
  integer output is checked equal to the quantised torch network's.
* ``linear regression (float)``: scikit-learn's ``LinearRegression`` on the same uint8
  features (float, unquantised): the reference point.
* ``levels alone (floor)``: every test sample at its true level's centre (the error the
  quantisation to K levels costs by itself); ``training mean``: a constant prediction.

Writes ``OUT/regression_diabetes.json`` and ``OUT/regression_diabetes.md`` and prints the table.

    python bench/regression.py --out bench/results                 # 3 seeds, a few minutes
    python bench/regression.py --quick --out /tmp/reg              # smoke run (seconds)
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from heatq.codes import parse_input_code
from heatq.data import load_dataset
from heatq.ir.interp import run
from heatq.models import build_model
from heatq.pipeline import set_threads, train_run
from heatq.qnet_ir import convert
from heatq.train import TrainConfig, calibrate, encode

FULL = {"seeds": "0,1,2", "levels": 16, "epochs": 30, "qat_epochs": 15,
        "codes": "thermometer,gray,random:15,random:31"}
QUICK = {"seeds": "0", "levels": 8, "epochs": 2, "qat_epochs": 1, "codes": "thermometer,gray"}
HEAD_CODEBOOK = np.array([[0], [1]], dtype=np.uint8)  # convert() needs one; unused here


def code_row(out: Path, dataset: str, code: str, seed: int, a: argparse.Namespace) -> dict:
    """One ``train_run`` with output code ``code``; its regression metrics."""
    t0 = time.time()
    s = train_run(out, dataset, "mlp", a.input_code, code, a.bits, a.bits, a.epochs,
                  a.qat_epochs, seed, progress=False, force=True)
    if s["mae_ir"] != s["mae"]:
        raise SystemExit(f"{code} seed {seed}: IR MAE {s['mae_ir']} != torch MAE {s['mae']}")
    code_length = len(json.loads((out / "config.json").read_text())["codebook"][0])
    return {"row": f"code {code}", "seed": seed, "L": code_length, "mae": s["mae_ir"],
            "mae_expected": s["mae_expected"], "rmse": s["rmse"], "acc_levels": s["acc_ir"],
            "seconds": round(time.time() - t0, 1)}


def _fit_head(net, x: torch.Tensor, z: torch.Tensor, epochs: int, lr: float,
              cfg: TrainConfig) -> None:
    """``heatq.train.fit`` with an L1 loss on one output (no shifts: features, not pixels)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    steps = max(1, epochs * ((len(x) + cfg.batch_size - 1) // cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            loss = F.l1_loss(net(x[idx])[:, 0], z[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()


def plain_head_row(dataset: str, seed: int, a: argparse.Namespace) -> dict:
    """The same mlp body with one linear output trained on the standardised target, quantised
    and converted; MAE of the IR's exact integer output in target units."""
    t0 = time.time()
    ds = load_dataset(dataset, seed=seed)
    ic = parse_input_code(a.input_code)
    t_tr, t_te = ds.targets.t_train, ds.targets.t_test
    mean, std = float(t_tr.mean()), float(t_tr.std())
    x_tr, codes_te = encode(ic, ds.x_train), ic.encode_numpy(ds.x_test).astype(np.int64)
    z = torch.from_numpy((t_tr - mean) / std).float()
    h, w = ds.image_shape
    torch.manual_seed(seed)
    net = build_model({"model": "mlp", "in_channels": ic.channels, "code_length": 1,
                       "w_bits": a.bits, "a_bits": a.bits, "image_shape": [h, w]})
    cfg = TrainConfig(seed=seed, max_shift=0, progress=False)
    torch.manual_seed(seed)
    net.set_mode("float")
    _fit_head(net, x_tr, z, a.epochs, cfg.lr, cfg)
    net.set_mode("quant")
    calibrate(net, x_tr)
    _fit_head(net, x_tr, z, a.qat_epochs, cfg.qat_lr, cfg)
    net.eval()
    graph = convert(net, HEAD_CODEBOOK)
    logits = run(graph, codes_te)[0][:, 0]
    frac = graph.nodes[graph.outputs[0]].type.frac
    with torch.no_grad():
        torch_out = copy.deepcopy(net).double()(torch.from_numpy(codes_te).double())[:, 0].numpy()
    if not np.array_equal(logits, torch_out * 2.0 ** frac):
        raise SystemExit(f"plain head seed {seed}: the IR's integers differ from torch's")
    pred = logits * 2.0 ** -frac * std + mean
    err = pred - t_te
    return {"row": "plain head (L1)", "seed": seed, "L": 1, "mae": float(np.abs(err).mean()),
            "mae_expected": None, "rmse": float(np.sqrt((err ** 2).mean())), "acc_levels": None,
            "seconds": round(time.time() - t0, 1)}


def reference_rows(dataset: str, seed: int) -> list[dict]:
    """Float linear regression, the levels-alone floor and the training mean."""
    from sklearn.linear_model import LinearRegression

    ds = load_dataset(dataset, seed=seed)
    tl = ds.targets
    x_tr = ds.x_train.reshape(len(ds.x_train), -1).astype(np.float64)
    x_te = ds.x_test.reshape(len(ds.x_test), -1).astype(np.float64)
    preds = {"linear regression (float)": LinearRegression().fit(x_tr, tl.t_train).predict(x_te),
             "levels alone (floor)": tl.centres[tl.level_of(tl.t_test)],
             "training mean": np.full(len(tl.t_test), tl.t_train.mean())}
    return [{"row": name, "seed": seed, "L": None, "mae": float(np.abs(p - tl.t_test).mean()),
             "mae_expected": None, "rmse": float(np.sqrt(((p - tl.t_test) ** 2).mean())),
             "acc_levels": None, "seconds": 0.0} for name, p in preds.items()]


def _stat(values: list) -> str:
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if not len(v):
        return "-"
    return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.mean():.2f}"


def table(rows: list[dict], seeds: list[int]) -> str:
    """Markdown: one line per row kind, mean ± sample s.d. over the seeds."""
    lines = ["| row | L | MAE (Hamming / exact output) | MAE (expected value) | RMSE | "
             "level accuracy | seeds |", "|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["row"] for r in rows):
        rs = [r for r in rows if r["row"] == name]
        acc = _stat([None if r["acc_levels"] is None else 100 * r["acc_levels"] for r in rs])
        lines.append(f"| {name} | {rs[0]['L'] if rs[0]['L'] is not None else '-'} | "
                     f"{_stat([r['mae'] for r in rs])} | {_stat([r['mae_expected'] for r in rs])} "
                     f"| {_stat([r['rmse'] for r in rs])} | {acc if acc == '-' else acc + ' %'} "
                     f"| {len(rs)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--quick", action="store_true", help="smoke settings (seconds)")
    p.add_argument("--seeds")
    p.add_argument("--levels", type=int)
    p.add_argument("--codes", help="comma-separated output codes")
    p.add_argument("--epochs", type=int)
    p.add_argument("--qat-epochs", type=int)
    p.add_argument("--bits", type=int, default=4, help="weight and activation bits")
    p.add_argument("--input-code", default="thermometer:8")
    a = p.parse_args(argv)
    for k, v in (QUICK if a.quick else FULL).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    set_threads(1)
    seeds = [int(s) for s in a.seeds.split(",")]
    dataset = f"diabetes:{a.levels}"
    t0 = time.time()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for code in a.codes.split(","):
                rows.append(code_row(Path(tmp) / f"{seed}-{code}", dataset, code, seed, a))
            rows.append(plain_head_row(dataset, seed, a))
            rows.extend(reference_rows(dataset, seed))
            print(f"seed {seed} done ({time.time() - t0:.0f} s)", file=sys.stderr)
    settings = {k: getattr(a, k) for k in ("seeds", "levels", "codes", "epochs", "qat_epochs",
                                           "bits", "input_code")}
    md = table(rows, seeds)
    cmd = "python bench/regression.py " + " ".join(argv if argv is not None else sys.argv[1:])
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "regression_diabetes.json").write_text(json.dumps(
        {"dataset": dataset, "settings": settings, "command": cmd, "rows": rows,
         "seconds": round(time.time() - t0, 1)}, indent=1) + "\n")
    (a.out / "regression_diabetes.md").write_text(
        f"# Regression by codes: {dataset}, mlp (hidden 128, {a.bits}-bit), input "
        f"{a.input_code}\n\n{md}\n\nMAE and RMSE in target units (disease progression), test "
        f"split (88 patients), mean ± s.d. over seeds {a.seeds}. Command: `{cmd}`\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
