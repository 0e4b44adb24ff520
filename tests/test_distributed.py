"""Data-parallel training (heatq.distributed): the shard arithmetic, the device option, the
rank-state synchronisation (two gloo processes), and 2-process `heatq train --nproc 2` and
`heatq heat --nproc 2` runs whose IRs pass `heatq check`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from heatq import distributed as D
from heatq.errors import UserError

BIN = Path(sys.executable).parent
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def heatq(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "heatq"), *args], capture_output=True, text=True,
                          timeout=timeout, env=ONE_THREAD)


def one_line_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- shards -----------------------------------------------------------------------------------

CASES = [(n, b, w) for n in (0, 1, 5, 63, 64, 65, 129, 1000) for b in (1, 7, 64)
         for w in (1, 2, 3, 4)]


@pytest.mark.parametrize("n, batch, world", CASES)
def test_shards_disjoint_covering_equal(n, batch, world):
    """Per global batch the ranks' parts are disjoint, equal in size and cover it; over the
    epoch they cover the first n - n % world positions once each."""
    seen = []
    for s, e in D.global_batches(n, batch, world):
        assert (e - s) % world == 0 and e > s
        parts = [D.rank_part(s, e, r, world) for r in range(world)]
        assert len({b - a for a, b in parts}) == 1  # every rank: the same step size
        assert parts[0][0] == s and parts[-1][1] == e
        assert all(parts[i][1] == parts[i + 1][0] for i in range(world - 1))
        for a, b in parts:
            seen.extend(range(a, b))
    used = n - n % world
    assert sorted(seen) == list(range(used)) and len(seen) == len(set(seen))
    assert n - used < world  # at most world - 1 samples left out of an epoch


@pytest.mark.parametrize("n, batch", [(0, 64), (10, 3), (1000, 64), (129, 64)])
def test_one_process_is_the_plain_loop(n, batch):
    """World size 1: exactly range(0, n, batch) (the loop heatq ran before)."""
    assert D.global_batches(n, batch, 1) == [(i, min(i + batch, n)) for i in range(0, n, batch)]
    assert D.per_rank_batch(batch, 1) == batch


def test_context_batches_deterministic_and_rank_disjoint():
    """The same seed gives every rank the same permutation; their index sets are disjoint
    and together the used part of the permutation; steps_per_epoch counts them."""
    n, batch, world = 203, 16, 3

    def indices(rank: int) -> list[list[int]]:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(7))
        ctx = D.Context(rank=rank, world_size=world)
        return [idx[part].tolist() for idx, part in ctx.batches(perm, batch)]

    runs = [indices(r) for r in range(world)]
    assert runs == [indices(r) for r in range(world)]  # deterministic
    steps = D.Context(world_size=world).steps_per_epoch(n, batch)
    assert all(len(r) == steps for r in runs)
    flat = [i for r in runs for b in r for i in b]
    assert len(flat) == len(set(flat)) == n - n % world
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(7))
    assert sorted(flat) == sorted(perm[:n - n % world].tolist())
    assert D.per_rank_batch(batch, world) == 6 and len(runs[0][0]) == 6


# -- devices ----------------------------------------------------------------------------------

def test_device_cpu_and_auto_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert D.resolve_device("cpu") == torch.device("cpu")
    assert D.resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA:1"])
def test_device_cuda_without_cuda(monkeypatch, spec):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA device") as e:
        D.resolve_device(spec)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cuda0", ""])
def test_device_unknown(spec):
    with pytest.raises(UserError, match="unknown --device"):
        D.resolve_device(spec)


def test_device_cuda_indices(monkeypatch):
    """With (pretended) GPUs: cuda is the process's local rank; cuda:I one process only and
    within the device count."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert D.resolve_device("cuda", local_rank=1, world=2) == torch.device("cuda", 1)
    assert D.resolve_device("auto", local_rank=1, world=2) == torch.device("cuda", 1)
    assert D.resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(UserError, match="pass --device cuda"):
        D.resolve_device("cuda:1", local_rank=0, world=2)
    with pytest.raises(UserError, match="cuda:2 does not exist"):
        D.resolve_device("cuda:2")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cli_device_cuda_is_one_line(tmp_path):
    r = heatq("train", "--dataset", "digits", "--model", "mlp", "--epochs", "0",
              "--qat-epochs", "0", "--device", "cuda", "--out", str(tmp_path / "run"))
    one_line_error(r, "--device cuda", "no CUDA device")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_heat_device_cuda_is_a_user_error(mlp_run, tmp_path):
    from heatq.heat.command import heat

    with pytest.raises(UserError, match="no CUDA device"):
        heat(mlp_run, tmp_path / "heated", epochs=0, device="cuda", progress=False)
    assert not (tmp_path / "heated").exists()


