"""Test helpers shared by the test files.

``require_tool(name)``: a test that needs an external tool (a compiler, a simulator, yosys)
calls it first.  Outside CI a missing tool skips the test with the reason; in CI
(``CI=true``, where every tool is installed) it fails the test, so nothing skips silently there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def in_ci() -> bool:
    """True when the environment says it is CI (``CI=true``, as GitHub Actions and GitLab set)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_tool(name: str, why: str = "") -> str:
    """The path of executable ``name`` on PATH; if it is missing, fail the test in CI and skip
    it elsewhere, saying which tool is missing (and ``why`` it is needed, if given)."""
    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"{name} not found on PATH" + (f" (needed for {why})" if why else "")
    if in_ci():
        pytest.fail(f"{reason}; CI=true, so every tool must be installed", pytrace=False)
    pytest.skip(reason)


def demo_run(name: str = "run") -> Path:
    """A run directory of make demo's output: ``$HEATQ_DEMO_OUT/<name>`` when the variable is
    set, else ``<repo>/heatq-out/<name>``.  Missing: skip the test (fail it in CI), saying so."""
    base = os.environ.get("HEATQ_DEMO_OUT") or Path(__file__).resolve().parents[1] / "heatq-out"
    run = Path(base) / name
    if not (run / "model.ir.json").is_file():
        reason = f"{run} not there (run make demo first, or set HEATQ_DEMO_OUT)"
        if in_ci():
            pytest.fail(f"{reason}; CI=true", pytrace=False)
        pytest.skip(reason)
    return run


def needs(*names: str) -> pytest.MarkDecorator:
    """Mark a test (or a module, as ``pytestmark``) that needs the executables ``names``; the
    check is :func:`require_tool`, run by ``conftest.py`` before the test's fixtures."""
    return pytest.mark.needs_tool(*names)


# A cycle-by-cycle bench for one layer module: row t of in.hex drives {rst, in_valid, x} in
# cycle t; each cycle's out_valid and y are written out before the clock edge.
FOLDED_TB = """`timescale 1ns/1ps
module tb;
    reg clk = 1'b0;
    reg [{nc}:0] ctl_x;
    wire out_valid;
    wire [{ny1}:0] y;
    reg [{nc}:0] mem [0:{n1}];
    integer i, f;
    dut_m dut (.clk(clk), .rst(ctl_x[{nc}]), .in_valid(ctl_x[{niv}]), .x(ctl_x[{nx1}:0]),
               .out_valid(out_valid), .y(y));
    initial begin
        $readmemh("{inp}", mem);
        f = $fopen("{out}", "w");
        for (i = 0; i < {n}; i = i + 1) begin
            ctl_x = mem[i];
            #1 $fdisplay(f, "%b %h", out_valid, y);
            clk = 1'b1; #1 clk = 1'b0; #1;
        end
        $fclose(f);
        $finish;
    end
endmodule
"""


def check_folded_module(tmp: Path, text: str, lat: int, X, want, offs: list[int], in_width: int,
                        nx: int, out_type, starts: list[int], rng) -> None:
    """Simulate the layer module ``text`` (named ``dut_m``) in Icarus: input vector ``X[k]``
    (fields ``in_width`` bits at ``offs``) with ``in_valid`` in cycle ``starts[k]``, random
    garbage on ``x`` in every other cycle (the module must read ``x`` only at ``in_valid``),
    reset in cycle 0; asserts ``out_valid`` exactly ``lat`` cycles after each ``in_valid``
    and nowhere else, ``y`` equal to ``want[k]`` then (``out_type``: the outputs' IntType),
    and ``y`` held between results."""
    n_cyc = starts[-1] + lat + 3
    rows = [1 << (nx + 1)] + [0] * (n_cyc - 1)
    for k, t in enumerate(starts):
        packed = sum((int(a) & ((1 << in_width) - 1)) << o for a, o in zip(X[k], offs))
        rows[t] = (1 << nx) | packed
    for t in range(n_cyc):
        if not rows[t] >> nx:
            rows[t] |= int(rng.integers(0, 1 << min(nx, 62)))
    n_out, w = len(want[0]), out_type.width
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "dut_m.v").write_text(text)
    (tmp / "in.hex").write_text("".join(f"{r:x}\n" for r in rows))
    (tmp / "tb.v").write_text(FOLDED_TB.format(nc=nx + 1, niv=nx, nx1=nx - 1, ny1=n_out * w - 1,
                                               n1=n_cyc - 1, n=n_cyc, inp=tmp / "in.hex",
                                               out=tmp / "out.txt"))
    r = subprocess.run(["iverilog", "-g2001", "-o", str(tmp / "a.vvp"), str(tmp / "tb.v"),
                        str(tmp / "dut_m.v")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    subprocess.run(["vvp", "-n", str(tmp / "a.vvp")], check=True, capture_output=True)
    lines = (tmp / "out.txt").read_text().split("\n")
    done = {t + lat: k for k, t in enumerate(starts)}
    held = None
    for t in range(1, n_cyc):
        ov, yv = lines[t].split()
        assert ov == ("1" if t in done else "0"), (t, ov, sorted(done))
        if t in done:
            val = int(yv, 16)
            got = [(val >> (j * w)) & ((1 << w) - 1) for j in range(n_out)]
            got = [e - (1 << w) if out_type.signed and e >> (w - 1) else e for e in got]
            assert got == [int(a) for a in want[done[t]]], (done[t], got, list(want[done[t]]))
            held = yv
        elif held is not None:
            assert yv == held, f"y changed in cycle {t} without out_valid"
