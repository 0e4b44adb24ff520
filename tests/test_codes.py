"""Input codes (bit-plane, thermometer) and output codes (ECOC) with Hamming decoding."""

import itertools

import numpy as np
import pytest
import torch

from heatq.codes import (
    InputCode,
    OutputCode,
    code_targets_torch,
    hamming_decode_numpy,
    hamming_decode_torch,
    parse_input_code,
    parse_output_code,
    thermometer_thresholds,
)
from heatq.errors import UserError

ALL_PIXELS = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)


# ---------------------------------------------------------------------- input codes


@pytest.mark.parametrize("n", range(1, 9))
def test_bitplane_round_trip(n):
    code = parse_input_code(f"bitplane:{n}")
    assert code.channels == n and code.kind == "bitplane" and code.thresholds == ()
    bits = code.encode_numpy(ALL_PIXELS)
    assert bits.shape == (1, n, 16, 16) and bits.dtype == np.uint8
    assert set(np.unique(bits)) <= {0, 1}
    weights = (2 ** (7 - np.arange(n))).reshape(1, n, 1, 1)
    recon = (bits.astype(np.int64) * weights).sum(axis=1)
    mask = 0xFF & ~((1 << (8 - n)) - 1)
    np.testing.assert_array_equal(recon, ALL_PIXELS.astype(np.int64) & mask)


def test_bitplane_msb_first():
    x = np.array([[[0b10100000]]], dtype=np.uint8)
    np.testing.assert_array_equal(parse_input_code("bitplane:3").encode_numpy(x)[0, :, 0, 0], [1, 0, 1])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 15, 16, 100, 254, 255])
def test_thermometer_counts_thresholds(n):
    code = parse_input_code(f"thermometer:{n}")
    t = np.array(code.thresholds)
    assert len(t) == n == code.channels
    assert (np.diff(t) > 0).all() and t.min() >= 1 and t.max() <= 255
    bits = code.encode_numpy(ALL_PIXELS)
    assert bits.shape == (1, n, 16, 16)
    count = bits.sum(axis=1)[0].ravel()
    expect = (t[None, :] <= np.arange(256)[:, None]).sum(axis=1)
    np.testing.assert_array_equal(count, expect)
    # a thermometer word is monotone: ones first, then zeros
    assert (np.diff(bits.astype(np.int8), axis=1) <= 0).all()


def test_thermometer_thresholds_formula():
    assert thermometer_thresholds(1) == (128,)
    assert thermometer_thresholds(3) == (64, 128, 192)
    assert thermometer_thresholds(255) == tuple(range(1, 256))
    # half-up rounding: 256*1/5 = 51.2 -> 51, 256*2/5 = 102.4 -> 102, 153.6 -> 154, 204.8 -> 205
    assert thermometer_thresholds(4) == (51, 102, 154, 205)


@pytest.mark.parametrize("spec", ["bitplane:4", "thermometer:5", "bitplane:8", "thermometer:255"])
def test_encode_torch_matches_numpy(spec):
    code = parse_input_code(spec)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(3, 5, 7), dtype=np.uint8)
    ref = code.encode_numpy(x)
    for t in (torch.from_numpy(x), torch.from_numpy(x.astype(np.int64))):
        out = code.encode_torch(t)
        assert out.dtype == torch.float32 and tuple(out.shape) == ref.shape
        np.testing.assert_array_equal(out.numpy(), ref.astype(np.float32))


