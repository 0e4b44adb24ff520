#!/usr/bin/env python3
"""The code-length study: output codes x decoders x datasets x seeds, with bit-flip robustness
and the hardware of the fc layer + decoder.

One training per (dataset, code, seed), in a worker process with one torch thread and
deterministic algorithms: ``heatq.pipeline.train_run`` (seed CNN, ``bitplane:4`` input code,
4-bit weights and activations, ``--epochs`` float + ``--qat-epochs`` quantized epochs,
``decoder="learned"``) into ``OUT/runs/<dataset>-<code>-seed<S>``.  The learned decoder is
fitted after training on the same network, so each training gives a row per decoder:

* ``acc_quant``: test accuracy of the quantized network's code bits (the IR's ``code_bits``
  output, :func:`heatq.ir.interp.run` on the encoded test images) decoded by Hamming distance
  (:func:`heatq.codes.hamming_decode_numpy`) or by the learned decoder (``Decoder.predict``);
* ``acc_float``: the same for the float network after float training (``model_float.pt``);
* ``flips``: ``{k: accuracy}`` with ``k`` = 0..``--flips`` code bits flipped per test image
  (distinct positions, seeded by (seed, k); the same flipped bits for both decoders);
* the code's length ``L`` and minimum distance, the fc layer's weights (64 x L) and weight bits.

``--train-per-class`` (default 1000) takes that many training images per class where the
dataset has them; mnist5k has 400 per class and then trains on all of them (the row records
``train_per_class`` as used and ``n_train``).

Hardware (``--hw-dataset`` seed ``--hw-seed`` only, codes ``--hw-codes``): a small IR graph
INPUT (the fc's input vector: shape, range and binary point of the run's flatten node, unsigned
activation bits) -> the run's fc DENSE -> SIGN_BITS -> HAMMING_DECODE (the codebook) or the
learned decoder's nodes (``Decoder.add_to_graph``); checked equal to the run's IR class output
on ``--hw-check-n`` test images; exported to Verilog (fold none, ``--arith``) and estimated
with yosys (:func:`heatq_export.estimate.estimate_export`, the xilinx flow: whole design and
per module; ``--hw-timeout`` seconds per yosys run, a timeout recorded as ``error: timeout``).

``--sim-full`` (default on): the whole run of the ``full`` code (``--hw-dataset``, seed
``--hw-seed``) exported to Verilog and simulated against the interpreter
(``heatq_sim.simulate``, Icarus) on ``--sim-n`` test images + corner vectors, once with the
run's learned decoder and once with Hamming decoding (the same network converted with its
codebook); the mismatch count must be 0.

Writes ``OUT/codes.json`` (``settings``, ``rows``, ``hardware``, ``sim_full``) after every
finished task, then ``OUT/codes.md`` and ``OUT/codes.png`` (:mod:`codes_report`).  Rows already
in the JSON (same key and the same epochs, without error) are kept unless ``--redo``.

    python bench/codes.py --quick --out /tmp/codes              # smoke run (about a minute)
    nice python bench/codes.py --jobs 2 --out bench/results/codes  # the study (~30 trainings)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench scripts, also in workers
from heat_seeds import _replace_into, _seeds  # noqa: E402
from hw_network import _error, _estimate_figures, _export, _simulate  # noqa: E402

CODES = ("onehot", "hadamard:15", "random:31", "random:63", "full")
DECODERS = ("hamming", "learned")
FULL = {"datasets": "mnist5k,fashion", "codes": ",".join(CODES), "seeds": "0,1,2",
        "train_per_class": 1000, "epochs": 15, "qat_epochs": 8, "hw_codes": ",".join(CODES),
        "sim_full": True}
QUICK = {"datasets": "mnist5k", "codes": "onehot,hadamard:15", "seeds": "0",
         "train_per_class": 20, "epochs": 1, "qat_epochs": 1, "hw_codes": "onehot",
         "sim_full": False}
SAME = ("epochs", "qat_epochs", "train_per_class_wanted", "model", "input_code")


# ----------------------------------------------------------------------------- bit flips
def flip_bits(bits, k: int, rng):
    """A copy of ``bits`` (0/1, [N, L]) with exactly ``k`` distinct positions flipped in
    every row, chosen uniformly by ``rng`` (a numpy Generator); ValueError unless 0 <= k <= L."""
    import numpy as np

    bits = np.asarray(bits)
    if bits.ndim != 2 or not 0 <= k <= bits.shape[1]:
        raise ValueError(f"flip_bits: need bits [N, L] and 0 <= k <= L, got {bits.shape}, k={k}")
    out = bits.copy()
    if k:
        pos = np.argsort(rng.random(bits.shape), axis=1)[:, :k]  # k distinct columns per row
        rows = np.arange(len(bits))[:, None]
        out[rows, pos] = 1 - out[rows, pos]
    return out


def flip_accuracies(bits, y, matrix, decoder, max_k: int, seed: int) -> dict[str, dict]:
    """``{"hamming": {k: acc}, "learned": {k: acc}}`` for k = 0..max_k (keys as strings, as
    JSON keeps them); both decoders see the same flipped bits for a given (seed, k)."""
    import numpy as np

    from heatq.codes import hamming_decode_numpy

    out: dict[str, dict] = {d: {} for d in DECODERS}
    for k in range(min(max_k, bits.shape[1]) + 1):
        flipped = flip_bits(bits, k, np.random.default_rng([seed, k]))
        out["hamming"][str(k)] = float((hamming_decode_numpy(flipped, matrix) == y).mean())
        out["learned"][str(k)] = float((decoder.predict(flipped) == y).mean())
    return out


# ----------------------------------------------------------------------------- workers
def _slug(code: str) -> str:
    return code.replace(":", "")


def run_dir(out: str | Path, dataset: str, code: str, seed: int) -> Path:
    return Path(out) / "runs" / f"{dataset}-{_slug(code)}-seed{seed}"


def _worker_start() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from heatq.provenance import make_deterministic

    make_deterministic(1)


def _per_class(dataset: str, wanted: int | None, seed: int):
    """(train_per_class to use: ``wanted`` where every class has that many training images,
    else None = all of them; the dataset)."""
    import numpy as np

    from heatq.data import load_dataset

    ds = load_dataset(dataset, seed=seed)
    have = int(np.bincount(ds.y_train).min())
    return (wanted if wanted is not None and wanted <= have else None), ds


def _ir_code_bits(graph, x_codes, batch: int = 500):
    """The IR's ``code_bits`` output (uint8 [N, L]) on encoded images ``x_codes``."""
    import numpy as np

    from heatq.ir.interp import run

    i = graph.outputs.index(graph.by_name("code_bits").id)
    return np.concatenate([run(graph, x_codes[j:j + batch])[i]
                           for j in range(0, len(x_codes), batch)]).astype(np.uint8)