def test_incomplete_torchrun_environment(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with pytest.raises(UserError, match="LOCAL_RANK, WORLD_SIZE not"):
        with D.session("cpu"):
            pass


def test_nproc_refusals(tmp_path):
    """Bad options are refused before any process starts (one line): --nproc 0, an
    existing output; --nproc inside a torchrun process."""
    out = tmp_path / "run"
    one_line_error(heatq("train", "--nproc", "0", "--out", str(out)), "--nproc")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("mine")
    one_line_error(heatq("train", "--nproc", "2", "--out", str(tmp_path / "other")), "other")
    with pytest.raises(UserError, match="inside a torchrun"):
        os.environ.update(RANK="0", WORLD_SIZE="2")
        try:
            D.launch_self(None, 2)
        finally:
            del os.environ["RANK"], os.environ["WORLD_SIZE"]


# -- two gloo processes: the state every rank ends with ---------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sync_worker(rank: int, port: int, result_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    out = {}
    with D.session("cpu") as ctx:
        torch.manual_seed(0)
        model = torch.nn.BatchNorm1d(3)  # parameters and buffers
        model.running_mean.fill_(float(rank + 1))  # rank-local statistics
        ctx.sync_state(model)
        out["running_mean"] = model.running_mean.tolist()
        out["digest"] = D.state_digest(model)
        out["total"] = ctx.total(float(rank + 1))
        with torch.no_grad():
            model.weight.add_(rank)  # a parameter that diverged: refused on every rank
        try:
            ctx.sync_state(model)
            out["diverged"] = None
        except RuntimeError as e:
            out["diverged"] = str(e)
    Path(result_dir, f"{rank}.json").write_text(json.dumps(out))


def test_sync_state_two_ranks(tmp_path):
    """Buffers (rank-local statistics) become rank 0's; the digests agree; a parameter that
    differs between ranks is a RuntimeError on every rank (the check can fail)."""
    import torch.multiprocessing as mp

    mp.spawn(_sync_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert r0["running_mean"] == r1["running_mean"] == [1.0, 1.0, 1.0]
    assert r0["digest"] == r1["digest"]
    assert r0["total"] == r1["total"] == 3.0
    for r in (r0, r1):
        assert r["diverged"] and "rank(s) [1]" in r["diverged"]


# -- heatq train --nproc 2 ------------------------------------------------------------------

def test_train_two_processes_valid_run(tmp_path):
    """`heatq train --nproc 2` (torchrun --standalone, gloo, one thread per process): a run
    directory recording world size 2 whose IR passes `heatq check`; `heatq heat --nproc 2`
    of it likewise."""
    run = tmp_path / "run2"
    common = ("train", "--dataset", "digits", "--model", "mlp", "--epochs", "2",
              "--qat-epochs", "1", "--quiet")
    r = heatq(*common, "--nproc", "2", "--out", str(run))
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("run written to") == 1  # rank 0 alone reports
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    want = {"world_size": 2, "backend": "gloo", "nproc": 2, "device": "cpu"}
    assert summary["distributed"] == config["distributed"] == want
    assert summary["provenance"]["seeds"]["seed"] == 0 and summary["acc_ir"] > 0
    c = heatq("check", str(run), "--quiet")
    assert c.returncode == 0, c.stderr
    assert json.loads((run / "check.json").read_text())["all_equal"] is True
    heated = tmp_path / "heated2"  # heating data-parallel: its own record, a valid IR
    r = heatq("heat", str(run), "--out", str(heated), "--epochs", "1", "--finetune-epochs",
              "1", "--quench-epochs", "1", "--max-acc-drop", "50", "--nproc", "2", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("run written to") == 1
    assert json.loads((heated / "summary.json").read_text())["distributed"] == want
    c = heatq("check", str(heated), "--quiet")
    assert c.returncode == 0, c.stderr


def test_one_process_records_world_size_one(mlp_run):
    """A run trained in one process (the shared digits fixture, in-process) records it."""
    want = {"world_size": 1, "backend": None, "nproc": 1, "device": "cpu"}
    for name in ("summary.json", "config.json"):
        assert json.loads((mlp_run / name).read_text())["distributed"] == want
