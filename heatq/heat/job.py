"""One ``heatq heat`` job: the source run and its data, the reference network and its
accuracy, the cost model and bit bounds (:func:`open_job`, once per command), then one or more
*points* (:func:`search_point`): heat + finalise for one ``--max-acc-drop``, or, in a sweep,
finalise from the previous (tighter) point's network without heating again.

:func:`choose` applies the rule that the exported network always meets the constraint (with its
margin, :mod:`heatq.heat.constraint`): the heated network; else the source run; else the
network heating started from (the reference at the run's widths); and when none of them meets
it, nothing: :class:`NoFeasibleNetwork` (the command exits 1, writing nothing).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data import load_dataset, split_validation
from ..distributed import SINGLE, Context
from ..errors import UserError
from ..models import QNet
from ..progress import bars
from ..rundir import codes_of, load_model
from ..train import encode
from .constraint import Constraint
from .lagrange import CostModel, HeatSettings, bounds, cost_model, heat_phase
from .loop import Data, LoopConfig
from .noise import set_bits, set_step_rule
from .search import Search, finalise, measure, reference_accuracy
from .start import start

MAX_BITS = 16


class NoFeasibleNetwork(UserError):
    """No candidate network meets the constraint within the bit bounds (exit status 1: the
    input is fine, the requested bound is not reachable)."""

    exit_code = 1


@dataclass
class Job:
    """What every point of one command shares."""

    directory: Path
    config: dict
    ic: object
    oc: object
    data: Data
    x_val_raw: np.ndarray
    cfg: LoopConfig
    held_out: bool
    val_fraction: float
    val_seed: int
    seed: int
    model: QNet = None
    start_state: dict = None
    reference: dict = None
    refs: dict = None
    cm: CostModel = None
    lo: dict = None
    hi: dict = None
    hs: HeatSettings = None
    gen: torch.Generator = None
    z: float = 0.0
    options: dict = field(default_factory=dict)
    confirm: Data | None = None
    confirm_refs: dict | None = None
    raw: dict = field(default_factory=dict)  # the uint8 splits (provenance hashes them)

    def constraint(self, max_acc_drop: float) -> Constraint:
        """The search's constraint: on the search part of the validation split."""
        return Constraint(max_acc_drop, self.z, self.refs["ref_val"], self.refs["ref_ok"])

    @property
    def final_data(self) -> Data:
        """The images the written network is confirmed on: the confirmation part of the
        validation split (never used by the search), or the whole split without one."""
        return self.data if self.confirm is None else self.confirm

    @property
    def final_refs(self) -> dict:
        return self.refs if self.confirm_refs is None else self.confirm_refs

    def final_constraint(self, max_acc_drop: float) -> Constraint:
        """The constraint the written network meets: on :attr:`final_data`."""
        r = self.final_refs
        return Constraint(max_acc_drop, self.z, r["ref_val"], r["ref_ok"])


@dataclass
class Point:
    """The result of one ``--max-acc-drop``: the chosen network's state, bits and
    measurements, and the search's record."""

    max_acc_drop: float
    state: dict
    bits: dict
    measured: dict
    exported: dict
    heated: dict
    trials: list
    history: list = field(default_factory=list)
    heated_bits: dict = field(default_factory=dict)
    snapshot: dict | None = None
    search_bits: dict = field(default_factory=dict)
    chain: list = field(default_factory=list)


def _load_data(config: dict, val_fraction: float, seed: int, ic, oc) -> tuple[Data, dict]:
    """(encoded data, the raw uint8 splits ``{"train", "validation", "test"}: (x, y)``).  The
    run's own dataset and test split; the validation images come out of its training split."""
    name = config.get("dataset")
    if not name:
        raise UserError("config.json names no dataset")
    ds = load_dataset(name, train_per_class=config.get("train_per_class"),
                      seed=int(config.get("seed", 0)))
    x_tr, y_tr, x_val, y_val = split_validation(ds.x_train, ds.y_train, val_fraction, seed)
    raw = {"train": (x_tr, y_tr), "validation": (x_val, y_val), "test": (ds.x_test, ds.y_test)}
    return Data(encode(ic, x_tr), y_tr, encode(ic, x_val), y_val, encode(ic, ds.x_test),
                ds.y_test, oc), raw