def train_one(p: dict) -> list[dict]:
    """Worker: train one (dataset, code, seed) and measure it; one row per decoder."""
    _worker_start()
    from heatq.codes import hamming_decode_numpy
    from heatq.pipeline import train_run
    from heatq.rundir import codes_of, load_float_model, load_graph, read_json
    from heatq.train import code_bits, encode

    tpc, ds = _per_class(p["dataset"], p["train_per_class"], p["seed"])
    out = run_dir(p["out"], p["dataset"], p["code"], p["seed"])
    t0 = time.time()
    summary = train_run(out, p["dataset"], p["model"], input_code=p["input_code"],
                        output_code=p["code"], epochs=p["epochs"], qat_epochs=p["qat_epochs"],
                        seed=p["seed"], train_per_class=tpc, progress=False, force=True,
                        decoder="learned")
    seconds = time.time() - t0
    config, graph = read_json(out / "config.json"), load_graph(out)
    ic, oc = codes_of(config)
    m, dec = oc.matrix, oc.decoder
    x_codes = ic.encode_numpy(ds.x_test)
    bits_q = _ir_code_bits(graph, x_codes)
    bits_f = code_bits(load_float_model(out, config), encode(ic, ds.x_test))
    fc = graph.nodes[graph.by_name("code_bits").args[0]].attrs
    flips = flip_accuracies(bits_q, ds.y_test, m, dec, p["flips"], p["seed"])
    preds = {"hamming": lambda b: hamming_decode_numpy(b, m), "learned": dec.predict}
    base = {"dataset": p["dataset"], "code": p["code"], "length": oc.length,
            "min_distance": oc.min_distance(), "seed": p["seed"], "model": p["model"],
            "input_code": p["input_code"], "epochs": p["epochs"], "qat_epochs": p["qat_epochs"],
            "train_per_class_wanted": p["train_per_class"], "train_per_class": tpc,
            "n_train": summary["n_train"], "n_test": summary["n_test"],
            "fc_weights": int(fc.weight.size), "fc_w_bits": int(fc.w_bits),
            "fc_weight_bits": int(fc.weight.size * fc.w_bits),
            "run": os.path.relpath(out, p["out"]), "seconds_train": round(seconds, 1)}
    rows = []
    for d in DECODERS:
        rows.append({**base, "decoder": d,
                     "acc_float": float((preds[d](bits_f) == ds.y_test).mean()),
                     "acc_quant": float((preds[d](bits_q) == ds.y_test).mean()),
                     "decoder_weight_bits": (sum(int(w.size) for w, _ in dec.layers)
                                             if d == "learned" else 0),
                     "flips": flips[d]})
    return rows


