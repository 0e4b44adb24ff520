"""The RTL netlist: signals, values (cells) and modules, every width explicit.

A :class:`Module` holds ports and signals and an ordered list of statements; a statement
drives signals from a :class:`Value`:

* :class:`Comb` -- combinational, in the module's one ``always @*`` block (in statement
  order, so every signal is assigned before it is read);
* :class:`Assign` -- a continuous assignment (used to drive output ports and wires);
* :class:`Reg` -- registered: ``dsts <= value`` at the rising clock edge, optionally only
  while ``enable`` is 1 (statements with the same clock and enable form one process);
* :class:`Instance` -- a primitive or submodule with parameters and port connections.

Values are bit vectors of a fixed ``width``.  Arithmetic values (:class:`Add`, :class:`Sub`)
take operands already extended to their width and compute modulo ``2**width``; signedness is
explicit where it matters: a :class:`Signal`'s ``signed`` says how its bits are read (two's
complement or not) by the helpers that extend it (:func:`shifted`), and a :class:`Compare`
states whether it compares as signed.  Nothing here chooses arithmetic: mappers
(:mod:`.adders`, :mod:`.requant`) build these cells and the printer (:mod:`.verilog`) prints
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class Value:
    """A bit vector of ``width`` bits (read as unsigned unless a cell says otherwise)."""

    width: int

    def operands(self) -> tuple["Value", ...]:
        return ()


@dataclass(eq=False)
class Signal(Value):
    """A named signal.  ``signed``: its bits are a two's complement number."""

    name: str
    width: int
    signed: bool = False

    def __post_init__(self):
        if self.width < 1:
            raise ValueError(f"signal {self.name} has width {self.width}")


@dataclass(frozen=True, eq=False)
class Slice(Value):
    """Bits ``hi..lo`` of a signal (unsigned)."""

    sig: Signal
    hi: int
    lo: int

    def __post_init__(self):
        if not 0 <= self.lo <= self.hi < self.sig.width:
            raise ValueError(f"{self.sig.name}[{self.hi}:{self.lo}] outside {self.sig.width} bits")

    @property
    def width(self) -> int:  # type: ignore[override]
        return self.hi - self.lo + 1

    def operands(self):
        return (self.sig,)


@dataclass(frozen=True, eq=False)
class Const(Value):
    """``value`` modulo ``2**width`` (two's complement for negative values); ``radix`` 'd' or
    'b' is only how it is written."""

    width: int
    value: int
    radix: str = "d"

    @property
    def bits(self) -> int:
        return self.value & ((1 << self.width) - 1)


@dataclass(frozen=True, eq=False)
class Concat(Value):
    """Concatenation; ``parts[0]`` is the least significant."""

    parts: tuple[Value, ...]

    @property
    def width(self) -> int:  # type: ignore[override]
        return sum(p.width for p in self.parts)

    def operands(self):
        return self.parts


@dataclass(frozen=True, eq=False)
class Repl(Value):
    """``count`` copies of a 1-bit value (sign extension)."""

    bit: Value
    count: int

    @property
    def width(self) -> int:  # type: ignore[override]
        return self.count

    def operands(self):
        return (self.bit,)


@dataclass(frozen=True, eq=False)
class Binary(Value):
    """A two-operand cell of equal-width operands; see the subclasses."""

    a: Value
    b: Value
    symbol = "?"

    def __post_init__(self):
        if self.a.width != self.b.width:
            raise ValueError(f"{type(self).__name__}: operand widths {self.a.width} and "
                             f"{self.b.width} differ")

    @property
    def width(self) -> int:  # type: ignore[override]
        return self.a.width

    def operands(self):
        return (self.a, self.b)


class Add(Binary):
    """``a + b`` modulo ``2**width`` (a carry-propagate adder)."""

    symbol = "+"


class Sub(Binary):
    """``a - b`` modulo ``2**width``."""

    symbol = "-"


