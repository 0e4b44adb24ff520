"""Reading a QONNX model for :mod:`heatq.interop.onnx_import`: loading (one-line errors naming
the file), normalising with qonnx's own transformations, and the exact integer view of a
``Quant`` node (power-of-two scales, zero point 0).

A ``Quant`` (QONNX ``qonnx.custom_op.general``) computes
``y = (clip(round(x / scale + zp), min_int, max_int) - zp) * scale`` with ``min_int`` /
``max_int`` from ``signed``, ``narrow`` and ``bitwidth`` and ``round`` from ``rounding_mode``.
With ``scale = 2**-f`` and ``zp = 0`` its output is the integer ``q`` at binary point ``f``,
which is what the IR stores.  onnx and qonnx are imported inside the functions (the CLI starts
without them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError

QUANT_OPS = ("Quant", "BipolarQuant", "Trunc", "QuantizeLinear", "DequantizeLinear")


class Refusal(UserError):
    """What the import cannot represent exactly: ``<file>: node '<name>' (<op>): <why>``."""


def refuse(label: str, node, why: str) -> Refusal:
    """The one-line refusal naming ``node`` (an ONNX NodeProto) of the model ``label``."""
    return Refusal(f"{label}: node '{node.name}' ({node.op_type}): {why}")


def load_model(source) -> tuple[object, str, bytes | None]:
    """(qonnx ModelWrapper, label for messages, the file's bytes or None) of a path or an
    ``onnx.ModelProto``.  A missing file or one that is not an ONNX model is one UserError
    naming the file."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper

    if isinstance(source, onnx.ModelProto):
        return ModelWrapper(source), source.graph.name or "<ModelProto>", None
    path = Path(source)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        proto = onnx.load(str(path))  # also reads external data beside the file
    except Exception as e:  # protobuf raises DecodeError and others on a foreign file
        raise UserError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    if not proto.graph.node:
        raise UserError(f"{path}: not an ONNX model (no graph nodes)")
    return ModelWrapper(proto), str(path), data


def normalise(model, label: str):
    """The model after qonnx's cleanup steps: shapes inferred, constants folded (Quant nodes
    kept), transposes folded into Quant initializers, static graph inputs (torch's dynamo
    export lists every initializer there) removed, nodes sorted; node and activation names
    are kept so refusals and the tensor map name what the source file holds."""
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import (
        GiveUniqueNodeNames, RemoveStaticGraphInputs, RemoveUnusedTensors, SortGraph,
    )
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    names = [n.name for n in model.graph.node]
    if any(not n for n in names) or len(set(names)) != len(names):
        model = model.transform(GiveUniqueNodeNames())
    steps = [InferShapes(), FoldConstants(exclude_op_types=list(QUANT_OPS)),
             FoldTransposeIntoQuantInit(), RemoveUnusedTensors(), RemoveStaticGraphInputs(),
             SortGraph(), InferShapes()]
    try:
        for step in steps:
            model = model.transform(step)
    except Exception as e:  # qonnx / onnx shape inference on a model it cannot read
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise UserError(f"{label}: qonnx cannot normalise the model ({first.strip()[:160]})") \
            from None
    return model


def attrs_of(node) -> dict:
    """An ONNX node's attributes as Python values (strings decoded)."""
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def po2_frac(scale: float) -> int | None:
    """``f`` with ``scale == 2**-f`` exactly, or None (not a positive power of two)."""
    s = float(scale)
    if not (s > 0 and math.isfinite(s)):
        return None
    m, e = math.frexp(s)
    return 1 - e if m == 0.5 else None


def scale_fracs(label: str, node, scale: np.ndarray) -> np.ndarray:
    """The binary points (int64, the scale's shape) of a power-of-two scale; refuses any other
    scale (it needs a real multiplier, not a shift)."""
    scale = np.asarray(scale, dtype=np.float64)
    fracs = [po2_frac(s) for s in scale.ravel()]
    bad = [float(s) for s, f in zip(scale.ravel(), fracs) if f is None]
    if bad:
        raise refuse(label, node, f"scale {bad[0]:.9g} is not a power of two (it needs a real "
                                  "multiplier; heatq's integer graph rescales by shifts only)")
    return np.array(fracs, dtype=np.int64).reshape(scale.shape)


@dataclass(frozen=True)
class QuantInfo:
    """One Quant node's parameters: ``fracs`` (int64, the scale's shape: scale = 2**-fracs;
    None for a real scale, allowed only on constants), ``scale`` (float64), the integer range
    ``lo..hi`` and the rounding mode (upper case)."""

    fracs: np.ndarray | None
    scale: np.ndarray
    lo: int
    hi: int
    signed: bool
    narrow: bool
    bits: int
    rounding: str


def quant_info(model, label: str, node, real_ok: bool = False) -> QuantInfo:
    """Parameters of a ``Quant`` node whose scale, zero point and bit width are constants;
    refuses a non-power-of-two scale (unless ``real_ok``: then ``fracs`` is None), a non-zero
    zero point, a non-integer or 1-bit signed (bipolar) width."""
    from qonnx.custom_op.general.quant import max_int, min_int

    if len(node.input) != 4:
        raise refuse(label, node, "expected 4 inputs (x, scale, zero point, bit width)")
    scale, zp, bits = (model.get_initializer(t) for t in node.input[1:])
    if scale is None or zp is None or bits is None:
        raise refuse(label, node, "scale, zero point and bit width must be constants")
    scale = np.asarray(scale, dtype=np.float64)
    real = real_ok and any(po2_frac(v) is None for v in scale.ravel()) and np.all(scale > 0)
    fracs = None if real else scale_fracs(label, node, scale)
    if np.any(np.asarray(zp) != 0):
        raise refuse(label, node, f"zero point {float(np.ravel(zp)[np.ravel(zp) != 0][0]):g} "
                                  "is not 0 (heatq's integers have no offset)")
    b = float(np.ravel(bits)[0])
    if np.ravel(bits).size != 1 or b != int(b) or b < 1:
        raise refuse(label, node, f"bit width {np.ravel(bits).tolist()} is not one integer >= 1")
    a = attrs_of(node)
    signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
    if signed and int(b) == 1:
        raise refuse(label, node, "a 1-bit signed Quant is bipolar (+-1), not supported")
    lo, hi = int(min_int(signed, narrow, int(b))), int(max_int(signed, narrow, int(b)))
    mode = str(a.get("rounding_mode", "ROUND")).upper()
    return QuantInfo(fracs, scale, lo, hi, signed, narrow, int(b), mode)


def constant_integers(model, label: str, node, info: QuantInfo) -> np.ndarray:
    """The integers (int64) a Quant on a float initializer (weights, a bias) produces, computed
    by qonnx's own ``quant`` function, then divided by the (power-of-two) scale."""
    from qonnx.custom_op.general.quant import quant

    x = model.get_initializer(node.input[0])
    if x is None:
        raise refuse(label, node, "expected a constant (initializer) input")
    scale = np.asarray(model.get_initializer(node.input[1]), dtype=np.float64)
    y = quant(np.asarray(x, dtype=np.float64), scale, np.float64(0), np.float64(info.bits),
              int(info.signed), int(info.narrow), info.rounding)
    q = np.asarray(y, dtype=np.float64) / scale
    exact = np.array_equal(q, np.rint(q)) if info.fracs is not None else \
        np.all(np.abs(q - np.rint(q)) < 1e-6)  # a real scale: (q * s) / s is q to 1 ulp
    if not exact:
        raise refuse(label, node, "its outputs are not integers times its scale")
    return np.rint(q).astype(np.int64)
