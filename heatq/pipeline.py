"""The steps of the main job, each a plain function the CLI and the demo share:
train a run directory, validate its activations, export a target, run a compiled target.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .check import validate_activations
from .codes import parse_input_code, parse_output_code
from .qnet_ir import convert
from .data import Dataset, load_dataset, split_validation
from .files import prepare_output
from .inputs import (
    Inputs, check_count, check_image_shape, check_input_options, dataset_of, target_inputs,
)
from .errors import UserError
from .ir import IntGraph
from .ir.interp import run
from .models import INPUT_CODE, MODELS, build_model, image_spec
from .progress import activity
from .provenance import make_deterministic, record
from .rundir import (
    FLOAT_STATE, atomic_dir, codes_of, load_graph, load_model, read_json, save_run, write_json,
)
from .decoder import parse_decoder
from .distributed import Context, session
from .train import TrainConfig, accuracy, encode, fit_run_decoder, train

MAX_BITS = 16


def set_threads(threads: int) -> None:
    """Use ``threads`` torch threads and deterministic algorithms
    (:func:`heatq.provenance.make_deterministic`); with more than one thread, OpenMP waits
    passively (on 2 shared cores active spinning can slow training 20x)."""
    if threads < 1:
        raise UserError(f"--threads must be >= 1, got {threads}")
    if threads > 1:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    make_deterministic(threads)


def _check_bits(what: str, bits: int) -> None:
    if not 1 <= bits <= MAX_BITS:
        raise UserError(f"{what} must be between 1 and {MAX_BITS} bits, got {bits}")


def check_train_options(out: Path, model: str, input_code: str, weight_bits: int,
                        act_bits: int, epochs: int, qat_epochs: int | None,
                        train_per_class: int | None, val_fraction: float, force: bool,
                        decoder: str) -> None:
    """The checks :func:`train_run` makes before any long work (UserError, one line): bit
    widths, model, epoch counts, fractions, the codes' and decoder's specs and ``out``
    (:func:`heatq.files.prepare_output`).  ``heatq train --nproc`` runs them before it
    launches the processes."""
    _check_bits("--weight-bits", weight_bits)
    _check_bits("--act-bits", act_bits)
    if model not in MODELS:
        raise UserError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if epochs < 0 or (qat_epochs is not None and qat_epochs < 0):
        raise UserError("epoch counts must be >= 0")
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    if train_per_class is not None and train_per_class < 1:
        raise UserError(f"--train-per-class must be >= 1, got {train_per_class}")
    parse_input_code(input_code)
    parse_decoder(decoder)
    prepare_output(out, "run", force)


def train_run(out: Path, dataset: str = "mnist5k", model: str = "seed-cnn",
              input_code: str = "bitplane:4", output_code: str = "hadamard:15",
              weight_bits: int = 4, act_bits: int = 4, epochs: int = 30,
              qat_epochs: int | None = None, seed: int = 0, train_per_class: int | None = None,
              progress: bool = True, val_fraction: float = 0.0, force: bool = False,
              decoder: str = "hamming", device: str = "cpu") -> dict | None:
    """Train, convert and save a run directory ``out``; returns its summary.  ``out`` is
    checked first (:func:`check_train_options`; ``force`` replaces an earlier run).

    ``device`` (``cpu`` | ``auto`` | ``cuda`` | ``cuda:I``, :func:`heatq.distributed.
    resolve_device`) trains there; conversion and the IR stay on the CPU.  Under torchrun
    (:mod:`heatq.distributed`) every process trains its part of each batch; rank 0 measures,
    converts and writes and returns the summary, the others return None.  ``summary.json``
    and ``config.json`` record ``distributed``: world size, backend, processes on the node,
    device (world size 1 in one process).

    ``val_fraction`` > 0 holds that part of the training images out (stratified, seeded by
    ``seed``, :func:`heatq.data.split_validation`): the network never trains on them, and
    ``config.json`` records ``val_fraction`` / ``val_seed`` so ``heatq heat`` measures its
    accuracy constraint on exactly these images against this run's own accuracy.

    ``decoder`` (``hamming`` | ``learned`` | ``learned:H``, :mod:`heatq.decoder`): a learned
    decoder is fitted on the quantized network's code bits after training and replaces Hamming
    decoding in the IR and every accuracy; ``acc_quant_hamming`` keeps Hamming's."""
    check_train_options(out, model, input_code, weight_bits, act_bits, epochs, qat_epochs,
                        train_per_class, val_fraction, force, decoder)
    with session(device) as ctx:
        return _train_run(ctx, out, dataset, model, input_code, output_code, weight_bits,
                          act_bits, epochs, qat_epochs, seed, train_per_class,
                          progress and ctx.main, val_fraction, decoder)


