"""Throughput of bitsim's kernels against numpy doing the same logical job.

Run from the repository root::

    python benchmarks/kernels.py [--quick] [--threads N] [--json FILE]

Every row is one case: the kernel's time (best of several runs, JIT compilation excluded by a
warm-up call), its throughput in G MAC/s counting logical multiply-accumulates (M*N*K for a
GEMM, one bit each for binary operands), the same logical shape done by numpy's float32
matmul (conv: float32 im2col + matmul), measured in the same run with kernel and baseline
runs interleaved so that both see the same machine load, and numpy's int32 matmul, which is
what a naive integer simulator would do. numpy does not use BLAS for integers and runs at
well under 1 G MAC/s, so when a case has more than ``NAIVE_MAX_MACS`` MACs the integer
baseline runs on its first rows only and its throughput is marked ``est.``.

The shift-add and fixed-point GEMM cases live in ``kernels_int.py`` (runnable on its own too) and are
appended to this table. To add a case, append a :class:`Case` to the list that :func:`cases` returns: ``setup`` builds the operands once, ``run`` calls the kernel,
``baseline`` the float32 equivalent, and ``naive`` (optional) the integer one, on operands
that ``setup`` may have cut to ``naive_macs`` MACs.
"""

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, for a smoke run (under ~20 s)")
    parser.add_argument("--threads", type=int, default=None, help="threads for numba and for numpy's BLAS")
    parser.add_argument("--json", metavar="FILE", help="also write one JSON record per row to FILE")
    parser.add_argument("--only", metavar="SUBSTRING", help="run only the cases whose name contains SUBSTRING")
    return parser.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else parse_args([])
if ARGS.threads:
    # must be set before numpy loads OpenBLAS, so that the baselines use the same thread count
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from bitsim.formats.binary import n_words, pack_bits  # noqa: E402
from bitsim.kernels import binary as kb  # noqa: E402

NAIVE_MAX_MACS = 1.1e9  # about 2.5 s of numpy int32 matmul


@dataclass
class Case:
    """One benchmark row.

    ``setup()`` returns a dict of prepared operands shared by the three callables. It must hold
    ``naive_macs`` when ``naive`` works on fewer MACs than ``macs``; ``bytes`` and
    ``float32_bytes`` give the operands' memory in the kernel's format and as float32.
    """

    name: str
    shape: str
    macs: int
    setup: Callable[[], dict]
    run: Callable[[dict], object]
    baseline: Callable[[dict], object]
    naive: Optional[Callable[[dict], object]] = None
    unit: str = "MAC"
    extra: dict = field(default_factory=dict)


def rand_words(rng, rows, n):
    words = rng.integers(0, 2**63, size=(rows, n_words(n)), dtype=np.uint64, endpoint=True)
    if n % 64:
        words[:, -1] &= np.uint64((1 << (n % 64)) - 1)
    return words


def pm1_float(words, n):
    bits = np.unpackbits(words.view(np.uint8), axis=-1, bitorder="little")[..., :n]
    return bits.astype(np.float32) * 2 - 1


