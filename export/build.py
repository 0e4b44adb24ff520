"""Compile a C or HLS export, run it on a batch and compare it with the interpreter.

Text protocol of the generated ``main``: input ``N`` then ``N`` samples of the input's
integers (C, H, W order, whitespace separated); output one line per sample with every graph
output concatenated in ``graph.outputs`` order, decimal, space separated.  The shapes needed to
split a line again come from the graph or from the export's ``io.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np

from heatq.ir import IntGraph
from heatq.ir.interp import value_dtype
from heatq.ir.types import IntType

C_FLAGS = ["-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-fsanitize=undefined,address",
           "-fno-sanitize-recover=all"]
HLS_FLAGS = ["-std=c++14", "-O1"]
SOURCES = {"c": ("gcc", ["model.c", "main.c"]), "hls": ("g++", ["model.cpp", "main.cpp"])}
EXE_NAME = "model"
SANITIZER_ENV = {"UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
                 "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0"}
# run_executable's default limit: BASE_TIMEOUT + PER_SAMPLE_TIMEOUT * N seconds.  Generated
# programs have only bounded loops, so the limit only guards against a hung process; it grows
# with the batch because a large network (ResNet-20 in ap_int, under sanitizers) takes seconds
# per sample on a loaded machine.
BASE_TIMEOUT = 300.0
PER_SAMPLE_TIMEOUT = 60.0


class BuildError(RuntimeError):
    """Compiling or running a generated program failed; the message carries its output."""


def compile_target(export_dir: str | Path, target: str, build_dir: str | Path | None = None,
                   compiler: str | None = None) -> Path:
    """Compile ``export_dir``'s sources for ``target`` (``"c"``: gcc with ``C_FLAGS``, i.e.
    C99, -Werror, UB and address sanitizers; ``"hls"``: g++ -std=c++14 with the hls4ml ap_types
    headers) into ``build_dir`` (default ``export_dir/build``).  Copies ``io.json`` beside the
    executable.  Returns the executable's path; raises :class:`BuildError` with the compiler's
    message on failure."""
    if target not in SOURCES:
        raise BuildError(f"cannot compile target {target!r}; known: {', '.join(SOURCES)}")
    export_dir = Path(export_dir)
    default_cc, sources = SOURCES[target]
    cc = compiler or default_cc
    if shutil.which(cc) is None:
        raise BuildError(f"compiler {cc!r} not found on PATH")
    build = Path(build_dir) if build_dir is not None else export_dir / "build"
    build.mkdir(parents=True, exist_ok=True)
    exe = build / EXE_NAME
    if target == "c":
        flags = C_FLAGS
    else:
        from .hls import find_ap_types
        flags = HLS_FLAGS + [f"-I{find_ap_types()}"]
    cmd = [cc, *flags, *(str(export_dir / s) for s in sources), "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{cc} failed ({proc.returncode}) on {export_dir}:\n"
                         f"{' '.join(cmd)}\n{proc.stderr.strip()}")
    if (export_dir / "io.json").is_file():
        shutil.copyfile(export_dir / "io.json", build / "io.json")
    return exe


def _output_specs(exe: Path, graph: IntGraph | None) -> list[tuple[tuple[int, ...], IntType]]:
    if graph is not None:
        nodes = [graph.nodes[o] for o in graph.outputs]
        return [(n.shape, n.type) for n in nodes]
    io_path = exe.parent / "io.json"
    if not io_path.is_file():
        raise BuildError(f"no graph given and no {io_path} to tell the output shapes")
    io = json.loads(io_path.read_text())
    return [(tuple(o["shape"]), IntType(o["signed"], o["width"])) for o in io["outputs"]]


def run_executable(exe: str | Path, x: np.ndarray, graph: IntGraph | None = None,
                   timeout: float | None = None) -> list[np.ndarray]:
    """Run a compiled export on the batch ``x`` (``[N, *input_shape]`` integers).  Returns one
    array per graph output, shaped ``[N, *node.shape]`` like :func:`heatq.ir.interp.run`
    (int64, or object arrays of Python ints for nodes wider than 62 bits).  ``timeout``:
    seconds for the whole batch (default ``BASE_TIMEOUT + PER_SAMPLE_TIMEOUT * N``); past it,
    a one-line :class:`BuildError`."""
    exe = Path(exe)
    specs = _output_specs(exe, graph)
    x = np.asarray(x)
    n = x.shape[0]
    rows = x.reshape(n, -1).tolist()
    text = f"{n}\n" + "".join(" ".join(str(int(v)) for v in r) + "\n" for r in rows)
    env = dict(os.environ, **SANITIZER_ENV)
    limit = BASE_TIMEOUT + PER_SAMPLE_TIMEOUT * n if timeout is None else timeout
    try:
        proc = subprocess.run([str(exe)], input=text, capture_output=True, text=True,
                              timeout=limit, env=env)
    except subprocess.TimeoutExpired:
        raise BuildError(f"{exe} did not finish {n} samples within {limit:g} s") from None
    if proc.returncode != 0:
        raise BuildError(f"{exe} exited with {proc.returncode}:\n{proc.stderr.strip()[-4000:]}")
    lines = proc.stdout.splitlines()
    if len(lines) != n:
        raise BuildError(f"{exe} printed {len(lines)} lines for {n} samples")
    sizes = [int(np.prod(shape, dtype=np.int64)) for shape, _ in specs]
    values = [[int(t) for t in line.split()] for line in lines]
    for i, v in enumerate(values):
        if len(v) != sum(sizes):
            raise BuildError(f"{exe}: sample {i} has {len(v)} values, expected {sum(sizes)}")
    outs, start = [], 0
    for (shape, t), size in zip(specs, sizes):
        dt = value_dtype(t)
        arr = np.array([v[start:start + size] for v in values], dtype=dt) if n else \
            np.zeros((0, size), dtype=dt)
        outs.append(arr.reshape((n, *shape)))
        start += size
    return outs


def compare_with_interp(graph: IntGraph, outputs_target: Sequence[np.ndarray],
                        outputs_interp: Sequence[np.ndarray]) -> int:
    """Number of samples where any element of any output differs (exact equality)."""
    if len(outputs_target) != len(graph.outputs) or len(outputs_interp) != len(graph.outputs):
        raise ValueError(f"expected {len(graph.outputs)} outputs, got {len(outputs_target)} "
                         f"(target) and {len(outputs_interp)} (interpreter)")
    n = len(outputs_interp[0]) if outputs_interp else 0
    if any(len(o) != n for o in (*outputs_target, *outputs_interp)):
        raise ValueError("target and interpreter outputs hold different numbers of samples")
    bad = 0
    for i in range(n):
        if not all(np.shape(t[i]) == np.shape(r[i]) and np.array_equal(t[i], r[i])
                   for t, r in zip(outputs_target, outputs_interp)):
            bad += 1
    return bad
