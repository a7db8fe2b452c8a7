// Verification wrapper: one mac per rounding mode and overflow mode, all fed the same operands, so that one
// run checks all twelve. Packed buses keep the testbench to one write and one read per clock:
//   in_bus  = {shift[4:0], last, first, in_valid, b, a}                       (a at bit 0)
//   out_bus = {q of variant 11, ..., q of variant 0, acc_out, out_valid}      (out_valid at bit 0)
// Variant v = 2 * ROUNDING + wrap: ROUNDING as in mac.v, wrap 0 = saturate, 1 = wrap.
`timescale 1ns / 1ps
module mac_bank #(
    parameter WIDTH = 8,
    parameter OUT_BITS = 8,
    parameter BUG = 0
) (
    input  wire                          clk,
    input  wire                          rst,
    input  wire [2*WIDTH+7:0]            in_bus,
    output wire [12*OUT_BITS+32:0]       out_bus
);
    wire [WIDTH-1:0] a = in_bus[WIDTH-1:0];
    wire [WIDTH-1:0] b = in_bus[2*WIDTH-1:WIDTH];
    wire in_valid = in_bus[2*WIDTH];
    wire first = in_bus[2*WIDTH+1];
    wire last = in_bus[2*WIDTH+2];
    wire [4:0] shift = in_bus[2*WIDTH+7:2*WIDTH+3];
    wire [11:0] valid;
    wire [31:0] acc [0:11];

    genvar v;
    generate
        for (v = 0; v < 12; v = v + 1) begin : unit
            mac #(.WIDTH(WIDTH), .OUT_BITS(OUT_BITS), .ROUNDING(v / 2), .SATURATE(1 - v % 2), .BUG(BUG)) core (
                .clk(clk), .rst(rst), .in_valid(in_valid), .first(first), .last(last), .a(a), .b(b),
                .shift(shift), .out_valid(valid[v]), .acc_out(acc[v]), .q_out(out_bus[33 + v * OUT_BITS +: OUT_BITS]));
        end
    endgenerate
    assign out_bus[0] = valid[0];
    assign out_bus[32:1] = acc[0];
endmodule
