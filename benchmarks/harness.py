"""The benchmark harness that ``kernels.py``, ``kernels_int.py`` and ``kernels_u8.py`` share.

A benchmark is a list of :class:`Case`; :func:`run` times each against its float32 NumPy baseline
in the same run (:func:`measure`), notes how busy the rest of the machine was (:func:`cpu_busy`,
:func:`other_load`) and prints one table (:func:`print_table`). :func:`rand_words`,
:func:`pm1_float`, :func:`naive_rows` and :func:`bitplane_case` build operands for several scripts.

Importing this module applies the ``--threads N`` of a benchmark script's command line to numpy's
BLAS and to numba, which read their thread counts once, when they load: a script imports it before
numpy.
"""

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

HERE = Path(__file__).resolve().parent
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def threads_asked(argv):
    """The ``--threads`` value of a command line, or None; :func:`parse_args` reports a bad one."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--threads", nargs="?")
    value = parser.parse_known_args(argv)[0].threads
    return int(value) if value and value.isdigit() else None


if Path(sys.argv[0]).resolve().parent == HERE and threads_asked(sys.argv[1:]):
    for var in THREAD_VARS:
        os.environ[var] = str(threads_asked(sys.argv[1:]))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from bitsim.formats.binary import n_words  # noqa: E402
from bitsim.kernels import xnor as kb  # noqa: E402

NAIVE_MAX_MACS = 1.1e9  # about 1 s of numpy int64 matmul, 2.5 s of int32
TIMING = ("time = best of the runs of each row (kernel and float32 baseline alternating in blocks, each block after "
          "an untimed pause in which the other's threads stop spinning; warm-up excluded)")
SPIN_PAUSE = 0.3  # seconds: OpenBLAS's and OpenMP's idle threads spin for about this long after a call


def parse_args(doc, quick="small shapes, for a smoke run", argv=None):
    """The options every kernel benchmark takes.

    Parameters
    ----------
    doc : str
        The script's docstring; its first paragraph describes the script in ``--help``.
    quick : str
        Help of ``--quick``.
    argv : list of str, optional
        The command line; ``sys.argv[1:]`` by default.

    Returns
    -------
    argparse.Namespace
        ``quick``, ``threads``, ``json`` and ``only``.
    """
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--threads", type=int, default=None, help="threads for numba and for numpy's BLAS")
    parser.add_argument("--json", metavar="FILE", help="also write one JSON record per row to FILE")
    parser.add_argument("--only", metavar="SUBSTRING", help="run only the cases whose name contains SUBSTRING")
    return parser.parse_args(argv)


@dataclass
class Case:
    """One benchmark row.

    Parameters
    ----------
    name, shape : str
        The row's first two columns.
    macs : int
        Logical multiply-accumulates (or ``unit``) of one call.
    setup : callable
        ``setup()`` returns a dict of prepared operands shared by the three callables. It holds
        ``bytes`` and ``float32_bytes``, the operands' memory in the kernel's format and as
        float32, and ``naive_macs`` when ``naive`` works on fewer MACs than ``macs``.
    run, baseline : callable
        ``run(s)`` calls the kernel, ``baseline(s)`` does the same logical job in float32 NumPy.
    naive : callable, optional
        ``naive(s)`` does it with NumPy's integer matmul, what a naive integer simulator does.
    unit : str
        What ``macs`` counts.
    extra : dict
        Anything else about the case.
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
    """``rows`` random bit vectors of length ``n`` packed in uint64 words, padding bits zero."""
    words = rng.integers(0, 2**63, size=(rows, n_words(n)), dtype=np.uint64, endpoint=True)
    if n % 64:
        words[:, -1] &= np.uint64((1 << (n % 64)) - 1)
    return words


def pm1_float(words, n):
    """The first ``n`` bits of each row of ``words`` as float32 ±1."""
    bits = np.unpackbits(words.view(np.uint8), axis=-1, bitorder="little")[..., :n]
    return bits.astype(np.float32) * 2 - 1


