"""bench/codes.py, the code-length study: the bit-flip function, and its quick mode end to end
(two trainings, one yosys run per decoder) checked against the runs' own summaries."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _codes():
    """bench/codes.py as a module (a script, not a package)."""
    spec = importlib.util.spec_from_file_location("codes", BENCH / "codes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flip_bits_flips_exactly_k_distinct_positions():
    codes = _codes()
    bits = np.random.default_rng(5).integers(0, 2, size=(300, 31)).astype(np.uint8)
    before = bits.copy()
    for k in (0, 1, 2, 4, 30, 31):
        out = codes.flip_bits(bits, k, np.random.default_rng(k))
        assert out.dtype == bits.dtype and np.isin(out, (0, 1)).all()
        # k distinct positions <=> exactly k positions differ (a repeat would flip one back)
        assert ((out != bits).sum(axis=1) == k).all()
        again = codes.flip_bits(bits, k, np.random.default_rng(k))
        assert np.array_equal(out, again)  # seeded
    np.testing.assert_array_equal(bits, before)  # the input is not touched
    hit = (codes.flip_bits(bits, 1, np.random.default_rng(0)) != bits).any(axis=0)
    assert hit.all()  # every position can be chosen
    with pytest.raises(ValueError):
        codes.flip_bits(bits, 32, np.random.default_rng(0))


def test_flip_accuracies_k0_is_plain_decoding():
    codes = _codes()
    from heatq.codes import parse_output_code
    from heatq.decoder import Decoder

    m = parse_output_code("hadamard:15", 10).matrix
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 200)
    bits = codes.flip_bits(m[y], 2, rng)  # within the correction radius: decodes to y
    # a decoder that is not Hamming decoding: class 0 always wins
    bias = np.zeros(10, dtype=np.int64)
    bias[0] = 100
    always0 = Decoder(((2 * m.astype(np.int64) - 1, bias),), Decoder.from_code(m).spec)
    acc = codes.flip_accuracies(bits, y, m, always0, 3, seed=0)
    assert acc["hamming"]["0"] == 1.0
    assert acc["learned"]["0"] == pytest.approx(float((y == 0).mean()))
    assert sorted(acc["hamming"]) == ["0", "1", "2", "3"]
    assert acc["hamming"]["3"] < 1.0  # 2 + 3 flips exceed distance 8's radius somewhere


@pytest.mark.slow
@pytest.mark.needs_tool("yosys")
def test_quick_study(tmp_path):
    out = tmp_path / "codes"
    cmd = [sys.executable, str(BENCH / "codes.py"), "--quick", "--jobs", "1", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    doc = json.loads((out / "codes.json").read_text())
    rows = {(x["code"], x["decoder"]): x for x in doc["rows"]}
    assert set(rows) == {(c, d) for c in ("onehot", "hadamard:15") for d in ("hamming", "learned")}
    for (code, dec), row in rows.items():
        assert "error" not in row
        summary = json.loads((out / row["run"] / "summary.json").read_text())
        # the run's torch accuracies (float64 quant model, decode_torch) against the study's
        # (interpreter code bits, numpy decoders)
        want = summary["acc_quant_hamming" if dec == "hamming" else "acc_quant"]
        assert row["flips"]["0"] == want and row["acc_quant"] == want
        if dec == "hamming":
            assert row["acc_float"] == summary["acc_float"]
        assert sorted(row["flips"]) == ["0", "1", "2", "3", "4"]
        assert row["fc_weights"] == 64 * row["length"]
        assert row["length"] == {"onehot": 10, "hadamard:15": 15}[code]
    hw = {x["decoder"]: x for x in doc["hardware"]}
    assert set(hw) == {"hamming", "learned"} and all(x["code"] == "onehot" for x in hw.values())
    for x in hw.values():
        assert x["graph_matches_run"] is True
        assert "error" not in x and x["lut_carry"] > 0, x
    md = (out / "codes.md").read_text()
    assert "## Test accuracy" in md and "## Bit-flip robustness" in md and "## Hardware" in md
    assert sum(line.startswith("| mnist5k |") for line in md.splitlines()) == 8  # 4 x 2 tables
    assert (out / "codes.png").stat().st_size > 0

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # resumable
    assert again.returncode == 0 and "train " not in again.stdout, again.stdout
    assert json.loads((out / "codes.json").read_text())["rows"] == doc["rows"]
