"""The bundle's golden vectors (``tb/vectors/``): inputs and the interpreter's outputs as text.

* ``in.hex``: one input beat per line, hex, ``{s_tlast, s_tdata}`` (``s_tdata``: the port's
  width, channel / element ``c`` at bits ``[c*w +: w]``, two's complement when the input is
  signed; ``s_tlast``: the bit above it, set on each image's last pixel; 1 on every beat in
  parallel mode, where the top has no ``s_tlast``);
* ``out.hex``: one result per line, hex, every output port's word concatenated, the first
  port in the low bits (element ``j`` of a port at ``[j*w +: w]``, as the port carries it);
* ``vectors.json``: the layouts, the model's latency and II, the stall seed;
* ``expected.json``: each result decoded, one object per vector (port -> its elements).

The inputs are the first N test images of the graph's dataset (with its input code) plus the
corner vectors (:func:`heatq.inputs.target_inputs`); a graph that records no dataset gets N
seeded random vectors plus the corner vectors.  The outputs are :func:`heatq.ir.run`'s.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from heatq.inputs import Inputs, target_inputs
from heatq.ir import IntGraph, run

STALL_SEED = 20261202  # the test benches' m_tready stall pattern (overridable when run)


def golden_inputs(graph: IntGraph, n_images: int) -> Inputs:
    """The golden input vectors (see the module docstring)."""
    if graph.meta.get("dataset"):
        return target_inputs(graph, "bundle", n=n_images)
    return target_inputs(graph, "bundle", random=n_images)


def _pack(vals, w: int) -> int:
    mask, out = (1 << w) - 1, 0
    for i, v in enumerate(vals):
        out |= (int(v) & mask) << (i * w)
    return out


def out_fields(ports: dict[str, Any]) -> list[dict[str, Any]]:
    """The output ports' places in an ``out.hex`` word: port, lsb, width, elements."""
    fields, lsb = [], 0
    for o in ports["outputs"]:
        width = o["elems"] * o["elem_width"]
        fields.append({"port": o["port"], "name": o["name"], "lsb": lsb, "width": width,
                       "elems": o["elems"], "elem_width": o["elem_width"],
                       "elem_signed": o["elem_signed"]})
        lsb += width
    return fields


def _hex_lines(words: list[int], width: int) -> str:
    digits = max(1, -(-width // 4))
    return "".join(f"{w:0{digits}x}\n" for w in words)


def golden_files(graph: IntGraph, ports: dict[str, Any], inputs: Inputs, model: dict[str, Any],
                 clock_period: float) -> dict[str, str]:
    """``{"tb/vectors/in.hex", "out.hex", "vectors.json", "expected.json": text}`` for ``inputs``;
    ``model``: ``{"latency", "ii", "max_cycles"}`` of the design."""
    from heatq_sim.vectors import input_beats

    x = inputs.x
    outs = run(graph, x)
    tw = ports["s_tdata"]["width"]
    beats = input_beats(ports, x)
    fields = out_fields(ports)
    results, expected = [], []
    for i in range(len(x)):
        word, dec = 0, {}
        for k, f in enumerate(fields):
            vals = np.asarray(outs[k][i]).reshape(-1)
            word |= _pack(vals.tolist(), f["elem_width"]) << f["lsb"]
            dec[f["port"]] = [int(v) for v in vals]
        results.append(word)
        expected.append(dec)
    out_w = sum(f["width"] for f in fields)
    meta = {
        "format": "heatq-golden/1", "mode": ports["mode"], "inputs": inputs.text,
        "source": inputs.source, "n_vectors": len(x), "n_images": inputs.n_images,
        "n_corner": inputs.n_corner, "n_beats": len(beats),
        "in_word": {"width": tw + 1, "tdata_width": tw, "tlast_bit": tw,
                    "elem_width": ports["s_tdata"]["elem_width"],
                    "elem_signed": ports["s_tdata"]["elem_signed"],
                    "elems": ports["s_tdata"]["elems"]},
        "out_word": {"width": out_w, "fields": fields},
        "model": {k: model[k] for k in ("latency", "ii")},
        "max_cycles": model["max_cycles"], "stall_seed": STALL_SEED,
        "clock_period_ns": clock_period,
    }
    return {
        "tb/vectors/in.hex": _hex_lines([(last << tw) | d for d, last in beats], tw + 1),
        "tb/vectors/out.hex": _hex_lines(results, out_w),
        "tb/vectors/vectors.json": json.dumps(meta, indent=1, sort_keys=True) + "\n",
        "tb/vectors/expected.json": "[\n" + ",\n".join(json.dumps(e) for e in expected) + "\n]\n",
    }