class Xor(Binary):
    symbol = "^"


class And(Binary):
    symbol = "&"


class Or(Binary):
    symbol = "|"


@dataclass(frozen=True, eq=False)
class Not(Value):
    """Bitwise complement."""

    a: Value

    @property
    def width(self) -> int:  # type: ignore[override]
        return self.a.width

    def operands(self):
        return (self.a,)


@dataclass(frozen=True, eq=False)
class Reduce(Value):
    """1 bit: the OR (``op='|'``) or AND (``op='&'``) of every bit of ``a``."""

    op: str
    a: Value
    width = 1

    def operands(self):
        return (self.a,)


@dataclass(frozen=True, eq=False)
class Compare(Value):
    """1 bit: ``a < b`` (``op='<'``) or ``a > b`` (``op='>'``), both read as two's complement
    when ``signed``."""

    op: str
    a: Value
    b: Value
    signed: bool
    width = 1

    def operands(self):
        return (self.a, self.b)


@dataclass(frozen=True, eq=False)
class Mux(Value):
    """``sel ? if_true : if_false`` (1-bit ``sel``, equal-width branches)."""

    sel: Value
    if_true: Value
    if_false: Value

    @property
    def width(self) -> int:  # type: ignore[override]
        return self.if_true.width

    def operands(self):
        return (self.sel, self.if_true, self.if_false)


@dataclass(frozen=True, eq=False)
class LutTable(Value):
    """``table[index]``: a constant table (a LUT / ROM) of ``2**index.width`` entries of
    ``width`` bits, ``index`` read unsigned.  Printed as a ``case`` statement, so it is only
    the whole value of a :class:`Comb` statement."""

    index: Value
    table: tuple[int, ...]
    width: int

    def __post_init__(self):
        if len(self.table) != 1 << self.index.width:
            raise ValueError(f"LutTable: {len(self.table)} entries for a "
                             f"{self.index.width}-bit index")

    def operands(self):
        return (self.index,)


def compressor(bits, weights=None) -> LutTable:
    """A generalised parallel counter: ``sum_i weights[i] * bits[i]`` of 1-bit values (all
    weights 1: a 6:3 counter for six bits) as one :class:`LutTable` over their concatenation,
    ``bits[0]`` the least significant index bit; as wide as the largest sum needs."""
    weights = [1] * len(bits) if weights is None else list(weights)
    if any(b.width != 1 for b in bits) or len(weights) != len(bits) or min(weights) < 0:
        raise ValueError("compressor: 1-bit inputs and non-negative weights, one each")
    table = tuple(sum(w for i, w in enumerate(weights) if k >> i & 1)
                  for k in range(1 << len(bits)))
    return LutTable(cat(*bits), table, max(1, max(table).bit_length()))


# ------------------------------------------------------------------------------ statements
@dataclass(frozen=True, eq=False)
class Comb:
    dst: Signal
    value: Value


@dataclass(frozen=True, eq=False)
class Assign:
    dst: Signal
    value: Value


@dataclass(frozen=True, eq=False)
class Reg:
    """``{dsts[-1], ..., dsts[0]} <= value`` on ``clock``'s rising edge (while ``enable``)."""

    dsts: tuple[Signal, ...]
    value: Value
    clock: Signal
    enable: Value | None = None


@dataclass(frozen=True, eq=False)
class Port:
    name: str
    value: Value | None  # None: unconnected
    output: bool = False


@dataclass(frozen=True, eq=False)
class Instance:
    """``module #(params) name (ports)``; a parameter is an int or a :class:`Const`."""

    module: str
    name: str
    params: tuple[tuple[str, int | Const], ...]
    ports: tuple[Port, ...]


# ------------------------------------------------------------------------------ helpers
def const(width: int, value: int) -> Const:
    return Const(width, value)


def bits(sig: Signal, hi: int, lo: int) -> Value:
    """``sig[hi:lo]``; the signal itself when that is all of it."""
    return sig if (lo == 0 and hi == sig.width - 1) else Slice(sig, hi, lo)


