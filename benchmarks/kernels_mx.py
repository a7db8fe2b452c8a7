"""Throughput of bitsim's MX GEMM (exact accumulation) against numpy float32 matmul of the same shape.

Run from the repository root::

    python benchmarks/kernels_mx.py [--quick] [--threads N] [--json FILE] [--only SUBSTRING]

Operands are standard normal, quantized once (not timed) to MXFP8 (E4M3) or MXFP4 (E2M1) in blocks of
32 along K, OCP floor scales. The timed call is :func:`bitsim.kernels.mx.gemm` with the exact rule and
its automatic route, which for these operands is (the setup checks it): MXFP4, the shifted-integer route
(one uint8 x int8 AVX2 GEMM, :func:`bitsim.kernels.mx.int8_route`); MXFP8, a float64 BLAS product of the
decoded values, exact by the bound check. The ``integer`` rows time the integer kernel alone
(``route='integer'``) on fewer rows. The cases are appended to ``kernels.py``'s table too.
"""

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

import harness  # noqa: E402  (before numpy: it applies --threads)
import numpy as np  # noqa: E402

from bitsim.formats import mx  # noqa: E402
from bitsim.kernels import mx as kmx  # noqa: E402
from harness import Case  # noqa: E402

AUTO_ROUTE = {"mxfp8_e4m3": "blas float64", "mxfp4_e2m1": "int8"}
NOTES = ["mx_gemm: exact accumulation (rounded once to float32); auto route: MXFP4 int8 (shifted integers, "
         "uint8 x int8 AVX2 GEMM), MXFP8 float64 BLAS; x f32 = speed / numpy float32 matmul"]


def mx_case(fmt, m, n_cols, k, route="auto", rows=None, seed=11):
    rows = rows or m

    def setup():
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((rows, k)).astype(np.float32)
        w = rng.standard_normal((k, n_cols)).astype(np.float32)
        a, b = mx.quantize(x, fmt, axis=1), mx.quantize(w, fmt, axis=0)
        taken = set(kmx.auto_routes(a, b))
        if route == "auto" and taken != {AUTO_ROUTE[fmt]}:
            raise RuntimeError(f"{fmt}: the automatic route is {taken}, not the {AUTO_ROUTE[fmt]!r} this row reports")
        bits = 8 if "fp8" in fmt else 4
        xf = rng.standard_normal((m, k)).astype(np.float32)
        return dict(a=a, b=b, xf=xf, wf=w, bytes=(rows * k + k * n_cols) * bits // 8 + (rows + n_cols) * k // 32,
                    float32_bytes=4 * (m * k + k * n_cols))

    return Case(f"mx_gemm {fmt} {route}", f"{rows}x{n_cols}x{k}", rows * n_cols * k, setup,
                run=lambda s: kmx.gemm(s["a"], s["b"], "exact", route),
                baseline=lambda s: s["xf"][:rows] @ s["wf"])


def cases(quick=False):
    if quick:
        return [mx_case("mxfp8_e4m3", 256, 256, 256), mx_case("mxfp4_e2m1", 256, 256, 256),
                mx_case("mxfp8_e4m3", 256, 256, 256, "integer", rows=32)]
    return [mx_case("mxfp8_e4m3", 1024, 1024, 1024), mx_case("mxfp4_e2m1", 1024, 1024, 1024),
            mx_case("mxfp8_e4m3", 4096, 4096, 4096), mx_case("mxfp4_e2m1", 4096, 4096, 4096),
            mx_case("mxfp8_e4m3", 1024, 1024, 1024, "integer", rows=64),
            mx_case("mxfp4_e2m1", 1024, 1024, 1024, "integer", rows=64)]


def main():
    args = harness.parse_args(__doc__)
    records = harness.run("bitsim MX kernels", NOTES, cases(args.quick), args)
    harness.print_load(records)


if __name__ == "__main__":
    main()
