"""Lowering: constant matrix-vector products (DENSE, CONV2D at one window position) to
short-carry adder graphs.  See :mod:`heatq.lower.cmvm` and :mod:`heatq.ir.adders`."""

from heatq.ir.adders import Adder, AdderGraph, InputNode, Output, Term, coeff_range

from .cmvm import csd, digits, lower_cmvm

__all__ = ["Adder", "AdderGraph", "InputNode", "Output", "Term", "coeff_range", "csd", "digits",
           "lower_cmvm"]

from .graph import (  # noqa: E402
    LayerPlan, LoweredGraph, check_lowering, lower_graph, requant_tail, rounding_const,
    run_lowered,
)

__all__ += ["LayerPlan", "LoweredGraph", "check_lowering", "lower_graph", "requant_tail",
            "rounding_const", "run_lowered"]
