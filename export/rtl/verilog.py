"""Verilog-2001 printer of an RTL :class:`~.netlist.Module`: prints, chooses nothing.

Every declaration has an explicit width (``reg`` when a process drives the signal, else
``wire``); :class:`~.netlist.Comb` statements form the module's one ``always @*`` block,
printed first; the other statements follow in order, :class:`~.netlist.Reg` statements
with the same clock and enable grouped into one clocked process at the first one's place.
Parentheses: an operand is parenthesized when the operator around it binds tighter, and
bitwise operators of different kinds are always parenthesized against each other (Verilog's
``&`` / ``^`` / ``|`` precedences are easy to misread).
"""

from __future__ import annotations

from contextlib import contextmanager

from . import netlist as nl

_PREC = {nl.Add: 60, nl.Sub: 60, nl.Compare: 50, nl.And: 40, nl.Xor: 35, nl.Or: 30, nl.Mux: 10}
_ATOM = 100


class LineWriter:
    """Lines of text with an indentation level (``with w.indent(): ...``)."""

    def __init__(self, step: str = "    "):
        self.lines: list[str] = []
        self.level = 0
        self.step = step

    def line(self, text: str = "") -> None:
        self.lines.append(self.step * self.level + text if text else "")

    @contextmanager
    def indent(self):
        self.level += 1
        try:
            yield
        finally:
            self.level -= 1

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _prec(v: nl.Value) -> int:
    return _PREC.get(type(v), _ATOM)


def _bitwise(v: nl.Value) -> bool:
    return isinstance(v, (nl.And, nl.Xor, nl.Or))


def vrange(width: int) -> str:
    return f"[{width - 1}:0]" if width > 1 else ""


def expr(v: nl.Value) -> str:
    """The Verilog expression of value ``v`` (``v.width`` bits, self-determined)."""
    if isinstance(v, nl.Signal):
        return v.name
    if isinstance(v, nl.Slice):
        s = v.sig.name
        return f"{s}[{v.hi}]" if v.hi == v.lo else f"{s}[{v.hi}:{v.lo}]"
    if isinstance(v, nl.Const):
        if v.width == 1:
            return f"1'b{v.bits}"
        return f"{v.width}'b{v.bits:0{v.width}b}" if v.radix == "b" else f"{v.width}'d{v.bits}"
    if isinstance(v, nl.Concat):
        return "{" + ", ".join(expr(p) for p in reversed(v.parts)) + "}"
    if isinstance(v, nl.Repl):
        return f"{{{v.count}{{{expr(v.bit)}}}}}"
    if isinstance(v, nl.Not):
        inner = expr(v.a)
        return f"~{inner}" if _prec(v.a) == _ATOM else f"~({inner})"
    if isinstance(v, nl.Reduce):
        return f"({v.op}{_operand(v.a, _ATOM)})"
    if isinstance(v, nl.Compare):
        a, b = _operand(v.a, 60), _operand(v.b, 60)
        if v.signed:
            a, b = f"$signed({expr(v.a)})", f"$signed({expr(v.b)})"
        return f"{a} {v.op} {b}"
    if isinstance(v, nl.Binary):
        p = _prec(v)
        left = _operand(v.a, p, _bitwise(v.a) and type(v.a) is not type(v))
        right = _operand(v.b, p + 1, _bitwise(v.b) and type(v.b) is not type(v))
        return f"{left} {v.symbol} {right}"
    if isinstance(v, nl.Mux):
        sel = _operand(v.sel, _ATOM)
        t = _operand(v.if_true, 11)
        f = _operand(v.if_false, 11)
        return f"{sel} ? {t} : {f}"
    if isinstance(v, nl.LutTable):
        raise TypeError("a LutTable is printed only as the whole value of a Comb statement")
    raise TypeError(f"no Verilog for {type(v).__name__}")


