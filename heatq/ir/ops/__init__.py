"""The IR's operations: the ``Op`` enum and ``SPECS``, one :class:`OpSpec` per op.

Each op lives in its own module of this package (``conv2d.py``, ``requant.py``, ...): its
frozen attribute class, its shape / range / binary-point rules and its evaluation, gathered
in ``SPEC``.  Arrays in attributes are integer NumPy arrays (int64, or uint8 for codebooks)
and are treated as read-only.  The integer semantics of every op are specified in
``docs/ir.md`` (section ``SPEC.doc_anchor``).  Adding an op: a module here, one ``Op``
member and one ``SPECS`` line below (see docs/ir.md §8).
"""

from __future__ import annotations

import enum
from dataclasses import fields


class Op(enum.Enum):
    """Operation kinds.  The value is the stable name used in the JSON file format."""

    INPUT = "input"
    CONV2D = "conv2d"
    DENSE = "dense"
    REQUANT = "requant"
    MAXPOOL2D = "maxpool2d"
    FLATTEN = "flatten"
    SIGN_BITS = "sign_bits"
    HAMMING_DECODE = "hamming_decode"
    THRESHOLD = "threshold"
    CMVM = "cmvm"
    ADD = "add"
    BIT = "bit"
    CONCAT = "concat"
    ARGMAX = "argmax"
    GLOBAL_AVGPOOL = "global_avgpool"


# the op modules import Op from here, so they come after it
from . import (  # noqa: E402
    add, argmax, bit, cmvm, concat, conv2d, dense, flatten, global_avgpool, hamming_decode, input,
    maxpool2d, requant, sign_bits, threshold,
)
from .add import AddAttrs  # noqa: E402
from .argmax import ArgmaxAttrs  # noqa: E402
from .base import Arg, OpSpec  # noqa: E402
from .bit import BitAttrs  # noqa: E402
from .cmvm import CmvmAttrs  # noqa: E402
from .concat import ConcatAttrs  # noqa: E402
from .conv2d import Conv2dAttrs  # noqa: E402
from .dense import DenseAttrs  # noqa: E402
from .flatten import FlattenAttrs  # noqa: E402
from .global_avgpool import GlobalAvgPoolAttrs  # noqa: E402
from .hamming_decode import HammingDecodeAttrs, hamming_distances  # noqa: E402
from .input import InputAttrs  # noqa: E402
from .maxpool2d import MaxPool2dAttrs  # noqa: E402
from .requant import RequantAttrs  # noqa: E402
from .sign_bits import SignBitsAttrs  # noqa: E402
from .threshold import ThresholdAttrs  # noqa: E402

SPECS: dict[Op, OpSpec] = {m.SPEC.op: m.SPEC for m in (
    input, conv2d, dense, requant, maxpool2d, flatten, sign_bits, hamming_decode, threshold, cmvm,
    add, bit, concat, argmax, global_avgpool,
)}
assert set(SPECS) == set(Op), "every Op needs a SPEC"


def attr_fields(attrs) -> list[str]:
    """Names of the attribute fields of an attrs instance, in declaration order."""
    return [f.name for f in fields(attrs)]


__all__ = [
    "Op", "OpSpec", "Arg", "SPECS", "attr_fields", "hamming_distances", "InputAttrs",
    "Conv2dAttrs", "DenseAttrs", "RequantAttrs", "MaxPool2dAttrs", "FlattenAttrs",
    "SignBitsAttrs", "HammingDecodeAttrs", "ThresholdAttrs", "CmvmAttrs",
    "AddAttrs", "BitAttrs", "ConcatAttrs", "ArgmaxAttrs", "GlobalAvgPoolAttrs",
]