def _train_run(ctx: Context, out: Path, dataset: str, model: str, input_code: str,
               output_code: str, weight_bits: int, act_bits: int, epochs: int,
               qat_epochs: int | None, seed: int, train_per_class: int | None, progress: bool,
               val_fraction: float, decoder: str) -> dict | None:
    """:func:`train_run` once its options are checked, in the process ``ctx``."""
    ic = parse_input_code(input_code)
    dec_spec = parse_decoder(decoder)
    ds = load_dataset(dataset, train_per_class=train_per_class, seed=seed)
    oc = parse_output_code(output_code, ds.n_classes, seed=seed)
    h, w = ds.image_shape
    spec = {"model": model, "in_channels": ic.body_channels(ds.colours),  # colours * n
            "code_length": oc.length,
            "w_bits": weight_bits, "a_bits": act_bits, **image_spec(model, h, w, dataset),
            **({"input_thresholds": ic.n} if ic.learned else {})}  # learned:T: first step
    torch.manual_seed(seed)
    net = build_model(spec)
    cfg = TrainConfig(epochs=epochs, qat_epochs=(epochs + 1) // 2 if qat_epochs is None
                      else qat_epochs, seed=seed, progress=progress,
                      **({"max_shift": 0} if ds.targets is not None else {}))  # features: no shifts
    x_tr, y_tr = ds.x_train, ds.y_train
    held: dict = {}
    if val_fraction > 0:
        x_tr, y_tr, x_val, y_val = split_validation(x_tr, y_tr, val_fraction, seed)
        held["validation"] = (x_val, y_val)
    n_val = len(held["validation"][1]) if held else 0
    x_train, x_test = encode(ic, x_tr), encode(ic, ds.x_test)
    float_state: dict = {}
    metrics = train(net, x_train, y_tr, x_test, ds.y_test, oc, cfg, float_state, ctx)
    if not ctx.main:
        return None  # rank 0 alone measures, converts and writes
    if dec_spec.kind == "learned":
        with activity(f"fitting the {dec_spec.spec} decoder", progress):
            oc = fit_run_decoder(dec_spec, net, x_train, y_tr, oc, cfg)
        metrics.update(acc_quant_hamming=metrics["acc_quant"],
                       acc_quant=accuracy(net, x_test, ds.y_test, oc))
    config = {"model": net.spec, "dataset": dataset, "train_per_class": train_per_class,
              "seed": seed, "input_code": ic.spec, "output_code": oc.name,
              "codebook": oc.matrix.tolist(), "train": asdict(cfg),
              "distributed": ctx.record()}
    if oc.decoder is not None:
        config["decoder"] = oc.decoder.to_json()
    if val_fraction > 0:
        config.update(val_fraction=val_fraction, val_seed=seed)
    graph = convert(net, oc.matrix, {"dataset": dataset, "input_code": ic.spec,
                                      "output_code": oc.name, "seed": seed,
                                      "train_per_class": train_per_class}, oc.decoder)
    ir_test = ir_classes(graph, ic.encode_numpy(ds.x_test))
    acc_ir = float((ir_test == ds.y_test).mean())
    if ds.targets is not None:
        metrics.update(_regression_summary(net, x_test, ir_test, oc, ds.targets))
    if ic.learned:  # the frozen thresholds (heatq.thresholds), as the IR compares them
        metrics["input_thresholds"] = graph.by_name(INPUT_CODE).attrs.thresholds[:, 0].tolist()
    summary = {**metrics, "acc_ir": acc_ir, "n_train": len(y_tr), "n_val": n_val,
               "n_test": len(ds.y_test),
               "weight_bits": graph.meta["weight_bits"], "act_bits": graph.meta["act_bits"],
               "dataset": dataset, "model": model, "distributed": ctx.record(),
               "provenance": record(torch.get_num_threads(), _train_seeds(seed, val_fraction),
                                    {"train": (x_tr, y_tr), **held,
                                     "test": (ds.x_test, ds.y_test)})}
    with atomic_dir(out) as tmp:
        save_run(tmp, net, graph, config)
        torch.save(float_state, tmp / FLOAT_STATE)
        write_json(tmp / "summary.json", summary)
    return summary


