#!/usr/bin/env python3
"""Input codes at equal channel count: fixed bit-planes, fixed thermometer, learned thresholds.

For each ``T`` in ``--channels`` (default 4) and each code ``bitplane:T`` (T <= 8),
``thermometer:T`` and ``learned:T`` (:mod:`heatq.thresholds`), the seed CNN is trained on
``--dataset`` (default mnist5k) with :func:`heatq.pipeline.train_run` for every seed of
``--seeds`` (``--epochs`` float + ``--qat-epochs`` quantized; 4-bit weights and activations,
hadamard:15); each row records the float, quantized and IR test accuracy (the IR's must equal
the quantized one) and, for a learned code, the frozen thresholds.

The input layer's hardware: per code, a tiny IR graph that turns ONE pixel (INPUT ``[1]``,
unsigned 8-bit) into the T binary channels exactly as the network's graph does (bit-plane:
``BIT(7-j)`` of the pixel, j < T, and a CONCAT: wiring; thermometer, fixed and learned: a CONCAT
of T copies and a THRESHOLD with one threshold per channel: T comparisons with 8-bit
constants), exported to Verilog (:func:`heatq_export.export.export_graph`, the parallel
architecture: one pixel per clock, as the stream design converts one streamed pixel per clock)
and counted with yosys (``synth_xilinx -flatten -nodsp``: LUT, CARRY4, FF; and ``synth; abc
-lut 6``: LUT6), via :func:`heatq_export.estimate.yosys_cells`.  Each tiny graph is first
checked on all 256 pixel values against the code's own encoder (the learned one: against the
trained network's first step), exactly.  The learned rows are counted per seed (their
constants differ).

Writes ``--out``.json (every row, resumable: rows already there are kept unless ``--redo``)
and ``--out``.md (the table).

Usage::

    nice -n 10 python bench/input_codes.py                       # T=4, seeds 0,1,2
    nice -n 10 python bench/input_codes.py --channels 4,8 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "input_codes_mnist5k"
KINDS = ("bitplane", "thermometer", "learned")


def codes_for(t: int) -> list[str]:
    """The codes compared at ``t`` channels (bit-planes exist for t <= 8 only)."""
    return [f"{k}:{t}" for k in KINDS if k != "bitplane" or t <= 8]


# ------------------------------------------------------------------ accuracy
def train_row(code: str, seed: int, a: argparse.Namespace, runs: Path) -> dict:
    """Train one run; its accuracy row (and the learned thresholds)."""
    from heatq.pipeline import train_run

    t0 = time.time()
    out = runs / f"{code.replace(':', '')}_s{seed}"
    s = train_run(out, a.dataset, "seed-cnn", code, "hadamard:15", 4, 4, a.epochs,
                  a.qat_epochs, seed, None, progress=False, force=True)
    if s["acc_ir"] != s["acc_quant"]:
        raise RuntimeError(f"{out}: IR accuracy {s['acc_ir']} != quantized {s['acc_quant']}")
    return {"code": code, "seed": seed, "acc_float": s["acc_float"],
            "acc_quant": s["acc_quant"], "acc_ir": s["acc_ir"],
            "thresholds": s.get("input_thresholds"), "run": str(out),
            "seconds": round(time.time() - t0, 1)}


# ------------------------------------------------------------------ hardware
def conversion_graph(code: str, thresholds: list[int] | None = None):
    """The IR of one pixel's conversion: INPUT [1] (0..255) -> [T] of 0/1 (see the module
    docstring); ``thresholds``: a learned code's frozen ones (default: its initial ones)."""
    from heatq.codes import parse_input_code
    from heatq.ir import BitAttrs, ConcatAttrs, GraphBuilder, InputAttrs, Op, ThresholdAttrs

    ic = parse_input_code(code)
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs((1,), 0, 255, 0), name="pixel")
    if ic.kind == "bitplane":
        planes = [b.add(Op.BIT, BitAttrs(7 - j), [x], f"plane{j}") for j in range(ic.n)]
        out = b.add(Op.CONCAT, ConcatAttrs(ic.n), planes, "planes")
    else:
        t = list(thresholds if thresholds is not None else ic.thresholds)
        copy = b.add(Op.CONCAT, ConcatAttrs(len(t)), [x] * len(t), "copy")
        out = b.add(Op.THRESHOLD, ThresholdAttrs(np.array(t).reshape(-1, 1)), [copy], "planes")
    return b.build([out], {"name": f"input_{ic.kind}{ic.n}"})