def _open_run(directory: Path, val_fraction: float, seed: int, progress: bool,
              ctx: Context = SINGLE) -> tuple:
    """The run's model, config, codes, data and loop settings: a run that kept a validation
    split out of its training (config ``val_fraction`` / ``val_seed``) is measured on that one."""
    model, config = load_model(directory)
    ic, oc = codes_of(config)
    held_out = config.get("val_fraction") is not None and config.get("val_seed") is not None
    if held_out:
        val_fraction, val_seed = float(config["val_fraction"]), int(config["val_seed"])
    else:
        val_seed = seed
    data, raw = _load_data(config, val_fraction, val_seed, ic, oc)
    train_cfg = config.get("train") or {}
    cfg = LoopConfig(batch_size=int(train_cfg.get("batch_size", 64)),
                     weight_decay=float(train_cfg.get("weight_decay", 1e-4)),
                     max_shift=int(train_cfg.get("max_shift", 2)), progress=bars(progress),
                     ctx=ctx)
    if tuple(data.x_val.shape[1:]) != tuple(model.input_shape):
        raise UserError(f"dataset {config['dataset']} gives inputs of shape "
                        f"{tuple(data.x_val.shape[1:])}, the model expects {model.input_shape}")
    return model, config, ic, oc, data, raw, cfg, held_out, val_fraction, val_seed


def open_job(directory: Path, options: dict, hs: HeatSettings, progress: bool,
             ctx: Context = SINGLE) -> Job:
    """Load the run and its data, build the reference and the network heating starts from
    (``options``: the command's settings: seed, val_fraction, ref_epochs, reference,
    noise_margin, objective, min_bits, max_bits, max_act_bits, distill).  ``ctx``: the device
    and data-parallel ranks every training loop of the job runs on (``job.cfg.ctx``); every
    rank measures and decides alike (the same state, the same validation images)."""
    seed = int(options["seed"])
    model, config, ic, oc, data, raw, cfg, held_out, val_fraction, val_seed = _open_run(
        Path(directory), float(options["val_fraction"]), seed, progress, ctx)
    job = Job(Path(directory), config, ic, oc, data, raw["validation"][0], cfg, held_out,
              val_fraction, val_seed, seed, hs=hs, z=float(options["noise_margin"]),
              options=dict(options), raw=raw)
    torch.manual_seed(seed)
    job.gen = torch.Generator().manual_seed(seed)
    job.model = model  # start() reads job.model / job.data / job.config
    confirm = split_confirmation(data, float(options.get("confirm_fraction", 0.0)), val_seed)
    if confirm is not None:
        job.data, job.confirm = confirm
    against = options.get("reference", "float")
    job.model, job.reference, job.refs = start(job, options["ref_epochs"], seed, against)
    if job.confirm is not None:
        job.confirm_refs = reference_accuracy(job.model, job.confirm, oc, against)
    if options.get("distill", 0.0) > 0:
        teacher = copy.deepcopy(job.model)
        teacher.set_mode("float")
        teacher.eval()
        for part in (job.data, job.confirm):  # the confirmation part never trains, but
            if part is not None:               # shares the Data type: keep them alike
                part.teacher, part.kd = teacher, float(options["distill"])
    set_step_rule(job.model, "mse")
    job.start_state = copy.deepcopy(job.model.state_dict())
    job.cm = cost_model(job.model, options["objective"], MAX_BITS)
    job.lo, job.hi = bounds(job.cm, job.model, options["min_bits"], options["max_bits"],
                            options["max_act_bits"])
    return job


def split_confirmation(data: Data, fraction: float, seed: int) -> tuple[Data, Data] | None:
    """(search part, confirmation part) of ``data``'s validation images: ``fraction`` of them,
    stratified and seeded (:func:`heatq.data.split_validation` on the indices), kept for the
    final check only; None for fraction 0."""
    if fraction <= 0:
        return None
    idx = np.arange(len(data.y_val))
    search_idx, _, confirm_idx, _ = split_validation(idx[:, None], data.y_val, fraction, seed)
    s_i, c_i = search_idx[:, 0], confirm_idx[:, 0]
    if not len(s_i) or not len(c_i):
        raise UserError(f"--confirm-fraction {fraction}: {len(idx)} validation images cannot "
                        "be split into a search and a confirmation part")
    part = lambda i: replace(data, x_val=data.x_val[torch.from_numpy(i)],  # noqa: E731
                             y_val=data.y_val[i])
    return part(s_i), part(c_i)


def _search(job: Job, constraint: Constraint, bar) -> Search:
    return Search(job.model, job.data, job.cm, constraint, job.options["finetune_epochs"],
                  5e-4, job.hs.soft_bits, job.cfg, job.gen, bar)


