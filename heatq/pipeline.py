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
from .convert import convert
from .data import Dataset, load_dataset, split_validation
from .errors import UserError
from .ir import IntGraph
from .ir.interp import run
from .models import MODELS, build_model
from .rundir import (
    FLOAT_STATE, atomic_dir, codes_of, load_graph, load_model, read_json, save_run, write_json,
)
from .train import TrainConfig, encode, train
from .vectors import corner_vectors

MAX_BITS = 16


def set_threads(threads: int) -> None:
    """Use ``threads`` torch threads; with more than one, OpenMP waits passively (on 2 shared
    cores active spinning can slow training 20x)."""
    if threads < 1:
        raise UserError(f"--threads must be >= 1, got {threads}")
    if threads > 1:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch.set_num_threads(threads)


def _check_bits(what: str, bits: int) -> None:
    if not 1 <= bits <= MAX_BITS:
        raise UserError(f"{what} must be between 1 and {MAX_BITS} bits, got {bits}")


def train_run(out: Path, dataset: str = "mnist5k", model: str = "seed-cnn",
              input_code: str = "bitplane:4", output_code: str = "hadamard:15",
              weight_bits: int = 4, act_bits: int = 4, epochs: int = 30,
              qat_epochs: int | None = None, seed: int = 0, train_per_class: int | None = None,
              progress: bool = True, val_fraction: float = 0.0) -> dict:
    """Train, convert and save a run directory ``out``; returns its summary.

    ``val_fraction`` > 0 holds that part of the training images out (stratified, seeded by
    ``seed``, :func:`heatq.data.split_validation`): the network never trains on them, and
    ``config.json`` records ``val_fraction`` / ``val_seed`` so ``heatq heat`` measures its
    accuracy constraint on exactly these images against this run's own accuracy."""
    _check_bits("--weight-bits", weight_bits)
    _check_bits("--act-bits", act_bits)
    if model not in MODELS:
        raise UserError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if epochs < 0 or (qat_epochs is not None and qat_epochs < 0):
        raise UserError("epoch counts must be >= 0")
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    ic = parse_input_code(input_code)
    ds = load_dataset(dataset, train_per_class=train_per_class, seed=seed)
    oc = parse_output_code(output_code, ds.n_classes, seed=seed)
    h, w = ds.image_shape
    spec = {"model": model, "in_channels": ic.channels, "code_length": oc.length,
            "w_bits": weight_bits, "a_bits": act_bits, "image_size": h}
    if h != w:
        raise UserError(f"{dataset}: images must be square, got {h}x{w}")
    torch.manual_seed(seed)
    net = build_model(spec)
    cfg = TrainConfig(epochs=epochs, qat_epochs=(epochs + 1) // 2 if qat_epochs is None
                      else qat_epochs, seed=seed, progress=progress)
    x_tr, y_tr = ds.x_train, ds.y_train
    n_val = 0
    if val_fraction > 0:
        x_tr, y_tr, x_val, _ = split_validation(x_tr, y_tr, val_fraction, seed)
        n_val = len(x_val)
    x_train, x_test = encode(ic, x_tr), encode(ic, ds.x_test)
    float_state: dict = {}
    metrics = train(net, x_train, y_tr, x_test, ds.y_test, oc, cfg, float_state)
    config = {"model": net.spec, "dataset": dataset, "train_per_class": train_per_class,
              "seed": seed, "input_code": ic.spec, "output_code": oc.name,
              "codebook": oc.matrix.tolist(), "train": asdict(cfg)}
    if val_fraction > 0:
        config.update(val_fraction=val_fraction, val_seed=seed)
    graph = convert(net, oc.matrix, {"dataset": dataset, "input_code": ic.spec,
                                      "output_code": oc.name, "seed": seed,
                                      "train_per_class": train_per_class})
    acc_ir = ir_accuracy(graph, ic.encode_numpy(ds.x_test), ds.y_test)
    summary = {**metrics, "acc_ir": acc_ir, "n_train": len(y_tr), "n_val": n_val,
               "n_test": len(ds.y_test),
               "weight_bits": graph.meta["weight_bits"], "act_bits": graph.meta["act_bits"],
               "dataset": dataset, "model": model}
    with atomic_dir(out) as tmp:
        save_run(tmp, net, graph, config)
        torch.save(float_state, tmp / FLOAT_STATE)
        write_json(tmp / "summary.json", summary)
    return summary


