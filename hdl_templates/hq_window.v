// heatq primitive: K x K window over a raster pixel stream with 'same' zero padding P.
// The unit walks the padded (H+2P) x (W+2P) raster one position per step: a padding
// position steps at once with a zero pixel, a real position waits for in_valid (in_ready
// is high exactly there).  After a step at padded (r, c) with r, c >= K-1, win_valid is high
// for one cycle and win holds the window of output pixel (r-K+1, c-K+1): tap t = kh*K + kw
// at bits [t*PW +: PW].  With USE_LAST, in_last must mark each image's last pixel, else the
// sticky `err` is set.
`default_nettype none
module hq_window #(
    parameter PW = 1,
    parameter H  = 28,
    parameter W  = 28,
    parameter K  = 3,
    parameter P  = 1,
    parameter RW = 5,
    parameter CW = 5,
    parameter USE_LAST = 1
) (
    input  wire              clk,
    input  wire              rst,
    input  wire              in_valid,
    output wire              in_ready,
    input  wire [PW-1:0]     in_data,
    input  wire              in_last,
    output reg               win_valid,
    output wire [K*K*PW-1:0] win,
    output reg               err
);
    localparam HP  = H + 2 * P;
    localparam WP  = W + 2 * P;
    localparam LEN = (K - 1) * WP + K;
    localparam integer I_RHI = P + H - 1, I_REND = HP - 1, I_CHI = P + W - 1, I_CEND = WP - 1;
    localparam integer I_P = P, I_K = K - 1;
    localparam [RW-1:0] R_LO = I_P[RW-1:0], R_HI = I_RHI[RW-1:0], R_END = I_REND[RW-1:0];
    localparam [RW-1:0] R_K = I_K[RW-1:0];
    localparam [CW-1:0] C_LO = I_P[CW-1:0], C_HI = I_CHI[CW-1:0], C_END = I_CEND[CW-1:0];
    localparam [CW-1:0] C_K = I_K[CW-1:0];
    reg [RW-1:0] pr;
    reg [CW-1:0] pc;
    reg [LEN*PW-1:0] sr;
    wire row_in, col_in, full_win;
    generate
        if (P == 0) begin : g_nopad
            assign row_in = 1'b1;
            assign col_in = 1'b1;
        end else begin : g_pad
            assign row_in = (pr >= R_LO) && (pr <= R_HI);
            assign col_in = (pc >= C_LO) && (pc <= C_HI);
        end
        if (K == 1) begin : g_k1
            assign full_win = 1'b1;
        end else begin : g_kn
            assign full_win = (pr >= R_K) && (pc >= C_K);
        end
    endgenerate
    wire real_px = row_in && col_in;
    wire step    = !rst && (!real_px || in_valid);
    wire last_px = (pr == R_HI) && (pc == C_HI);
    wire [PW-1:0] px = real_px ? in_data : {PW{1'b0}};
    assign in_ready = real_px && !rst;
    generate
        if (LEN == 1) begin : g_sr1
            always @(posedge clk) if (step) sr <= px;
        end else begin : g_srn
            always @(posedge clk) if (step) sr <= {sr[(LEN-1)*PW-1:0], px};
        end
    endgenerate
    always @(posedge clk) begin
        if (rst) begin
            pr <= {RW{1'b0}};
            pc <= {CW{1'b0}};
            win_valid <= 1'b0;
        end else begin
            win_valid <= step && full_win;
            if (step) begin
                if (pc == C_END) begin
                    pc <= {CW{1'b0}};
                    pr <= (pr == R_END) ? {RW{1'b0}} : pr + 1'b1;
                end else begin
                    pc <= pc + 1'b1;
                end
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
    genvar t;
    generate
        for (t = 0; t < K * K; t = t + 1) begin : g_tap
            assign win[t*PW +: PW] = sr[((K-1-t/K)*WP + (K-1-t%K))*PW +: PW];
        end
    endgenerate
endmodule
`default_nettype wire
