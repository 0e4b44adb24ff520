"""heatq's integer IR: types, ops, the graph, its rules, the reference interpreter and file I/O.

Nothing in this package imports torch.
"""

from .graph import GraphBuilder, IntGraph, Node
from .interp import run
from .ops import (
    SPECS, AddAttrs, ArgmaxAttrs, BitAttrs, CmvmAttrs, ConcatAttrs, Conv2dAttrs, DenseAttrs,
    FlattenAttrs, GlobalAvgPoolAttrs, HammingDecodeAttrs, InputAttrs, MaxPool2dAttrs, Op, OpSpec, RequantAttrs,
    SignBitsAttrs, ThresholdAttrs,
)
from .errors import IRError
from .serialize import IR_VERSION, load, save
from .types import IntType, Overflow, Rounding

__all__ = [
    "GraphBuilder", "IntGraph", "Node", "run", "Op", "IntType", "Overflow", "Rounding", "IRError",
    "InputAttrs", "Conv2dAttrs", "DenseAttrs", "RequantAttrs", "MaxPool2dAttrs", "FlattenAttrs",
    "SignBitsAttrs", "HammingDecodeAttrs", "ThresholdAttrs", "CmvmAttrs", "AddAttrs", "BitAttrs",
    "ConcatAttrs", "ArgmaxAttrs", "GlobalAvgPoolAttrs", "OpSpec",
    "SPECS",
    "IR_VERSION", "load", "save",
]
