"""The cost of bitsim as a live reference model, per transaction, beside the simulator it checks.

Run from the repository root::

    python benchmarks/verify_scoreboard.py [--count 100000] [--sim] [--simulator icarus|verilator]

For each unit of ``examples/hardware`` (MAC int8, MAC int16, shift-add, binary dense) it times, per
transaction, over ``--count`` random transactions plus the directed cases (best of 3 runs, after a
warm-up): drawing the stimulus; bitsim's expected results (the model, in whole batches); packing the
input words and unpacking the output words of the buses; and the scoreboard's own work (expect, then
observe in batches of 4096). Beside the model it prints the float32 NumPy baseline of the same
arithmetic (products or shifts summed in float32, rounded and clamped with NumPy) measured in the same
run, and the ratio. ``--sim`` also runs each unit's cocotb testbench (10,000 random transactions) and
prints the simulator and driver time per transaction from its report, so the testbench's share of a
live run can be read off.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples" / "hardware")]

import numpy as np  # noqa: E402

from bitsim.verify import (BinaryDenseUnit, MacUnit, Scoreboard, ShiftAddUnit, Stream, join_words,  # noqa: E402
                           pack_fields, to_unsigned)
from bitsim.formats.log import split  # noqa: E402

BATCH = 4096


def best(fn, runs=3):
    """The best wall time of ``runs`` calls after one warm-up call, and the last result."""
    result = fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def float_mac(batch, unit):
    """The MAC in float32: products summed, scaled by 2**-shift, rounded half up and clamped."""
    a = batch.operands["a"].astype(np.float32)
    b = batch.operands["b"].astype(np.float32)
    scale = np.ldexp(np.float32(1), -batch.operands["shift"]).astype(np.float32)
    acc = (a * b).sum(axis=1, dtype=np.float32)
    q = np.floor(acc * scale + np.float32(0.5))
    return np.clip(q, -(2 ** (unit.out_bits - 1)), 2 ** (unit.out_bits - 1) - 1)


def float_shift_add(batch, unit):
    """The shift-add unit in float32: x times the decoded weight, floored, summed."""
    sign, exponent, zero = split(batch.operands["code"], unit.fmt)
    w = np.where(zero, 0, np.ldexp(np.float32(1), exponent.astype(np.int32)) * np.where(sign, -1, 1))
    return np.floor(batch.operands["x"].astype(np.float32) * w.astype(np.float32)).sum(axis=1, dtype=np.float32)


def float_binary(layers, unit):
    """The binary dense layer in float32: ±1 rows times ±1 weights, then the threshold compare."""
    out = []
    for layer in layers:
        x, w = (np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")[:, :unit.n].astype(np.float32) * 2 - 1
                for words in (layer.rows, layer.weights))
        acc = x @ w.T
        out.append(np.where(layer.flip, acc <= layer.thresholds, acc >= layer.thresholds))
    return out


def stream_unit_costs(unit, count, baseline):
    """Seconds of a streaming unit's stimulus, model, float32 baseline, buses and scoreboard, and the count."""
    t_stim, batch = best(lambda: unit.directed() + unit.random(Stream(7), count))
    t_model, expected = best(lambda: unit.expected(batch))
    t_float, _ = best(lambda: baseline(batch, unit))
    fields = unit.fields()
    out_words = pack_fields([np.ones(len(batch), np.int64)] + [expected[f.name] for f in fields],
                            [1] + [f.bits for f in fields])

    def bus():
        unit.input_words(batch)
        return [unit.read_outputs(out_words[i:i + BATCH]) for i in range(0, len(batch), BATCH)]

    t_bus, decoded = best(bus)

    def board():
        sb = Scoreboard(unit.name, fields, seed=7)
        sb.expect(expected, batch.operands, batch.labels)
        for part in decoded:
            sb.observe(part)
        assert sb.passed
        return sb

    t_board, _ = best(board)
    return len(batch), t_stim, t_model, t_float, t_bus, t_board


