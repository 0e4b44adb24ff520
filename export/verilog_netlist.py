"""A small structured Verilog-2001 writer for generated modules.

:class:`VModule` collects ports, declarations and body lines, every signal with an explicit
width, and records which bits of each signal are read.  Bits that are declared but never read
are gathered into one ``unused_ok`` wire (Verilator's ``*unused*`` convention), so generated
files are clean under ``verilator --lint-only -Wall`` without lint pragmas.  The whole file is
rendered through the named-placeholder skeleton ``hdl_templates/module.v.tmpl``.
"""

from __future__ import annotations

from string import Template

from heatq.ir import IntType

from .skeletons import read_template


def const(width: int, value: int) -> str:
    """A sized constant holding ``value`` modulo ``2**width`` (two's complement)."""
    return f"{width}'d{value & ((1 << width) - 1)}"


def vrange(width: int) -> str:
    return f"[{width - 1}:0]" if width > 1 else ""


def _decl(kind: str, width: int, name: str, expr: str | None = None) -> str:
    r = vrange(width)
    text = f"{kind} {r} {name}" if r else f"{kind} {name}"
    return text + (f" = {expr};" if expr is not None else ";")


class VModule:
    """One generated module; see the module docstring."""

    def __init__(self, name: str, doc: str):
        self.name = name
        self.doc = doc
        self.ports: list[str] = []
        self.decls: list[str] = []
        self.body: list[str] = []
        self.width: dict[str, int] = {}
        self.signed: dict[str, bool] = {}
        self.used: dict[str, int] = {}
        self.tracked: list[str] = []
        self.combs: list[str] = []

    # ---------------------------------------------------------------- declarations
    def _sig(self, name: str, width: int, signed: bool, track: bool) -> str:
        if name in self.width:
            raise ValueError(f"signal {name} declared twice")
        if width < 1:
            raise ValueError(f"signal {name} has width {width}")
        self.width[name] = width
        self.signed[name] = signed
        self.used[name] = 0
        if track:
            self.tracked.append(name)
        return name

    def input(self, name: str, width: int, signed: bool = False) -> str:
        self.ports.append(_decl("input  wire", width, name)[:-1])
        return self._sig(name, width, signed, True)

    def output(self, name: str, width: int, reg: bool = False) -> str:
        self.ports.append(_decl("output reg" if reg else "output wire", width, name)[:-1])
        return self._sig(name, width, False, False)

    def wire(self, name: str, width: int, expr: str | None = None, signed: bool = False,
             track: bool = True) -> str:
        self._sig(name, width, signed, track)
        if expr is None:
            self.decls.append(_decl("wire", width, name))
        else:
            self.decls.append(_decl("wire", width, name, expr))
        return name

    def comb(self, name: str, width: int, expr: str, signed: bool = False) -> str:
        """A combinational signal: a ``reg`` assigned in the module's one ``always @*`` block
        (in declaration order, so every signal is assigned before it is read).  Icarus
        evaluates a procedural block far faster than thousands of continuous assigns."""
        self._sig(name, width, signed, True)
        self.decls.append(_decl("reg", width, name))
        self.combs.append(f"{name} = {expr};")
        return name

    def reg(self, name: str, width: int, signed: bool = False) -> str:
        self._sig(name, width, signed, True)
        self.decls.append(_decl("reg", width, name))
        return name

    def typed_wire(self, name: str, t: IntType, expr: str | None = None) -> str:
        return self.wire(name, t.width, expr, t.signed)

    def line(self, text: str = "") -> None:
        self.body.append(text)

    # ---------------------------------------------------------------- references
    def sel(self, name: str, hi: int, lo: int) -> str:
        """``name[hi:lo]`` (or the whole name), marking those bits read."""
        w = self.width[name]
        if not 0 <= lo <= hi < w:
            raise ValueError(f"{name}[{hi}:{lo}] outside {w} bits")
        self.used[name] |= ((1 << (hi - lo + 1)) - 1) << lo
        if lo == 0 and hi == w - 1:
            return name
        return f"{name}[{hi}]" if hi == lo else f"{name}[{hi}:{lo}]"

    def all(self, name: str) -> str:
        return self.sel(name, self.width[name] - 1, 0)

    def bit(self, name: str, i: int) -> str:
        return self.sel(name, i, i)

    def ext(self, name: str, shift: int, lo: int, hi: int) -> str:
        """Bits ``hi..lo`` of ``name << shift`` as a two's complement value (sign- or
        zero-extended by ``name``'s signedness): a ``hi-lo+1``-bit expression."""
        w = self.width[name]
        sgn = self.signed[name]
        parts: list[str] = []
        # from MSB down: extension bits, the signal's bits, zero bits below the shift
        top_sig = shift + w - 1  # position of the signal's MSB
        if hi > top_sig:
            n = hi - max(lo, top_sig + 1) + 1
            if sgn:
                b = self.bit(name, w - 1)
                parts.append(b if n == 1 else f"{{{n}{{{b}}}}}")
            else:
                parts.append(f"{n}'d0")
        s_hi, s_lo = min(hi, top_sig), max(lo, shift)
        if s_hi >= s_lo:
            parts.append(self.sel(name, s_hi - shift, s_lo - shift))
        if lo < shift:
            n = min(hi, shift - 1) - lo + 1
            parts.append(f"{n}'d0")
        return parts[0] if len(parts) == 1 else "{" + ", ".join(parts) + "}"

    # ---------------------------------------------------------------- rendering
    def render(self) -> str:
        unused = []
        for name in self.tracked:
            w = self.width[name]
            free = ~self.used[name] & ((1 << w) - 1)
            i = 0
            while i < w:
                if free >> i & 1:
                    j = i
                    while j + 1 < w and free >> (j + 1) & 1:
                        j += 1
                    unused.append(name if (i == 0 and j == w - 1) else
                                  (f"{name}[{i}]" if i == j else f"{name}[{j}:{i}]"))
                    i = j + 1
                else:
                    i += 1
        decls = list(self.decls)
        if unused:
            decls.append("wire unused_ok = &{1'b0, " + ", ".join(unused) + "};")
        ind = "    "
        body = list(self.body)
        if self.combs:
            body = (["always @* begin"] + ["    " + c for c in self.combs] + ["end"] + body)
        return Template(read_template("module.v.tmpl")).substitute(
            doc="\n".join("// " + d if d else "//" for d in self.doc.splitlines()),
            name=self.name,
            ports=(",\n").join(ind + p for p in self.ports),
            decls="\n".join(ind + d for d in decls),
            body="\n".join((ind + b) if b else "" for b in body),
        )