def _regression_summary(net, x_test: torch.Tensor, ir_levels: np.ndarray, oc, levels) -> dict:
    """:func:`heatq.regression.regression_metrics` of the quantised ``net`` (exact, float64;
    levels by the run's decoder) and of the IR's class output ``ir_levels`` on the test
    split; with a learned decoder also ``mae_hamming``, the same network decoded by Hamming
    distance."""
    import copy

    from .codes import decode_torch, hamming_decode_torch
    from .regression import mae, regression_metrics

    with torch.no_grad():
        logits = copy.deepcopy(net).double().eval()(x_test.double())
    out = regression_metrics(logits, decode_torch(logits, oc).numpy(), ir_levels, oc.matrix,
                             levels)
    if oc.decoder is not None:
        out["mae_hamming"] = mae(hamming_decode_torch(logits, oc.matrix).numpy(), levels.t_test,
                                 levels.centres)
    return out


def _train_seeds(seed: int, val_fraction: float) -> dict[str, int]:
    """Every seed that decides a ``train_run`` (all derive from ``seed`` today)."""
    seeds = {"seed": seed, "data_split": seed, "output_code": seed, "torch_init": seed,
             "shuffle_and_shift": seed}
    return {**seeds, "validation_split": seed} if val_fraction > 0 else seeds


def ir_classes(graph: IntGraph, x_codes: np.ndarray, batch: int = 500) -> np.ndarray:
    """The interpreter's class output (its last output, int64 [N]) on the graph inputs
    ``x_codes``, ``batch`` at a time."""
    return np.concatenate([run(graph, x_codes[i:i + batch])[-1]
                           for i in range(0, len(x_codes), batch)])


SPLITS = ("train", "validation", "test")


def held_out(config: dict) -> tuple[float, int] | None:
    """(val_fraction, val_seed) of a run that held a validation split out of its training
    images (config.json; a split run's config is its base run's), else None."""
    if config.get("val_fraction") is None or config.get("val_seed") is None:
        return None
    return float(config["val_fraction"]), int(config["val_seed"])


def check_split(config: dict, split: str, dataset: str | None, who: str) -> str | None:
    """The dataset to load for ``heatq check --split``: ``dataset``, or None (the run's own)
    for the train / validation splits of a run with a held-out part, which exist only in the
    run's own dataset.  UserError (one line) for an unknown split, a validation split of a run
    that held none out, or one asked of another dataset."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose {', '.join(SPLITS)}")
    if split == "test" or (split == "train" and held_out(config) is None):
        return dataset
    if held_out(config) is None:
        raise UserError(f"{who} has no validation split: it was trained on every training "
                        "image (train it with --val-fraction > 0); choose --split test or train")
    if dataset is not None and dataset != config.get("dataset"):
        raise UserError(f"--split {split}: the held-out part exists in {who}'s own dataset "
                        f"{config.get('dataset')!r} only, not in {dataset!r}")
    return None


def split_images(ds: Dataset, split: str, config: dict | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of ``split`` of ``ds``: ``test``; ``train``: the training images the
    network trained on (without the held-out part when ``config`` records ``val_fraction`` /
    ``val_seed``); ``validation``: that held-out part, exactly the images ``heatq heat``
    constrains accuracy on (:func:`heatq.data.split_validation` with the run's fraction and
    seed).  Check the split first with :func:`check_split`."""
    if split == "test":
        return ds.x_test, ds.y_test
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose {', '.join(SPLITS)}")
    held = held_out(config or {})
    if held is None:
        if split == "validation":
            raise UserError("this run has no validation split; choose --split test or train")
        return ds.x_train, ds.y_train
    x_tr, y_tr, x_val, y_val = split_validation(ds.x_train, ds.y_train, *held)
    return (x_val, y_val) if split == "validation" else (x_tr, y_tr)


