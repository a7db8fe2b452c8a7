// A shift-add unit: fixed-point activations times log-coded weights, no multiplier, as bitsim's shift-add
// kernel defines it (bitsim/kernels/shift.py; docs/formats.md, sections 3 and 11):
//   code    = {sign, exponent field f (EXP_BITS bits, two's complement)}; f = 100..0 is the zero code
//   t       = f + EXP_OFFSET + ACC_FRAC                      (ACC_FRAC = acc_frac - x_frac)
//   term    = (-1)**sign * (t >= 0 ? x << t : round(x / 2**-t))   rounding by ROUNDING; sign after the shift
//   acc     = sum of the terms of one transaction, 32-bit (the parameters keep it in range: no overflow)
// Operands stream in one pair per clock: `first` clears the accumulator, `last` ends the transaction;
// acc_out is registered one clock after the `last` pair, with out_valid.
`timescale 1ns / 1ps
module shift_add #(
    parameter X_BITS = 8,       // activation bits (two's complement)
    parameter EXP_BITS = 4,     // exponent field bits; the code has 1 + EXP_BITS bits
    parameter EXP_OFFSET = -2,  // added to the field: exponents EXP_OFFSET - 2**(EXP_BITS-1) + 1 .. + 2**(EXP_BITS-1) - 1
    parameter ACC_FRAC = 0,     // fractional bits of the accumulator minus those of x
    parameter ROUNDING = 0,     // right shifts: 0 floor, 1 ceil, 2 toward_zero, 3 nearest_up, 4 nearest_even,
                                // 5 nearest_away
    parameter BUG = 0           // fault injection, 0 in a real design:
                                //   1 the sign is applied before the shift: shift(-x), not -shift(x)
                                //   2 the zero code is not recognised (decoded as the exponent below the smallest)
                                //   3 a tie of nearest_away rounds toward +inf (wrong for negative ties)
                                //   4 x is zero-extended into the shifter (sign-extension slip)
) (
    input  wire                     clk,
    input  wire                     rst,
    input  wire                     in_valid,
    input  wire                     first,
    input  wire                     last,
    input  wire signed [X_BITS-1:0] x,
    input  wire [EXP_BITS:0]        code,
    output reg                      out_valid,
    output reg  signed [31:0]       acc_out
);
    wire [EXP_BITS-1:0] field = code[EXP_BITS-1:0];
    wire                negative = code[EXP_BITS];
    wire                is_zero = (field == (1 << (EXP_BITS - 1))) && (BUG != 2);
    wire signed [EXP_BITS-1:0] f = field;
    wire signed [7:0]   t = f + EXP_OFFSET + ACC_FRAC;     // left shift if >= 0, else right shift by -t
    wire        [5:0]   s = -t;

    wire signed [31:0] sign_extended = x;
    wire        [31:0] zero_extended = $unsigned(x);
    wire signed [31:0] xe = (BUG == 4) ? $signed(zero_extended) : sign_extended;
    wire signed [31:0] operand = (BUG == 1 && negative) ? -xe : xe;

    // rounding right shift of operand by s (docs/formats.md, section 4, "Rounding right shift")
    wire signed [31:0] q = operand >>> s;
    wire        [31:0] r = operand & ((32'd1 << s) - 32'd1);
    wire        [31:0] h = 32'd1 << (s - 1);
    reg                up;
    always @* begin
        case (ROUNDING)
            0: up = 1'b0;
            1: up = r != 0;
            2: up = r != 0 && operand < 0;
            3: up = r >= h;
            4: up = r > h || (r == h && q[0]);
            default: up = r > h || (r == h && (operand >= 0 || BUG == 3));
        endcase
    end
    wire signed [31:0] magnitude = (t >= 0) ? (operand <<< t) : (q + $signed({31'd0, up}));
    wire signed [31:0] term = is_zero ? 32'sd0 : (negative && BUG != 1) ? -magnitude : magnitude;

    reg  signed [31:0] acc;
    wire signed [31:0] total = (first ? 32'sd0 : acc) + term;

    always @(posedge clk) begin
        if (rst) begin
            out_valid <= 1'b0;
            acc <= 32'sd0;
            acc_out <= 32'sd0;
        end else begin
            out_valid <= in_valid && last;
            if (in_valid) begin
                acc <= total;
                if (last) acc_out <= total;
            end
        end
    end
endmodule
