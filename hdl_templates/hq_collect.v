// heatq primitive: FLATTEN of a [C, H, W] raster stream (N = H*W valid-only pixel tokens of
// C channels x DW bits) into one vector in C order: element c*N + p at bits
// [(c*N + p)*DW +: DW].  out_valid pulses one cycle after the image's last pixel.
`default_nettype none
module hq_collect #(
    parameter C  = 1,
    parameter DW = 4,
    parameter N  = 1,
    parameter NW = 1
) (
    input  wire            clk,
    input  wire            rst,
    input  wire            in_valid,
    input  wire [C*DW-1:0] in_data,
    output reg             out_valid,
    output wire [N*C*DW-1:0] out_data
);
    reg [N*C*DW-1:0] sr;
    reg [NW-1:0] cnt;
    localparam integer I_LAST = N - 1;
    localparam [NW-1:0] LAST = I_LAST[NW-1:0];
    generate
        if (N == 1) begin : g_one
            always @(posedge clk) if (in_valid) sr <= in_data;
        end else begin : g_many
            always @(posedge clk) if (in_valid) sr <= {sr[(N-1)*C*DW-1:0], in_data};
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
    genvar ch, p;
    generate
        for (ch = 0; ch < C; ch = ch + 1) begin : g_c
            for (p = 0; p < N; p = p + 1) begin : g_p
                assign out_data[(ch*N + p)*DW +: DW] = sr[((N-1-p)*C + ch)*DW +: DW];
            end
        end
    endgenerate
endmodule
`default_nettype wire
