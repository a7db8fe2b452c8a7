"""Throughput of bitsim's kernels against numpy doing the same logical job.

Run from the repository root::

    python benchmarks/kernels.py [--quick] [--threads N] [--json FILE]

Every row is one case: the kernel's time (best of several runs, JIT compilation excluded by a
warm-up call), its throughput in G MAC/s counting logical multiply-accumulates (M*N*K for a
GEMM, one bit each for binary operands), the same logical shape done by numpy's float32
matmul (conv: float32 im2col + matmul), measured in the same run with kernel and baseline
runs interleaved so that both see the same machine load, and numpy's int32 matmul, which is
what a naive integer simulator would do. numpy does not use BLAS for integers and runs at
well under 1 G MAC/s, so when a case has more than ``harness.NAIVE_MAX_MACS`` MACs the integer
baseline runs on its first rows only and its throughput is marked ``~`` (estimated).

The shift-add and fixed-point GEMM cases of ``kernels_int.py`` and the uint8 x int8 GEMM cases of
``kernels_u8.py`` and the MX GEMM cases of ``kernels_mx.py`` (MXFP8 and MXFP4, exact accumulation, at
1024^3 and 4096^3; each script runnable on its own too) are appended to this table. To add a case, append a
:class:`harness.Case` to the list that :func:`cases` returns: ``setup`` builds the operands once,
``run`` calls the kernel, ``baseline`` the float32 equivalent, and ``naive`` (optional) the integer
one, on operands that ``setup`` may have cut to ``naive_macs`` MACs.
"""

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

import harness  # noqa: E402  (before numpy: it applies --threads)
import numpy as np  # noqa: E402

from bitsim.formats.binary import pack_bits  # noqa: E402
from bitsim.kernels import xnor as kb  # noqa: E402
from harness import Case, bitplane_case, naive_rows, pm1_float, rand_words  # noqa: E402
from kernels_int import cases as integer_cases  # noqa: E402
from kernels_mx import NOTES as MX_NOTES  # noqa: E402
from kernels_mx import cases as mx_cases  # noqa: E402
from kernels_u8 import cases as u8_cases  # noqa: E402

NOTES = [
    "G/s = G MAC/s (threshold_pack: G comparisons/s); x f32 = kernel speed / numpy float32 matmul",
    "(conv: float32 im2col + matmul; threshold_pack: numpy compare + packbits) of the same logical shape;",
    "int = numpy int32 matmul, what a naive integer simulator does, ~ = estimated from its first rows",
]


def gemm_case(m, n_cols, k, seed=0):
    def setup():
        rng = np.random.default_rng(seed)
        a, b = rand_words(rng, m, k), rand_words(rng, n_cols, k)
        af, bf = pm1_float(a, k), pm1_float(b, k)
        rows = naive_rows(m, n_cols, k)
        return dict(
            a=a, b=b, af=af, bft=np.ascontiguousarray(bf.T),
            ai=af[:rows].astype(np.int32), bit=bf.T.astype(np.int32), naive_macs=rows * n_cols * k,
            bytes=a.nbytes + b.nbytes, float32_bytes=af.nbytes + bf.nbytes,
        )

    return Case(
        "xnor_gemm", f"{m}x{n_cols}x{k}", m * n_cols * k, setup,
        run=lambda s: kb.xnor_gemm(s["a"], s["b"], k),
        baseline=lambda s: s["af"] @ s["bft"],
        naive=lambda s: s["ai"] @ s["bit"],
    )


def gemv_case(m, k, seed=1):
    def setup():
        rng = np.random.default_rng(seed)
        a, x = rand_words(rng, m, k), rand_words(rng, 1, k)[0]
        af, xf = pm1_float(a, k), pm1_float(x, k)
        return dict(a=a, x=x, af=af, xf=xf, ai=af.astype(np.int32), xi=xf.astype(np.int32),
                    bytes=a.nbytes + x.nbytes, float32_bytes=af.nbytes + xf.nbytes)

    return Case(
        "xnor_gemv", f"{m}x{k}", m * k, setup,
        run=lambda s: kb.xnor_gemv(s["a"], s["x"], k),
        baseline=lambda s: s["af"] @ s["xf"],
        naive=lambda s: s["ai"] @ s["xi"],
    )


