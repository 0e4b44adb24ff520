"""The shared C-like renderer behind the C99 and HLS C++ targets.

:class:`CLikeEmitter` walks an :class:`~heatq.ir.IntGraph` once and renders one section per
node through a dict keyed by :class:`~heatq.ir.Op`.  Every buffer, accumulator and temporary
is typed from ``node.type`` (signedness and width) or from an exact range computed here from
the node ranges; no width is guessed.  A subclass supplies only type names, literals,
includes, pragmas and the few rules that differ (how to shift, round and wrap).

Generated interface (both targets): ``model.h`` (sizes, typedefs, prototype), the model source
and ``main`` that reads ``N`` then ``N`` samples of the input's integers (C, H, W order,
whitespace separated) from stdin or a file argument and writes, per sample, one line with
every graph output (``graph.outputs`` order, C order within each) as decimal integers.
``io.json`` describes the shapes so that :mod:`heatq_export.build` can split the lines again.
"""

from __future__ import annotations

import json
from string import Template
from typing import Any, Callable, Mapping

import numpy as np

from heatq.ir import IntGraph, IntType, Node, Op, Overflow, Rounding
from heatq.ir.rules import requant_scalar

from .base import EmitError, Emitter
from .ctext import INT64_MAX, INT64_MIN, Lines, identifier, int_literal
from .skeletons import read_template

WRAP_COLS = 16


