"""A plain Verilog test bench that applies one input vector per clock from a hex file and
prints the output bus (hex) every clock: for combinational or fixed-latency pipelined
modules whose whole input is one bus ``x`` and whole output one bus ``y`` (the layer modules
of ``heatq_export.verilog_layers``, and other generators' CMVM modules in the bench).
The caller aligns the printed lines with the expected outputs (latency = line offset)."""

from __future__ import annotations

from pathlib import Path
from string import Template

_TB = Template("""`timescale 1ns/1ps
module tb;
    reg clk = 1'b0;
    reg [${nx1}:0] x;
    wire [${ny1}:0] y;
    reg [${nx1}:0] mem [0:${n1}];
    integer i, f;
    ${top} dut (${conn});
    initial begin
        $$readmemh("${inp}", mem);
        f = $$fopen("${out}", "w");
        for (i = 0; i < ${steps}; i = i + 1) begin
            x = mem[i < ${n} ? i : ${n1}];
            #1 $$fdisplay(f, "%h", y);
            clk = 1'b1; #1 clk = 1'b0; #1;
        end
        $$fclose(f);
        $$finish;
    end
endmodule
""")


def vector_tb(top: str, conn: str, nx: int, ny: int, n: int, steps: int, inp: Path,
              out: Path) -> str:
    """Test bench source: ``top`` instantiated with port list ``conn`` (using ``clk``, the
    ``nx``-bit input bus ``x`` and the ``ny``-bit output bus ``y``), reading ``n`` vectors
    from ``inp`` ($readmemh), holding the last one, and writing ``steps`` lines of ``y`` to
    ``out``."""
    return _TB.substitute(nx1=nx - 1, ny1=ny - 1, n1=n - 1, n=n, top=top, conn=conn,
                          inp=inp, out=out, steps=steps)