def binary_costs(unit, count):
    """Seconds of the binary dense layer's stimulus, model, float32 baseline, buses and scoreboard, and the count."""
    t_stim, layers = best(lambda: unit.directed_layers() + unit.random_layers(Stream(7), count))
    t_model, expected = best(lambda: unit.expected(layers))
    t_float, _ = best(lambda: float_binary(layers, unit))
    batch = unit.batch(layers)
    rows = [(unit.outs * i, unit.outs * (i + 1)) for i in range(len(batch) // unit.outs)]
    # the wrapper's accs and bits_out buses of each row, as the design would drive them
    words = [(join_words(to_unsigned(expected["acc"][lo:hi], 32), 32), join_words(expected["bit"][lo:hi], 1))
             for lo, hi in rows]

    def bus():
        return [unit.read_row(accs, bits) for accs, bits in words]

    t_bus, decoded = best(bus)

    def board():
        sb = Scoreboard(unit.name, unit.fields(), seed=7)
        sb.expect(expected, batch.operands, batch.labels)
        per_batch = -(-BATCH // unit.outs)  # rows, as the testbench gathers them
        for i in range(0, len(decoded), per_batch):
            part = decoded[i:i + per_batch]
            sb.observe({"acc": np.concatenate([acc for acc, _ in part]), "bit": np.concatenate([b for _, b in part])})
        assert sb.passed
        return sb

    t_board, _ = best(board)
    return len(batch), t_stim, t_model, t_float, t_bus, t_board


def simulate(name, width, simulator, build):
    """Simulator and driver microseconds per transaction of one clean testbench run (10,000 random transactions).

    The builds share ``build``, so that Verilator's runtime library is compiled once.
    """
    import cocotb_run
    from bitsim.verify.runner import run_unit

    summary = run_unit(cocotb_run.make_unit(name, width), cocotb_run.UNITS[name], ROOT / "examples" / "hardware",
                       build, seed=7, simulator=simulator)
    return summary["us_per_transaction"]["simulation_seconds"]


def main(argv=None):
    """Time every unit; print one line each, after the simulators' logs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="random transactions per unit (default 100000)")
    parser.add_argument("--sim", action="store_true", help="also run each testbench and read the simulator's cost")
    parser.add_argument("--simulator", default="icarus", choices=["icarus", "verilator"])
    args = parser.parse_args(argv)
    cases = [("mac int8", "mac", None, lambda: stream_unit_costs(MacUnit(), args.count, float_mac)),
             ("mac int16", "mac", 16, lambda: stream_unit_costs(MacUnit(16, 16), args.count, float_mac)),
             ("shift_add", "shift_add", None, lambda: stream_unit_costs(ShiftAddUnit(), args.count, float_shift_add)),
             ("binary_dense", "binary_dense", None, lambda: binary_costs(BinaryDenseUnit(), args.count))]
    head = f"{'unit':13s} {'count':>7s} {'stimulus':>9s} {'model':>7s} {'float32':>8s} {'ratio':>6s} {'buses':>7s} " \
           f"{'scoreboard':>10s}"
    if args.sim:
        head += f" {'simulator':>10s} {'testbench share':>16s}"
    lines = ["microseconds per transaction (best of 3 after a warm-up); float32 = the same arithmetic in float32 "
             "NumPy", head]
    with tempfile.TemporaryDirectory(prefix="bitsim-bench-") as build:
        for label, name, width, run in cases:
            n, stim, model, flt, bus, board = run()
            us = [1e6 * t / n for t in (stim, model, flt, bus, board)]
            line = f"{label:13s} {n:7d} {us[0]:9.2f} {us[1]:7.2f} {us[2]:8.2f} {us[1] / us[2]:6.1f} {us[3]:7.2f} " \
                   f"{us[4]:10.3f}"
            if args.sim:
                sim = simulate(name, width, args.simulator, build)
                bench = us[0] + us[1] + us[3] + us[4]
                line += f" {sim:10.1f} {100 * bench / (bench + sim):15.1f}%"
            lines.append(line)
    lines.append("model/float32 ratio > 1: bitsim's exact integer model is slower than a float32 approximation of it")
    print("\n".join(lines))  # after the simulators' logs


if __name__ == "__main__":
    main()
