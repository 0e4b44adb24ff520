"""The per-op renderers of the C-like targets and the arithmetic hooks they call.

:class:`CLikeOps` renders one loop nest per node and the node's constant tables; every
variable is typed from ``node.type`` (signedness and width) or from an exact range computed
from the node ranges, never guessed.  ``RENDERERS`` maps each supported :class:`~heatq.ir.Op`
to its renderer; :class:`~heatq_export.clike.CLikeEmitter` derives ``supported_ops`` from it.
A target subclass implements the abstract hooks: type names, casts, literals, the signed
floor shift, the rounding add (HALF_UP's constant; HALF_EVEN's constant plus the tie bit
``bit_s(x)``), left shift and wrap.

REQUANT renders :func:`heatq.ir.requant.requant_plan`, the one statement of its semantics:
the plan says which of rounding, clip-low, clip-high and wrap the node's ranges can reach, and
only those branches are emitted.  THRESHOLD compares the argument with a table of its
thresholds clamped to the argument's range (:func:`threshold_table`), both in one type, so
no comparison mixes signedness or widths.

ADD sums its shifted arguments in the type of :func:`add_type`, which holds every term and
every partial sum (in argument order), so no addition can overflow; BIT takes
``floor(x / 2**bit)`` with the target's floor shift and keeps its lowest bit.
GLOBAL_AVGPOOL's renderer is in :mod:`heatq_export.clike_pool`.
"""

from __future__ import annotations

import abc
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Callable

import numpy as np

from heatq.ir import IntGraph, IntType, Node, Op, Rounding
from heatq.ir.requant import RequantPlan, requant_plan

from .clike_pool import op_global_avgpool
from .clike_types import add_type, threshold_table
from .ctext import Lines, int_literal

WRAP_COLS = 16


@dataclass(frozen=True)
class _Operand:
    """The value a REQUANT clips or wraps: ``var`` (type ``vt``, range ``lo..hi``) is to be
    multiplied by ``2**k`` (k > 0 only for a negative shift); ``decl`` declares it (the shifted
    ``q``) or is empty when ``var`` is the argument itself."""

    var: str
    vt: IntType
    lo: int
    hi: int
    k: int
    decl: str


