"""cocotb test of mac.v (through mac_bank.v): every transaction checked against bitsim's MAC + requantize."""

import cocotb

from bitsim.verify.bench import run_stream_unit
from bitsim.verify.mac import MacUnit
from bitsim.verify.settings import RunSettings


@cocotb.test()
async def mac_matches_bitsim(dut):
    settings = RunSettings.from_env()
    await run_stream_unit(dut, MacUnit(**settings.unit), settings)
