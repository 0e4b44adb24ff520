"""heatq: train, check, heat, split, run targets, simulate, and the end-to-end demo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import pipeline
from .cli_common import fail_cleanly, force_option
from .cli_help import version_callback
from .distributed import launch_self
from .heat.command import heat
from .interop.command import import_model
from .report import print_check, print_run, print_sim, print_train
from .split.command import split as split_command

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__,
                  pretty_exceptions_enable=False)

THREADS = typer.Option(1, "--threads", help="torch threads (1 is fastest on 2 shared cores)")
QUIET = typer.Option(False, "--quiet", "-q", help="no progress output")
DATASET = typer.Option(None, help="its test images (default: the dataset the graph records)")
VECTORS = typer.Option(None, "--vectors", help="your own integer inputs instead of a dataset: "
                       "a .npy array [M, *input shape] within the input's range")
RANDOM = typer.Option(None, "--random", help="instead of a dataset: N seeded random vectors "
                      "(plus the corner vectors; 0: corner vectors only)")
SEED = typer.Option(0, "--seed", help="seed of the random vectors")
DEVICE = typer.Option("cpu", "--device", help="where to train: cpu | auto (CUDA when "
                      "present) | cuda | cuda:I; conversion and checks stay on the CPU")


@app.callback()
def _options(version: bool = typer.Option(False, "--version", is_eager=True,
                                          callback=version_callback("heatq"),
                                          help="print the version and exit")) -> None:
    pass


@app.command()
def train(ctx: typer.Context,
          dataset: str = typer.Option("mnist5k",
                                      help="mnist5k | fashion | digits | diabetes[:K] | idx:DIR | "
                                           "cifar10:DIR | fashion32x3"),
          model: str = typer.Option("seed-cnn", help="seed-cnn | mlp | resnet20 (32x32 colour images, e.g. fashion32x3)"),
          input_code: str = typer.Option("bitplane:4",
                                         help="bitplane:N | thermometer:N | learned:T "
                                              "(T thresholds learned in training)"),
          output_code: str = typer.Option("hadamard:15",
                                          help="onehot | hadamard:L | random:L | full | "
                                               "thermometer | gray"),
          weight_bits: int = typer.Option(4, help="signed weight bits, every layer"),
          act_bits: int = typer.Option(4, help="unsigned activation bits, every layer"),
          epochs: int = typer.Option(30, help="float training epochs"),
          qat_epochs: Optional[int] = typer.Option(None, help="quantized epochs (default epochs/2)"),
          train_per_class: Optional[int] = typer.Option(None, help="keep K training images/class"),
          seed: int = typer.Option(0),
          val_fraction: float = typer.Option(
              0.2, help="part of the training images held out as the validation split that "
              "`heatq heat` constrains accuracy on (0: train on all)"),
          decoder: str = typer.Option(
              "hamming", help="hamming | learned | learned:H: a binary FC decoder over the "
              "code bits (H binary hidden units), fitted after training, started at Hamming"),
          out: Path = typer.Option(..., "--out", "-o", help="run directory to write"),
          device: str = DEVICE,
          nproc: Optional[int] = typer.Option(
              None, "--nproc", help="train data-parallel in N processes on this machine "
              "(launches torchrun --standalone; docs/distributed.md)"),
          force: bool = force_option(), threads: int = THREADS, quiet: bool = QUIET) -> None:
    """Train a quantized network on binary input codes and an output code; save its IR."""
    if nproc is not None:
        pipeline.check_train_options(out, model, input_code, weight_bits, act_bits, epochs,
                                     qat_epochs, train_per_class, val_fraction, force, decoder)
        raise typer.Exit(launch_self(ctx, nproc, threads))
    pipeline.set_threads(threads)
    summary = pipeline.train_run(out, dataset, model, input_code, output_code, weight_bits,
                                 act_bits, epochs, qat_epochs, seed, train_per_class, not quiet,
                                 val_fraction, force=force, decoder=decoder, device=device)
    if summary is not None:  # rank 0 (every other rank of a torchrun run returns None)
        print_train(summary, out)


@app.command()
def check(directory: Path = typer.Argument(..., help="run directory"),
          dataset: Optional[str] = typer.Option(None, help="default: the run's dataset"),
          split: str = typer.Option("test", help="test | train | validation (the run's "
                                     "held-out part of its training images, as heat used)"),
          n: Optional[int] = typer.Option(None, help="first N images only (N >= 1; default "
                                          "all)"),
          threads: int = THREADS, quiet: bool = QUIET) -> None:
    """Validate activations: torch integers == interpreter integers, every layer and sample
    (a split run: each original layer regrouped from the split network == the unsplit one)."""
    pipeline.set_threads(threads)
    result = pipeline.check_run(directory, dataset, split, n, not quiet)
    print_check(result)
    if not result["all_equal"]:
        raise typer.Exit(1)


@app.command("run-target")
def run_target(export_dir: Path = typer.Argument(..., help="an export directory"),
               dataset: Optional[str] = DATASET,
               n: Optional[int] = typer.Option(None, help="first N test images, then the corner "
                                               "vectors (default all; 0: corner vectors only)"),
               vectors: Optional[Path] = VECTORS, random: Optional[int] = RANDOM,
               seed: int = SEED,
               runner: Optional[str] = typer.Option(None, help="default: the first runner of "
                                                    "the export's target"),
               quiet: bool = QUIET) -> None:
    """Build and run an export (C, HLS, ...) against the interpreter; writes run.json."""
    result = pipeline.run_target(export_dir, dataset, n, progress=not quiet, vectors=vectors,
                                 random=random, seed=seed, runner=runner)
    print_run(result)
    if result["mismatches"]:
        raise typer.Exit(1)


@app.command()
def sim(export_dir: Path = typer.Argument(..., help="a verilog export directory"),
        simulator: str = typer.Option("icarus", help="icarus | verilator"),
        dataset: Optional[str] = DATASET,
        n: Optional[int] = typer.Option(None, help="first N test images, then the corner "
                                        "vectors (default 20; 0: corner vectors only)"),
        vectors: Optional[Path] = VECTORS, random: Optional[int] = RANDOM, seed: int = SEED,
        waves: Optional[Path] = typer.Option(None, help="also write a waveform FILE.vcd or .fst"),
        clock_mhz: float = typer.Option(100.0, help="assumed clock for the hardware "
                                        "throughput (images/s = clock / II)"),
        quiet: bool = QUIET) -> None:
    """Simulate a Verilog export against the interpreter; writes sim-SIMULATOR.json."""
    result = pipeline.sim_run(export_dir, simulator, dataset, n, waves=waves,
                              clock_mhz=clock_mhz, progress=not quiet, vectors=vectors,
                              random=random, seed=seed)
    print_sim(result)
    if result["mismatches"]:
        raise typer.Exit(1)


@app.command()
def prove(export_dir: Path = typer.Argument(..., help="a verilog export directory"),
          layer: Optional[list[str]] = typer.Option(None, "--layer", help="only this layer "
                                                    "(repeatable; default every layer)"),
          timeout: float = typer.Option(300.0, "--timeout", help="seconds per layer"),
          json_file: Optional[Path] = typer.Option(None, "--json", help="also write the "
                                                   "result to FILE"),
          force: bool = typer.Option(False, "--force", help="replace an existing --json FILE"),
          direct: bool = typer.Option(False, "--direct", help="only against the IR reference "
                                      "(no two-step proof through the adder graph)"),
          quiet: bool = QUIET) -> None:
    """Prove each layer module of a Verilog export equal to the IR (yosys + ABC, all inputs);
    exit 1 when one is not equivalent, 2 when one is not proved in time."""
    from heatq_export.prove import print_prove, prove_export

    from .files import write_json
    from .errors import UserError

    if json_file is not None and json_file.exists() and not force:
        raise UserError(f"{json_file} already exists; use --force to replace it")
    result = prove_export(export_dir, layer, timeout, progress=not quiet, direct=direct)
    print_prove(result)
    if json_file is not None:
        write_json(json_file, result)
    if result["not_equivalent"]:
        raise typer.Exit(1)
    if result["not_proved"]:
        raise typer.Exit(2)


@app.command()
def demo(quick: bool = typer.Option(False, help="fewer epochs and images (a smoke run)"),
         out: Path = typer.Option(Path("heatq-out"), "--out", "-o"),
         force: bool = force_option(),
         strict: bool = typer.Option(False, "--strict", help="exit 1 when heating meets no "
                                     "bit widths instead of exporting the fallback network"),
         threads: int = THREADS, quiet: bool = QUIET) -> None:
    """Train, check, export and run every target on mnist5k; print one table."""
    from .demo import run_demo
    from .files import prepare_output

    pipeline.set_threads(threads)
    prepare_output(out, "demo", force)
    run_demo(out, quick=quick, progress=not quiet, strict=strict)


app.command("heat")(heat)
app.command("split")(split_command)
app.command("import")(import_model)


def _bundle_commands() -> None:
    from heatq_export.bundle_command import handoff, verify_bundle

    app.command("handoff")(handoff)
    app.command("verify-bundle")(verify_bundle)


_bundle_commands()


def main() -> None:
    fail_cleanly(app, "heatq")
