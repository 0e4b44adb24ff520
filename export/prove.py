"""``heatq prove EXPORT``: formal equivalence of each layer module of a Verilog export with a
reference module written from the IR, for all inputs (not sampled vectors).

For every layer (:mod:`heatq_export.prove_ref` finds its product and REQUANT in the IR and
writes the reference ``ref_<layer>``) a checker module instantiates the exported layer
module (the *gate*) and the reference side by side on the same ``clk``, ``rst``,
``in_valid`` and ``x``, and raises ``bad`` when their ``out_valid`` differ or, when both are
valid, their ``y`` differ.  Inputs outside the IR's range of the layer's argument are not
part of the claim (``in_valid`` is masked for them: the adder widths are derived from that
range).  yosys 0.23 flattens the checker to an and-inverter graph (``techmap``, ``aigmap``;
every register starts at 0, the state after reset) and ABC:

1. ``bmc3 -F latency+1`` with a conflict budget: a quick search for a counterexample;
2. ``frames -F latency+1 -i; orpos; iprove``: the checker unrolled over ``latency + 1``
   cycles from reset, ``in_valid`` and ``x`` free in every cycle, proved combinationally by
   SAT sweeping (fraiging).  UNSAT: every token whose result leaves the module within those
   cycles equals the reference, whatever came before or after it in that window; for a
   combinational layer (latency 1, ``y`` registered at ``in_valid``, held otherwise) that
   is the whole function ``x -> y``, for a pipelined one (``--max-carry``) one token's
   cycles and its overlap with the next ones.

Per layer: ``proved``, ``not equivalent`` (the counterexample: the logical input vector
``x_i`` of the failing token, and the reference's ``y``), or ``not proved`` (the time limit;
the seconds spent are stated either way).  Nothing is written into the export.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import tempfile
import time
from pathlib import Path

from heatq.errors import UserError
from heatq.files import load_graph, read_json
from heatq.ir.requant import requant_scalar

from .estimate_cache import run_tool
from .prove_ref import LayerSpec, layer_specs, model_verilog, reference_verilog

TIMEOUT = 300.0
BMC_CONFLICTS = 20000


def _design(export: Path, graph, summary: dict):
    """The emitter's design of ``graph`` with the export's options (summary.json's
    report.design; keys another version does not write take the defaults)."""
    from .verilog import VerilogEmitter

    des = summary["report"].get("design", {})
    kw = {"top": summary.get("top", "heatq_top"), "max_carry": des.get("max_carry"),
          "cse": des.get("cse", True)}
    for key in ("arith", "fold", "ii"):
        if des.get(key) is not None:
            kw[key] = des[key]
    try:
        return VerilogEmitter(**kw).design(graph)
    except TypeError:  # an emitter without the newer options
        return VerilogEmitter(**{k: kw[k] for k in ("top", "max_carry", "cse")}).design(graph)


def load_export(export_dir) -> tuple[Path, dict, object]:
    """(directory, summary, graph) of a Verilog export; UserError for anything else."""
    export = Path(export_dir)
    if not (export / "summary.json").is_file():
        raise UserError(f"{export}: not a heatq export (no summary.json)")
    summary = read_json(export / "summary.json")
    if summary.get("target") != "verilog" or "report" not in summary:
        raise UserError(f"{export}: not a Verilog export (target "
                        f"{summary.get('target')!r}); export with heatq-export -t verilog")
    if not (export / "model.ir.json").is_file():
        raise UserError(f"{export}: the export has no model.ir.json (the IR to prove against)")
    return export, summary, load_graph(export)


def _ports(text: str) -> dict[str, int]:
    """Port name -> width of the first module in ``text``."""
    head = text[:text.find(");")]
    return {m.group(3): (int(m.group(2)) + 1 if m.group(2) else 1) for m in re.finditer(
        r"(input|output)\s+(?:wire|reg)?\s*(?:\[(\d+):0\])?\s*(\w+)", head)}


def checker_verilog(spec: LayerSpec, ref: str) -> str:
    """The checker ``prove_check``: gate and reference on the same inputs, ``bad`` output."""
    ny = len(spec.weights) * spec.out_type.width
    w, t = spec.in_type.width, spec.in_type
    conds = []
    full_lo = -(1 << (w - 1)) if t.signed else 0
    full_hi = (1 << (w - 1)) - 1 if t.signed else (1 << w) - 1
    if (spec.in_lo, spec.in_hi) != (full_lo, full_hi):
        cast = "$signed" if t.signed else ""
        for off in spec.phys_off:
            e = f"{cast}(x[{off + w - 1}:{off}])"
            conds.append(f"({e} >= {_vlit(spec.in_lo, w, t.signed)} && "
                         f"{e} <= {_vlit(spec.in_hi, w, t.signed)})")
    ok = " && ".join(conds) if conds else "1'b1"
    return "\n".join([
        "module prove_check (input wire clk, input wire rst, input wire in_valid,",
        f"    input wire [{spec.nx - 1}:0] x, output wire bad);",
        f"    wire in_range = {ok};"] + _pace_lines(spec.cycles) + [
        f"    wire ov_g, ov_r; wire [{ny - 1}:0] y_g, y_r;",
        f"    {spec.module} u_gate (.clk(clk), .rst(rst), .in_valid(v), .x(x), "
        ".out_valid(ov_g), .y(y_g));",
        f"    {ref} u_ref (.clk(clk), .rst(rst), .in_valid(v), .x(x), .out_valid(ov_r), "
        ".y(y_r));",
        "    assign bad = (ov_g != ov_r) || (ov_r && (y_g != y_r));",
        "endmodule", ""])


def _pace_lines(cycles: int) -> list[str]:
    """``v``: ``in_valid`` for an in-range input, at most once every ``cycles`` cycles (the
    folded-layer contract; every cycle when ``cycles`` is 1)."""
    if cycles <= 1:
        return ["    wire v = in_valid & in_range;"]
    k = max(1, (cycles - 1).bit_length())
    return [f"    reg [{k - 1}:0] gap;",
            f"    wire v = in_valid & in_range & (gap == {k}'d0);",
            f"    always @(posedge clk) gap <= rst ? {k}'d0 : (v ? {k}'d{cycles - 1} : "
            f"(gap != {k}'d0 ? gap - {k}'d1 : {k}'d0));"]


def _vlit(v: int, w: int, signed: bool) -> str:
    if not signed:
        return f"{w}'d{v}"
    return f"-{w + 1}'sd{-v}" if v < 0 else f"{w + 1}'sd{v}"


YOSYS_SCRIPT = """read_verilog {gate}
read_verilog ref.v
read_verilog check.v
hierarchy -check -top prove_check
proc
{coarse}
flatten; opt -fast
memory -nomap; memory_map; opt -fast
techmap; opt -fast
setundef -zero -init
dffunmap
aigmap
opt_clean
write_aiger -zinit -map check.map check.aig
"""
# the IR reference's sums of products as yosys' multiply-accumulate cells, mapped to
# compressor trees (maccmap): 2.5x faster to build than the plain techmap of each '*'
MACC = "opt -fast {ref}; wreduce {ref}; alumacc {ref}; opt -fast {ref}; maccmap {ref}"


def _run(cmd: list[str], cwd: Path, deadline: float) -> tuple[int | None, str]:
    """Run ``cmd``; (exit code or None on the deadline, output)."""
    left = deadline - time.monotonic()
    if left <= 0:
        return None, ""
    try:
        r = run_tool(cmd, left, cwd)
    except RuntimeError:  # the deadline
        return None, ""
    return r.returncode, r.stdout


def _child_cpu() -> float:
    """CPU seconds of finished child processes (yosys, ABC) so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _input_map(path: Path) -> dict[int, tuple[str, int]]:
    """AIG input index -> (port, bit) from yosys' ``write_aiger -map`` file."""
    out = {}
    for line in path.read_text().splitlines():
        f = line.split()
        if len(f) == 4 and f[0] == "input":
            out[int(f[1])] = (f[3], int(f[2]))
    return out


