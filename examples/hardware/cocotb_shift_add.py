"""cocotb test of shift_add.v (through shift_add_bank.v): every transaction checked against bitsim's shift-add."""

import cocotb

from bitsim.verify.bench import run_stream_unit
from bitsim.verify.settings import RunSettings
from bitsim.verify.shift_add import ShiftAddUnit


@cocotb.test()
async def shift_add_matches_bitsim(dut):
    settings = RunSettings.from_env()
    await run_stream_unit(dut, ShiftAddUnit(**settings.unit), settings)