def fc_decoder_graph(graph, matrix, decoder=None):
    """INPUT (the run's fc input: its shape, range and binary point) -> the run's fc DENSE ->
    SIGN_BITS ``code_bits`` -> HAMMING_DECODE over ``matrix`` (decoder None) or ``decoder``'s
    nodes; outputs [scores, code_bits, class] as the run's IR."""
    from heatq.ir import GraphBuilder, HammingDecodeAttrs, InputAttrs, Op, SignBitsAttrs

    bits_node = graph.by_name("code_bits")
    fc = graph.nodes[bits_node.args[0]]
    src = graph.nodes[fc.args[0]]
    b = GraphBuilder()
    x = b.add(Op.INPUT, InputAttrs(src.shape, src.lo, src.hi, src.type.frac), [], "input")
    d = b.add(Op.DENSE, fc.attrs, [x], fc.name)
    bits = b.add(Op.SIGN_BITS, SignBitsAttrs(), [d], "code_bits")
    cls = (b.add(Op.HAMMING_DECODE, HammingDecodeAttrs(matrix), [bits], "class")
           if decoder is None else decoder.add_to_graph(b, bits))
    meta = {k: graph.meta[k] for k in ("dataset", "output_code", "seed") if k in graph.meta}
    return b.build([d, bits, cls], {**meta, "decoder": "hamming" if decoder is None
                                    else decoder.spec.spec})


def _matches_run(graph, small, matrix, decoder, x_codes) -> bool:
    """Whether ``small``, fed the run's fc input values on ``x_codes``, gives the run's code
    bits and their class (the run's learned decoder, or Hamming decoding when None)."""
    import numpy as np

    from heatq.codes import hamming_decode_numpy
    from heatq.ir.interp import run

    bits_id = graph.by_name("code_bits").id
    src = graph.nodes[graph.nodes[graph.nodes[bits_id].args[0]].args[0]].id
    vals = run(graph, x_codes, trace=True)
    _, bits, cls = run(small, vals[src])
    want = (hamming_decode_numpy(vals[bits_id], matrix) if decoder is None
            else vals[graph.outputs[-1]])
    return bool(np.array_equal(bits, vals[bits_id]) and np.array_equal(cls, want))


