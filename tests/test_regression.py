"""Regression by codes: the diabetes dataset, ordinal output codes, errors in target units,
expected-value decoding, and a tiny exact run end to end."""

from __future__ import annotations

import itertools
import math
import socket

import numpy as np
import pytest
import torch

from heatq import pipeline
from heatq.codes import hamming_decode_numpy, parse_output_code
from heatq.data import load_dataset
from heatq.errors import UserError
from heatq.ir.interp import run
from heatq.models import build_model
from heatq.regression import (
    expected_level_torch, expected_value_torch, is_thermometer, mae, quantile_levels, rmse,
    run_mae,
)
from heatq.rundir import load_graph, read_json


# --------------------------------------------------------------------------- dataset


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network socket fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("the dataset tried to reach the network")
    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_diabetes_shapes_levels_and_offline(offline):
    from sklearn.datasets import load_diabetes

    ds = load_dataset("diabetes", seed=0)
    assert ds.n_classes == 16 and ds.name == "diabetes:16"
    assert ds.x_train.shape == (354, 1, 10) and ds.x_test.shape == (88, 1, 10)
    assert ds.x_train.dtype == np.uint8 and ds.image_shape == (1, 10)
    t = ds.targets
    raw = load_diabetes(scaled=False)
    # the two splits together are the 442 real targets, each once
    np.testing.assert_array_equal(np.sort(np.concatenate([t.t_train, t.t_test])),
                                  np.sort(raw.target.astype(np.float64)))
    # min-max by the training split: every feature reaches 0 and 255 in training
    assert (ds.x_train.min(axis=(0, 1)) == 0).all() and (ds.x_train.max(axis=(0, 1)) == 255).all()
    # labels are level indices: the number of edges <= t (a plain loop)
    for split, y in ((t.t_train, ds.y_train), (t.t_test, ds.y_test)):
        assert [sum(e <= v for e in t.edges) for v in split] == y.tolist()
    counts = np.bincount(ds.y_train, minlength=16)
    assert counts.min() >= 354 // 16 - 3 and counts.max() <= 354 // 16 + 3  # quantile levels
    for k in range(16):  # centres: the mean training target of each level
        members = [v for v, y in zip(t.t_train, ds.y_train) if y == k]
        assert math.isclose(t.centres[k], sum(members) / len(members))
    assert (np.diff(t.centres) > 0).all()


