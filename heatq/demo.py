"""``heatq demo``: the main job on the built-in MNIST subset, end to end.

train (float, then 4-bit QAT; 20 % of the training images held out for validation) ->
heat (the fewest weight and activation bits per layer within 0.5 points of float on
validation; when none meet it, the network heat falls back to, and the table says which and
why; ``strict``: stop instead) -> check that network (validating activations) -> export C and HLS ->
compile and run both on every test image plus corner vectors -> export QONNX (run by qonnx's
``execute_onnx``) and an hls4ml project (its C simulation), each on every test image plus
corner vectors -> export Verilog, simulate it
in Icarus (cocotb, 20 images) and Verilator (every image) -> hand off the synthesis bundle
(``heatq handoff``: RTL, FuseSoC core, constraints, test benches, manifest) and verify its
manifest -> split the exported network
exactly until it is binary (``heatq split --weights bitplane --acts bitplane --to binary``:
every conv / fc weight in {-1,+1}, every product input 1 bit) -> check every original layer
of the split network against the unsplit one on every test image -> run the split network's
C and HLS on every test image plus corner vectors -> one table and ``<out>/summary.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from . import pipeline
from .progress import wanted
from .report import pct, rate
from .rundir import write_json

FULL = {"epochs": 30, "qat_epochs": 15, "n_images": None, "n_icarus": 20,
        "heat": {"epochs": 20, "finetune_epochs": 2, "quench_epochs": 3}}
QUICK = {"epochs": 3, "qat_epochs": 2, "n_images": 100, "n_icarus": 4,
         "heat": {"epochs": 2, "finetune_epochs": 1, "quench_epochs": 1}}
MAX_ACC_DROP = 0.5
SPLIT = {"weights": "bitplane", "acts": "bitplane", "to": "binary"}  # the demo's binarization
HEAT_KEYS = ("weight_bits", "act_bits", "acc_heated", "acc_drop_val", "acc_drop_test",
             "total_weight_bits", "mean_weight_bits", "constraint_met", "max_acc_drop",
             "exported", "margin", "bops", "split_luts")
EXPORTED_ROW = {"heated": "heated (torch)", "heated (an earlier step of the search)": "heated (torch)",
                "source run (unheated)": "4-bit, unheated (torch)",
                "start network (the reference at the run's widths, unheated)":
                    "4-bit float start, unheated (torch)"}


VERILOG_OPTIONS = {"fold": "auto", "arith": "auto"}  # the smallest design that keeps the II
VERILOG_FLAGS = "--fold auto --arith auto"


def _stage(name: str, t0: float, progress: bool) -> None:
    if wanted(progress):
        typer.echo(f"[{time.time() - t0:6.1f} s] {name}", err=True)


def run_demo(out: Path, quick: bool = False, progress: bool = True,
             strict: bool = False) -> dict:
    """Run every stage into ``out`` (the caller has checked it with
    ``prepare_output(out, "demo", force)``, so the stages replace their own earlier outputs
    there); returns (and writes) the summary."""
    settings = QUICK if quick else FULL
    out = Path(out)
    t0 = time.time()
    run_dir = out / "run"
    _stage("training seed-cnn on mnist5k (bitplane:4 -> hadamard:15, 4-bit)", t0, progress)
    train = pipeline.train_run(out / "run-4bit", "mnist5k", "seed-cnn", "bitplane:4",
                               "hadamard:15", 4, 4, settings["epochs"], settings["qat_epochs"], 0,
                               None, progress, val_fraction=0.2, force=True)
    _stage(f"heating: fewest bits per layer within {MAX_ACC_DROP} pt of float (validation)", t0,
           progress)
    from .heat.command import heat

    heated = heat(out / "run-4bit", run_dir, max_acc_drop=MAX_ACC_DROP, progress=progress,
                  strict=strict, force=True, **settings["heat"])
    _stage(f"validating activations of the exported network ({heated['exported']['network']})",
           t0, progress)
    check = pipeline.check_run(run_dir, n=settings["n_images"], progress=progress)
    targets = _run_targets(run_dir, out, "export", "", settings, t0, progress,
                           ("c", "hls", "qonnx", "hls4ml"))
    _stage(f"exporting verilog ({VERILOG_FLAGS}), simulating in Icarus (cocotb) and "
           "Verilator", t0, progress)
    export_dir = out / "export-verilog"
    exported = pipeline.export_run(run_dir, "verilog", export_dir, force=True,
                                   **VERILOG_OPTIONS)
    every = settings["n_images"] or train["n_test"]  # sim's own default is 20 images
    sims = {sim: pipeline.sim_run(export_dir, sim, n=n, progress=progress)
            for sim, n in (("icarus", settings["n_icarus"]), ("verilator", every))}
    bundle = _bundle_stage(out, run_dir, t0, progress)
    split = _split_stage(out, run_dir, settings, t0, progress)
    summary = {"quick": quick, "dataset": "mnist5k", "model": "seed-cnn",
               "acc_float": train["acc_float"], "acc_quant": train["acc_quant"],
               "acc_ir": train["acc_ir"], "n_test": train["n_test"],
               "heated": {k: heated.get(k) for k in HEAT_KEYS},
               "check": {"n_samples": check["n_samples"], "all_equal": check["all_equal"],
                         "layers": check["layers"]},
               "weight_bits": heated["weight_bits"], "act_bits": heated["act_bits"],
               "targets": targets, "simulations": sims, "split": split,
               "verilog": verilog_design(exported["report"]), "bundle": bundle,
               "seconds": round(time.time() - t0, 1)}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", summary)
    print_demo(summary)
    return summary


def verilog_design(report: dict) -> dict:
    """What the demo states about its Verilog design: options, II, latency and per layer the
    folded design the planner chose (``summary.json["report"]`` of the export)."""
    d = report["design"]
    layers = {k: {f: v.get(f) for f in ("design", "lanes", "cycles_per_position", "arith",
                                         "estimated_cost")}
              for k, v in report.items() if isinstance(v, dict) and "design" in v}
    return {"options": VERILOG_FLAGS, "ii": d["ii"], "latency": d["latency"],
            "layers_estimated_cost": d.get("layers_estimated_cost"), "layers": layers}


def print_verilog(v: dict) -> None:
    """One line per the Verilog design: what each layer was built as."""
    parts = []
    for name, L in v["layers"].items():
        cyc = L["cycles_per_position"]
        how = L["design"] if L["design"] != "mvau" else f"mvau {L['lanes']}"
        parts.append(f"{name.split('_conv2d')[0].split('_lin')[0]} {how}"
                     + (f" ({cyc} cycles/position)" if cyc != 1 else ""))
    typer.echo(f"verilog ({v['options']}): II {v['ii']}, latency {v['latency']} cycles; "
               + ", ".join(parts) + f"; planner's estimate {v['layers_estimated_cost']} "
               "LUT+CARRY4 for the layers")


def _run_targets(run_dir: Path, out: Path, stem: str, what: str, settings: dict, t0: float,
                 progress: bool, names: tuple[str, ...] = ("c", "hls")) -> dict:
    """Export ``run_dir`` to each target of ``names`` (``out/<stem>-<target>``) and run it on
    the demo's test images plus corner vectors; returns ``{target: run_target result}``."""
    targets = {}
    for target in names:
        _stage(f"exporting and running {what}target {target}", t0, progress)
        export_dir = out / f"{stem}-{target}"
        pipeline.export_run(run_dir, target, export_dir, force=True)
        targets[target] = pipeline.run_target(export_dir, n=settings["n_images"],
                                              progress=progress)
    return targets