def _counterexample(spec: LayerSpec, work: Path) -> dict | None:
    """The failing token from ABC's named witness ``cex.txt`` (``pi<k>@<frame>=<bit>``; the
    token entered ``latency`` cycles before the last frame): its inputs ``x_i`` and the
    reference's ``y``."""
    vals: dict[tuple[int, int], int] = {}
    for m in re.finditer(r"^pi(\d+)@(\d+)=([01])$", (work / "cex.txt").read_text(), re.M):
        vals[(int(m.group(1)), int(m.group(2)))] = int(m.group(3))
    if not vals:
        return None
    k = max(f for _, f in vals) - spec.latency
    if k < 0:
        return None
    bits = {port: vals.get((i, k), 0) for i, port in _input_map(work / "check.map").items()}
    w = spec.in_type.width
    xs = []
    for off in spec.in_off:
        v = sum(bits.get(("x", off + b), 0) << b for b in range(w))
        xs.append(v - (1 << w) if spec.in_type.signed and v >> (w - 1) else v)
    return {"cycle": k, "x": xs, "y_reference": reference_values(spec, xs)}


def reference_values(spec: LayerSpec, xs: list[int]) -> list[int]:
    """The IR's ``y`` for the logical inputs ``xs`` (Python ints, exact)."""
    out = []
    for row, b in zip(spec.weights, spec.bias):
        acc = sum(wv * xv for wv, xv in zip(row, xs)) + b
        out.append(requant_scalar(acc, spec.requant) if spec.requant is not None else acc)
    return out


