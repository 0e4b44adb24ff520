"""The ``torch`` runner: an :class:`~heatq.ir.IntGraph` executed with PyTorch's own operators.

An independent executor for the conformance suite (it neither calls :func:`heatq.ir.run` nor
reuses the interpreter's NumPy evaluation): every node's values are an integer-valued float64
tensor, computed with ``torch.nn.functional.conv2d`` / ``linear`` / ``max_pool2d``, sums,
comparisons, ``torch.argmin`` and, where bits are needed (REQUANT's rounding and wrap, BIT),
int64 tensors (``torch.div(..., rounding_mode="floor")``, ``torch.remainder``, ``&``, ``>>``).

Exactness: float64 holds every integer of magnitude below ``2**53`` exactly, and a sum or
product of such integers whose exact result is also below ``2**53`` is computed exactly, in
any order (BLAS, fused multiply-add).  So :func:`check_exact` refuses (``EmitError`` naming the
node, at export time) a graph with

* a node whose range ``lo..hi`` leaves ``-2**53 < v < 2**53`` (for CONV2D / DENSE the range
  holds every partial sum of the accumulation: docs/ir.md section 4);
* an ADD whose terms and partial sums may reach ``2**53`` (``sum_i max(|lo_i|, |hi_i|) << s_i``);
* a CMVM whose product ``W @ x + c`` (``AdderGraph.matrix()``) may reach ``2**53`` in a
  partial sum (``max|x| * max_j sum_i |W_ji| + max |c|``).

GLOBAL_AVGPOOL's ``Tensor.sum`` over H, W needs no check of its own: every partial sum lies
in the node's range ``n * lo .. n * hi``.  Everything else is exact: REQUANT's floor shift,
rounding and wrap run on int64 tensors of the (exact) argument, a left shift multiplies by a
power of two (exact in float64), SATURATE's bounds are clipped to ``+-2**53`` (same result
whenever the output lies inside) and THRESHOLD's int64 thresholds likewise (same counts).
Outputs come back as int64 arrays ``[N, *shape]`` (no accepted node is wider than 54 bits).
The export holds only ``summary.json``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from heatq.ir import IntGraph, Op, Overflow, Rounding
from heatq.ir.ops.weighted import abs_bound

from .base import EmitError, write_export
from .runner_base import Runner, RunnerError

EXACT = 1 << 53  # float64 integers are exact strictly inside -2**53 .. 2**53
BATCH = 256      # samples per pass (bounded memory; one thread is enough)


__all__ = ["TorchRunner", "check_exact", "EXACT"]


# ---------------------------------------------------------------------------- the refusal
def _cmvm_bound(node, arg) -> int:
    """A bound on |every partial sum| of CMVM's ``W @ x + c`` (Python ints, exact; padding's
    zeros do not raise ``max |x|``)."""
    w, c = node.attrs.graph.matrix()
    return abs_bound(arg, w) + max((abs(int(v)) for v in c.tolist()), default=0)


def _problem(graph: IntGraph, node) -> str | None:
    if not (-EXACT < node.lo and node.hi < EXACT):
        return f"its range {node.lo}..{node.hi}"
    args = [graph.nodes[a] for a in node.args]
    if node.op is Op.ADD:
        bound = sum(max(-a.lo, a.hi) << s for a, s in zip(args, node.attrs.shifts))
        if bound >= EXACT:
            return f"its terms and partial sums (up to {bound} in magnitude)"
    if node.op is Op.CMVM:
        bound = _cmvm_bound(node, args[0])
        if bound >= EXACT:
            return f"the partial sums of its product (up to {bound} in magnitude)"
    return None


def check_exact(graph: IntGraph) -> None:
    """Raise :class:`EmitError` naming the first node the float64 execution cannot keep exact."""
    for node in graph.nodes:
        why = _problem(graph, node)
        if why is not None:
            raise EmitError(f"torch: {node.op.value} {node.label()}: {why} is beyond the "
                            "integers float64 holds exactly (|v| < 2**53)")


# ---------------------------------------------------------------------------- the ops
def _params(graph: IntGraph) -> dict[int, tuple]:
    """Per weighted node, its constant tensors (float64; exact: checked by check_exact)."""
    import torch

    f64 = torch.float64
    out: dict[int, tuple] = {}
    for n in graph.nodes:
        a = n.attrs
        if n.op in (Op.CONV2D, Op.DENSE):
            out[n.id] = (torch.tensor(a.weight, dtype=f64), torch.tensor(a.bias, dtype=f64))
        elif n.op is Op.CMVM:
            w, c = a.graph.matrix()
            w = torch.tensor(np.asarray(w, dtype=np.float64), dtype=f64)
            if a.layout == "conv2d":
                w = w.reshape(len(w), -1, a.kernel, a.kernel)  # window order (c_in, ky, kx)
            out[n.id] = (w, torch.tensor(np.asarray(c, dtype=np.float64), dtype=f64))
        elif n.op is Op.THRESHOLD:  # clipped to +-2**53: the same counts for |x| < 2**53
            t = np.clip(a.thresholds, -EXACT, EXACT).astype(np.float64)
            out[n.id] = (torch.tensor(t, dtype=f64),)
        elif n.op is Op.HAMMING_DECODE:
            out[n.id] = (torch.tensor(a.codebook.astype(np.float64), dtype=f64),)
    return out


def _requant(node, x, p):
    """REQUANT (docs/ir.md 5.4) on int64: floor shift, rounding from the remainder, then fit."""
    import torch

    a = node.attrs
    v = q = x.to(torch.int64)  # exact: |x| < 2**53
    k = 0
    if a.shift > 0:
        s = min(a.shift, 62)  # for |x| < 2**53 every shift >= 62 gives the same result
        q = torch.div(v, 1 << s, rounding_mode="floor")
        if a.rounding is not Rounding.FLOOR:
            rem, half = v - q * (1 << s), 1 << (s - 1)  # rem in 0 .. 2**s - 1
            if a.rounding is Rounding.HALF_UP:
                q = q + (rem >= half).to(torch.int64)
            else:  # HALF_EVEN: above the half, or exactly the half and q odd
                odd = torch.remainder(q, 2) == 1
                q = q + ((rem > half) | ((rem == half) & odd)).to(torch.int64)
    else:
        k = -a.shift
    if a.overflow is Overflow.SATURATE:
        u = q.to(torch.float64) * 2.0 ** min(k, 54)  # exact; k >= 54 clips like any larger k
        return torch.clamp(u, float(max(a.lo, -EXACT)), float(min(a.hi, EXACT)))
    return _wrap(q, k, a)


def _wrap(q, k: int, a):
    """WRAP of ``q * 2**k`` onto ``lo..hi`` (``2**m`` values): ``lo + (u - lo) mod 2**m``."""
    import torch

    m = (a.hi - a.lo + 1).bit_length() - 1
    if m > 53:  # check_exact passed: no value leaves lo..hi, the wrap is the identity
        return q.to(torch.float64) * 2.0 ** k
    low = (q & ((1 << (m - k)) - 1)) * (1 << k) if k < m else torch.zeros_like(q)  # u mod 2**m
    w = torch.remainder(low - a.lo % (1 << m), 1 << m)
    return (w + a.lo).to(torch.float64)


def _conv2d(node, x, p):
    import torch.nn.functional as F

    return F.conv2d(x, p[0], p[1], stride=node.attrs.stride, padding=node.attrs.padding)


def _dense(node, x, p):
    import torch.nn.functional as F

    return F.linear(x, p[0], p[1])


def _cmvm(node, x, p):
    import torch.nn.functional as F

    w, c = p
    if node.attrs.layout == "conv2d":
        return F.conv2d(x, w, c, padding=node.attrs.padding)
    if x.dim() == 4:  # pointwise over a feature map: a 1x1 convolution
        return F.conv2d(x, w.reshape(*w.shape, 1, 1), c)
    return F.linear(x, w, c)


def _threshold(node, x, p):
    t = p[0]  # [C, T]
    shape = (1, t.shape[0]) + (1,) * (x.dim() - 2) + (t.shape[1],)
    return (x.unsqueeze(-1) >= t.reshape(shape)).sum(-1).to(x.dtype)


def _hamming(node, x, p):
    import torch

    dist = (x.unsqueeze(1) != p[0].unsqueeze(0)).sum(-1)  # [N, K]
    return torch.argmin(dist, dim=1).to(torch.float64)  # torch: the first minimum (lowest k)


def _argmax(node, x, p):
    import torch

    return torch.argmax(x, dim=1).to(torch.float64)  # torch: the first maximum (lowest k)


def _bit(node, x, p):
    import torch

    return ((x.to(torch.int64) >> node.attrs.bit) & 1).to(torch.float64)  # arithmetic >>


def _add(node, *xs):
    out = None
    for x, s in zip(xs, node.attrs.shifts):
        term = x * 2.0 ** s
        out = term if out is None else out + term
    return out


def _maxpool(node, x, p):
    import torch.nn.functional as F

    return F.max_pool2d(x, node.attrs.kernel, node.attrs.stride)  # floor mode, no padding


def _concat(node, *xs):
    import torch

    return torch.cat(xs, dim=1)


_UNARY: dict[Op, Callable[..., Any]] = {
    Op.CONV2D: _conv2d, Op.DENSE: _dense, Op.CMVM: _cmvm, Op.REQUANT: _requant,
    Op.MAXPOOL2D: _maxpool, Op.THRESHOLD: _threshold, Op.HAMMING_DECODE: _hamming,
    Op.BIT: _bit, Op.ARGMAX: _argmax,
    Op.FLATTEN: lambda node, x, p: x.reshape(len(x), -1),
    Op.SIGN_BITS: lambda node, x, p: (x > 0).to(x.dtype),
    Op.GLOBAL_AVGPOOL: lambda node, x, p: x.sum(dim=(2, 3)),  # the integer sum (docs/ir.md 5.15)
}
_NARY: dict[Op, Callable[..., Any]] = {Op.ADD: _add, Op.CONCAT: _concat}


def _check_batch(graph: IntGraph, x) -> np.ndarray:
    inp = graph.nodes[0]
    x = np.asarray(x)
    if x.dtype.kind not in "iub" or x.shape[1:] != inp.shape:
        raise RunnerError(f"torch: expected integers of per-sample shape {inp.shape}, got "
                          f"{x.dtype} {x.shape}")
    if x.size and (int(x.min()) < inp.lo or int(x.max()) > inp.hi):
        raise RunnerError(f"torch: input values {x.min()}..{x.max()} leave the input range "
                          f"{inp.lo}..{inp.hi}")
    return x.astype(np.int64)


def _forward(graph: IntGraph, params: dict[int, tuple], x) -> list[np.ndarray]:
    """One batch (float64 tensor ``[n, *input]``) through every node; the outputs as int64."""
    last_use = {a: n.id for n in graph.nodes for a in n.args}
    keep = set(graph.outputs)
    vals: dict[int, Any] = {0: x}
    for node in graph.nodes[1:]:
        args = [vals[a] for a in node.args]
        if node.op in _NARY:
            vals[node.id] = _NARY[node.op](node, *args)
        else:
            vals[node.id] = _UNARY[node.op](node, args[0], params.get(node.id))
        for a in node.args:
            if last_use.get(a) == node.id and a not in keep:
                vals.pop(a, None)
    outs = []
    for o in graph.outputs:
        v = vals[o].numpy()
        outs.append(v.astype(np.int64).reshape(len(x), *graph.nodes[o].shape))
    return outs


class TorchRunner(Runner):
    """``torch``: the graph on PyTorch operators in float64, exact below ``2**53`` (module
    docstring); refuses at export what it cannot keep exact.  No tools, no emitted files."""

    name = "torch"
    target = "torch"
    tools = ()

    def export(self, graph, out, **options):
        if options:
            raise EmitError(f"torch takes no options, got {', '.join(options)}")
        check_exact(graph)
        return write_export(out, "torch", {})

    def run(self, export_dir, graph, x):
        import torch

        check_exact(graph)
        x = _check_batch(graph, x)
        params = _params(graph)
        parts = []
        with torch.inference_mode():
            for i in range(0, max(len(x), 1), BATCH):
                chunk = torch.from_numpy(np.ascontiguousarray(x[i:i + BATCH])).to(torch.float64)
                parts.append(_forward(graph, params, chunk))
        return [np.concatenate([p[k] for p in parts]) for k in range(len(graph.outputs))]