def _operand(v: nl.Value, need: int, force: bool = False) -> str:
    text = expr(v)
    is_unary = isinstance(v, (nl.Not, nl.Reduce))
    if force or (_prec(v) < need and not is_unary):
        return f"({text})"
    return text


def _param(v) -> str:
    return str(v) if isinstance(v, int) else expr(v)


def _instance(st: nl.Instance) -> str:
    params = ", ".join(f".{k}({_param(v)})" for k, v in st.params)
    ports = ", ".join(f".{p.name}({expr(p.value) if p.value is not None else ''})"
                      for p in st.ports)
    head = f"{st.module} #({params}) " if params else f"{st.module} "
    return f"{head}{st.name} ({ports});"


def _lhs(dsts: tuple[nl.Signal, ...]) -> str:
    return dsts[0].name if len(dsts) == 1 else "{" + ", ".join(d.name for d in reversed(dsts)) + "}"


def _process(w: LineWriter, regs: list[nl.Reg]) -> None:
    head = f"always @(posedge {regs[0].clock.name})"
    en = regs[0].enable
    if en is not None:
        head += f" if ({expr(en)})"
    if len(regs) == 1:
        w.line(f"{head} {_lhs(regs[0].dsts)} <= {expr(regs[0].value)};")
        return
    w.line(f"{head} begin")
    with w.indent():
        for r in regs:
            w.line(f"{_lhs(r.dsts)} <= {expr(r.value)};")
    w.line("end")


def _table(w: LineWriter, dst: nl.Signal, t: nl.LutTable) -> None:
    """``case (index)`` with one arm per entry (a full case: no latch)."""
    iw = t.index.width
    w.line(f"case ({expr(t.index)})")
    with w.indent():
        for k, v in enumerate(t.table):
            w.line(f"{iw}'d{k}: {dst.name} = {expr(nl.Const(t.width, v))};")
    w.line("endcase")


def _declaration(kind: str, sig: nl.Signal) -> str:
    r = vrange(sig.width)
    return f"{kind} {r} {sig.name}" if r else f"{kind} {sig.name}"


def print_module(m: nl.Module) -> str:
    """The Verilog text of module ``m``."""
    w = LineWriter()
    for h in m.header:
        w.line(f"// {h}" if h else "//")
    w.line("// Generated by heatq; do not edit.")
    w.line("`default_nettype none")
    w.line(f"module {m.name} (")
    procs = m.driven_by_process()
    with w.indent():
        for k, (d, s) in enumerate(m.ports):
            kind = "input  wire" if d == "input" else (
                "output reg" if id(s) in procs else "output wire")
            w.line(_declaration(kind, s) + ("," if k < len(m.ports) - 1 else ""))
    w.line(");")
    with w.indent():
        for s in m.signals:
            w.line(_declaration("reg" if id(s) in procs else "wire", s) + ";")
    w.line()
    with w.indent():
        _body(w, m)
    w.line("endmodule")
    w.line("`default_nettype wire")
    return w.text()


def _body(w: LineWriter, m: nl.Module) -> None:
    combs = [st for st in m.statements if isinstance(st, nl.Comb)]
    if combs:
        w.line("always @* begin")
        with w.indent():
            for st in combs:
                if isinstance(st.value, nl.LutTable):
                    _table(w, st.dst, st.value)
                else:
                    w.line(f"{st.dst.name} = {expr(st.value)};")
        w.line("end")
    groups: dict[tuple[int, int], list[nl.Reg]] = {}
    for st in m.statements:
        if isinstance(st, nl.Reg):
            key = (id(st.clock), id(st.enable))
            if key in groups:
                groups[key].append(st)
                continue
            groups[key] = [st]
    for st in m.statements:
        if isinstance(st, nl.Assign):
            w.line(f"assign {st.dst.name} = {expr(st.value)};")
        elif isinstance(st, nl.Instance):
            w.line(_instance(st))
        elif isinstance(st, nl.Reg):
            g = groups.get((id(st.clock), id(st.enable)))
            if g is not None and g[0] is st:
                _process(w, g)
