"""Packing inputs into port beats and unpacking output ports, from an export's port map
(``summary.json["ports"]``, written by the Verilog emitter)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def load_ports(export_dir: str | Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(top module, port map, report) of an export directory."""
    s = json.loads((Path(export_dir) / "summary.json").read_text())
    if s.get("target") != "verilog" or "ports" not in s:
        raise ValueError(f"{export_dir} is not a heatq Verilog export (summary.json)")
    return s["top"], s["ports"], s.get("report", {})


def _pack(vals, w: int) -> int:
    mask = (1 << w) - 1
    out = 0
    for i, v in enumerate(vals):
        out |= (int(v) & mask) << (i * w)
    return out


def input_beats(ports: dict[str, Any], x: np.ndarray) -> list[tuple[int, int]]:
    """``(tdata, tlast)`` beats for a batch: stream mode sends each image's pixels in raster
    order (channel c at bits ``[c*w +: w]``, ``tlast`` on the last pixel); parallel mode one
    vector per beat."""
    w = ports["s_tdata"]["elem_width"]
    beats = []
    if ports["mode"] == "stream":
        for img in np.asarray(x):
            c, h, wd = img.shape
            for r in range(h):
                for col in range(wd):
                    beats.append((_pack(img[:, r, col].tolist(), w),
                                  int(r == h - 1 and col == wd - 1)))
    else:
        for v in np.asarray(x):
            beats.append((_pack(v.ravel().tolist(), w), 1))
    return beats


def unpack_output(spec: dict[str, Any], value: int) -> np.ndarray:
    w, n, sgn = spec["elem_width"], spec["elems"], spec["elem_signed"]
    mask = (1 << w) - 1
    out = []
    for j in range(n):
        e = (value >> (j * w)) & mask
        if sgn and e >> (w - 1):
            e -= 1 << w
        out.append(e)
    return np.array(out, dtype=object if w > 62 else np.int64)


def compare(ports: dict[str, Any], got: list[list[int]], ref: list[np.ndarray]) -> dict[str, Any]:
    """In-order check of raw output words (one list of port values per result) against the
    oracle's outputs (``heatq.ir.run``).  Returns counts, the first mismatches and the
    index of every mismatch (``bad``)."""
    outs = ports["outputs"]
    n_ref = len(ref[0]) if ref else 0
    mism = []
    for i in range(max(n_ref, len(got))):
        if i >= len(got) or i >= n_ref:
            mism.append({"index": i, "reason": "missing" if i >= len(got) else "extra"})
            continue
        bad = {}
        for k, spec in enumerate(outs):
            v = unpack_output(spec, got[i][k])
            r = np.asarray(ref[k][i]).reshape(-1)
            if not np.array_equal(v.astype(object), r.astype(object)):
                bad[spec["port"]] = {"got": [int(a) for a in v], "want": [int(a) for a in r]}
        if bad:
            mism.append({"index": i, "ports": bad})
    return {"n": n_ref, "results": len(got), "mismatches": len(mism), "first": mism[:5],
            "bad": [m["index"] for m in mism]}
