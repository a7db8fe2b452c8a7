// Verification wrapper: one shift_add per rounding mode, all fed the same operands, so that one run checks
// all six. Packed buses keep the testbench to one write and one read per clock:
//   in_bus  = {last, first, in_valid, code, x}                            (x at bit 0)
//   out_bus = {acc of ROUNDING 5, ..., acc of ROUNDING 0, out_valid}      (out_valid at bit 0)
`timescale 1ns / 1ps
module shift_add_bank #(
    parameter X_BITS = 8,
    parameter EXP_BITS = 4,
    parameter EXP_OFFSET = -2,
    parameter ACC_FRAC = 0,
    parameter BUG = 0
) (
    input  wire                       clk,
    input  wire                       rst,
    input  wire [X_BITS+EXP_BITS+3:0] in_bus,
    output wire [6*32:0]              out_bus
);
    wire [5:0] valid;
    genvar m;
    generate
        for (m = 0; m < 6; m = m + 1) begin : unit
            shift_add #(.X_BITS(X_BITS), .EXP_BITS(EXP_BITS), .EXP_OFFSET(EXP_OFFSET), .ACC_FRAC(ACC_FRAC),
                        .ROUNDING(m), .BUG(BUG)) core (
                .clk(clk), .rst(rst), .in_valid(in_bus[X_BITS+EXP_BITS+1]), .first(in_bus[X_BITS+EXP_BITS+2]),
                .last(in_bus[X_BITS+EXP_BITS+3]), .x(in_bus[X_BITS-1:0]), .code(in_bus[X_BITS+EXP_BITS:X_BITS]),
                .out_valid(valid[m]), .acc_out(out_bus[1 + 32 * m +: 32]));
        end
    endgenerate
    assign out_bus[0] = valid[0];
endmodule
