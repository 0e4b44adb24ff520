"""The HLS C++ target (Vitis HLS style): ``model.h``, ``model.cpp``, ``main.cpp``.

Types are ``ap_int<W>`` (signed node types) or ``ap_uint<W>`` (unsigned) with exactly the
node's width; weights are stored as plain C integer arrays and read as ``ap_int<w_bits>``
(1-bit weights, values {-1, +1}, use ``ap_int<2>``); the codebook is ``ap_uint<1>``.  The top function is
``void <name>_top(const <in type> in[..], <out type> out0[..], ...)``.

Arithmetic is in ap_int, which is exact: a product has the sum of its operands' widths, a sum
one more bit, and an assignment keeps the low bits, which is exact because every partial sum
lies in the accumulator's range.  ``>>`` on a signed ap_int is arithmetic (floor); HALF_UP
adds ``2**(s-1)`` in a type one bit wider than the input, HALF_EVEN ``2**(s-1) - 1`` plus
the tie bit ``bit s`` of the input; WRAP keeps the low ``m`` bits with an
``ap_uint<m>`` conversion; THRESHOLD counts ``table[c, k] <= x`` in a loop the element loop's
pipeline unrolls.  Nodes of any width are supported; the text protocol in
``main.cpp`` reads inputs of at most 64 bits and prints outputs of any width.

The C simulation compiles with ``g++ -std=c++14 -I<ap_types>``, where the headers come from
the installed hls4ml package (:func:`find_ap_types`).
"""

from __future__ import annotations

from pathlib import Path

from heatq.ir import IntType, Node

from .base import EmitError
from .clike import CLikeEmitter
from .ctext import Lines, int_literal

PARTITION_MAX = 64  # buffers up to this many elements are partitioned into registers


def find_ap_types() -> Path:
    """The ``ap_types`` include directory shipped inside the installed hls4ml package."""
    try:
        import hls4ml
    except ImportError as e:
        raise EmitError("the HLS target needs the ap_int headers from the hls4ml package "
                        f"(pip install hls4ml): {e}") from None
    path = Path(hls4ml.__file__).parent / "templates" / "vivado" / "ap_types"
    if not (path / "ap_int.h").is_file():
        raise EmitError(f"hls4ml is installed but {path / 'ap_int.h'} is missing")
    return path


def ap_name(t: IntType) -> str:
    return f"ap_{'' if t.signed else 'u'}int<{t.width}>"


class HLSEmitter(CLikeEmitter):
    """Vitis-HLS-style C++ with exact-width ap_int types."""

    target = "hls"
    src_ext = "cpp"
    header_includes = ('#include "ap_int.h"',)
    source_includes = ('#include "model.h"',)
    main_includes = ("#include <cerrno>", "#include <climits>", "#include <cstdio>",
                     "#include <cstdlib>")
    codebook_type = "ap_uint<1>"

    def ctype(self, t: IntType, where: str) -> str:
        return ap_name(t)

    def check_node(self, node: Node) -> None:
        if node.type.width > 1024:  # AP_INT_MAX_W default
            raise EmitError(f"{node.label()}: {node.type.width} bits exceed ap_int's 1024")

    def weight_type(self, node: Node) -> str:
        """Weights are stored as plain C integers (an initializer of ap_int constructors takes
        g++ minutes and gigabytes for large layers) and read as ``ap_int<w_bits>``."""
        bits = max(node.attrs.w_bits, 2)
        for n, name in ((8, "signed char"), (16, "short"), (32, "int")):
            if bits <= n:
                return name
        return "long long"

    def weight_read(self, node: Node, index: str) -> str:
        return f"ap_int<{max(node.attrs.w_bits, 2)}>(w{node.id}[{index}])"

    def cast(self, expr: str, t: IntType) -> str:
        return f"{ap_name(t)}({expr})"

    def lit(self, v: int, t: IntType) -> str:
        if -(1 << 63) <= v < (1 << 64):
            return f"{ap_name(t)}({int_literal(v)})"
        return f'{ap_name(t)}("{v}", 10)'

    def mac(self, acc: str, w: str, x: str, mt: IntType) -> str:
        return f"{acc} += {w} * {x};"

    def floor_shr_signed(self, x: str, s: int) -> str:
        return f"({x} >> {s})"  # >> on a signed ap_int is arithmetic (floor)

    def half_up_shr(self, x: str, src: IntType, s: int, round_const: int) -> str:
        wide = IntType(src.signed, src.width + 1)
        half = self.lit(round_const, IntType(False, s))
        return f"(({self.cast(x, wide)} + {half}) >> {s})"

    def half_even_shr(self, x: str, src: IntType, s: int) -> str:
        """``(x + (2**(s-1) - 1) + x[s]) >> s`` in a type one bit wider than ``x`` (ap_int's
        sum widens further); the tie bit ``x[s]`` as ``ap_uint<1>(x >> s)``, absent when
        ``s == width`` (unsigned ``x``: bit s is 0)."""
        terms = [self.cast(x, IntType(src.signed, src.width + 1))]
        if s > 1:
            terms.append(self.lit((1 << (s - 1)) - 1, IntType(False, s - 1)))
        if s < src.width:
            terms.append(f"ap_uint<1>({x} >> {s})")
        return f"(({' + '.join(terms)}) >> {s})"

    def shl(self, x: str, k: int, dst: IntType) -> str:
        return f"({self.cast(x, dst)} << {k})"

    def wrap(self, x: str, xt: IntType, k: int, lo: int, m: int, dst: IntType) -> str:
        lo_t = IntType.for_range(min(lo, 0), max(lo, 0))
        wide = IntType(True, max(xt.width + k, lo_t.width) + 2)
        shifted = self.cast(x, wide) + (f" << {k}" if k else "")
        low = f"ap_uint<{m}>(({shifted}) - {self.lit(lo, lo_t)})"
        return self.cast(f"{self.lit(lo, lo_t)} + {low}", dst)

    def buffer_decl(self, L: Lines, ctype: str, name: str, size: int) -> None:
        L(f"{ctype} {name}[{size}];")
        if size <= PARTITION_MAX:
            L(f"#pragma HLS ARRAY_PARTITION variable={name} complete")

    def pipeline(self, L: Lines) -> None:
        L("#pragma HLS PIPELINE II=1")

    def function_name(self) -> str:
        return f"{self.prefix}_top"

    def print_value(self, expr: str, t: IntType) -> str:
        return f'printf("%s%s", sep, {expr}.to_string(10).c_str());'
