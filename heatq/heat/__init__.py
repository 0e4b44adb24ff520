"""Heating and constrained bit-width optimisation (DESIGN.md section 3).

* :mod:`.noise`: temperature schedules, rounding noise ``w + tau * step * u``, soft staircases;
* :mod:`.lagrange`: cost models (total weight bits, bit-operations), heating with continuous
  learned bits and dual ascent on a Lagrange multiplier;
* :mod:`.finalize`: integer finalisation by greedy bit-peeling or an ILP (PuLP / CBC);
* :mod:`.command`: ``heatq heat`` (:func:`heat`); :mod:`.report`: table and plot.
"""
