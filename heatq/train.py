"""Training: float pre-training, then quantization-aware training (straight-through).

Inputs are binary code planes, targets the rows of an error-correcting output code, the
loss binary cross-entropy on the code logits; accuracy decodes by Hamming distance.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .codes import InputCode, OutputCode, code_targets_torch, decode_torch
from .distributed import SINGLE, Context
from .models import QNet
from .progress import bars


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters.  ``epochs`` of float training, then ``qat_epochs`` quantized."""

    epochs: int = 20
    qat_epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    qat_lr: float = 1e-3
    weight_decay: float = 1e-4
    max_shift: int = 2
    seed: int = 0
    progress: bool = True


def encode(code: InputCode, x_uint8: np.ndarray) -> torch.Tensor:
    """uint8 images [N, H, W] -> float32 code planes [N, C, H, W] of 0/1."""
    return torch.from_numpy(code.encode_numpy(x_uint8).astype(np.float32))


def _shift_batch(x: torch.Tensor, max_shift: int, gen: torch.Generator,
                 part: slice = slice(None)) -> torch.Tensor:
    """Random translation by up to ``max_shift`` pixels (zero fill), one shift per sample.
    ``part``: shift only ``x[part]``, with the shifts drawn for all of ``x`` (a data-parallel
    rank's part of a global batch draws what the whole batch draws: ``gen`` stays in step on
    every rank)."""
    if max_shift <= 0:
        return x[part]
    n, _, h, w = x.shape
    p = max_shift
    dy = torch.randint(0, 2 * p + 1, (n,), generator=gen)[part]
    dx = torch.randint(0, 2 * p + 1, (n,), generator=gen)[part]
    x = x[part]
    padded = F.pad(x, (p, p, p, p))
    rows = (dy[:, None] + torch.arange(h)[None, :])  # [n, h]
    cols = (dx[:, None] + torch.arange(w)[None, :])  # [n, w]
    idx_n = torch.arange(len(x))[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def accuracy(model: QNet, x: torch.Tensor, y: np.ndarray, code: OutputCode,
             exact: bool = True, batch: int = 500) -> float:
    """Test accuracy, decoded by ``code`` (its learned decoder, else Hamming).  ``exact`` runs in float64, where the quantized
    model's arithmetic on integers is exact (the basis of ``heatq check``)."""
    model.eval()
    m = copy.deepcopy(model).double() if exact else model
    preds = []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch].double() if exact else x[i:i + batch]
        preds.append(decode_torch(m(xb), code).numpy())
    return float((np.concatenate(preds) == y).mean()) if len(y) else float("nan")


