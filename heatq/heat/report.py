"""The seed-style bits table and the heating plot."""

from __future__ import annotations

from pathlib import Path


def _pct(v) -> str:
    return "    -  " if v is None else f"{100 * v:6.2f} %"


def format_table(s: dict) -> str:
    """The ``Model weights bit_width`` listing, activation bits, accuracies, slack, totals."""
    lines = ["Model weights bit_width"]
    lines += [f"{name}.weight: {b}" for name, b in s["weight_bits"].items()]
    lines.append("Model activations bit_width")
    lines += [f"{name}: {b}" for name, b in s["act_bits"].items()]
    lines.append("")
    lines.append(f"{'accuracy':<22}{'float':>10}{'heated':>10}{'drop':>10}")
    lines.append(f"{'  validation':<22}{_pct(s['acc_float_val']):>10}{_pct(s['acc_heated_val']):>10}"
                 f"{s['acc_drop_val']:>7.2f} pt")
    lines.append(f"{'  test':<22}{_pct(s['acc_float']):>10}{_pct(s['acc_heated']):>10}"
                 f"{s['acc_drop_test']:>7.2f} pt")
    met = "met" if s["constraint_met"] else "NOT met"
    margin = s.get("margin") or {"z": 0.0, "points": 0.0}
    lines.append(f"constraint: validation drop + margin <= {s['max_acc_drop']:.2f} pt: {met} "
                 f"(margin {margin['points']:.2f} pt = {margin['z']:g} paired s.e.; "
                 f"slack {s['slack']:+.2f} pt)")
    lines.append(f"total weight bits: {s['total_weight_bits']} ({s['n_weights']} weights, "
                 f"mean {s['mean_weight_bits']:.2f} bits/layer, "
                 f"{s['bits_per_weight']:.2f} bits/weight); bops: {s['bops']}; "
                 f"split LUTs: {s.get('split_luts', '-')}")
    return "\n".join(lines)


def plot_heating(history: list[dict], trials: list[dict], path: Path, title: str = "",
                 floor: float | None = None) -> None:
    """Validation accuracy (hard-rounded) and total weight bits per heating epoch, then the
    accepted finalisation steps; ``floor``: the lowest validation accuracy (fraction) the
    constraint allows, drawn as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    x = [h["epoch"] for h in history]
    acc = [100 * h["acc_val"] for h in history]
    bits = [h["total_weight_bits"] for h in history]
    n = len(x)
    fx = [n + i + 1 for i, _ in enumerate(trials)]
    fa = [100 * t["acc_val"] for t in trials]
    fb = [t["total_weight_bits"] for t in trials]
    ax.plot(x, acc, "o-", color="tab:blue", label="validation accuracy (heating)")
    if trials:
        ax.plot(fx, fa, "s--", color="tab:blue", alpha=0.6, label="validation accuracy (finalising)")
    ax.set_xlabel("heating epoch, then finalisation step")
    ax.set_ylabel("validation accuracy, hard-rounded (%)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(x, bits, "o-", color="tab:red", label="total weight bits")
    if trials:
        ax2.plot(fx, fb, "s--", color="tab:red", alpha=0.6)
    ax2.set_ylabel("total weight bits", color="tab:red")
    if n:
        ax.axvline(n + 0.5, color="gray", lw=0.8)
    if floor is not None:
        ax.axhline(100 * floor, color="tab:blue", lw=0.8, ls=":", label="constraint")
    ax.set_title(title or "heating")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pareto(doc: dict, path: Path) -> None:
    """A sweep's points: test and validation accuracy against the objective's cost (left)
    and against total weight bits (right), the Pareto front joined, each point labelled with
    its bound; the float network's test accuracy as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in doc["points"] if r["constraint_met"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, (doc["cost_key"], "total_weight_bits")):
        rows_k = sorted(rows, key=lambda r: r[key])
        xs = [r[key] for r in rows_k]
        ax.plot(xs, [100 * r["acc_heated"] for r in rows_k], "o-", label="test")
        ax.plot(xs, [100 * r["acc_heated_val"] for r in rows_k], "s--", alpha=0.6,
                label="validation")
        for r in rows_k:
            ax.annotate(f"{r['max_acc_drop']:g} pt", (r[key], 100 * r["acc_heated"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.axhline(100 * doc["acc_float"], ls=":", color="gray", label="float (test)")
        ax.set_xlabel(key.replace("_", " "))
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=8)
    fig.suptitle(f"heatq heat --sweep: {doc['source']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