def _split_stage(out: Path, run_dir: Path, settings: dict, t0: float, progress: bool) -> dict:
    """Binarize the exported network exactly (:data:`SPLIT`), check it against the unsplit
    network and run its C and HLS targets; returns the demo summary's ``split`` record."""
    from .split.command import split_run
    from .split.options import parse_options

    _stage("splitting the exported network until it is binary ({weights} weights, {acts} "
           "activations)".format(**SPLIT), t0, progress)
    split_dir = out / "run-binary"
    opts = parse_options(SPLIT["weights"], SPLIT["acts"], SPLIT["to"], None)
    summary = split_run(run_dir, split_dir, opts, force=True, adders=False, progress=progress)
    _stage("validating every original layer of the split network against the unsplit one",
           t0, progress)
    check = pipeline.check_run(split_dir, n=settings["n_images"], progress=progress)
    targets = _run_targets(split_dir, out, "export-binary", "the split network's ",
                           settings, t0, progress)
    return {"options": SPLIT, "binarization": summary["binarization"],
            "totals": summary["totals"], "weight_bits": summary["weight_bits"],
            "check": {"n_samples": check["n_samples"], "all_equal": check["all_equal"],
                      "layers": check["layers"]}, "targets": targets}


def _bundle_stage(out: Path, run_dir: Path, t0: float, progress: bool) -> dict:
    """``heatq handoff`` of the exported network with the demo's Verilog options into
    ``out/bundle``, then ``heatq verify-bundle``; returns the demo summary's ``bundle`` record."""
    from heatq_export.bundle_manifest import verify

    _stage(f"handing off the synthesis bundle ({VERILOG_FLAGS}) and verifying its manifest",
           t0, progress)
    bundle_dir = out / "bundle"
    exported = pipeline.export_run(run_dir, "bundle", bundle_dir, force=True, **VERILOG_OPTIONS)
    manifest, problems = verify(bundle_dir)
    return {"vlnv": exported["bundle"]["vlnv"], "files": len(manifest["files"]),
            "verified": not problems, "problems": problems}


