// A fixed-point multiply-accumulate unit with requantization, as bitsim defines it
// (docs/formats.md, section 4, "Rounding right shift"; docs/hardware.md, "The MAC unit"):
//   acc     = sum of a[k] * b[k] over one transaction, in a 32-bit two's-complement register (wraps)
//   q       = acc / 2**shift rounded by ROUNDING, then clamped (SATURATE = 1) or wrapped to OUT_BITS
// Operands stream in one pair per clock: `first` clears the accumulator, `last` ends the transaction;
// acc_out and q_out are registered one clock after the `last` pair, with out_valid.
`timescale 1ns / 1ps
module mac #(
    parameter WIDTH = 8,      // operand bits: 8 (int8 x int8) or 16 (int16 x int16)
    parameter OUT_BITS = 8,   // bits of the requantized result
    parameter ROUNDING = 4,   // 0 floor, 1 ceil, 2 toward_zero, 3 nearest_up, 4 nearest_even, 5 nearest_away
    parameter SATURATE = 1,   // 1 clamp to the OUT_BITS range, 0 wrap (keep the low OUT_BITS bits)
    parameter BUG = 0         // fault injection, 0 in a real design:
                              //   1 a tie of nearest_even rounds up whatever the parity of q
                              //   2 saturation misses the negative end (values below the range wrap)
                              //   3 the product is zero-extended into the accumulator (sign-extension slip)
                              //   4 the shift is logical (>>), not arithmetic (>>>)
) (
    input  wire                       clk,
    input  wire                       rst,
    input  wire                       in_valid,
    input  wire                       first,
    input  wire                       last,
    input  wire signed [WIDTH-1:0]    a,
    input  wire signed [WIDTH-1:0]    b,
    input  wire [4:0]                 shift,     // 0..31
    output reg                        out_valid,
    output reg  signed [31:0]         acc_out,
    output reg  signed [OUT_BITS-1:0] q_out
);
    localparam signed [32:0] HI = (33'sd1 <<< (OUT_BITS - 1)) - 1;
    localparam signed [32:0] LO = -(33'sd1 <<< (OUT_BITS - 1));

    reg  signed [31:0] acc;
    wire signed [2*WIDTH-1:0] product = a * b;
    wire        [31:0] zero_extended = $unsigned(product);
    wire signed [31:0] sign_extended = product;
    wire signed [31:0] extended = (BUG == 3) ? $signed(zero_extended) : sign_extended;
    wire signed [31:0] total = (first ? 32'sd0 : acc) + extended;

    // rounding right shift: q = floor(total / 2**shift), r = the bits shifted out, h = half an LSB of q
    wire signed [31:0] q = (BUG == 4) ? $signed(total >> shift) : (total >>> shift);
    wire        [31:0] r = total & ((32'd1 << shift) - 32'd1);
    wire        [31:0] h = (shift == 0) ? 32'd0 : (32'd1 << (shift - 1));
    wire               s = shift != 0;
    reg                up;
    always @* begin
        case (ROUNDING)
            0: up = 1'b0;
            1: up = r != 0;
            2: up = r != 0 && total < 0;
            3: up = s && r >= h;
            4: up = (BUG == 1) ? (s && r >= h) : (r > h || (s && r == h && q[0]));
            default: up = r > h || (s && r == h && total >= 0);
        endcase
    end
    wire signed [32:0] rounded = q + $signed({1'b0, up});
    wire signed [OUT_BITS-1:0] narrowed =
        (SATURATE && rounded > HI) ? HI[OUT_BITS-1:0] :
        (SATURATE && rounded < LO && BUG != 2) ? LO[OUT_BITS-1:0] : rounded[OUT_BITS-1:0];

    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            acc <= 32'sd0;
            acc_out <= 32'sd0;
            q_out <= 0;
        end else begin
            out_valid <= in_valid && last;
            if (in_valid) begin
                acc <= total;
                if (last) begin
                    acc_out <= total;
                    q_out <= narrowed;
                end
            end
        end
    end
endmodule
