// heatq primitive: Hamming decoder.  Class k's codeword is CB[k*L +: L]; the output is the
// class with the fewest differing bits (XOR + popcount), ties to the lowest index; one
// register stage.
`default_nettype none
module hq_hamming #(
    parameter L  = 15,
    parameter K  = 10,
    parameter DW = 4,
    parameter IW = 4,
    parameter [K*L-1:0] CB = {K*L{1'b0}}
) (
    input  wire          clk,
    input  wire          rst,
    input  wire          in_valid,
    input  wire [L-1:0]  bits,
    output reg           out_valid,
    output reg [IW-1:0]  cls
);
    reg [DW-1:0] d, best_d;
    reg [IW-1:0] best;
    reg [L-1:0] x;
    integer k, i;
    always @* begin
        best = {IW{1'b0}};
        best_d = {DW{1'b1}};
        for (k = 0; k < K; k = k + 1) begin
            x = bits ^ CB[k*L +: L];
            d = {DW{1'b0}};
            for (i = 0; i < L; i = i + 1) d = d + {{(DW-1){1'b0}}, x[i]};
            if (k == 0 || d < best_d) begin
                best = k[IW-1:0];
                best_d = d;
            end
        end
    end
    always @(posedge clk) begin
        out_valid <= !rst && in_valid;
        cls <= best;
    end
endmodule
`default_nettype wire
