"""``heatq split`` (:mod:`.command`): option checks (:mod:`.options`), the per-layer cost of
a split (:mod:`.stats`) and its printout (:mod:`.report`).  The passes themselves are
:mod:`heatq.passes.split`; the regrouping check is :mod:`heatq.split_check`."""
