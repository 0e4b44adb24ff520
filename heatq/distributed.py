"""Data-parallel training on ``torch.distributed`` and the choice of device.

Under ``torchrun`` (the environment has ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``) every
process runs the same command.  :func:`session` joins the process group (gloo on CPU, nccl on
CUDA) and gives a :class:`Context`; the training loops wrap the model in
DistributedDataParallel (:meth:`Context.wrap`, once per training call, after the model's mode
is set: BatchNorm folding changes which parameters train) and walk their rank's part of
every epoch's permutation (:meth:`Context.batches`).  Rank 0 alone measures, converts and
writes; the others wait at the closing barrier.  Outside torchrun, or with one process, the
context is the single process: the loops run exactly as before (same operations, same bits).

Sharding: every rank draws the same permutation (same seed).  An epoch uses its first
``n - n % world`` positions, cut into global batches of ``per_rank_batch * world`` positions
(the last may be shorter, always a multiple of ``world``); rank ``r`` takes the ``r``-th of
the ``world`` equal parts of each global batch.  So the parts are disjoint, together they
cover the used positions, every rank takes the same number of steps of the same size (DDP's
gradient average is the mean over the global batch) and random numbers drawn per batch stay
in step on every rank.  See docs/distributed.md.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterable, Iterator

import torch
import torch.distributed as dist
from torch import nn

from .errors import UserError

DEVICES = "auto | cpu | cuda | cuda:I"
ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
# Rank 0 converts and checks the IR while the others wait at the closing barrier: allow it
# hours, not the default 30 minutes.
TIMEOUT = timedelta(hours=6)


# -- sharding (pure functions; the Context applies them) ------------------------------------

def per_rank_batch(batch_size: int, world: int) -> int:
    """Samples per rank and step: ``ceil(batch_size / world)`` (the global batch is this
    times ``world``; equal to ``batch_size`` when ``world`` divides it)."""
    return -(-batch_size // world)


def global_batches(n: int, batch_size: int, world: int) -> list[tuple[int, int]]:
    """``(start, end)`` positions in an epoch's permutation of ``n`` samples of each global
    batch: the first ``n - n % world`` positions in runs of ``per_rank_batch * world``; each
    length is a multiple of ``world``.  With ``world`` 1: ``range(0, n, batch_size)``."""
    used = n - n % world
    step = per_rank_batch(batch_size, world) * world
    return [(i, min(i + step, used)) for i in range(0, used, step)]


def rank_part(start: int, end: int, rank: int, world: int) -> tuple[int, int]:
    """Rank ``rank``'s positions ``(a, b)`` in the global batch ``start..end``: its
    ``rank``-th of ``world`` equal parts."""
    k = (end - start) // world
    return start + rank * k, start + (rank + 1) * k


# -- devices --------------------------------------------------------------------------------

def resolve_device(spec: str, local_rank: int = 0, world: int = 1) -> torch.device:
    """The torch device of ``--device spec``: ``cpu``; ``auto``: CUDA when available, else the
    CPU; ``cuda``: the process's GPU (``cuda:LOCAL_RANK`` under torchrun); ``cuda:I`` (one
    process only).  UserError (one line) for an unknown spec or a missing GPU."""
    spec = spec.strip().lower()
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "auto":
        return resolve_device("cuda", local_rank, world) if torch.cuda.is_available() \
            else torch.device("cpu")
    if spec != "cuda" and not (spec.startswith("cuda:") and spec[5:].isdigit()):
        raise UserError(f"unknown --device {spec!r}; choose {DEVICES}")
    if not torch.cuda.is_available():
        raise UserError(f"--device {spec}: no CUDA device is available to torch "
                        f"{torch.__version__}; use --device cpu (or auto)")
    count = torch.cuda.device_count()
    if spec == "cuda":
        index = local_rank
    elif world > 1:
        raise UserError(f"--device {spec}: with {world} processes each uses cuda:LOCAL_RANK; "
                        "pass --device cuda")
    else:
        index = int(spec[5:])
    if index >= count:
        raise UserError(f"--device {spec}: cuda:{index} does not exist ({count} CUDA "
                        "device(s))")
    return torch.device("cuda", index)


# -- the context ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Context:
    """This process's place in a data-parallel run (``world_size`` 1: a single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    nproc: int = 1  # processes on this node (torchrun's LOCAL_WORLD_SIZE)
    backend: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        """Rank 0: the process that measures, converts and writes."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world_size > 1

    def record(self) -> dict:
        """What the run directory records: ``{"world_size", "backend", "nproc", "device"}``."""
        return {"world_size": self.world_size, "backend": self.backend, "nproc": self.nproc,
                "device": str(self.device)}

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` in DistributedDataParallel (rank 0's parameters and buffers broadcast now,
        its buffers again before every forward); ``model`` itself in a single process."""
        if not self.parallel:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)  # buffers: synced

    def batches(self, perm: torch.Tensor, batch_size: int
                ) -> Iterator[tuple[torch.Tensor, slice]]:
        """Per step: (the global batch's indices, this rank's slice of them)."""
        for s, e in global_batches(len(perm), batch_size, self.world_size):
            a, b = rank_part(s, e, self.rank, self.world_size)
            yield perm[s:e], slice(a - s, b - s)

    def steps_per_epoch(self, n: int, batch_size: int) -> int:
        """Optimiser steps of one epoch over ``n`` samples (at least 1)."""
        return max(1, len(global_batches(n, batch_size, self.world_size)))

    def total(self, value: float) -> float:
        """``value`` summed over the ranks (itself in a single process)."""
        if not self.parallel:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.comm_device)
        dist.all_reduce(t)
        return float(t[0])

    @property
    def comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")

    def average_grads(self, tensors: Iterable[torch.Tensor]) -> None:
        """Average the gradients of ``tensors`` (trained outside the DDP module, e.g. heating's
        learned bits) over the ranks, as DDP does for the module's parameters."""
        if not self.parallel:
            return
        grads = [t.grad for t in tensors if t.grad is not None]  # None alike on every rank
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads]).to(self.comm_device)
        dist.all_reduce(flat)
        flat /= self.world_size
        for g, part in zip(grads, torch.split(flat, [g.numel() for g in grads])):
            g.copy_(part.view_as(g))

    def sync_state(self, model: nn.Module) -> None:
        """After training: every buffer (quantizer binary points and ranges, batch-norm
        statistics: updated from each rank's own samples) becomes rank 0's, then the whole
        state's digest must agree on every rank (the parameters already do: DDP averaged the
        same gradients everywhere); RuntimeError naming the ranks otherwise."""
        if not self.parallel:
            return
        with torch.no_grad():
            for b in model.buffers():
                dist.broadcast(b, 0)
        digests = [None] * self.world_size
        dist.all_gather_object(digests, state_digest(model))
        if len(set(digests)) != 1:
            differ = [r for r, d in enumerate(digests) if d != digests[0]]
            raise RuntimeError(f"data-parallel ranks diverged: the model state of rank(s) "
                               f"{differ} differs from rank 0's after training")

    def barrier(self) -> None:
        if self.parallel:
            dist.barrier()


