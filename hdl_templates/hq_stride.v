// heatq primitive: keeps the windows of a strided convolution.  The window unit (hq_window)
// makes the stride-1 windows of an HO x WO grid, one in_valid token each, in raster order;
// out_valid is in_valid at the windows whose row and column are multiples of S (the same
// cycle: the window data passes by), so the layer module sees the ((HO-1)/S+1) x
// ((WO-1)/S+1) output raster.  RW / CW / SW: counter bits for HO, WO and S.
`default_nettype none
module hq_stride #(
    parameter HO = 8,
    parameter WO = 8,
    parameter S  = 2,
    parameter RW = 3,
    parameter CW = 3,
    parameter SW = 1
) (
    input  wire clk,
    input  wire rst,
    input  wire in_valid,
    output wire out_valid
);
    localparam integer I_REND = HO - 1, I_CEND = WO - 1, I_SEND = S - 1;
    localparam [RW-1:0] R_END = I_REND[RW-1:0];
    localparam [CW-1:0] C_END = I_CEND[CW-1:0];
    localparam [SW-1:0] S_END = I_SEND[SW-1:0];
    reg [RW-1:0] r;
    reg [CW-1:0] c;
    reg [SW-1:0] rs, cs;  // r mod S, c mod S
    assign out_valid = in_valid && (rs == {SW{1'b0}}) && (cs == {SW{1'b0}});
    always @(posedge clk) begin
        if (rst) begin
            r <= {RW{1'b0}};
            c <= {CW{1'b0}};
            rs <= {SW{1'b0}};
            cs <= {SW{1'b0}};
        end else if (in_valid) begin
            if (c == C_END) begin
                c <= {CW{1'b0}};
                cs <= {SW{1'b0}};
                if (r == R_END) begin
                    r <= {RW{1'b0}};
                    rs <= {SW{1'b0}};
                end else begin
                    r <= r + 1'b1;
                    rs <= (rs == S_END) ? {SW{1'b0}} : rs + 1'b1;
                end
            end else begin
                c <= c + 1'b1;
                cs <= (cs == S_END) ? {SW{1'b0}} : cs + 1'b1;
            end
        end
    end
endmodule
`default_nettype wire
