"""Reproducibility: the same seed trains the same bits (model state, IR, provenance); another
seed does not; summary.json's provenance has every field, and its split hashes follow the
data."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from heatq import pipeline, provenance
from heatq.data import load_dataset, split_validation

HEX40, HEX64 = re.compile(r"[0-9a-f]{40}"), re.compile(r"[0-9a-f]{64}")


@pytest.fixture(scope="module")
def deterministic():
    """torch as ``heatq train`` sets it (1 thread, deterministic algorithms); restored after."""
    was, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    pipeline.set_threads(1)
    yield
    torch.use_deterministic_algorithms(was)
    torch.set_num_threads(threads)


def _train(out: Path, seed: int, dataset: str = "digits", model: str = "mlp", epochs: int = 2,
           qat_epochs: int = 1, **kw) -> Path:
    pipeline.train_run(out, dataset, model, "bitplane:4", "hadamard:15", 4, 4, epochs=epochs,
                       qat_epochs=qat_epochs, seed=seed, progress=False, val_fraction=0.2, **kw)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, deterministic) -> dict[str, Path]:
    """digits mlp runs: seed 0 twice (``a``, ``b``), seed 1 once (``c``)."""
    root = tmp_path_factory.mktemp("repro")
    return {"a": _train(root / "a", 0), "b": _train(root / "b", 0), "c": _train(root / "c", 1)}


def _states(run: Path, name: str = "model.pt") -> dict:
    return torch.load(run / name, map_location="cpu", weights_only=True)


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def _assert_same_run(a: Path, b: Path) -> None:
    """Every tensor of both states equal, the IR files byte-identical, the summaries equal."""
    for name in ("model.pt", "model_float.pt"):
        sa, sb = _states(a, name), _states(b, name)
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{name}: {k} differs"
    for name in ("model.ir.json", "model.npz", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert _without_git(_summary(a)) == _without_git(_summary(b))


def _without_git(summary: dict) -> dict:
    """``summary`` without the git fields, which a commit between two runs changes (a shared
    work tree)."""
    versions = {k: v for k, v in summary["provenance"]["versions"].items()
                if not k.startswith("git_")}
    return {**summary, "provenance": {**summary["provenance"], "versions": versions}}


def test_same_seed_same_bits(runs):
    _assert_same_run(runs["a"], runs["b"])


def test_other_seed_other_weights(runs):
    sa, sc = _states(runs["a"]), _states(runs["c"])
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    assert (runs["a"] / "model.ir.json").read_bytes() != (runs["c"] / "model.ir.json").read_bytes()
    pa, pc = _summary(runs["a"])["provenance"], _summary(runs["c"])["provenance"]
    assert pa["seeds"]["seed"] == 0 and pc["seeds"]["seed"] == 1
    assert _without_git(_summary(runs["a"]))["provenance"]["versions"] == \
        _without_git(_summary(runs["c"]))["provenance"]["versions"]
    for split in ("train", "validation", "test"):  # digits: the seed draws every split
        assert pa["splits"][split]["sha256"] != pc["splits"][split]["sha256"], split


def test_provenance_fields(runs):
    prov = _summary(runs["a"])["provenance"]
    json.dumps(prov)
    assert set(prov) == {"versions", "threads", "deterministic", "seeds", "splits"}
    v = prov["versions"]
    for key in ("python", "torch", "numpy", "heatq", "platform", "cpu_capability"):
        assert isinstance(v[key], str) and v[key], key
    assert v["torch"] == torch.__version__ and v["numpy"] == np.__version__
    assert v["git_commit"] is None or HEX40.fullmatch(v["git_commit"])
    assert v["git_dirty"] in (None, True, False)
    assert prov["threads"] == 1 and prov["deterministic"] is True
    assert prov["seeds"] and all(type(s) is int for s in prov["seeds"].values())
    assert set(prov["splits"]) == {"train", "validation", "test"}
    ds = load_dataset("digits", seed=0)
    x_tr, y_tr, x_val, y_val = split_validation(ds.x_train, ds.y_train, 0.2, 0)
    for name, (x, y) in {"train": (x_tr, y_tr), "validation": (x_val, y_val),
                         "test": (ds.x_test, ds.y_test)}.items():
        got = prov["splits"][name]
        assert got["n"] == len(y) and got["shape"] == list(x.shape) and HEX64.fullmatch(
            got["sha256"])
        assert got["sha256"] == hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest(), name
    assert prov["splits"]["train"]["n"] + prov["splits"]["validation"]["n"] == len(ds.y_train)


def test_split_hash_follows_the_data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 4, 4), dtype=np.uint8)
    y = np.arange(6, dtype=np.int64)
    base = provenance.split_hash(x, y)["sha256"]
    assert provenance.split_hash(x.copy(), y.copy())["sha256"] == base
    x1 = x.copy()
    x1[3, 2, 1] ^= 1
    y1 = y.copy()
    y1[5] = 0
    order = np.array([1, 0, 2, 3, 4, 5])
    changed = [(x1, y), (x, y1), (x[order], y[order]), (x[:5], y[:5])]
    assert len({base, *(provenance.split_hash(a, b)["sha256"] for a, b in changed)}) == 5
    assert provenance.split_hash(x[:, ::-1], y)["sha256"] != base  # a view: hashed in C order
    with pytest.raises(ValueError):
        provenance.split_hash(x, y[:5])


def test_git_failure_is_null(monkeypatch, tmp_path):
    assert provenance._git(tmp_path, "rev-parse", "HEAD") is None  # not a work tree

    def timeout(*a, **k):
        raise subprocess.TimeoutExpired("git", provenance.GIT_TIMEOUT_S)

    stub = SimpleNamespace(run=timeout, SubprocessError=subprocess.SubprocessError)
    monkeypatch.setattr(provenance, "subprocess", stub)  # provenance's git calls only
    assert provenance.git_state() == (None, None)
    assert provenance.record(1, {}, {})["versions"]["git_commit"] is None


def test_set_threads_turns_deterministic_on():
    was, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    try:
        torch.use_deterministic_algorithms(False)
        pipeline.set_threads(1)
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
        assert provenance.record(1, {"seed": 3}, {})["deterministic"] is True
    finally:
        torch.use_deterministic_algorithms(was)
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_seed_cnn_mnist5k_twice(tmp_path, deterministic):
    """The seed CNN on mnist5k, 3 float + 2 QAT epochs, trained twice: the same bits."""
    kw = dict(dataset="mnist5k", model="seed-cnn", epochs=3, qat_epochs=2)
    _assert_same_run(_train(tmp_path / "a", 0, **kw), _train(tmp_path / "b", 0, **kw))


def _heat_seeds():
    """bench/heat_seeds.py as a module (a script, not a package)."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "bench" / "heat_seeds.py"
    spec = importlib.util.spec_from_file_location("heat_seeds", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_heat_seeds_compare(tmp_path, capsys):
    hs = _heat_seeds()
    row = {"seed": 0, "ir_sha256": "a" * 64, "pt_sha256": "b" * 64, "train_ir_sha256": "c" * 64,
           "weight_bits": {"l1": 3, "l2": 2}, "act_bits": {"a1": 2}, "acc_float": 0.97,
           "acc_heated_val": 0.965, "acc_heated": 0.968, "constraint_met": True, "seconds": 9}
    a = {"settings": {"seed_count": 2}, "versions": {"cpu_capability": "AVX2"},
         "seeds": [row, {**row, "seed": 1}]}
    b = {**a, "versions": {"cpu_capability": "AVX512"},
         "seeds": [{**row, "seconds": 11}, {**row, "seed": 1, "weight_bits": {"l1": 3, "l2": 3},
                                            "ir_sha256": "d" * 64}]}
    lines, differ = hs.compare(a, a)
    assert lines == ["seed 0: identical", "seed 1: identical"] and not differ
    lines, differ = hs.compare(a, b)  # seconds and versions do not count; bits and hashes do
    assert differ and lines == ["versions differ: cpu_capability 'AVX2' vs 'AVX512'",
                                "seed 0: identical",
                                "seed 1: DIFFERENT (ir_sha256, weight_bits)"]
    lines, differ = hs.compare(a, {**a, "seeds": [row, {"seed": 1, "error": "boom"}]})
    assert differ and lines[-1] == "seed 1: DIFFERENT (failed in B)"
    assert hs.compare(a, {**a, "seeds": [row]}) == (["seed 0: identical",
                                                     "seed 1: DIFFERENT (only in A)"], True)
    for name, doc in (("a", a), ("b", b)):
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
    assert hs.main(["--compare", str(tmp_path / "a.json"), str(tmp_path / "a.json")]) == 0
    assert hs.main(["--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 1
    assert "seed 1: DIFFERENT" in capsys.readouterr().out