def hardware_one(p: dict) -> dict:
    """Worker: the fc + decoder of one run in hardware (export, yosys); errors recorded."""
    _worker_start()
    from heatq.data import load_dataset
    from heatq.rundir import codes_of, load_graph, read_json
    from heatq_export.estimate import estimate_export

    row = {k: p[k] for k in ("dataset", "code", "seed", "decoder", "hw_timeout")}
    try:
        src = run_dir(p["out"], p["dataset"], p["code"], p["seed"])
        graph, config = load_graph(src), read_json(src / "config.json")
        ic, oc = codes_of(config)
        dec = oc.decoder if p["decoder"] == "learned" else None
        small = fc_decoder_graph(graph, oc.matrix, dec)
        row.update(length=oc.length, min_distance=oc.min_distance())
        x = ic.encode_numpy(load_dataset(p["dataset"], seed=p["seed"]).x_test[:p["hw_check_n"]])
        row["graph_matches_run"] = _matches_run(graph, small, oc.matrix, dec, x)
        out = Path(p["out"]) / "hw" / f"{_slug(p['code'])}-{p['decoder']}"
        t0 = time.perf_counter()
        _export(small, out, "none", p["arith"])
        row["export_seconds"] = round(time.perf_counter() - t0, 1)
    except Exception as e:  # noqa: BLE001 - an op a target lacks yet, a refusal: recorded
        row["error"] = _error(e)
        return row
    t0 = time.perf_counter()
    try:
        s = estimate_export(out, flows=("xilinx",), timeout=p["hw_timeout"], progress=False,
                            jobs=1)
        row.update(_estimate_figures(s["report"]["estimate"]))
    except Exception as e:  # noqa: BLE001
        row["error"] = "error: timeout" if "timed out" in str(e) else _error(e)
    row["estimate_seconds"] = round(time.perf_counter() - t0, 1)
    return row


def sim_one(p: dict) -> dict:
    """Worker: the whole run exported to Verilog and simulated against the interpreter, with
    the run's learned decoder or (``decoder`` hamming) the same network Hamming-decoded."""
    _worker_start()
    from heatq.qnet_ir import convert
    from heatq.rundir import codes_of, load_graph, load_model

    row = {k: p[k] for k in ("dataset", "code", "seed", "decoder")}
    try:
        src = run_dir(p["out"], p["dataset"], p["code"], p["seed"])
        graph = load_graph(src)
        if p["decoder"] == "hamming":
            model, config = load_model(src)
            meta = {k: v for k, v in graph.meta.items()
                    if k in ("dataset", "input_code", "output_code", "seed", "train_per_class")}
            graph = convert(model, codes_of(config)[1].matrix, meta)
        out = Path(p["out"]) / "sim" / f"{_slug(p['code'])}-{p['decoder']}"
        t0 = time.perf_counter()
        _export(graph, out, "none", p["arith"])
        row["export_seconds"] = round(time.perf_counter() - t0, 1)
        row.update(_simulate(graph, out, "icarus", p["sim_n"]))
    except Exception as e:  # noqa: BLE001
        row["error"] = _error(e)
    return row


# ----------------------------------------------------------------------------- the matrix
def _k(r: dict, *names: str) -> tuple:
    return tuple(r.get(n) for n in ("dataset", "code", "seed", *names))


def load_doc(path: Path) -> dict:
    """The existing codes.json (empty lists when there is none)."""
    doc = json.loads(path.read_text()) if path.is_file() else {}
    return {"settings": doc.get("settings", {}), **{k: list(doc.get(k, []))
                                                    for k in ("rows", "hardware", "sim_full")}}


def _kept_runs(doc: dict, settings: dict) -> set[tuple]:
    """The (dataset, code, seed) whose rows for every decoder are in ``doc``, without error,
    trained with the current settings (:data:`SAME`)."""
    ok: dict[tuple, set] = {}
    for r in doc["rows"]:
        if "error" not in r and all(r.get(f) == settings[f] for f in SAME):
            ok.setdefault(_k(r), set()).add(r["decoder"])
    return {k for k, ds in ok.items() if ds >= set(DECODERS)}