def _target_rows(prefix: str, targets: dict) -> list[tuple]:
    return [(f"{prefix}target {t}", r["accuracy"], r["n"],
             f"{r['mismatches']} mismatches / {r['n']} images + {r['n_corner']} corners")
            for t, r in targets.items()]


def _check_cell(check: dict, what: str = "layers") -> str:
    return (f"check: {min(check['layers'].values()) * 100:.2f} % min over "
            f"{len(check['layers'])} {what}, {check['n_samples']} images")


def print_split(sp: dict) -> None:
    """The binarization lines of the demo's report."""
    b, before, after = sp["binarization"], sp["totals"]["before"], sp["totals"]["after"]
    typer.echo(f"binary split ({sp['options']['weights']} weights, {sp['options']['acts']} "
               f"activations): {b['products']} products, weights in {{-1,+1}} in "
               f"{b['binary_weights']}, only 1-bit inputs in {b['binary_inputs']}; fan-in "
               f"{before['fan_in']} -> {after['fan_in']} "
               f"(x{after['fan_in'] / before['fan_in']:.2f}), weights {before['weights']} -> "
               f"{after['weights']}, weight bits {before['weight_bits']} -> "
               f"{after['weight_bits']}")


def print_demo(s: dict) -> None:
    """The demo's one table; every line says what was exported and measured."""
    check = s["check"]
    n_test = s["n_test"]
    h = s["heated"]
    exported = h.get("exported") or {"network": "heated", "reason": ""}
    rows = [("float (torch)", s["acc_float"], n_test, "-"),
            ("4-bit QAT (torch)", s["acc_quant"], n_test, "-"),
            (EXPORTED_ROW.get(exported["network"], exported["network"]), h["acc_heated"], n_test,
             _check_cell(check))]
    rows += _target_rows("", s["targets"])
    for sim, r in s["simulations"].items():
        rows.append((f"verilog ({sim})", None, r["n_images"],
                     f"{r['mismatches']} mismatches / {r['n_images']} images + {r['n_corner']} "
                     f"corners, {r['cycles_per_image']:.0f} cycles/image"))
    sp = s.get("split")
    if sp:
        acc = sp["targets"]["c"]["accuracy"]
        rows.append(("binary split (IR)", acc, sp["check"]["n_samples"],
                     _check_cell(sp["check"], "original layers")))
        rows += _target_rows("binary: ", sp["targets"])
    typer.echo(f"\n{'stage':<24}{'accuracy':>10}{'images':>8}   equality")
    for name, acc, n, eq in rows:
        typer.echo(f"{name:<24}{pct(acc):>10}{n:>8}   {eq}")
    typer.echo(f"exported network: {exported['network']}: {exported['reason']}")
    typer.echo("weight bits: " + json.dumps(s["weight_bits"]))
    typer.echo("activation bits: " + json.dumps(s["act_bits"]))
    met = "met" if h["constraint_met"] else "NOT met"
    margin = h.get("margin") or {"points": 0.0, "z": 0.0}
    typer.echo(f"constraint: validation drop {h['acc_drop_val']:.2f} pt + margin "
               f"{margin['points']:.2f} pt ({margin['z']:g} paired s.e.) <= {h['max_acc_drop']} "
               f"pt: {met}; test drop {h['acc_drop_test']:.2f} pt; {h['total_weight_bits']} "
               f"weight bits (mean {h['mean_weight_bits']:.2f} bits/layer), split LUTs "
               f"{h.get('split_luts', '-')}")
    sims = list(s["simulations"].values())
    if sims:
        r = sims[-1]
        typer.echo(f"hardware throughput: {rate(r.get('hw_images_per_s'))} at an assumed "
                   f"{r.get('clock_mhz', 100.0):g} MHz (clock / II, II {r.get('ii')} cycles); "
                   "simulator speed: " + ", ".join(
                       f"{x['simulator']} {rate(x.get('sim_images_per_s'))}" for x in sims))
    if s.get("verilog"):
        print_verilog(s["verilog"])
    b = s.get("bundle")
    if b:
        typer.echo(f"handoff bundle {b['vlnv']}: {b['files']} files, manifest "
                   + ("verified (sha256)" if b["verified"] else "NOT verified: "
                      + "; ".join(b["problems"])))
    if sp:
        print_split(sp)
    typer.echo(f"done in {s['seconds']} s")
