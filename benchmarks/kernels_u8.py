"""Throughput of bitsim's exact uint8 x int8 GEMM (a BNN's first layer) against numpy.

Run from the repository root::

    python benchmarks/kernels_u8.py [--quick] [--threads N] [--json FILE] [--only SUBSTRING]

The cases are :class:`harness.Case` rows, timed and printed by ``harness.py``, and ``kernels.py``
appends :func:`cases` to its own table. Columns: the kernel's time (best of several runs, JIT
warm-up excluded), its G MAC/s, numpy float32 matmul of the same logical shape measured in the
same run (kernel and baseline alternating in blocks), and the "naive simulator" baseline, numpy
int64 matmul ``x.astype(int64) @ w.astype(int64).T``, which does not use BLAS: on large shapes it
runs on the first rows only and its speed is marked ``~`` (estimated).

Operands: pixels uniform in 0..255 (uint8); weights ±1 (int8, as
:func:`bitsim.kernels.u8.pm1_int8` unpacks a deployed layer's packed weights, cached by the
caller), which run the AVX2 ``vpmaddubsw`` kernel with 64 int16 steps; one row with full-range
int8 weights (-128..127), where the int16 bound fails and the exact fallback
(:func:`bitsim.kernels.intmatmul.matmul` on int16 codes) runs; and, for comparison, the
``bitplane_gemm`` kernel that computed the first layer before, on the same shape.
"""

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

import harness  # noqa: E402  (before numpy: it applies --threads)
import numpy as np  # noqa: E402

from bitsim.kernels import u8 as ku  # noqa: E402
from harness import Case, bitplane_case, naive_rows  # noqa: E402

NOTES = [
    "G/s = G MAC/s; x f32 = kernel speed / numpy float32 matmul of the same logical shape, same run;",
    "int = numpy int64 matmul x.astype(int64) @ w.astype(int64).T (no BLAS), ~ = estimated from its first rows",
]


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
    args = harness.parse_args(__doc__)
    records = harness.run("bitsim uint8 x int8 GEMM", NOTES, cases(args.quick), args)
    harness.print_load(records, per_row=True)


if __name__ == "__main__":
    main()