def plan(args, doc: dict) -> tuple[list[dict], list[tuple]]:
    """(the trainings to run, the hardware / simulation tasks as (kind, params)); ``doc``'s
    rows for what runs again are dropped from it."""
    s = doc["settings"]
    kept = set() if args.redo else _kept_runs(doc, s)
    base = {k: s[k] for k in ("model", "input_code", "epochs", "qat_epochs", "flips", "out")}
    base["train_per_class"] = s["train_per_class_wanted"]
    train = [{**base, "dataset": d, "code": c, "seed": seed} for d in args.datasets
             for c in args.codes for seed in args.seeds if (d, c, seed) not in kept]
    fresh = {_k(p) for p in train}
    doc["rows"] = [r for r in doc["rows"] if _k(r) not in fresh and _k(r) in kept]
    hw = {k: s[k] for k in ("out", "arith", "hw_timeout", "hw_check_n", "sim_n")}
    later = []
    if args.hw_dataset in args.datasets and args.hw_seed in args.seeds:
        at = {"dataset": args.hw_dataset, "seed": args.hw_seed}
        later += [("hardware", {**hw, **at, "code": c, "decoder": d})
                  for c in args.hw_codes if c in args.codes for d in DECODERS]
        if args.sim_full and "full" in args.codes:
            later += [("sim_full", {**hw, **at, "code": "full", "decoder": d}) for d in DECODERS]
    for kind in ("hardware", "sim_full"):
        keep = {_k(r, "decoder") for r in doc[kind] if _finished(r, s["hw_timeout"])
                and not args.redo and _k(r) not in fresh}
        later = [(kd, p) for kd, p in later if kd != kind or _k(p, "decoder") not in keep]
        doc[kind] = [r for r in doc[kind] if _k(r, "decoder") in keep]
    return train, later


def _finished(row: dict, timeout: float) -> bool:
    """A row to keep: no error, or a yosys timeout at least as long as ``timeout`` (it would
    time out again); other errors (a target that could not build it then) are retried."""
    return "error" not in row or (row["error"] == "error: timeout"
                                  and row.get("hw_timeout", 0) >= timeout)


WORKERS = {"hardware": hardware_one, "sim_full": sim_one}


def _failed(p: dict, e: Exception, decoder: bool) -> dict:
    first = (str(e).splitlines() or [""])[0]
    return {**{k: p[k] for k in ("dataset", "code", "seed")},
            **({"decoder": p["decoder"]} if decoder else {}),
            "error": f"{type(e).__name__}: {first}"[:300]}


def _line(kind: str, r: dict) -> str:
    what = f"{kind} {r['dataset']} {r['code']} seed {r['seed']}" + (
        f" {r['decoder']}" if kind != "train" else "")
    if "error" in r:
        return f"{what}: {r['error']}"
    if kind == "train":
        return f"{what}: quant test % " + ", ".join(
            f"{x['decoder']} {100 * x['acc_quant']:.2f}" for x in r["_rows"])
    if kind == "hardware":
        return f"{what}: design LUT+CARRY4 {r.get('lut_carry')}, {r.get('estimate_seconds')} s"
    return f"{what}: {r.get('mismatches')} mismatches on {r.get('n')} vectors"


def run_all(args, doc: dict, save) -> dict:
    """The trainings, then the hardware and simulation tasks, in a pool of ``--jobs`` spawned
    worker processes; ``save(doc)`` after every finished task.  A task that fails gives a row
    with ``error`` (one line)."""
    train, later = plan(args, doc)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
        futures = {pool.submit(train_one, p): p for p in train}
        for fut in as_completed(futures):
            p = futures[fut]
            try:
                rows = fut.result()
            except Exception as e:  # noqa: BLE001 - report every task
                rows = [_failed(p, e, False)]
            print(_line("train", {**rows[0], "_rows": rows}), flush=True)
            doc["rows"].extend(rows)
            save(doc)
        bad = {_k(r) for r in doc["rows"] if "error" in r}
        futures = {pool.submit(WORKERS[kind], p): (kind, p) for kind, p in later
                   if _k(p) not in bad}
        for fut in as_completed(futures):
            kind, p = futures[fut]
            try:
                row = fut.result()
            except Exception as e:  # noqa: BLE001
                row = _failed(p, e, True)
            print(_line(kind, row), flush=True)
            doc[kind].append(row)
            save(doc)
    for kind in ("rows", "hardware", "sim_full"):
        doc[kind].sort(key=lambda r: (r["dataset"], _order(r["code"]), r["seed"],
                                      r.get("decoder", "")))
    return doc


