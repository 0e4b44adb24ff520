"""Learned decoders (heatq/decoder.py): the Hamming start, training, JSON, the IR form."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from heatq.codes import hamming_decode_numpy, parse_output_code
from heatq.decoder import Decoder, DecoderSpec, fit_decoder, parse_decoder
from heatq.errors import UserError


def _all_bits(length: int) -> np.ndarray:
    return np.array(list(itertools.product((0, 1), repeat=length)), dtype=np.uint8)


@pytest.mark.parametrize("spec", ["onehot", "hadamard:7", "random:8", "full"])
def test_the_start_is_hamming_decoding_on_every_word(spec):
    """Every bit pattern (ties included) decodes to Hamming's class; L odd and even."""
    code = parse_output_code(spec, 4 if spec == "full" else 6, seed=3)
    bits = _all_bits(code.length)
    dec = Decoder.from_code(code.matrix)
    assert np.array_equal(dec.predict(bits), hamming_decode_numpy(bits, code.matrix))


def test_the_start_score_is_half_the_pm1_dot_product():
    m = parse_output_code("random:9", 5, seed=1).matrix.astype(np.int64)
    bits = _all_bits(9).astype(np.int64)
    ham = bits @ (1 - m).T + (1 - bits) @ m.T
    assert np.array_equal(Decoder.from_code(m).scores(bits), (9 - 2 * ham - 1) // 2)


def test_parse_decoder():
    assert parse_decoder("hamming") == DecoderSpec("hamming")
    assert parse_decoder("learned") == DecoderSpec("learned")
    assert parse_decoder("Learned:16").hidden == 16
    for bad in ("learned:0", "learned:x", "boost", "learned:99999"):
        with pytest.raises(UserError, match="bad decoder"):
            parse_decoder(bad)


def _noisy(matrix, y, flip, rng):
    bits = matrix[y].copy()
    mask = rng.random(bits.shape) < flip
    return np.where(mask, 1 - bits, bits).astype(np.uint8)


def test_fitting_learns_unreliable_bits_and_never_loses_to_its_start():
    """Bits 0-2 of a repeated code are almost random: the learned decoder must beat Hamming
    on fresh data, and on its selection data it is never worse than the start."""
    rng = np.random.default_rng(0)
    matrix = parse_output_code("hadamard:15", 8).matrix
    y = rng.integers(0, 8, 3000)
    flip = np.full(15, 0.03)
    flip[:5] = 0.45
    bits = _noisy(matrix, y, flip, rng)
    sel_y = rng.integers(0, 8, 1000)
    sel = _noisy(matrix, sel_y, flip, rng)
    test_y = rng.integers(0, 8, 2000)
    test = _noisy(matrix, test_y, flip, rng)
    dec = fit_decoder(DecoderSpec("learned"), bits, y, matrix, sel, sel_y, seed=0, epochs=30)
    ham = Decoder.from_code(matrix)
    acc = lambda d, b, t: float((d.predict(b) == t).mean())  # noqa: E731
    assert acc(dec, sel, sel_y) >= acc(ham, sel, sel_y)
    assert acc(dec, test, test_y) > acc(ham, test, test_y) + 0.01
    again = fit_decoder(DecoderSpec("learned"), bits, y, matrix, sel, sel_y, seed=0, epochs=30)
    assert all(np.array_equal(a, b) for la, lb in zip(dec.layers, again.layers)
               for a, b in zip(la, lb))


def test_hidden_layer_decoder_fits_and_round_trips_json():
    rng = np.random.default_rng(1)
    matrix = parse_output_code("random:12", 4, seed=0).matrix
    y = rng.integers(0, 4, 800)
    bits = _noisy(matrix, y, np.full(12, 0.1), rng)
    dec = fit_decoder(DecoderSpec("learned", 6), bits, y, matrix, seed=0, epochs=5)
    assert [w.shape for w, _ in dec.layers] == [(6, 12), (4, 6)]
    back = Decoder.from_json(dec.to_json())
    assert back.spec == dec.spec
    assert np.array_equal(back.predict(bits), dec.predict(bits))
    sums, hidden, scores = dec.trace(bits)
    assert np.array_equal(hidden, (sums > 0).astype(np.int64))
    assert np.array_equal(scores, hidden @ dec.layers[1][0].T + dec.layers[1][1])


def test_radius_detectors_fire_within_the_correction_radius():
    matrix = parse_output_code("hadamard:15", 4).matrix  # min distance 8: radius 3
    dec = fit_decoder(DecoderSpec("learned", 4), matrix.copy(), np.arange(4), matrix, epochs=0)
    w1, b1 = dec.layers[0]
    bits = _all_bits(15)
    ham = bits.astype(np.int64) @ (1 - matrix.T.astype(np.int64)) + (1 - bits) @ matrix.T
    assert np.array_equal((bits @ w1.T + b1) > 0, ham <= 3)


def test_bad_layers_are_refused():
    with pytest.raises(ValueError, match=r"\+-1"):
        Decoder(((np.zeros((2, 3)), np.zeros(2)),), DecoderSpec("learned"))
    with pytest.raises(ValueError, match="chain"):
        Decoder(((np.ones((2, 3)), np.zeros(2)), (np.ones((2, 4)), np.zeros(2))),
                DecoderSpec("learned", 2))
    with pytest.raises(ValueError, match="bits"):
        Decoder.from_code(np.eye(3, dtype=np.uint8)).predict(np.full((1, 3), 2))


# ------------------------------------------------------------------- a run end to end

@pytest.fixture(scope="module")
def learned_run(tmp_path_factory):
    """``heatq train --decoder learned:6`` on digits (MLP, a few seconds)."""
    from heatq.pipeline import train_run

    out = tmp_path_factory.mktemp("decoder") / "run"
    summary = train_run(out, dataset="digits", model="mlp", input_code="thermometer:3",
                        output_code="hadamard:15", epochs=4, qat_epochs=2, seed=0,
                        progress=False, val_fraction=0.2, decoder="learned:6")
    return out, summary


def test_a_learned_decoder_run_is_exact_and_its_ir_decodes_with_the_decoder(learned_run):
    from heatq.codes import hamming_decode_numpy
    from heatq.data import load_dataset
    from heatq.ir import Op, run
    from heatq.pipeline import check_run
    from heatq.rundir import codes_of, load_graph, read_json

    out, summary = learned_run
    assert {"acc_quant", "acc_quant_hamming", "acc_ir"} <= set(summary)
    assert summary["acc_ir"] == summary["acc_quant"]
    config = read_json(out / "config.json")
    ic, oc = codes_of(config)
    assert oc.decoder is not None and oc.decoder.spec == DecoderSpec("learned", 6)
    graph = load_graph(out)
    assert graph.by_name("class").op is Op.ARGMAX
    assert [n.op for n in graph.nodes[-5:]] == [Op.SIGN_BITS, Op.DENSE, Op.SIGN_BITS, Op.DENSE,
                                                Op.ARGMAX]
    ds = load_dataset("digits", seed=0)
    logits, bits, cls = run(graph, ic.encode_numpy(ds.x_test).astype(np.int64))
    assert np.array_equal(cls, oc.decoder.predict(bits))
    ham = float((hamming_decode_numpy(bits, oc.matrix) == ds.y_test).mean())
    assert ham == summary["acc_quant_hamming"]
    check = check_run(out, progress=False)
    assert check["all_equal"] and "decoder.hidden_1.bits" in check["layers"]


def test_check_fails_when_the_graph_decoder_is_not_the_runs(learned_run, tmp_path):
    """heatq check compares the graph's decoder with config.json's, not with itself."""
    import shutil

    from heatq.pipeline import check_run
    from heatq.rundir import read_json, write_json

    out = tmp_path / "run"
    shutil.copytree(learned_run[0], out)
    config = read_json(out / "config.json")
    w = np.array(config["decoder"]["layers"][-1]["w"])
    w[:, 0] = -w[:, 0]
    config["decoder"]["layers"][-1]["w"] = w.tolist()
    write_json(out / "config.json", config)
    check = check_run(out, progress=False)
    assert not check["all_equal"] and check["layers"]["decoder.scores"] < 1.0


def test_heating_keeps_the_learned_decoder(learned_run, tmp_path):
    from heatq.heat.command import heat
    from heatq.ir import Op
    from heatq.pipeline import check_run
    from heatq.rundir import load_graph, read_json

    out = tmp_path / "heated"
    s = heat(learned_run[0], out, max_acc_drop=5.0, epochs=1, finetune_epochs=1,
             quench_epochs=1, ref_epochs=None, progress=False, max_bits=4)
    assert s["constraint_met"]
    assert read_json(out / "config.json")["decoder"] == read_json(
        learned_run[0] / "config.json")["decoder"]
    assert load_graph(out).by_name("class").op is Op.ARGMAX
    assert check_run(out, progress=False)["all_equal"]