def _abc(work: Path, spec: LayerSpec, deadline: float, aig: str = "check.aig",
         search: bool = True) -> tuple[str, str]:
    """(status, method) of a checker AIG: bmc3 for a counterexample (``search``), then the
    unrolled proof."""
    f = spec.latency + 1
    if search:
        rc, log = _run(["yosys-abc", "-c", f"read {aig}; bmc3 -F {f} -C {BMC_CONFLICTS}; "
                        "write_cex -n cex.txt"], work, deadline)
        if rc is None:
            return "not proved", "bmc3"
        if "was asserted in frame" in log:
            return "not equivalent", f"bmc3 -F {f}"
    rc, log = _run(["yosys-abc", "-c", f"read {aig}; frames -F {f} -i; orpos; iprove"],
                   work, deadline)
    if rc is None:
        return "not proved", f"frames -F {f}; iprove"
    if "UNSATISFIABLE" in log:
        return "proved", f"frames -F {f}; iprove"
    if "SATISFIABLE" in log:  # bmc3 ran out of conflicts; find the witness without a limit
        rc, log = _run(["yosys-abc", "-c", f"read {aig}; bmc3 -F {f}; write_cex -n cex.txt"],
                       work, deadline)
        if rc is not None and "was asserted in frame" in log:
            return "not equivalent", f"bmc3 -F {f}"
        return "not equivalent", f"frames -F {f}; iprove (no witness)"
    return "not proved", f"iprove: {log.strip().splitlines()[-1] if log.strip() else rc}"


def _build(work: Path, gate: Path, ref_text: str, ref: str, spec: LayerSpec, aig: str,
           deadline: float) -> bool:
    """Write the checker of ``gate`` against ``ref_text`` and build ``aig``; False on the
    deadline.  UserError when yosys rejects the sources."""
    stem = aig[:-4]
    (work / f"{stem}_ref.v").write_text(ref_text)
    (work / f"{stem}_check.v").write_text(checker_verilog(spec, ref))
    coarse = MACC.format(ref=ref) if ref.startswith("ref_") else ""
    script = YOSYS_SCRIPT.format(gate=str(gate.resolve()), coarse=coarse)
    script = script.replace("ref.v", f"{stem}_ref.v")
    script = script.replace("check.v", f"{stem}_check.v").replace("check.map", f"{stem}.map")
    (work / f"{stem}.ys").write_text(script.replace("check.aig", aig))
    rc, log = _run(["yosys", "-q", "-s", f"{stem}.ys"], work, deadline)
    if rc is not None and rc != 0:
        raise UserError(f"yosys failed on {gate.name}: {log.strip().splitlines()[-1:]}")
    return rc is not None


def _lemma_applies(spec: LayerSpec, info: dict) -> bool:
    """The gate is built from the adder graph's adders (not a bit heap, not folded)."""
    return (spec.graph is not None and spec.matrix == "equal"
            and info.get("arith", "adders") in ("adders", "auto")
            and info.get("design", "parallel") == "parallel")


def prove_layer(export: Path, spec: LayerSpec, timeout: float = TIMEOUT,
                info: dict | None = None, direct: bool = False) -> dict:
    """Prove one layer (``info``: its summary.json report entry); see the module docstring.
    ``direct``: only against the IR reference (no two-step proof via the adder graph)."""
    t0, cpu0 = time.monotonic(), _child_cpu()
    deadline = t0 + timeout
    res = {"module": spec.module, "latency": spec.latency, "product": spec.product,
           "matrix": spec.matrix, "counterexample": None}
    gate = export / f"{spec.module}.v"
    text = gate.read_text() if gate.is_file() else ""
    ports = _ports(text)
    ny = len(spec.weights) * spec.out_type.width
    if ports.get("x") != spec.nx or ports.get("y") != ny:
        res.update(status="not equivalent", method="ports", seconds=0.0, cpu_seconds=0.0,
                   reason=f"{gate.name}: ports x[{ports.get('x')}] y[{ports.get('y')}], the IR "
                          f"needs x[{spec.nx}] y[{ny}]")
        return res
    with tempfile.TemporaryDirectory(prefix="heatq_prove_") as tmp:
        work = Path(tmp)
        ref = f"ref_{spec.module}"
        status, method = "not proved", "yosys (building the AIG)"
        lemma = not direct and _lemma_applies(spec, info or {})
        first = t0 + 0.25 * timeout if lemma else deadline  # the direct proof's share
        if _build(work, gate, reference_verilog(spec, ref), ref, spec, "check.aig", first):
            status, method = _abc(work, spec, first)
        if lemma and status == "not proved":
            status, method = _two_step(work, gate, spec, deadline)
        if status == "not equivalent" and (work / "cex.txt").is_file():
            res["counterexample"] = _counterexample(spec, work)
    res.update(status=status, method=method, seconds=round(time.monotonic() - t0, 1),
               cpu_seconds=round(_child_cpu() - cpu0, 1))
    if status == "not proved":
        res["reason"] = f"time limit {timeout:g} s"
    return res


