"""Which bits of a module's signals are never read, and the one ``unused_ok`` sink for them.

Verilator's ``-Wall`` warns about declared-but-unread bits; its convention is that a signal
whose name contains ``unused`` is exempt, so every unread bit of an input or internal signal
goes into ``unused_ok = &{1'b0, ...}`` and generated files lint clean without pragmas.
"""

from __future__ import annotations

from . import netlist as nl


def _mark(v: nl.Value, used: dict[int, int]) -> None:
    if isinstance(v, nl.Signal):
        used[id(v)] = used.get(id(v), 0) | ((1 << v.width) - 1)
        return
    if isinstance(v, nl.Slice):
        used[id(v.sig)] = used.get(id(v.sig), 0) | (((1 << v.width) - 1) << v.lo)
        return
    for o in v.operands():
        _mark(o, used)


def read_bits(m: nl.Module) -> dict[int, int]:
    """id(signal) -> mask of the bits some statement reads."""
    used: dict[int, int] = {}
    for st in m.statements:
        if isinstance(st, (nl.Comb, nl.Assign)):
            _mark(st.value, used)
        elif isinstance(st, nl.Reg):
            _mark(st.value, used)
            _mark(st.clock, used)
            if st.enable is not None:
                _mark(st.enable, used)
        elif isinstance(st, nl.Instance):
            for p in st.ports:
                if p.value is not None and not p.output:
                    _mark(p.value, used)
    return used


def unread(m: nl.Module) -> list[nl.Value]:
    """The unread bits of every input and internal signal, as whole signals or slices, in
    declaration order."""
    used = read_bits(m)
    out: list[nl.Value] = []
    sigs = [s for d, s in m.ports if d == "input"] + list(m.signals)
    for s in sigs:
        free = ~used.get(id(s), 0) & ((1 << s.width) - 1)
        i = 0
        while i < s.width:
            if free >> i & 1:
                j = i
                while j + 1 < s.width and free >> (j + 1) & 1:
                    j += 1
                out.append(nl.bits(s, j, i))
                i = j + 1
            else:
                i += 1
    return out


def add_unused_sink(m: nl.Module) -> None:
    """Add ``unused_ok = &{1'b0, <unread bits>}`` when some bits are unread."""
    free = unread(m)
    if not free:
        return
    sink = m.signal("unused_ok", 1)
    m.assign(sink, nl.Reduce("&", nl.Concat(tuple(reversed(free)) + (nl.Const(1, 0),))))