def bit(sig: Signal, i: int) -> Value:
    return bits(sig, i, i)


def cat(*parts: Value) -> Value:
    """Concatenation, least significant part first (one part: the part itself)."""
    return parts[0] if len(parts) == 1 else Concat(tuple(parts))


def shifted(sig: Signal, shift: int, lo: int, hi: int) -> Value:
    """Bits ``hi..lo`` of ``sig << shift`` read as a two's complement number (sign-extended
    when ``sig.signed``, else zero-extended): a ``hi - lo + 1``-bit value."""
    w = sig.width
    parts: list[Value] = []
    if lo < shift:
        parts.append(Const(min(hi, shift - 1) - lo + 1, 0))
    s_hi, s_lo = min(hi, shift + w - 1), max(lo, shift)
    if s_hi >= s_lo:
        parts.append(bits(sig, s_hi - shift, s_lo - shift))
    top = shift + w - 1  # where the signal's MSB lands
    if hi > top:
        n = hi - max(lo, top + 1) + 1
        if sig.signed:
            parts.append(Repl(bit(sig, w - 1), n) if n > 1 else bit(sig, w - 1))
        else:
            parts.append(Const(n, 0))
    return cat(*parts)


# ------------------------------------------------------------------------------ module
@dataclass
class Module:
    """One generated module: ``header`` comment lines, ports (in order), internal signals
    (in declaration order) and statements (in order)."""

    name: str
    header: list[str] = field(default_factory=list)
    ports: list[tuple[str, Signal]] = field(default_factory=list)  # ("input"|"output", sig)
    signals: list[Signal] = field(default_factory=list)
    statements: list = field(default_factory=list)
    _names: set[str] = field(default_factory=set)

    def _new(self, name: str, width: int, signed: bool) -> Signal:
        if name in self._names:
            raise ValueError(f"{self.name}: signal {name} declared twice")
        self._names.add(name)
        return Signal(name, width, signed)

    def input(self, name: str, width: int, signed: bool = False) -> Signal:
        s = self._new(name, width, signed)
        self.ports.append(("input", s))
        return s

    def output(self, name: str, width: int, signed: bool = False) -> Signal:
        s = self._new(name, width, signed)
        self.ports.append(("output", s))
        return s

    def signal(self, name: str, width: int, signed: bool = False) -> Signal:
        s = self._new(name, width, signed)
        self.signals.append(s)
        return s

    def comb(self, name: str, value: Value, signed: bool = False) -> Signal:
        """A new combinational signal holding ``value``."""
        s = self.signal(name, value.width, signed)
        self.statements.append(Comb(s, value))
        return s

    def assign(self, dst: Signal, value: Value) -> None:
        _check_width(dst, value)
        self.statements.append(Assign(dst, value))

    def reg(self, dsts: Signal | tuple[Signal, ...], value: Value, clock: Signal,
            enable: Value | None = None) -> None:
        dsts = dsts if isinstance(dsts, tuple) else (dsts,)
        if sum(d.width for d in dsts) != value.width:
            raise ValueError(f"{self.name}: {[d.name for d in dsts]} <= {value.width} bits")
        self.statements.append(Reg(dsts, value, clock, enable))

    def instance(self, module: str, name: str, params, ports) -> None:
        self.statements.append(Instance(module, name, tuple(params), tuple(ports)))

    def driven_by_process(self) -> set[int]:
        """ids of the signals a process drives (declared ``reg`` in Verilog)."""
        out = set()
        for st in self.statements:
            if isinstance(st, Comb):
                out.add(id(st.dst))
            elif isinstance(st, Reg):
                out.update(id(d) for d in st.dsts)
        return out


def _check_width(dst: Signal, value: Value) -> None:
    if dst.width != value.width:
        raise ValueError(f"{dst.name} ({dst.width} bits) = {value.width}-bit value")
