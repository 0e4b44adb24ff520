// heatq primitive: synchronous FIFO, 2**AW entries, first-word fall-through.
// A push into a full FIFO is dropped and sets the sticky `overflow` flag.
`default_nettype none
module hq_fifo #(
    parameter WIDTH = 8,
    parameter AW    = 4
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             in_valid,
    input  wire [WIDTH-1:0] in_data,
    output wire             out_valid,
    input  wire             out_ready,
    output wire [WIDTH-1:0] out_data,
    output reg              overflow
);
    reg [WIDTH-1:0] mem [0:(1<<AW)-1];
    reg [AW:0] wp, rp;
    wire empty = (wp == rp);
    wire full  = (wp[AW] != rp[AW]) && (wp[AW-1:0] == rp[AW-1:0]);
    wire push  = in_valid && !full;
    wire pop   = out_ready && !empty;
    assign out_valid = !empty;
    assign out_data  = mem[rp[AW-1:0]];
    always @(posedge clk) if (push) mem[wp[AW-1:0]] <= in_data;
    always @(posedge clk) begin
        if (rst) begin
            wp <= {(AW+1){1'b0}};
            rp <= {(AW+1){1'b0}};
            overflow <= 1'b0;
        end else begin
            if (push) wp <= wp + 1'b1;
            if (pop) rp <= rp + 1'b1;
            if (in_valid && full) overflow <= 1'b1;
        end
    end
endmodule
`default_nettype wire
