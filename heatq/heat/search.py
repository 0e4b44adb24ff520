"""The finalisation of ``heatq heat``: from the heated network to integer bits.

:class:`Search` holds the current network and its bits and gives the finalisers of
:mod:`heatq.heat.finalize` their ``probe`` (validation loss at some bits, no training) and
``accept`` (fine-tune at some bits, kept only if the constraint holds);
:func:`finalise` quenches the heated bits, repairs an infeasible start, then peels bits
greedily or solves the ILP, and polishes the choice.
"""

from __future__ import annotations

import copy

import torch

from ..models import QNet
from .finalize import greedy_peel, greedy_raise, ilp_search, monotone_harm
from .constraint import Constraint
from .lagrange import CostModel
from .loop import Data, LoopConfig, evaluate, finetune
from .noise import set_bits


class Search:
    """The current network and its bits; ``probe`` and ``accept`` for the finalisers."""

    def __init__(self, model: QNet, data: Data, cm: CostModel, constraint: Constraint,
                 ft_epochs: int, ft_lr: float, soft_bits: int, cfg: LoopConfig,
                 gen: torch.Generator, bar) -> None:
        self.model, self.data, self.cm = model, data, cm
        self.constraint = constraint
        self.ft_epochs, self.ft_lr, self.soft_bits = ft_epochs, ft_lr, soft_bits
        self.cfg, self.gen, self.bar = cfg, gen, bar
        self.steps = dict(model.steps())
        self.bits = {k: self.steps[k].bits for k in cm.knobs}
        self.state = copy.deepcopy(model.state_dict())
        self.trials: list[dict] = []
        self.chain: list[tuple[dict, dict]] = []  # (bits, state) of every accepted step
        self.best: dict | None = None  # smallest drop seen (for an impossible constraint)

    def _set(self, bits: dict) -> None:
        set_bits(self.model, bits)

    def probe(self, bits: dict) -> float:
        """Validation loss of the current network rounded to ``bits`` (no training)."""
        self.model.load_state_dict(self.state)
        self._set(bits)
        _, loss = evaluate(self.model, self.data.x_val, self.data.y_val, self.data.code)
        return loss

    def cost(self, bits: dict) -> float:
        return float(self.cm.cost(bits))

    def accept(self, bits: dict, epochs: int | None = None, soft: bool = True,
               force: bool = False) -> bool:
        """Fine-tune the current network at ``bits``; keep it if the constraint holds (or
        ``force``)."""
        self.model.load_state_dict(self.state)
        self._set(bits)
        ep = self.ft_epochs if epochs is None else epochs
        finetune(self.model, self.data, ep, self.ft_lr, self.cfg, self.gen,
                 soft_epochs=ep // 2 if soft else 0, soft_bits=self.soft_bits)
        acc, loss, mask = evaluate(self.model, self.data.x_val, self.data.y_val,
                                   self.data.code, exact=True, mask=True)
        v = self.constraint.judge(acc, mask)
        drop, ok = v.drop, v.met
        row = {"bits": dict(bits), "acc_val": acc, "loss_val": loss, "acc_drop_val": drop,
               "se_val": v.se, "margin_val": v.margin,
               "total_weight_bits": self.cm.weight_bits_total(bits), "bops": self.cm.bops(bits),
               "split_luts": self.cm.split_luts(bits),
               "cost": self.cost(bits), "accepted": bool(ok or force)}
        self.trials.append(row)
        state = copy.deepcopy(self.model.state_dict())
        if self.best is None or drop < self.best["acc_drop_val"]:
            self.best = {**row, "state": state}
        if ok:
            self.chain.append((dict(bits), state))
        if ok or force:
            self.state, self.bits = state, dict(bits)
        else:
            self.model.load_state_dict(self.state)
        self.bar.update(1)
        self.bar.set_postfix(cost=f"{self.cost(self.bits):.3g}", drop=f"{drop:.2f}")
        return ok


def _start(search: Search, heated_bits: dict, snapshot: dict | None, hi: dict,
           quench_epochs: int, finetune_epochs: int, log: list) -> bool:
    """Quench the heated bits; start from a cheaper feasible heating snapshot if any; when
    infeasible, repair by raising bits (if the all-max network is feasible at all)."""
    cm = search.cm
    feasible = search.accept(heated_bits, epochs=quench_epochs, soft=False, force=True)
    if snapshot is not None and (not feasible or snapshot["cost"] < search.cost(search.bits)):
        # a cheaper (or the only) feasible point seen while heating: start from it
        search.state, search.bits = snapshot["state"], snapshot["bits"]
        search.trials.append({k: v for k, v in snapshot.items() if k != "state"}
                             | {"accepted": True, "from_heating": True,
                                "total_weight_bits": cm.weight_bits_total(snapshot["bits"]),
                                "bops": cm.bops(snapshot["bits"])})
        feasible = True
    if not feasible:  # repair: is the constraint reachable at all?
        start_state, start_bits = search.state, search.bits
        if search.accept(hi, epochs=max(quench_epochs, finetune_epochs), soft=False):
            search.state, search.bits = start_state, start_bits
            feasible = greedy_raise(start_bits, hi, search.cost, search.probe,
                                    search.accept, log) is not None
            if not feasible:  # should not happen (all-max held): fall back to it
                search.accept(hi, force=True)
                feasible = True
    return feasible


def _solve(search: Search, solver: str, lo: dict, hi: dict, log: list) -> None:
    """From a feasible start: greedy bit-peeling, or the ILP on probed sensitivities."""
    cm = search.cm
    if solver == "greedy":
        greedy_peel(search.bits, lo, search.cost, search.probe, search.accept, log)
        return
    base = search.probe(search.bits)
    domains = {k: list(range(lo[k], hi[k] + 1)) for k in cm.knobs}
    harm = {k: monotone_harm({b: search.probe({**search.bits, k: b}) - base
                              for b in domains[k]}) for k in cm.knobs}
    ilp_search(search.bits, domains, harm, cm.lin, cm.quad, search.cost, search.accept, log=log,
               act=cm.act)


def _polish(search: Search, quench_epochs: int) -> None:
    """Hard-round fine-tune the choice; kept only if validation agrees."""
    before = next((t for t in reversed(search.trials)
                   if t["accepted"] and t["bits"] == search.bits), None)
    kept = search.state
    if search.accept(search.bits, epochs=quench_epochs, soft=False):
        last = search.trials[-1]
        if before is not None and last["acc_val"] < before["acc_val"]:
            search.state = kept
            last["accepted"] = False


def finalise(search: Search, heated_bits: dict | None, snapshot: dict | None, lo: dict,
             hi: dict, solver: str, quench_epochs: int, finetune_epochs: int) -> bool:
    """Integer bits from the heated network (``heated_bits``), or, with None, from the
    search's current network (already feasible: a sweep's previous point); True when they
    meet the constraint (else the search holds the smallest-drop network it saw)."""
    log: list[dict] = []
    feasible = True
    if heated_bits is not None:
        feasible = _start(search, heated_bits, snapshot, hi, quench_epochs, finetune_epochs,
                          log)
    if feasible:
        _solve(search, solver, lo, hi, log)
    else:
        search.state, search.bits = search.best["state"], search.best["bits"]
    if quench_epochs and feasible:
        _polish(search, quench_epochs)
    return feasible


def reference_accuracy(model: QNet, data: Data, oc, against: str = "float") -> dict:
    """The reference the constraint is measured against (``ref_val``, with its per-sample
    correctness ``ref_ok``): ``float``: the stricter (higher) of the network unquantized and
    as quantized at the run's widths; ``start``: the network as quantized (heating's start,
    which then meets the constraint by definition).  Leaves ``model`` quantized."""
    model.set_mode("float")
    acc_float_val, _, float_ok = evaluate(model, data.x_val, data.y_val, oc, mask=True)
    acc_float_test, _ = evaluate(model, data.x_test, data.y_test, oc)
    model.set_mode("quant")
    acc_run_val, _, run_ok = evaluate(model, data.x_val, data.y_val, oc, exact=True, mask=True)
    if against == "start" or acc_run_val > acc_float_val:
        ref_val, ref_ok = acc_run_val, run_ok
    else:
        ref_val, ref_ok = acc_float_val, float_ok
    return {"ref_val": ref_val, "ref_ok": ref_ok, "acc_float_val": acc_float_val,
            "acc_float_test": acc_float_test, "acc_run_val": acc_run_val, "against": against}


def measure(model: QNet, data: Data, oc, refs: dict) -> dict:
    """Validation and test accuracy (exact) of ``model`` and its drop against the reference."""
    model.set_mode("quant")
    model.eval()
    acc_val, _, ok = evaluate(model, data.x_val, data.y_val, oc, exact=True, mask=True)
    acc_test, _ = evaluate(model, data.x_test, data.y_test, oc, exact=True)
    return {"acc_val": acc_val, "acc_test": acc_test, "ok": ok,
            "drop_val": 100.0 * (refs["ref_val"] - acc_val)}