def test_encode_rejects_bad_inputs():
    code = parse_input_code("bitplane:4")
    with pytest.raises(TypeError):
        code.encode_numpy(np.zeros((1, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError):
        code.encode_numpy(np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(TypeError):
        code.encode_torch(torch.zeros(1, 2, 2))
    with pytest.raises(ValueError):
        code.encode_torch(torch.full((1, 2, 2), 300, dtype=torch.int32))


@pytest.mark.parametrize("spec", ["bitplane:0", "bitplane:9", "thermometer:0", "thermometer:256", "bitplane",
                                  "bitplane:x", "gray:4", "", "thermometer:-1"])
def test_bad_input_specs(spec):
    with pytest.raises(UserError) as e:
        parse_input_code(spec)
    msg = str(e.value)
    assert repr(spec) in msg and "\n" not in msg


def test_custom_thresholds_validated():
    code = InputCode("thermometer", 2, (10, 20))
    assert code.encode_numpy(np.array([[[15]]], np.uint8))[0, :, 0, 0].tolist() == [1, 0]
    with pytest.raises(ValueError):
        InputCode("thermometer", 2, (20, 10))
    with pytest.raises(ValueError):
        InputCode("thermometer", 2, (0, 10))


# --------------------------------------------------------------------- output codes


def _row_distances(m):
    k = m.shape[0]
    return [int((m[i] != m[j]).sum()) for i, j in itertools.combinations(range(k), 2)]


def test_onehot():
    c = parse_output_code("onehot", 10)
    np.testing.assert_array_equal(c.matrix, np.eye(10, dtype=np.uint8))
    assert c.length == 10 and c.n_classes == 10 and c.min_distance() == 2


def test_hadamard_15_for_10_classes():
    c = parse_output_code("hadamard:15", 10)
    assert c.matrix.shape == (10, 15) and c.matrix.dtype == np.uint8
    assert c.min_distance() == 8
    assert set(_row_distances(c.matrix)) == {8}  # equidistant
    assert set(np.unique(c.matrix)) == {0, 1}


@pytest.mark.parametrize("k,length", [(2, 3), (4, 3), (8, 7), (16, 15), (20, 31), (32, 31)])
def test_hadamard_distance_general(k, length):
    c = parse_output_code(f"hadamard:{length}", k)
    assert c.matrix.shape == (k, length)
    assert min(_row_distances(c.matrix)) == c.min_distance() == (length + 1) // 2


@pytest.mark.parametrize("spec,k", [("hadamard:14", 10), ("hadamard:7", 9), ("hadamard:0", 2), ("hadamard:x", 2)])
def test_hadamard_errors(spec, k):
    with pytest.raises(UserError, match="hadamard"):
        parse_output_code(spec, k)


def test_full_code_10_classes():
    c = parse_output_code("full", 10)
    m = c.matrix
    assert m.shape == (10, 511)
    cols = {tuple(col) for col in m.T}
    assert len(cols) == 511
    assert not any(tuple(1 - np.array(col)) in cols for col in cols)  # no complementary pairs
    assert all(0 < sum(col) < 10 for col in cols)  # no constant column
    assert (m[9] == 0).all()
    # column m-1 encodes the integer m in its first K-1 rows
    np.testing.assert_array_equal((m[:9].astype(np.int64) << np.arange(9)[:, None]).sum(axis=0), np.arange(1, 512))
    assert c.min_distance() == 256


def test_full_code_too_many_classes():
    assert parse_output_code("full", 16).length == 2 ** 15 - 1
    with pytest.raises(UserError, match="full"):
        parse_output_code("full", 17)


def test_random_code_deterministic_and_valid():
    a = parse_output_code("random:15", 10, seed=3)
    b = parse_output_code("random:15", 10, seed=3)
    c = parse_output_code("random:15", 10, seed=4)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert not np.array_equal(a.matrix, c.matrix)
    assert a.matrix.shape == (10, 15)
    assert (a.matrix.min(axis=0) != a.matrix.max(axis=0)).all()  # no constant columns
    assert a.min_distance() == min(_row_distances(a.matrix)) >= 5


def test_random_code_keeps_best_of_draws():
    # with only 3 bits and 4 classes, the best draw is a permutation of the 4 distinct words
    # at distance >= 1; the max-min selection must find rows that are all distinct.
    c = parse_output_code("random:3", 4, seed=0)
    assert c.min_distance() >= 1
    assert len({tuple(r) for r in c.matrix}) == 4


@pytest.mark.parametrize("spec", ["ecoc", "random", "random:0", "hadamard", "onehot:3", "full:3"])
def test_bad_output_specs(spec):
    with pytest.raises(UserError) as e:
        parse_output_code(spec, 10)
    assert repr(spec) in str(e.value) and "\n" not in str(e.value)


def test_output_code_matrix_is_read_only():
    c = parse_output_code("onehot", 3)
    with pytest.raises(ValueError):
        c.matrix[0, 0] = 0
    with pytest.raises(ValueError):
        OutputCode("bad", np.array([[0, 2], [1, 0]]))


# ------------------------------------------------------------------------- decoding


def test_hamming_decode_ties_go_to_lowest_class():
    m = np.array([[1, 1, 0, 0],
                  [0, 0, 1, 1],
                  [1, 0, 1, 0]], dtype=np.uint8)
    bits = np.array([
        [1, 0, 0, 1],  # distance 2 to every row -> class 0
        [0, 1, 1, 0],  # distance 2, 2, 2 -> class 0
        [0, 0, 1, 0],  # distances 3, 1, 1 -> class 1 (tie between 1 and 2)
        [1, 0, 1, 0],  # exact match to row 2
        [1, 1, 1, 0],  # distances 1, 3, 1 -> class 0
    ], dtype=np.uint8)
    expect = [0, 0, 1, 2, 0]
    np.testing.assert_array_equal(hamming_decode_numpy(bits, m), expect)
    logits = torch.from_numpy(np.where(bits == 1, 0.5, -0.5).astype(np.float32))
    assert hamming_decode_torch(logits, m).tolist() == expect


def test_torch_bit_is_strictly_positive():
    m = np.array([[0, 0], [1, 1]], dtype=np.uint8)
    # logit exactly 0 is a 0 bit
    assert hamming_decode_torch(torch.tensor([[0.0, 0.0], [1e-6, 1e-6], [0.0, 1.0]]), m).tolist() == [0, 1, 0]


@pytest.mark.parametrize("spec", ["onehot", "hadamard:15", "random:20", "full"])
def test_torch_and_numpy_decoders_agree(spec):
    code = parse_output_code(spec, 10, seed=7)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, code.length)).astype(np.float32)
    logits[rng.random(logits.shape) < 0.05] = 0.0  # exercise the strict `> 0`
    ref = hamming_decode_numpy((logits > 0).astype(np.uint8), code.matrix)
    out = hamming_decode_torch(torch.from_numpy(logits), code.matrix)
    assert out.dtype == torch.int64
    np.testing.assert_array_equal(out.numpy(), ref)
    assert ref.dtype == np.int64


def test_decode_codewords_recovers_classes_and_corrects_errors():
    code = parse_output_code("hadamard:15", 10)
    y = np.arange(10)
    np.testing.assert_array_equal(hamming_decode_numpy(code.matrix, code.matrix), y)
    noisy = code.matrix.copy()
    rng = np.random.default_rng(0)
    for r in range(10):  # distance 8 corrects any 3 flipped bits
        noisy[r, rng.choice(15, size=3, replace=False)] ^= 1
    np.testing.assert_array_equal(hamming_decode_numpy(noisy, code.matrix), y)


def test_code_targets():
    code = parse_output_code("hadamard:15", 10)
    y = torch.tensor([3, 0, 9, 3])
    t = code_targets_torch(y, code.matrix)
    assert t.dtype == torch.float32 and tuple(t.shape) == (4, 15)
    np.testing.assert_array_equal(t.numpy(), code.matrix[[3, 0, 9, 3]].astype(np.float32))


def test_empty_batch():
    m = parse_output_code("onehot", 3).matrix
    assert hamming_decode_torch(torch.zeros(0, 3), m).shape == (0,)
    assert hamming_decode_numpy(np.zeros((0, 3), np.uint8), m).shape == (0,)