def check_conversion(code: str, graph, thresholds: list[int] | None) -> None:
    """The tiny graph on all 256 pixels == the code's encoder (learned: ``x >= t_j``)."""
    from heatq.codes import parse_input_code
    from heatq.ir.interp import run

    px = np.arange(256, dtype=np.uint8)
    got = run(graph, px.astype(np.int64).reshape(-1, 1))[0]
    ic = parse_input_code(code)
    if ic.learned:
        want = (px[:, None].astype(np.int64) >= np.array(thresholds)[None, :]).astype(np.int64)
    else:
        want = ic.encode_numpy(px.reshape(-1, 1, 1))[:, :, 0, 0].astype(np.int64)
    if not np.array_equal(got, want):
        raise RuntimeError(f"{code}: the conversion graph differs from the encoder")


def hw_row(code: str, thresholds: list[int] | None, timeout: float, sim: bool) -> dict:
    """Export the conversion graph to Verilog and count its cells with yosys."""
    from heatq_export.estimate import LUT6_SCRIPT, XILINX_SCRIPT, xilinx_metrics, yosys_cells
    from heatq_export.export import export_graph

    g = conversion_graph(code, thresholds)
    check_conversion(code, g, thresholds)
    with tempfile.TemporaryDirectory(prefix="heatq_input_codes_") as tmp:
        out = Path(tmp) / "verilog"
        summary = export_graph(g, "verilog", out, force=True)
        top = summary.get("top", "heatq_top")
        files = sorted(out.glob("*.v"))
        xil = xilinx_metrics(yosys_cells(files, top, XILINX_SCRIPT, timeout)["cells"])
        lut6 = yosys_cells(files, top, LUT6_SCRIPT, timeout)["cells"].get("$lut", 0)
        row = {"code": code, "thresholds": list(thresholds) if thresholds else None,
               "comparators": 0 if code.startswith("bitplane") else
               int(len(thresholds or g.by_name("planes").attrs.thresholds)),
               "lut": xil["lut"], "carry4": xil["carry4"], "ff": xil["ff"],
               "lut_carry": xil["lut_carry"], "lut6": lut6}
        if sim:
            from heatq_sim.api import simulate

            x = np.arange(256, dtype=np.int64).reshape(-1, 1)
            r = simulate(out, g, x, progress=False)
            row["sim_mismatches"] = int(r["mismatches"])
    return row


# ------------------------------------------------------------------ report
def _mean_sd(v: list[float]) -> str:
    if not v:
        return "-"
    m = 100 * statistics.mean(v)
    return f"{m:.2f}" + (f" ± {100 * statistics.stdev(v):.2f}" if len(v) > 1 else "")


