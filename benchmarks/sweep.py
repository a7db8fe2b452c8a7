"""Sweep throughput: points per second of the serial path, one and two local Dask workers, and the scheduler's
overhead per point, on a sweep of a Connect MLP (``docs/sweep.md``, "Speed").

    python benchmarks/sweep.py [--model best.json] [--size 10000] [--quick]

Without ``--model`` a Connect MLP (784-256-256-256-10, BinaryConnect) is trained for one epoch on 10,000
images first. ``--quick`` checks that the benchmark runs (a 784-64-64-64-10 MLP trained on 2,000 images, 100
test images per point): its numbers are dominated by the scheduler, not a measurement. The baseline printed
beside each point's time is the float64 forward pass of the same network on the same images, measured in the
same run. Points use the whole MNIST test set by default, as a real sweep does; with fewer images per point
the per-worker start (loading the compiled kernels) and the client process sharing the cores weigh more
(1,000 images per point: about 1.4x on two workers). Overhead per point: the one-worker wall time of the
points less the time the points themselves took on the worker, divided by the number of points, as a share
of a point's mean time. Starting a cluster is
timed apart. Every engine runs one thread per process (the serial path too: bitsim's parallel Numba
quantizers would otherwise use every core in the serial run). The machine's load (``uptime``) is printed:
other work on it makes the numbers noisy.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# the serial path on one thread too, as each worker: numpy's BLAS and numba read these once, when they load
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
              "OMP_WAIT_POLICY": "PASSIVE"}
os.environ.update(ONE_THREAD)

from bitsim.datasets import load_mnist  # noqa: E402
from bitsim.sweep import run_sweep  # noqa: E402
from bitsim.sweep.engine import THREAD_VARIABLES  # noqa: E402
from bitsim.sweep.network import load_network, run_float64  # noqa: E402

assert ONE_THREAD == THREAD_VARIABLES, "the serial run must have the workers' threads"

SPEC = """\
[model]
kind = "connect"
file = "{model}"

[data]
size = {size}
calibration = 500

[[space.layers]]
names = "*"
weight = [{{format = "binary"}}, {{format = "ternary"}}, {{format = "fixed", bits = [4, 8]}}]
activation = {{format = "fixed", bits = [4, 6, 8, 12]}}

[accumulator]
bits = [16, 24]
edge = ["wrap", "saturate"]
"""


def train(directory, quick=False):
    from bitsim.methods import connect

    cfg = connect.ConnectConfig(weights="binary", hidden=64 if quick else 256, layers=3, epochs=1,
                                train_size=2_000 if quick else 10_000, validation_size=0,
                                calibration_size=500 if quick else 2_000)
    connect.train(cfg, out_dir=directory, progress=False, log=lambda line: None)
    return Path(directory) / "best.json"


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a `bitsim train connect` best.json (default: train one briefly)")
    parser.add_argument("--size", type=int, default=None, help="test images per point (default 10000, the whole "
                                                                    "test set, as a real sweep evaluates a point)")
    parser.add_argument("--quick", action="store_true", help="a small model and 100 images per point: checks that "
                                                             "the benchmark runs")
    args = parser.parse_args()
    args.size = args.size or (100 if args.quick else 10_000)
    tmp = Path(tempfile.mkdtemp(prefix="bitsim-sweep-bench-"))
    model = Path(args.model).resolve() if args.model else train(tmp / "model", args.quick)
    spec = tmp / "bench.toml"
    spec.write_text(SPEC.format(model=model, size=args.size))
    print(f"load before: {uptime()}")
    net = load_network("connect", model)
    images = load_mnist()["x_test"][:args.size]
    t0 = time.perf_counter()
    for _ in range(5):
        run_float64(net, images)
    float_seconds = (time.perf_counter() - t0) / 5
    rows = {}
    for name, workers in (("serial", 0), ("1 worker", 1), ("2 workers", 2)):
        result = run_sweep(spec, tmp / name.replace(" ", "-"), workers=workers, progress=False, log=lambda line: None)
        timing = (tmp / name.replace(" ", "-") / "timing.csv").read_text().splitlines()[1:]
        task_seconds = sum(float(line.split(",")[1]) for line in timing)
        rows[name] = dict(points=result["points"], seconds=result["points_seconds"], total=result["seconds"],
                          task_seconds=task_seconds,
                          same=(tmp / name.replace(" ", "-") / "summary.csv").read_bytes()
                          == (tmp / "serial" / "summary.csv").read_bytes())
    n = rows["serial"]["points"]
    point = rows["serial"]["seconds"] / n
    print(f"\nsweep of {n} points of the Connect MLP {'-'.join(str(l.inputs) for l in net.layers)}-10, "
          f"{args.size} test images per point")
    print(f"float64 forward of the same network on the same images: {1000 * float_seconds:.1f} ms "
          f"(a point takes {point / float_seconds:.1f}x that: quantizers and the narrow-accumulator kernel)")
    print(f"{'engine':10s} {'points/s':>9s} {'vs serial':>9s} {'points s':>9s} {'+start/stop s':>13s} "
          f"{'summary':>10s}")
    for name, r in rows.items():
        print(f"{name:10s} {r['points'] / r['seconds']:9.2f} {rows['serial']['seconds'] / r['seconds']:8.2f}x "
              f"{r['seconds']:9.2f} {r['total'] - r['seconds']:13.2f} {'identical' if r['same'] else 'DIFFERS':>10s}")
    one = rows["1 worker"]
    overhead = (one["seconds"] - one["task_seconds"]) / n
    mean_task = one["task_seconds"] / n
    print(f"scheduler overhead per point (1 worker: wall time less the points' own time): {1000 * overhead:.1f} ms "
          f"= {100 * overhead / mean_task:.1f}% of a point's {1000 * mean_task:.0f} ms")
    print(f"2 workers against serial: {rows['serial']['seconds'] / rows['2 workers']['seconds']:.2f}x "
          f"(target >= 1.7x); overhead target < 5%")
    print(f"load after: {uptime()}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
