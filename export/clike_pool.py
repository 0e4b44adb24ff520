"""The C-like renderer of GLOBAL_AVGPOOL (registered in
:data:`heatq_export.clike_ops.RENDERERS`).

``y[c]`` is the integer sum of channel ``c``'s ``H * W`` elements (docs/ir.md §5.15: the mean
is that sum at binary point ``frac_in + log2(H * W)``, so no division is rendered).  The sum
is accumulated in the node's own type (signedness and width of ``node.type``): its range
``n * lo .. n * hi`` (``n = H * W``) holds every element and every partial sum
``k * lo .. k * hi`` (``k <= n``, and 0), so no addition can overflow or wrap in C or HLS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from heatq.ir import IntGraph, Node

from .ctext import Lines

if TYPE_CHECKING:
    from .clike_ops import CLikeOps


def op_global_avgpool(ops: "CLikeOps", L: Lines, g: IntGraph, node: Node) -> None:
    """One loop per channel over its ``H * W`` contiguous elements (channel-major buffers),
    each cast to the node's type and added to ``acc`` (which starts at 0)."""
    src = g.nodes[node.args[0]]
    c, h, w = src.shape
    n, t = h * w, node.type
    x = ops.buf(src)
    with L.block(f"for (int c = 0; c < {c}; ++c)"):
        ops.pipeline(L)
        L(f"{ops.ctype(t, node.label())} acc = {ops.lit(0, t)};")
        with L.block(f"for (int p = 0; p < {n}; ++p)"):
            L(f"acc += {ops.cast(f'{x}[c * {n} + p]', t)};")
        L(f"{ops.buf(node)}[c] = acc;")