def _order(code: str) -> int:
    return CODES.index(code) if code in CODES else len(CODES)


def _list(text: str, what: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items or len(set(items)) != len(items):
        raise ValueError(f"need a comma list of distinct {what}, got {text!r}")
    return items


def parse_args(argv=None):
    """The options; ``--quick`` fills every option not given with a tiny run (mnist5k, 20
    images per class, 1 + 1 epochs, onehot and hadamard:15, seed 0, hardware of onehot)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run")
    ap.add_argument("--datasets", help="comma list (default mnist5k,fashion)")
    ap.add_argument("--codes", help=f"comma list of output codes (default {','.join(CODES)})")
    ap.add_argument("--seeds", help="comma list (default 0,1,2)")
    ap.add_argument("--train-per-class", type=int, help="default 1000 (all where fewer)")
    ap.add_argument("--epochs", type=int, help="float epochs (default 15)")
    ap.add_argument("--qat-epochs", type=int, help="quantized epochs (default 8)")
    ap.add_argument("--model", default="seed-cnn")
    ap.add_argument("--input-code", default="bitplane:4")
    ap.add_argument("--flips", type=int, default=4, help="flip k = 0..FLIPS code bits")
    ap.add_argument("--hw-dataset", default="mnist5k")
    ap.add_argument("--hw-seed", type=int, default=0)
    ap.add_argument("--hw-codes", help="codes whose fc + decoder go through yosys (default all)")
    ap.add_argument("--hw-timeout", type=float, default=3600.0, help="seconds per yosys run")
    ap.add_argument("--hw-check-n", type=int, default=200,
                    help="test images on which the fc + decoder graph must equal the run")
    ap.add_argument("--arith", default="adders", help="verilog arithmetic (adders | heap | auto)")
    ap.add_argument("--sim-full", action=argparse.BooleanOptionalAction, default=None,
                    help="simulate the whole full-code run in Icarus (default on)")
    ap.add_argument("--sim-n", type=int, default=20, help="test images to simulate")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (1 thread each)")
    ap.add_argument("--redo", action="store_true", help="recompute rows already in the JSON")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "codes"))
    args = ap.parse_args(argv)
    for k, v in (QUICK if args.quick else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    try:
        args.datasets = _list(args.datasets, "datasets")
        args.codes = _list(args.codes, "codes")
        args.hw_codes = _list(args.hw_codes, "codes")
        args.seeds = _seeds(args.seeds)
    except ValueError as e:
        ap.error(str(e))
    if args.jobs < 1 or args.flips < 0 or args.sim_n < 1 or args.hw_check_n < 1:
        ap.error("--jobs, --sim-n and --hw-check-n must be >= 1 and --flips >= 0")
    return args


def settings_of(args) -> dict:
    keys = ("datasets", "codes", "seeds", "epochs", "qat_epochs", "model", "input_code",
            "flips", "hw_dataset", "hw_seed", "hw_codes", "hw_timeout", "hw_check_n", "arith",
            "sim_full", "sim_n", "jobs", "quick")
    return {**{k: getattr(args, k) for k in keys}, "train_per_class_wanted": args.train_per_class,
            "out": str(Path(args.out).resolve()), "command": " ".join(sys.argv)}


def main(argv=None) -> int:
    from codes_report import markdown, plot

    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = load_doc(out / "codes.json")
    doc["settings"] = settings_of(args)

    def save(d: dict) -> None:
        _replace_into(out / "codes.json", json.dumps(d, indent=1, sort_keys=True) + "\n")

    doc = run_all(args, doc, save)
    save(doc)
    _replace_into(out / "codes.md", markdown(doc))
    plot(doc, out / "codes.png")
    print(f"wrote {out / 'codes.json'}, codes.md, codes.png")
    bad = [r for r in doc["rows"] if "error" in r] + [
        r for r in doc["hardware"] if r.get("graph_matches_run") is False] + [
        r for r in doc["sim_full"] if r.get("mismatches")]
    return 1 if bad else 0  # hardware a target cannot build yet is recorded, not failed

if __name__ == "__main__":
    sys.exit(main())
