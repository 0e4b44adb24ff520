#!/usr/bin/env python3
"""Constant matrix-vector products in hardware: heatq vs da4ml vs alkaid vs naive.

For the same seeded integer matrices this builds

* **heatq**: :func:`heatq.lower.lower_cmvm` (CSD digits, two-term CSE, narrow/early-first
  adder trees) emitted by :mod:`heatq_export.verilog_layers`; ``heatq_heap``: the same
  graph as bit heaps (``arith="heap"``, :mod:`heatq_export.rtl.heap`, combinational only);
  ``heatq_auto``: the cheaper of the two by heatq's cost model (:mod:`heatq_export.rtl.cost`);
* **da4ml** (``pip install da4ml``): its CMVM solver through ``da4ml.trace`` and its Verilog
  code generator ``RTLModel``;
* **alkaid** (``pip install alkaid``, da4ml's successor that hls4ml now uses): likewise,
  with its ``binary_lut`` solver option on (groups of up to 6 one-bit inputs become
  partial-sum tables; alkaid >= 0.8 calls the precision's sign flag ``signed``, see
  :func:`kif_signed`); ``alkaid_nolut``: ``binary_lut=False``;
* **naive**: ``y_j = sum_i w_ji * x_i`` written directly, every partial sum at the full
  output width (yosys does the constant multiplications),

checks every design bit-exact against numpy in Icarus (range corners + random vectors),
synthesizes each with the same yosys flow (``synth_xilinx -flatten -nodsp``: LUT, CARRY4, FF;
and a vendor-neutral ``abc -lut 6`` count), and prints a table (LUT+CARRY4, FF, adders,
adder depth, latency, generation time) and writes JSON.

Two pipelining points are compared: ``comb`` (combinational) and ``pipe`` (every adder
level registered: heatq ``max_carry=--pipe-carry``, da4ml / alkaid ``latency_cutoff=1``).
da4ml and alkaid are bench-only dependencies (not heatq's).

Matrices are ``[out, in]`` (rows = outputs).  Default cases: 64 inputs x 10 outputs,
signed 4-bit weights x unsigned 8-bit inputs; 256 x 64, signed 4-bit x unsigned 4-bit; the
seed CNN's fc and conv layers (``--run DIR`` to take them from a trained run's
``model.ir.json``; else from heatq_sim's seeded random seed-shaped network); binary layers
``bin100x8`` / ``bin288x64`` (random +-1 weights on 1-bit unsigned inputs).

Usage::

    python bench/hw_cmvm.py [--cases 64x10,256x64,seed,bin100x8,bin288x64]
        [--tools heatq,heatq_heap,heatq_auto,da4ml,alkaid,alkaid_nolut,naive] [--out FILE.json]
    python bench/hw_cmvm.py --weights W.npy --input-bits B [--input-signed] [--out FILE.json]
    python bench/hw_cmvm.py --merge A.json B.json ... [--out FILE.json] [--md FILE.md]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from heatq.ir import IntType
from heatq.lower import lower_cmvm
from heatq_export.estimate import estimate_module
from heatq_export.rtl.cost import adders_cost, best_heap_plan, plan_cost
from heatq_export.verilog_layers import layer_module, resolve_arith
from heatq_sim.vector_tb import vector_tb

ADDER_OPCODES = (0, 1, 4)  # da4ml / alkaid: add, sub, constant add


@dataclass
class Design:
    tool: str
    variant: str
    files: list[Path]
    top: str
    conn: str  # port connections in the testbench
    out_fields: list[tuple[int, int, bool]]  # (offset, width, signed) per output
    nx: int
    ny: int
    adders: int | None
    depth: int | None
    gen_s: float
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- generators
def gen_heatq(W, lo, hi, variant, d: Path, opts, arith: str = "adders") -> Design:
    """``opts``: the command line (``pipe_carry``, ``logic_add``); ``arith``: the layer
    arithmetic (``adders``, ``heap``: bit heaps, combinational only; ``auto``: the cheaper
    by heatq's cost model)."""
    t0 = time.perf_counter()
    n_out, n_in = W.shape
    K = opts.pipe_carry if variant == "pipe" else None
    if arith == "heap" and K is not None:
        raise NotImplementedError("heatq heap: combinational only")
    g = lower_cmvm(W, [(lo, hi)] * n_in, max_carry=K)
    it = IntType.for_range(lo, hi)
    ot = IntType.for_range(min(o.lo for o in g.outputs), max(o.hi for o in g.outputs))
    tool = "heatq" if arith == "adders" else f"heatq_{arith}"
    top = f"{tool}_cmvm_{variant}"
    text, lat = layer_module(top, g, [it] * n_in, [i * it.width for i in range(n_in)],
                             n_in * it.width, ot, None, f"{top}: bench CMVM",
                             registered=variant == "pipe", logic_add=opts.logic_add,
                             arith=arith)
    gen_s = time.perf_counter() - t0
    chosen = resolve_arith(g, arith, opts.logic_add)
    d.mkdir(parents=True, exist_ok=True)
    f = d / f"{top}.v"
    f.write_text(text)
    conn = (".x(x), .y(y)" if variant == "comb" else
            ".clk(clk), .rst(1'b0), .in_valid(1'b1), .x(x), .out_valid(), .y(y)")
    st = g.stats()
    extra = {"adder_bits": st["adder_bits"], "carry_bits": st["carry_bits"],
             "longest_carry": st["longest_carry"], "model_latency": lat, "arith": chosen,
             "cost_adders": adders_cost(g, opts.logic_add)}
    depth = st["adder_depth"]
    if not g.pipelined:
        plan = best_heap_plan(g)
        extra.update(cost_heap=plan_cost(plan), heap_keep=plan.keep,
                     auto_pick=resolve_arith(g, "auto", opts.logic_add))
        if chosen == "heap":  # logic depth: counter stages + the carry-propagate adder
            depth = max((max((c.stage for c in p.counters), default=0) + 1
                         for p in plan.sums()), default=0)
            extra["heap_stages"] = depth - 1
    return Design(tool, variant, [f], top, conn,
                  [(j * ot.width, ot.width, ot.signed) for j in range(n_out)],
                  n_in * it.width, n_out * ot.width, st["adders"] if chosen == "adders" else None,
                  depth, gen_s, extra=extra)


def _op_srcs(op) -> list[int]:
    if hasattr(op, "addr"):  # alkaid: explicit dependency tuple
        return [a for a in op.addr if a >= 0]
    return [op.id0] + ([op.id1] if op.id1 >= 0 and op.opcode not in (4, 5) else [])


def _structural_depth(ops) -> int:
    depth = [0] * len(ops)
    for i, op in enumerate(ops):
        if op.opcode == -1:
            continue
        srcs = _op_srcs(op)
        base = max((depth[s] for s in srcs if 0 <= s < i), default=0)
        depth[i] = base + (1 if op.opcode in ADDER_OPCODES else 0)
    return max(depth, default=0)


_TRACED: dict[tuple, tuple[Any, float]] = {}  # (tool, matrix) -> (traced solution, seconds)


def kif_signed(kif) -> bool:
    """The sign flag of a da4ml / alkaid KIF ``Precision``: ``signed`` in alkaid >= 0.8,
    ``keep_negative`` before it and in da4ml."""
    for name in ("signed", "keep_negative"):
        if hasattr(kif, name):
            return bool(getattr(kif, name))
    raise TypeError(f"no sign flag in precision {kif!r}")


def _trace_da4ml(W, signed: bool, bits: int):
    from da4ml.trace import FixedVariableArrayInput, comb_trace

    inp = FixedVariableArrayInput((W.shape[1],))
    return comb_trace(inp, inp.quantize(k=int(signed), i=bits, f=0) @ W.T.astype(np.float32))


def _trace_alkaid(W, signed: bool, bits: int, binary_lut: bool = True):
    """alkaid >= 0.8: ``binary_lut`` (its solver option; on unless False) turns groups of
    up to 6 one-bit inputs of an output into partial-sum lookup tables."""
    from alkaid.trace import FVArrayInput, trace

    inp = FVArrayInput((W.shape[1],), solver_options={"binary_lut": binary_lut})
    return trace(inp, inp.quantize(k=int(signed), i=bits, f=0) @ W.T.astype(np.float32))


def _write_da4ml(comb, top: str, d: Path, kw: dict) -> None:
    from da4ml.codegen.rtl.rtl_model import RTLModel

    RTLModel(comb, top, str(d), flavor="verilog", print_latency=False, **kw).write()


def _write_alkaid(comb, top: str, d: Path, kw: dict) -> None:
    from alkaid.codegen.rtl.rtl_model import RTLModel

    RTLModel(comb, str(d), prj_name=top, flavor="verilog", print_latency=False, **kw).write()


def _kif_da4ml(q):
    from da4ml.types import minimal_kif

    return minimal_kif(q)


# tool -> (trace the CMVM, write its Verilog, the KIF precision of a traced interval)
_DA_TOOLS = {"da4ml": (_trace_da4ml, _write_da4ml, _kif_da4ml),
             "alkaid": (_trace_alkaid, _write_alkaid, lambda q: q.kif),
             "alkaid_nolut": (lambda W, s, b: _trace_alkaid(W, s, b, binary_lut=False),
                              _write_alkaid, lambda q: q.kif)}


def _da_common(tool, W, lo, hi, variant, d: Path):
    trace_fn, write_fn, kif_of = _DA_TOOLS[tool]
    signed = lo < 0
    bits = max(IntType.for_range(lo, hi).width - int(signed), 1)
    t0 = time.perf_counter()
    key = (tool, W.tobytes(), W.shape, lo, hi)
    if key not in _TRACED:
        _TRACED[key] = (trace_fn(W, signed, bits), time.perf_counter() - t0)
    comb, solve_s = _TRACED[key]
    width = lambda q: sum(kif_of(q))  # noqa: E731
    signed_q = lambda q: kif_signed(kif_of(q))  # noqa: E731
    top = f"{tool}_{variant}"
    write_fn(comb, top, d, {"latency_cutoff": 1} if variant == "pipe" else {})
    gen_s = time.perf_counter() - t0
    if gen_s < solve_s:  # the solution was traced for the other variant: count it once more
        gen_s += solve_s
    src = d / "src"
    files = [p for p in sorted(src.glob("*.v")) if not p.name.endswith("_wrapper.v")]
    text = "\n".join(p.read_text() for p in files)
    for p in sorted((src / "static").glob("*.v")):
        if p.stem + " " in text or p.stem + " #" in text:
            files.append(p)
    off, fields = 0, []
    for q in comb.out_qint:
        w = width(q)
        fields.append((off, w, signed_q(q)))
        off += w
    nx = sum(width(q) for q in comb.inp_qint)
    conn = (".model_inp(x), .model_out(y)" if variant == "comb" else
            ".clk(clk), .model_inp(x), .model_out(y)")
    # two-operand adders of the traced solution (alkaid's RTLModel then fuses pairs of them
    # into ternary adders)
    n_add = sum(1 for op in comb.ops if op.opcode in ADDER_OPCODES)
    return Design(tool, variant, files, top, conn, fields, nx, off, n_add,
                  _structural_depth(comb.ops), gen_s,
                  extra={"cost": float(getattr(comb, "cost", 0.0))})


def gen_da4ml(W, lo, hi, variant, d, opts):
    return _da_common("da4ml", W, lo, hi, variant, d)


def gen_alkaid(W, lo, hi, variant, d, opts):
    return _da_common("alkaid", W, lo, hi, variant, d)


def gen_alkaid_nolut(W, lo, hi, variant, d, opts):
    return _da_common("alkaid_nolut", W, lo, hi, variant, d)


def gen_naive(W, lo, hi, variant, d: Path, opts) -> Design:
    if variant != "comb":
        raise NotImplementedError("naive: combinational only")
    t0 = time.perf_counter()
    n_out, n_in = W.shape
    it = IntType.for_range(lo, hi)
    los = [sum(min(w * lo, w * hi) for w in row) for row in W.tolist()]
    his = [sum(max(w * lo, w * hi) for w in row) for row in W.tolist()]
    ot = IntType.for_range(min(los + [0]), max(his + [0]))
    wy, wx = ot.width, it.width
    lines = ["// naive full-width sum(w*x): every partial sum at the output width",
             "module naive_comb (", f"    input  wire [{n_in * wx - 1}:0] x,",
             f"    output wire [{n_out * wy - 1}:0] y", ");"]
    for i in range(n_in):
        xi = f"x[{i * wx + wx - 1}:{i * wx}]"
        ext = (f"{{{{{wy - wx}{{x[{i * wx + wx - 1}]}}}}, {xi}}}" if it.signed else
               f"{{{wy - wx}'d0, {xi}}}") if wy > wx else xi
        lines.append(f"    wire [{wy - 1}:0] xe{i} = {ext};")
    for j, row in enumerate(W.tolist()):
        terms = [f"xe{i} * {wy}'d{w & ((1 << wy) - 1)}" for i, w in enumerate(row) if w]
        lines.append(f"    assign y[{j * wy + wy - 1}:{j * wy}] = "
                     + (" + ".join(terms) if terms else f"{wy}'d0") + ";")
    lines.append("endmodule")
    d.mkdir(parents=True, exist_ok=True)
    f = d / "naive_comb.v"
    f.write_text("\n".join(lines) + "\n")
    return Design("naive", variant, [f], "naive_comb", ".x(x), .y(y)",
                  [(j * wy, wy, ot.signed) for j in range(n_out)], n_in * wx, n_out * wy,
                  int(np.count_nonzero(W)) - n_out, None, time.perf_counter() - t0)


GENERATORS: dict[str, Callable] = {
    "heatq": gen_heatq,
    "heatq_heap": lambda *a: gen_heatq(*a, arith="heap"),
    "heatq_auto": lambda *a: gen_heatq(*a, arith="auto"),
    "da4ml": gen_da4ml, "alkaid": gen_alkaid, "alkaid_nolut": gen_alkaid_nolut,
    "naive": gen_naive}
HEATQ_TOOLS = ("heatq", "heatq_heap", "heatq_auto")


# ---------------------------------------------------------------------------- checking
def vectors(W: np.ndarray, lo: int, hi: int, n_rand: int, seed: int) -> np.ndarray:
    """Test inputs int64 [M, n_in] for ``y = W @ x`` with every ``x_i`` in ``lo..hi``: heatq's
    corner vectors (:func:`heatq.ir.testing.corner_vectors`: range corners, the inputs that
    drive outputs to their extremes, ``n_rand`` seeded random vectors) of the one-layer graph."""
    from heatq.ir import DenseAttrs, GraphBuilder, InputAttrs, Op
    from heatq.ir.testing import corner_vectors

    n_out, n_in = W.shape
    w_bits = max(2, int(np.abs(W).max(initial=0)).bit_length() + 1)
    g = GraphBuilder()
    x = g.add(Op.INPUT, InputAttrs((n_in,), int(lo), int(hi)), name="x")
    y = g.add(Op.DENSE, DenseAttrs(W, np.zeros(n_out, dtype=np.int64), w_bits), [x], "y")
    return corner_vectors(g.build([y]), n_random=n_rand, seed=seed).astype(np.int64)


def icarus_check(des: Design, W: np.ndarray, X: np.ndarray, wx: int, work: Path,
                 max_lat: int = 256) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    mask = (1 << wx) - 1
    (work / "in.hex").write_text("".join(
        format(sum((int(v) & mask) << (i * wx) for i, v in enumerate(row)), "x") + "\n"
        for row in X.tolist()))
    n = len(X)
    tb = vector_tb(des.top, des.conn, des.nx, des.ny, n, n + max_lat, work / "in.hex",
                   work / "out.txt")
    (work / "tb.v").write_text(tb)
    exe = work / "tb.vvp"
    r = subprocess.run(["iverilog", "-g2012", "-o", str(exe), str(work / "tb.v")]
                       + [str(f) for f in des.files], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"iverilog failed for {des.tool}/{des.variant}:\n{r.stderr[-3000:]}")
    r = subprocess.run(["vvp", "-n", str(exe)], capture_output=True, text=True, cwd=work)
    lines = (work / "out.txt").read_text().split()
    want = X @ W.T
    got = []
    for ln in lines:
        if "x" in ln.lower() or "z" in ln.lower():
            got.append(None)
            continue
        v = int(ln, 16)
        row = []
        for off, w, sgn in des.out_fields:
            e = (v >> off) & ((1 << w) - 1)
            if sgn and e >> (w - 1):
                e -= 1 << w
            row.append(e)
        got.append(row)
    for lat in range(max_lat):
        seg = got[lat:lat + n]
        if len(seg) == n and all(s is not None and s == list(w) for s, w in zip(seg, want.tolist())):
            return {"mismatches": 0, "latency": lat, "n": n}
    best = min(range(max_lat), key=lambda L: sum(
        1 for s, w in zip(got[L:L + n], want.tolist()) if s != list(w)))
    bad = sum(1 for s, w in zip(got[best:best + n], want.tolist()) if s != list(w))
    return {"mismatches": bad + max(0, n - len(got[best:best + n])), "latency": best, "n": n}


# ---------------------------------------------------------------------------- cases
def seeded_matrix(n_in: int, n_out: int, w_bits: int, seed: int) -> np.ndarray:
    b = (1 << (w_bits - 1)) - 1
    return np.random.default_rng(seed).integers(-b, b + 1, size=(n_out, n_in)).astype(np.int64)


def seed_layers(run_dir: str | None) -> list[tuple[str, np.ndarray, int, int]]:
    from heatq.ir import Op

    if run_dir:
        from heatq.ir import load
        g = load(run_dir)
        src = f"run {run_dir}"
    else:
        from heatq_sim.graphs import seed_cnn_graph
        g = seed_cnn_graph(0)
        src = "random seed-shaped"
    out = []
    for n in g.nodes:
        if n.op in (Op.DENSE, Op.CONV2D):
            arg = g.nodes[n.args[0]]
            lo, hi = arg.lo, arg.hi
            w = n.attrs.weight
            if n.op is Op.CONV2D:
                lo, hi = min(lo, 0), max(hi, 0)
                w = w.reshape(w.shape[0], -1)
            out.append((f"{n.name} ({src}) {w.shape[1]}x{w.shape[0]}", w.astype(np.int64), lo, hi))
    return out


BINARY_CASES = {"bin100x8": (100, 8), "bin288x64": (288, 64)}  # name -> (n_in, n_out)


def build_cases(args) -> list[tuple[str, np.ndarray, int, int]]:
    if args.weights:
        W = np.load(args.weights)
        if W.ndim != 2 or not np.issubdtype(W.dtype, np.integer):
            W2 = np.asarray(W)
            if W2.ndim != 2 or not np.all(np.mod(W2, 1) == 0):
                raise SystemExit("--weights must be a 2-D integer matrix [out, in]")
            W = W2.astype(np.int64)
        b = args.input_bits
        lo, hi = (-(1 << (b - 1)), (1 << (b - 1)) - 1) if args.input_signed else (0, (1 << b) - 1)
        return [(f"{Path(args.weights).name} {W.shape[1]}x{W.shape[0]} "
                 f"{'s' if args.input_signed else 'u'}{b}", W.astype(np.int64), lo, hi)]
    cases = []
    for c in args.cases.split(","):
        c = c.strip()
        if c == "64x10":
            cases.append(("64x10 w4s x u8", seeded_matrix(64, 10, 4, 1), 0, 255))
        elif c == "256x64":
            cases.append(("256x64 w4s x u4", seeded_matrix(256, 64, 4, 2), 0, 15))
        elif c in BINARY_CASES:  # +-1 weights on 1-bit inputs (random, seeded)
            n_in, n_out = BINARY_CASES[c]
            W = np.where(np.random.default_rng(3).random((n_out, n_in)) < 0.5, -1, 1)
            cases.append((f"{c} +-1 x u1 (random)", W.astype(np.int64), 0, 1))
        elif c == "seed":
            big = re.compile(r"conv(_block_)?4\b")  # conv4 / a trained run's conv_block_4
            cases += [x for x in seed_layers(args.run) if args.big or not big.match(x[0])]
        elif c:
            raise SystemExit(f"unknown case {c!r} (64x10, 256x64, seed, "
                             f"{', '.join(BINARY_CASES)})")
    return cases


# ---------------------------------------------------------------------------- main
def run_case(name, W, lo, hi, args, root: Path) -> list[dict[str, Any]]:
    rows = []
    X = vectors(W, lo, hi, args.n_vectors, args.seed)
    wx = IntType.for_range(lo, hi).width
    for variant in args.variants.split(","):
        for tool in args.tools.split(","):
            d = root / f"{tool}_{variant}"
            row: dict[str, Any] = {"case": name, "tool": tool, "variant": variant}
            try:
                des = GENERATORS[tool](W, lo, hi, variant, d, args)
            except NotImplementedError:  # the tool has no such variant (naive: comb only)
                continue
            except Exception as e:  # noqa: BLE001 - one tool failing must not stop the bench
                row["error"] = f"generate: {e}"
                rows.append(row)
                traceback.print_exc()
                continue
            row.update({"adders": des.adders, "adder_depth": des.depth,
                        "gen_s": round(des.gen_s, 2), **des.extra})
            try:
                row.update(icarus_check(des, W, X, wx, d / "sim"))
            except Exception as e:  # noqa: BLE001
                row["error"] = f"icarus: {e}"
            if not args.no_synth:
                try:
                    flows = ("xilinx", "lut6") if args.lut6 else ("xilinx",)
                    est = estimate_module(des.files, des.top, flows, timeout=args.synth_timeout)
                    row.update({k: est[k] for k in ("lut", "carry4", "ff", "lut_carry", "lut6",
                                                    "seconds") if k in est})
                except Exception as e:  # noqa: BLE001
                    row["error"] = f"yosys: {e}"
            rows.append(row)
            print(_fmt_row(row), flush=True)
    return rows


COLS = [("case", 34), ("tool", 12), ("variant", 7), ("lut_carry", 9), ("lut", 7), ("carry4", 6),
        ("ff", 6), ("lut6", 7), ("adders", 7), ("adder_depth", 5), ("latency", 7),
        ("mismatches", 5), ("gen_s", 7)]


def _fmt_row(r: dict[str, Any]) -> str:
    out = []
    for k, w in COLS:
        v = r.get(k, "")
        v = "-" if v is None else v
        out.append(f"{str(v)[:w]:>{w}}" if k not in ("case", "tool", "variant") else f"{str(v)[:w]:<{w}}")
    if "error" in r:
        out.append(f" ERROR {r['error'][:80]}")
    return " ".join(out)


MD_COLS = [("case", "case"), ("tool", "tool"), ("variant", "variant"),
           ("lut_carry", "LUT+CARRY4"), ("lut", "LUT"), ("carry4", "CARRY4"), ("ff", "FF"),
           ("adders", "adders"), ("adder_depth", "adder depth"), ("latency", "latency"),
           ("mismatches", "mismatches"), ("gen_s", "gen s")]


def markdown(rows: list[dict[str, Any]], rat: list[dict[str, Any]]) -> str:
    def cell(r, k):
        v = r.get(k, "")
        return "-" if v is None else str(v)

    out = ["| " + " | ".join(h for _, h in MD_COLS) + " |",
           "|" + "---|" * len(MD_COLS)]
    for r in rows:
        line = "| " + " | ".join(cell(r, k) for k, _ in MD_COLS) + " |"
        if "error" in r:
            line += f" error: {r['error'][:60]}"
        out.append(line)
    head = ("| case | variant | heatq adders | heatq heap | heatq auto | heatq best | "
            "best of da4ml/alkaid | heatq best / best | auto / best | heatq best / alkaid | "
            "heatq best / naive | depth heatq best / da4ml |")
    out += ["", head, "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rat:
        best = (f"{r['best_da']} {r['best_da_lut_carry']}" if "best_da" in r else "-")
        out.append(f"| {r['case']} | {r['variant']} | {r.get('heatq_lut_carry', '-')} | "
                   f"{r.get('heatq_heap_lut_carry', '-')} | "
                   f"{r.get('heatq_auto_lut_carry', '-')} ({r.get('auto_pick', '-')}) | "
                   f"{r['heatq_best']} | {best} | "
                   f"{r.get('ratio_vs_best_da', '-')} | {r.get('auto_vs_best_da', '-')} | "
                   f"{r.get('ratio_vs_alkaid', '-')} | "
                   f"{r.get('ratio_vs_naive', '-')} | "
                   f"{r.get('depth_heatq', '-')} / {r.get('depth_da4ml', '-')} |")
    return "\n".join(out) + "\n"


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per case/variant: heatq's best LUT+CARRY4 over its arithmetics (``heatq``: adders,
    ``heatq_heap``, ``heatq_auto``) over the better of da4ml / alkaid, over alkaid alone
    (with ``binary_lut``) and over naive; rows with mismatches do not count."""
    out = []
    keys = sorted({(r["case"], r["variant"]) for r in rows})
    for case, var in keys:
        by = {r["tool"]: r for r in rows if r["case"] == case and r["variant"] == var
              and "lut_carry" in r and r.get("mismatches") == 0}
        hq = [by[t] for t in HEATQ_TOOLS if t in by]
        if not hq:
            continue
        h = min(hq, key=lambda r: r["lut_carry"])
        ent: dict[str, Any] = {"case": case, "variant": var, "heatq_best": h["tool"],
                               **{f"{r['tool']}_lut_carry": r["lut_carry"] for r in hq},
                               "heatq_best_lut_carry": h["lut_carry"]}
        pick = by.get("heatq", {}).get("auto_pick")  # what --arith auto chose (not rerun)
        pick_tool = {"adders": "heatq", "heap": "heatq_heap"}.get(pick or "")
        if "heatq_auto" not in ent and pick_tool in by:
            ent.update(auto_pick=pick, heatq_auto_lut_carry=by[pick_tool]["lut_carry"])
        best = [by[t] for t in ("da4ml", "alkaid") if t in by]
        if best:
            b = min(best, key=lambda r: r["lut_carry"])
            ent.update({"best_da": b["tool"], "best_da_lut_carry": b["lut_carry"],
                        "ratio_vs_best_da": round(h["lut_carry"] / b["lut_carry"], 3),
                        **({"auto_vs_best_da": round(ent["heatq_auto_lut_carry"]
                                                     / b["lut_carry"], 3)}
                           if "heatq_auto_lut_carry" in ent else {}),
                        "depth_heatq": h.get("adder_depth"),
                        "depth_da4ml": by.get("da4ml", {}).get("adder_depth")})
        if "alkaid" in by:
            ent["ratio_vs_alkaid"] = round(h["lut_carry"] / by["alkaid"]["lut_carry"], 3)
        if "naive" in by:
            ent["ratio_vs_naive"] = round(h["lut_carry"] / by["naive"]["lut_carry"], 3)
        out.append(ent)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", help="an integer matrix [out, in] (.npy)")
    ap.add_argument("--input-bits", type=int, default=8)
    ap.add_argument("--input-signed", action="store_true")
    ap.add_argument("--cases", default="64x10,256x64,seed")
    ap.add_argument("--run", help="a trained run dir (model.ir.json) for the seed case")
    ap.add_argument("--big", action="store_true", help="seed case: include conv4 (slow)")
    ap.add_argument("--tools", default="heatq,da4ml,alkaid,naive")
    ap.add_argument("--variants", default="comb,pipe")
    ap.add_argument("--pipe-carry", type=int, default=64,
                    help="heatq pipe variant: max carry (64: register every adder, no split)")
    ap.add_argument("--logic-add", type=int, default=3,
                    help="heatq comb: adders with carry chains of at most this many bits as "
                         "gates (layer_module's logic_add; 0: all '+')")
    ap.add_argument("--n-vectors", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-synth", action="store_true")
    ap.add_argument("--lut6", action="store_true",
                    help="also the vendor-neutral abc -lut 6 count (slow on big matrices)")
    ap.add_argument("--synth-timeout", type=float, default=3600)
    ap.add_argument("--workdir", help="keep generated designs here (default: a temp dir)")
    ap.add_argument("--out", help="write the results as JSON")
    ap.add_argument("--md", help="also write the table and ratios as Markdown")
    ap.add_argument("--merge", nargs="+", metavar="JSON",
                    help="no run: merge the rows of earlier --out files (a later file's row "
                         "replaces an earlier one of the same case/tool/variant) and report")
    args = ap.parse_args(argv)
    if args.merge:
        rows, sources = merge_rows(args.merge)
        return report(rows, args, {"merged": args.merge, "sources": sources})
    for tool in ("iverilog", "vvp") + (() if args.no_synth else ("yosys",)):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found on PATH")
    cases = build_cases(args)
    tmp = None if args.workdir else tempfile.mkdtemp(prefix="hw_cmvm_")
    root = Path(args.workdir or tmp)
    rows: list[dict[str, Any]] = []
    print(" ".join(f"{k:<{w}}" if k in ("case", "tool", "variant") else f"{k[:w]:>{w}}"
                   for k, w in COLS), flush=True)
    try:
        for i, (name, W, lo, hi) in enumerate(cases):
            rows += run_case(name, W, lo, hi, args, root / f"case{i}")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return report(rows, args, vars(args))


TOOL_ORDER = ("heatq", "heatq_heap", "heatq_auto", "da4ml", "alkaid", "alkaid_nolut", "naive")


def merge_rows(paths: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    by: dict[tuple, dict[str, Any]] = {}
    cases: list[str] = []
    sources = []
    for p in paths:
        d = json.loads(Path(p).read_text())
        sources.append({"file": p, "args": d.get("args")})
        for r in d["rows"]:
            if r["case"] not in cases:
                cases.append(r["case"])
            by[(r["case"], r["tool"], r["variant"])] = r
    rows = sorted(by.values(), key=lambda r: (
        cases.index(r["case"]), r["variant"] != "comb", r["variant"],
        TOOL_ORDER.index(r["tool"]) if r["tool"] in TOOL_ORDER else 99, r["tool"]))
    return rows, sources


def report(rows: list[dict[str, Any]], args, meta: dict[str, Any]) -> int:
    if args.merge:
        print(" ".join(f"{k:<{w}}" if k in ("case", "tool", "variant") else f"{k[:w]:>{w}}"
                       for k, w in COLS))
        for r in rows:
            print(_fmt_row(r))
    rat = ratios(rows)
    print("\nheatq LUT+CARRY4 ratios")
    for r in rat:
        print(f"  {r['case']:<40} {r['variant']:<5} {r['heatq_best']:<10} vs best of "
              f"da4ml/alkaid ({r.get('best_da', '-')}): {r.get('ratio_vs_best_da', '-')}   "
              f"vs alkaid: {r.get('ratio_vs_alkaid', '-')}   "
              f"vs naive: {r.get('ratio_vs_naive', '-')}   depth heatq/da4ml: "
              f"{r.get('depth_heatq', '-')}/{r.get('depth_da4ml', '-')}")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "ratios": rat,
                                              "args": meta}, indent=2) + "\n")
    if args.md:
        Path(args.md).write_text(markdown(rows, rat))
    bad = [r for r in rows if r.get("mismatches") or "error" in r]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
