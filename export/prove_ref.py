"""Reference layer modules for ``heatq prove``, written from the IR's arithmetic.

For each layer module of a Verilog export (a CMVM of the lowered graph and the REQUANT after
it) :func:`layer_specs` finds the product it implements in the *fused* graph
(:func:`heatq.passes.fuse.fuse_split_products`, the graph the lowering starts from): the
DENSE / CONV2D node's weights and bias (a CONV2D's ``[C_out, C_in, K, K]`` weights reshaped
to ``[C_out, C_in*K*K]``, window order ``(c_in, ky, kx)``), or the identity of a pointwise
CMVM, and the REQUANT with its original rounding.  The lowered graph and the adder graphs
serve only to pair layers with nodes; :func:`matrix_check` compares each adder graph's product
(``AdderGraph.matrix()``) with those weights, in Python.

:func:`reference_verilog` writes a module with the layer module's ports::

    clk, rst, in_valid, x[NX-1:0]  ->  out_valid, y[n_out*WY-1:0]

computing ``y_j = requant(sum_i W[j,i] * x_i + b_j)`` with Verilog ``*`` and ``+`` on signed
values of ``ACC`` bits (wide enough for every partial sum: exact), the REQUANT as
``heatq.ir.requant`` defines it (add ``2**(s-1)`` for HALF_UP, ``2**(s-1) - 1`` plus bit ``s``
of the sum for HALF_EVEN, arithmetic shift, clip to
``lo..hi`` or wrap), ``y_j`` the low ``WY`` bits.  ``x_i = x[off_i +: w]`` (the element's
``w``-bit value, two's complement when its type is signed), the same offsets the Verilog
target documents (a conv window: tap ``t = ky*K + kx`` of physical channel ``p`` at
``(t*C + p)*w``).  Timing: ``y`` is the token's result exactly ``latency`` cycles after
``in_valid`` (a delay line of ``latency`` registers), ``out_valid`` high in that cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heatq.ir import IntGraph, IntType, Op, Overflow, Rounding
from heatq.ir.requant import half_even_increment, rounding_const
from heatq.passes.fuse import fuse_split_products

from .verilog_units import layer_name


@dataclass
class LayerSpec:
    """One layer module to prove.  ``weights`` [n_out][n_in] and ``bias`` [n_out] are Python
    ints (the IR's product); ``requant``: the REQUANT node's attrs (original rounding) or None;
    ``in_type``: the type of every input element, ``in_lo..in_hi`` their range (0 included for
    a padded window); ``in_off[i]``: bit offset of logical input ``i`` in ``x``; ``n_phys`` /
    ``phys_off``: the distinct physical elements (for the range constraint); ``out_type``:
    the type of each ``y`` element; ``latency``: cycles from ``in_valid`` to ``out_valid``;
    ``cycles``: the module's II (a folded layer takes ``in_valid`` at most once per
    ``cycles`` cycles: the report's ``cycles_per_position``, 1 when absent); ``graph``: the
    layer's adder graph (for the two-step proof only)."""

    name: str
    module: str
    latency: int
    weights: list[list[int]]
    bias: list[int]
    requant: object | None
    in_type: IntType
    in_lo: int
    in_hi: int
    in_off: list[int]
    phys_off: list[int]
    nx: int
    out_type: IntType
    product: str
    matrix: str = "not checked"
    cycles: int = 1
    graph: object = None


def _node_map(fused: IntGraph, lowered: IntGraph) -> dict[int, int | None]:
    """Lowered node id -> fused node id (None: a pointwise CMVM the lowering inserted).  The
    lowering copies nodes in order, DENSE / CONV2D becoming CMVM."""
    out: dict[int, int | None] = {}
    j = 0
    for n in lowered.nodes:
        if n.op is Op.CMVM and n.attrs.layout == "pointwise":
            out[n.id] = None
            continue
        f = fused.nodes[j]
        want = (Op.DENSE, Op.CONV2D) if n.op is Op.CMVM else (n.op,)
        if f.op not in want:
            raise ValueError(f"lowered node {n.id} ({n.op.value}) does not match fused node "
                             f"{f.id} ({f.op.value}): the export is not this graph's")
        out[n.id] = f.id
        j += 1
    return out


def _elements(g: IntGraph, cons, arg) -> tuple[int, list[int]]:
    """(physical elements per token, logical input element -> physical element) of the
    flow ``arg`` as the Verilog top carries it (a CONCAT read only by CMVMs carries each
    distinct argument once: ``export.verilog_concat``)."""
    if arg.op is not Op.CONCAT:
        return arg.shape[0], list(range(arg.shape[0]))
    distinct = list(dict.fromkeys(arg.args))
    per = {a: g.nodes[a].shape[0] for a in distinct}
    base, k = {}, 0
    for a in distinct:
        base[a], k = k, k + per[a]
    logical = [base[a] + j for a in arg.args for j in range(per[a])]
    if all(g.nodes[c].op is Op.CMVM for c in cons[arg.id]) and arg.id not in g.outputs:
        return k, logical
    return len(logical), list(range(len(logical)))


def _offsets(node, arg, cons, g: IntGraph) -> tuple[list[int], list[int], int]:
    """(logical input offsets, physical element offsets, NX) of the layer module's ``x``."""
    w = arg.type.width
    phys, chan = _elements(g, cons, arg)
    if node.attrs.layout == "conv2d":
        taps = node.attrs.kernel ** 2
        offs = [(t * phys + chan[c]) * w for c in range(len(chan)) for t in range(taps)]
        every = [(t * phys + p) * w for t in range(taps) for p in range(phys)]
        return offs, every, taps * phys * w
    return [c * w for c in chan], [p * w for p in range(phys)], phys * w


def _product(fused: IntGraph, fid: int | None, n_in: int, rq_fused) -> tuple[list, list, str]:
    """(weights, bias, description) of the fused graph's product ``fid`` (None: identity)."""
    if fid is None:
        eye = [[int(i == j) for i in range(n_in)] for j in range(n_in)]
        return eye, [0] * n_in, f"identity ({n_in} elements) before {rq_fused.label()}"
    p = fused.nodes[fid]
    w = np.asarray(p.attrs.weight)
    w = w.reshape(w.shape[0], -1)
    return ([[int(v) for v in row] for row in w.tolist()], [int(v) for v in p.attrs.bias],
            f"{p.op.value} {p.label()} {list(w.shape)}")


def layer_specs(graph: IntGraph, design, report: dict) -> dict[str, LayerSpec]:
    """Every layer module of the export: name -> :class:`LayerSpec`.  ``design``: the
    emitter's :class:`~heatq_export.verilog.Design` of ``graph`` (its ``lowered`` graph and
    ``adder_graphs``), ``report``: summary.json's report (layer -> module, latency)."""
    fused = fuse_split_products(graph, fold_requant=True)
    low = design.lowered
    fmap = _node_map(fused, low)
    cons = low.consumers()
    specs: dict[str, LayerSpec] = {}
    for n in low.nodes:
        if n.op is not Op.CMVM:
            continue
        c = cons[n.id]
        rq = low.nodes[c[0]] if (len(c) == 1 and n.id not in low.outputs
                                 and low.nodes[c[0]].op is Op.REQUANT) else None
        # by the layer's name, as the emitter keys it (pointwise CMVMs in front of several
        # REQUANTs of one product share one cached adder graph, so its id is no key)
        name = layer_name(n, rq)
        if (name not in report or name in specs
                or design.adder_graphs.get(name) is not n.attrs.graph):
            continue
        out = rq if rq is not None else n
        rq_f = fused.nodes[fmap[rq.id]] if rq is not None else None
        fid = fmap[n.id]
        arg = low.nodes[n.args[0]]
        farg = fused.nodes[fused.nodes[fid].args[0]] if fid is not None else \
            fused.nodes[rq_f.args[0]]
        lo, hi = farg.lo, farg.hi
        if n.attrs.layout == "conv2d" and n.attrs.padding:
            lo, hi = min(lo, 0), max(hi, 0)
        offs, phys, nx = _offsets(n, arg, cons, low)
        w, b, what = _product(fused, fid, len(offs), rq_f)
        info = report[name]
        specs[name] = LayerSpec(
            name=name, module=info["module"], latency=int(info["latency"]), weights=w, bias=b,
            requant=rq_f.attrs if rq_f is not None else None, in_type=arg.type, in_lo=lo,
            in_hi=hi, in_off=offs, phys_off=phys, nx=nx, out_type=out.type, product=what,
            cycles=int(info.get("cycles_per_position") or 1), graph=n.attrs.graph)
        specs[name].matrix = matrix_check(specs[name], n.attrs.graph)
    return specs


def matrix_check(spec: LayerSpec, g) -> str:
    """``"equal"`` when the adder graph computes the IR's product (``W``, and ``c`` = bias
    plus the REQUANT's rounding constant), else what differs."""
    if not hasattr(g, "matrix"):
        return "not checked"
    W, c = g.matrix()
    rc = rounding_const(spec.requant) if spec.requant is not None else 0
    want_c = [v + rc for v in spec.bias]
    if W.shape != (len(spec.weights), len(spec.in_off)):
        return f"differs: adder graph {list(W.shape)} vs IR {[len(spec.weights), len(spec.in_off)]}"
    bad = [j for j in range(W.shape[0])
           if [int(v) for v in W[j]] != spec.weights[j] or int(c[j]) != want_c[j]]
    return "equal" if not bad else f"differs in {len(bad)} rows (first: output {bad[0]})"


# ---------------------------------------------------------------------- the Verilog text
def _round_add(q) -> int:
    """The most the REQUANT ``q`` (or None) adds before its shift: HALF_UP's ``2**(s-1)``,
    HALF_EVEN's ``2**(s-1) - 1`` plus its tie bit, else 0."""
    if q is None:
        return 0
    return rounding_const(q) + (half_even_increment(q) + 1 if _half_even(q) else 0)


def _half_even(q) -> bool:
    return q.shift > 0 and q.rounding is Rounding.HALF_EVEN


def _acc_bits(spec: LayerSpec) -> int:
    """Signed width holding every partial sum of every output (and the requant's steps)."""
    big = max(abs(spec.in_lo), abs(spec.in_hi), 1)
    rc = _round_add(spec.requant)
    worst = max((sum(abs(v) for v in row) * big + abs(b) for row, b in
                 zip(spec.weights, spec.bias)), default=0) + rc
    extra = max(-spec.requant.shift, 0) if spec.requant is not None else 0
    bounds = [abs(spec.requant.lo), abs(spec.requant.hi)] if spec.requant is not None else []
    return max([worst] + bounds).bit_length() + extra + 2 + spec.out_type.width


def _lit(v: int, width: int) -> str:
    return f"-{width}'sd{-v}" if v < 0 else f"{width}'sd{v}"


def _requant_lines(j: int, acc: str, spec: LayerSpec, A: int) -> list[str]:
    """``r_o<j>``: REQUANT of ``acc`` (heatq.ir.requant semantics) at ``A`` bits."""
    q = spec.requant
    rc = rounding_const(q)
    lines = [f"    wire signed [{A - 1}:0] t_o{j} = {acc} + {_lit(rc, A)};"]
    if _half_even(q):  # bit s of an A-bit signed value: its sign bit once s >= A
        tie = f"$signed({{{A - 1}'d0, {acc}[{min(q.shift, A - 1)}]}})"
        lines = [f"    wire signed [{A - 1}:0] t_o{j} = {acc} + "
                 f"{_lit(half_even_increment(q), A)} + {tie};"]
    if q.shift > 0:
        lines.append(f"    wire signed [{A - 1}:0] q_o{j} = t_o{j} >>> {q.shift};")
    else:
        lines.append(f"    wire signed [{A - 1}:0] q_o{j} = t_o{j} <<< {-q.shift};")
    lo, hi = _lit(q.lo, A), _lit(q.hi, A)
    if q.overflow is Overflow.SATURATE:
        lines.append(f"    wire signed [{A - 1}:0] r_o{j} = q_o{j} < {lo} ? {lo} : "
                     f"(q_o{j} > {hi} ? {hi} : q_o{j});")
    else:
        m = (q.hi - q.lo + 1).bit_length() - 1
        lines.append(f"    wire signed [{A - 1}:0] d_o{j} = q_o{j} - {lo};")
        lines.append(f"    wire signed [{A - 1}:0] r_o{j} = {lo} + "
                     f"$signed({{{A - m}'d0, d_o{j}[{m - 1}:0]}});" if m else
                     f"    wire signed [{A - 1}:0] r_o{j} = {lo};")
    return lines


def _module_head(spec: LayerSpec, name: str, A: int, n_out: int, prefix: str) -> list[str]:
    """The ports of a reference module ``name`` (the layer module's) and every input ``i``
    as ``<prefix><i>``, sign- or zero-extended to ``A`` signed bits."""
    w, wy = spec.in_type.width, spec.out_type.width
    out = [f"module {name} (input wire clk, input wire rst, input wire in_valid,",
           f"    input wire [{spec.nx - 1}:0] x, output wire out_valid,",
           f"    output wire [{n_out * wy - 1}:0] y);"]
    for i, off in enumerate(spec.in_off):
        bits = f"x[{off + w - 1}:{off}]"
        ext = f"{{{{{A - w}{{x[{off + w - 1}]}}}}, {bits}}}" if spec.in_type.signed else \
            f"{{{A - w}'d0, {bits}}}"
        out.append(f"    wire signed [{A - 1}:0] {prefix}{i} = {ext};")
    return out


def _module_tail(spec: LayerSpec, A: int, accs: list[str]) -> list[str]:
    """Output ``j``'s ``acc_o<j> = accs[j]`` (``A`` signed bits), the REQUANT, the packed
    ``value`` and the delay line to ``y`` / ``out_valid``; ``endmodule``."""
    wy, out = spec.out_type.width, []
    for j, acc in enumerate(accs):
        out.append(f"    wire signed [{A - 1}:0] acc_o{j} = {acc};")
        if spec.requant is None:
            out.append(f"    wire signed [{A - 1}:0] r_o{j} = acc_o{j};")
        else:
            out += _requant_lines(j, f"acc_o{j}", spec, A)
    value = ", ".join(f"r_o{j}[{wy - 1}:0]" for j in reversed(range(len(accs))))
    out.append(f"    wire [{len(accs) * wy - 1}:0] value = {{{value}}};")
    return out + _delay_lines(spec.latency, len(accs) * wy) + ["endmodule"]


def reference_verilog(spec: LayerSpec, name: str) -> str:
    """The reference module ``name`` of ``spec`` (see the module docstring)."""
    A = _acc_bits(spec)
    out = [f"// {name}: reference for {spec.module} from the IR: {spec.product}",
           f"// y_j = requant(sum_i W[j,i] * x_i + b_j), {A}-bit signed arithmetic; "
           f"latency {spec.latency}"]
    out += _module_head(spec, name, A, len(spec.weights), "x")
    accs = [" + ".join([f"{_lit(v, A)} * x{i}" for i, v in enumerate(row) if v] + [_lit(b, A)])
            for row, b in zip(spec.weights, spec.bias)]
    return "\n".join(out + _module_tail(spec, A, accs)) + "\n"


def _delay_lines(L: int, width: int) -> list[str]:
    """``L`` register stages of (valid, value): ``y`` / ``out_valid`` from the last; the
    first stage loads only at ``in_valid`` (so ``y`` holds between results when ``L`` is 1)."""
    lines = [f"    reg [{L - 1}:0] vp;"] + [f"    reg [{width - 1}:0] d{k};" for k in range(L)]
    lines += ["    always @(posedge clk) begin",
              f"        vp <= rst ? {L}'d0 : " + (f"{{vp[{L - 2}:0], in_valid}};" if L > 1
                                                else "in_valid;"),
              "        if (in_valid) d0 <= value;"]
    lines += [f"        d{k} <= d{k - 1};" for k in range(1, L)]
    lines += ["    end", f"    assign out_valid = vp[{L - 1}];", f"    assign y = d{L - 1};"]
    return lines


def model_verilog(spec: LayerSpec, g, name: str) -> str:
    """A second reference, for the two-step proof: the adder graph ``g`` evaluated node by
    node at ``ACC`` bits (no narrow widths, so every node is its coefficient vector's exact
    value), then the same REQUANT and delay line as :func:`reference_verilog`.  It equals the
    IR's product exactly when ``g.matrix()`` does (:func:`matrix_check`), so a proof of the
    gate against it, with ``matrix == "equal"``, is a proof against the IR; its internal
    nodes give SAT sweeping the cut points the direct reference lacks."""
    rc = rounding_const(spec.requant) if spec.requant is not None else 0
    A = max(_acc_bits(spec),
            max((abs(a.lo) for a in g.adders), default=0).bit_length() + 2,
            max((abs(a.hi) for a in g.adders), default=0).bit_length() + 2)
    out = [f"// {name}: the adder graph of {spec.module} at {A} bits (see model_verilog)"]
    out += _module_head(spec, name, A, len(g.outputs), "n")

    def term(t) -> str:
        return f"{'-' if t.neg else ''}(n{t.node} <<< {t.shift})"

    for ad in g.adders:
        rhs = term(ad.a) + (f" + {term(ad.b)}" if ad.b is not None else f" + {_lit(ad.const, A)}")
        out.append(f"    wire signed [{A - 1}:0] n{ad.id} = {rhs};")
    accs = [_lit(o.const, A) if o.node is None else
            f"(n{o.node} <<< {o.shift}) + {_lit(o.const - rc, A)}" for o in g.outputs]
    return "\n".join(out + _module_tail(spec, A, accs)) + "\n"


__all__ = ["LayerSpec", "layer_specs", "matrix_check", "reference_verilog", "model_verilog"]
