"""The cocotb side of a live check: drive a unit, read its results, and let the scoreboard judge them.

This module imports cocotb (the ``hw`` extra) and runs inside the simulator. The stimulus and bitsim's
expected results are computed before the clock starts, in whole batches; the driver then writes one
packed input word per clock and reads one packed output word per clock without waiting for the model,
and the scoreboard checks the results a batch at a time. Each run writes a JSON report (what the test
suite reads) and logs the scoreboard's report, the transaction count and where the time went.
"""

import json
import logging
import time

import numpy as np

from ..errors import MissingExtra
from ..io import atomic_write_bytes
from .scoreboard import Scoreboard
from .settings import RunSettings
from .stimulus import Stream
from .words import join_words

try:
    import cocotb  # noqa: F401
    from cocotb.clock import Clock
    from cocotb.triggers import RisingEdge
except ImportError as err:  # pragma: no cover - the extra is installed wherever the benches run
    raise MissingExtra(f"bitsim.verify.bench needs cocotb ({err}); install it with: pip install -e \".[hw]\"") from None

__all__ = ["run_stream_unit", "run_binary_dense", "start"]

CLOCK_NS = 10
STOP_BATCH = 256  # results checked at a time by a run that stops at its first mismatch, so that it stops soon


async def start(dut):
    """Start the clock and hold reset for two cycles; return the rising-edge trigger."""
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    edge = RisingEdge(dut.clk)
    dut.rst.value = 1
    for _ in range(2):
        await edge
    dut.rst.value = 0
    return edge


def finish(sb, settings, counts, timings):
    """Write the JSON report, log the summary, and fail the cocotb test on any mismatch.

    Parameters
    ----------
    sb : Scoreboard
        The run's scoreboard, every observed result checked.
    settings : RunSettings
    counts : dict
        ``directed`` and ``random`` transactions driven, and the unit's own counts (cycles, rows).
    timings : dict
        ``model_seconds`` and ``simulation_seconds`` of the run.
    """
    summary = sb.summary()
    summary.update(counts)
    summary.update(timings)
    summary["bug"] = settings.bug
    summary["until"] = settings.until
    summary["stopped"] = bool(settings.stop and sb.pending)
    per = summary["checked"] or 1
    summary["us_per_transaction"] = {k: 1e6 * summary[k] / per for k in ("model_seconds", "scoreboard_seconds",
                                                                         "simulation_seconds")}
    summary["text"] = sb.report()
    atomic_write_bytes(settings.report, json.dumps(summary, indent=1).encode())
    us = summary["us_per_transaction"]
    log = logging.getLogger(f"cocotb.{sb.unit}")
    log.info("%s", summary["text"])
    log.info("%d of %d transactions (%d directed + %d random) checked against bitsim; per transaction: "
             "model %.2f us, scoreboard %.2f us, simulation and driver %.1f us",
             sb.checked, counts["directed"] + counts["random"], counts["directed"], counts["random"],
             us["model_seconds"], us["scoreboard_seconds"], us["simulation_seconds"])
    sb.raise_if_failed()


def check_size(settings):
    """How many results the scoreboard checks at a time: ``settings.batch``, at most 256 with ``settings.stop``."""
    return min(settings.batch, STOP_BATCH) if settings.stop else settings.batch


def expecting(unit, settings, batch, expected):
    """A scoreboard for ``unit`` and the run's settings, with bitsim's results for ``batch`` queued."""
    sb = Scoreboard(unit.name, unit.fields(), settings.seed, settings.generator, replay=settings.replay)
    sb.expect(expected, batch.operands, batch.labels)
    return sb


