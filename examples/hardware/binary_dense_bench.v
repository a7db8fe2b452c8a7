// Verification wrapper of binary_dense for a live testbench (cocotb): the input row arrives whole on x_row
// (word i at bits 64*i+63 .. 64*i) and every accumulator is kept in accs (channel o at bits 32*o+31 .. 32*o),
// so that the testbench writes one value and reads two per row. Weights, thresholds and flip bits are
// written into core.weights, core.thresholds and core.flip by the testbench.
`timescale 1ns / 1ps
module binary_dense_bench #(
    parameter N = 130,
    parameter WORDS = 3,
    parameter OUTS = 70,
    parameter OUT_WORDS = 2,
    parameter BUG = 0
) (
    input  wire                     clk,
    input  wire                     rst,
    input  wire                     start,
    input  wire [64*WORDS-1:0]      x_row,
    output wire                     done,
    output reg  [32*OUTS-1:0]       accs,
    output wire [64*OUT_WORDS-1:0]  bits_out
);
    wire [15:0] x_addr;
    wire        acc_valid;
    wire [31:0] acc_out;
    wire [15:0] acc_index;

    binary_dense #(.N(N), .WORDS(WORDS), .OUTS(OUTS), .OUT_WORDS(OUT_WORDS), .BUG(BUG)) core (
        .clk(clk), .rst(rst), .start(start), .x_word(x_row[64 * x_addr +: 64]), .x_addr(x_addr),
        .acc_valid(acc_valid), .acc_out(acc_out), .acc_index(acc_index), .bits_out(bits_out), .done(done));

    always @(posedge clk)
        if (acc_valid) accs[32 * acc_index +: 32] <= acc_out;
endmodule