def check_run(directory: Path, dataset: str | None = None, split: str = "test",
              n: int | None = None, progress: bool = True) -> dict:
    """``heatq check``: validate activations on the first ``n`` images (default all; >= 1)
    of ``split`` (train | validation | test, :func:`split_images`) and write
    ``directory/check.json`` (recording the split)."""
    check_count("--n", n, why="check has no corner vectors")
    summary = Path(directory) / "summary.json"
    if summary.is_file() and read_json(summary).get("source") == "qonnx":  # heatq import's run
        from .interop.qonnx_check import check_imported

        return check_imported(directory, read_json(summary), n)
    config = read_json(Path(directory) / "config.json")
    dataset = check_split(config, split, dataset, f"run {directory}")
    if "split" in config:
        return _check_split_run(Path(directory), dataset, split, n, progress)
    model, config = load_model(directory)
    graph = load_graph(directory)
    ic, oc = codes_of(config)
    ds = dataset_of(config, dataset, str(directory))
    check_image_shape(ds, graph.nodes[0].shape, f"run {directory}", ic)
    x, _ = split_images(ds, split, config)
    x = x[:n] if n is not None else x
    result = validate_activations(model, graph, ic.encode_numpy(x), progress=progress,
                                  decoder=oc.decoder)
    result["split"] = split
    write_json(Path(directory) / "check.json", result)
    return result


def _check_split_run(directory: Path, dataset: str | None, split: str, n: int | None,
                     progress: bool, batch: int = 50) -> dict:
    """``heatq check`` on a split run (config.json has ``split``): every original layer,
    regrouped from the split graph, against the unsplit graph kept in the run
    (:func:`heatq.split_check.validate_split`), in batches of ``batch`` images."""
    from .split.command import load_base
    from .split_check import validate_split

    config = read_json(directory / "config.json")
    graph, base = load_graph(directory), load_base(directory)
    ic, _ = codes_of(config)
    ds = dataset_of(config, dataset, str(directory))
    check_image_shape(ds, base.nodes[0].shape, f"run {directory}", ic)
    x, _ = split_images(ds, split, config)
    x = ic.encode_numpy(x[:n] if n is not None else x).astype(np.int64)
    equal: dict[str, int] = {}
    with activity(f"validating the split against the base graph on {len(x)} images",
                  progress) as act:
        for i in range(0, len(x), batch):
            part = validate_split(graph, base, x[i:i + batch])
            for name, frac in part["layers"].items():
                if name != "input":  # as the torch check: every layer after the input
                    equal[name] = equal.get(name, 0) + round(frac * part["n_samples"])
            act.note(f"{min(i + batch, len(x))}/{len(x)} images")
    layers = {name: count / len(x) for name, count in equal.items()}
    result = {"n_samples": len(x), "layers": layers, "split": split, "against": "base graph",
              "all_equal": bool(layers) and all(v == 1.0 for v in layers.values())}
    write_json(directory / "check.json", result)
    return result


def export_run(directory: Path, target: str, out: Path, force: bool = False,
               **options) -> dict:
    """``heatq-export``: emit ``target`` for the run in ``directory`` into ``out`` (``out``
    checked first; ``force`` replaces an earlier export there)."""
    from heatq_export.export import export_graph

    return export_graph(load_graph(directory), target, out, force=force,
                        inputs=(directory,), **options)


def _export_of(export_dir: Path, command: str) -> tuple[str, IntGraph]:
    """(target, graph) of an export directory; every file its summary lists must be there."""
    summary = read_json(export_dir / "summary.json")
    target = summary.get("target")
    if target is None:
        raise UserError(f"{export_dir}: not an export directory ({command} needs the output "
                        "of heatq-export)")
    missing = sorted(p for p in summary.get("files", {}) if not (export_dir / p).is_file())
    if missing:
        raise UserError(f"{export_dir}: {missing[0]} is missing (listed in summary.json"
                        f"{f' with {len(missing) - 1} more' if len(missing) > 1 else ''}); "
                        "export again")
    return target, load_graph(export_dir)


