// heatq primitive: DEPTH-cycle delay line for valid bits, cleared by a synchronous reset.
`default_nettype none
module hq_vdelay #(
    parameter DEPTH = 1
) (
    input  wire clk,
    input  wire rst,
    input  wire d,
    output wire q
);
    reg [DEPTH-1:0] sr;
    generate
        if (DEPTH == 1) begin : g_one
            always @(posedge clk) sr <= rst ? 1'b0 : d;
        end else begin : g_many
            always @(posedge clk) sr <= rst ? {DEPTH{1'b0}} : {sr[DEPTH-2:0], d};
        end
    endgenerate
    assign q = sr[DEPTH-1];
endmodule
`default_nettype wire
