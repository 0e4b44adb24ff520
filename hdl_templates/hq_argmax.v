// heatq primitive: argmax.  Element k is x[k*W +: W], two's complement when SIGNED != 0, else
// unsigned; the output is the index of the largest element, ties to the lowest index (a later
// element replaces the running maximum only when strictly larger); one register stage.
// Signed values are compared unsigned with their sign bit inverted (the same order).
`default_nettype none
module hq_argmax #(
    parameter K      = 10,
    parameter W      = 8,
    parameter SIGNED = 0,
    parameter IW     = 4
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           in_valid,
    input  wire [K*W-1:0] x,
    output reg            out_valid,
    output reg [IW-1:0]   cls
);
    localparam [0:0] SB = (SIGNED != 0);
    reg [W-1:0] v, m;
    reg [IW-1:0] best;
    integer k;
    always @* begin
        best = {IW{1'b0}};
        m = x[W-1:0];
        m[W-1] = m[W-1] ^ SB;
        for (k = 1; k < K; k = k + 1) begin
            v = x[k*W +: W];
            v[W-1] = v[W-1] ^ SB;
            if (v > m) begin
                best = k[IW-1:0];
                m = v;
            end
        end
    end
    always @(posedge clk) begin
        out_valid <= !rst && in_valid;
        cls <= best;
    end
endmodule
`default_nettype wire