SINGLE = Context()


def state_digest(model: nn.Module) -> str:
    """SHA-256 of every parameter and buffer (names, dtypes, shapes and bytes, on the CPU)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _env() -> tuple[int, int, int, int]:
    """(rank, world size, local rank, local world size) from torchrun's environment; a
    single process (0, 1, 0, 1) outside it.  UserError for a half-set environment."""
    present = [k for k in ENV if k in os.environ]
    if not present:
        return 0, 1, 0, 1
    if len(present) != len(ENV):
        missing = sorted(set(ENV) - set(present))
        raise UserError(f"torch.distributed environment incomplete: {', '.join(present)} set "
                        f"but {', '.join(missing)} not; launch with torchrun")
    try:
        rank, world, local = (int(os.environ[k]) for k in ENV)
        nproc = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    except ValueError:
        raise UserError("torch.distributed environment: RANK, WORLD_SIZE and LOCAL_RANK "
                        "must be integers") from None
    if not 0 <= rank < world:
        raise UserError(f"torch.distributed environment: RANK {rank} not in 0..{world - 1}")
    return rank, world, local, nproc


@contextmanager
def session(device: str = "cpu") -> Iterator[Context]:
    """The context of this process: under torchrun with more than one process, join the
    process group (nccl on CUDA, gloo on the CPU) for the duration, wait for every rank at
    the end, and leave it; else the single process on ``device`` (:func:`resolve_device`)."""
    rank, world, local, nproc = _env()
    dev = resolve_device(device, local, world)
    if dev.type == "cuda":
        # cuBLAS needs this to honour torch.use_deterministic_algorithms (set before its
        # first use); nccl needs the process's GPU current.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.cuda.set_device(dev)
    if world == 1:
        yield Context(device=dev)
        return
    backend = "nccl" if dev.type == "cuda" else "gloo"
    owner = not dist.is_initialized()
    if owner:
        dist.init_process_group(backend, timeout=TIMEOUT)
    ctx = Context(rank, world, local, nproc, backend, dev)
    try:
        yield ctx
    except BaseException:
        raise  # no barrier: the others would wait for a rank that left; torchrun stops them
    else:
        ctx.barrier()
    finally:
        if owner and dist.is_initialized():
            dist.destroy_process_group()


# -- launching -------------------------------------------------------------------------------

def launch(nproc: int, args: list[str], threads: int = 1) -> int:
    """Run ``python -m heatq ARGS`` in ``nproc`` data-parallel processes on this machine
    (``torch.distributed.run --standalone``), each with ``threads`` OpenMP threads; returns
    the exit status."""
    if nproc < 1:
        raise UserError(f"--nproc must be >= 1, got {nproc}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node", str(nproc), "-m", "heatq", *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    for k in (*ENV, "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)  # a launch inside a torchrun process starts its own group
    return subprocess.run(cmd, env=env, check=False).returncode


def command_argv(ctx, drop: Iterable[str] = ("nproc",)) -> list[str]:
    """The command of the click context ``ctx`` (a ``typer.Context``): its name and its
    arguments rebuilt from the parsed values (every option by its long name; ``drop``:
    parameter names to leave out)."""
    out = [ctx.info_name]
    for p in ctx.command.params:
        value = ctx.params.get(p.name)
        if p.name in drop or value is None:
            continue
        if p.param_type_name == "argument":
            out.extend(str(v) for v in (value if p.nargs != 1 else [value]))
            continue
        name = max(p.opts, key=len)
        if p.is_flag:
            out += [name] if value else list(p.secondary_opts[:1])
        elif p.multiple:
            for v in value:
                out += [name, str(v)]
        else:
            out += [name, str(value)]
    return out


def launch_self(ctx, nproc: int, threads: int = 1) -> int:
    """Run the command of ``ctx`` (a ``typer.Context``) again in ``nproc`` data-parallel
    processes (:func:`launch`), without ``--nproc``; refused inside a torchrun process."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        raise UserError("--nproc launches torchrun itself; inside a torchrun process leave "
                        "it out")
    return launch(nproc, command_argv(ctx), threads)
