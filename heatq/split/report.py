"""What ``heatq split`` prints: the seed's ``Model weights bit_width`` listing of the split
network, the per-layer before -> after table, and how binary the result is."""

from __future__ import annotations

COLUMNS = (("products", "products"), ("fan_in", "fan-in"), ("weights", "weights"),
           ("weight_bits", "weight bits"), ("adders", "adders"), ("adder_bits", "adder bits"),
           ("luts", "LUTs"))


def _num(v) -> str:
    return "-" if v is None else str(v)


def _cell(key: str, before: dict, after: dict) -> str:
    b, a = before[key], after[key]
    if b is None and a is None:
        return "-"
    text = f"{_num(b)} -> {_num(a)}"
    if key == "fan_in" and b:
        text += f" (x{a / b:.2f})"
    return text


def format_table(layers: dict[str, dict], total: dict[str, dict]) -> list[str]:
    """One row per original product, ``before -> after`` in every column, then the totals."""
    rows = [[name, *(_cell(k, v["before"], v["after"]) for k, _ in COLUMNS)]
            for name, v in layers.items()]
    rows.append(["total", *(_cell(k, total["before"], total["after"]) for k, _ in COLUMNS)])
    head = ["layer", *(title for _, title in COLUMNS)]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r: list[str]) -> str:
        return "  ".join([r[0].ljust(widths[0])]
                         + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]).rstrip()

    return [line(head), *(line(r) for r in rows)]


def _describe(opts: dict) -> str:
    where = ", ".join(opts["layers"]) if opts["layers"] else "every product"
    if opts.get("auto"):
        how = ("exact" if opts.get("max_acc_drop") is None else
               f"split-then-heat, --max-acc-drop {opts['max_acc_drop']}")
        return (f"split: automatic ({how}), least {opts['objective']} per layer, to "
                f"{opts['to']}; layers: {where}")
    parts = []
    if opts["weights"]:
        kind = f"balanced:{opts['k']}" if opts["k"] else opts["weights"]
        parts.append(f"weights {kind} to {opts['to']}"
                     + ("" if isinstance(opts["to"], str) else " bits"))
    if opts["acts"]:
        parts.append(f"activations {opts['acts']}")
    return f"split: {' and '.join(parts)}; layers: {where}"


def _rows(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return ["  ".join([r[0].ljust(widths[0]), r[1].ljust(widths[1])]
                      + [c.rjust(w) for c, w in zip(r[2:], widths[2:])]).rstrip()
            for r in [head, *rows]]


def format_auto(auto: dict) -> list[str]:
    """The candidates of every layer with their figures (``*`` the choice), then each
    uniform split's sum over the layers against the automatic one's."""
    keys = [k for k, _ in COLUMNS]
    head = ["layer", "candidate", *(t for _, t in COLUMNS)]
    rows = []
    for name, figs in auto["costs"].items():
        for label, fig in figs.items():
            mark = " *" if auto["choice"][name] == label else ""
            rows.append([name, label + mark, *(_num(fig[k]) for k in keys)])
        rows += [[name, f"{label} (refused)", *("-" * len(keys))]
                 for label in auto["refused"][name]]
    for label, fig in auto["uniform"].items():
        rows.append(["uniform", label, *(_num(fig[k]) if fig else "-" for k in keys)])
    rows.append(["auto", "the choices *", *(_num(auto["total"][k]) for k in keys)])
    obj = auto["objective"]
    ratio = "-" if auto["ratio"] is None else f"{auto['ratio']:.3f}"
    return (["candidates per layer (* least " + obj + "; uniform: one split everywhere, "
             "summed over the layers)"] + ["  " + ln for ln in _rows(head, rows)]
            + [f"auto {obj} / best uniform ({auto['best_uniform']}): {ratio}"])


def format_then_heat(sth: dict, objective: str) -> list[str]:
    """The split-then-heat lines: what was widened and heated, and the result against the best
    uniform exact split of the source run."""
    h = sth["heated"]
    bits = ", ".join(f"{k} {v}" for k, v in {**(h["weight_bits"] or {}),
                                              **(h["act_bits"] or {})}.items())
    drop = "-" if h["acc_drop_val"] is None else f"{h['acc_drop_val']:.2f} pt"
    met = "met" if h["constraint_met"] else "NOT met"
    ex = sth["exact"]
    ratio = sth["ratio_vs_exact_uniform"]
    return [f"split-then-heat: widened (balanced, 2-bit parts) {sth['widen'] or 'nothing'}; "
            f"heated to {bits}; validation drop {drop} (<= {sth['max_acc_drop']} pt: {met}); "
            f"heated run {sth['heated_run']}",
            f"exact splits of the source run: auto {ex['auto_total'][objective]}, best uniform "
            f"({ex['best_uniform']}) {ex['uniform'][ex['best_uniform']][objective]} {objective}",
            f"split-then-heat {objective} / best uniform exact split of the source run: "
            + ("-" if ratio is None else f"{ratio:.3f}")]


def format_split(summary: dict) -> str:
    """The whole printout of ``heatq split`` from its ``summary.json``."""
    lines = ["Model weights bit_width"]
    lines += [f"  {name}.weight: {b}" for name, b in summary["weight_bits"].items()]
    lines.append("Model activations bit_width")
    lines += [f"  {name}: {b}" for name, b in summary["act_bits"].items()]
    lines.append(_describe(summary["split"]))
    lines.append("per layer, before -> after (fan-in: inputs summed per output value; adders, "
                 "adder bits and LUTs (model of LUT+CARRY4): per output vector"
                 + ("" if summary["adders_counted"]
                                                        else ", not counted: --no-adders")
                 + ")")
    lines += ["  " + ln for ln in format_table(summary["layers"], summary["totals"])]
    if "auto" in summary:
        lines += format_auto(summary["auto"])
    if "split_then_heat" in summary:
        lines += format_then_heat(summary["split_then_heat"], summary["auto"]["objective"])
    b = summary["binarization"]
    lines.append(f"products: {b['products']}; weights in {{-1,+1}}: {b['binary_weights']}, "
                 f"in {{-1,0,1}}: {b['ternary_weights']}; 1-bit inputs: {b['binary_inputs']}"
                 + ("  (binary network)" if b["binary_weights"] == b["binary_inputs"]
                    == b["products"] else ""))
    return "\n".join(lines)