def search_point(job: Job, max_acc_drop: float, after: Point | None = None,
                 strict: bool = False) -> Point:
    """Heat and finalise for ``max_acc_drop``; with ``after`` (a point of a tighter bound,
    feasible here too) skip heating and peel on from its network.  Then :func:`choose`."""
    constraint = job.constraint(max_acc_drop)
    quench, ft = job.options["quench_epochs"], job.options["finetune_epochs"]
    history, heated_bits, snapshot = [], {}, None
    with tqdm(desc=f"finalising ({max_acc_drop} pt)", disable=not job.cfg.progress,
              leave=False) as bar:
        if after is None:
            job.model.load_state_dict(job.start_state)
            heated_bits, history, snapshot = heat_phase(job.model, job.data, job.cm, constraint,
                                                        job.lo, job.hi, job.hs, job.cfg,
                                                        job.gen)
            search = _search(job, constraint, bar)
            finalise(search, heated_bits, snapshot, job.lo, job.hi, job.options["solver"],
                     quench, ft)
        else:
            job.model.load_state_dict(after.state)  # the search starts from its bits
            search = _search(job, constraint, bar)
            finalise(search, None, None, job.lo, job.hi, job.options["solver"], quench, ft)
    job.model.load_state_dict(search.state)
    heated = measure(job.model, job.final_data, job.oc, job.final_refs)
    point = Point(max_acc_drop, copy.deepcopy(search.state), dict(search.bits), heated, {},
                  heated, search.trials, history, heated_bits, snapshot, dict(search.bits),
                  chain=search.chain)
    return choose(job, point, job.final_constraint(max_acc_drop), strict)


def _candidates(job: Job, point: Point, strict: bool):
    """The fallbacks, in order: (name, state, bits) of the search's earlier accepted steps
    (latest first); unless ``strict``, the source run and the network heating started from,
    each only when its widths are within the bounds, and that network at
    :func:`fallback_bits`."""
    for bits, state in reversed(point.chain[:-1]):
        yield "heated (an earlier step of the search)", state, bits
    if strict:
        return
    src, _ = load_model(job.directory)
    out = [("source run (unheated)", src.state_dict()),
           ("start network (the reference at the run's widths, unheated)", job.start_state)]
    for name, state in out:
        job.model.load_state_dict(state)
        bits = {k: int(dict(job.model.steps())[k].bits) for k in job.cm.knobs}
        if all(job.lo[k] <= b <= job.hi[k] for k, b in bits.items()):
            yield name, copy.deepcopy(state), bits
    job.model.load_state_dict(job.start_state)
    wide = fallback_bits(job)
    if any(int(dict(job.model.steps())[k].bits) != wide[k] for k in job.cm.knobs):
        set_bits(job.model, wide)
        yield (f"start network at {max(wide.values())} bits (unheated)",
               copy.deepcopy(job.model.state_dict()), wide)


FALLBACK_BITS = 8


def fallback_bits(job: Job) -> dict[str, int]:
    """The widths of the last fallback: the start network (the float reference) at
    :data:`FALLBACK_BITS` bits wherever the user set no cap (``--max-bits`` for weights,
    ``--max-act-bits`` for activations), else at the cap: nearly the float network itself, so
    it meets a bound against float unless the user's caps forbid it."""
    capped = {"w": job.options.get("max_bits") is not None,
              "a": job.options.get("max_act_bits") is not None}
    return {k: job.hi[k] if capped["w" if k in job.cm.weighted else "a"]
            else max(job.hi[k], FALLBACK_BITS) for k in job.cm.knobs}


def choose(job: Job, point: Point, constraint: Constraint, strict: bool) -> Point:
    """Set ``point``'s network to the first of heated / earlier heated steps / source run /
    start network that meets ``constraint``; raise :class:`NoFeasibleNetwork` when none does
    (``strict``: only heated networks count)."""
    v = constraint.judge(point.heated["acc_val"], point.heated["ok"])
    tried = [f"heated: drop {v.drop:.2f} + margin {v.margin:.2f} pt"]
    if v.met:
        point.exported = {"network": "heated", "reason": (
            f"the fewest bits found within {constraint.max_acc_drop} pt of the reference "
            f"(validation drop {v.drop:.2f} pt + margin {v.margin:.2f} pt)")}
        return point
    for name, state, bits in _candidates(job, point, strict):
        job.model.load_state_dict(state)
        m = measure(job.model, job.final_data, job.oc, job.final_refs)
        c = constraint.judge(m["acc_val"], m["ok"])
        tried.append(f"{name.split(' (')[0]}: drop {c.drop:.2f} + margin {c.margin:.2f} pt")
        if c.met:
            point.state, point.bits, point.measured = copy.deepcopy(state), bits, m
            point.exported = {"network": name, "reason": (
                f"the heated network does not meet the constraint ({tried[0]}); {tried[-1]} "
                f"meets it")}
            return point
    raise NoFeasibleNetwork(
        f"no network within the bit bounds meets validation drop + margin <= "
        f"{constraint.max_acc_drop} pt ({'; '.join(tried)}); nothing written. Allow a larger "
        "--max-acc-drop, a smaller --noise-margin or more bits (--max-bits, --max-act-bits)"
        + ("" if strict else ", or heat against --reference start"))