def fit(model: QNet, x: torch.Tensor, y: np.ndarray, code: OutputCode, epochs: int, lr: float,
        cfg: TrainConfig, desc: str, ctx: Context = SINGLE) -> list[float]:
    """Train ``model`` in its current mode on ``ctx.device``; returns the mean loss per epoch.
    Data-parallel (``ctx``, :mod:`heatq.distributed`): the model trains wrapped in DDP, each
    rank on its part of every global batch; at the end every rank holds rank 0's state.  The
    model ends on the CPU."""
    gen = torch.Generator().manual_seed(cfg.seed)
    targets = code_targets_torch(torch.from_numpy(y), code.matrix)
    model.to(ctx.device)
    net = ctx.wrap(model)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    steps = max(1, epochs * ctx.steps_per_epoch(len(x), cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.15)
    losses = []
    bar = tqdm(range(epochs), desc=desc, disable=not bars(cfg.progress), leave=False)
    for _ in bar:
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total, seen = 0.0, 0
        for idx, part in ctx.batches(perm, cfg.batch_size):
            xb = _shift_batch(x[idx], cfg.max_shift, gen, part).to(ctx.device)
            loss = F.binary_cross_entropy_with_logits(net(xb), targets[idx[part]].to(ctx.device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(xb)
            seen += len(xb)
        losses.append(ctx.total(total) / max(1, ctx.total(seen)))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    ctx.sync_state(model)
    model.to("cpu")
    return losses


@torch.no_grad()
def calibrate(model: QNet, x: torch.Tensor, n: int = 1024, batch: int = 256) -> None:
    """Set every quantizer's binary point from ``n`` training samples (training-mode forward
    without gradients), so a quantized model is usable even before any QAT step."""
    model.train()
    for i in range(0, min(n, len(x)), batch):
        model(x[i:i + batch])


def train(model: QNet, x_train: torch.Tensor, y_train: np.ndarray, x_test: torch.Tensor,
          y_test: np.ndarray, code: OutputCode, cfg: TrainConfig,
          float_state: dict | None = None, ctx: Context = SINGLE) -> dict:
    """Float training then QAT.  Returns ``{"acc_float", "acc_quant", "loss_float",
    "loss_quant"}`` (test accuracies as fractions); the model ends in quant mode.
    ``float_state``, if given, receives a copy of the state after float training (the
    network ``acc_float`` measures, from which ``heatq heat`` starts).  ``ctx``: the device
    and the data-parallel ranks both training phases run on (:func:`fit`); calibration
    (alike on every rank) and the accuracies (rank 0 only; None on the others) run on the CPU."""
    torch.manual_seed(cfg.seed)
    model.set_mode("float")
    loss_f = fit(model, x_train, y_train, code, cfg.epochs, cfg.lr, cfg, "float training",
                 ctx)
    acc_float = accuracy(model, x_test, y_test, code, exact=False) if ctx.main else None
    if float_state is not None:
        float_state.update(copy.deepcopy(model.state_dict()))
    model.set_mode("quant")
    calibrate(model, x_train)
    loss_q = fit(model, x_train, y_train, code, cfg.qat_epochs, cfg.qat_lr, cfg,
                 "quantized training", ctx)
    acc_quant = accuracy(model, x_test, y_test, code) if ctx.main else None
    return {"acc_float": acc_float, "acc_quant": acc_quant,
            "loss_float": loss_f[-1] if loss_f else None,
            "loss_quant": loss_q[-1] if loss_q else None}


@torch.no_grad()
def code_bits(model: QNet, x: torch.Tensor, batch: int = 500) -> np.ndarray:
    """The code bits (uint8 [N, L], ``logit > 0``) of ``model`` in its current mode on ``x``."""
    model.eval()
    out = [(model(x[i:i + batch]) > 0).numpy() for i in range(0, len(x), batch)]
    return np.concatenate(out).astype(np.uint8) if out else np.zeros((0, 0), np.uint8)


def shifted_code_bits(model: QNet, x: torch.Tensor, max_shift: int, seed: int) -> np.ndarray:
    """:func:`code_bits` of ``x`` under one random training shift per image (seeded)."""
    return code_bits(model, _shift_batch(x, max_shift, torch.Generator().manual_seed(seed)))


def fit_run_decoder(spec, model: QNet, x_train: torch.Tensor, y_train: np.ndarray,
                    code: OutputCode, cfg: TrainConfig) -> OutputCode:
    """``code`` with a learned decoder (:func:`heatq.decoder.fit_decoder`) fitted on the
    quantized ``model``'s code bits of the training images: two shifted copies to learn from,
    a third to choose the epoch on (the shifts give the bit errors test images show)."""
    from dataclasses import replace

    from .decoder import fit_decoder

    learn = np.concatenate([shifted_code_bits(model, x_train, cfg.max_shift, cfg.seed + i)
                            for i in (1, 2)])
    select = shifted_code_bits(model, x_train, cfg.max_shift, cfg.seed + 3)
    dec = fit_decoder(spec, learn, np.concatenate([y_train, y_train]), code.matrix,
                      select, y_train, seed=cfg.seed)
    return replace(code, decoder=dec)
