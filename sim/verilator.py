"""Verilator fast path: a generated C++ harness for ``verilator --cc --exe --build``.

Debian's Verilator 5.006 is too old for cocotb 2.x's Verilator support (cocotb needs
>= 5.036), so instead of cocotb this path compiles the design with a small generated
``main()`` that reads input beats from a text file (``<tdata hex> <tlast>`` per line),
drives the AXI-Stream-like port back to back honouring ``s_tready``, and writes one line
per ``m_tvalid`` (``<cycle> <port hex> ...``).  Port values are sampled at the rising edge,
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

int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    if (argc < 4) { fprintf(stderr, "usage: %s IN OUT N_RESULTS [MAX_CYCLES]\n", argv[0]); return 2; }
    FILE* fi = fopen(argv[1], "r");
    FILE* fo = fopen(argv[2], "w");
    long want = atol(argv[3]);
    long max_cycles = argc > 4 ? atol(argv[4]) : 100000000L;
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
    top->clk = 0; top->rst = 1; top->s_tvalid = 0;$set_last0
    top->eval(); DUMP();
    for (int i = 0; i < 4; i++) {
        top->clk = 1; top->eval(); DUMP(); top->clk = 0; top->eval(); DUMP();
    }
    top->rst = 0;
    size_t k = 0;
    auto drive = [&]() {
        if (k < beats.size()) {
            const std::vector<uint32_t>& w = beats[k];
$set_data
            top->s_tvalid = 1;$set_last
        } else {
            top->s_tvalid = 0;
        }
    };
    drive();
    top->eval();
    long results = 0, cyc = 0, first_accept = -1;
    while (results < want && cyc < max_cycles) {
        bool fire = top->s_tvalid && top->s_tready;
        bool outv = top->m_tvalid;
        if (fire && first_accept < 0) first_accept = cyc;
        if (outv) {
            fprintf(fo, "%ld", cyc);
$dump
            fprintf(fo, "\n");
            results++;
        }
        if (top->err) { fprintf(stderr, "err flag set at cycle %ld\n", cyc); }
        top->clk = 1; top->eval(); DUMP();
        if (fire) { k++; drive(); }
        top->clk = 0; top->eval(); DUMP();
        cyc++;
    }
    fprintf(fo, "# cycles %ld first_accept %ld err %d\n", cyc, first_accept, (int)top->err);
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
    if width <= 64:
        return f'{indent}fprintf(fo, " %llx", (unsigned long long)top->{name});'
    words = (width + 31) // 32
    parts = [f'{indent}fprintf(fo, " ");']
    for i in reversed(range(words)):
        parts.append(f'{indent}fprintf(fo, "%08x", (unsigned)top->{name}[{i}]);')
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
    dumps every signal after each eval (two time steps per clock) to argv[5]."""
    if waves is None:
        return {"trace_include": "#define DUMP()", "trace_open": "", "trace_close": ""}
    header, cls = _TRACE[waves][:2]
    return {
        "trace_include": f'#include "{header}"\n#define DUMP() tfp->dump(t_trace++)',
        "trace_open": (f"    Verilated::traceEverOn(true);\n    {cls}* tfp = new {cls};\n"
                       "    uint64_t t_trace = 0;\n    top->trace(tfp, 99);\n"
                       "    tfp->open(argc > 5 ? argv[5] : \"waves\");"),
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
        progress: bool = True) -> dict[str, Any]:
    """Run the harness (built with waves when ``waves`` is given: the file to write);
    returns raw results, cycle count and wall time."""
    work.mkdir(parents=True, exist_ok=True)
    fin, fout = work / "in.txt", work / "out.txt"
    fin.write_text("".join(f"{d:x} {l}\n" for d, l in beats))
    args = [str(exe), str(fin), str(fout), str(n_results), str(max_cycles)]
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
