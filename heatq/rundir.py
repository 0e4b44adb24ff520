"""A training run directory: ``model.ir.json`` + ``model.npz`` (the integer graph),
``model.pt`` (the torch state dict, loaded with ``weights_only=True``), ``config.json``
(model spec, dataset, codes, seed) and ``summary.json``.  Written atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .codes import OutputCode, parse_input_code
from .errors import UserError
from .ir import IntGraph, IRError, load, save
from .models import QNet, build_model


@contextmanager
def atomic_dir(out: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``out``; on success it replaces ``out``, on any
    error it is removed, so no half-written output is ever left."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp."))
    try:
        yield tmp
        if out.exists():
            trash = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old."))
            os.replace(out, trash / "old")
            os.replace(tmp, out)
            shutil.rmtree(trash)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as stable, indented JSON, atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    """Read a JSON file, or raise UserError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None


def save_run(directory: Path, model: QNet, graph: IntGraph, config: dict) -> None:
    """Write the model files into ``directory`` (normally a temporary one)."""
    save(graph, directory)
    torch.save(model.state_dict(), directory / "model.pt")
    write_json(directory / "config.json", config)


def load_graph(directory: str | Path) -> IntGraph:
    """The integer graph of a run or export directory, verified; UserError if broken."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory")
    try:
        return load(directory / "model.ir.json")
    except IRError as e:
        raise UserError(str(e)) from None


def load_model(directory: str | Path) -> tuple[QNet, dict]:
    """The quantized torch model (in quant mode, eval) and the run's config."""
    directory = Path(directory)
    config = read_json(directory / "config.json")
    model = build_model(config.get("model", {}))
    path = directory / "model.pt"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except Exception as e:  # torch.load raises many kinds on a corrupt or foreign file
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise UserError(f"{path}: not a heatq model state ({first.strip()[:120]})") from None
    model.set_mode("quant")
    model.eval()
    return model, config


def codes_of(config: dict) -> tuple:
    """(InputCode, OutputCode) recorded in a run's config."""
    try:
        ic = parse_input_code(config["input_code"])
        oc = OutputCode(config["output_code"], np.array(config["codebook"], dtype=np.uint8))
    except (KeyError, ValueError) as e:
        raise UserError(f"config.json: bad or missing code description ({e})") from None
    return ic, oc
