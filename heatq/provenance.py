"""What decides a run, recorded in its ``summary.json`` as ``summary["provenance"]``.

:func:`record` gathers the software versions, the machine's platform and CPU capability
(the instruction set torch's kernels were chosen for), the torch thread count, whether
deterministic algorithms are on, every seed of the run and a SHA-256 of each data split.
Two runs with equal provenance on the same machine give the same bits; across machines the
fields say what differs (docs/reproducibility.md).  :func:`make_deterministic` puts torch in
the mode such runs need.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch

GIT_TIMEOUT_S = 5.0


def make_deterministic(threads: int) -> None:
    """Use deterministic algorithms (an op without a deterministic implementation raises
    instead of silently varying) and ``threads`` torch threads.  heatq's CPU training runs
    under the strict mode; ``threads`` must be >= 1."""
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)


def _git(root: Path, *args: str) -> str | None:
    """Output of ``git -C root ARGS`` (stripped), or None on any failure or timeout."""
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git work tree heatq is imported from, (None, None) when the
    package does not sit at the top of a work tree (an installed copy) or git fails.
    ``dirty``: tracked files differ from the commit."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None, None
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return commit, None if status is None else bool(status)


def versions() -> dict:
    """Python, torch, numpy and heatq versions, heatq's git commit (None outside a checkout),
    the platform and torch's CPU capability (e.g. ``AVX2``, ``AVX512``)."""
    from .cli_help import version

    commit, dirty = git_state()
    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "heatq": version(), "git_commit": commit,
            "git_dirty": dirty, "platform": platform.platform(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def split_hash(x: np.ndarray, y: np.ndarray) -> dict:
    """``{"n", "shape", "sha256"}`` of one split: the SHA-256 of the images' bytes (C order)
    followed by the labels' bytes, so any change of the images, labels or order changes it."""
    x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
    if len(x) != len(y):
        raise ValueError(f"split has {len(x)} images but {len(y)} labels")
    h = hashlib.sha256()
    h.update(x.tobytes())
    h.update(y.tobytes())
    return {"n": int(len(x)), "shape": [int(s) for s in x.shape], "dtype": str(x.dtype),
            "sha256": h.hexdigest()}


def record(threads: int, seeds: dict[str, int],
           splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """The JSON-able provenance of a run: ``{"versions": {...}, "threads": n,
    "deterministic": bool, "seeds": {name: int}, "splits": {name: split_hash}}``.
    ``deterministic`` is torch's current setting (:func:`make_deterministic` turns it on)."""
    return {"versions": versions(), "threads": int(threads),
            "deterministic": bool(torch.are_deterministic_algorithms_enabled()),
            "seeds": {str(k): int(v) for k, v in seeds.items()},
            "splits": {str(k): split_hash(x, y) for k, (x, y) in splits.items()}}
