"""cocotb test of binary_dense.v (through binary_dense_bench.v): every accumulator and bit checked against bitsim."""

import cocotb

from bitsim.verify.bench import run_binary_dense
from bitsim.verify.binary_dense import BinaryDenseUnit
from bitsim.verify.settings import RunSettings


@cocotb.test()
async def binary_dense_matches_bitsim(dut):
    settings = RunSettings.from_env()
    await run_binary_dense(dut, BinaryDenseUnit(**settings.unit), settings)