def _two_step(work: Path, gate: Path, spec: LayerSpec, deadline: float) -> tuple[str, str]:
    """The gate against the adder-graph model (``model_verilog``), whose product equals the
    IR's (``matrix == "equal"``, checked in Python): proved means proved against the IR."""
    ref = f"model_{spec.module}"
    if not _build(work, gate, model_verilog(spec, spec.graph, ref), ref, spec, "model.aig",
                  deadline):
        return "not proved", "two-step: yosys"
    status, method = _abc(work, spec, deadline, "model.aig", search=False)
    if status == "proved":
        return "proved", f"two-step: gate == adder-graph model ({method}), model == IR (matrix)"
    return ("not proved" if status == "not proved" else "not equivalent"), f"two-step: {method}"


def prove_export(export_dir, layers=None, timeout: float = TIMEOUT,
                 progress: bool = True, direct: bool = False) -> dict:
    """Prove every layer module of a Verilog export (or the named ``layers``) equal to the
    IR (``direct``: against the IR reference only, never the two-step proof).  Returns
    ``{"export", "timeout", "layers": {name: {status, seconds, method,
    module, latency, product, matrix, counterexample, [reason]}}, "proved",
    "not_equivalent", "not_proved"}``.  UserError: not a Verilog export, an unknown layer,
    yosys missing."""
    from heatq.progress import activity

    for tool in ("yosys", "yosys-abc"):
        if shutil.which(tool) is None:
            raise UserError(f"heatq prove needs {tool} (apt install yosys)")
    export, summary, graph = load_export(export_dir)
    report = {k: v for k, v in summary["report"].items()
              if k != "design" and isinstance(v, dict) and "module" in v}
    names = list(report)
    if layers:
        unknown = [n for n in layers if n not in report]
        if unknown:
            raise UserError(f"{export}: no layer {unknown[0]!r} (layers: {', '.join(names)})")
        names = [n for n in names if n in layers]
    with activity("prove: lowering the IR as the export did", progress):
        specs = layer_specs(graph, _design(export, graph, summary), report)
    out = {}
    for n in names:
        if n not in specs:
            out[n] = {"module": report[n]["module"], "status": "not proved", "seconds": 0.0,
                      "reason": "no product of the IR matches this layer", "method": "-"}
            continue
        with activity(f"prove {n}", progress):
            info = dict(report[n])
            info.setdefault("arith", summary["report"].get("design", {}).get("arith", "adders"))
            out[n] = prove_layer(export, specs[n], timeout, info, direct)
    count = {s: sum(r["status"] == s for r in out.values())
             for s in ("proved", "not equivalent", "not proved")}
    return {"export": str(export), "timeout": timeout, "layers": out,
            "proved": count["proved"], "not_equivalent": count["not equivalent"],
            "not_proved": count["not proved"]}


def print_prove(result: dict) -> None:
    """The per-layer table, and each counterexample."""
    rows = result["layers"]
    width = max([len(n) for n in rows] + [5])
    print(f"{'layer':<{width}}  {'status':<15} {'wall s':>7} {'CPU s':>7}  method")
    for n, r in rows.items():
        print(f"{n:<{width}}  {r['status']:<15} {r['seconds']:>7.1f} "
              f"{r.get('cpu_seconds', 0.0):>7.1f}  {r.get('method', '')}"
              + (f"  ({r['reason']})" if r.get("reason") else ""))
    for n, r in rows.items():
        cex = r.get("counterexample")
        if cex:
            print(f"{n}: counterexample x = {json.dumps(cex['x'])}")
            print(f"{n}: the IR gives y = {json.dumps(cex['y_reference'])}")
    print(f"{result['proved']} proved, {result['not_equivalent']} not equivalent, "
          f"{result['not_proved']} not proved (time limit {result['timeout']:g} s)")


__all__ = ["prove_export", "prove_layer", "print_prove", "load_export", "checker_verilog",
           "reference_values", "TIMEOUT"]
