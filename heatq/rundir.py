"""A training run directory: ``model.ir.json`` + ``model.npz`` (the integer graph),
``model.pt`` (the torch state dict, loaded with ``weights_only=True``), ``config.json``
(model spec, dataset, codes, seed) and ``summary.json``.  Written atomically.  A model spec
with ``"widen"`` (a balanced weight split's widened network, :mod:`heatq.widen`) loads as the
widened network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .codes import OutputCode, parse_input_code
from .decoder import Decoder
from .errors import UserError
from .files import atomic_dir, load_graph, read_json, write_json  # noqa: F401 (re-exported)
from .ir import IntGraph, save
from .models import QNet, build_model


def save_run(directory: Path, model: QNet, graph: IntGraph, config: dict) -> None:
    """Write the model files into ``directory`` (normally a temporary one)."""
    save(graph, directory)
    torch.save(model.state_dict(), directory / "model.pt")
    write_json(directory / "config.json", config)


FLOAT_STATE = "model_float.pt"  # the network after float training, before QAT


def _load_state(model: QNet, path: Path) -> None:
    """Load a torch state (``weights_only``) into ``model``; user errors name the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except Exception as e:  # torch.load raises many kinds on a corrupt or foreign file
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise UserError(f"{path}: not a heatq model state ({first.strip()[:120]})") from None


def load_model(directory: str | Path) -> tuple[QNet, dict]:
    """The quantized torch model (in quant mode, eval) and the run's config."""
    directory = Path(directory)
    config = read_json(directory / "config.json")
    model = build_model(config.get("model", {}))
    _load_state(model, directory / "model.pt")
    model.set_mode("quant")
    model.eval()
    return model, config


def load_float_model(directory: str | Path, config: dict) -> QNet | None:
    """The run's network as float training left it (``model_float.pt``, written by
    ``heatq train``), in float mode; None when the run has no such file."""
    path = Path(directory) / FLOAT_STATE
    if not path.is_file():
        return None
    model = build_model(config.get("model", {}))
    _load_state(model, path)
    model.set_mode("float")
    model.eval()
    return model


def codes_of(config: dict) -> tuple:
    """(InputCode, OutputCode) recorded in a run's config."""
    try:
        ic = parse_input_code(config["input_code"])
        oc = OutputCode(config["output_code"], np.array(config["codebook"], dtype=np.uint8),
                        Decoder.from_json(config["decoder"]) if "decoder" in config else None)
    except (KeyError, ValueError, TypeError, UserError) as e:
        raise UserError(f"config.json: bad or missing code description ({e})") from None
    return ic, oc