def im2col(x, kh, kw, stride, pad):
    """Float/int im2col by copying each tap: (N*OH*OW, KH*KW*C), zero padding."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    nb, h, w, c = x.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    cols = np.empty((nb, oh, ow, kh, kw, c), dtype=x.dtype)
    for u in range(kh):
        for v in range(kw):
            cols[:, :, :, u, v, :] = x[:, u : u + stride * (oh - 1) + 1 : stride, v : v + stride * (ow - 1) + 1 : stride]
    return cols.reshape(nb * oh * ow, kh * kw * c)


def conv_case(nb, size, c, nout, k=3, stride=1, pad=1, seed=2):
    oh = (size + 2 * pad - k) // stride + 1
    macs = nb * oh * oh * nout * k * k * c

    def setup():
        rng = np.random.default_rng(seed)
        x = rand_words(rng, nb * size * size, c).reshape(nb, size, size, -1)
        w = rand_words(rng, nout * k * k, c).reshape(nout, k, k, -1)
        xf, wf = pm1_float(x, c), pm1_float(w, c)
        wft = np.ascontiguousarray(wf.reshape(nout, -1).T)
        rows = naive_rows(nb * oh * oh, nout, k * k * c)
        cols = im2col(xf[: -(-rows // (oh * oh))], k, k, stride, pad)[:rows]
        return dict(x=x, w=w, xf=xf, wft=wft, ci=cols.astype(np.int32), wit=wft.astype(np.int32),
                    naive_macs=rows * nout * k * k * c, bytes=x.nbytes + w.nbytes, float32_bytes=xf.nbytes + wf.nbytes)

    return Case(
        "binary_conv2d", f"N{nb} {size}x{size}x{c} -> {nout}, {k}x{k} s{stride} p{pad}", macs, setup,
        run=lambda s: kb.binary_conv2d(s["x"], s["w"], c, stride, pad),
        baseline=lambda s: im2col(s["xf"], k, k, stride, pad) @ s["wft"],
        naive=lambda s: s["ci"] @ s["wit"],
    )


def ternary_case(m, n_cols, k, binary_right=False, seed=4):
    def ternary(rng, rows):
        values = rng.integers(-1, 2, size=(rows, k)).astype(np.int8)
        return values, pack_bits(values > 0), pack_bits(values != 0)

    def setup():
        rng = np.random.default_rng(seed)
        av, sa, ma = ternary(rng, m)
        if binary_right:
            b = rand_words(rng, n_cols, k)
            bv = pm1_float(b, k)
            right = dict(b=b, bytes=sa.nbytes + ma.nbytes + b.nbytes)
        else:
            bv, sb, mb = ternary(rng, n_cols)
            right = dict(sb=sb, mb=mb, bytes=sa.nbytes + ma.nbytes + sb.nbytes + mb.nbytes)
        rows = naive_rows(m, n_cols, k)
        return dict(sa=sa, ma=ma, af=av.astype(np.float32), bft=np.ascontiguousarray(bv.T.astype(np.float32)),
                    ai=av[:rows].astype(np.int32), bit=bv.T.astype(np.int32), naive_macs=rows * n_cols * k,
                    float32_bytes=4 * (m + n_cols) * k, **right)

    if binary_right:
        name, run = "ternary_binary_gemm", lambda s: kb.ternary_binary_gemm(s["sa"], s["ma"], s["b"], k)
    else:
        name, run = "ternary_gemm", lambda s: kb.ternary_gemm(s["sa"], s["ma"], s["sb"], s["mb"], k)
    return Case(name, f"{m}x{n_cols}x{k}", m * n_cols * k, setup, run,
                baseline=lambda s: s["af"] @ s["bft"], naive=lambda s: s["ai"] @ s["bit"])


def threshold_case(m, c, seed=5):
    def setup():
        rng = np.random.default_rng(seed)
        acc = rng.integers(-500, 500, size=(m, c)).astype(np.int32)
        t = rng.integers(-50, 50, size=c).astype(np.int32)
        flip = rng.random(c) < 0.3
        return dict(acc=acc, t=t, flip=flip, bytes=acc.nbytes, float32_bytes=acc.nbytes)

    return Case(
        "threshold_pack", f"{m}x{c}", m * c, setup,
        run=lambda s: kb.threshold_pack(s["acc"], s["t"], s["flip"]),
        baseline=lambda s: pack_bits(np.where(s["flip"], s["acc"] <= s["t"], s["acc"] >= s["t"])),
        unit="cmp",
    )


def cases(quick=False):
    if quick:
        return [
            gemm_case(256, 256, 1024),
            gemv_case(1024, 1024),
            conv_case(1, 16, 128, 128),
            bitplane_case(100, 784, 512),
            ternary_case(256, 256, 1024),
            ternary_case(256, 256, 1024, binary_right=True),
            threshold_case(4096, 256),
        ]
    return [
        gemm_case(1024, 1024, 1024),
        gemm_case(4096, 4096, 4096),
        gemv_case(4096, 4096),
        conv_case(8, 56, 256, 256),
        bitplane_case(1000, 784, 4096),
        ternary_case(2048, 2048, 2048),
        ternary_case(2048, 2048, 2048, binary_right=True),
        threshold_case(8 * 56 * 56, 256),
    ]


def main():
    args = harness.parse_args(__doc__, quick="small shapes, for a smoke run (under ~20 s)")
    every = cases(args.quick) + integer_cases(args.quick) + u8_cases(args.quick) + mx_cases(args.quick)
    records = harness.run("bitsim kernels", NOTES + MX_NOTES, every, args)
    harness.print_load(records)


if __name__ == "__main__":
    main()
