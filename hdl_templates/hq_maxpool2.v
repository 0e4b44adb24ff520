// heatq primitive: streaming 2x2 / stride-2 max pooling (floor mode) of C channels of DW
// bits over an H x W raster of valid-only tokens.  A row buffer keeps the even row's
// pair maxima; each odd-row, odd-column token emits one pooled pixel (registered).
`default_nettype none
module hq_maxpool2 #(
    parameter C  = 1,
    parameter DW = 4,
    parameter H  = 28,
    parameter W  = 28,
    parameter RW = 5,
    parameter CW = 5,
    parameter SIGNED = 0
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          in_valid,
    input  wire [C*DW-1:0] in_data,
    output reg           out_valid,
    output reg [C*DW-1:0] out_data
);
    localparam WO = W / 2;
    localparam integer I_REND = H - 1, I_CEND = W - 1;
    localparam [RW-1:0] R_END = I_REND[RW-1:0];
    localparam [CW-1:0] C_END = I_CEND[CW-1:0];
    reg [RW-1:0] r;
    reg [CW-1:0] c;
    reg [C*DW-1:0] hold;
    reg [WO*C*DW-1:0] rowbuf;
    wire [C*DW-1:0] top = rowbuf[WO*C*DW-1 -: C*DW];
    wire [C*DW-1:0] pm, m4;
    genvar i;
    generate
        for (i = 0; i < C; i = i + 1) begin : g_ch
            wire [DW-1:0] a = hold[i*DW +: DW];
            wire [DW-1:0] b = in_data[i*DW +: DW];
            wire [DW-1:0] u = top[i*DW +: DW];
            wire gt_ab, gt_up;
            if (SIGNED != 0) begin : g_s
                assign gt_ab = $signed(a) > $signed(b);
                assign gt_up = $signed(u) > $signed(pm[i*DW +: DW]);
            end else begin : g_u
                assign gt_ab = a > b;
                assign gt_up = u > pm[i*DW +: DW];
            end
            assign pm[i*DW +: DW] = gt_ab ? a : b;
            assign m4[i*DW +: DW] = gt_up ? u : pm[i*DW +: DW];
        end
    endgenerate
    generate
        if (WO == 1) begin : g_one
            always @(posedge clk) if (in_valid && c[0]) rowbuf <= pm;
        end else begin : g_many
            always @(posedge clk) if (in_valid && c[0]) rowbuf <= {rowbuf[(WO-1)*C*DW-1:0], pm};
        end
    endgenerate
    always @(posedge clk) begin
        if (in_valid && !c[0]) hold <= in_data;
        out_data <= m4;
    end
    always @(posedge clk) begin
        if (rst) begin
            r <= {RW{1'b0}};
            c <= {CW{1'b0}};
            out_valid <= 1'b0;
        end else begin
            out_valid <= in_valid && r[0] && c[0];
            if (in_valid) begin
                if (c == C_END) begin
                    c <= {CW{1'b0}};
                    r <= (r == R_END) ? {RW{1'b0}} : r + 1'b1;
                end else begin
                    c <= c + 1'b1;
                end
            end
        end
    end
endmodule
`default_nettype wire
