"""IR-to-IR passes: each is an ``IntGraph -> IntGraph`` function object with a name and a
docstring stating what it preserves; :class:`PassManager` runs a list of them, verifying the
graph after each; :func:`heatq.passes.testing.assert_preserves` is the one test helper.

Nothing here imports torch.
"""

from .base import Pass, PassManager
from .lower import LowerProducts, lower_products

__all__ = ["Pass", "PassManager", "LowerProducts", "lower_products"]
