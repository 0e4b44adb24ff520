"""The tables and the plot of ``bench/codes.py`` from its ``codes.json`` document
(``settings``; ``rows``: one per dataset x code x seed x decoder with ``acc_float``,
``acc_quant``, ``flips`` {k: accuracy}, ``length``, ``min_distance``, ``fc_weights``,
``fc_weight_bits``, ``decoder_weight_bits``; ``hardware``; ``sim_full``; any row may be
``error`` instead).

* :func:`groups`: the successful rows per (dataset, code, decoder), in table order;
* :func:`markdown`: accuracy (mean +- sd over seeds), fc weights, bit-flip accuracy per k,
  hardware of fc + decoder, the full code's simulation;
* :func:`plot`: accuracy vs code length per decoder and dataset, and accuracy vs flipped
  bits k per code (one panel per dataset).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def groups(rows: list[dict]) -> dict[tuple[str, str, str], list[dict]]:
    """The rows without error by (dataset, code, decoder): datasets as listed, codes by
    length, hamming before learned."""
    out: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        if "error" not in r:
            out.setdefault((r["dataset"], r["code"], r["decoder"]), []).append(r)
    first = {d: i for i, d in enumerate(dict.fromkeys(r["dataset"] for r in rows))}
    return dict(sorted(out.items(), key=lambda kv: (first[kv[0][0]], kv[1][0]["length"],
                                                    kv[0][1], kv[0][2])))


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _pct(values: list[float]) -> str:
    m, s = mean_sd([100 * v for v in values])
    return f"{m:.2f} ± {s:.2f}"


def _table(head: list[str], body: list[list]) -> list[str]:
    return (["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            + ["| " + " | ".join(str(c) for c in row) + " |" for row in body])


def _settings(s: dict) -> str:
    tpc = s.get("train_per_class_wanted")
    return (f"Settings: {s.get('model')} with input code {s.get('input_code')}, 4-bit weights "
            f"and activations, {s.get('epochs')} float + {s.get('qat_epochs')} quantized "
            f"epochs, {tpc} training images per class (all of them where a class has fewer), "
            f"seeds {', '.join(map(str, s.get('seeds', [])))}; test split of each dataset.  "
            f"Command: `{s.get('command')}`")


def accuracy_table(g: dict) -> list[str]:
    body = [[d, c, rs[0]["length"], rs[0]["min_distance"], dec, _pct([r["acc_float"] for r in rs]),
             _pct([r["acc_quant"] for r in rs]), len(rs)] for (d, c, dec), rs in g.items()]
    return _table(["dataset", "code", "L", "d_min", "decoder", "float test %",
                   "quant test %", "seeds"], body)


def weights_table(g: dict) -> list[str]:
    seen, body = set(), []
    for (_, c, dec), rs in g.items():
        if (c, dec) not in seen:
            seen.add((c, dec))
            r = rs[0]
            body.append([c, dec, r["length"], r["min_distance"], r["fc_weights"],
                         r["fc_weight_bits"], r["decoder_weight_bits"]])
    return _table(["code", "decoder", "L", "d_min", "fc weights (64 x L)", "fc weight bits",
                   "decoder 1-bit weights"], body)


def flips_table(g: dict) -> list[str]:
    ks = sorted({int(k) for rs in g.values() for r in rs for k in r["flips"]})
    body = [[d, c, dec] + [_pct([r["flips"][str(k)] for r in rs if str(k) in r["flips"]])
                           for k in ks] for (d, c, dec), rs in g.items()]
    return _table(["dataset", "code", "decoder"] + [f"k={k}" for k in ks], body)


def _c(v) -> str:
    return "-" if v is None else str(v)


def hardware_table(rows: list[dict]) -> list[str]:
    body = []
    for r in rows:
        if "error" in r and "lut" not in r:
            body.append([r["code"], r["decoder"], _c(r.get("length")), r["error"]]
                        + ["-"] * 7)
            continue
        fc = (r.get("per_layer") or {}).get("fc_lin")
        rest = r["lut_carry"] - fc if fc is not None and r.get("lut_carry") is not None else None
        body.append([r["code"], r["decoder"], r["length"], r.get("error", "ok"), _c(r.get("lut")),
                     _c(r.get("carry4")), _c(r.get("lut_carry")), _c(r.get("ff")), _c(fc),
                     _c(rest), _c(r.get("estimate_seconds"))])
    return _table(["code", "decoder", "L", "status", "design LUT", "CARRY4", "LUT+CARRY4",
                   "FF", "fc module LUT+CARRY4", "rest: decoder + stream", "yosys s"], body)


def sim_table(rows: list[dict]) -> list[str]:
    body = [[r["code"], r["decoder"], r.get("error", "ok"), _c(r.get("n")),
             _c(r.get("mismatches")),
             "-" if r.get("seconds") is None else f"{r['seconds']:.1f}"] for r in rows]
    return _table(["code", "decoder", "status", "vectors", "mismatches", "sim s"], body)


def markdown(doc: dict) -> str:
    """codes.md: settings, then one table per measurement; failed trainings listed."""
    s, g = doc.get("settings", {}), groups(doc["rows"])
    lines = ["# Code-length study (bench/codes.py)", "", _settings(s), "",
             "## Test accuracy (mean ± sd over seeds)", "", *accuracy_table(g), "",
             "## fc layer and decoder weights", "", *weights_table(g), "",
             "## Bit-flip robustness: quant test % with k random code bits flipped per image",
             "", *flips_table(g), ""]
    failed = [r for r in doc["rows"] if "error" in r]
    if failed:
        lines += ["Failed trainings: " + "; ".join(
            f"{r['dataset']} {r['code']} seed {r['seed']}: {r['error']}" for r in failed), ""]
    if doc.get("hardware"):
        hw = doc["hardware"][0]
        lines += [f"## Hardware of fc + decoder ({hw['dataset']} seed {hw['seed']}; yosys "
                  f"synth_xilinx, whole design)", "", *hardware_table(doc["hardware"]), ""]
    if doc.get("sim_full"):
        lines += ["## The full code's whole network in Verilog, simulated (Icarus) against the "
                  "interpreter", "", *sim_table(doc["sim_full"]), ""]
    return "\n".join(lines)


def plot(doc: dict, path: Path) -> None:
    """Accuracy vs code length (log x) per decoder and dataset; per dataset, accuracy vs
    flipped bits k per code and decoder (solid Hamming, dashed learned)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = groups(doc["rows"])
    datasets = list(dict.fromkeys(d for d, _, _ in g))
    fig, axes = plt.subplots(1, 1 + len(datasets), figsize=(5 * (1 + len(datasets)), 4),
                             squeeze=False)
    ax = axes[0][0]
    for d in datasets:
        for dec, style in (("hamming", "-o"), ("learned", "--s")):
            pts = sorted((rs[0]["length"], mean_sd([100 * r["acc_quant"] for r in rs]))
                         for (dd, _, de), rs in g.items() if dd == d and de == dec)
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1][0] for p in pts],
                            yerr=[p[1][1] for p in pts], fmt=style, capsize=3,
                            label=f"{d} {dec}")
    lengths = sorted({rs[0]["length"] for rs in g.values()})
    ax.set(xscale="log", xlabel="code length L (bits)", ylabel="quant test accuracy %",
           title="accuracy vs code length")
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.minorticks_off()
    ax.legend(fontsize=7)
    colors = {c: f"C{i}" for i, c in enumerate(dict.fromkeys(c for _, c, _ in g))}
    for ax, d in zip(axes[0][1:], datasets):
        for (dd, c, dec), rs in g.items():
            if dd != d:
                continue
            ks = sorted(int(k) for k in rs[0]["flips"])
            acc = [mean_sd([100 * r["flips"][str(k)] for r in rs])[0] for k in ks]
            ax.plot(ks, acc, "-o" if dec == "hamming" else "--s", color=colors[c],
                    label=f"{c} {dec}")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set(xlabel="code bits flipped per image (k)", ylabel="quant test accuracy %",
               title=f"{d}: bit-flip robustness")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
