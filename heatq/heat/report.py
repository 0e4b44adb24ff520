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
    lines.append(f"constraint: validation drop <= {s['max_acc_drop']:.2f} pt: {met} "
                 f"(slack {s['slack']:+.2f} pt)")
    lines.append(f"total weight bits: {s['total_weight_bits']} ({s['n_weights']} weights, "
                 f"mean {s['mean_weight_bits']:.2f} bits/layer, "
                 f"{s['bits_per_weight']:.2f} bits/weight); bops: {s['bops']}")
    if not s["constraint_met"]:
        lines.append("no bit widths met the constraint within the allowed range; "
                     "the table above is the best found (smallest validation drop)")
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