def naive_rows(m, n_cols, k):
    """Rows of the left operand that keep the integer baseline under NAIVE_MAX_MACS."""
    return max(1, min(m, int(NAIVE_MAX_MACS // max(1, n_cols * k))))


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


def bitplane_case(m, k, n_cols, bits=8, seed=3):
    def setup():
        rng = np.random.default_rng(seed)
        x = rng.integers(0, 2**bits, size=(m, k), dtype=np.uint8)
        w = rand_words(rng, n_cols, k)
        wf = pm1_float(w, k)
        rows = naive_rows(m, n_cols, k)
        return dict(x=x, w=w, xf=x.astype(np.float32), wft=np.ascontiguousarray(wf.T),
                    xi=x[:rows].astype(np.int32), wit=wf.T.astype(np.int32), naive_macs=rows * n_cols * k,
                    bytes=x.nbytes + w.nbytes, float32_bytes=4 * x.size + wf.nbytes)

    return Case(
        "bitplane_gemm", f"{m}x{k} u{bits} @ {k}x{n_cols} ±1", m * n_cols * k, setup,
        run=lambda s: kb.bitplane_gemm(s["x"], s["w"], k, bits),
        baseline=lambda s: s["xf"] @ s["wft"],
        naive=lambda s: s["xi"] @ s["wit"],
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


def best_times(functions, block=3, min_rounds=3, max_rounds=6, budget=3.0):
    """Best (minimum) wall time of each function.

    The functions take turns in blocks of ``block`` consecutive calls, so that each one is
    timed both early and late in the day's machine load, but not right after a switch only:
    OpenBLAS's and OpenMP's worker threads spin for a while after their call and slow down
    whatever runs next. The first call of each function is a warm-up (JIT compilation).
    """
    for f in functions:
        f()
    times = [[] for _ in functions]
    start = time.perf_counter()
    for rounds in range(1, max_rounds + 1):
        for f, ts in zip(functions, times):
            for _ in range(block):
                t0 = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t0)
        if rounds >= min_rounds and time.perf_counter() - start > budget:
            break
    return [min(ts) for ts in times], len(times[0])


def measure(case):
    s = case.setup()
    (t_kernel, t_base), runs = best_times([lambda: case.run(s), lambda: case.baseline(s)])
    record = dict(
        kernel=case.name, shape=case.shape, unit=case.unit, macs=case.macs, seconds=t_kernel,
        gmacs=case.macs / t_kernel / 1e9, baseline="numpy float32", baseline_seconds=t_base,
        baseline_gmacs=case.macs / t_base / 1e9, ratio=t_base / t_kernel, runs=runs,
        bytes=s["bytes"], float32_bytes=s["float32_bytes"], threads=numba.get_num_threads(),
    )
    if case.naive is not None:
        naive_macs = s.get("naive_macs", case.macs)
        t0 = time.perf_counter()
        case.naive(s)
        t_naive = (time.perf_counter() - t0) * case.macs / naive_macs
        record.update(naive_seconds=t_naive, naive_gmacs=case.macs / t_naive / 1e9,
                      naive_ratio=t_naive / t_kernel, naive_estimated=naive_macs < case.macs)
    return record


def cpu_busy():
    """(busy, total) CPU ticks of the whole machine from /proc/stat, or None off Linux."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]
    return sum(fields[:8]) - idle, sum(fields[:8])


def other_load(before, after, own_seconds):
    """Fraction of the machine's CPU time used by other processes between two cpu_busy() calls."""
    if before is None or after is None or after[1] == before[1]:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    busy = (after[0] - before[0]) / tick
    total = (after[1] - before[1]) / tick
    return max(0.0, busy - own_seconds) / total


def fmt_time(t):
    return f"{t * 1e3:8.2f} ms" if t < 10 else f"{t:8.1f} s "


def print_table(records, file=sys.stdout):
    head = (f"{'kernel':<24} {'shape':<34} {'time':>11} {'G/s':>8} {'f32 G/s':>8} {'x f32':>7}"
            f" {'int G/s':>9} {'x int':>8} {'mem vs f32':>10}")
    print(head, file=file)
    print("-" * len(head), file=file)
    for r in records:
        naive = "-".rjust(9) + " " + "-".rjust(8)
        if "naive_gmacs" in r:
            mark = "~" if r["naive_estimated"] else " "
            naive = f"{mark}{r['naive_gmacs']:8.3f} {r['naive_ratio']:7.0f}x"
        mem = f"1/{r['float32_bytes'] / r['bytes']:.0f}" if r["bytes"] < r["float32_bytes"] else "1"
        print(f"{r['kernel']:<24} {r['shape']:<34} {fmt_time(r['seconds'])} {r['gmacs']:8.1f} "
              f"{r['baseline_gmacs']:8.1f} {r['ratio']:6.2f}x {naive} {mem:>10}", file=file)


def main():
    threads = ARGS.threads or numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(threads)
    print(f"bitsim kernels, {threads} numba thread(s); numpy {np.__version__}, numba {numba.__version__}")
    print("time = best of the runs of each row (kernel and float32 baseline alternating in blocks, warm-up excluded)")
    print("G/s = G MAC/s (threshold_pack: G comparisons/s); x f32 = kernel speed / numpy float32 matmul")
    print("(conv: float32 im2col + matmul; threshold_pack: numpy compare + packbits) of the same logical shape;")
    print("int = numpy int32 matmul, what a naive integer simulator does, ~ = estimated from its first rows")
    print()
    from kernels_int import cases as integer_cases  # shift-add and fixed-point GEMMs, same table
    from kernels_u8 import cases as u8_cases  # uint8 x int8 GEMM (a BNN's first layer), same table

    records = []
    for case in cases(ARGS.quick) + integer_cases(ARGS.quick) + u8_cases(ARGS.quick):
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
        print(f"\nother processes used {100 * max(loads):.0f}% of the machine's CPU time during the busiest row"
              f" ({100 * sum(loads) / len(loads):.0f}% on average); rerun if that is not near 0")
    if ARGS.json:
        Path(ARGS.json).write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
