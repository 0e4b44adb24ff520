"""Constrained heating: continuous learned bits, a Lagrange multiplier, dual ascent.

The problem is

    minimise  cost(bits)   subject to   acc_drop_val(bits) <= delta

with ``cost`` the total weight bits (``sum_l n_l b_l``) or the bit-operations
(``sum_l MACs_l * b_l * a_l``, ``a_l`` the bits of layer l's input).  During heating every
layer's bits are a continuous parameter ``beta`` (weights and activations); the training loss is
the Lagrangian

    mu * task_loss(w, beta)  +  cost(beta) / cost(max bits)

where the task loss sees the heated network (rounding noise at the step that ``beta`` implies;
its gradient in ``beta`` comes from the noise at full amplitude, see
:class:`heatq.heat.noise.Heater`), so it measures how much a coarser grid hurts.  After every
epoch the multiplier ``mu`` takes a (log-space) dual-ascent step on the *measured* constraint:
the validation accuracy of the hard-rounded network at the integer bits ``ceil(beta)``, raised
when the constraint is violated, lowered when there is slack; the step is weighted by tau.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from ..models import QNet
from ..quant import QConv2d, QLinear, QReLU, QWeighted
from .constraint import Constraint
from .loop import Data, LoopConfig, evaluate, total_steps, train_epoch
from .noise import Heater, attach, set_bits, sharpness_at, tau_at

OBJECTIVES = ("split_luts", "bits", "bops")


def thermometer_units(a):
    """Binary threshold units a ``a``-bit activation splits into: ``2**a - 1`` (works on ints,
    floats and tensors; the continuous form is what heating differentiates)."""
    return 2 ** a - 1


def _identity(a):
    return a


@dataclass
class CostModel:
    """cost(bits) = sum_k lin[k] * bits[k] + sum_(j,k) quad[j,k] * bits[j] * g(bits[k]) over the
    *knobs* (layer names: weighted layers and quantized ReLUs, in forward order); ``g`` (``act``)
    is the identity for ``bops`` and :func:`thermometer_units` for ``split_luts``."""

    objective: str
    knobs: list[str]
    weighted: list[str]
    acts: list[str]
    n_weights: dict[str, int]
    macs: dict[str, int]
    lin: dict[str, float] = field(default_factory=dict)
    quad: dict[tuple[str, str], float] = field(default_factory=dict)
    act: object = _identity

    def cost(self, bits: dict) -> float | torch.Tensor:
        total = sum(c * bits[k] for k, c in self.lin.items())
        return total + sum(c * bits[j] * self.act(bits[k]) for (j, k), c in self.quad.items())

    def weight_bits_total(self, bits: dict) -> int:
        return int(sum(self.n_weights[k] * int(bits[k]) for k in self.weighted))

    def _inputs(self):
        """(weighted layer, the activation knob feeding it or None for the input code)."""
        prev = None
        for k in self.knobs:
            if k in self.macs:
                yield k, prev
            else:
                prev = k

    def bops(self, bits: dict) -> int:
        """Bit-operations: MACs x weight bits x input bits (the input code planes: 1 bit)."""
        return int(sum(self.macs[k] * int(bits[k]) * (int(bits[a]) if a else 1)
                       for k, a in self._inputs()))

    def split_luts(self, bits: dict) -> int:
        """The exact binary split's size: per weighted layer, weights x weight bits (bit-plane
        weight split) x ``2**a - 1`` (thermometer units of its ``a``-bit input; the input code
        planes are 1 bit: 1)."""
        return int(sum(self.n_weights[k] * int(bits[k]) *
                       (thermometer_units(int(bits[a])) if a else 1)
                       for k, a in self._inputs()))


def cost_model(model: QNet, objective: str = "split_luts", max_bits: int = 8) -> CostModel:
    """The cost model of ``model``: weight counts and MACs from one traced forward pass.
    ``bits``: total weight bits, the activations entering with a weight small enough never to
    outweigh one weight bit (so they are lowered only where it costs no weight bits);
    ``bops``: MACs x weight bits x input bits; ``split_luts``: :meth:`CostModel.split_luts`."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}")
    steps = dict(model.steps())
    was = [(s, s.mode) for s in steps.values()]
    model.set_mode("float")
    with torch.no_grad():
        _, seen = model.eval()(torch.zeros(1, *model.input_shape), trace=True)
    for s, mode in was:
        s.mode = mode
    knobs, weighted, acts, n_w, macs = [], [], [], {}, {}
    for name, step in steps.items():
        if isinstance(step, QWeighted):
            knobs.append(name)
            weighted.append(name)
            n_w[name] = int(step.weight.numel())
            out = seen[name][0]
            if isinstance(step, QConv2d):
                # fan-in = weights per output channel (K parts of a widened layer included)
                macs[name] = int(out[0].numel()) * (int(step.weight.numel()) // int(out.shape[1]))
            elif isinstance(step, QLinear):
                macs[name] = int(step.weight.numel())
        elif isinstance(step, QReLU):
            knobs.append(name)
            acts.append(name)
    cm = CostModel(objective, knobs, weighted, acts, n_w, macs)
    eps = 1.0 / (len(acts) * max_bits + 1)
    if objective == "bits":
        cm.lin = {**{k: float(n_w[k]) for k in weighted}, **{k: eps for k in acts}}
        return cm
    per = macs if objective == "bops" else n_w
    cm.act = _identity if objective == "bops" else thermometer_units
    for k, a in cm._inputs():
        if a is None:
            cm.lin[k] = float(per[k])
        else:
            cm.quad[(k, a)] = float(per[k])
    for k in acts:  # an activation that feeds no weighted layer still costs a little
        if not any(k == p for (_, p) in cm.quad):
            cm.lin[k] = eps
    return cm


def integer_bits(beta: float, min_bits: int, max_bits: int) -> int:
    """The integer width that continuous bits ``beta`` stand for: ceil, within the bounds."""
    b = float(beta.detach()) if torch.is_tensor(beta) else float(beta)
    return int(min(max_bits, max(min_bits, math.ceil(b - 1e-6))))


def bounds(cm: CostModel, model: QNet, min_bits: int, max_bits: int | None = None,
           max_act_bits: int | None = None) -> tuple[dict[str, int], dict[str, int]]:
    """(lowest, highest) bits per knob: ``min_bits`` .. ``max_bits`` for weights and
    ``max_act_bits`` for activations; by default (None) each layer's width in the given model,
    so heating narrows and never widens; never below ``min_bits``."""
    steps = dict(model.steps())
    lo = {k: min_bits for k in cm.knobs}
    hi = {}
    for k in cm.knobs:
        cap = max_bits if k in cm.weighted else max_act_bits
        hi[k] = max(min_bits, steps[k].bits if cap is None else cap)
    return lo, hi


@dataclass(frozen=True)
class HeatSettings:
    """Heating hyper-parameters (see :func:`heat_phase`)."""

    epochs: int = 20
    schedule: str = "cosine"
    hold: float = 0.25
    lr: float = 1e-3
    bits_lr: float = 0.01
    act_bits_lr: float = 0.01
    act_delay: float = 0.0
    learn_bits: bool = True
    mu0: float = 1.0
    dual_lr: float = 0.5
    soft_bits: int = 2


def heat_phase(model: QNet, data: Data, cm: CostModel, constraint: Constraint,
               lo: dict[str, int], hi: dict[str, int], hs: HeatSettings, cfg: LoopConfig,
               gen: torch.Generator) -> tuple[dict[str, int], list[dict], dict | None]:
    """Heat ``model`` for ``hs.epochs`` epochs (tau 0 -> 1); with ``hs.learn_bits`` learn the
    continuous bits (within ``lo``..``hi`` per knob, starting from the run's widths) under
    the Lagrangian with dual ascent on the validation constraint.  Weight bits learn at
    ``hs.bits_lr``; activation bits at ``hs.act_bits_lr``, from ``hs.act_delay`` (a fraction of
    the heating steps) on: weights first, then activations from where the weights went.
    Returns the integer bits at the end, one history row per epoch, and the cheapest epoch
    whose hard-rounded network met the constraint (``{"bits", "state", "acc_drop_val",
    "cost", "epoch"}``, or None): a feasible start for the finalisation."""
    run = _Heating(model, data, cm, lo, hi, hs, cfg, gen)
    history, best = [], None
    bar = tqdm(range(hs.epochs), desc="heating", disable=not cfg.progress, leave=False)
    for epoch in bar:
        run.train_epoch()
        bits = {k: integer_bits(b, lo[k], hi[k]) for k, b in run.beta.items()}
        set_bits(model, bits)
        model.set_mode("quant")
        acc, loss_val, ok = evaluate(model, data.x_val, data.y_val, data.code, exact=True,
                                     mask=True)
        v = constraint.judge(acc, ok)
        cost = float(cm.cost(bits))
        if v.met and (best is None or cost < best["cost"]):
            best = {"bits": dict(bits), "state": copy.deepcopy(model.state_dict()),
                    "acc_drop_val": v.drop, "acc_val": acc, "cost": cost, "epoch": epoch + 1,
                    "margin_val": v.margin}
        if hs.learn_bits:
            run.mu = dual_step(run.mu, v.upper, constraint.max_acc_drop, run.tau, hs.dual_lr)
        history.append({"epoch": epoch + 1, "tau": run.tau, "mu": run.mu, "acc_val": acc,
                        "loss_val": loss_val, "acc_drop_val": v.drop, "margin_val": v.margin,
                        "bits": dict(bits),
                        "beta": {k: round(float(b.detach()), 3) for k, b in run.beta.items()},
                        "total_weight_bits": cm.weight_bits_total(bits),
                        "bops": cm.bops(bits), "split_luts": cm.split_luts(bits)})
        bar.set_postfix(acc=f"{100 * acc:.2f}", cost=f"{cost:.3g}", mu=f"{run.mu:.2g}")
    attach(model, None)
    model.set_mode("quant")
    model.eval()
    return {k: run.steps[k].bits for k in cm.knobs}, history, best


def dual_step(mu: float, drop: float, max_acc_drop: float, tau: float, dual_lr: float) -> float:
    """One dual-ascent step of the multiplier on the measured constraint (points of
    accuracy), in log space, weighted by tau: early on the weights have not yet adapted to
    the noise, so a violation then says less about the final bits.  Kept in 1e-3 .. 1e3."""
    g = (drop - max_acc_drop) / max(max_acc_drop, 0.25)
    step = dual_lr * tau * max(-1.0, min(1.0, g))
    return float(min(1e3, max(1e-3, mu * math.exp(step))))


class _Heating:
    """The training state of :func:`heat_phase`: the heater, the continuous bits ``beta``,
    the optimisers (weights; bits when learned), the multiplier ``mu``, the global step ``t``
    and the temperature ``tau`` of the last step."""

    def __init__(self, model: QNet, data: Data, cm: CostModel, lo: dict[str, int],
                 hi: dict[str, int], hs: HeatSettings, cfg: LoopConfig, gen: torch.Generator):
        self.model, self.data, self.cm, self.lo, self.hi = model, data, cm, lo, hi
        self.hs, self.cfg, self.gen = hs, cfg, gen
        self.steps = dict(model.steps())
        start = {k: float(min(hi[k], max(lo[k], self.steps[k].bits))) for k in cm.knobs}
        self.beta = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
        self.heater = Heater(soft_bits=hs.soft_bits, generator=gen,
                             beta=self.beta if hs.learn_bits else {})
        attach(model, self.heater)
        self.opts = [torch.optim.AdamW(model.parameters(), lr=hs.lr,
                                       weight_decay=cfg.weight_decay)]
        if hs.learn_bits:
            self.opts.append(torch.optim.Adam(
                [{"params": [self.beta[k] for k in cm.weighted], "lr": hs.bits_lr},
                 {"params": [self.beta[k] for k in cm.acts], "lr": hs.act_bits_lr}]))
        self.cost_ref = float(cm.cost({k: float(hi[k]) for k in cm.knobs}))
        self.targets = data.targets(data.y_train)
        self.total = total_steps(data, hs.epochs, cfg)
        self.mu, self.t, self.tau = hs.mu0, 0, 0.0

    def train_epoch(self) -> None:
        self.model.set_mode("heat")
        learn = self.hs.learn_bits
        self.t = train_epoch(self.model, self.data, self.targets, self.cfg, self.gen,
                             self.opts, self.hs.lr, self.t, self.total, before=self._warm,
                             scale=self.mu, penalty=self._penalty if learn else None,
                             after=self._clamp_bits if learn else None)

    def _warm(self, t: int) -> None:
        """Before step ``t``: the temperature, and the integer bits the current beta imply."""
        self.tau = tau_at(t / max(1, self.total - 1), self.hs.schedule, self.hs.hold)
        self.heater.tau, self.heater.sharpness = self.tau, sharpness_at(self.tau)
        if self.hs.learn_bits:  # activation bits wait for hs.act_delay of the heating
            late = t / max(1, self.total) >= self.hs.act_delay
            self.opts[1].param_groups[1]["lr"] = self.hs.act_bits_lr if late else 0.0
        for k, b in self.beta.items():
            self.steps[k].bits = integer_bits(b, self.lo[k], self.hi[k])

    def _penalty(self) -> torch.Tensor:
        return self.cm.cost(self.beta) / self.cost_ref

    @torch.no_grad()
    def _clamp_bits(self) -> None:
        for k, b in self.beta.items():
            b.clamp_(self.lo[k], self.hi[k])
