// heatq primitive: the walk of a padded (H+2P) x (W+2P) raster, one position per step, shared
// by hq_window (which shifts a pixel in at every step) and hq_pace (which only paces the host).
// A padding position steps at once; a real position (real_px) waits for in_valid, and in_ready
// is high exactly there.  row / col are the padded position before the step.  With USE_LAST,
// in_last must mark each image's last pixel, else the sticky `err` is set.  GAP > 1 (GW bits:
// ceil(log2(GAP))): a step from a gapped position -- row, col >= GK, the positions after which
// a K x K window (GK = K-1) is complete -- at most every GAP cycles, the other steps at once
// (the walk of a folded layer's window: its module takes one window every GAP cycles); GK = 0:
// every step gapped.  A real position that waited for its pixel steps as soon as it comes.
`default_nettype none
module hq_raster #(
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
    input  wire          clk,
    input  wire          rst,
    input  wire          in_valid,
    output wire          in_ready,
    input  wire          in_last,
    output wire          step,
    output wire          real_px,
    output reg  [RW-1:0] row,
    output reg  [CW-1:0] col,
    output reg           err
);
    localparam HP  = H + 2 * P;
    localparam WP  = W + 2 * P;
    localparam integer I_RHI = P + H - 1, I_REND = HP - 1, I_CHI = P + W - 1, I_CEND = WP - 1;
    localparam integer I_P = P;
    localparam [RW-1:0] R_LO = I_P[RW-1:0], R_HI = I_RHI[RW-1:0], R_END = I_REND[RW-1:0];
    localparam [CW-1:0] C_LO = I_P[CW-1:0], C_HI = I_CHI[CW-1:0], C_END = I_CEND[CW-1:0];
    wire row_in, col_in;
    generate
        if (P == 0) begin : g_nopad
            assign row_in = 1'b1;
            assign col_in = 1'b1;
        end else begin : g_pad
            assign row_in = (row >= R_LO) && (row <= R_HI);
            assign col_in = (col >= C_LO) && (col <= C_HI);
        end
    endgenerate
    wire last_px = (row == R_HI) && (col == C_HI);
    assign real_px  = row_in && col_in;
    wire gap_ok;
    generate
        if (GAP <= 1) begin : g_nogap
            assign gap_ok = 1'b1;
        end else begin : g_gap
            localparam integer I_G = GAP - 1, I_GK = GK;
            localparam [GW-1:0] G_LAST = I_G[GW-1:0];
            localparam [RW-1:0] R_GK = I_GK[RW-1:0];
            localparam [CW-1:0] C_GK = I_GK[CW-1:0];
            wire gapped;
            reg [GW-1:0] gap_cnt;
            if (GK == 0) begin : g_all
                assign gapped = 1'b1;
            end else begin : g_win
                assign gapped = (row >= R_GK) && (col >= C_GK);
            end
            always @(posedge clk) begin
                if (rst) gap_cnt <= {GW{1'b0}};
                else if (step && gapped) gap_cnt <= G_LAST;
                else if (gap_cnt != {GW{1'b0}}) gap_cnt <= gap_cnt - 1'b1;
            end
            assign gap_ok = !gapped || (gap_cnt == {GW{1'b0}});
        end
    endgenerate
    assign step     = !rst && gap_ok && (!real_px || in_valid);
    assign in_ready = real_px && !rst && gap_ok;
    always @(posedge clk) begin
        if (rst) begin
            row <= {RW{1'b0}};
            col <= {CW{1'b0}};
        end else if (step) begin
            if (col == C_END) begin
                col <= {CW{1'b0}};
                row <= (row == R_END) ? {RW{1'b0}} : row + 1'b1;
            end else begin
                col <= col + 1'b1;
            end
        end
    end
    generate
        if (USE_LAST != 0) begin : g_last
            always @(posedge clk) begin
                if (rst) err <= 1'b0;
                else if (in_valid && real_px && (in_last != last_px)) err <= 1'b1;
            end
        end else begin : g_nolast
            wire unused_last = in_last & last_px;
            always @(posedge clk) err <= 1'b0;
        end
    endgenerate
endmodule
`default_nettype wire
