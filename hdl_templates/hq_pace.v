// heatq primitive: paces the host's raster stream to the walk of a window unit further down
// a valid-only pipeline.  It walks the padded (H+2P) x (W+2P) raster exactly like hq_window
// (both are hq_raster): in_ready is high exactly at real positions, so pixels are accepted no
// faster than that window will take them and the FIFO in front of it stays bounded.  With
// USE_LAST, in_last must mark each image's last pixel, else the sticky `err` is set.  GAP / GK:
// the window's step gap (hq_raster), so the host is paced to that walk too.
`default_nettype none
module hq_pace #(
    parameter H  = 28,
    parameter W  = 28,
    parameter P  = 1,
    parameter RW = 5,
    parameter CW = 5,
    parameter USE_LAST = 1,
    parameter GAP = 1,
    parameter GW  = 1,
    parameter GK  = 0
) (
    input  wire clk,
    input  wire rst,
    input  wire in_valid,
    output wire in_ready,
    input  wire in_last,
    output wire err
);
    wire          step, real_px;
    wire [RW-1:0] row;
    wire [CW-1:0] col;
    hq_raster #(.H(H), .W(W), .P(P), .RW(RW), .CW(CW), .USE_LAST(USE_LAST),
                .GAP(GAP), .GW(GW), .GK(GK)) u_raster (
        .clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_last(in_last),
        .step(step), .real_px(real_px), .row(row), .col(col), .err(err));
    wire unused_ok = &{1'b0, step, real_px, row, col};
endmodule
`default_nettype wire