def naive_rows(m, n_cols, k):
    """Rows of the left operand that keep the integer baseline under ``NAIVE_MAX_MACS``."""
    return max(1, min(m, int(NAIVE_MAX_MACS // max(1, n_cols * k))))


def bitplane_case(m, k, n_cols, bits=8, seed=3):
    """``bitplane_gemm`` of ``m x k`` unsigned ``bits``-bit codes by ``k x n_cols`` ±1 weights."""
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


def best_times(functions, block=3, min_rounds=3, max_rounds=6, budget=3.0, pause=SPIN_PAUSE):
    """Best (minimum) wall time of each function, and the number of timed calls of each.

    The functions take turns in blocks of ``block`` consecutive calls, so that each one is
    timed both early and late in the day's machine load. Before each block the harness waits
    ``pause`` seconds, untimed: OpenBLAS's and OpenMP's worker threads spin after their call
    and slow down whatever runs next (numba's kernels after a numpy matmul, and the matmul
    after numba's kernels, by up to 2x for a tenth of a second or more). The first call of
    each function is a warm-up (JIT compilation).
    """
    for f in functions:
        f()
    times = [[] for _ in functions]
    start = time.perf_counter()
    for rounds in range(1, max_rounds + 1):
        for f, ts in zip(functions, times):
            time.sleep(pause)
            for _ in range(block):
                t0 = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t0)
        if rounds >= min_rounds and time.perf_counter() - start > budget:
            break
    return [min(ts) for ts in times], len(times[0])


def measure(case):
    """Time ``case``'s kernel, float32 baseline and naive baseline.

    Returns
    -------
    dict
        One JSON-ready record: seconds and G MAC/s of each, their ratios, operand memory.
    """
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


def cpu_name():
    """The CPU the numbers are for: its model name, LLVM's name for it and its widest vector extension."""
    import llvmlite.binding as llvm

    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    features = llvm.get_host_cpu_features()
    widest = next((f for f in ("avx512vnni", "avx512f", "avx2") if features.get(f)), "no AVX2")
    return f"{model} ({llvm.get_host_cpu_name()}, {widest})"


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
    """``t`` seconds in milliseconds, or in seconds from 10 s on, 11 characters wide."""
    return f"{t * 1e3:8.2f} ms" if t < 10 else f"{t:8.1f} s "


def print_table(records, file=sys.stdout):
    """One line per :func:`measure` record under a header."""
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


def print_load(records, per_row=False):
    """Say how much CPU time other processes took while the rows ran (nothing off Linux).

    Parameters
    ----------
    records : list of dict
        :func:`run`'s records.
    per_row : bool
        One percentage per row instead of the busiest row and the average.
    """
    loads = [r["other_load"] for r in records if r["other_load"] is not None]
    if not loads:
        return
    if per_row:
        print("\nother processes' share of the machine's CPU time per row: "
              + ", ".join(f"{100 * v:.0f}%" for v in loads) + "; rerun if these are not near 0")
    else:
        print(f"\nother processes used {100 * max(loads):.0f}% of the machine's CPU time during the busiest row"
              f" ({100 * sum(loads) / len(loads):.0f}% on average); rerun if that is not near 0")


def run(title, notes, cases, args):
    """Measure ``cases`` and print their table under a header.

    Parameters
    ----------
    title : str
        What is measured, the header's first words.
    notes : list of str
        Header lines that explain the columns, after the common :data:`TIMING` line.
    cases : list of Case
        The rows, of which those whose name holds ``args.only`` run.
    args : argparse.Namespace
        :func:`parse_args`'s options; ``args.json`` also gets the records.

    Returns
    -------
    list of dict
        One :func:`measure` record per row, with ``other_load``, the share of the machine's CPU
        time that other processes used meanwhile (None off Linux).
    """
    threads = args.threads or numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(threads)
    print(f"{title}, {threads} numba thread(s); numpy {np.__version__}, numba {numba.__version__}")
    print(TIMING)
    print("\n".join(notes))
    print()
    records = []
    for case in cases:
        if args.only and args.only not in case.name:
            continue
        print(f"  measuring {case.name} {case.shape} ...", file=sys.stderr, flush=True)
        before, own = cpu_busy(), sum(os.times()[:4])
        record = measure(case)
        record["other_load"] = other_load(before, cpu_busy(), sum(os.times()[:4]) - own)
        records.append(record)
    print_table(records)
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1) + "\n")
    return records
