"""The C99 target: ``model.h``, ``model.c``, ``main.c``.

Types: every buffer is the narrowest of ``int8/16/32/64_t`` (signed node types) or
``uint8/16/32/64_t`` (unsigned) that holds the node's ``width``; a node wider than 64 bits is
an :class:`EmitError`.  Weights are the narrowest signed stdint type holding ``w_bits``; the
codebook is ``uint8_t``.

Exactness without implementation-defined or undefined behaviour:

* CONV2D / DENSE multiply and add in one type that holds the accumulator's range (which
  covers every partial sum, see :mod:`heatq.ir.rules`) and both operands' ranges; both
  operands are cast to it, so no product or partial sum can overflow.
* A right shift of a signed value goes through ``hq_floor_shr`` (shifts only non-negative
  numbers).  HALF_UP adds ``2**(s-1)`` in ``int64_t`` / ``uint64_t`` (at least one bit wider
  than any input of at most 63 bits); a 64-bit input uses the identity
  ``floor((x + 2**(s-1)) / 2**s) == floor(x / 2**s) + bit s-1 of x`` instead, which needs no
  wider type.  HALF_EVEN adds ``2**(s-1) - 1`` and the tie bit ``bit s`` of ``x`` (read from
  ``(uint64_t)x``, a defined conversion) the same way; a 64-bit input uses
  ``floor(x / 2**s) + (bit s-1 AND (any of bits s-2..0 OR bit s))``.
* Left shifts happen on ``uint64_t`` (modular, defined) and come back to signed through
  ``hq_u2s`` (no implementation-defined conversion); SATURATE compares the input with the
  bounds divided by ``2**k`` first, so the shifted value is formed only where it fits.
* WRAP reduces modulo ``2**m`` with a mask on ``uint64_t``.
* THRESHOLD compares the argument and its thresholds (clamped to ``lo..hi+1``) in one stdint
  type holding both, so no comparison mixes signed and unsigned operands.

Compiles cleanly with ``gcc -std=c99 -Wall -Wextra -Werror -fsanitize=undefined,address``.
"""

from __future__ import annotations

from heatq.ir import IntType, Node

from .base import EmitError
from .clike import CLikeEmitter
from .ctext import Lines, int_literal

_HELPERS = {
    "floor_shr": (
        "/* floor(x / 2^s) for 1 <= s <= 63 and any int64_t x; shifts only non-negative values. */\n"
        "static int64_t hq_floor_shr(int64_t x, int s)\n{\n"
        "    return x >= 0 ? x >> s : -((-(x + 1)) >> s) - 1;\n}"),
    "u2s": (
        "/* The int64_t whose two's-complement bit pattern is u (no implementation-defined cast). */\n"
        "static int64_t hq_u2s(uint64_t u)\n{\n"
        "    return u <= (uint64_t)INT64_MAX ? (int64_t)u : -(int64_t)(UINT64_MAX - u) - 1;\n}"),
}


def stdint_name(t: IntType, where: str) -> str:
    """``int8_t`` .. ``uint64_t``: the narrowest stdint type holding ``t``."""
    for n in (8, 16, 32, 64):
        if t.width <= n:
            return f"{'' if t.signed else 'u'}int{n}_t"
    raise EmitError(f"{where}: {t.width}-bit type {t.c_style()} does not fit a C99 integer "
                    "type (at most 64 bits); use the hls or verilog target, or requantize")


