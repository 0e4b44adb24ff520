// heatq primitive: the output side of the AXI-Stream handshake (m_tready back-pressure) for a
// valid-only pipeline that cannot stall.  Results (in_valid: one cycle each) go straight to
// m_tvalid / m_tdata while the queue is empty and m_tready is high (no added latency);
// otherwise they wait, in order, in a 2**AW-entry first-word fall-through FIFO (hq_fifo).
// While m_tvalid && !m_tready, m_tvalid stays high and m_tdata does not change.
// Credit: `inflight` counts results started (the first of each N input beats, beat =
// s_tvalid && s_tready) and not yet taken (m_tvalid && m_tready); `credit` (from registers
// only) is low at a result's first beat when 2**AW are in flight, so the FIFO cannot
// overflow and no result is lost.  The top gates s_tready and the pipeline's input valid
// with it (the host sees a pause, which every unit tolerates); the other N-1 beats of a
// result are never held.  The emitter sizes AW from the cycle model so that credit never
// drops while m_tready stays high (the II and latency are then unchanged).
`default_nettype none
module hq_outq #(
    parameter WIDTH = 8,
    parameter AW    = 1,
    parameter N     = 1,
    parameter NW    = 1
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             beat,
    output wire             credit,
    input  wire             in_valid,
    input  wire [WIDTH-1:0] in_data,
    output wire             m_tvalid,
    input  wire             m_tready,
    output wire [WIDTH-1:0] m_tdata,
    output wire             overflow
);
    localparam integer I_CAP = 1 << AW;
    localparam [AW:0] CAP = I_CAP[AW:0];
    wire             q_valid;
    wire [WIDTH-1:0] q_data;
    wire             first;
    reg  [AW:0]      inflight;
    assign m_tvalid = q_valid || in_valid;
    assign m_tdata  = q_valid ? q_data : in_data;
    wire push  = in_valid && (q_valid || !m_tready);
    wire start = beat && first;
    wire take  = m_tvalid && m_tready;
    assign credit = !rst && (!first || (inflight != CAP));
    hq_fifo #(.WIDTH(WIDTH), .AW(AW)) u_fifo (
        .clk(clk), .rst(rst), .in_valid(push), .in_data(in_data), .out_valid(q_valid),
        .out_ready(m_tready), .out_data(q_data), .overflow(overflow));
    always @(posedge clk) begin
        if (rst) inflight <= {(AW+1){1'b0}};
        else if (start && !take) inflight <= inflight + 1'b1;
        else if (take && !start) inflight <= inflight - 1'b1;
    end
    generate
        if (N <= 1) begin : g_one
            assign first = 1'b1;
        end else begin : g_count
            localparam integer I_LAST = N - 1;
            localparam [NW-1:0] LAST = I_LAST[NW-1:0];
            reg [NW-1:0] cnt;
            assign first = (cnt == {NW{1'b0}});
            always @(posedge clk) begin
                if (rst) cnt <= {NW{1'b0}};
                else if (beat) cnt <= (cnt == LAST) ? {NW{1'b0}} : cnt + 1'b1;
            end
        end
    endgenerate
endmodule
`default_nettype wire