def _runner(export_dir: Path, target: str, name: str | None):
    """The runner called ``name``, or the first one that runs ``target`` exports."""
    from heatq_export.runners import RUNNERS

    if name is not None:
        if name not in RUNNERS:
            raise UserError(f"unknown runner {name!r}; runners: {', '.join(RUNNERS)}")
        if RUNNERS[name].target != target:
            raise UserError(f"{export_dir}: {name} runs {RUNNERS[name].target} exports, this "
                            f"one is {target!r}")
        return RUNNERS[name]
    for runner in RUNNERS.values():
        if runner.target == target:
            return runner
    raise UserError(f"no runner runs {target} exports; runners: "
                    + ", ".join(f"{r.name} ({r.target})" for r in RUNNERS.values()))


def _one_line(e: Exception) -> str:
    """A build/run failure's first line, plus its first compiler ``error`` line if any."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
    err = next((ln for ln in lines[1:] if "error" in ln.lower()), None)
    return (lines[0].rstrip(":") + (f": {err}" if err else ""))[:400]


def _result(inputs: Inputs, outputs: list, graph: IntGraph) -> dict:
    """Mismatch count (exact equality with the interpreter) and accuracy on dataset images."""
    from heatq_export.build import compare_with_interp

    mismatches = compare_with_interp(graph, outputs, run(graph, inputs.x))
    cls = np.asarray(outputs[-1])[:inputs.n_images]
    return {"n": inputs.n_images, "n_corner": inputs.n_corner, "n_vectors": len(inputs.x),
            "inputs": inputs.source, "inputs_text": inputs.text,
            "mismatches": int(mismatches),
            "accuracy": float((cls == inputs.labels).mean()) if inputs.n_images else None}


def run_target(export_dir: Path, dataset: str | None = None, n: int | None = None,
               progress: bool = True, vectors: Path | None = None, random: int | None = None,
               seed: int = 0, runner: str | None = None) -> dict:
    """``heatq run-target``: build and run an export with its runner
    (``heatq_export.runners.RUNNERS``; ``runner`` picks one) on the inputs of
    :func:`heatq.inputs.target_inputs`, compare every output with the interpreter, write
    ``run.json``."""
    from heatq_export.build import BuildError
    from heatq_export.runners import RunnerError

    check_input_options(dataset, n, vectors, random)
    export_dir = Path(export_dir)
    target, graph = _export_of(export_dir, "run-target")
    chosen = _runner(export_dir, target, runner)
    inputs = target_inputs(graph, str(export_dir), dataset, n, vectors, random, seed)
    try:
        with activity(f"building and running {chosen.name} on {len(inputs.x)} vectors",
                      progress):
            got = chosen.run(export_dir, graph, inputs.x)
    except (BuildError, RunnerError) as e:
        raise UserError(f"{chosen.name}: {_one_line(e)}") from None
    result = {"target": target, "runner": chosen.name, **_result(inputs, got, graph)}
    write_json(export_dir / "run.json", result)
    return result


SIMULATORS = ("icarus", "verilator")


def sim_run(export_dir: Path, simulator: str = "icarus", dataset: str | None = None,
            n: int | None = None, waves: Path | None = None, clock_mhz: float = 100.0,
            progress: bool = True, vectors: Path | None = None, random: int | None = None,
            seed: int = 0) -> dict:
    """``heatq sim``: simulate a Verilog export on the inputs of
    :func:`heatq.inputs.target_inputs` (default: 20 dataset images plus corner vectors),
    compare every output with the interpreter, write ``sim-<simulator>.json``."""
    from heatq_sim.api import simulate, write_sim_json

    check_input_options(dataset, n, vectors, random)
    export_dir = Path(export_dir)
    if simulator not in SIMULATORS:
        raise UserError(f"unknown simulator {simulator!r}; choose {' or '.join(SIMULATORS)}")
    target, graph = _export_of(export_dir, "sim")
    _runner(export_dir, target, simulator)  # the simulator runs this kind of export
    if n is None and vectors is None and random is None:
        n = 20
    inputs = target_inputs(graph, str(export_dir), dataset, n, vectors, random, seed)
    result = simulate(export_dir, graph, inputs.x, simulator=simulator, waves=waves,
                      clock_mhz=clock_mhz, progress=progress)
    result.update(n_images=inputs.n_images, n_corner=inputs.n_corner, inputs=inputs.source,
                  inputs_text=inputs.text)
    write_sim_json(export_dir, result)
    return result
