"""Lowering: constant matrix-vector products (DENSE, CONV2D at one window position) to
short-carry adder graphs.  See :mod:`heatq.lower.cmvm` and :mod:`heatq.lower.adders`."""

from .adders import Adder, AdderGraph, InputNode, Output, Term
from .cmvm import csd, digits, lower_cmvm

__all__ = ["Adder", "AdderGraph", "InputNode", "Output", "Term", "csd", "digits", "lower_cmvm"]

from .graph import (  # noqa: E402
    LayerPlan, LoweredGraph, check_lowering, lower_graph, requant_tail, rounding_const,
    run_lowered,
)

__all__ += ["LayerPlan", "LoweredGraph", "check_lowering", "lower_graph", "requant_tail",
            "rounding_const", "run_lowered"]
