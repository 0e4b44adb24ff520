"""The tables and the plot of ``bench/accuracy_bits.py``, from its rows (one dict per trained
network: ``method``, ``dataset``, ``seed``, ``acc_test``, ``weight_bits``, ``act_bits``,
``total_weight_bits``, ``bops``, ``split_luts``, ``qat_epochs``; or ``error``).

* :func:`summarise`: mean test accuracy and costs per dataset and method;
* :func:`equal_cost` / :func:`format_equal_cost`: each heatq row (mean over its seeds) against
  every uniform-bit baseline's accuracy at the same total weight bits and at the same BOPs,
  linearly interpolated between the baseline's measured bit widths;
* :func:`plot`: test accuracy vs total weight bits, and vs BOPs (log x), per dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BASELINES = ("ste", "stemse", "brevitas", "heat")  # uniform-bit methods: rows "<family>-<B>"
ORDER = {**{f: i for i, f in enumerate(BASELINES)}, "heatq": len(BASELINES)}
COSTS = (("total_weight_bits", "total weight bits"), ("bops", "BOPs"))
OUTSIDE = "outside the measured range"


def family(method: str) -> str:
    """``ste-3`` -> ``ste``; ``heatq-split_luts-0.5`` -> ``heatq``."""
    return method.split("-")[0]


def groups(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """The successful quantized rows by (dataset, method), in table order."""
    out: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if "error" not in r and r["method"] != "float":
            out.setdefault((r["dataset"], r["method"]), []).append(r)
    key = lambda kv: (kv[0][0], ORDER.get(family(kv[0][1]), 9), kv[0][1])  # noqa: E731
    return dict(sorted(out.items(), key=key))


def _mean(rs: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rs]))


def _mean_layer(rs: list[dict], key: str) -> str:
    vals = [np.mean(list(r[key].values())) for r in rs if r.get(key)]
    return f"{np.mean(vals):.2f}" if vals else "-"


def summarise(rows: list[dict]) -> str:
    """Markdown table: mean test accuracy (and spread), costs and epochs per dataset and
    method; the float rows first, the failed rows listed below."""
    lines = ["| dataset | method | seeds | total weight bits | mean w bits/layer | "
             "mean a bits/layer | BOPs | split_luts | test acc % (mean) | min..max | QAT epochs |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    floats: dict[str, list[float]] = {}
    for r in rows:
        if r.get("method") == "float" and "error" not in r:
            floats.setdefault(r["dataset"], []).append(r["acc_test"])
    for ds, accs in sorted(floats.items()):
        lines.append(f"| {ds} | float | {len(accs)} | 32-bit | - | - | - | - | "
                     f"{100 * np.mean(accs):.2f} | {100 * min(accs):.2f}..{100 * max(accs):.2f} "
                     "| - |")
    for (ds, m), rs in groups(rows).items():
        accs = [r["acc_test"] for r in rs]
        lines.append(f"| {ds} | {m} | {len(rs)} | {_mean(rs, 'total_weight_bits'):.0f} | "
                     f"{_mean_layer(rs, 'weight_bits')} | {_mean_layer(rs, 'act_bits')} | "
                     f"{_mean(rs, 'bops'):.4g} | {_mean(rs, 'split_luts'):.0f} | "
                     f"{100 * np.mean(accs):.2f} | {100 * min(accs):.2f}..{100 * max(accs):.2f} "
                     f"| {_mean(rs, 'qat_epochs'):.0f} |")
    for r in rows:
        if "error" in r:
            lines.append(f"\nfailed: {r['dataset']} seed {r['seed']} {r['method']}: {r['error']}")
    return "\n".join(lines)


def interpolate(points: list[tuple[float, float]], x: float) -> float | None:
    """The accuracy at cost ``x``, linearly interpolated between measured (cost, accuracy)
    points; None outside [smallest cost, largest cost]."""
    xs, ys = zip(*sorted(points))
    if not xs[0] <= x <= xs[-1]:
        return None
    return float(np.interp(x, xs, ys))


def equal_cost(rows: list[dict]) -> list[dict]:
    """For each heatq method per dataset (mean over its seeds) and each baseline family:
    the baseline's test accuracy at heatq's total weight bits and at its BOPs (from the
    family's per-bit-width means), and whether heatq's accuracy is at least that."""
    g = groups(rows)
    out = []
    for (ds, m), rs in g.items():
        if family(m) != "heatq":
            continue
        acc = _mean(rs, "acc_test")
        for fam in BASELINES:
            base = [v for (d, bm), v in g.items() if d == ds and family(bm) == fam]
            if not base:
                continue
            row = {"dataset": ds, "method": m, "seeds": len(rs), "acc_test": acc,
                   "baseline": fam, "baseline_bits": sorted(int(v[0]["method"].split("-")[1])
                                                            for v in base)}
            for key, _ in COSTS:
                cost = _mean(rs, key)
                at = interpolate([(_mean(v, key), _mean(v, "acc_test")) for v in base], cost)
                row[key] = cost
                row[f"baseline_acc_at_{key}"] = at
                row[f"heatq_ge_at_{key}"] = None if at is None else bool(acc >= at)
            out.append(row)
    return out


def _cell(at: float | None, ge: bool | None) -> str:
    if at is None:
        return f"{OUTSIDE} | -"
    return f"{100 * at:.2f} | {'yes' if ge else 'NO'}"


def format_equal_cost(comparison: list[dict]) -> str:
    """Markdown table of :func:`equal_cost`."""
    if not comparison:
        return "(no heatq row and baseline to compare)"
    head = " | ".join(f"baseline acc % at equal {label} | heatq >= baseline"
                      for _, label in COSTS)
    lines = ["| dataset | heatq row | seeds | test acc % | total weight bits | BOPs | "
             f"baseline (bits measured) | {head} |", "|---" * (7 + 2 * len(COSTS)) + "|"]
    for c in comparison:
        cells = " | ".join(_cell(c[f"baseline_acc_at_{k}"], c[f"heatq_ge_at_{k}"])
                           for k, _ in COSTS)
        lines.append(f"| {c['dataset']} | {c['method']} | {c['seeds']} | "
                     f"{100 * c['acc_test']:.2f} | {c['total_weight_bits']:.0f} | "
                     f"{c['bops']:.4g} | {c['baseline']} "
                     f"({','.join(map(str, c['baseline_bits']))}) | {cells} |")
    return "\n".join(lines)


STYLE = {"ste": ("o", "tab:blue"), "stemse": ("D", "tab:purple"), "brevitas": ("s", "tab:green"),
         "heat": ("^", "tab:orange")}
HEATQ_MARKERS = {"bits": "*", "bops": "P", "split_luts": "X"}


def _panel(ax, rows: list[dict], ds: str, key: str, label: str) -> None:
    """One dataset's test accuracy against cost ``key``: every row a point."""
    for (d, m), rs in groups(rows).items():
        if d != ds:
            continue
        fam = family(m)
        if fam == "heatq":
            marker, color, size, name = HEATQ_MARKERS.get(m.split("-")[1], "*"), "tab:red", 90, m
        else:
            (marker, color), size, name = STYLE.get(fam, ("x", "black")), 30, fam
        ax.scatter([r[key] for r in rs], [100 * r["acc_test"] for r in rs], marker=marker,
                   color=color, s=size, label=name)
    for r in rows:
        if r["dataset"] == ds and r["method"] == "float" and "error" not in r:
            ax.axhline(100 * r["acc_test"], color="gray", lw=0.6, ls="--")
    handles, names = ax.get_legend_handles_labels()
    seen = dict(zip(names, handles))  # one legend entry per family
    ax.legend(seen.values(), seen.keys(), fontsize=7)
    ax.set_title(ds)
    ax.set_xlabel(label)
    ax.set_ylabel("test accuracy (%)")


def plot(rows: list[dict], path: Path) -> None:
    """Test accuracy vs total weight bits (top) and vs BOPs (bottom, log x), per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in rows})
    fig, axes = plt.subplots(len(COSTS), len(datasets), figsize=(6 * len(datasets), 8.4),
                             squeeze=False)
    for i, (key, label) in enumerate(COSTS):
        for ax, ds in zip(axes[i], datasets):
            _panel(ax, rows, ds, key, label + (" (log)" if key == "bops" else ""))
            if key == "bops":
                ax.set_xscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
