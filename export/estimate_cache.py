"""The tool runs and the result cache behind :mod:`.estimate` and :mod:`.ice40`.

:func:`run_tool` is the one place a yosys / nextpnr process starts (:func:`kill_running`
stops the running ones when a batch fails or is interrupted); :func:`cached` stores a tool
result under ``${XDG_CACHE_HOME:-~/.cache}/heatq/estimate/<sha256>.json``, the key
(:func:`cache_key`) hashing the sources (file names and contents), the script and the tools'
versions, so an unchanged module is never synthesized twice.  The cache lives outside every
export; deleting it only costs time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

CACHE_VERSION = "heatq-estimate-1"
_running: set[subprocess.Popen] = set()
tool_lock = threading.Lock()  # guards _running (and the callers' shared progress state)


def run_tool(cmd: list[str], timeout: float | None,
             cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run one yosys / nextpnr / ABC process in ``cwd`` (the one place the estimate and
    ``heatq prove`` start one), stdout and stderr together; on an interrupt or an error
    elsewhere :func:`kill_running` stops it.  RuntimeError after ``timeout`` seconds."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", cwd=cwd)
    with tool_lock:
        _running.add(proc)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"{Path(cmd[0]).name} timed out after {timeout} s") from None
    except BaseException:  # Ctrl-C while waiting: the tool must not outlive us
        proc.kill()
        proc.communicate()
        raise
    finally:
        with tool_lock:
            _running.discard(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


def kill_running() -> None:
    """Stop every tool process :func:`run_tool` started that is still running."""
    with tool_lock:
        procs = list(_running)
    for p in procs:
        p.kill()


@lru_cache(maxsize=None)
def tool_version(tool: str) -> str:
    """``tool --version`` / ``-V`` first line (part of every cache key)."""
    if shutil.which(tool) is None:
        raise FileNotFoundError(f"{tool} not found on PATH")
    flag = "-V" if tool == "yosys" else "--version"
    r = subprocess.run([tool, flag], capture_output=True, text=True)
    return (r.stdout + r.stderr).strip().splitlines()[0]


def cache_dir() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/heatq/estimate``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "heatq" / "estimate"


def cache_key(files: Iterable[str | Path], script: str, tools: Iterable[str]) -> str:
    """sha256 of the sources (by file name, in name order), the script and the versions of
    ``tools``."""
    h = hashlib.sha256(CACHE_VERSION.encode())
    for tool in tools:
        h.update(b"\0" + tool_version(tool).encode())
    h.update(b"\0" + script.encode())
    for f in sorted((Path(f) for f in files), key=lambda p: p.name):
        h.update(b"\0" + f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def cached(key: str, compute: Callable[[], dict]) -> dict:
    """``compute()`` (a JSON-able dict), stored under ``key`` in :func:`cache_dir`; a stored
    result is returned with ``cached: True``.  An unreadable cache entry is recomputed."""
    path = cache_dir() / f"{key}.json"
    try:
        return {**json.loads(path.read_text()), "cached": True}
    except (OSError, ValueError):
        pass
    res = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(res, sort_keys=True))
        os.replace(tmp, path)
    except OSError:  # a read-only cache only costs time
        pass
    return {**res, "cached": False}
