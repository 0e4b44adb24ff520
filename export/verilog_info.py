"""What the Verilog target says about a layer: its module's header comment and its entry in
``summary.json["report"]`` (the adder graph's figures, latency, II, and the fold: ``design``,
``lanes``, ``cycles_per_position``, ``busy_cycles_per_image``; ``utilisation`` = busy cycles
per image / the design's II is added when the II is known, :func:`heatq_export.verilog`).

With ``--fold none`` the header is exactly the unfolded target's (byte-identical files);
``--fold auto`` adds one ``fold:`` line, and a folded design's ``adders:`` line says that the
figures are those of the parallel design it replaces.
"""

from __future__ import annotations

import re

from heatq.ir import IntType

from .fold import FoldChoice, lanes


def layer_kind(n, rq) -> str:
    """The report's ``op`` of a layer: the product it lowers, or ``requant`` for a pointwise
    CMVM in front of a REQUANT."""
    layout = n.attrs.layout
    return "requant" if layout == "pointwise" and rq is not None else layout


def type_name(t: IntType) -> str:
    return f"{t.width}-bit {'signed' if t.signed else 'unsigned'}"


def layer_tokens(n, src, domain: str) -> int:
    """Tokens a CMVM layer takes per image (stream) / vector: window positions (conv2d),
    pixels (a pointwise layer in the stream), else 1."""
    if n.attrs.layout == "conv2d":
        return n.shape[1] * n.shape[2]
    if domain == "stream":
        return src.shape[1] * src.shape[2]
    return 1


def layer_header(mod: str, n, rq, src, in_type: IntType, out, lat: int,
                 fc: FoldChoice | None, busy: tuple[int, int] | None) -> list[str]:
    """The header comment of CMVM ``n``'s module ``mod`` (``src``: its argument node, ``out``
    the node whose type it outputs, ``lat`` its latency); ``fc`` / ``busy = (tokens per
    image, the stream's II)``: the fold line (``--fold auto``), else None."""
    a, g = n.attrs, n.attrs.graph
    st = g.stats()
    shown = re.sub(r"\.(rounded|pre)$", "", n.name) or (rq.name if rq is not None else "")
    what = f"{layer_kind(n, rq)} '{shown}' (CMVM node {n.id}, layout {a.layout}"
    what += f", {a.kernel}x{a.kernel} window, padding {a.padding})" if a.layout == "conv2d" \
        else ")"
    if rq is not None:
        what += f" + requant '{rq.name}' (shift {rq.attrs.shift}, {rq.attrs.lo}..{rq.attrs.hi}"
        what += f", {rq.attrs.overflow.value})"
    acc = max(g.outputs, key=lambda o: o.type.width).type
    mode = f"max carry {g.max_carry}" if g.pipelined else "combinational"
    cyc = 1 if fc is None else fc.cycles
    lines = [
        f"{mod}: {what}",
        f"shape: {list(src.shape)} -> {list(out.shape)}; per token {g.n_in} inputs -> "
        f"{len(g.outputs)} outputs",
        f"bits: inputs {type_name(in_type)}, accumulators up to {type_name(acc)}, "
        f"outputs {type_name(out.type)}",
        f"adders: {st['adders']} ({st['adder_bits']} bits, longest carry chain "
        f"{st['longest_carry']}), {mode}",
        f"depth: {st['adder_depth']} adder levels, {st['pipeline_depth']} pipeline stages",
        f"latency: {lat} cycle{'s' if lat != 1 else ''}, II {cyc}",
    ]
    if fc is not None and busy is not None:
        tokens, ii = busy
        if fc.design != "parallel":
            lines[3] = f"adders of the parallel design (not built): {lines[3][len('adders: '):]}"
        lines.append(f"fold: design {fc.design}, lanes {lanes(fc, g)}, {cyc} cycle"
                     f"{'s' if cyc != 1 else ''} per position (budget {fc.budget}), "
                     f"utilisation {tokens * cyc / ii:.3f} of II {ii}; estimated {fc.cost} "
                     "LUT+CARRY4")
    return lines


def layer_entry(mod: str, kind: str, g, lat: int, fc: FoldChoice | None,
                tokens: int) -> dict:
    """The report entry of a layer (module ``mod``, adder graph ``g``, latency ``lat``)."""
    st = g.stats()
    cyc = 1 if fc is None else fc.cycles
    out = {
        "op": kind, "module": mod, "adders": st["adders"], "adder_bits": st["adder_bits"],
        "carry_bits": st["carry_bits"], "longest_carry": st["longest_carry"],
        "carry_per_stage": st["carry_per_stage"], "adder_depth": st["adder_depth"],
        "pipeline_depth": st["pipeline_depth"], "latency": lat, "ii": cyc,
        "design": "parallel" if fc is None else fc.design, "lanes": lanes(fc, g),
        "cycles_per_position": cyc, "busy_cycles_per_image": tokens * cyc,
    }
    if fc is not None:
        out["estimated_cost"] = fc.cost
        if fc.design == "bitserial":  # what is built: the tree for 1-bit inputs
            s1 = fc.g1.stats()
            out.update(tree_adders=s1["adders"], tree_adder_bits=s1["adder_bits"])
    if "cse_windows" in g.meta:  # over the CSE cap (heatq.lower.cse): windowed sharing
        out["cse_windows"] = g.meta["cse_windows"]
    return out


__all__ = ["layer_kind", "layer_tokens", "layer_header", "layer_entry", "type_name"]