def ir_accuracy(graph: IntGraph, x_codes: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    """Accuracy of the interpreter's class output."""
    pred = np.concatenate([run(graph, x_codes[i:i + batch])[-1]
                           for i in range(0, len(x_codes), batch)])
    return float((pred == y).mean())


def dataset_for(config_or_meta: dict, dataset: str | None, seed: int | None = None) -> Dataset:
    """The dataset named on the command line, else the one the run was trained on."""
    name = dataset or config_or_meta.get("dataset")
    if not name:
        raise UserError("no dataset recorded; pass --dataset")
    tpc = config_or_meta.get("train_per_class") if dataset is None else None
    return load_dataset(name, train_per_class=tpc,
                        seed=config_or_meta.get("seed", 0) if seed is None else seed)


def split_images(ds: Dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    if split == "test":
        return ds.x_test, ds.y_test
    if split == "train":
        return ds.x_train, ds.y_train
    raise UserError(f"unknown split {split!r}; choose test or train")


def check_run(directory: Path, dataset: str | None = None, split: str = "test",
              n: int | None = None, progress: bool = True) -> dict:
    """``heatq check``: validate activations and write ``directory/check.json``."""
    model, config = load_model(directory)
    graph = load_graph(directory)
    ic, _ = codes_of(config)
    x, _ = split_images(dataset_for(config, dataset), split)
    x = x[:n] if n else x
    result = validate_activations(model, graph, ic.encode_numpy(x), progress=progress)
    result["split"] = split
    write_json(Path(directory) / "check.json", result)
    return result


def export_run(directory: Path, target: str, out: Path, **options) -> dict:
    """``heatq-export``: emit ``target`` for the run in ``directory`` into ``out``."""
    from heatq_export.cli import export_graph

    return export_graph(load_graph(directory), target, out, **options)


def target_inputs(graph: IntGraph, dataset: str | None, n: int | None, seed: int = 0):
    """(vectors, labels or None per vector, n_images): dataset test images (encoded with the
    graph's input code) followed by corner vectors."""
    ds = dataset_for(dict(graph.meta), dataset)
    ic = parse_input_code(graph.meta.get("input_code", "bitplane:4"))
    x = ds.x_test[:n] if n is not None else ds.x_test
    codes = ic.encode_numpy(x).astype(np.int64)
    if codes.shape[1:] != graph.nodes[0].shape:
        raise UserError(f"dataset {ds.name} gives inputs of shape {codes.shape[1:]} but the model "
                        f"expects {graph.nodes[0].shape}")
    corners = corner_vectors(graph, seed=seed)
    return np.concatenate([codes, corners]), ds.y_test[:len(codes)], len(codes)


def run_target(export_dir: Path, dataset: str | None = None, n: int | None = None) -> dict:
    """``heatq run-target``: compile the C or HLS export, run it on dataset images and corner
    vectors, compare every output with the interpreter, write ``run.json``."""
    from heatq_export.build import compare_with_interp, compile_target, run_executable

    export_dir = Path(export_dir)
    target = read_json(export_dir / "summary.json").get("target")
    if target is None:
        raise UserError(f"{export_dir}: not an export directory (run-target needs the output "
                        "of heatq-export --target c|hls)")
    if target not in ("c", "hls"):
        raise UserError(f"{export_dir}: run-target runs c or hls exports, this one is {target!r}")
    graph = load_graph(export_dir)
    x, labels, n_images = target_inputs(graph, dataset, n)
    exe = compile_target(export_dir, target)
    got = run_executable(exe, x)
    want = run(graph, x)
    mismatches = compare_with_interp(graph, got, want)
    cls = got[-1][:n_images]
    result = {"target": target, "n": n_images, "n_corner": len(x) - n_images,
              "mismatches": int(mismatches),
              "accuracy": float((cls == labels).mean()) if n_images else None}
    write_json(export_dir / "run.json", result)
    return result


SIMULATORS = ("icarus", "verilator")


def sim_run(export_dir: Path, simulator: str = "icarus", dataset: str | None = None,
            n: int | None = 20) -> dict:
    """``heatq sim``: simulate a Verilog export on dataset images plus corner vectors, compare
    every output with the interpreter, write ``sim.json``."""
    from heatq_sim.api import simulate

    export_dir = Path(export_dir)
    if simulator not in SIMULATORS:
        raise UserError(f"unknown simulator {simulator!r}; choose {' or '.join(SIMULATORS)}")
    target = read_json(export_dir / "summary.json").get("target")
    if target != "verilog":
        raise UserError(f"{export_dir}: sim needs a verilog export (heatq-export --target "
                        f"verilog), this one is {target!r}")
    graph = load_graph(export_dir)
    x, labels, n_images = target_inputs(graph, dataset, n)
    result = simulate(export_dir, graph, x, simulator=simulator)
    result["n_images"] = n_images
    result["n_corner"] = len(x) - n_images
    write_json(export_dir / "sim.json", result)
    return result
