"""Shared fixtures: small trained runs (seconds, not minutes) reused across test files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from heatq import pipeline

from tools import require_tool

torch.set_num_threads(1)


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_tool(*names): executables the test needs "
                            "(tests/tools.py: skipped when missing, failed in CI)")


def pytest_runtest_setup(item):
    """Check every ``needs_tool`` mark before the fixtures are built (a missing tool skips the
    test, or fails it when ``CI=true``)."""
    for mark in item.iter_markers("needs_tool"):
        for name in mark.args:
            require_tool(name)


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