class CLikeOps(abc.ABC):
    """Per-op renderers shared by the C-like targets (see the module docstring)."""

    codebook_type = ""
    _used: set[str]

    # ---- arithmetic hooks -------------------------------------------------------------------
    @abc.abstractmethod
    def ctype(self, t: IntType, where: str) -> str:
        """Storage type for values of ``t`` (``where`` names the node in errors)."""

    @abc.abstractmethod
    def weight_type(self, node: Node) -> str:
        """Storage type of the weight array of a CONV2D / DENSE node."""

    def weight_read(self, node: Node, index: str) -> str:
        """Expression reading weight ``index`` of ``node`` (a target may widen or cast it)."""
        return f"w{node.id}[{index}]"

    @abc.abstractmethod
    def cast(self, expr: str, t: IntType) -> str:
        """``expr`` converted to type ``t`` (its value must lie in ``t``)."""

    def lit(self, v: int, t: IntType) -> str:
        """The constant ``v`` as a value of type ``t`` (``v`` must be representable in ``t``)."""
        return self.cast(int_literal(v), t)

    def mac_type(self, node: Node, src: Node) -> IntType:
        """Type of the CONV2D / DENSE accumulator and of both multiply operands."""
        return node.type

    @abc.abstractmethod
    def mac(self, acc: str, w: str, x: str, mt: IntType) -> str:
        """The statement ``acc += w * x`` computed exactly in ``mt``."""

    def shr(self, x: str, src: IntType, s: int, round_const: int,
            half_even: bool = False) -> str:
        """``floor((x + round_const) / 2**s)`` for s >= 1 and ``round_const`` 0 (FLOOR) or
        ``2**(s-1)`` (HALF_UP); ``half_even`` (``round_const`` 0): ``x / 2**s`` rounded to
        nearest, ties to even.  The cases every target shares are here; the target renders
        the signed floor shift and the rounding add."""
        w = src.width
        if half_even:
            # |x / 2^s| < 1/2, or exactly -1/2 (signed, s == w), which rounds to 0 (even)
            if s > w or (src.signed and s == w):
                return "0"
            return self.half_even_shr(x, src, s)
        if not round_const:
            if not src.signed:
                return "0" if s >= w else f"({x} >> {s})"
            s_eff = min(s, w - 1)  # floor(x / 2^s) is -1 or 0 once s >= w - 1
            return x if s_eff == 0 else self.floor_shr_signed(x, s_eff)
        if s > w:  # |x| < 2^(s-1): every x rounds to 0
            return "0"
        return self.half_up_shr(x, src, s, round_const)

    @abc.abstractmethod
    def floor_shr_signed(self, x: str, s: int) -> str:
        """``floor(x / 2**s)`` for a signed ``x``, 1 <= s < width."""

    @abc.abstractmethod
    def half_up_shr(self, x: str, src: IntType, s: int, round_const: int) -> str:
        """``floor((x + round_const) / 2**s)`` with the plan's ``round_const = 2**(s-1)``,
        1 <= s <= width, without overflow."""

    @abc.abstractmethod
    def half_even_shr(self, x: str, src: IntType, s: int) -> str:
        """``x / 2**s`` rounded half to even, ``floor((x + 2**(s-1) - 1 + bit_s(x)) / 2**s)``,
        for 1 <= s < width (signed ``x``) or 1 <= s <= width (unsigned), without overflow."""

    @abc.abstractmethod
    def shl(self, x: str, k: int, dst: IntType) -> str:
        """``x * 2**k`` as a ``dst`` value; the caller guarantees the product fits ``dst``."""

    @abc.abstractmethod
    def wrap(self, x: str, xt: IntType, k: int, lo: int, m: int, dst: IntType) -> str:
        """``lo + ((x * 2**k - lo) mod 2**m)`` as a ``dst`` value (it always fits ``dst``)."""

    def pipeline(self, L: Lines) -> None:
        """Mark the enclosing loop for pipelining (HLS); nothing in plain C."""

    @staticmethod
    def buf(node: Node) -> str:
        return "in" if node.op is Op.INPUT else f"v{node.id}"

    # ---- constant tables --------------------------------------------------------------------
    def render_constants(self, L: Lines, g: IntGraph, node: Node) -> None:
        """The constant tables ``node``'s renderer reads (weights, biases, codebook,
        thresholds), as ``static const`` arrays."""
        a = node.attrs
        if node.op in (Op.CONV2D, Op.DENSE):
            self._array(L, self.weight_type(node), f"w{node.id}", a.weight.ravel(),
                        f"{node.label()}: weights {list(a.weight.shape)}, {a.w_bits} bits")
            self._array(L, self.ctype(node.type, node.label()), f"b{node.id}", a.bias,
                        f"{node.label()}: bias")
        elif node.op is Op.HAMMING_DECODE:
            self._array(L, self.codebook_type, f"cb{node.id}", a.codebook.ravel(),
                        f"{node.label()}: codebook {list(a.codebook.shape)}")
        elif node.op is Op.THRESHOLD:
            src = g.nodes[node.args[0]]
            tt = threshold_table(a.thresholds, src.lo, src.hi)
            if tt.rows[0]:
                self._array(L, self.ctype(tt.ct, node.label()), f"th{node.id}",
                            np.array(tt.rows, dtype=np.int64).ravel(),
                            f"{node.label()}: thresholds {list(a.thresholds.shape)}, columns "
                            f"{tt.first}..{tt.first + len(tt.rows[0]) - 1}, clamped to "
                            f"{src.lo}..{src.hi + 1}")

    def _array(self, L: Lines, ctype: str, name: str, values: np.ndarray, comment: str) -> None:
        vals = [int_literal(v) for v in values.tolist()] or ["0"]
        L(f"/* {comment} */")
        with L.block(f"static const {ctype} {name}[{len(vals)}] =", "};"):
            for i in range(0, len(vals), WRAP_COLS):
                L(", ".join(vals[i:i + WRAP_COLS]) + ",")
        L("")

    # ---- ops --------------------------------------------------------------------------------
    def op_input(self, L: Lines, g: IntGraph, node: Node) -> None:
        L("/* read directly from in[] */")

    def op_conv2d(self, L: Lines, g: IntGraph, node: Node) -> None:
        a, src = node.attrs, g.nodes[node.args[0]]
        c_out, c_in, k, _ = a.weight.shape
        _, h, w = src.shape
        _, ho, wo = node.shape
        mt = self.mac_type(node, src)
        mct = self.ctype(mt, node.label())
        x, y = self.buf(src), self.buf(node)
        with L.block(f"for (int co = 0; co < {c_out}; ++co)"), \
                L.block(f"for (int oy = 0; oy < {ho}; ++oy)"), \
                L.block(f"for (int ox = 0; ox < {wo}; ++ox)"):
            self.pipeline(L)
            L(f"{mct} acc = {self.cast(f'b{node.id}[co]', mt)};")
            with L.block(f"for (int ci = 0; ci < {c_in}; ++ci)"), \
                    L.block(f"for (int ky = 0; ky < {k}; ++ky)"), \
                    L.block(f"for (int kx = 0; kx < {k}; ++kx)"):
                L(f"const int iy = oy * {a.stride} + ky - {a.padding};",
                  f"const int ix = ox * {a.stride} + kx - {a.padding};")
                widx = f"((co * {c_in} + ci) * {k} + ky) * {k} + kx"
                mac = self.mac("acc", self.weight_read(node, widx),
                               f"{x}[(ci * {h} + iy) * {w} + ix]", mt)
                L(f"if (iy >= 0 && iy < {h} && ix >= 0 && ix < {w}) {mac}" if a.padding else mac)
            L(f"{y}[(co * {ho} + oy) * {wo} + ox] = {self.cast('acc', node.type)};")

    def op_dense(self, L: Lines, g: IntGraph, node: Node) -> None:
        a, src = node.attrs, g.nodes[node.args[0]]
        n_out, n_in = a.weight.shape
        mt = self.mac_type(node, src)
        with L.block(f"for (int o = 0; o < {n_out}; ++o)"):
            self.pipeline(L)
            L(f"{self.ctype(mt, node.label())} acc = {self.cast(f'b{node.id}[o]', mt)};")
            with L.block(f"for (int i = 0; i < {n_in}; ++i)"):
                L(self.mac("acc", self.weight_read(node, f"o * {n_in} + i"),
                           f"{self.buf(src)}[i]", mt))
            L(f"{self.buf(node)}[o] = {self.cast('acc', node.type)};")

    def op_requant(self, L: Lines, g: IntGraph, node: Node) -> None:
        """One loop over the elements rendering the node's :class:`RequantPlan`: shift > 0
        forms ``q`` (the rounded, shifted value) then clips or wraps it; shift < 0 compares
        the argument with the clip bounds divided by ``2**k`` (so the shifted value is formed
        only where it fits), or wraps modulo ``2**m``."""
        src = g.nodes[node.args[0]]
        plan = requant_plan(node.attrs, src.lo, src.hi)
        v = self._requant_operand(node, src, plan)
        y = f"{self.buf(node)}[i]"
        with L.block(f"for (int i = 0; i < {node.size}; ++i)"):
            self.pipeline(L)
            if plan.wrap:
                L(*([v.decl] if v.decl else []), f"{y} = {self._requant_wrap(node, plan, v)};")
                return
            branches, uses_var = self._saturate_branches(node, plan, v)
            if v.decl and uses_var:
                L(v.decl)
            if len(branches) == 1:
                L(f"{y} = {branches[0][1]};")
                return
            for j, (cond, val) in enumerate(branches):
                head = "if" if j == 0 else "else if"
                L(f"{head} ({cond}) {y} = {val};" if cond else f"else {y} = {val};")

    def _requant_operand(self, node: Node, src: Node, plan: RequantPlan) -> _Operand:
        """What the clip / wrap reads: the argument itself (shift <= 0) or ``q``, the argument
        rounded and shifted right, typed by its exact range ``plan.q_lo..plan.q_hi``."""
        x = f"{self.buf(src)}[i]"
        if plan.shift <= 0:
            return _Operand(x, src.type, src.lo, src.hi, -plan.shift, "")
        vt = IntType.for_range(plan.q_lo, plan.q_hi)
        q = self.shr(x, src.type, plan.shift, plan.round_const,
                     node.attrs.rounding is Rounding.HALF_EVEN)
        decl = f"const {self.ctype(vt, node.label())} q = {self.cast(q, vt)};"
        return _Operand("q", vt, plan.q_lo, plan.q_hi, 0, decl)

    def _requant_wrap(self, node: Node, plan: RequantPlan, v: _Operand) -> str:
        """``v * 2**k`` reduced into ``lo..hi`` modulo ``2**wrap_bits``; a plain conversion
        where the plan says no value leaves the range."""
        t = node.type
        if plan.wrap_needed:
            return self.wrap(v.var, v.vt, v.k, plan.lo, plan.wrap_bits, t)
        return self.cast(v.var, t) if v.k == 0 else self.shl(v.var, v.k, t)

    def _saturate_branches(self, node: Node, plan: RequantPlan,
                           v: _Operand) -> tuple[list[tuple[str | None, str]], bool]:
        """``min(max(v * 2**k, lo), hi)`` as an if-chain ``[(condition or None, value)]``
        comparing ``v`` with ``above = floor(hi / 2**k)`` and ``below = ceil(lo / 2**k)``;
        conditions the plan rules out are left out.  Also says whether ``v`` is read."""
        lo, hi, t, k = plan.lo, plan.hi, node.type, v.k
        above, below = hi >> k, -((-lo) >> k)
        mid = self.cast(v.var, t) if k == 0 else None
        if plan.q_lo > hi:
            return [(None, self.lit(hi, t))], False
        if plan.q_hi < lo:
            return [(None, self.lit(lo, t))], False
        branches: list[tuple[str | None, str]] = []
        if plan.clip_hi:
            branches.append((f"{v.var} > {self.lit(above, v.vt)}", self.lit(hi, t)))
        if plan.clip_lo:
            branches.append((f"{v.var} < {self.lit(below, v.vt)}", self.lit(lo, t)))
        mlo, mhi = max(v.lo, below), min(v.hi, above)
        if mlo <= mhi:  # some v maps into lo..hi unclipped
            if mid is None:
                mid = self.lit(0, t) if mlo == mhi == 0 else self.shl(v.var, k, t)
            branches.append((None, mid))
        else:
            branches[-1] = (None, branches[-1][1])
        if len({val for _, val in branches}) == 1:  # e.g. lo == hi: one value everywhere
            return branches[-1:], branches[-1][1] == mid
        return branches, True

    def op_maxpool2d(self, L: Lines, g: IntGraph, node: Node) -> None:
        a, src = node.attrs, g.nodes[node.args[0]]
        c, ho, wo = node.shape
        _, h, w = src.shape
        x, ct = self.buf(src), self.ctype(node.type, node.label())
        with L.block(f"for (int c = 0; c < {c}; ++c)"), \
                L.block(f"for (int oy = 0; oy < {ho}; ++oy)"), \
                L.block(f"for (int ox = 0; ox < {wo}; ++ox)"):
            self.pipeline(L)
            base = f"(c * {h} + oy * {a.stride}) * {w} + ox * {a.stride}"
            L(f"{ct} m = {x}[{base}];")
            with L.block(f"for (int ky = 0; ky < {a.kernel}; ++ky)"), \
                    L.block(f"for (int kx = 0; kx < {a.kernel}; ++kx)"):
                L(f"const {ct} v = {x}[{base} + ky * {w} + kx];", "if (v > m) m = v;")
            L(f"{self.buf(node)}[(c * {ho} + oy) * {wo} + ox] = m;")

    def op_flatten(self, L: Lines, g: IntGraph, node: Node) -> None:
        with L.block(f"for (int i = 0; i < {node.size}; ++i)"):
            self.pipeline(L)
            L(f"{self.buf(node)}[i] = {self.buf(g.nodes[node.args[0]])}[i];")

    def op_sign_bits(self, L: Lines, g: IntGraph, node: Node) -> None:
        src = g.nodes[node.args[0]]
        with L.block(f"for (int i = 0; i < {node.size}; ++i)"):
            self.pipeline(L)
            L(f"{self.buf(node)}[i] = {self.cast(f'{self.buf(src)}[i] > 0', node.type)};")

    def op_hamming_decode(self, L: Lines, g: IntGraph, node: Node) -> None:
        n_cls, n_bits = node.attrs.codebook.shape
        bits = self.buf(g.nodes[node.args[0]])
        with L.block(""):
            L("int best = 0;", f"int best_d = {n_bits + 1};")
            with L.block(f"for (int k = 0; k < {n_cls}; ++k)"):
                self.pipeline(L)
                L("int d = 0;")
                with L.block(f"for (int l = 0; l < {n_bits}; ++l)"):
                    L(f"if ({bits}[l] != cb{node.id}[k * {n_bits} + l]) d += 1;")
                L("if (d < best_d) { best_d = d; best = k; }  /* ties keep the lowest k */")
            L(f"{self.buf(node)}[0] = {self.cast('best', node.type)};")

    def op_argmax(self, L: Lines, g: IntGraph, node: Node) -> None:
        """The first index of the largest element: a scan keeping the running maximum in the
        argument's own type (signed or unsigned, any width), replaced only when strictly
        larger, so ties keep the lowest index."""
        src = g.nodes[node.args[0]]
        x = self.buf(src)
        with L.block(""):
            L(f"{self.ctype(src.type, node.label())} m = {x}[0];", "int best = 0;")
            with L.block(f"for (int k = 1; k < {src.size}; ++k)"):
                self.pipeline(L)
                L(f"if ({x}[k] > m) {{ m = {x}[k]; best = k; }}  /* ties keep the lowest k */")
            L(f"{self.buf(node)}[0] = {self.cast('best', node.type)};")

    def op_threshold(self, L: Lines, g: IntGraph, node: Node) -> None:
        """``y = first + #{k : th[c, k] <= x}`` over the live columns of
        :func:`threshold_table`, per channel ``c`` (axis 0) and element; the compare loop has
        a constant trip count (HLS unrolls it under the element loop's pipeline)."""
        src = g.nodes[node.args[0]]
        tt = threshold_table(node.attrs.thresholds, src.lo, src.hi)
        n_ch, n_live, t = len(tt.rows), len(tt.rows[0]), node.type
        per = src.size // n_ch  # H * W, or 1 for a vector
        idx = f"c * {per} + p" if per > 1 else "c"
        with ExitStack() as loops:
            loops.enter_context(L.block(f"for (int c = 0; c < {n_ch}; ++c)"))
            if per > 1:
                loops.enter_context(L.block(f"for (int p = 0; p < {per}; ++p)"))
            self.pipeline(L)
            if not n_live:  # every argument value gives the same count
                L(f"{self.buf(node)}[{idx}] = {self.lit(tt.first, t)};")
                return
            L(f"const {self.ctype(tt.ct, node.label())} x = "
              f"{self.cast(f'{self.buf(src)}[{idx}]', tt.ct)};",
              f"{self.ctype(t, node.label())} n = {self.lit(tt.first, t)};")
            with L.block(f"for (int k = 0; k < {n_live}; ++k)"):
                L(f"if (th{node.id}[c * {n_live} + k] <= x) n += 1;")
            L(f"{self.buf(node)}[{idx}] = n;")

    def op_add(self, L: Lines, g: IntGraph, node: Node) -> None:
        """``acc = x_0 << s_0; acc += x_1 << s_1; ...`` per element, in :func:`add_type`
        (each term is formed in it too: it fits), then the node's type."""
        at = add_type(g, node)
        act = self.ctype(at, node.label())
        terms = []
        for a, s in zip(node.args, node.attrs.shifts):
            x = f"{self.buf(g.nodes[a])}[i]"
            terms.append(self.cast(x, at) if s == 0 else self.shl(x, s, at))
        with L.block(f"for (int i = 0; i < {node.size}; ++i)"):
            self.pipeline(L)
            L(f"{act} acc = {terms[0]};", *(f"acc += {t};" for t in terms[1:]))
            L(f"{self.buf(node)}[i] = {self.cast('acc', node.type)};")

    def op_bit(self, L: Lines, g: IntGraph, node: Node) -> None:
        """``(floor(x / 2**bit)) & 1``: the target's floor shift (signed: never a right shift
        of a negative number), then the lowest bit of that two's-complement value."""
        src, b = g.nodes[node.args[0]], node.attrs.bit
        x = f"{self.buf(src)}[i]"
        q = x if b == 0 else self.shr(x, src.type, b, 0)
        with L.block(f"for (int i = 0; i < {node.size}; ++i)"):
            self.pipeline(L)
            L(f"{self.buf(node)}[i] = {self.cast(f'({q}) & 1', node.type)};")

    def op_concat(self, L: Lines, g: IntGraph, node: Node) -> None:
        """Channel-major buffers: the arguments copied one after another (values unchanged)."""
        off = 0
        for a in node.args:
            src = g.nodes[a]
            with L.block(f"for (int i = 0; i < {src.size}; ++i)"):
                self.pipeline(L)
                L(f"{self.buf(node)}[{off} + i] = {self.cast(f'{self.buf(src)}[i]', node.type)};")
            off += src.size

Renderer = Callable[[CLikeOps, Lines, IntGraph, Node], None]
RENDERERS: dict[Op, Renderer] = {
    Op.INPUT: CLikeOps.op_input, Op.CONV2D: CLikeOps.op_conv2d, Op.DENSE: CLikeOps.op_dense,
    Op.REQUANT: CLikeOps.op_requant, Op.MAXPOOL2D: CLikeOps.op_maxpool2d,
    Op.FLATTEN: CLikeOps.op_flatten, Op.SIGN_BITS: CLikeOps.op_sign_bits,
    Op.HAMMING_DECODE: CLikeOps.op_hamming_decode, Op.THRESHOLD: CLikeOps.op_threshold,
    Op.ADD: CLikeOps.op_add, Op.BIT: CLikeOps.op_bit, Op.CONCAT: CLikeOps.op_concat,
    Op.ARGMAX: CLikeOps.op_argmax, Op.GLOBAL_AVGPOOL: op_global_avgpool,
}
