// heatq primitive: GLOBAL_AVGPOOL's sum of a [C, H, W] raster stream of N = H*W valid-only
// pixel tokens, C channels of AW bits each (already extended to the sum's width: the sum
// of the image lies in AW bits, so adding modulo 2**AW is exact).  Channel c's sum of one
// image is out_data[c*AW +: AW], valid (out_valid) one cycle after the image's last token
// and held until the next image's first token.
`default_nettype none
module hq_gap #(
    parameter C  = 1,
    parameter AW = 8,
    parameter N  = 1,
    parameter NW = 1
) (
    input  wire            clk,
    input  wire            rst,
    input  wire            in_valid,
    input  wire [C*AW-1:0] in_data,
    output reg             out_valid,
    output reg  [C*AW-1:0] out_data
);
    reg [NW-1:0] cnt;
    localparam integer I_LAST = N - 1;
    localparam [NW-1:0] LAST = I_LAST[NW-1:0];
    wire first = (cnt == {NW{1'b0}});
    genvar ch;
    generate
        for (ch = 0; ch < C; ch = ch + 1) begin : g_c
            wire [AW-1:0] acc = first ? {AW{1'b0}} : out_data[ch*AW +: AW];
            always @(posedge clk) if (in_valid) out_data[ch*AW +: AW] <= acc + in_data[ch*AW +: AW];
        end
    endgenerate
    always @(posedge clk) begin
        if (rst) begin
            cnt <= {NW{1'b0}};
            out_valid <= 1'b0;
        end else begin
            out_valid <= in_valid && (cnt == LAST);
            if (in_valid) cnt <= (cnt == LAST) ? {NW{1'b0}} : cnt + 1'b1;
        end
    end
endmodule
`default_nettype wire
