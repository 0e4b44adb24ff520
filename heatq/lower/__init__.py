"""Lowering: constant matrix-vector products (DENSE, CONV2D at one window position) to
short-carry adder graphs.  See :mod:`heatq.lower.cmvm` and :mod:`heatq.ir.adders`; the pass
that rewrites a graph's products into CMVM nodes is :mod:`heatq.passes.lower`."""

from heatq.ir.adders import Adder, AdderGraph, InputNode, Output, Term, coeff_range

from .cmvm import csd, digits, lower_cmvm

__all__ = ["Adder", "AdderGraph", "InputNode", "Output", "Term", "coeff_range", "csd", "digits",
           "lower_cmvm"]

