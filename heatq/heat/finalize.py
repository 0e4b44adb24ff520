"""Integer finalisation: from heated continuous bits to the fewest integer bits that keep the
validation constraint, by greedy bit-peeling or by an integer program (PuLP / CBC).

Both solvers are written over two callbacks so the same code runs on a real network and on a
toy sensitivity table (the tests):

* ``probe(bits) -> harm``: a cheap estimate of the damage of ``bits`` (the real one: increase of
  the validation loss of the current network rounded to ``bits``, no training);
* ``accept(bits) -> bool``: the real test (the real one: fine-tune briefly at ``bits``, then
  ``acc_drop_val <= delta`` measured exactly; on success the fine-tuned network becomes the
  current one).

Greedy bit-peeling lowers, one bit at a time, the layer with the least harm per unit of cost
saved; a layer whose step breaks the constraint is frozen; it ends when no layer can go lower.
The ILP picks one width per layer minimising the cost subject to ``sum of measured per-layer
harms <= budget`` (bilinear bops terms linearised), and a geometric bisection on the budget,
each solution checked with ``accept``, finds the largest budget whose solution still holds.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Callable

Bits = dict[str, int]


def _key(bits: Bits) -> tuple:
    return tuple(sorted(bits.items()))


def _best_move(cur: Bits, cands: list[str], step: int,
               score: Callable[[Bits], tuple[float, float]]) -> tuple[str, Bits]:
    """The knob ``k`` of ``cands`` (and the bits ``cur`` with ``k`` moved by ``step``) whose
    move has the lowest ``score``; ties by the second score, then the knob name."""
    scored = []
    for k in cands:
        nxt = {**cur, k: cur[k] + step}
        scored.append((*score(nxt), k, nxt))
    scored.sort(key=lambda s: (s[0], s[1], s[2]))
    return scored[0][2], scored[0][3]


def greedy_peel(start: Bits, min_bits: Bits, cost: Callable[[Bits], float],
                probe: Callable[[Bits], float], accept: Callable[[Bits], bool],
                log: list | None = None, retry: Callable[[Bits], bool] | None = None) -> Bits:
    """Greedy bit-peeling from a feasible ``start``; returns the last accepted bits.
    ``retry`` (e.g. a longer fine-tune) gets a second chance at a step ``accept`` refused
    before its layer is frozen."""
    cur, frozen = dict(start), set()
    while True:
        cands = [k for k in cur if k not in frozen and cur[k] > min_bits[k]]
        if not cands:
            return cur
        base, c0 = probe(cur), cost(cur)

        def score(nxt: Bits) -> tuple[float, float]:  # harm per unit of cost saved
            saved = c0 - cost(nxt)
            harm = max(0.0, probe(nxt) - base)
            return harm / saved if saved > 0 else math.inf, -saved

        k, nxt = _best_move(cur, cands, -1, score)
        ok = accept(nxt)
        if not ok and retry is not None:
            ok = retry(nxt)
        if log is not None:
            log.append({"solver": "greedy", "layer": k, "bits": dict(nxt), "accepted": ok})
        if ok:
            cur = nxt
        else:
            frozen.add(k)


def greedy_raise(start: Bits, max_bits: Bits, cost: Callable[[Bits], float],
                 probe: Callable[[Bits], float], accept: Callable[[Bits], bool],
                 log: list | None = None) -> Bits | None:
    """Repair an infeasible start: raise, one bit at a time, the layer with the largest harm
    reduction per unit of cost added, until ``accept``; None if every layer reaches its
    maximum first."""
    cur = dict(start)
    while True:
        cands = [k for k in cur if cur[k] < max_bits[k]]
        if not cands:
            return None
        base, c0 = probe(cur), cost(cur)

        def score(nxt: Bits) -> tuple[float, float]:  # harm reduction per unit of cost added
            added = max(cost(nxt) - c0, 1e-12)
            return -(base - probe(nxt)) / added, added

        k, cur = _best_move(cur, cands, 1, score)
        ok = accept(cur)
        if log is not None:
            log.append({"solver": "raise", "layer": k, "bits": dict(cur), "accepted": ok})
        if ok:
            return cur


def solve_ilp(domains: dict[str, list[int]], harm: dict[str, dict[int, float]], budget: float,
              lin: dict[str, float], quad: dict[tuple[str, str], float] | None = None,
              act: Callable[[int], float] = lambda b: b) -> Bits | None:
    """Minimise ``sum lin[k] b_k + sum quad[j,k] b_j act(b_k)`` over one width ``b_k`` in
    ``domains[k]`` per knob, subject to ``sum harm[k][b_k] <= budget`` (PuLP, CBC).
    Returns the widths, or None when no choice fits the budget."""
    with warnings.catch_warnings():  # PuLP 3 warns about its 4.0 API on every variable
        warnings.simplefilter("ignore", DeprecationWarning)
        return _solve_ilp(domains, harm, budget, lin, quad, act)


def _solve_ilp(domains, harm, budget, lin, quad, act):
    import pulp

    prob = pulp.LpProblem("heatq_bits", pulp.LpMinimize)
    names = {k: f"k{i}" for i, k in enumerate(domains)}
    x = {(k, b): pulp.LpVariable(f"x_{names[k]}_{b}", cat="Binary")
         for k, bs in domains.items() for b in bs}
    objective = [lin.get(k, 0.0) * b * x[k, b] for (k, b) in x]
    for (j, k), c in (quad or {}).items():
        for bj in domains[j]:
            for bk in domains[k]:
                z = pulp.LpVariable(f"z_{names[j]}_{bj}_{names[k]}_{bk}", lowBound=0)
                prob += z >= x[j, bj] + x[k, bk] - 1
                objective.append(c * bj * act(bk) * z)
    prob += pulp.lpSum(objective)
    for k, bs in domains.items():
        prob += pulp.lpSum(x[k, b] for b in bs) == 1
    prob += pulp.lpSum(harm[k][b] * x[k, b] for (k, b) in x) <= budget
    status = prob.solve(pulp.PULP_CBC_CMD(msg=False))
    if pulp.LpStatus[status] != "Optimal":
        return None
    return {k: max(bs, key=lambda b: x[k, b].value() or 0.0) for k, bs in domains.items()}


def monotone_harm(raw: dict[int, float]) -> dict[int, float]:
    """Clip measured harms at 0 and make them non-increasing in the bits (one more bit never
    hurts; measurement noise otherwise misleads the ILP)."""
    out, run = {}, 0.0
    for b in sorted(raw, reverse=True):
        run = max(run, raw[b], 0.0)
        out[b] = run
    return out


def brute_force(domains: dict[str, list[int]], harm: dict[str, dict[int, float]], budget: float,
                cost: Callable[[Bits], float]) -> Bits | None:
    """Exhaustive reference for :func:`solve_ilp` (small cases only)."""
    keys, best, best_cost = list(domains), None, math.inf
    for combo in itertools.product(*(domains[k] for k in keys)):
        bits = dict(zip(keys, combo))
        if sum(harm[k][bits[k]] for k in keys) <= budget + 1e-9:
            c = cost(bits)
            if c < best_cost - 1e-9:
                best, best_cost = bits, c
    return best


def ilp_search(start: Bits, domains: dict[str, list[int]], harm: dict[str, dict[int, float]],
               lin: dict[str, float], quad: dict[tuple[str, str], float],
               cost: Callable[[Bits], float], accept: Callable[[Bits], bool],
               iterations: int = 7, log: list | None = None,
               act: Callable[[int], float] = lambda b: b) -> Bits:
    """Bisection on the harm budget (geometric), each ILP solution checked with ``accept``.
    ``start`` must be feasible; returns the cheapest accepted bits."""
    best, best_cost = dict(start), cost(start)
    hi = sum(max(h.values()) for h in harm.values())
    positive = [v for h in harm.values() for v in h.values() if v > 0]
    lo = min(positive) / 4 if positive else 0.0
    if hi <= 0:
        lo = hi = 0.0
    tried: dict[tuple, bool] = {}
    for _ in range(iterations):
        budget = math.sqrt(lo * hi) if lo > 0 else hi
        bits = solve_ilp(domains, harm, budget, lin, quad, act)
        if bits is None:
            lo = budget
            continue
        key = _key(bits)
        if key not in tried:
            if cost(bits) >= best_cost:  # nothing to gain: treat as feasible, look further
                tried[key] = True
            else:
                tried[key] = accept(bits)
                if log is not None:
                    log.append({"solver": "ilp", "budget": budget, "bits": dict(bits),
                                "accepted": tried[key]})
                if tried[key]:
                    best, best_cost = dict(bits), cost(bits)
        if tried[key]:
            lo = budget
        else:
            hi = budget
        if hi - lo <= 1e-9 * max(1.0, hi):
            break
    return best
