"""The accuracy constraint of ``heatq heat``, with its statistical noise handled explicitly.

The constraint is a bound on the accuracy drop against the reference network, measured on the
validation images: ``drop = 100 * (acc_ref - acc)`` points.  On ``n`` validation images the
measured drop is noisy: with ``b`` images the reference gets right and the candidate wrong and
``c`` the other way (the *discordant* pairs; the concordant ones cancel), the paired
(McNemar) estimate of the drop's standard error is

    se = 100 * sqrt((b + c) - (b - c)**2 / n) / n      points,

far smaller than the difference of two independent accuracies' errors when the two networks
mostly agree.  A candidate *meets* the constraint when the drop's one-sided upper confidence
bound is within it:

    drop + z * se <= max_acc_drop

``z`` (``--noise-margin``) is the normal quantile of the confidence: 0 compares the measured
drop alone (a coin flip at the boundary), 1 is one-sided 84 %, 1.645 is 95 %.  This is the
normal-approximation non-inferiority test on paired proportions (McNemar's test shifted by the
margin).  ``z * se`` (points) is the *margin* each decision used and is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def discordant(ref_ok: np.ndarray, ok: np.ndarray) -> tuple[int, int]:
    """(b, c): samples the reference gets right and the candidate wrong, and the reverse."""
    ref_ok, ok = np.asarray(ref_ok, dtype=bool), np.asarray(ok, dtype=bool)
    if ref_ok.shape != ok.shape:
        raise ValueError(f"per-sample correctness of different lengths: {ref_ok.shape} vs "
                         f"{ok.shape}")
    return int((ref_ok & ~ok).sum()), int((~ref_ok & ok).sum())


def paired_se(ref_ok: np.ndarray | None, ok: np.ndarray) -> float:
    """Standard error, in points, of the accuracy difference of two classifiers on the same
    samples (McNemar's paired estimate above); 0 without a reference mask or samples."""
    if ref_ok is None or not len(ok):
        return 0.0
    b, c = discordant(ref_ok, ok)
    n = len(ok)
    return 100.0 * math.sqrt(max(0.0, (b + c) - (b - c) ** 2 / n)) / n


@dataclass(frozen=True)
class Verdict:
    """One measurement against the constraint (points)."""

    drop: float
    se: float
    margin: float
    met: bool

    @property
    def upper(self) -> float:
        """The drop's one-sided upper confidence bound: ``drop + margin``."""
        return self.drop + self.margin


@dataclass(frozen=True)
class Constraint:
    """``drop + z * se <= max_acc_drop`` against the reference's per-sample correctness
    ``ref_ok`` (bool [n_val]) and its accuracy ``ref_acc`` (a fraction)."""

    max_acc_drop: float
    z: float
    ref_acc: float
    ref_ok: np.ndarray | None

    def judge(self, acc: float, ok: np.ndarray | None) -> Verdict:
        """The verdict on a candidate of validation accuracy ``acc`` (a fraction) and
        per-sample correctness ``ok``."""
        drop = 100.0 * (self.ref_acc - acc)
        se = paired_se(self.ref_ok, ok) if ok is not None else 0.0
        margin = self.z * se
        return Verdict(drop, se, margin, bool(drop + margin <= self.max_acc_drop + 1e-9))

    def describe(self) -> dict:
        """The summary's record of the rule."""
        return {"rule": "drop + z * se <= max_acc_drop (paired, McNemar standard error)",
                "z": self.z, "confidence": one_sided_confidence(self.z),
                "n_val": None if self.ref_ok is None else int(len(self.ref_ok))}


def one_sided_confidence(z: float) -> float:
    """P(N(0,1) <= z): the one-sided confidence of the margin ``z``."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
