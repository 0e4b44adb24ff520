"""Verilator fast path: a generated C++ harness for ``verilator --cc --exe --build``.

Debian's Verilator 5.006 is too old for cocotb 2.x's Verilator support (cocotb needs
>= 5.036), so instead of cocotb this path compiles the design with a small generated
``main()`` that reads input beats from a text file (``<tdata hex> <tlast>`` per line),
drives both AXI-Stream ports under a handshake plan (:mod:`heatq_sim.stall`: the timing
phase back to back with ``m_tready`` held 1, then seeded random ``m_tready`` stalls and host
gaps, the same draws as the cocotb bench), and writes one line per ``m_tvalid && m_tready``
(``<cycle> <port hex> ...``) and the handshake counters (cycles ``m_tvalid`` was held, held
results that changed).  Port values are sampled at the rising edge,
exactly as the cocotb monitor and the Icarus testbench do.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from string import Template
from typing import Any

from heatq.progress import activity, run_streaming

from .stall import Plan

HARNESS = Template(r"""// heatq Verilator harness for $top (generated)
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include "V$top.h"
#include "verilated.h"
$trace_include

static std::vector<uint32_t> parse_hex(const char* s, int words) {
    std::vector<uint32_t> w(words, 0);
    int n = (int)strlen(s);
    for (int i = 0; i < n; i++) {
        char c = s[n - 1 - i];
        uint32_t d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                     : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : 0;
        if (i / 8 < words) w[i / 8] |= d << (4 * (i % 8));
    }
    return w;
}

// splitmix64 and the stalled phase's draws: a copy of heatq_sim.stall (same numbers, same cycles)
struct SplitMix64 {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
};
struct Pattern {
    SplitMix64 r, g;
    uint64_t t_stall, t_gap, burst, left;
    int ready() {
        if (left > 0) { left--; return 0; }
        if (t_stall == 0) return 1;
        uint64_t x = r.next();
        if ((x >> 40) < t_stall) { left = (x & 0xFFFFFFFFULL) % burst; return 0; }
        return 1;
    }
    bool offer() { return t_gap == 0 || (g.next() >> 40) >= t_gap; }
};

static void put_hex(std::string& s, unsigned long long v) {
    char b[24]; snprintf(b, sizeof b, " %llx", v); s += b;
}
static void put_word(std::string& s, unsigned v) {
    char b[16]; snprintf(b, sizeof b, "%08x", v); s += b;
}

int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    if (argc < 12) {
        fprintf(stderr, "usage: %s IN OUT N_RESULTS MAX_CYCLES N_PLAIN BEATS_PLAIN STALL_T BURST "
                "HOLD GAP_T SEED [WAVES]\n", argv[0]);
        return 2;
    }
    FILE* fi = fopen(argv[1], "r");
    FILE* fo = fopen(argv[2], "w");
    long want = atol(argv[3]);
    long max_cycles = atol(argv[4]);
    long n_plain = atol(argv[5]);
    size_t beats_plain = (size_t)atol(argv[6]);
    Pattern pat;
    uint64_t seed = strtoull(argv[11], 0, 10);
    pat.r.s = seed; pat.g.s = seed ^ 0x5DEECE66DULL;
    pat.t_stall = strtoull(argv[7], 0, 10); pat.burst = strtoull(argv[8], 0, 10);
    pat.left = strtoull(argv[9], 0, 10); pat.t_gap = strtoull(argv[10], 0, 10);
    if (!fi || !fo) { fprintf(stderr, "cannot open files\n"); return 2; }
    std::vector<std::vector<uint32_t>> beats;
    std::vector<int> lasts;
    char buf[65536];
    int last;
    while (fscanf(fi, "%65535s %d", buf, &last) == 2) {
        beats.push_back(parse_hex(buf, $in_words));
        lasts.push_back(last);
    }
    fclose(fi);
    V$top* top = new V$top;