def test_diabetes_seeded_and_levels_spec():
    a, b, c = (load_dataset("diabetes:8", seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.targets.centres, b.targets.centres)
    assert not np.array_equal(a.targets.t_test, c.targets.t_test)
    assert a.n_classes == 8 and len(a.targets.centres) == 8
    small = load_dataset("diabetes:8", train_per_class=5, seed=1)
    assert len(small.y_train) == 40
    np.testing.assert_array_equal(small.targets.level_of(small.targets.t_train), small.y_train)
    for spec in ("diabetes:1", "diabetes:65", "diabetes:x", "diabetes:"):
        with pytest.raises(UserError) as e:
            load_dataset(spec)
        assert repr(spec) in str(e.value) and "\n" not in str(e.value)


def test_too_many_levels_is_a_user_error():
    with pytest.raises(UserError, match="too many"):
        quantile_levels(np.array([1.0, 1.0, 1.0, 2.0]), np.array([1.0]), 3, "toy")


# ----------------------------------------------------------------------------- codes


@pytest.mark.parametrize("k", [2, 3, 5, 10, 16])
def test_thermometer_code_distance_is_level_distance(k):
    m = parse_output_code("thermometer", k).matrix
    assert m.shape == (k, k - 1) and is_thermometer(m)
    for i, j in itertools.product(range(k), repeat=2):
        assert sum(int(a) != int(b) for a, b in zip(m[i], m[j])) == abs(i - j)
    assert [int(r.sum()) for r in m] == list(range(k))


def _gray_to_int(bits) -> int:
    """Binary-reflected Gray code (MSB first) to its integer: b_i = b_{i-1} xor g_i."""
    value, b = 0, 0
    for g in bits:
        b ^= int(g)
        value = 2 * value + b
    return value


@pytest.mark.parametrize("k", [2, 3, 5, 8, 16, 17])
def test_gray_code(k):
    m = parse_output_code("gray", k).matrix
    assert m.shape == (k, max(1, math.ceil(math.log2(k))))
    assert [_gray_to_int(r) for r in m] == list(range(k))
    for i in range(k - 1):  # neighbouring levels differ in exactly one bit
        assert sum(int(a) != int(b) for a, b in zip(m[i], m[i + 1])) == 1
    assert not is_thermometer(m) or k == 2


@pytest.mark.parametrize("k", [4, 8, 16])
def test_one_flipped_bit_moves_the_level(k):
    """Worst level error of Hamming decoding after one flipped bit: 2 for the thermometer code
    (a tie resolved low), K - 1 for the Gray code."""
    worst = {}
    for spec in ("thermometer", "gray"):
        m = parse_output_code(spec, k).matrix
        words, levels = [], []
        for level, j in itertools.product(range(k), range(m.shape[1])):
            word = m[level].copy()
            word[j] ^= 1
            words.append(word)
            levels.append(level)
        decoded = []
        for word in words:  # nearest codeword by a plain loop, ties to the lowest level
            dist = [sum(int(a) != int(b) for a, b in zip(word, row)) for row in m]
            decoded.append(dist.index(min(dist)))
        np.testing.assert_array_equal(hamming_decode_numpy(np.array(words), m), decoded)
        worst[spec] = max(abs(d - lv) for d, lv in zip(decoded, levels))
    assert worst == {"thermometer": 2, "gray": k - 1}


@pytest.mark.parametrize("spec", ["thermometer:3", "gray:4", "therm"])
def test_bad_ordinal_specs(spec):
    with pytest.raises(UserError) as e:
        parse_output_code(spec, 10)
    assert repr(spec) in str(e.value)


# ---------------------------------------------------------------------------- errors


def test_mae_rmse_against_a_loop():
    rng = np.random.default_rng(0)
    centres = np.sort(rng.uniform(0, 300, 7))
    pred = rng.integers(0, 7, 50)
    t = rng.uniform(0, 300, 50)
    diffs = [centres[p] - v for p, v in zip(pred, t)]
    assert math.isclose(mae(pred, t, centres), sum(abs(d) for d in diffs) / 50)
    assert math.isclose(rmse(pred, t, centres), math.sqrt(sum(d * d for d in diffs) / 50))
    with pytest.raises(ValueError):
        mae(np.array([7]), np.array([1.0]), centres)


def _brute_force_expected(z: np.ndarray, matrix: np.ndarray, centres: np.ndarray) -> float:
    """sum_k c_k p_k with p_k proportional to prod_j P(bit_j = M[k, j]), in python floats."""
    p1 = [1 / (1 + math.exp(-v)) for v in z]
    lik = [math.prod(p if b else 1 - p for p, b in zip(p1, row)) for row in matrix]
    return sum(c * w for c, w in zip(centres, lik)) / sum(lik)


@pytest.mark.parametrize("spec", ["gray", "random:7", "onehot"])
def test_expected_value_general_codes(spec):
    m = parse_output_code(spec, 5, seed=3).matrix
    centres = np.array([10.0, 20.0, 35.0, 50.0, 80.0])
    z = np.random.default_rng(1).normal(0, 2, (6, m.shape[1]))
    got = expected_value_torch(torch.from_numpy(z), m, centres).numpy()
    want = [_brute_force_expected(r, m, centres) for r in z]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    lev = expected_level_torch(torch.from_numpy(z), m).numpy()
    np.testing.assert_allclose(lev, [_brute_force_expected(r, m, np.arange(5.0)) for r in z],
                               rtol=1e-12)


def test_expected_value_thermometer_is_the_bit_sum():
    m = parse_output_code("thermometer", 5).matrix
    centres = np.array([10.0, 20.0, 35.0, 50.0, 80.0])
    z = np.random.default_rng(2).normal(0, 2, (6, 4))
    p = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(expected_level_torch(torch.from_numpy(z), m).numpy(), p.sum(1))
    # independent bits: E[c_0 + sum_j b_j (c_{j+1} - c_j)] over all 2^L bit patterns
    want = []
    for row in p:
        total = 0.0
        for bits in itertools.product((0, 1), repeat=4):
            prob = math.prod(q if b else 1 - q for q, b in zip(row, bits))
            total += prob * (centres[0] + sum(b * (centres[j + 1] - centres[j])
                                              for j, b in enumerate(bits)))
        want.append(total)
    np.testing.assert_allclose(expected_value_torch(torch.from_numpy(z), m, centres).numpy(),
                               want, rtol=1e-12)
    # confident logits on a codeword give its centre
    sure = torch.from_numpy(np.where(m[[3]] == 1, 40.0, -40.0))
    assert math.isclose(float(expected_value_torch(sure, m, centres)[0]), 50.0, rel_tol=1e-9)


# ---------------------------------------------------------------------------- models


def test_mlp_image_shape_and_old_specs():
    old = {"model": "mlp", "in_channels": 2, "code_length": 5, "w_bits": 4, "a_bits": 4,
           "image_size": 4, "hidden": 8}
    net = build_model(old)
    assert net.input_shape == (2, 4, 4) and net.spec == old
    wide = build_model({**{k: v for k, v in old.items() if k != "image_size"},
                        "image_shape": [1, 10]})
    assert wide.input_shape == (2, 1, 10) and wide.spec["image_shape"] == [1, 10]
    assert "image_size" not in wide.spec
    assert wide(torch.zeros(3, 2, 1, 10)).shape == (3, 5)


def test_seed_cnn_refuses_non_square(tmp_path):
    with pytest.raises(UserError, match="square"):
        pipeline.train_run(tmp_path / "r", "diabetes:8", "seed-cnn", "thermometer:2", "gray",
                           epochs=0, qat_epochs=0, progress=False)


# -------------------------------------------------------------------------- pipeline


def test_tiny_regression_run_is_exact(tmp_path):
    out = tmp_path / "run"
    s = pipeline.train_run(out, "diabetes:8", "mlp", "thermometer:4", "gray", epochs=1,
                           qat_epochs=1, seed=1, train_per_class=5, progress=False)
    config = read_json(out / "config.json")
    assert config["model"]["image_shape"] == [1, 10] and config["train"]["max_shift"] == 0
    graph = load_graph(out)
    assert graph.nodes[0].shape == (4, 1, 10)
    check = pipeline.check_run(out, progress=False)
    assert check["all_equal"] and check["n_samples"] == 88
    # the summary's MAE from the IR's class output, recomputed here
    ds = load_dataset("diabetes:8", train_per_class=5, seed=1)
    codes = _thermometer4(ds.x_test)
    logits, bits, cls = run(graph, codes)
    np.testing.assert_array_equal(cls, hamming_decode_numpy(bits, np.array(config["codebook"])))
    t, centres = ds.targets.t_test, ds.targets.centres
    want = sum(abs(centres[c] - v) for c, v in zip(cls, t)) / len(t)
    assert math.isclose(s["mae_ir"], want) and math.isclose(s["mae"], want)
    assert s["levels"] == centres.tolist() and s["mae_floor"] <= s["mae"]
    assert np.isfinite(s["mae_expected"]) and s["rmse"] >= s["mae"]
    assert math.isclose(run_mae(out)["mae"], want)


def test_learned_decoder_regression_run(tmp_path):
    import heatq.ir

    if not hasattr(heatq.ir, "ArgmaxAttrs"):
        pytest.skip("the ARGMAX op (a learned decoder's IR) has not landed yet")
    out = tmp_path / "run"
    s = pipeline.train_run(out, "diabetes:4", "mlp", "thermometer:2", "thermometer", epochs=1,
                           qat_epochs=1, seed=0, train_per_class=8, progress=False,
                           decoder="learned")
    assert s["mae"] == s["mae_ir"] == run_mae(out)["mae"] and "mae_hamming" in s


def _thermometer4(x: np.ndarray) -> np.ndarray:
    """thermometer:4 codes of uint8 features [N, 1, 10] as the IR's int64 input."""
    t = np.array([((j + 1) * 512 + 5) // 10 for j in range(4)])  # round_half_up((j+1)*256/5)
    return (x[:, None, :, :].astype(np.int64) >= t[None, :, None, None]).astype(np.int64)
