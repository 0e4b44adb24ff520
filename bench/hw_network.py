#!/usr/bin/env python3
"""The whole seed CNN in hardware: every module counted, per network x folding x arithmetic.

Networks (run directories, each a ``model.ir.json`` + ``model.npz``):

* ``4bit``: the trained 4-bit seed CNN (``--run-4bit``, default ``heatq-out/run-4bit``);
* ``heated``: the heated demo run (``--run-heated``, default ``heatq-out/run``);
* ``binary``: the heated run split until binary (``--run-binary``, default
  ``heatq-out/run-binary``: ``heatq split heatq-out/run --to binary --weights bitplane
  --acts bitplane``).
The defaults are ``make demo``'s outputs (the recorded results used runs of the same
commands kept under /tmp: see bench/results/hw_network.md).

For each network x ``--fold`` (none / auto) x ``--arith`` (adders / heap / auto) this
exports the Verilog (``heatq_export.export.export_graph``), reads II and latency from the
export's report, runs :func:`heatq_export.estimate.estimate_export` (xilinx ``synth_xilinx
-flatten -nodsp`` of the whole top and of each layer module, cached by sha256; with
``--ice40`` also synth_ice40 + nextpnr-ice40 on an HX8K: fit, LUT4, Fmax), and with ``--sim``
simulates the export against the IR interpreter (``heatq_sim.simulate``: ``--sim-n`` dataset
images + corner vectors) for the mismatch count.  A variant that fails (an option not built
yet, a timeout) is recorded as ``error: <message>``, never aborts the matrix.  Each row keeps
the seconds of its export, estimate and simulation.

Writes ``--out``.json (every row), .md (the table) and .png (design LUT+CARRY4 per variant,
the layer modules and the stream units stacked).  Rows already in the JSON (same network,
fold, arith, iCE40 or not) are kept unless ``--redo``; ``--merge A.json ...`` adds the rows of
other runs (replacing rows of the same variant) and only rewrites the table and plot.

Usage::

    nice python bench/hw_network.py --networks 4bit,heated --fold none --arith adders --ice40
    nice python bench/hw_network.py                      # the whole matrix (slow: hours)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

RUNS = {"4bit": "heatq-out/run-4bit", "heated": "heatq-out/run", "binary": "heatq-out/run-binary"}
OUT = Path(__file__).resolve().parent / "results" / "hw_network"


def _error(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    return f"error: {msg[:300]}"


def _export(graph, out: Path, fold: str, arith: str) -> dict:
    from heatq_export.export import export_graph

    return export_graph(graph, "verilog", out, force=True, fold=fold, arith=arith)


def _design_figures(summary: dict) -> dict[str, Any]:
    rep = summary["report"]
    d = rep["design"]
    layers = {k: v for k, v in rep.items() if isinstance(v, dict) and "module" in v}
    return {"ii": d.get("ii"), "latency": d.get("latency"), "adders": d.get("adders"),
            "layers": {k: {f: v.get(f) for f in ("design", "lanes", "cycles_per_position",
                                                 "utilisation", "arith") if f in v}
                       for k, v in layers.items()}}


def _estimate_figures(est: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    des, tot = est.get("design"), est.get("total")
    if des:
        out.update({k: des[k] for k in ("lut", "carry4", "lut_carry", "ff", "srl", "bram18",
                                        "lutram", "seconds", "cached")})
    if tot:
        out["layers_lut_carry"] = tot.get("lut_carry")
        out["stream_lut_carry"] = des["minus_layers"]["lut_carry"] if des else None
        out["per_layer"] = {k: est[k].get("lut_carry") for k in tot["covers"]}
    for dev, r in est.get("ice40", {}).items():
        out[f"ice40_{dev}"] = {k: r.get(k) for k in ("fits", "lut4", "carry", "ram", "ff",
                                                     "fmax_mhz", "reason", "harness",
                                                     "synth_seconds", "seconds", "cached")}
        out[f"ice40_{dev}"]["lc"] = r.get("utilisation", {}).get("ICESTORM_LC", {}).get("used")
    return out


def _simulate(graph, export_dir: Path, simulator: str, n: int) -> dict[str, Any]:
    from heatq.inputs import target_inputs
    from heatq_sim import simulate

    x = target_inputs(graph, "bench", n=n).x
    r = simulate(export_dir, graph, x, simulator=simulator, progress=False)
    return {"simulator": simulator, "n": r["n"], "mismatches": r["mismatches"],
            "timing_matches_model": r.get("timing_matches_model"), "seconds": r.get("wall_s")}


def run_variant(net: str, run_dir: Path, fold: str, arith: str, args, work: Path) -> dict:
    """One row: export, report figures, estimate, optionally simulation; errors recorded."""
    from heatq.files import load_graph
    from heatq_export.estimate import estimate_export

    row: dict[str, Any] = {"network": net, "run": str(run_dir), "fold": fold, "arith": arith,
                           "ice40": bool(args.ice40)}
    try:
        graph = load_graph(run_dir)
        out = work / f"{net}-{fold}-{arith}"
        t0 = time.perf_counter()
        summary = _export(graph, out, fold, arith)
        row["export_seconds"] = round(time.perf_counter() - t0, 1)
        row.update(_design_figures(summary))
    except Exception as e:  # a variant not built yet, or refused: recorded
        row["error"] = _error(e)
        return row
    try:
        t0 = time.perf_counter()
        s = estimate_export(out, flows=("xilinx",), timeout=args.timeout,
                            ice40=("hx8k",) if args.ice40 else (), jobs=args.jobs)
        row["estimate_seconds"] = round(time.perf_counter() - t0, 1)
        row.update(_estimate_figures(s["report"]["estimate"]))
    except Exception as e:
        row["estimate_error"] = _error(e)
    if args.sim:
        try:
            row["sim"] = _simulate(graph, out, args.sim, args.sim_n)
        except Exception as e:
            row["sim"] = {"error": _error(e)}
    return row


# --------------------------------------------------------------------------- table + plot
def _c(v) -> str:
    return "-" if v is None else str(v)


def _ice40(r: dict | None) -> str:
    if not r:
        return "-"
    if r.get("fits"):
        return f"fits, {r['lut4']} LUT4, {r['fmax_mhz']} MHz"
    return f"no: {r['lut4']} LUT4 + {r['carry']} carry, {r.get('lc')} LC > 7680"


def markdown(rows: list[dict]) -> str:
    head = ("| network | fold | arith | LUT | CARRY4 | LUT+CARRY4 | layers | stream units | FF "
            "| SRL | BRAM18 | II | latency | iCE40 HX8K | mismatches | s (export / estimate) |")
    lines = [head, "|" + "---|" * 16]
    for r in rows:
        key = f"| {r['network']} | {r['fold']} | {r['arith']} |"
        if "error" in r:
            lines.append(f"{key} {r['error']} |" + " |" * 12)
            continue
        sim = r.get("sim") or {}
        mm = sim.get("error") or (f"{sim['mismatches']} / {sim['n']} ({sim['simulator']})"
                                  if sim else "not run")
        est = r.get("estimate_error")
        lines.append(
            f"{key} " + " | ".join(_c(r.get(k)) for k in ("lut", "carry4", "lut_carry",
                                                           "layers_lut_carry",
                                                           "stream_lut_carry", "ff", "srl",
                                                           "bram18", "ii", "latency"))
            + f" | {_ice40(r.get('ice40_hx8k')) if not est else est} | {mm} | "
            f"{_c(r.get('export_seconds'))} / {_c(r.get('estimate_seconds'))} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("lut_carry") is not None]
    if not ok:
        return
    labels = [f"{r['network']}\nfold {r['fold']}\n{r['arith']}" for r in ok]
    layers = [r.get("layers_lut_carry") or 0 for r in ok]
    stream = [r["lut_carry"] - l for r, l in zip(ok, layers)]
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(ok)), 4.5))
    x = range(len(ok))
    ax.bar(x, layers, label="layer modules")
    ax.bar(x, stream, bottom=layers, label="stream units (design - layers)")
    ax.axhline(6000, color="k", ls="--", lw=1, label="goal: 6,000 (heated, folded)")
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylabel("LUT + CARRY4 (yosys synth_xilinx, whole top)")
    ax.set_title("seed CNN, every module counted")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
    Path(f"{out}.md").write_text(
        "# bench/hw_network.py: the whole seed CNN, every module counted\n\n"
        "yosys 0.23 `synth_xilinx -flatten -nodsp -noiopad -noclkbuf` of the whole top "
        "(`layers`: the layer modules alone; `stream units`: design - layers); iCE40: "
        "synth_ice40 + nextpnr-ice40 on an HX8K ct256 (ports behind a 4-pin shift harness).\n\n"
        + markdown(rows) + "\n")
    plot(rows, Path(f"{out}.png"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="4bit,heated,binary")
    ap.add_argument("--fold", default="none,auto")
    ap.add_argument("--arith", default="adders,heap,auto")
    for net, d in RUNS.items():
        ap.add_argument(f"--run-{net}", default=d, help=f"run directory (default {d})")
    ap.add_argument("--ice40", action="store_true", help="also iCE40 HX8K place-and-route")
    ap.add_argument("--sim", choices=("icarus", "verilator"), help="simulate (slow)")
    ap.add_argument("--sim-n", type=int, default=20, help="dataset images (+ corners)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per tool run")
    ap.add_argument("--jobs", type=int, default=None, help="parallel tool processes")
    ap.add_argument("--work", type=Path, default=None, help="keep the exports here")
    ap.add_argument("--out", type=Path, default=OUT, help="results path without suffix")
    ap.add_argument("--redo", action="store_true", help="recompute rows already in the JSON")
    ap.add_argument("--merge", nargs="*", type=Path, default=None, metavar="JSON",
                    help="only rewrite the table and plot of --out, adding these rows files")
    args = ap.parse_args(argv)
    path = Path(f"{args.out}.json")
    rows: list[dict] = json.loads(path.read_text()) if path.exists() else []
    if args.merge is not None:
        for f in args.merge:
            new = json.loads(f.read_text())
            keys = {(r["network"], r["fold"], r["arith"]) for r in new}
            rows = [r for r in rows if (r["network"], r["fold"], r["arith"]) not in keys] + new
        write(rows, args.out)
        print(markdown(rows))
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="heatq_hw_network_"))
    for net in args.networks.split(","):
        run_dir = Path(getattr(args, f"run_{net}"))
        for fold in args.fold.split(","):
            for arith in args.arith.split(","):
                key = (net, fold, arith, bool(args.ice40))
                old = [r for r in rows if (r["network"], r["fold"], r["arith"],
                                           r.get("ice40", False)) == key]
                if old and not args.redo and "error" not in old[0]:
                    continue
                print(f"== {net} fold {fold} arith {arith}", file=sys.stderr, flush=True)
                try:
                    row = run_variant(net, run_dir, fold, arith, args, work)
                except KeyboardInterrupt:
                    raise
                except Exception as e:  # never abort the matrix
                    traceback.print_exc()
                    row = {"network": net, "fold": fold, "arith": arith, "error": _error(e)}
                rows = [r for r in rows if r not in old] + [row]
                write(rows, args.out)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
