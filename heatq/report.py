"""Short terminal tables printed by the CLI commands."""

from __future__ import annotations

from pathlib import Path

import typer


def pct(v) -> str:
    """A fraction as a percentage with two decimals, or '-'."""
    return "-" if v is None else f"{100 * v:6.2f} %"


def print_train(summary: dict, out: Path) -> None:
    held = summary.get("n_val") or 0
    typer.echo(f"trained on {summary['n_train']} images"
               + (f", {held} held out as the validation split" if held else ""))
    typer.echo(f"{'accuracy (test)':<28}{'':>4}")
    typer.echo(f"  {'float':<26}{pct(summary['acc_float'])}")
    if "acc_quant_hamming" in summary:  # a learned decoder: Hamming's on the same network
        typer.echo(f"  {'quantized, Hamming':<26}{pct(summary['acc_quant_hamming'])}")
        typer.echo(f"  {'quantized, learned decoder':<26}{pct(summary['acc_quant'])}")
    else:
        typer.echo(f"  {'quantized torch':<26}{pct(summary['acc_quant'])}")
    typer.echo(f"  {'integer IR':<26}{pct(summary['acc_ir'])}")
    if "mae" in summary:  # a regression dataset: the labels are levels of a target
        typer.echo(f"{'MAE (test, target units)':<28}")
        for what, key in (("quantized, Hamming", "mae"), ("integer IR, Hamming", "mae_ir"),
                          ("quantized, expected value", "mae_expected"),
                          ("levels alone (floor)", "mae_floor")):
            typer.echo(f"  {what:<26}{summary[key]:8.2f}")
    typer.echo("Model weights bit_width")
    for name, b in summary["weight_bits"].items():
        typer.echo(f"  {name}.weight: {b}")
    typer.echo("Model activations bit_width")
    for name, b in summary["act_bits"].items():
        typer.echo(f"  {name}: {b}")
    typer.echo(f"run written to {out}")


def print_check(result: dict) -> None:
    typer.echo(f"Validating activations ({result['n_samples']} samples, {result['split']} split)")
    for name, frac in result["layers"].items():
        typer.echo(f"  {name:<28}{pct(frac)}")
    typer.echo("all layers equal" if result["all_equal"] else "MISMATCH: some layers differ")


def print_run(result: dict) -> None:
    inputs = result.get("inputs_text") or (f"{result['n']} images + {result['n_corner']} "
                                           "corner vectors")
    typer.echo(f"target {result['target']}: {inputs}, {result['mismatches']} mismatches, "
               f"accuracy {pct(result['accuracy'])}")


def manifest_note(changes: dict) -> str | None:
    """One line naming the export's files changed since it was written, or None."""
    parts = [f"{kind} {', '.join(files)}" for kind, files in changes.items() if files]
    return ("files changed since export (simulated as they are now): " + "; ".join(parts)
            if parts else None)


def rate(v, unit: str = "images/s") -> str:
    """A throughput with a sensible number of digits, or '-'."""
    if v is None:
        return "-"
    return f"{v:,.0f} {unit}" if v >= 100 else f"{v:.1f} {unit}"


def print_sim(result: dict) -> None:
    note = manifest_note(result.get("manifest") or {})
    if note:
        typer.echo(f"warning: {note}", err=True)
    inputs = result.get("inputs_text") or (f"{result['n_images']} images + "
                                           f"{result['n_corner']} corner vectors")
    typer.echo(f"{result['simulator']}: {inputs}, {result['mismatches']} mismatches, "
               f"{result.get('cycles_per_image'):.0f} cycles/image (II {result.get('ii')}, "
               f"latency {result.get('latency')} cycles)")
    typer.echo(f"  hardware: {rate(result.get('hw_images_per_s'))} at an assumed "
               f"{result['clock_mhz']:g} MHz (clock / II)")
    typer.echo(f"  simulator: {rate(result.get('sim_images_per_s'))} simulated"
               + (" (build reused)" if result.get("build_cached") else ""))
    if result.get("waves"):
        typer.echo(f"  waveform written to {result['waves']}")
