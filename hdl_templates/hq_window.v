// heatq primitive: K x K window over a raster pixel stream with 'same' zero padding P.
// The unit walks (hq_raster) the padded (H+2P) x (W+2P) raster one position per step: a padding
// position steps at once with a zero pixel, a real position waits for in_valid (in_ready
// is high exactly there).  After a step at padded (r, c) with r, c >= K-1, win_valid is high
// for one cycle and win holds the window of output pixel (r-K+1, c-K+1): tap t = kh*K + kw
// at bits [t*PW +: PW].  With USE_LAST, in_last must mark each image's last pixel, else the
// sticky `err` is set.  GAP > 1 with GK = K-1: a step that completes a window at most every
// GAP cycles (see hq_raster), so a folded layer module gets a window at most every GAP cycles.
`default_nettype none
module hq_window #(
    parameter PW = 1,
    parameter H  = 28,
    parameter W  = 28,
    parameter K  = 3,
    parameter P  = 1,
    parameter RW = 5,
    parameter CW = 5,
    parameter USE_LAST = 1,
    parameter GAP = 1,
    parameter GW  = 1,
    parameter GK  = 0
) (
    input  wire              clk,
    input  wire              rst,
    input  wire              in_valid,
    output wire              in_ready,
    input  wire [PW-1:0]     in_data,
    input  wire              in_last,
    output reg               win_valid,
    output wire [K*K*PW-1:0] win,
    output wire              err
);
    localparam WP  = W + 2 * P;
    localparam LEN = (K - 1) * WP + K;
    localparam integer I_K = K - 1;
    localparam [RW-1:0] R_K = I_K[RW-1:0];
    localparam [CW-1:0] C_K = I_K[CW-1:0];
    wire          step, real_px;
    wire [RW-1:0] pr;
    wire [CW-1:0] pc;
    reg [LEN*PW-1:0] sr;
    wire full_win;
    hq_raster #(.H(H), .W(W), .P(P), .RW(RW), .CW(CW), .USE_LAST(USE_LAST),
                .GAP(GAP), .GW(GW), .GK(GK)) u_raster (
        .clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_last(in_last),
        .step(step), .real_px(real_px), .row(pr), .col(pc), .err(err));
    generate
        if (K == 1) begin : g_k1
            assign full_win = 1'b1;
            wire unused_ok = &{1'b0, pr, pc};
        end else begin : g_kn
            assign full_win = (pr >= R_K) && (pc >= C_K);
        end
    endgenerate
    wire [PW-1:0] px = real_px ? in_data : {PW{1'b0}};
    generate
        if (LEN == 1) begin : g_sr1
            always @(posedge clk) if (step) sr <= px;
        end else begin : g_srn
            always @(posedge clk) if (step) sr <= {sr[(LEN-1)*PW-1:0], px};
        end
    endgenerate
    always @(posedge clk) begin
        if (rst) win_valid <= 1'b0;
        else win_valid <= step && full_win;
    end
    genvar t;
    generate
        for (t = 0; t < K * K; t = t + 1) begin : g_tap
            assign win[t*PW +: PW] = sr[((K-1-t/K)*WP + (K-1-t%K))*PW +: PW];
        end
    endgenerate
endmodule
`default_nettype wire
