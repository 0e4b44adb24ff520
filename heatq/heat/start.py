"""Where ``heatq heat`` starts: the network heating begins from, the reference accuracy it is
held to, and which runs can be heated at all (a split run only when it is a widened balanced
weight split, :mod:`heatq.widen`)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import UserError
from ..models import QNet, build_model, set_layer_bits
from ..quant import QReLU, QWeighted
from ..rundir import FLOAT_STATE, load_float_model, load_model, read_json
from ..train import TrainConfig, calibrate, fit
from .loop import Data, LoopConfig
from .search import measure, reference_accuracy


def check_heatable(directory: Path) -> None:
    """A split run is heatable only when it is a widened balanced weight split."""
    path = directory / "config.json"
    config = read_json(path) if path.is_file() else {}
    if "split" in config and not ((directory / "model.pt").is_file()
                                  and (config.get("model") or {}).get("widen")):
        raise UserError(f"{directory}: this split run has no torch network; only balanced weight "
                        f"splits (heatq split --weights balanced, without --acts) can be heated")


def reference_network(directory: Path, model: QNet, config: dict, data: Data, held_out: bool,
                      ref_epochs: int | None, seed: int, cfg: LoopConfig) -> tuple[QNet, dict]:
    """The network heating starts from, which also gives the reference accuracy.

    A run that held a validation split out of its training (config ``val_fraction`` and
    ``val_seed``) starts from its float network (``model_float.pt``, the network the run's
    ``acc_float`` measured, before quantization-aware training) or, without that file (a
    heated run), from the run as it is.  A run trained on every training image has seen the
    validation images, so its validation accuracy is inflated and no honest drop can be
    measured against it: the float network is then retrained on the training part alone
    (``ref_epochs``, default the run's float epochs; 0 keeps the run's weights and its
    optimistic reference)."""
    train_cfg = config.get("train") or {}
    epochs = int(train_cfg.get("epochs", 30)) if ref_epochs is None else ref_epochs
    ref = load_float_model(directory, config) if held_out else None
    if ref is not None:
        set_layer_bits(ref, *bits_of(model))
        info = {"network": "run's float network (before QAT)", "held_out": True, "epochs": 0}
    elif held_out or epochs == 0:
        return model, {"network": "run", "held_out": held_out, "epochs": 0}
    else:
        ref = build_model(config["model"])
        set_layer_bits(ref, *bits_of(model))
        ref.set_mode("float")
        tc = TrainConfig(epochs=epochs, seed=seed, batch_size=cfg.batch_size,
                         lr=float(train_cfg.get("lr", 3e-3)), weight_decay=cfg.weight_decay,
                         max_shift=cfg.max_shift, progress=cfg.progress)
        fit(ref, data.x_train, data.y_train, data.code, epochs, tc.lr, tc,
            "reference (float, training part)", cfg.ctx)
        info = {"network": "retrained on the training part", "held_out": False,
                "epochs": epochs}
    ref.set_mode("quant")
    calibrate(ref, data.x_train)
    ref.eval()
    return ref, info


def bits_of(model: QNet) -> tuple[dict, dict]:
    """(weight bits, activation bits) per layer name."""
    w = {n: s.bits for n, s in model.steps() if isinstance(s, QWeighted)}
    a = {n: s.bits for n, s in model.steps() if isinstance(s, QReLU)}
    return w, a


def float_source(base: Path, config: dict) -> Path | None:
    """The run whose float network a heated run ``base`` was measured against: its config's
    ``heat.source``, as written or (moved together) beside ``base``, when that run still has
    its float network (``model_float.pt``); None otherwise."""
    src = (config.get("heat") or {}).get("source")
    if not src:
        return None
    for path in (Path(src), base.parent / Path(src).name):
        if (path / FLOAT_STATE).is_file() and (path / "config.json").is_file():
            return path
    return None


def start(run, ref_epochs: int | None, seed: int,
          against: str = "float") -> tuple[QNet, dict, dict]:
    """(the network heating starts from, the ``reference`` record, the reference accuracies
    of :func:`reference_accuracy`).  A run: :func:`reference_network`.  A widened split run
    (``run``: heat's opened run): the widened network itself, against the reference of its
    base run (when the base run is still there; else its own); for a heated base run, the
    float network of the run it was heated from (:func:`float_source`), so that
    ``--max-acc-drop`` is, as for a trained run, a drop from float.  The accuracies carry
    ``"start"``: the start network's exact validation and test accuracy.  ``against``: see
    :func:`reference_accuracy`."""
    widened = "split" in run.config and bool((run.config.get("model") or {}).get("widen"))
    base = Path(run.config["base_run"]) if widened and run.config.get("base_run") else None
    if base is not None and (base / "model.pt").is_file():
        base_model, base_config = load_model(base)
        src = float_source(base, base_config)
        ref_dir, ref_config = (src, read_json(src / "config.json")) if src else (base,
                                                                                base_config)
        ref, reference = reference_network(ref_dir, base_model, ref_config, run.data,
                                           run.held_out, ref_epochs, seed, run.cfg)
        refs = reference_accuracy(ref, run.data, run.oc, against)
        of = f"base run {base}" + (f" (its heat source {src})" if src else "")
        model, reference = run.model, {**reference, "of": of}
    elif widened:
        model, reference = run.model, {"network": "run (base run not found)",
                                       "held_out": run.held_out, "epochs": 0}
        refs = reference_accuracy(model, run.data, run.oc, against)
    else:
        model, reference = reference_network(run.directory, run.model, run.config, run.data,
                                             run.held_out, ref_epochs, seed, run.cfg)
        refs = reference_accuracy(model, run.data, run.oc, against)
    m = measure(model, run.data, run.oc, refs)
    what = "widened split run (exact balanced split of its base)" if widened else "reference"
    refs["start"] = {"network": what, "acc_val": m["acc_val"], "acc_test": m["acc_test"]}
    if widened:
        typer.echo(f"split-then-heat: the widened network starts at test accuracy "
                   f"{100 * m['acc_test']:.2f} % (the base run's, exactly)")
    return model, reference, refs
