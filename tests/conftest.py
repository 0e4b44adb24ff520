"""Shared fixtures: small trained runs (seconds, not minutes) reused across test files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from heatq import pipeline

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cnn_run(tmp_path_factory) -> Path:
    """seed-cnn on 50 mnist5k images per class, 1 float + 1 QAT epoch."""
    out = tmp_path_factory.mktemp("runs") / "cnn"
    pipeline.train_run(out, "mnist5k", "seed-cnn", "bitplane:4", "hadamard:15", 4, 4,
                       epochs=1, qat_epochs=1, seed=0, train_per_class=50, progress=False)
    return out


@pytest.fixture(scope="session")
def mlp_run(tmp_path_factory) -> Path:
    """MLP on sklearn digits (8x8), thermometer input code, random output code, 3-bit."""
    out = tmp_path_factory.mktemp("runs") / "mlp"
    pipeline.train_run(out, "digits", "mlp", "thermometer:3", "random:12", 3, 3,
                       epochs=3, qat_epochs=2, seed=1, progress=False)
    return out
