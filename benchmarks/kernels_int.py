"""Throughput of bitsim's integer kernels (shift-add and fixed-point GEMM) against numpy.

Run from the repository root::

    python benchmarks/kernels_int.py [--quick] [--threads N] [--json FILE] [--only SUBSTRING]

The cases are :class:`harness.Case` rows, timed and printed by ``harness.py``, and ``kernels.py``
appends :func:`cases` to its own table. Columns: the kernel's time (best of several runs, JIT
warm-up excluded), its G MAC/s, numpy float32 matmul of the same logical shape measured in the
same run (kernel and baseline alternating), and the "naive simulator" baseline, numpy int64 matmul ``a.astype(int64) @ b.astype(int64).T``, which does
not use BLAS: at 4096^3 it would take over an hour, so there it runs on the first rows only and
its speed is marked ``~`` (estimated).

Operand ranges (realistic for an 8-bit / 16-bit network):

* shift-add, fixed x log: activations int8 Q3.4 quantized from N(0, 1) (|code| <= 80 or so),
  weights log5 (sign + 4-bit exponent, offset -4: ±2^-11..±2^3) from N(0, 0.05), FLOOR;
* shift-add, log x fixed (``dW = delta^T x_log``): activations log5 from |N(0, 1)|, deltas
  int16 Q3.12 from N(0, 0.1) (|code| < 2^11), FLOOR;
* int8 GEMM: activations Q3.4 from N(0, 1), weights Q0.7 from N(0, 0.1);
* int16 GEMM: activations Q7.8 from N(0, 2) (|code| < 2^11), weights Q0.15 from N(0, 0.05)
  (|code| < 2^13); products below 2^24, so int32 blocks of 127 products are proven safe.
"""

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

import harness  # noqa: E402  (before numpy: it applies --threads)
import numpy as np  # noqa: E402

from bitsim.formats.fixed import FixedFormat, quantize  # noqa: E402
from bitsim.formats.log import LogFormat, decode, encode  # noqa: E402
from bitsim.kernels import intmatmul as kf  # noqa: E402
from bitsim.kernels import shift as ks  # noqa: E402
from harness import Case, naive_rows  # noqa: E402

X8, W8 = FixedFormat(8, 4), FixedFormat(8, 7)
X16, W16 = FixedFormat(16, 8), FixedFormat(16, 15)
D16 = FixedFormat(16, 12)
LOG5 = LogFormat(exp_bits=4, exp_offset=-4)
NOTES = [
    "G/s = G MAC/s; x f32 = kernel speed / numpy float32 matmul of the same logical shape, same run;",
    "int = numpy int64 matmul a.astype(int64) @ b.astype(int64).T (no BLAS), ~ = estimated from its first rows",
]


def operands(fixed_a, b, rows):
    """The dict every case shares: float32 and int64 copies of the logical operands."""
    af = fixed_a[0].astype(np.float32)
    bf = b[0].astype(np.float32)
    return dict(
        af=af, bft=np.ascontiguousarray(bf.T),
        ai=fixed_a[1][:rows].astype(np.int64), bi=b[1].astype(np.int64),
        bytes=fixed_a[1].nbytes + b[1].nbytes, float32_bytes=af.nbytes + bf.nbytes,
    )


def shift_case(m, n_cols, k, mirror=False, seed=10):
    def setup():
        rng = np.random.default_rng(seed)
        rows = naive_rows(m, n_cols, k)
        if not mirror:
            x = quantize(rng.normal(0, 1, (m, k)), X8)
            w = encode(rng.normal(0, 0.05, (n_cols, k)).astype(np.float32), LOG5)
            wv = np.rint(decode(w, LOG5) * 2**11).astype(np.int64)  # the log operand as integers
            s = operands((x, x), (w, wv), rows)
            s.update(x=x, w=w, bytes=x.nbytes + w.nbytes)
        else:
            a = encode(np.abs(rng.normal(0, 1, (m, k))).astype(np.float32), LOG5)
            d = quantize(rng.normal(0, 0.1, (n_cols, k)), D16)
            av = np.rint(decode(a, LOG5) * 2**11).astype(np.int64)
            s = operands((av, av), (d, d), rows)
            s.update(a=a, d=d, bytes=a.nbytes + d.nbytes)
        s["naive_macs"] = rows * n_cols * k
        return s

    if mirror:
        name, run = "shift_add log x fix16", lambda s: ks.log_fixed_matmul(s["a"], LOG5, s["d"], D16.frac_bits)
    else:
        name, run = "shift_add fix8 x log", lambda s: ks.fixed_log_matmul(s["x"], X8.frac_bits, s["w"], LOG5)
    return Case(name, f"{m}x{n_cols}x{k}", m * n_cols * k, setup, run,
                baseline=lambda s: s["af"] @ s["bft"], naive=lambda s: s["ai"] @ s["bi"].T)


def fixed_case(m, n_cols, k, bits, route, seed=20):
    fx, fw = (X8, W8) if bits == 8 else (X16, W16)
    sigma = (1.0, 0.1) if bits == 8 else (2.0, 0.05)

    def setup():
        rng = np.random.default_rng(seed)
        x = quantize(rng.normal(0, sigma[0], (m, k)), fx)
        w = quantize(rng.normal(0, sigma[1], (n_cols, k)), fw)
        rows = naive_rows(m, n_cols, k)
        s = operands((x, x), (w, w), rows)
        s.update(x=x, w=w, naive_macs=rows * n_cols * k)
        return s

    how = kf.plan(fx, fw, k, route)
    return Case(f"fixed int{bits} {how}", f"{m}x{n_cols}x{k}", m * n_cols * k, setup,
                run=lambda s: kf.matmul(s["x"], fx, s["w"], fw, route=route),
                baseline=lambda s: s["af"] @ s["bft"], naive=lambda s: s["ai"] @ s["bi"].T)


def cases(quick=False):
    sizes = [256] if quick else [1024, 4096]
    out = []
    for n in sizes:
        out += [
            shift_case(n, n, n),
            shift_case(n, n, n, mirror=True),
            fixed_case(n, n, n, 8, "integer"),
            fixed_case(n, n, n, 8, "blas"),
            fixed_case(n, n, n, 16, "integer"),
            fixed_case(n, n, n, 16, "blas"),
        ]
    return out


def main():
    args = harness.parse_args(__doc__)
    harness.run("bitsim integer kernels", NOTES, cases(args.quick), args)


if __name__ == "__main__":
    main()