$trace_open
    top->clk = 0; top->rst = 1; top->s_tvalid = 0; top->m_tready = 1;$set_last0
    top->eval(); DUMP();
    for (int i = 0; i < 4; i++) {
        top->clk = 1; top->eval(); DUMP(); top->clk = 0; top->eval(); DUMP();
    }
    top->rst = 0;
    size_t k = 0;
    bool offered = false;
    auto drive = [&]() {
        if (!offered && k < beats.size()) offered = k < beats_plain || pat.offer();
        if (offered) {
            const std::vector<uint32_t>& w = beats[k];
$set_data
            top->s_tvalid = 1;$set_last
        } else {
            top->s_tvalid = 0;
        }
    };
    drive();
    top->m_tready = n_plain > 0 ? 1 : pat.ready();
    top->eval();
    long results = 0, cyc = 0, first_accept = -1;
    long held = 0, ready_low = 0, violations = 0, host_waits = 0;
    bool was_held = false;
    std::string row, prev;
    while (results < want && cyc < max_cycles) {
        bool fire = top->s_tvalid && top->s_tready;
        bool outv = top->m_tvalid, outr = top->m_tready;
        if (fire && first_accept < 0) first_accept = cyc;
        row.clear();
        if (outv) {
$dump
        }
        if (was_held && (!outv || row != prev)) violations++;
        was_held = outv && !outr;
        if (was_held) { held++; prev = row; }
        if (!outr) ready_low++;
        if (top->s_tvalid && !top->s_tready) host_waits++;
        if (outv && outr) {
            fprintf(fo, "%ld%s\n", cyc, row.c_str());
            results++;
        }
        if (top->err) { fprintf(stderr, "err flag set at cycle %ld\n", cyc); }
        top->clk = 1; top->eval(); DUMP();
        if (fire) { k++; offered = false; }
        drive();
        top->m_tready = results < n_plain ? 1 : pat.ready();
        top->clk = 0; top->eval(); DUMP();
        cyc++;
    }
    fprintf(fo, "# cycles %ld first_accept %ld err %d m_tvalid_held %ld m_tready_low %ld "
            "hold_violations %ld host_waits %ld\n", cyc, first_accept, (int)top->err, held,
            ready_low, violations, host_waits);
    fclose(fo);
    top->final();$trace_close
    delete top;
    return results == want ? 0 : 1;
}
""")


def _set_port(name: str, width: int, src: str, indent: str) -> str:
    if width <= 64:
        if width <= 32:
            return f"{indent}top->{name} = {src}[0];"
        return f"{indent}top->{name} = ((uint64_t){src}[1] << 32) | {src}[0];"
    words = (width + 31) // 32
    return "\n".join(f"{indent}top->{name}[{i}] = {src}[{i}];" for i in range(words))


def _dump_port(name: str, width: int, indent: str) -> str:
    """C++ appending the port's value (hex, after a space) to the string ``row``."""
    if width <= 64:
        return f'{indent}put_hex(row, (unsigned long long)top->{name});'
    words = (width + 31) // 32
    parts = [f'{indent}row += " ";']
    for i in reversed(range(words)):
        parts.append(f'{indent}put_word(row, (unsigned)top->{name}[{i}]);')
    return "\n".join(parts)


# Verilator's own optimisation level: -O3, but -O0 for sources over this many bytes.  Its
# front end is superlinear at -O3 on the multi-MB adder modules of binarized layers (the demo's
# bit-plane binarized CNN, 5.9 MB: over 7 CPU-min without writing any C++; at -O0 it verilates
# in 2.2 CPU-min, builds in about 9 and simulates 1000 images, 0 mismatches, at 8.6
# images/s).
BIG_SOURCES = 2_000_000

_TRACE = {  # waveform format -> (header, class, verilator flag)
    "vcd": ("verilated_vcd_c.h", "VerilatedVcdC", "--trace"),
    "fst": ("verilated_fst_c.h", "VerilatedFstC", "--trace-fst"),
}


def _trace_parts(waves: str | None) -> dict[str, str]:
    """Harness snippets: without ``waves`` DUMP() is empty; with "vcd" / "fst" the harness
    dumps every signal after each eval (two time steps per clock) to argv[12]."""
    if waves is None:
        return {"trace_include": "#define DUMP()", "trace_open": "", "trace_close": ""}
    header, cls = _TRACE[waves][:2]
    return {
        "trace_include": f'#include "{header}"\n#define DUMP() tfp->dump(t_trace++)',
        "trace_open": (f"    Verilated::traceEverOn(true);\n    {cls}* tfp = new {cls};\n"
                       "    uint64_t t_trace = 0;\n    top->trace(tfp, 99);\n"
                       "    tfp->open(argc > 12 ? argv[12] : \"waves\");"),
        "trace_close": "\n    tfp->close();",
    }