async def run_stream_unit(dut, unit, settings=None):
    """Check a streaming unit (MAC, shift-add) with its directed and random transactions.

    The unit object gives the transactions (``directed()``, ``random(stream, count)``), bitsim's results
    (``expected(batch)``), the packed input word of every clock (``input_words``) and the decoding of
    the output words (``read_outputs``). Results are read on every clock and kept when ``out_valid``
    (bit 0) is set, in transaction order.
    """
    settings = settings or RunSettings.from_env()
    t0 = time.perf_counter()
    stream = Stream(settings.seed, settings.generator)
    directed = unit.directed() if settings.directed else unit.directed().head(0)
    batch = directed + unit.random(stream, settings.count)
    if settings.until is not None:
        batch = batch.head(settings.until + 1)
    expected = unit.expected(batch)
    words = unit.input_words(batch) + [unit.idle_word()] * 2
    model = time.perf_counter() - t0
    sb = expecting(unit, settings, batch, expected)

    edge = await start(dut)
    t1 = time.perf_counter()
    inputs, outputs = dut.in_bus, dut.out_bus
    held, checking = [], 0.0
    size = check_size(settings)
    for word in words:
        inputs.value = word
        await edge
        value = outputs.value.to_unsigned()
        if value & 1:
            held.append(value)
            if len(held) == size:
                t2 = time.perf_counter()
                found = sb.observe(unit.read_outputs(held))
                held, checking = [], checking + time.perf_counter() - t2
                if found and settings.stop:
                    break
    else:
        await edge
        value = outputs.value.to_unsigned()
        if value & 1:
            held.append(value)
    t2 = time.perf_counter()
    if held and not (settings.stop and sb.mismatched):
        sb.observe(unit.read_outputs(held))
    checking += time.perf_counter() - t2
    simulation = time.perf_counter() - t1 - checking
    counts = {"directed": min(len(directed), len(batch)), "random": len(batch) - min(len(directed), len(batch)),
              "cycles": len(words)}
    finish(sb, settings, counts, {"model_seconds": model, "simulation_seconds": simulation})


async def run_binary_dense(dut, unit, settings=None):
    """Check the binary dense layer: load each layer's weights, thresholds and flips, then run its rows."""
    settings = settings or RunSettings.from_env()
    t0 = time.perf_counter()
    stream = Stream(settings.seed, settings.generator)
    directed = unit.directed_layers() if settings.directed else []
    layers = directed + unit.random_layers(stream, settings.count)
    batch = unit.batch(layers)
    stop = len(batch) if settings.until is None else min(len(batch), settings.until + 1)
    batch = batch.head(stop)
    expected = {k: v[:stop] for k, v in unit.expected(layers).items()}
    model = time.perf_counter() - t0
    sb = expecting(unit, settings, batch, expected)

    edge = await start(dut)
    t1 = time.perf_counter()
    core, checking, done = dut.core, 0.0, 0
    held, size = {"acc": [], "bit": []}, check_size(settings)
    for layer in layers:
        if done >= stop:
            break
        for i, w in enumerate(layer.weights.reshape(-1).tolist()):
            core.weights[i].value = w
        for o in range(unit.outs):
            core.thresholds[o].value = int(layer.thresholds[o]) & 0xFFFFFFFF
            core.flip[o].value = int(layer.flip[o])
        for row in layer.rows:
            if done >= stop:
                break
            dut.x_row.value = join_words(row)
            dut.start.value = 1
            await edge
            dut.start.value = 0
            await RisingEdge(dut.done)
            await edge
            await edge
            acc, bits = unit.read_row(dut.accs.value.to_unsigned(), dut.bits_out.value.to_unsigned())
            take = min(unit.outs, stop - done)
            held["acc"].append(acc[:take])
            held["bit"].append(bits[:take])
            done += take
            if done - sb.checked >= size or done >= stop:
                t2 = time.perf_counter()
                found = sb.observe({k: np.concatenate(v) for k, v in held.items()})
                held = {"acc": [], "bit": []}
                checking += time.perf_counter() - t2
                if found and settings.stop:
                    stop = done
    simulation = time.perf_counter() - t1 - checking
    n_directed = min(len(unit.batch(directed)) if directed else 0, stop)
    counts = {"directed": n_directed, "random": stop - n_directed, "rows": -(-stop // unit.outs)}
    finish(sb, settings, counts, {"model_seconds": model, "simulation_seconds": simulation})
