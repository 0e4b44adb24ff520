"""Every executor on the trained, heated seed CNN (make demo's ``heatq-out/run``): the same
mnist5k test images plus the corner vectors through each registered runner, every output of
every vector equal to the reference interpreter's (:func:`heatq.ir.run`), 0 mismatches.

Images per runner: 1000 (c, hls, torch, qonnx, verilator, interp-lowered, hls4ml), 20 for
Icarus (an event-driven simulation: about a second per image); ``N_IMAGES`` below.  The run
directory is ``$HEATQ_DEMO_OUT/run`` when ``HEATQ_DEMO_OUT`` is set, else make demo's
``<repo>/heatq-out/run`` (missing: skipped, failed with ``CI=true``).

Each test prints its row of the agreement table (``pytest -s``); the whole table:

    .venv/bin/python tests/test_executors_trained.py [RUN_DIR] [RUNNER ...]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from heatq.ir import load, run
from heatq.ir.testing import corner_vectors
from heatq_export.runners import RUNNERS

from tools import demo_run, require_tool

EXECUTORS = ("c", "hls", "icarus", "verilator", "interp-lowered", "torch", "qonnx", "hls4ml")
N_IMAGES = {"icarus": 20}  # every other runner: 1000
DEFAULT_N = 1000


def _default_run() -> Path:
    """The heated seed CNN's run directory for the script (see the module docstring)."""
    base = os.environ.get("HEATQ_DEMO_OUT") or Path(__file__).resolve().parents[1] / "heatq-out"
    return Path(base) / "run"


def vectors(graph, n_images: int) -> tuple[np.ndarray, int]:
    """The first ``n_images`` mnist5k test images encoded like the graph's input, then the
    corner vectors (those heatq sim adds); returns ``(x, number of corner vectors)``."""
    from heatq_sim.data import dataset_inputs

    corners = corner_vectors(graph)
    return np.concatenate([dataset_inputs(graph, graph.meta.get("dataset", "mnist5k"),
                                          n_images), corners]), len(corners)


def agreement(runner_name: str, graph, out: Path, n_images: int | None = None) -> dict:
    """Export ``graph`` for ``runner_name`` into ``out``, run it on the images and corners and
    compare every output with the interpreter: a row of the agreement table (mismatches =
    vectors with any output element different)."""
    runner = RUNNERS[runner_name]
    n = N_IMAGES.get(runner_name, DEFAULT_N) if n_images is None else n_images
    x, n_corner = vectors(graph, n)
    t0 = time.monotonic()
    runner.export(graph, out)
    t1 = time.monotonic()
    got = runner.run(out, graph, x)
    t2 = time.monotonic()
    want = run(graph, x)
    assert len(got) == len(want) == len(graph.outputs)
    bad = np.zeros(len(x), dtype=bool)
    for g, w in zip(got, want):
        assert g.shape == w.shape, (runner_name, g.shape, w.shape)
        bad |= (g.astype(object) != w.astype(object)).reshape(len(x), -1).any(axis=1)
    return {"runner": runner_name, "images": n, "corners": n_corner,
            "mismatches": int(bad.sum()), "first_mismatch": int(np.argmax(bad)) if bad.any()
            else None, "export_s": round(t1 - t0, 1), "run_s": round(t2 - t1, 1)}


def row_text(r: dict) -> str:
    return (f"{r['runner']:<15} {r['images']:>6} + {r['corners']:<3} {r['mismatches']:>10} "
            f"{r['export_s']:>9.1f} {r['run_s']:>8.1f}")


HEADER = f"{'runner':<15} {'images':>6} + {'c.':<3} {'mismatches':>10} {'export s':>9} {'run s':>8}"


@pytest.mark.slow
@pytest.mark.parametrize("runner_name", EXECUTORS)
def test_trained_seed_cnn_every_executor_agrees(runner_name, tmp_path):
    src = demo_run()
    assert runner_name in RUNNERS, f"the {runner_name} runner is not registered"
    for tool in RUNNERS[runner_name].tools:
        require_tool(tool, f"the {runner_name} runner")
    graph = load(src / "model.ir.json")
    r = agreement(runner_name, graph, tmp_path / "export")
    print("\n" + HEADER + "\n" + row_text(r))
    assert r["mismatches"] == 0, r
    # real digits the network tells apart: the outputs compared are not constant
    assert len(np.unique(run(graph, vectors(graph, 20)[0][:20])[-1])) > 1


def main(argv: list[str]) -> int:
    src = Path(argv[0]) if argv else _default_run()
    names = argv[1:] or [n for n in EXECUTORS if n in RUNNERS]
    graph = load(src / "model.ir.json")
    print(f"{src}: every output vs heatq.ir.run\n{HEADER}")
    worst = 0
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            r = agreement(name, graph, Path(tmp) / "export")
        print(row_text(r), flush=True)
        worst = max(worst, r["mismatches"])
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