def harness_cpp(top: str, ports: dict[str, Any], waves: str | None = None) -> str:
    """The C++ main() for ``top``; ``waves`` ("vcd" / "fst" / None) adds tracing."""
    w_in = ports["s_tdata"]["width"]
    stream = ports["mode"] == "stream"
    dump = "\n".join(_dump_port(o["port"], o["elems"] * o["elem_width"], " " * 12)
                     for o in ports["outputs"])
    return HARNESS.substitute(
        top=top, in_words=max(2, (w_in + 31) // 32),
        set_data=_set_port("s_tdata", w_in, "w", " " * 12),
        set_last=" top->s_tlast = lasts[k];" if stream else "",
        set_last0=" top->s_tlast = 0;" if stream else "",
        dump=dump, **_trace_parts(waves))


def _compiled(line: str) -> str | None:
    """Progress note for a line of the build's output: the C++ file being compiled."""
    f = line.split()
    if f and f[0].endswith(("g++", "c++", "clang++", "ccache")) and "-c" in f:
        return f"compiling {Path(f[-1]).name}"
    return None


def build(export_dir: str | Path, top: str, ports: dict[str, Any], build_dir: str | Path,
          jobs: int | None = None, opt: str = "-O0", waves: str | None = None,
          progress: bool = True) -> tuple[Path, bool]:
    """Compile the export with the harness; returns (the executable, whether it was already
    built).  Rebuilds only when the sources, the harness or ``waves`` changed; shows the
    build's progress (the file being compiled, elapsed time) while it runs."""
    if shutil.which("verilator") is None:
        raise FileNotFoundError("verilator not found on PATH")
    export_dir, build_dir = Path(export_dir).resolve(), Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    srcs = sorted(p for p in export_dir.glob("*.v"))
    cpp = harness_cpp(top, ports, waves)
    h = hashlib.sha256(cpp.encode())
    size = sum(p.stat().st_size for p in srcs)
    for p in srcs:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    stamp = build_dir / "stamp"
    exe = build_dir / "obj_dir" / f"V{top}"
    if exe.exists() and stamp.exists() and stamp.read_text() == h.hexdigest():
        return exe, True
    stamp.unlink(missing_ok=True)
    (build_dir / "harness.cpp").write_text(cpp)
    jobs = jobs or max(1, os.cpu_count() or 1)
    trace = [_TRACE[waves][2]] if waves else []
    cmd = ["verilator", "--cc", "--exe", "--build", "-j", str(jobs), "-Wno-fatal",
           "--top-module", top, "-O0" if size > BIG_SOURCES else "-O3",
           "--x-assign", "fast", "--x-initial", "fast",
           "--output-split", "20000", "--output-split-cfuncs", "500", *trace,
           "-CFLAGS", opt, "-Mdir", str(build_dir / "obj_dir"),
           str(build_dir / "harness.cpp")] + [str(p) for p in srcs]
    rc, log = run_streaming(cmd, f"verilator: building {top}", progress, cwd=build_dir,
                            note=_compiled, first_note="verilating (Verilog -> C++)")
    if rc != 0:
        raise RuntimeError(f"verilator build failed:\n{log[-6000:]}")
    stamp.write_text(h.hexdigest())
    return exe, False


def run(exe: Path, beats: list[tuple[int, int]], n_results: int, work: Path,
        max_cycles: int = 100_000_000, waves: Path | None = None,
        progress: bool = True, plan: Plan | None = None) -> dict[str, Any]:
    """Run the harness (built with waves when ``waves`` is given: the file to write) under
    the handshake ``plan`` (default: all results with ``m_tready`` held 1, the host back to
    back); returns raw results, cycle count, the handshake counters and wall time."""
    work.mkdir(parents=True, exist_ok=True)
    fin, fout = work / "in.txt", work / "out.txt"
    fin.write_text("".join(f"{d:x} {l}\n" for d, l in beats))
    plan = plan or Plan(n_results, len(beats))
    args = [str(exe), str(fin), str(fout), str(n_results), str(max_cycles),
            *plan.harness_args()]
    if waves is not None:
        args.append(str(Path(waves).resolve()))
    t0 = time.perf_counter()
    with activity(f"verilator: simulating {n_results} vectors", progress):
        r = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    return parse_output(fout.read_text(), r.returncode, r.stderr, wall)


def parse_output(text: str, rc: int, stderr: str, wall: float) -> dict[str, Any]:
    rows, cycles, info = [], [], {}
    for line in text.splitlines():
        if line.startswith("#"):
            f = line[1:].split()
            info = {f[i]: int(f[i + 1]) for i in range(0, len(f) - 1, 2)}
            continue
        f = line.split()
        cycles.append(int(f[0]))
        rows.append([int(v, 16) for v in f[1:]])
    return {"rows": rows, "out_cycles": cycles, "info": info, "rc": rc, "stderr": stderr[-2000:],
            "wall_s": wall}
