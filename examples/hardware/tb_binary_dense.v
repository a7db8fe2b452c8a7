// Testbench: loads bitsim's golden $readmemh files, runs binary_dense on every input row and writes the
// accumulators and packed outputs in the same $readmemh format for `bitsim compare`.
// Files and sizes come from the command line (see run.py):
//   -DX_FILE, -DW_FILE, -DT_FILE, -DF_FILE   golden inputs, weights, thresholds, flip bits
//   -DACC_FILE, -DOUT_FILE                   where to write the DUT's dump
//   -Ptb.N, -Ptb.WORDS, -Ptb.OUTS, -Ptb.OUT_WORDS, -Ptb.ROWS
//   -DFLIP_ROW=r -DFLIP_BIT=b                optional: flip one output bit (fault injection)
`timescale 1ns / 1ps
module tb;
    parameter N = 130, WORDS = 3, OUTS = 130, OUT_WORDS = 3, ROWS = 8;

    reg clk = 0, rst = 1, start = 0;
    reg  [63:0] x_mem [0:ROWS*WORDS-1];
    wire [15:0] x_addr;
    reg  [31:0] row;
    wire        acc_valid, done;
    wire signed [31:0] acc_out;
    wire [15:0] acc_index;
    wire [64*OUT_WORDS-1:0] bits_out;
    reg  [64*OUT_WORDS-1:0] result;
    integer fa, fo, w;

    binary_dense #(.N(N), .WORDS(WORDS), .OUTS(OUTS), .OUT_WORDS(OUT_WORDS)) dut (
        .clk(clk), .rst(rst), .start(start), .x_word(x_mem[row * WORDS + x_addr]), .x_addr(x_addr),
        .acc_valid(acc_valid), .acc_out(acc_out), .acc_index(acc_index), .bits_out(bits_out), .done(done));

    always #5 clk = ~clk;

    // outputs are registered on the rising edge; sample them on the falling edge
    always @(negedge clk)
        if (acc_valid) $fdisplay(fa, "%08h", acc_out);

    initial begin
        $readmemh(`X_FILE, x_mem);
        $readmemh(`W_FILE, dut.weights);
        $readmemh(`T_FILE, dut.thresholds);
        $readmemh(`F_FILE, dut.flip);
        fa = $fopen(`ACC_FILE, "w");
        fo = $fopen(`OUT_FILE, "w");
        $fdisplay(fa, "// binary_dense accumulators, int32, row-major (row, output)");
        $fdisplay(fo, "// binary_dense packed outputs, 64-bit words, row-major (row, word)");
        row = 0;
        @(negedge clk);
        @(negedge clk) rst = 0;
        for (row = 0; row < ROWS; row = row + 1) begin
            @(negedge clk) start = 1;
            @(negedge clk) start = 0;
            wait (done);
            @(negedge clk);  // the last accumulator of the row is written on this edge
            result = bits_out;
`ifdef FLIP_ROW
            if (row == `FLIP_ROW) result[`FLIP_BIT] = ~result[`FLIP_BIT];
`endif
            for (w = 0; w < OUT_WORDS; w = w + 1)
                $fdisplay(fo, "%016h", result[64 * w +: 64]);
            @(negedge clk);
        end
        $fclose(fa);
        $fclose(fo);
        $finish;
    end
endmodule