class CEmitter(CLikeEmitter):
    """C99 source for gcc / clang; see the module docstring for the exactness rules."""

    target = "c"
    src_ext = "c"
    header_includes = ("#include <stdint.h>",)
    source_includes = ("#include <stdint.h>", '#include "model.h"')
    main_includes = ("#include <errno.h>", "#include <limits.h>", "#include <stdio.h>",
                     "#include <stdlib.h>")
    codebook_type = "uint8_t"

    def ctype(self, t: IntType, where: str) -> str:
        return stdint_name(t, where)

    def weight_type(self, node: Node) -> str:
        bits = max(node.attrs.w_bits, 2)
        if bits > 64:  # the values are int64 anyway: use their actual range
            w = node.attrs.weight
            return stdint_name(IntType.for_range(min(int(w.min()), 0), int(w.max())),
                               node.label())
        return stdint_name(IntType(True, bits), node.label())

    def cast(self, expr: str, t: IntType) -> str:
        return f"({stdint_name(t, 'cast')})({expr})"

    def lit(self, v: int, t: IntType) -> str:
        return f"(({stdint_name(t, 'constant')}){int_literal(v)})"

    def mac_type(self, node: Node, src: Node) -> IntType:
        w = node.attrs.weight
        lo = min(node.lo, src.lo, int(w.min(initial=0)), 0)
        hi = max(node.hi, src.hi, int(w.max(initial=0)), 0)
        t = IntType.for_range(lo, hi)
        if t.width > 64:
            raise EmitError(f"{node.label()}: the multiply type for weights and inputs "
                            f"{lo}..{hi} needs {t.width} bits (C allows 64)")
        return t

    def mac(self, acc: str, w: str, x: str, mt: IntType) -> str:
        ct = stdint_name(mt, "mac")
        return f"{acc} += ({ct}){w} * ({ct}){x};"

    def floor_shr_signed(self, x: str, s: int) -> str:
        self._used.add("floor_shr")
        return f"hq_floor_shr((int64_t){x}, {s})"

    def half_up_shr(self, x: str, src: IntType, s: int, round_const: int) -> str:
        w = src.width
        half = int_literal(round_const)
        if w <= 63:  # the rounding add in a 64-bit type, at least one bit wider than x
            if not src.signed:
                return f"(((uint64_t){x} + {half}) >> {s})"
            self._used.add("floor_shr")
            return f"hq_floor_shr((int64_t){x} + {half}, {s})"
        if not src.signed:  # 64-bit input: floor(x / 2^s) + bit s-1 of x
            high = f"({x} >> {s})" if s < 64 else "0"
            return f"({high} + (({x} >> {s - 1}) & 1u))"
        self._used.add("floor_shr")
        return (f"(hq_floor_shr({x}, {min(s, 63)}) + "
                f"(int64_t)(((uint64_t){x} >> {s - 1}) & 1u))")

    def half_even_shr(self, x: str, src: IntType, s: int) -> str:
        w, inc = src.width, int_literal((1 << (s - 1)) - 1)

        def bit(k: int) -> str:  # bit k of x's two's complement pattern, as uint64_t
            return f"(((uint64_t){x} >> {k}) & 1u)"

        if w <= 63:  # the add in a 64-bit type: |x| < 2^62 (signed) or x < 2^63, inc < 2^62
            plus = f" + {inc}" if s > 1 else ""
            if not src.signed:
                return f"(((uint64_t){x}{plus} + {bit(s)}) >> {s})"
            self._used.add("floor_shr")
            return f"hq_floor_shr((int64_t){x}{plus} + (int64_t){bit(s)}, {s})"
        # 64-bit input: floor(x / 2^s) + (bit s-1 of x AND (a lower bit set OR bit s of x))
        sticky = f" | (uint64_t)(((uint64_t){x} & {inc}) != 0u)" if s > 1 else ""
        odd = bit(s) if s < 64 else "0u"
        up = f"({bit(s - 1)} & ({odd}{sticky}))"
        if not src.signed:
            high = f"({x} >> {s})" if s < 64 else "0"
            return f"({high} + {up})"
        self._used.add("floor_shr")
        return f"(hq_floor_shr({x}, {s}) + (int64_t){up})"

    def _from_u64(self, expr: str, dst: IntType) -> str:
        if not dst.signed:
            return self.cast(expr, dst)
        self._used.add("u2s")
        return self.cast(f"hq_u2s({expr})", dst)

    def shl(self, x: str, k: int, dst: IntType) -> str:
        if k >= 64:
            return self.lit(0, dst)
        return self._from_u64(f"(uint64_t){x} << {k}", dst)

    def wrap(self, x: str, xt: IntType, k: int, lo: int, m: int, dst: IntType) -> str:
        u = "(uint64_t)0" if k >= 64 else f"((uint64_t){x} << {k})" if k else f"(uint64_t){x}"
        lo_u = f"(uint64_t){int_literal(lo)}"
        mask = int_literal((1 << m) - 1) + ("" if m > 31 else "u")
        if lo == 0:
            return self._from_u64(f"{u} & {mask}", dst)
        return self._from_u64(f"{lo_u} + (({u} - {lo_u}) & {mask})", dst)

    def helpers(self) -> list[str]:
        return [_HELPERS[h] for h in sorted(self._used)]

    def buffer_decl(self, L: Lines, ctype: str, name: str, size: int) -> None:
        L(f"static {ctype} {name}[{size}];")

    def print_value(self, expr: str, t: IntType) -> str:
        if t.signed:
            return f'printf("%s%lld", sep, (long long){expr});'
        return f'printf("%s%llu", sep, (unsigned long long){expr});'
