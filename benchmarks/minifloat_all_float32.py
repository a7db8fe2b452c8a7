"""Long profile: encode every one of the 2**32 float32 bit patterns to E4M3, E5M2 and E2M1 and compare with ml_dtypes.

Run from the repository root (not part of CI; one to two minutes per format on 2 lightly loaded cores)::

    nice -n 19 python benchmarks/minifloat_all_float32.py [--formats e4m3,e5m2,e2m1] [--chunk 22] [--workers 2]

Rule compared: bitsim's ``nearest_even`` with ``overflow='nonfinite'`` where the format has NaN (E4M3,
E5M2) and ``'saturate'`` otherwise (E2M1), which is what ml_dtypes' cast does; NaN inputs are skipped for
E2M1 (ml_dtypes writes -0 there, bitsim refuses NaN) and counted. The patterns are split into chunks of
``2**chunk`` consecutive bit patterns, shared among ``--workers`` processes (each running Numba on one
thread). Prints, per format, the patterns compared, the mismatches (expected 0) with the first few, the
time spent in bitsim's encode and in ml_dtypes' cast of the same patterns (the baseline) and their ratio.
"""

import argparse
import multiprocessing
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402

ML = {"e4m3": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2, "e2m1": ml_dtypes.float4_e2m1fn}
SHOW = 5


def check_chunk(job):
    """``(compared, skipped NaN, mismatches, first mismatches, encode seconds, ml_dtypes seconds)`` of one chunk."""
    import numba

    from bitsim.formats import minifloat as mf

    numba.set_num_threads(1)
    name, start, step = job
    fmt = mf.parse_minifloat(name)
    bits = np.arange(step, dtype=np.uint32) + np.uint32(start)
    x = bits.view(np.float32)
    skipped = 0
    if not fmt.nans:
        keep = ~np.isnan(x)
        skipped = int(x.size - np.count_nonzero(keep))
        bits, x = bits[keep], x[keep]
    mf.encode(x[:1], fmt)  # load the compiled kernel outside the timing
    t0 = time.perf_counter()
    ours = mf.encode(x, fmt, "nearest_even", "nonfinite" if fmt.nans else "saturate")
    t1 = time.perf_counter()
    with np.errstate(all="ignore"):
        theirs = x.astype(ML[name]).view(np.uint8)
    t2 = time.perf_counter()
    wrong = np.flatnonzero(ours != theirs)
    first = [(int(bits[i]), int(ours[i]), int(theirs[i])) for i in wrong[:SHOW]]
    return int(x.size), skipped, int(wrong.size), first, t1 - t0, t2 - t1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--formats", default="e4m3,e5m2,e2m1")
    parser.add_argument("--chunk", type=int, default=22, help="log2 of the patterns per chunk (10..32)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--patterns", type=int, default=32, help="log2 of the patterns checked from 0 (32: all)")
    args = parser.parse_args()
    if not 10 <= args.chunk <= min(32, args.patterns) or not 10 <= args.patterns <= 32 or args.workers < 1:
        parser.error("need 10 <= --chunk <= --patterns <= 32 and --workers >= 1")
    step, total = 1 << args.chunk, 1 << args.patterns
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; command: python {' '.join(sys.argv)}; "
          f"load average {os.getloadavg()[0]:.2f}; {args.workers} worker process(es), chunks of 2^{args.chunk}")
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers) as pool:
        for name in args.formats.split(","):
            if name not in ML:
                parser.error(f"unknown format {name!r}; choose from {', '.join(ML)}")
            wall = time.perf_counter()
            compared = skipped = bad = 0
            first, t_ours, t_theirs = [], 0.0, 0.0
            jobs = [(name, i, step) for i in range(0, total, step)]
            for n, s, b, f, to, tt in pool.imap_unordered(check_chunk, jobs):
                compared, skipped, bad = compared + n, skipped + s, bad + b
                t_ours, t_theirs = t_ours + to, t_theirs + tt
                first = sorted(first + f)[:SHOW]
            wall = time.perf_counter() - wall
            print(f"{name}: {compared} float32 patterns compared, {skipped} NaN patterns skipped, {bad} mismatches; "
                  f"wall {wall:.1f} s; bitsim encode {t_ours:.1f} s, ml_dtypes cast {t_theirs:.1f} s "
                  f"(encode / cast = {t_ours / max(t_theirs, 1e-9):.2f}); load average {os.getloadavg()[0]:.2f}")
            for pattern, ours, theirs in first:
                print(f"  0x{pattern:08x} ({np.uint32(pattern).view(np.float32)!r}): bitsim 0x{ours:02x}, "
                      f"ml_dtypes 0x{theirs:02x}")


if __name__ == "__main__":
    main()