def table(doc: dict) -> str:
    rows, hw = doc["rows"], doc["hardware"]
    lines = ["| code | seeds | float acc % | quant acc % | per seed (quant) | thresholds "
             "| comparators | LUT (top) | LUT over bit-plane | CARRY4 | FF | LUT6 (top) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    base = {h["code"].split(":")[1]: h["lut"] for h in hw if h["code"].startswith("bitplane")}
    codes = list(dict.fromkeys(r["code"] for r in rows)) or list(dict.fromkeys(
        h["code"] for h in hw))
    for code in codes:
        rs = sorted((r for r in rows if r["code"] == code), key=lambda r: r["seed"])
        hs = [h for h in hw if h["code"] == code]
        per = ", ".join(f"{100 * r['acc_quant']:.1f}" for r in rs)
        if code.startswith("learned"):
            th = "; ".join(f"s{r['seed']}: {r['thresholds']}" for r in rs)
        elif code.startswith("thermometer"):
            from heatq.codes import parse_input_code

            th = str(list(parse_input_code(code).thresholds))
        else:
            th = "-"

        def span(key: str, minus: int = 0) -> str:
            v = sorted({h[key] - minus for h in hs})
            return "-" if not v else str(v[0]) if len(v) == 1 else f"{v[0]}..{v[-1]}"

        n = code.split(":")[1]
        over = span("lut", base[n]) if n in base else "-"
        lines.append(f"| {code} | {len(rs)} | {_mean_sd([r['acc_float'] for r in rs])} | "
                     f"{_mean_sd([r['acc_quant'] for r in rs])} | {per} | {th} | "
                     f"{span('comparators')} | {span('lut')} | {over} | {span('carry4')} | "
                     f"{span('ff')} | {span('lut6')} |")
    return "\n".join(lines)


def write(doc: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    s = doc["settings"]
    md = (f"# Input codes at equal channel count ({s['dataset']})\n\n"
          f"Seed CNN, 4-bit weights and activations, hadamard:15 output code, "
          f"{s['epochs']} float + {s['qat_epochs']} QAT epochs, test accuracy (1000 images) "
          f"mean ± sd over the seeds; IR accuracy equals the quantized one in every run.\n"
          f"Hardware: the conversion of one pixel (8-bit) into the T channels, Verilog export "
          f"of the conversion graph, yosys `{s['xilinx']}` (LUT, CARRY4, FF) and "
          f"`{s['lut6']}` (LUT6) of the whole (tiny) top: the same handshake and output "
          f"registers in every row, so *LUT over bit-plane* (whose conversion is wires) is "
          f"the conversion's own cost. Learned rows: the range over the seeds' thresholds.\n\n"
          f"{table(doc)}\n\nCommand: `{s['command']}`\n")
    out.with_suffix(".md").write_text(md)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--channels", default="4", help="comma-separated T values")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--qat-epochs", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=Path, default=Path(tempfile.gettempdir()) / "heatq_input_codes",
                   help="where the run directories go")
    p.add_argument("--out", type=Path, default=OUT, help="output stem (.json, .md)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per yosys run")
    p.add_argument("--sim", action="store_true", help="also simulate each conversion (icarus)")
    p.add_argument("--hw-only", action="store_true", help="no training (hardware of the fixed "
                   "codes and the learned rows already in the JSON)")
    p.add_argument("--redo", action="store_true", help="retrain rows already in the JSON")
    a = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from heatq.pipeline import set_threads
    from heatq_export.estimate import LUT6_SCRIPT, XILINX_SCRIPT

    set_threads(a.threads)
    channels = [int(c) for c in a.channels.split(",")]
    seeds = [int(s) for s in a.seeds.split(",")]
    path = a.out.with_suffix(".json")
    old = json.loads(path.read_text()) if path.is_file() and not a.redo else {}
    rows = {(r["code"], r["seed"]): r for r in old.get("rows", [])}
    doc = {"settings": {"dataset": a.dataset, "channels": channels, "seeds": seeds,
                        "epochs": a.epochs, "qat_epochs": a.qat_epochs,
                        "xilinx": XILINX_SCRIPT.format(top="T"),
                        "lut6": LUT6_SCRIPT.format(top="T"),
                        "command": "nice -n 10 .venv/bin/python bench/input_codes.py "
                                   + " ".join(argv if argv is not None else sys.argv[1:])},
           "rows": [], "hardware": []}
    a.runs.mkdir(parents=True, exist_ok=True)
    for t in channels:
        for code in codes_for(t):
            for seed in seeds:
                if (code, seed) not in rows and not a.hw_only:
                    rows[(code, seed)] = train_row(code, seed, a, a.runs)
                    r = rows[(code, seed)]
                    print(f"{code} seed {seed}: float {r['acc_float']:.3f} quant "
                          f"{r['acc_quant']:.3f} thresholds {r['thresholds']} "
                          f"({r['seconds']} s)", flush=True)
                    doc["rows"] = list(rows.values())
                    write(doc, a.out)
    doc["rows"] = list(rows.values())
    for t in channels:
        for code in codes_for(t):
            if code.startswith("learned"):
                ths = [(r["seed"], r["thresholds"]) for r in doc["rows"] if r["code"] == code]
            else:
                ths = [(None, None)]
            for seed, th in ths:
                h = hw_row(code, th, a.timeout, a.sim)
                h["seed"] = seed
                doc["hardware"].append(h)
                print(f"hw {code} seed {seed}: {h}", flush=True)
    write(doc, a.out)
    print(table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
