// A binary dense layer with batch norm + sign folded into thresholds, as bitsim deploys it
// (docs/formats.md, sections 1 and 7):
//   acc[o]  = N - 2 * sum_k popcount(x[k] XOR w[o][k])     (±1 dot product, 64-bit words)
//   bit[o]  = flip[o] ? (acc[o] <= t[o]) : (acc[o] >= t[o])  (1 means +1)
// Packed words: element i of a row at bit i % 64 of word i / 64; padding bits are 0.
// One 64-bit word per clock: OUTS * WORDS cycles per input row.
`timescale 1ns / 1ps
module binary_dense #(
    parameter N = 130,          // ±1 values per input row
    parameter WORDS = 3,        // 64-bit words per input row: ceil(N / 64)
    parameter OUTS = 130,       // output channels
    parameter OUT_WORDS = 3,    // 64-bit words of packed outputs: ceil(OUTS / 64)
    parameter BUG = 0           // fault injection, 0 in a real design:
                                //   1 the padding bits of the last word are counted (64 * WORDS, not N)
                                //   2 a tie of the threshold compare goes the wrong way (acc > t, not acc >= t)
                                //   3 the accumulator is 8 bits wide (wraps when |acc| > 127)
) (
    input  wire                     clk,
    input  wire                     rst,
    input  wire                     start,      // pulse: process the input row presented on x_word
    input  wire [63:0]              x_word,     // word x_addr of the current input row
    output reg  [15:0]              x_addr,
    output reg                      acc_valid,  // one cycle per output channel
    output reg  signed [31:0]       acc_out,
    output reg  [15:0]              acc_index,
    output reg  [64*OUT_WORDS-1:0]  bits_out,   // packed ±1 outputs, valid when done
    output reg                      done
);
    // Loaded by the testbench with $readmemh (ROMs in a real design).
    reg [63:0]        weights    [0:OUTS*WORDS-1];
    reg signed [31:0] thresholds [0:OUTS-1];
    reg               flip       [0:OUTS-1];

    reg        busy;
    reg [15:0] o;
    reg [31:0] count;

    function [6:0] popcount64(input [63:0] v);
        integer i;
        begin
            popcount64 = 0;
            for (i = 0; i < 64; i = i + 1)
                popcount64 = popcount64 + v[i];
        end
    endfunction

    localparam signed [31:0] LENGTH = (BUG == 1) ? 64 * WORDS : N;
    wire [31:0]        total = count + popcount64(x_word ^ weights[o * WORDS + x_addr]);
    wire signed [31:0] exact = LENGTH - 2 * $signed(total);
    wire signed [7:0]  narrow = exact[7:0];
    wire signed [31:0] acc   = (BUG == 3) ? narrow : exact;
    wire               bit_o = flip[o] ? (acc <= thresholds[o])
                                       : (BUG == 2 ? acc > thresholds[o] : acc >= thresholds[o]);

    always @(posedge clk) begin
        acc_valid <= 1'b0;
        if (rst) begin
            busy <= 1'b0;
            done <= 1'b0;
        end else if (start) begin
            busy <= 1'b1;
            done <= 1'b0;
            o <= 0;
            x_addr <= 0;
            count <= 0;
            bits_out <= 0;
        end else if (busy) begin
            if (x_addr == WORDS - 1) begin
                acc_valid <= 1'b1;
                acc_out <= acc;
                acc_index <= o;
                bits_out[o] <= bit_o;
                count <= 0;
                x_addr <= 0;
                if (o == OUTS - 1) begin
                    busy <= 1'b0;
                    done <= 1'b1;
                end else begin
                    o <= o + 1;
                end
            end else begin
                count <= total;
                x_addr <= x_addr + 1;
            end
        end
    end
endmodule