class CLikeEmitter(Emitter):
    """Base of the C-like targets.  ``name`` prefixes the function, typedefs and macros
    (default: ``graph.meta["name"]`` or ``"model"``)."""

    src_ext = "c"
    indent = "    "
    supported_ops = frozenset({Op.INPUT, Op.CONV2D, Op.DENSE, Op.REQUANT, Op.MAXPOOL2D,
                               Op.FLATTEN, Op.SIGN_BITS, Op.HAMMING_DECODE})

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self.ops: dict[Op, Callable[[Lines, IntGraph, Node], None]] = {
            Op.INPUT: self.op_input, Op.CONV2D: self.op_conv2d, Op.DENSE: self.op_dense,
            Op.REQUANT: self.op_requant, Op.MAXPOOL2D: self.op_maxpool2d,
            Op.FLATTEN: self.op_flatten, Op.SIGN_BITS: self.op_sign_bits,
            Op.HAMMING_DECODE: self.op_hamming_decode,
        }

    # ---- target hooks: type names, literals, includes, pragmas, shift / round / wrap rules ----
    header_includes: tuple[str, ...] = ()
    source_includes: tuple[str, ...] = ()
    main_includes: tuple[str, ...] = ()
    codebook_type = ""

    def ctype(self, t: IntType, where: str) -> str:
        """Storage type for values of ``t`` (``where`` names the node in errors)."""
        raise NotImplementedError

    def weight_type(self, node: Node) -> str:
        """Storage type of the weight array of a CONV2D / DENSE node."""
        raise NotImplementedError

    def weight_read(self, node: Node, index: str) -> str:
        """Expression reading weight ``index`` of ``node`` (a target may widen or cast it)."""
        return f"w{node.id}[{index}]"

    def cast(self, expr: str, t: IntType) -> str:
        raise NotImplementedError

    def lit(self, v: int, t: IntType) -> str:
        """The constant ``v`` as a value of type ``t`` (``v`` must be representable in ``t``)."""
        return self.cast(int_literal(v), t)

    def mac_type(self, node: Node, src: Node) -> IntType:
        """Type of the CONV2D / DENSE accumulator and of both multiply operands."""
        return node.type

    def mac(self, acc: str, w: str, x: str, mt: IntType) -> str:
        raise NotImplementedError

    def shr(self, x: str, src: IntType, s: int, rounding: Rounding) -> str:
        """``floor(x / 2**s)`` (FLOOR) or ``floor((x + 2**(s-1)) / 2**s)`` (HALF_UP), s >= 1.
        The cases every target shares are here; the target renders the signed floor shift
        and the rounding add."""
        w = src.width
        if rounding is Rounding.FLOOR:
            if not src.signed:
                return "0" if s >= w else f"({x} >> {s})"
            s_eff = min(s, w - 1)  # floor(x / 2^s) is -1 or 0 once s >= w - 1
            return x if s_eff == 0 else self.floor_shr_signed(x, s_eff)
        if s > w:  # |x| < 2^(s-1): every x rounds to 0
            return "0"
        return self.half_up_shr(x, src, s)

    def floor_shr_signed(self, x: str, s: int) -> str:
        """``floor(x / 2**s)`` for a signed ``x``, 1 <= s < width."""
        raise NotImplementedError

    def half_up_shr(self, x: str, src: IntType, s: int) -> str:
        """``floor((x + 2**(s-1)) / 2**s)``, 1 <= s <= width, without overflow."""
        raise NotImplementedError

    def shl(self, x: str, k: int, dst: IntType) -> str:
        """``x * 2**k`` as a ``dst`` value; the caller guarantees the product fits ``dst``."""
        raise NotImplementedError

    def wrap(self, x: str, xt: IntType, k: int, lo: int, m: int, dst: IntType) -> str:
        """``lo + ((x * 2**k - lo) mod 2**m)`` as a ``dst`` value (it always fits ``dst``)."""
        raise NotImplementedError

    def helpers(self) -> list[str]:
        """Definitions of the helper functions that the rendered body used."""
        return []

    def buffer_decl(self, L: Lines, ctype: str, name: str, size: int) -> None:
        raise NotImplementedError

    def pipeline(self, L: Lines) -> None:
        """Mark the enclosing loop for pipelining (HLS); nothing in plain C."""

    def print_value(self, expr: str, t: IntType) -> str:
        """A statement printing ``sep`` then ``expr`` (of type ``t``) in decimal."""
        raise NotImplementedError

    def function_name(self) -> str:
        return self.prefix

    def check_node(self, node: Node) -> None:
        """Raise :class:`EmitError` when the target cannot hold ``node``'s type."""
        self.ctype(node.type, node.label())

    # ---- driver ----------------------------------------------------------------------------
    def _names(self, graph: IntGraph) -> None:
        self.prefix = identifier(self.name or str(graph.meta.get("name", "model")))
        self.macro = self.prefix.upper()

    def emit(self, graph: IntGraph) -> dict[str, str]:
        self._names(graph)
        self._used: set[str] = set()  # helper functions the body calls
        for node in graph.nodes:
            if node.op not in self.ops:
                raise EmitError(f"{self.target}: no rule for op {node.op.value!r} "
                                f"({node.label()})")
            self.check_node(node)
        inp = graph.nodes[0]
        if inp.lo < INT64_MIN or inp.hi > INT64_MAX:
            raise EmitError(f"{inp.label()}: the text protocol reads inputs within 64-bit "
                            f"signed integers, the range is {inp.lo}..{inp.hi}")
        body = self.render_function(graph)
        source = Lines(self.indent)
        source(f"/* {self.prefix}: generated by heatq ({self.target}); do not edit. */",
               *self.source_includes, "")
        for h in self.helpers():
            source(*h.splitlines(), "")
        for node in graph.nodes:
            self.render_constants(source, node)
        files = {
            "model.h": self.render_header(graph),
            f"model.{self.src_ext}": source.text() + body.text(),
            f"main.{self.src_ext}": self.render_main(graph),
            "io.json": json.dumps(self.interface(graph), indent=2, sort_keys=True) + "\n",
        }
        return files

    def summary(self, graph: IntGraph, files: Mapping[str, str]) -> dict[str, Any]:
        return {"top": self.function_name(), "io": self.interface(graph)}

    def interface(self, graph: IntGraph) -> dict[str, Any]:
        """What ``io.json`` records: the function, the input and every output node."""
        def desc(n: Node) -> dict[str, Any]:
            return {"node": n.id, "name": n.name, "shape": list(n.shape), "lo": n.lo,
                    "hi": n.hi, "signed": n.type.signed, "width": n.type.width}
        self._names(graph)
        return {"target": self.target, "function": self.function_name(),
                "input": desc(graph.nodes[0]), "outputs": [desc(graph.nodes[o])
                                                           for o in graph.outputs]}

    def buf(self, node: Node) -> str:
        return "in" if node.op is Op.INPUT else f"v{node.id}"

    def typedefs(self, graph: IntGraph) -> list[tuple[str, str, int]]:
        """(typedef name, type, size) of the input and of each output."""
        inp = graph.nodes[0]
        out = [(f"{self.prefix}_in_t", self.ctype(inp.type, inp.label()), inp.size)]
        for i, o in enumerate(graph.outputs):
            n = graph.nodes[o]
            out.append((f"{self.prefix}_out{i}_t", self.ctype(n.type, n.label()), n.size))
        return out

    def prototype(self, graph: IntGraph) -> str:
        tds = self.typedefs(graph)
        params = [f"const {tds[0][0]} in[{self.macro}_IN_SIZE]"]
        params += [f"{td} out{i}[{self.macro}_OUT{i}_SIZE]" for i, (td, _, _) in
                   enumerate(tds[1:])]
        sep = ",\n" + " " * (len(self.function_name()) + 6)
        return f"void {self.function_name()}({sep.join(params)})"

    def render_header(self, graph: IntGraph) -> str:
        L = Lines(self.indent)
        guard = f"HEATQ_{self.macro}_H"
        L(f"/* {self.prefix}: generated by heatq ({self.target}); do not edit. */",
          f"#ifndef {guard}", f"#define {guard}", "", *self.header_includes, "")
        tds = self.typedefs(graph)
        L(f"#define {self.macro}_IN_SIZE {tds[0][2]}", f"#define {self.macro}_N_OUTPUTS "
          f"{len(graph.outputs)}")
        for i in range(len(graph.outputs)):
            L(f"#define {self.macro}_OUT{i}_SIZE {tds[i + 1][2]}")
        L("")
        for (td, ct, _), n in zip(tds, [graph.nodes[0]] + [graph.nodes[o] for o in graph.outputs]):
            L(f"/* {n.label()}: shape {list(n.shape)}, range {n.lo}..{n.hi}, "
              f"{n.type.c_style()} */", f"typedef {ct} {td};")
        L("", "/* Evaluates one sample: in and out* are flat arrays in C, H, W order. */",
          self.prototype(graph) + ";", "", f"#endif /* {guard} */")
        return L.text()

    def render_constants(self, L: Lines, node: Node) -> None:
        a = node.attrs
        if node.op in (Op.CONV2D, Op.DENSE):
            self._array(L, self.weight_type(node), f"w{node.id}", a.weight.ravel(),
                        f"{node.label()}: weights {list(a.weight.shape)}, {a.w_bits} bits")
            self._array(L, self.ctype(node.type, node.label()), f"b{node.id}", a.bias,
                        f"{node.label()}: bias")
        elif node.op is Op.HAMMING_DECODE:
            self._array(L, self.codebook_type, f"cb{node.id}", a.codebook.ravel(),
                        f"{node.label()}: codebook {list(a.codebook.shape)}")

    def _array(self, L: Lines, ctype: str, name: str, values: np.ndarray, comment: str) -> None:
        vals = [int_literal(v) for v in values.tolist()] or ["0"]
        L(f"/* {comment} */")
        with L.block(f"static const {ctype} {name}[{len(vals)}] =", "};"):
            for i in range(0, len(vals), WRAP_COLS):
                L(", ".join(vals[i:i + WRAP_COLS]) + ",")
        L("")

    def render_function(self, graph: IntGraph) -> Lines:
        L = Lines(self.indent)
        with L.block(self.prototype(graph)):
            for node in graph.nodes[1:]:
                self.buffer_decl(L, self.ctype(node.type, node.label()), self.buf(node), node.size)
            for node in graph.nodes:
                L(f"/* {node.label()}: {node.op.value}, shape {list(node.shape)}, range "
                  f"{node.lo}..{node.hi}, {node.type.c_style()} */")
                self.ops[node.op](L, graph, node)
            for i, o in enumerate(graph.outputs):
                with L.block(f"for (int i = 0; i < {graph.nodes[o].size}; ++i)"):
                    L(f"out{i}[i] = {self.buf(graph.nodes[o])}[i];")
        return L

    # ---- ops -------------------------------------------------------------------------------
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
                mac = self.mac("acc", self.weight_read(node, f"((co * {c_in} + ci) * {k} + ky) * {k} + kx"),
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
                L(self.mac("acc", self.weight_read(node, f"o * {n_in} + i"), f"{self.buf(src)}[i]", mt))
            L(f"{self.buf(node)}[o] = {self.cast('acc', node.type)};")

    def op_requant(self, L: Lines, g: IntGraph, node: Node) -> None:
        """shift > 0: q = shr(x) then clip / wrap q.  shift < 0: compare x with the clip bounds
        divided by 2**k (so the shifted value is formed only when it fits), or wrap modulo
        2**m.  Branches that the ranges rule out are not emitted."""
        a, src = node.attrs, g.nodes[node.args[0]]
        x, y, t = f"{self.buf(src)}[i]", f"{self.buf(node)}[i]", node.type
        free = type(a)(a.shift, -(1 << 4096), 1 << 4096, a.rounding, Overflow.SATURATE)
        qlo, qhi = requant_scalar(src.lo, free), requant_scalar(src.hi, free)
        with L.block(f"for (int i = 0; i < {node.size}; ++i)"):
            self.pipeline(L)
            if a.shift >= 0:
                var, vt, vlo, vhi, k = x, src.type, src.lo, src.hi, 0
                if a.shift > 0:
                    var, vt, vlo, vhi = "q", IntType.for_range(qlo, qhi), qlo, qhi
                    qdecl = (f"const {self.ctype(vt, node.label())} q = "
                             f"{self.cast(self.shr(x, src.type, a.shift, a.rounding), vt)};")
                above, below = a.hi, a.lo
                mid = self.cast(var, t)
            else:
                var, vt, vlo, vhi, k = x, src.type, src.lo, src.hi, -a.shift
                above, below = a.hi >> k, -((-a.lo) >> k)  # floor(hi / 2^k), ceil(lo / 2^k)
                mid = None  # formed below, from the mid range
            if a.overflow is Overflow.WRAP:
                m = (a.hi - a.lo + 1).bit_length() - 1
                if a.lo <= qlo and qhi <= a.hi:
                    expr = mid if k == 0 else self.shl(var, k, t)
                else:
                    expr = self.wrap(var, vt, k, a.lo, m, t)
                if var == "q":
                    L(qdecl)
                L(f"{y} = {expr};")
                return
            # SATURATE: min(max(v, lo), hi) as an if-chain over the value or its threshold.
            mlo, mhi = max(vlo, below), min(vhi, above)
            uses_var = False
            if vlo > above:
                branches = [(None, self.lit(a.hi, t))]
            elif vhi < below:
                branches = [(None, self.lit(a.lo, t))]
            else:
                branches = []
                if vhi > above:
                    branches.append((f"{var} > {self.lit(above, vt)}", self.lit(a.hi, t)))
                if vlo < below:
                    branches.append((f"{var} < {self.lit(below, vt)}", self.lit(a.lo, t)))
                if mlo <= mhi:
                    if mid is None:
                        mid = self.lit(0, t) if mlo == mhi == 0 else self.shl(var, k, t)
                    branches.append((None, mid))
                else:
                    branches[-1] = (None, branches[-1][1])
                uses_var = True  # a comparison or the mid value reads var
            if len({v for _, v in branches}) == 1:  # e.g. lo == hi: one value everywhere
                branches, uses_var = branches[-1:], branches[-1][1] == mid
            if var == "q" and uses_var:
                L(qdecl)
            if len(branches) == 1:
                L(f"{y} = {branches[0][1]};")
                return
            for j, (cond, val) in enumerate(branches):
                head = "if" if j == 0 else "else if"
                L(f"{head} ({cond}) {y} = {val};" if cond else f"else {y} = {val};")

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

    # ---- main ------------------------------------------------------------------------------
    def render_main(self, graph: IntGraph) -> str:
        inp, tds, m = graph.nodes[0], self.typedefs(graph), self.macro
        outs = [(f"out{i}", f"{m}_OUT{i}_SIZE", graph.nodes[o].type)
                for i, o in enumerate(graph.outputs)]
        decls = "".join(f"    static {td} {o}[{size}];\n" for (td, _, _), (o, size, _) in
                        zip(tds[1:], outs))
        prints = "".join(f"        for (long i = 0; i < {size}; ++i) {{\n"
                         f"            {self.print_value(f'{o}[i]', t)}\n"
                         f"            sep = \" \";\n        }}\n" for o, size, t in outs)
        return Template(read_template("c_main.c.tmpl")).substitute(
            name=self.prefix, target=self.target, m=m, lo=inp.lo, hi=inp.hi,
            includes="\n".join(self.main_includes), in_t=tds[0][0], decls=decls,
            lo_lit=int_literal(inp.lo), hi_lit=int_literal(inp.hi), prints=prints,
            call=f"{self.function_name()}({', '.join(['in'] + [o for o, _, _ in outs])});")
