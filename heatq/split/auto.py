"""``heatq split RUN --auto``: per layer, the exact split that minimises an objective.

    heatq split RUN --auto [--objective adder_bits|luts|weight_bits] [--to binary|ternary|B]
                [--layers L1,L2] [--max-acc-drop D] --out DIR

Every candidate is an identity of integer arithmetic (:mod:`heatq.passes.split`), so accuracy
does not change; ``--max-acc-drop D`` first widens and heats the run under that constraint
(:func:`split_then_heat`), then chooses the same way.  The candidates of one product
(DENSE / CONV2D) ``L``:

- weights (when ``L``'s weights are wider than ``--to``): ``bitplane``, ``csd``, ``balanced``
  (the fewest copies K that reach ``--to``; more copies only add products);
- activations (``--to binary`` / ``ternary`` only, when ``L``'s input is wider than 1 bit):
  ``thermometer``, ``bitplane``;
- every pair of the two (``csd+bitplane``: csd weights, bit-plane units); a layer with
  nothing to split has the one candidate ``unchanged``.  A candidate the pass refuses (more
  than 4096 balanced copies or thermometer units) is left out, with the reason.

Each candidate is applied to ``L`` alone and costed with :func:`heatq.split.stats.
layer_figures` (adders from :func:`heatq.passes.lower.lower_products`, each distinct product
lowered once, cached by content across candidates).  The choice is the argmin of the
objective (ties: fewer adder bits, fewer weight bits, then the order above).  The choices are
combined into one graph (activation splits first, then weight splits, the passes' ``layers=``),
which is checked exact (:func:`heatq.split_check.validate_split` on corner vectors: every
original layer equal) and binary where ``--to`` asks.  A layer's cost depends only on its
weights and its input's range, so the per-layer figures add up while no split changes a later
layer's input range; the summary keeps both those sums and the combined graph's own figures.
Objectives: ``adder_bits`` (default), ``luts`` (the LUT + CARRY4 model of
:func:`heatq.split.stats.adder_luts`, plus the threshold comparators of thermometer units),
``weight_bits`` (no lowering).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..ir import IntGraph, IRError, Node
from ..progress import activity
from .options import MAX_BITS, parse_layers, parse_to, selected
from .stats import FIGURES, adder_costs, layer_figures, layer_nodes

OBJECTIVES = ("adder_bits", "luts", "weight_bits")
WEIGHT_KINDS = ("bitplane", "csd", "balanced")
ACT_KINDS = ("thermometer", "bitplane")


@dataclass(frozen=True)
class Candidate:
    """One way to split one product: a weight kind and an activation kind (None: not split)."""

    weights: str | None
    acts: str | None

    @property
    def label(self) -> str:
        return "+".join(k for k in (self.weights, self.acts) if k) or "unchanged"


@dataclass(frozen=True)
class AutoOptions:
    """``--auto``: the ``objective`` (one of OBJECTIVES), ``to`` as in
    :class:`heatq.split.options.SplitOptions`, ``layers`` (None: every product) and ``adders``
    (count adders of the result; always with objective adder_bits)."""

    objective: str
    to: str | int
    layers: tuple[str, ...] | None
    adders: bool = True
    max_acc_drop: float | None = None
    allow_unchanged: bool = False  # split-then-heat's last step: the heated net may be binary

    @property
    def target_bits(self) -> int:
        return {"binary": 1, "ternary": 2}.get(self.to, self.to)  # type: ignore[arg-type]

    def to_json(self) -> dict:
        out = {"auto": True, "objective": self.objective, "to": self.to,
               "layers": list(self.layers) if self.layers is not None else None}
        if self.max_acc_drop is not None:
            out["max_acc_drop"] = self.max_acc_drop
        return out


def parse_auto(objective: str | None, to: str, layers: str | None, weights: str | None,
               acts: str | None, no_adders: bool, max_acc_drop: float | None) -> AutoOptions:
    """The ``--auto`` options, parsed; every mistake one UserError line."""
    if max_acc_drop is not None and not 0 <= max_acc_drop <= 100:
        raise UserError(f"--max-acc-drop must be between 0 and 100 (points), got {max_acc_drop}")
    if weights is not None or acts is not None:
        raise UserError("--auto chooses the weight and activation splits itself; give --auto "
                        "or --weights/--acts, not both")
    objective = "adder_bits" if objective is None else objective
    if objective not in OBJECTIVES:
        raise UserError(f"unknown --objective {objective!r}; choose adder_bits, luts or "
                        "weight_bits")
    if no_adders and objective != "weight_bits":
        raise UserError(f"--no-adders: --objective {objective} counts adders; use --objective "
                        "weight_bits to skip them")
    return AutoOptions(objective, parse_to(to), parse_layers(layers), not no_adders,
                       max_acc_drop)


def _acts_apply(graph: IntGraph, n: Node, opts: AutoOptions, run: str) -> bool:
    """Whether ``n``'s input is split into units (binary / ternary targets, multi-bit
    input); UserError when it would have to be but cannot (signed or too wide)."""
    arg = graph.nodes[n.args[0]]
    if opts.target_bits > 2 or arg.type.width <= 1:
        return False
    if arg.lo < 0 or arg.hi >= 1 << MAX_BITS:
        raise UserError(f"{run} is not quantized: the input of layer {n.name or n.label()} "
                        f"spans {arg.lo}..{arg.hi} (binarizing needs unsigned activations of "
                        f"at most {MAX_BITS} bits)")
    return True


def layer_candidates(graph: IntGraph, n: Node, opts: AutoOptions, run: str
                     ) -> list[Candidate]:
    """The candidates of product ``n`` (module docstring), in the tie-break order."""
    if n.attrs.w_bits > MAX_BITS:
        raise UserError(f"{run} is not quantized: layer {n.name or n.label()} has "
                        f"{n.attrs.w_bits}-bit weights (split takes at most {MAX_BITS})")
    ws = WEIGHT_KINDS if n.attrs.w_bits > opts.target_bits else (None,)
    acts = ACT_KINDS if _acts_apply(graph, n, opts, run) else (None,)
    return [Candidate(w, a) for w in ws for a in acts]


def apply_plan(graph: IntGraph, plan: dict[str, Candidate], to) -> IntGraph:
    """``graph`` with each product ``L`` of ``plan`` split as ``plan[L]`` says: the
    activation splits first (``split_acts(kind, layers=...)``), then the weight splits of the
    products that now compute those layers (``meta["products"]``)."""
    from ..passes.split import split_acts, split_weights

    g = graph
    for kind in ACT_KINDS:
        names = [name for name, c in plan.items() if c.acts == kind]
        if names:
            g = split_acts(g, kind, layers=names)
    for kind in WEIGHT_KINDS:
        names = [name for name, c in plan.items() if c.weights == kind]
        if names:
            parts = sorted({p for name in names for p in _products_of(g, name)})
            g = split_weights(g, kind, to, layers=parts)
    return g


def _products_of(graph: IntGraph, name: str) -> list[str]:
    """The products computing layer ``name`` of the graph an activation split started from:
    ``meta["products"][name]``, or, for a product that was itself a part when the split began
    (a widened run's ``<layer>.part<i>``: ``meta["products"]`` is keyed by the original
    layers), the products below the node now carrying its name."""
    made = graph.meta.get("products") or {}
    if name in made:
        return made[name]
    return [p.name for p in layer_nodes(graph, name)[0]]


def candidate_costs(graph: IntGraph, cands: dict[str, list[Candidate]], opts: AutoOptions,
                    cache: dict, progress: bool = True) -> tuple[dict, dict]:
    """``({layer: {label: figures}}, {layer: {label: why refused}})``: every candidate
    applied to its layer alone and costed (:func:`layer_figures`)."""
    costs: dict[str, dict] = {name: {} for name in cands}
    refused: dict[str, dict] = {name: {} for name in cands}
    todo = [(name, c) for name, cs in cands.items() for c in cs]
    with activity(f"costing {len(todo)} candidate splits", progress) as act:
        for i, (name, c) in enumerate(todo):
            act.note(f"{i + 1}/{len(todo)} {name} {c.label}")
            try:
                g = apply_plan(graph, {name: c}, opts.to) if c.label != "unchanged" else graph
            except IRError as e:
                refused[name][c.label] = str(e)
                continue
            adders = adder_costs(g, None, cache) if opts.adders else None
            costs[name][c.label] = layer_figures(g, name, adders)
    return costs, refused


def _rank(fig: dict, objective: str) -> tuple:
    return (fig[objective], fig["adder_bits"] or 0, fig["weight_bits"])


def choose(costs: dict[str, dict], objective: str) -> dict[str, str]:
    """``{layer: label}``: per layer the candidate of least ``objective`` (then adder bits,
    weight bits, the candidates' order; ``min`` keeps the first of equals)."""
    out = {}
    for name, figs in costs.items():
        if not figs:
            raise UserError(f"layer {name}: every candidate split was refused")
        out[name] = min(figs, key=lambda label: _rank(figs[label], objective))
    return out


def _sum(figs: list[dict]) -> dict:
    return {f: (None if any(x[f] is None for x in figs) else sum(x[f] for x in figs))
            for f in FIGURES}


def uniform_totals(cands: dict[str, list[Candidate]], costs: dict[str, dict]) -> dict:
    """``{label: totals or None}`` of each single uniform split: the same weight kind and
    activation kind in every layer (where the layer has that kind of split; None when a
    layer refused it), summed over the layers."""
    ws = [k for k in WEIGHT_KINDS if any(c.weights == k for cs in cands.values() for c in cs)]
    acts = [k for k in ACT_KINDS if any(c.acts == k for cs in cands.values() for c in cs)]
    ws, acts = ws or [None], acts or [None]
    out = {}
    for w in ws:
        for a in acts:
            figs = []
            for name, cs in cands.items():
                kinds = {(c.weights is not None, c.acts is not None) for c in cs}.pop()
                eff = Candidate(w if kinds[0] else None, a if kinds[1] else None)
                figs.append(costs[name].get(eff.label))
            out[Candidate(w, a).label] = None if None in figs else _sum(figs)
    return out


def check_combined(split: IntGraph, base: IntGraph, plan: dict[str, Candidate],
                   opts: AutoOptions) -> dict:
    """IRError unless ``split`` regroups to ``base`` exactly on corner vectors
    (:func:`validate_split`) and every product computing a planned layer has weights within
    ``--to`` and, where the layer's input was split, a 1-bit input; returns the validation."""
    from ..ir.corners import corner_vectors
    from ..passes.split_common import fits_bits
    from ..split_check import validate_split

    result = validate_split(split, base, corner_vectors(base))
    if not result["all_equal"]:
        bad = [k for k, v in result["layers"].items() if v < 1]
        raise IRError(f"internal error: the combined automatic split differs from the base "
                      f"network in {', '.join(bad)}")
    for name, c in plan.items():
        for p in _products_of(split, name):
            n = split.by_name(p)
            if not fits_bits(n.attrs.weight, opts.target_bits) or (
                    c.acts and split.nodes[n.args[0]].type.width != 1):
                raise IRError(f"internal error: {p} of layer {name} is not split to "
                              f"--to {opts.to}")
    return result


def check_auto(graph: IntGraph, opts: AutoOptions, run: str) -> dict[str, list[Candidate]]:
    """``{layer: candidates}`` of the selected products; UserError (one line, before any
    work) for an unknown layer, a run not quantized for ``--to``, or nothing to split."""
    cands = {n.name: layer_candidates(graph, n, opts, run) for n in selected(graph, opts)}
    if not opts.allow_unchanged and all(c.label == "unchanged" for cs in cands.values()
                                        for c in cs):
        raise UserError(f"nothing to split: the selected layers have weights within --to "
                        f"{opts.to}" + (" and 1-bit inputs" if opts.target_bits <= 2 else ""))
    return cands


def auto_split(graph: IntGraph, opts: AutoOptions, cands: dict[str, list[Candidate]],
               cache: dict, progress: bool = True) -> tuple[IntGraph, dict]:
    """The combined split graph and the ``auto`` part of the summary: candidates, their
    figures per layer, refusals, the choice, its per-layer sum, every uniform split's sum,
    the best uniform one and the ratio of the objective (auto / best uniform)."""
    costs, refused = candidate_costs(graph, cands, opts, cache, progress)
    choice = choose(costs, opts.objective)
    by_label = {c.label: c for cs in cands.values() for c in cs}
    plan = {name: by_label[label] for name, label in choice.items() if label != "unchanged"}
    split = apply_plan(graph, plan, opts.to)
    validation = check_combined(split, graph, plan, opts)
    uniform = uniform_totals(cands, costs)
    feasible = {k: v for k, v in uniform.items() if v is not None}
    best = min(feasible, key=lambda k: _rank(feasible[k], opts.objective))
    total = _sum([costs[name][label] for name, label in choice.items()])
    ref = feasible[best][opts.objective]
    summary = {"objective": opts.objective, "to": opts.to,
               "candidates": {name: [c.label for c in cs] for name, cs in cands.items()},
               "costs": costs, "refused": refused, "choice": choice, "total": total,
               "uniform": uniform, "best_uniform": best,
               "ratio": (total[opts.objective] / ref) if ref else None,
               "validated_on": validation["n_samples"]}
    return split, summary


def _exact_reference(graph: IntGraph, opts: AutoOptions, run: str, progress: bool) -> dict:
    """The exact ``--auto`` of ``graph`` (the run before split-then-heat): its total, every
    uniform split's total and the best uniform one, for the ratio split-then-heat reports."""
    exact = AutoOptions(opts.objective, opts.to, None, opts.adders)
    cands = check_auto(graph, exact, run)
    costs, _ = candidate_costs(graph, cands, exact, {}, progress)
    uniform = {k: v for k, v in uniform_totals(cands, costs).items() if v is not None}
    best = min(uniform, key=lambda k: _rank(uniform[k], opts.objective))
    choice = choose(costs, opts.objective)
    return {"best_uniform": best, "uniform": uniform,
            "auto_total": _sum([costs[n][label] for n, label in choice.items()])}


def _widen_and_heat(run: Path, heated: Path, wide: list[str], opts: AutoOptions, force: bool,
                    progress: bool, heat_options: dict | None) -> None:
    """Steps 1 and 2 of :func:`split_then_heat`: the balanced split of ``wide`` to 2-bit parts
    (a temporary split run next to ``heated``; none when ``wide`` is empty), heated into
    ``heated``."""
    import shutil
    import tempfile

    from ..heat.command import heat
    from .command import split_run
    from .options import SplitOptions

    heated.parent.mkdir(parents=True, exist_ok=True)  # as atomic_dir does for the runs
    tmp = Path(tempfile.mkdtemp(prefix=".heatq-widen-", dir=heated.parent))
    try:
        source = run
        if wide:
            source = tmp / "widened"
            split_run(run, source, SplitOptions("balanced", None, None, "ternary", tuple(wide)),
                      adders=False, progress=progress)
        heat(source, heated, max_acc_drop=opts.max_acc_drop, force=force,
             quiet=not progress, **{"objective": "bops", **(heat_options or {})})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _then_heat_record(run: Path, heated: Path, reference: dict, total: dict,
                      opts: AutoOptions) -> dict:
    """``summary["split_then_heat"]``: the widen map, the heated bits and accuracies, the
    exact reference of the source run and the goal ratio."""
    from ..files import read_json

    hs = read_json(heated / "summary.json")
    ref = reference["uniform"][reference["best_uniform"]][opts.objective]
    return {"max_acc_drop": opts.max_acc_drop, "source_run": os.path.abspath(run),
            "heated_run": os.path.abspath(heated),
            "widen": (read_json(heated / "config.json").get("model") or {}).get("widen"),
            "heated": {k: hs.get(k) for k in ("weight_bits", "act_bits", "constraint_met",
                                              "acc_drop_val", "acc_heated_val", "acc_heated")},
            "exact": reference,
            "ratio_vs_exact_uniform": total[opts.objective] / ref if ref else None}


def split_then_heat(run: Path, out: Path, opts: AutoOptions, force: bool = False,
                    progress: bool = True, heat_options: dict | None = None) -> dict:
    """``--auto --max-acc-drop D``: (1) widen ``run`` by the balanced split to 2-bit weights
    (interface 15) in the products ``--layers`` selects (default all) that are wider: *where*
    to widen; (2) heat it under the constraint (interface 16; ``heatq heat --objective bops``:
    weight bits x activation bits x MACs, what an exact binarization's fan-in grows with;
    ``heat_options`` passed on), kept as ``<out>-heated``; (3) the exact automatic split of
    every product of the heated run to ``opts.to``, into ``out``.  Everything is checked
    before step 1.  Returns the final summary with ``split_then_heat``
    (:func:`_then_heat_record`): the ratio of the result's objective to the best uniform
    *exact* split of ``run``."""
    from ..files import load_graph, prepare_output, read_json, write_json
    from .command import split_run

    run, out = Path(run), Path(out)
    if not run.is_dir():
        raise UserError(f"{run}: no such run directory")
    config, graph = read_json(run / "config.json"), load_graph(run)
    if "split" in config:
        raise UserError(f"{run} is already a split run; split-then-heat starts from a trained "
                        f"or heated run")
    heated = out.with_name(out.name + "-heated")
    check_auto(graph, AutoOptions(opts.objective, opts.to, None, opts.adders), str(run))
    wide = [n.name for n in selected(graph, opts) if n.attrs.w_bits > 2]
    prepare_output(out, "run", force, inputs=(run,))
    prepare_output(heated, "run", force, inputs=(run,))
    reference = _exact_reference(graph, opts, str(run), progress)
    _widen_and_heat(run, heated, wide, opts, force, progress, heat_options)
    final = AutoOptions(opts.objective, opts.to, None, opts.adders, allow_unchanged=True)
    summary = split_run(heated, out, final, force=force, adders=opts.adders, progress=progress)
    summary["split_then_heat"] = _then_heat_record(run, heated, reference,
                                                   summary["auto"]["total"], opts)
    summary["split"] = opts.to_json()
    write_json(out / "summary.json", summary)
    write_json(out / "config.json", {**read_json(out / "config.json"), "split": opts.to_json()})
    return summary


__all__ = ["AutoOptions", "auto_split", "check_auto", "check_combined", "Candidate", "parse_auto",
           "layer_candidates", "apply_plan", "candidate_costs", "choose", "uniform_totals",
           "OBJECTIVES", "split_then_heat"]
