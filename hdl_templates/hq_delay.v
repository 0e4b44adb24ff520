// heatq primitive: DEPTH-cycle delay line for data (no reset).  DEPTH >= 1.
`default_nettype none
module hq_delay #(
    parameter WIDTH = 1,
    parameter DEPTH = 1
) (
    input  wire             clk,
    input  wire [WIDTH-1:0] d,
    output wire [WIDTH-1:0] q
);
    reg [WIDTH*DEPTH-1:0] sr;
    generate
        if (DEPTH == 1) begin : g_one
            always @(posedge clk) sr <= d;
        end else begin : g_many
            always @(posedge clk) sr <= {sr[WIDTH*(DEPTH-1)-1:0], d};
        end
    endgenerate
    assign q = sr[WIDTH*DEPTH-1 -: WIDTH];
endmodule
`default_nettype wire
