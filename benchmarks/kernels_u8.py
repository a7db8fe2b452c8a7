"""Throughput of bitsim's exact uint8 x int8 GEMM (a BNN's first layer) against numpy.

Run from the repository root::

    python benchmarks/kernels_u8.py [--quick] [--threads N] [--json FILE] [--only SUBSTRING]

The cases have the shape of those of ``benchmarks/kernels.py`` (its :class:`Case`, timing and
table are reused), and ``kernels.py`` appends :func:`cases` to its own table. Columns: the
kernel's time (best of several runs, JIT warm-up excluded), its G MAC/s, numpy float32 matmul of
the same logical shape measured in the same run (kernel and baseline alternating in blocks), and
the "naive simulator" baseline, numpy int64 matmul ``x.astype(int64) @ w.astype(int64).T``, which
does not use BLAS: on large shapes it runs on the first rows only and its speed is marked ``~``
(estimated).

Operands: pixels uniform in 0..255 (uint8); weights ±1 (int8, as
:func:`bitsim.kernels.u8.pm1_int8` unpacks a deployed layer's packed weights, cached by the
caller), which run the AVX2 ``vpmaddubsw`` kernel with 64 int16 steps; one row with full-range
int8 weights (-128..127), where the int16 bound fails and the exact fallback
(:func:`bitsim.kernels.fixed.matmul` on int16 codes) runs; and, for comparison, the
``bitplane_gemm`` kernel that computed the first layer before, on the same shape.
"""

import argparse
import os
import sys
from pathlib import Path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, for a smoke run")
    parser.add_argument("--threads", type=int, default=None, help="threads for numba and for numpy's BLAS")
    parser.add_argument("--json", metavar="FILE", help="also write one JSON record per row to FILE")
    parser.add_argument("--only", metavar="SUBSTRING", help="run only the cases whose name contains SUBSTRING")
    return parser.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else parse_args([])
if ARGS.threads:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import json  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

from bitsim.kernels import u8 as ku  # noqa: E402
from kernels import Case, bitplane_case, cpu_busy, measure, other_load, print_table  # noqa: E402

NAIVE_MAX_MACS = 1.1e9  # about 1 s of numpy int64 matmul


def naive_rows(m, n_cols, k):
    return max(1, min(m, int(NAIVE_MAX_MACS // max(1, n_cols * k))))


def u8_case(m, k, n_cols, weights="pm1", seed=30):
    def setup():
        rng = np.random.default_rng(seed)
        x = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
        if weights == "pm1":
            w = np.where(rng.random((n_cols, k)) < 0.5, 1, -1).astype(np.int8)
        else:
            w = rng.integers(-128, 128, size=(n_cols, k), dtype=np.int8)
        rows = naive_rows(m, n_cols, k)
        return dict(
            x=x, w=w, xf=x.astype(np.float32), wft=np.ascontiguousarray(w.T.astype(np.float32)),
            xi=x[:rows].astype(np.int64), wi=w.astype(np.int64), naive_macs=rows * n_cols * k,
            bytes=x.nbytes + w.nbytes, float32_bytes=4 * (x.size + w.size),
        )

    name = "u8s8_matmul" if weights == "pm1" else "u8s8_matmul int8 fallback"
    return Case(
        name, f"{m}x{k} u8 @ {k}x{n_cols} {'±1' if weights == 'pm1' else 'i8'}", m * n_cols * k, setup,
        run=lambda s: ku.u8s8_matmul(s["x"], s["w"]),
        baseline=lambda s: s["xf"] @ s["wft"],
        naive=lambda s: s["xi"] @ s["wi"].T,
    )


def cases(quick=False):
    if quick:
        return [u8_case(256, 784, 512), u8_case(256, 256, 256, "int8")]
    return [
        u8_case(1000, 784, 2048),
        bitplane_case(1000, 784, 2048),
        u8_case(1000, 784, 2048, "int8"),
        u8_case(1024, 1024, 1024),
        u8_case(4096, 4096, 4096),
    ]


def main():
    threads = ARGS.threads or numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(threads)
    print(f"bitsim uint8 x int8 GEMM, {threads} numba thread(s); numpy {np.__version__}, numba {numba.__version__}")
    print("time = best of the runs of each row (kernel and float32 baseline alternating in blocks, warm-up excluded)")
    print("G/s = G MAC/s; x f32 = kernel speed / numpy float32 matmul of the same logical shape, same run;")
    print("int = numpy int64 matmul x.astype(int64) @ w.astype(int64).T (no BLAS), ~ = estimated from its first rows")
    print()
    records = []
    for case in cases(ARGS.quick):
        if ARGS.only and ARGS.only not in case.name:
            continue
        print(f"  measuring {case.name} {case.shape} ...", file=sys.stderr, flush=True)
        before, own = cpu_busy(), sum(os.times()[:4])
        record = measure(case)
        record["other_load"] = other_load(before, cpu_busy(), sum(os.times()[:4]) - own)
        records.append(record)
    print_table(records)
    loads = [r["other_load"] for r in records if r["other_load"] is not None]
    if loads:
        print("\nother processes' share of the machine's CPU time per row: "
              + ", ".join(f"{100 * v:.0f}%" for v in loads) + "; rerun if these are not near 0")
    if ARGS.json:
        Path(ARGS.json).write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
