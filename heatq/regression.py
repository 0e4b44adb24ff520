"""Regression by codes: a continuous target quantised to K ordinal levels.

A regression dataset (``heatq.data``, e.g. ``diabetes:16``) labels each sample with its level
index 0..K-1, so the classification pipeline trains it unchanged: each level is a codeword of
an output code (``thermometer``, ``gray``, ``random:L``, ... in :mod:`heatq.codes`), the loss
is BCE and the hardware output is the Hamming-decoded level index (the IR's ``class``, an
unsigned integer 0..K-1).  This module holds what turns levels back into target units:

* :class:`TargetLevels`: the level edges and centres (float64, target units) built from the
  training targets only, plus the continuous targets of both splits;
* :func:`mae` / :func:`rmse`: errors in target units of predicted level indices;
* :func:`expected_value_torch`: "expected value" decoding of code logits (reporting only; the
  hardware never computes it).

Levels are *quantiles* of the training targets: edge j (j = 0..K-2) is the (j+1)/K quantile
(numpy's default linear interpolation), and a target t has level ``#{edges <= t}``; so every
level holds about N/K training samples (balanced classes).  A level's centre is the mean of
the training targets in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from heatq.errors import UserError

__all__ = [
    "TargetLevels",
    "quantile_levels",
    "mae",
    "rmse",
    "is_thermometer",
    "expected_level_torch",
    "expected_value_torch",
    "regression_metrics",
    "run_mae",
]


def _frozen(a, dtype) -> np.ndarray:
    a = np.array(a, dtype=dtype, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class TargetLevels:
    """K ordinal levels of a continuous target.

    ``edges``: float64 [K-1], strictly increasing; ``centres``: float64 [K] (target units);
    ``t_train`` / ``t_test``: the continuous targets (float64) of the dataset's train / test
    samples, in the dataset's order.  Arrays are stored as read-only copies.
    """

    edges: np.ndarray = field(repr=False)
    centres: np.ndarray = field(repr=False)
    t_train: np.ndarray = field(repr=False)
    t_test: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        for name in ("edges", "centres", "t_train", "t_test"):
            object.__setattr__(self, name, _frozen(getattr(self, name), np.float64))
        k = len(self.centres)
        if k < 2 or self.edges.shape != (k - 1,) or (np.diff(self.edges) <= 0).any():
            raise ValueError(f"need K >= 2 centres and K-1 strictly increasing edges, got "
                             f"{len(self.centres)} centres and edges {self.edges.tolist()}")

    @property
    def n_levels(self) -> int:
        """K, the number of levels."""
        return int(len(self.centres))

    def level_of(self, t: np.ndarray) -> np.ndarray:
        """Level index (int64) of each target value: the number of edges <= t."""
        return np.searchsorted(self.edges, np.asarray(t, dtype=np.float64), side="right").astype(np.int64)

    def subset_train(self, keep: np.ndarray) -> "TargetLevels":
        """The same levels with the training targets ``t_train[keep]``."""
        return TargetLevels(self.edges, self.centres, self.t_train[keep], self.t_test)


def quantile_levels(t_train: np.ndarray, t_test: np.ndarray, k: int, what: str) -> TargetLevels:
    """Levels from the training targets: edges at the (j+1)/k quantiles, centres the means of
    the training targets per level (see the module doc).  UserError naming ``what`` when two
    edges coincide or a level has no training sample (too many levels for these targets)."""
    t_train = np.asarray(t_train, dtype=np.float64)
    edges = np.quantile(t_train, np.arange(1, k) / k)
    if (np.diff(edges) <= 0).any():
        raise UserError(f"{what}: {k} levels are too many for {len(t_train)} training targets "
                        "(two quantile edges coincide)")
    level = np.searchsorted(edges, t_train, side="right")
    counts = np.bincount(level, minlength=k)
    if (counts == 0).any():
        raise UserError(f"{what}: level {int(np.argmin(counts))} of {k} has no training target")
    centres = np.bincount(level, weights=t_train, minlength=k) / counts
    return TargetLevels(edges, centres, t_train, t_test)


def _errors(pred_levels: np.ndarray, t_true: np.ndarray, centres: np.ndarray) -> np.ndarray:
    pred = np.asarray(pred_levels)
    t_true = np.asarray(t_true, dtype=np.float64)
    if pred.shape != t_true.shape or pred.ndim != 1:
        raise ValueError(f"predicted levels {pred.shape} and targets {t_true.shape} must be [N]")
    if pred.size and (pred.min() < 0 or pred.max() >= len(centres)):
        raise ValueError(f"predicted levels outside 0..{len(centres) - 1}")
    return np.asarray(centres, dtype=np.float64)[pred.astype(np.int64)] - t_true


def mae(pred_levels: np.ndarray, t_true: np.ndarray, centres: np.ndarray) -> float:
    """Mean absolute error in target units of level predictions: ``mean |centres[pred] - t|``."""
    return float(np.abs(_errors(pred_levels, t_true, centres)).mean())


def rmse(pred_levels: np.ndarray, t_true: np.ndarray, centres: np.ndarray) -> float:
    """Root mean squared error in target units: ``sqrt(mean (centres[pred] - t)**2)``."""
    return float(np.sqrt((_errors(pred_levels, t_true, centres) ** 2).mean()))


def is_thermometer(matrix: np.ndarray) -> bool:
    """True when the K x (K-1) code matrix is the thermometer code (row k: k ones, then zeros)."""
    from heatq.codes import thermometer_code

    m = np.asarray(matrix)
    k = m.shape[0]
    return m.shape == (k, k - 1) and np.array_equal(m, thermometer_code(k))


def _level_posterior(logits, matrix):
    """p_k proportional to prod_j P(bit_j = M[k, j]) with P(bit_j = 1) = sigmoid(z_j):
    softmax over k of ``M @ logsigmoid(z) + (1 - M) @ logsigmoid(-z)``; float64 [N, K]."""
    import torch
    import torch.nn.functional as F

    z = logits.detach().to(torch.float64)
    m = torch.tensor(np.array(matrix, dtype=np.float64), device=z.device)
    loglik = F.logsigmoid(z) @ m.T + F.logsigmoid(-z) @ (1 - m).T
    return torch.softmax(loglik, dim=1)


def expected_level_torch(logits, matrix):
    """Expected level (float64 [N]) from code logits [N, L]: for the thermometer code the sum
    of the bit probabilities ``sum_j sigmoid(z_j)`` (bit j says level > j); for any other code
    ``sum_k k * p_k`` with the codeword posterior p_k of the bit likelihoods."""
    import torch

    if is_thermometer(matrix):
        return torch.sigmoid(logits.detach().to(torch.float64)).sum(dim=1)
    p = _level_posterior(logits, matrix)
    return p @ torch.arange(p.shape[1], dtype=torch.float64, device=p.device)


def expected_value_torch(logits, matrix, centres):
    """Expected target value (float64 [N], target units) from code logits [N, L]: thermometer:
    ``c_0 + sum_j sigmoid(z_j) * (c_{j+1} - c_j)`` (with c_k = k this is the sum of bit
    probabilities); any other code: ``sum_k p_k * c_k``."""
    import torch

    c = torch.tensor(np.array(centres, dtype=np.float64), device=logits.device)
    if is_thermometer(matrix):
        return c[0] + torch.sigmoid(logits.detach().to(torch.float64)) @ (c[1:] - c[:-1])
    return _level_posterior(logits, matrix) @ c


def regression_metrics(logits, pred_levels: np.ndarray, ir_levels: np.ndarray | None,
                       matrix: np.ndarray, levels: TargetLevels) -> dict:
    """The regression entries of a run's summary on the test split: ``mae`` / ``rmse`` of the
    decoded levels ``pred_levels`` (the quantised network), ``mae_ir`` of the IR's
    class output ``ir_levels``, ``mae_expected`` of expected-value decoding of ``logits``,
    ``mae_floor`` (every sample at its true level's centre: the quantisation error alone),
    and the ``levels`` (centres) and ``level_edges``, all in target units."""
    t = levels.t_test
    expected = expected_value_torch(logits, matrix, levels.centres).cpu().numpy()
    out = {"mae": mae(pred_levels, t, levels.centres),
           "rmse": rmse(pred_levels, t, levels.centres),
           "mae_expected": float(np.abs(expected - t).mean()),
           "mae_floor": mae(levels.level_of(t), t, levels.centres),
           "levels": levels.centres.tolist(), "level_edges": levels.edges.tolist()}
    if ir_levels is not None:
        out["mae_ir"] = mae(ir_levels, t, levels.centres)
    return out


def run_mae(run_dir) -> dict:
    """MAE / RMSE in target units of a run directory's IR ``class`` output (e.g. a heated or
    split run, whose summaries report level accuracy only) on its dataset's test split;
    UserError when the run's dataset is not a regression one."""
    from heatq.codes import parse_input_code
    from heatq.inputs import dataset_of
    from heatq.pipeline import ir_classes
    from heatq.rundir import load_graph

    graph = load_graph(run_dir)
    ds = dataset_of(dict(graph.meta), None, str(run_dir))
    if ds.targets is None:
        raise UserError(f"{run_dir}: dataset {ds.name} is not a regression dataset")
    codes = parse_input_code(graph.meta["input_code"]).encode_numpy(ds.x_test).astype(np.int64)
    levels = ir_classes(graph, codes)
    t, c = ds.targets.t_test, ds.targets.centres
    return {"n": len(t), "mae": mae(levels, t, c), "rmse": rmse(levels, t, c)}
