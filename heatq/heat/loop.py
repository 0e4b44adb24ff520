"""Training and evaluation loops shared by heating, quenching and the finalisers."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..codes import OutputCode, code_targets_torch, decode_torch
from ..distributed import SINGLE, Context
from ..models import QNet
from ..train import _shift_batch
from .noise import Heater, attach, sharpness_at


@dataclass
class Data:
    """Encoded code planes (float32 0/1) and labels: the training part, the validation part
    carved from the training split, and the test split (only ever reported, never used)."""

    x_train: torch.Tensor
    y_train: np.ndarray
    x_val: torch.Tensor
    y_val: np.ndarray
    x_test: torch.Tensor
    y_test: np.ndarray
    code: OutputCode
    teacher: QNet | None = None
    kd: float = 0.0

    def soft_targets(self, xb: torch.Tensor, hard: torch.Tensor) -> torch.Tensor:
        """The training targets of batch ``xb``: the code bits ``hard`` (0/1), blended with
        weight ``kd`` with the teacher's code-bit probabilities (knowledge distillation from
        the reference network, which heating is held to)."""
        if self.teacher is None or self.kd <= 0:
            return hard
        with torch.no_grad():
            soft = torch.sigmoid(self.teacher(xb))
        return (1.0 - self.kd) * hard + self.kd * soft

    def targets(self, y: np.ndarray) -> torch.Tensor:
        return code_targets_torch(torch.from_numpy(np.asarray(y)), self.code.matrix)


@dataclass(frozen=True)
class LoopConfig:
    """Optimiser settings of every training loop here; ``ctx``: the device and the
    data-parallel ranks they train on (:mod:`heatq.distributed`; one CPU process by
    default)."""

    batch_size: int = 64
    weight_decay: float = 1e-4
    max_shift: int = 2
    progress: bool = True
    ctx: Context = SINGLE


@torch.no_grad()
def evaluate(model: QNet, x: torch.Tensor, y: np.ndarray, code: OutputCode,
             exact: bool = False, batch: int = 500, mask: bool = False):
    """(accuracy as a fraction, mean BCE loss), with ``mask`` also the per-sample correctness
    (bool array).  ``exact`` evaluates in float64, where the quantized model's arithmetic is
    exact: the accuracy the integer graph has."""
    model.eval()
    m = copy.deepcopy(model).double() if exact else model
    targets = code_targets_torch(torch.from_numpy(np.asarray(y)), code.matrix)
    ok, loss = [], 0.0
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        logits = m(xb.double() if exact else xb)
        ok.append(decode_torch(logits, code).numpy() == y[i:i + batch])
        loss += float(F.binary_cross_entropy_with_logits(
            logits.float(), targets[i:i + batch], reduction="sum")) / targets.shape[1]
    n = len(x)
    ok = np.concatenate(ok) if ok else np.zeros(0, dtype=bool)
    acc, loss = (float(ok.mean()), loss / n) if n else (float("nan"), float("nan"))
    return (acc, loss, ok) if mask else (acc, loss)


def cosine_lr(opt: torch.optim.Optimizer, base: float, t: int, total: int) -> None:
    """Cosine learning-rate decay from ``base`` to base/20 over ``total`` steps."""
    lr = base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, t / max(1, total)))))
    for g in opt.param_groups:
        g["lr"] = lr


def train_epoch(model: QNet, data: Data, targets: torch.Tensor, cfg: LoopConfig,
                gen: torch.Generator, opts: list[torch.optim.Optimizer], lr: float, t: int,
                total: int, before: Callable[[int], None] | None = None, scale: float = 1.0,
                penalty: Callable[[], torch.Tensor] | None = None,
                after: Callable[[], None] | None = None) -> int:
    """One epoch over ``data.x_train`` in ``gen``-shuffled mini-batches of ``cfg.batch_size``
    (each shifted by up to ``cfg.max_shift`` pixels), in the model's current mode.  Each step
    ``t`` (global, from the given one): ``before(t)``; the learning rate of ``opts[0]`` follows
    :func:`cosine_lr` from ``lr`` over ``total`` steps; the loss ``scale * BCE (+ penalty())``
    is minimised by one step of every optimiser in ``opts``; then ``after()``.  Returns the
    step count after the epoch.

    On ``cfg.ctx`` (:mod:`heatq.distributed`): the model (and a distillation teacher) train on
    its device, wrapped in DDP with more than one rank, each rank on its part of every global
    batch; gradients of tensors the optimisers train outside the model (heating's learned
    bits) are averaged over the ranks as DDP averages the model's; at the end every rank
    holds rank 0's state and the model is back on the CPU."""
    ctx = cfg.ctx
    model.to(ctx.device)
    if data.teacher is not None:
        data.teacher.to(ctx.device)
    net = ctx.wrap(model)
    own = {id(p) for p in model.parameters()}
    extra = [p for o in opts for g in o.param_groups for p in g["params"] if id(p) not in own]
    model.train()
    perm = torch.randperm(len(data.x_train), generator=gen)
    for idx, part in ctx.batches(perm, cfg.batch_size):
        if before is not None:
            before(t)
        cosine_lr(opts[0], lr, t, total)
        xb = _shift_batch(data.x_train[idx], cfg.max_shift, gen, part).to(ctx.device)
        loss = scale * F.binary_cross_entropy_with_logits(
            net(xb), data.soft_targets(xb, targets[idx[part]].to(ctx.device)))
        if penalty is not None:
            loss = loss + penalty()
        for o in opts:
            o.zero_grad()
        loss.backward()
        ctx.average_grads(extra)
        for o in opts:
            o.step()
        if after is not None:
            after()
        t += 1
    ctx.sync_state(model)
    model.to("cpu")
    return t


def total_steps(data: Data, epochs: int, cfg: LoopConfig) -> int:
    """Mini-batch steps in ``epochs`` epochs over ``data.x_train`` (at least 1)."""
    return max(1, epochs * steps_per_epoch(data, cfg))


def steps_per_epoch(data: Data, cfg: LoopConfig) -> int:
    return cfg.ctx.steps_per_epoch(len(data.x_train), cfg.batch_size)


def finetune(model: QNet, data: Data, epochs: int, lr: float, cfg: LoopConfig,
             gen: torch.Generator, soft_epochs: int = 0, soft_bits: int = 2,
             desc: str = "fine-tune") -> None:
    """A short fine-tune at the model's current bit widths: ``soft_epochs`` heated at tau = 1
    (full rounding noise; soft staircases whose sharpness rises for layers of <= soft_bits),
    then the rest with hard rounding and the straight-through estimator (the quench).
    The model ends in quant mode."""
    targets = data.targets(data.y_train)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    total = total_steps(data, epochs, cfg)
    soft_total = max(1, soft_epochs * steps_per_epoch(data, cfg))
    heater = Heater(tau=1.0, soft_bits=soft_bits, generator=gen)

    def sharpen(t: int) -> None:
        heater.sharpness = sharpness_at(min(1.0, t / soft_total))

    t = 0
    for epoch in tqdm(range(epochs), desc=desc, disable=not cfg.progress, leave=False):
        heated = epoch < soft_epochs
        attach(model, heater if heated else None)
        model.set_mode("heat" if heated else "quant")
        t = train_epoch(model, data, targets, cfg, gen, [opt], lr, t, total,
                        before=sharpen if heated else None)
    attach(model, None)
    model.set_mode("quant")
    model.eval()
