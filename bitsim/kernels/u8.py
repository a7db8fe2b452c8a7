"""Exact uint8 x int8 GEMM (a BNN's first layer: pixels 0..255 times ±1 weights).

The arithmetic rule of :func:`u8s8_matmul`:

* ``out[i, j] = sum_k x[i, k] * w[j, k]``, the exact integer sum (as
  ``x.astype(int64) @ w.astype(int64).T``); it is returned as int32 when ``255 * 128 * K``
  fits int32 (``K <= 65793``: then every value fits whatever the codes), else as int64.
* No intermediate can saturate or wrap. On CPUs with AVX2 the kernel uses ``vpmaddubsw``,
  which multiplies 32 uint8 by 32 int8 and adds adjacent products **with signed saturation
  to int16**. The wrapper takes ``X = max(x)`` and ``W = max|w|`` of the operands and uses it
  only when ``2 * X * W <= 32767``, so that no pair sum can saturate (with ``X = 255``: any
  ``|w| <= 64``; ±1 weights give pair sums ``|p| <= 510``). The kernel then adds the pair sums
  of ``S = floor(32767 / (2 * X * W))`` steps in wrapping int16 lanes (``vpaddw``; 64 steps
  for ±1 weights, which no lane can leave), widens them to int32 with ``vpmaddwd`` by ones
  (exact) and accumulates those in int32 (exact by the first point). See :func:`int16_steps`.
* When the bound does not hold (e.g. ``w`` holds -128 and ``x`` holds 255), ``route='auto'``
  computes the product with :func:`bitsim.kernels.intmatmul.matmul` on int16 codes (exact
  int32-block accumulation, its AVX2 ``vpmaddwd`` kernel), and ``route='portable'`` with a
  plain Numba int32 loop; ``route='avx2'`` raises instead.

Results are exact integers, so they do not depend on the route or on the number of numba
threads. Layout of the AVX2 kernel (not part of the rule): ``w`` is packed into panels of
16 rows, 4 consecutive K-values of a row adjacent (64 bytes per group of 4 K-values); a 6 x 16
tile keeps 12 int16 accumulators in ymm registers; per group of 4 K-values it loads 2 vectors
of the panel, broadcasts 4 bytes of each of the 6 rows of ``x`` and issues 12 ``vpmaddubsw`` +
12 ``vpaddw``. The tile is written in LLVM IR (:func:`_u8s8_tile`) around
``llvm.x86.avx2.pmadd.ub.sw``, like the ``vpmaddwd`` tile of :mod:`bitsim.kernels.intmatmul`.
The oracle is :func:`bitsim.reference.u8.u8s8_matmul`.

:func:`float_u8s8_matmul` is the same product for float32 pixels (whole numbers 0..255), checked and
converted inside the product, a block of 128 rows per task. Its kernel works on pairs of K-values, one row
at a time: a row's pairs that are (0, 0) add nothing and are skipped (a 64-bit mask per 64 pairs, its set
bits visited in order), and each other pair is broadcast and multiplied by ``vpmaddubsw`` with 64 columns
of the weights (4 vectors of 16 int16 lanes, each lane one column's running sum of pair sums), widened to
int32 after at most ``S`` pairs as above. An MNIST image has 22% of its pairs not (0, 0), where the 6 x 16
tile must run every group of 4 K-values in which one of its 6 rows is not 0 (52%). The oracle is
:func:`bitsim.reference.u8.float_u8s8_matmul`. :func:`float_u8s8_signs` also packs the compares of each
row with per-channel thresholds (a BNN's first sign layer) while the row is in cache.
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..errors import InputError, InputTypeError
from ..formats.binary import WORD_BITS, n_words
from ..formats.fixed import FixedFormat
from ..formats.launch import launch
from .byte_codes import uint8_codes
from .intmatmul import HAS_AVX2
from .intmatmul import matmul as fixed_matmul
from .operands import as_codes, check_k
from .words import as_length, as_words
from .xnor import threshold_pack

__all__ = ["u8s8_matmul", "float_u8s8_matmul", "float_u8s8_signs", "int16_steps", "pm1_int8"]

INT16_MAX = 2**15 - 1
INT32_MAX = 2**31 - 1
X_MAX, W_MAX = 255, 128  # largest |code| of uint8 x and int8 w
INT32_K_MAX = INT32_MAX // (X_MAX * W_MAX)  # 65793: up to this K every result fits int32
K_CHUNK = INT32_K_MAX // 4 * 4  # K-chunk of the int64 result (int32 partial sums, added in int64)
MR, NR = 6, 16  # AVX2 tile: 6 rows of x by 16 rows of w
RT, CT = 16, 8  # a task: RT row tiles (96 rows) by CT column tiles (128 columns)
BR = 128  # rows of a task of float_u8s8_matmul: its uint8 buffer is 112 KiB for K = 784 (L2)
LANES = 64  # columns of a row of float_u8s8_matmul's kernel: 4 vectors of 16 int16 lanes
KC = 1024  # K-block of the AVX2 kernel: a 16-row panel block is 16 KiB (L1), 96 rows of x 96 KiB (L2)
PR, PC = 64, 32  # task of the portable kernel: PR rows of x by PC rows of w
PKC = 2048  # K-block of the portable kernel
STEPS_CAP = 2**30
INT16_CODES = FixedFormat(16, 0)  # the fallback's view of both operands

# Below this many MACs (about 0.2 ms on one core of the AVX2 kernel) a call runs on the calling
# thread only: waking the other threads costs more than the work (microseconds when idle,
# milliseconds when the cores are shared with other processes).
PARALLEL_MIN_WORK = 2**24


def int16_steps(max_x, max_w):
    """How many ``vpmaddubsw`` pair sums an int16 lane may add, or 0 when one pair can saturate.

    A pair sum ``x0 * w0 + x1 * w1`` of codes with ``0 <= x <= max_x`` and ``|w| <= max_w``
    lies in ``[-2 * max_x * max_w, 2 * max_x * max_w]``; ``vpmaddubsw`` saturates it to int16
    only when it leaves ``[-32768, 32767]``. ``S`` such sums stay in int16 (so wrapping
    ``vpaddw`` is exact) when ``S * 2 * max_x * max_w <= 32767``.

    Parameters
    ----------
    max_x : int
        Largest value of the uint8 operand (0..255).
    max_w : int
        Largest ``|w|`` of the int8 operand (0..128).

    Returns
    -------
    int
        ``floor(32767 / (2 * max_x * max_w))`` (capped at 2**30 when the product is 0); 0 means
        the saturating kernel must not be used.

    Examples
    --------
    >>> int16_steps(255, 1), int16_steps(255, 64), int16_steps(255, 65), int16_steps(127, 128)
    (64, 1, 0, 1)
    """
    p = 2 * int(max_x) * int(max_w)
    return STEPS_CAP if p == 0 else min(STEPS_CAP, INT16_MAX // p)


# ---------------------------------------------------------------------------------------
# AVX2 kernel


@intrinsic
def _u8s8_tile(typingctx, x, i, k0, groups, steps, panel, out, r0, c0, add):
    """out[r0 + r, c0 : c0 + 16] (+)= sum over g < groups of x[i + r, k0 + 4g : +4] . panel[g, :, :].

    ``x`` (rows, Kpad) uint8, rows ``i .. i + 5`` read; ``panel`` (groups, 16, 4) int8;
    ``out`` int32 with room for the 6 x 16 block at (r0, c0). int16 lanes add the pair sums of
    at most ``steps`` groups before they are widened (``vpmaddwd`` by ones) into int32.
    ``add``: add to ``out`` (else overwrite).
    """
    if not (isinstance(out, types.Array) and out.dtype == types.int32 and x.dtype == types.uint8
            and panel.dtype == types.int8):
        return None
    sig = types.void(x, types.intp, types.intp, types.intp, types.intp, panel, out, types.intp, types.intp,
                     types.boolean)
    return sig, _tile_code


def _tile_code(context, builder, signature, args):
    """The code of the 6 x 16 tile of :func:`_u8s8_tile`."""
    x_v, i_v, k0_v, groups_v, steps_v, panel_v, out_v, r0_v, c0_v, add_v = args
    arr_x = context.make_array(signature.args[0])(context, builder, x_v)
    arr_p = context.make_array(signature.args[5])(context, builder, panel_v)
    arr_o = context.make_array(signature.args[6])(context, builder, out_v)
    i8, i16, i32, i64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
    v32b, v16w, v8d = ir.VectorType(i8, 32), ir.VectorType(i16, 16), ir.VectorType(i32, 8)
    maddubs = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v16w, [v32b, v32b]),
                                             "llvm.x86.avx2.pmadd.ub.sw")
    maddwd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v8d, [v16w, v16w]),
                                            "llvm.x86.avx2.pmadd.wd")
    ones = ir.Constant(v16w, [1] * 16)
    c = lambda v: ir.Constant(i64, v)  # noqa: E731
    ldx = builder.extract_value(arr_x.strides, 0)
    x0 = builder.add(builder.ptrtoint(arr_x.data, i64), builder.add(builder.mul(i_v, ldx), k0_v))
    p0 = builder.ptrtoint(arr_p.data, i64)
    acc32 = [cgutils.alloca_once_value(builder, ir.Constant(v8d, None)) for _ in range(2 * MR)]
    acc16 = [cgutils.alloca_once_value(builder, ir.Constant(v16w, None)) for _ in range(2 * MR)]
    chunks = builder.sdiv(builder.sub(builder.add(groups_v, steps_v), c(1)), steps_v)
    with cgutils.for_range(builder, chunks) as outer:
        g0 = builder.mul(outer.index, steps_v)
        left = builder.sub(groups_v, g0)
        count = builder.select(builder.icmp_signed("<", left, steps_v), left, steps_v)
        for a in acc16:
            builder.store(ir.Constant(v16w, None), a)
        with cgutils.for_range(builder, count) as inner:
            g = builder.add(g0, inner.index)
            bp = builder.add(p0, builder.shl(g, c(6)))
            bv = [builder.load(builder.inttoptr(builder.add(bp, c(32 * h)), v32b.as_pointer()), align=1)
                  for h in range(2)]
            xp = builder.add(x0, builder.shl(g, c(2)))
            for r in range(MR):
                word = builder.load(builder.inttoptr(builder.add(xp, builder.mul(c(r), ldx)), i32.as_pointer()),
                                    align=1)
                splat = builder.insert_element(ir.Constant(v8d, None), word, ir.Constant(i32, 0))
                splat = builder.bitcast(builder.shuffle_vector(splat, splat, ir.Constant(v8d, None)), v32b)
                for h in range(2):
                    a = acc16[2 * r + h]
                    builder.store(builder.add(builder.load(a), builder.call(maddubs, [splat, bv[h]])), a)
        for a16, a32 in zip(acc16, acc32):
            builder.store(builder.add(builder.load(a32), builder.call(maddwd, [builder.load(a16), ones])), a32)
    ldo = builder.extract_value(arr_o.strides, 0)
    o0 = builder.add(builder.ptrtoint(arr_o.data, i64), builder.add(builder.mul(r0_v, ldo), builder.shl(c0_v, c(2))))
    zero = ir.Constant(v8d, None)
    for r in range(MR):
        for h in range(2):
            at = builder.inttoptr(builder.add(o0, builder.add(builder.mul(c(r), ldo), c(32 * h))), v8d.as_pointer())
            prev = builder.select(add_v, builder.load(at, align=4), zero)
            builder.store(builder.add(builder.load(acc32[2 * r + h]), prev), at, align=4)
    return context.get_dummy_value()


@numba.njit(cache=True, parallel=True)
def _pack_panels(w4, out):
    """out[t, g, c] = w4[t * NR + c, g], zero padded: words of 4 int8 K-values of 16 rows of w."""
    n, groups = w4.shape
    for t in numba.prange(out.shape[0]):
        rows = min(NR, n - t * NR)
        panel = out[t]
        for g in range(groups):
            for c in range(rows):
                panel[g, c] = w4[t * NR + c, g]
            for c in range(rows, NR):
                panel[g, c] = 0


@numba.njit(cache=True, parallel=True)
def _gemm_avx2(x, tail, bp, n, steps, out):
    """out = x @ w.T: x (M, Kpad) uint8, Kpad % 4 == 0; tail (6, Kpad) holds the last M % 6 rows
    of x, zero padded; bp (tiles, Kpad / 4, 16, 4) int8 from _pack_panels."""
    m, kp = x.shape
    row_tiles = (m + MR - 1) // MR
    tiles = bp.shape[0]
    rgroups = (row_tiles + RT - 1) // RT
    for task in numba.prange(rgroups * ((tiles + CT - 1) // CT)):
        ti0 = (task % rgroups) * RT
        t0 = (task // rgroups) * CT
        c = np.empty((MR, NR), np.int32)
        for k0 in range(0, kp, KC):
            k1 = min(k0 + KC, kp)
            add = k0 > 0
            for t in range(t0, min(t0 + CT, tiles)):
                panel = bp[t, k0 >> 2 : k1 >> 2]
                j = t * NR
                cols = min(NR, n - j)
                for ti in range(ti0, min(ti0 + RT, row_tiles)):
                    i = ti * MR
                    rows = min(MR, m - i)
                    if rows == MR and cols == NR:
                        _u8s8_tile(x, i, k0, (k1 - k0) >> 2, steps, panel, out, i, j, add)
                        continue
                    if rows == MR:
                        _u8s8_tile(x, i, k0, (k1 - k0) >> 2, steps, panel, c, 0, 0, False)
                    else:
                        _u8s8_tile(tail, 0, k0, (k1 - k0) >> 2, steps, panel, c, 0, 0, False)
                    for r in range(rows):
                        o = out[i + r]
                        for h in range(cols):
                            o[j + h] = o[j + h] + c[r, h] if add else c[r, h]


@numba.njit(cache=True, parallel=True)
def _pack_panels_kn(wkn, out):
    """out[t, g, c] = the 4 bytes wkn[4 g : 4 g + 4, t * NR + c] as one little-endian word, zero padded: the
    panels of _pack_panels from w given as (Kpad, N) uint8 (the int8 bytes)."""
    n = wkn.shape[1]
    for t in numba.prange(out.shape[0]):
        j0 = t * NR
        cols = min(NR, n - j0)
        panel = out[t]
        for g in range(out.shape[1]):
            r0, r1, r2, r3 = wkn[4 * g], wkn[4 * g + 1], wkn[4 * g + 2], wkn[4 * g + 3]
            words = panel[g]
            for c in range(cols):
                j = j0 + c
                words[c] = np.uint32(r0[j]) | (np.uint32(r1[j]) << 8) | (np.uint32(r2[j]) << 16) | \
                    (np.uint32(r3[j]) << 24)
            for c in range(cols, NR):
                words[c] = 0


def _panels(w, layout="nk"):
    """The panels of _pack_panels of the int8 weights ``w``, (N, Kpad) or (Kpad, N) by ``layout``, Kpad % 4 == 0."""
    if layout == "kn":
        kp, n = w.shape
        bp = np.empty((-(-n // NR), kp // 4, NR, 4), dtype=np.int8)
        launch(_pack_panels_kn, 16 * n * kp, w.view(np.uint8), bp.view(np.uint32).reshape(bp.shape[:3]),
               min_work=PARALLEL_MIN_WORK)
        return bp
    n, kp = w.shape
    tiles = -(-n // NR)
    bp = np.empty((tiles, kp // 4, NR, 4), dtype=np.int8)
    launch(_pack_panels, 16 * n * kp, w.view(np.uint32), bp.view(np.uint32).reshape(tiles, kp // 4, NR),
           min_work=PARALLEL_MIN_WORK)
    return bp


def _avx2_gemm(x, w, steps, layout="nk"):
    m, k = x.shape
    n = w.shape[0] if layout == "nk" else w.shape[1]
    kp = -(-k // 4) * 4
    if kp != k:  # zero-pad K to whole groups of 4
        x = np.concatenate([x, np.zeros((m, kp - k), np.uint8)], axis=1)
        w = np.concatenate([w, np.zeros((n, kp - k) if layout == "nk" else (kp - k, n), np.int8)],
                           axis=1 if layout == "nk" else 0)
    tail = np.zeros((MR, kp), dtype=np.uint8)
    tail[: m % MR] = x[m - m % MR :]
    bp = _panels(w, layout)
    out = np.empty((m, n), dtype=np.int32)
    launch(_gemm_avx2, m * n * kp, x, tail, bp, n, steps, out, min_work=PARALLEL_MIN_WORK, tasks=True)
    return out


# ---------------------------------------------------------------------------------------
# portable kernel: exact int32 sums in a plain Numba loop (LLVM vectorizes the loop over k)


@numba.njit(cache=True)
def _portable_tile(x0, x1, x2, x3, w, j0, j1, k0, k1, add, o0, o1, o2, o3):
    for j in range(j0, j1):
        y = w[j, k0:k1]
        s0 = s1 = s2 = s3 = np.int32(0)
        for k in range(k1 - k0):
            v = np.int32(y[k])
            s0 += np.int32(x0[k]) * v
            s1 += np.int32(x1[k]) * v
            s2 += np.int32(x2[k]) * v
            s3 += np.int32(x3[k]) * v
        if add:
            s0 += o0[j]
            s1 += o1[j]
            s2 += o2[j]
            s3 += o3[j]
        o0[j] = s0
        o1[j] = s1
        o2[j] = s2
        o3[j] = s3


@numba.njit(cache=True)
def _portable_row(x0, w, j0, j1, k0, k1, add, o0):
    for j in range(j0, j1):
        y = w[j, k0:k1]
        s = np.int32(0)
        for k in range(k1 - k0):
            s += np.int32(x0[k]) * np.int32(y[k])
        o0[j] = s + o0[j] if add else s


@numba.njit(cache=True, parallel=True)
def _gemm_portable(x, w, out):
    """out = x @ w.T in int32 (exact when 255 * 128 * K fits int32); K >= 1."""
    m, kk = x.shape
    n = w.shape[0]
    groups = (m + PR - 1) // PR
    for task in numba.prange(groups * ((n + PC - 1) // PC)):
        g0 = (task % groups) * PR
        g1 = min(g0 + PR, m)
        j0 = (task // groups) * PC
        j1 = min(j0 + PC, n)
        for k0 in range(0, kk, PKC):
            k1 = min(k0 + PKC, kk)
            add = k0 > 0
            i = g0
            while i + 3 < g1:
                _portable_tile(x[i, k0:k1], x[i + 1, k0:k1], x[i + 2, k0:k1], x[i + 3, k0:k1], w, j0, j1, k0, k1,
                               add, out[i], out[i + 1], out[i + 2], out[i + 3])
                i += 4
            for r in range(i, g1):
                _portable_row(x[r, k0:k1], w, j0, j1, k0, k1, add, out[r])


# ---------------------------------------------------------------------------------------
# wrapper


def _operand(a, dtype, name):
    hint = ("convert images with np.asarray(images, dtype=np.uint8)" if dtype == np.uint8 else
            "unpack ±1 weights with bitsim.kernels.u8.pm1_int8(words, n) or quantize to int8 codes")
    return as_codes(a, name, (dtype,), str(np.dtype(dtype)), hint, "a 2-D array (rows, K)")


def _fallback(x, w):
    """The exact int16-code product of bitsim.kernels.intmatmul (int32 blocks, its vpmaddwd kernel)."""
    return fixed_matmul(x.astype(np.int16), INT16_CODES, w.astype(np.int16), INT16_CODES, acc_dtype=np.int32,
                        route="integer")


def _int32_product(x, w, route):
    """x @ w.T for K <= INT32_K_MAX (every value fits int32)."""
    m, k = x.shape
    n = w.shape[0]
    if m == 0 or n == 0 or k == 0:
        return np.zeros((m, n), dtype=np.int32)
    if route == "portable":
        out = np.empty((m, n), dtype=np.int32)
        launch(_gemm_portable, m * n * k, x, w, out, min_work=PARALLEL_MIN_WORK, tasks=True)
        return out
    if HAS_AVX2:
        max_x = int(x.max())
        w_hi, w_lo = int(w.max()), int(w.min())
        steps = int16_steps(max_x, max(w_hi, -w_lo))
        if steps:
            return _avx2_gemm(x, w, steps)
        if route == "avx2":
            raise InputError(
                f"u8s8_matmul: route='avx2' needs 2 * max(x) * max|w| <= 32767 so that no vpmaddubsw pair sum can "
                f"saturate; here max(x) = {max_x}, max|w| = {max(w_hi, -w_lo)}. Use route='auto' (exact fallback)"
            )
        return _fallback(x, w)
    if route == "avx2":
        raise InputError("u8s8_matmul: route='avx2' needs a CPU with AVX2 (and numba targeting the host CPU)")
    out = np.empty((m, n), dtype=np.int32)
    launch(_gemm_portable, m * n * k, x, w, out, min_work=PARALLEL_MIN_WORK, tasks=True)
    return out


def u8s8_matmul(x, w, *, route="auto", layout="nk"):
    """Exact integer product ``x @ w.T`` of uint8 inputs and int8 weights.

    ``out[i, j] = sum_k x[i, k] * w[j, k]``, exactly ``x.astype(int64) @ w.astype(int64).T``.
    The AVX2 route runs ``vpmaddubsw`` (pair sums saturated to int16) only when
    ``2 * max(x) * max|w| <= 32767`` (:func:`int16_steps`), which makes saturation impossible,
    e.g. any weights in ``[-64, 64]`` with any uint8 inputs; otherwise it computes the same
    sums by an exact fallback (see the module docstring).

    Parameters
    ----------
    x : numpy.ndarray of uint8, shape (M, K)
        Inputs (e.g. pixels 0..255); non-C-contiguous arrays are copied.
    w : numpy.ndarray of int8, shape (N, K)
        Weights, one row per output column (a weight matrix (out, in)); ±1 weights from packed
        words with :func:`pm1_int8`.
    layout : {'nk', 'kn'}
        ``'nk'``: ``w`` is (N, K), as above; ``'kn'``: ``w`` is given as (K, N) (``x @ w``), which the AVX2
        kernel packs directly (the other routes read a transposed copy).
    route : {'auto', 'avx2', 'portable'}
        ``'auto'``: the AVX2 ``vpmaddubsw`` kernel when the CPU has AVX2 and the bound holds,
        else :func:`bitsim.kernels.intmatmul.matmul` on int16 codes (AVX2) or the portable
        kernel. ``'avx2'``: the ``vpmaddubsw`` kernel, raising ``ValueError`` when the bound
        does not hold or the CPU lacks AVX2. ``'portable'``: a plain Numba int32 loop.
        All routes give identical results.

    Returns
    -------
    numpy.ndarray, shape (M, N)
        int32 when ``255 * 128 * K <= 2**31 - 1`` (``K <= 65793``), so every result fits;
        int64 for longer reductions (computed as int32 sums over K-chunks, added in int64).

    Raises
    ------
    TypeError
        If ``x`` is not uint8 or ``w`` not int8.
    ValueError
        Wrong shapes, an unknown route, or ``route='avx2'`` where it cannot be exact.

    Examples
    --------
    >>> x = np.array([[255, 0, 3, 200]], dtype=np.uint8)
    >>> w = np.array([[1, -1, 1, -1], [-1, -1, -1, -1]], dtype=np.int8)
    >>> u8s8_matmul(x, w)
    array([[  58, -458]], dtype=int32)
    """
    if route not in ("auto", "avx2", "portable"):
        raise InputError(f"route must be 'auto', 'avx2' or 'portable', got {route!r}")
    x = _operand(x, np.uint8, "u8s8_matmul: x")
    w = _operand(w, np.int8, "u8s8_matmul: w")
    if layout not in ("nk", "kn"):
        raise InputError(f"layout must be 'nk' (w of shape (N, K)) or 'kn' (w of shape (K, N)), got {layout!r}")
    check_k("u8s8_matmul", x, w if layout == "nk" else w.T)
    k = x.shape[1]
    if layout == "kn":
        if HAS_AVX2 and route != "portable" and 0 < k <= INT32_K_MAX and x.shape[0] and w.shape[1]:
            steps = int16_steps(int(x.max()), max(int(w.max()), -int(w.min())))
            if steps:
                return _avx2_gemm(x, w, steps, "kn")
        w = np.ascontiguousarray(w.T)
    if k <= INT32_K_MAX:
        return _int32_product(x, w, route)
    out = np.zeros((x.shape[0], w.shape[0]), dtype=np.int64)
    for k0 in range(0, k, K_CHUNK):
        xs = np.ascontiguousarray(x[:, k0 : k0 + K_CHUNK])
        ws = np.ascontiguousarray(w[:, k0 : k0 + K_CHUNK])
        out += _int32_product(xs, ws, route)
    return out


# ---------------------------------------------------------------------------------------
# float32 pixels: the check and conversion to uint8 codes fused into the product


@intrinsic
def _row_pairs(typingctx, codes, r, words, steps, panel, out, o_row, o_col):
    """out[o_row, o_col : o_col + 64] = the sum over the pairs p of codes[r] in mask words 0 .. words - 1 (pairs
    64 w .. 64 w + 63 of word w) that are not (0, 0) of codes[r, 2p] * panel[p, 2c] + codes[r, 2p + 1] * panel[p,
    2c + 1], for c in 0 .. 63.

    ``codes`` (rows, 128 * words) uint8; ``panel`` (64 * words, 128) int8 from _pair_panels; ``out`` int32. int16
    lanes add the sums of at most ``steps`` pairs (>= 64) before they are widened into int32.
    """
    return _row_typing(codes, panel, out, fine=False)


@intrinsic
def _row_pairs_fine(typingctx, codes, r, words, steps, panel, out, o_row, o_col):
    """As :func:`_row_pairs` for any ``steps >= 1``: the count of pair sums is checked after each pair."""
    return _row_typing(codes, panel, out, fine=True)


def _row_typing(codes, panel, out, fine):
    if not (isinstance(out, types.Array) and out.dtype == types.int32 and codes.dtype == types.uint8
            and panel.dtype == types.int8):
        return None
    sig = types.void(codes, types.intp, types.intp, types.intp, panel, out, types.intp, types.intp)
    return sig, _row_codegen(fine)


def _row_codegen(fine):
    """The code of one row by 64 columns over the nonzero pairs of the row's mask words; ``fine``: check the
    int16 lanes' count after every pair (else once per mask word, which needs steps >= 64)."""

    def codegen(context, builder, signature, args):
        r_v, words_v, steps_v, orow_v, ocol_v = (args[i] for i in (1, 2, 3, 6, 7))
        arr_x, arr_p, arr_o = (context.make_array(signature.args[i])(context, builder, args[i]) for i in (0, 4, 5))
        i8, i16, i32, i64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
        v32b, v16w, v16d = ir.VectorType(i8, 32), ir.VectorType(i16, 16), ir.VectorType(i32, 16)
        maddubs = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v16w, [v32b, v32b]),
                                                 "llvm.x86.avx2.pmadd.ub.sw")
        cttz = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [i64, ir.IntType(1)]),
                                              "llvm.cttz.i64")
        ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [i64]), "llvm.ctpop.i64")
        c = lambda v: ir.Constant(i64, v)  # noqa: E731
        zero16, zero32 = ir.Constant(v16w, None), ir.Constant(v16d, None)
        row = builder.add(builder.ptrtoint(arr_x.data, i64), builder.mul(r_v, builder.extract_value(arr_x.strides, 0)))
        p0 = builder.ptrtoint(arr_p.data, i64)
        acc32 = [cgutils.alloca_once_value(builder, zero32) for _ in range(4)]
        acc16 = [cgutils.alloca_once_value(builder, zero16) for _ in range(4)]
        count = cgutils.alloca_once_value(builder, c(0))
        mask = cgutils.alloca_once_value(builder, c(0))

        def widen():
            for a16, a32 in zip(acc16, acc32):
                builder.store(builder.add(builder.load(a32), builder.sext(builder.load(a16), v16d)), a32)
                builder.store(zero16, a16)
            builder.store(c(0), count)

        with cgutils.for_range(builder, words_v) as loop:
            w = loop.index
            base = builder.add(row, builder.shl(w, c(7)))
            m = c(0)
            for q in range(4):  # bit b of the mask: pair 64 w + b is not (0, 0)
                v = builder.load(builder.inttoptr(builder.add(base, c(32 * q)), v16w.as_pointer()), align=1)
                bits = builder.zext(builder.bitcast(builder.icmp_unsigned("!=", v, zero16), ir.IntType(16)), i64)
                m = builder.or_(m, builder.shl(bits, c(16 * q)))
            builder.store(m, mask)
            if not fine:
                pairs = builder.call(ctpop, [m])
                with builder.if_then(builder.icmp_signed(">", builder.add(builder.load(count), pairs), steps_v),
                                     likely=False):
                    widen()
                builder.store(builder.add(builder.load(count), pairs), count)
            head = builder.append_basic_block("pairs.head")
            body = builder.append_basic_block("pairs.body")
            done = builder.append_basic_block("pairs.done")
            builder.branch(head)
            builder.position_at_end(head)
            m = builder.load(mask)
            builder.cbranch(builder.icmp_unsigned("!=", m, c(0)), body, done)
            builder.position_at_end(body)
            p = builder.add(builder.shl(w, c(6)), builder.call(cttz, [m, ir.Constant(ir.IntType(1), 1)]))
            builder.store(builder.and_(m, builder.sub(m, c(1))), mask)
            pair = builder.load(builder.inttoptr(builder.add(row, builder.shl(p, c(1))), i16.as_pointer()), align=1)
            splat = builder.insert_element(ir.Constant(v16w, None), pair, ir.Constant(i32, 0))
            splat = builder.bitcast(builder.shuffle_vector(splat, splat, ir.Constant(v16d, None)), v32b)
            pp = builder.add(p0, builder.shl(p, c(7)))
            for h, a in enumerate(acc16):
                vec = builder.load(builder.inttoptr(builder.add(pp, c(32 * h)), v32b.as_pointer()), align=1)
                builder.store(builder.add(builder.load(a), builder.call(maddubs, [splat, vec])), a)
            if fine:
                n = builder.add(builder.load(count), c(1))
                builder.store(n, count)
                with builder.if_then(builder.icmp_signed(">=", n, steps_v), likely=False):
                    widen()
            builder.branch(head)
            builder.position_at_end(done)
        widen()
        ldo = builder.extract_value(arr_o.strides, 0)
        o0 = builder.add(builder.ptrtoint(arr_o.data, i64),
                         builder.add(builder.mul(orow_v, ldo), builder.shl(ocol_v, c(2))))
        for q, a in enumerate(acc32):
            builder.store(builder.load(a), builder.inttoptr(builder.add(o0, c(64 * q)), v16d.as_pointer()), align=4)
        return context.get_dummy_value()

    return codegen


@numba.njit(cache=True, parallel=True)
def _float_rows_avx2(x, bq, n, steps, out, bad, thresholds, signs):
    """out = codes(x) @ w.T for float32 x (M, K), a task per block of BR rows: the block is converted into a
    local uint8 buffer (zero padded; the rule of bitsim.kernels.byte_codes), then each row is multiplied over
    its pairs of K-values that are not (0, 0), 64 columns at a time; bq (tiles, Kpad / 2, 128) int8 from
    _pair_panels. bad[block] counts the values that are not whole numbers 0..255 (out is then not the
    product: the caller returns None). When signs has words (M, ceil(N / 64)), bit j of its row i is
    out[i, j] >= thresholds[j] (int32), computed while the row is in cache."""
    m, k = x.shape
    kp = bq.shape[1] * 2
    words = kp >> 7
    for block in numba.prange((m + BR - 1) // BR):
        i0 = block * BR
        rows = min(BR, m - i0)
        buf = np.zeros((BR, kp), np.uint8)  # the padding stays 0
        part = np.empty((1, LANES), np.int32)
        nbad = np.int32(0)
        for r in range(rows):
            row = x[i0 + r]
            o = buf[r]
            for kk in range(k):  # branch-free (vectorized); a NaN fails the range test and is counted
                v = row[kk]
                c = v if (v >= np.float32(0)) & (v <= np.float32(255)) else np.float32(0)
                code = np.int32(c)
                o[kk] = np.uint8(code)
                nbad += np.int32(np.float32(code) != v)
        for r in range(rows):
            for t in range(n // LANES):
                if steps >= 64:
                    _row_pairs(buf, r, words, steps, bq[t], out, i0 + r, t * LANES)
                else:
                    _row_pairs_fine(buf, r, words, steps, bq[t], out, i0 + r, t * LANES)
            if n % LANES:  # the last columns through a row of 64
                t = n // LANES
                if steps >= 64:
                    _row_pairs(buf, r, words, steps, bq[t], part, 0, 0)
                else:
                    _row_pairs_fine(buf, r, words, steps, bq[t], part, 0, 0)
                out[i0 + r, t * LANES:] = part[0, : n % LANES]
            if signs.shape[1]:
                acc = out[i0 + r]
                for word in range(signs.shape[1]):  # branch-free so that LLVM vectorizes the compares
                    first = word * WORD_BITS
                    bits = np.uint64(0)
                    for c in range(min(WORD_BITS, n - first)):
                        bits |= np.uint64(acc[first + c] >= thresholds[first + c]) << np.uint64(c)
                    signs[i0 + r, word] = bits
        bad[block] = nbad


@numba.njit(cache=True, parallel=True)
def _pack_pairs(w, out):
    """out[t, p, 2c + e] = w[64 t + c, 2p + e], zero outside w: 64 rows of w as int8 pairs along K."""
    n, k = w.shape
    for t in numba.prange(out.shape[0]):
        panel = out[t]
        panel[:, :] = 0
        for c in range(min(LANES, n - t * LANES)):
            row = w[t * LANES + c]
            for kk in range(k):
                panel[kk >> 1, 2 * c + (kk & 1)] = row[kk]


def _pair_panels(w):
    """The panels of _pack_pairs of the int8 weights ``w`` (N, K), padded to whole tiles of 64 rows and to
    Kpad % 128 == 0 (whole mask words)."""
    n, k = w.shape
    bq = np.empty((-(-n // LANES), -(-k // 128) * 64, 2 * LANES), np.int8)
    launch(_pack_pairs, n * k, w, bq, min_work=PARALLEL_MIN_WORK)
    return bq


def _float_avx2_gemm(x, w, steps, thresholds=None):
    """codes(x) @ w.T by _float_rows_avx2, or None when x holds a value that is not a whole number 0..255;
    with int32 ``thresholds``, ``(product, signs)``."""
    m = x.shape[0]
    n = w.shape[0]
    bq = _pair_panels(w)
    out = np.empty((m, n), dtype=np.int32)
    bad = np.zeros(-(-m // BR), np.int32)
    signs = np.empty((m, 0 if thresholds is None else n_words(n)), np.uint64)
    t = np.zeros(0, np.int32) if thresholds is None else thresholds
    launch(_float_rows_avx2, m * n * bq.shape[1] * 2, x, bq, n, steps, out, bad, t, signs,
           min_work=PARALLEL_MIN_WORK, tasks=True)
    if bad.any():
        return None
    return out if thresholds is None else (out, signs)


def _pixel_operands(x, w, name):
    """``(x, w, steps)`` of a product of float32 pixels ``x`` and int8 weights ``w``, checked (errors name
    ``name``); ``steps`` as :func:`int16_steps` gives it when the fused AVX2 kernel applies (AVX2, no empty
    dimension, ``K <= 65793`` and ``2 * 255 * max|w| <= 32767``), else 0."""
    x = as_codes(x, f"{name}: x", (np.float32,), "float32",
                 "convert pixels with np.asarray(images, dtype=np.float32)", "a 2-D array (rows, K)")
    w = _operand(w, np.int8, f"{name}: w")
    check_k(name, x, w)
    if not HAS_AVX2 or not x.size or not w.size or x.shape[1] > INT32_K_MAX:
        return x, w, 0
    return x, w, int16_steps(X_MAX, max(int(w.max()), -int(w.min())))


def _two_passes(x, w):
    """codes(x) @ w.T as ``uint8_codes`` then :func:`u8s8_matmul`, or None when x is not made of codes."""
    codes = uint8_codes(x)
    return None if codes is None else u8s8_matmul(codes, w)


def float_u8s8_matmul(x, w):
    """Exact product ``codes(x) @ w.T`` of float32 whole numbers 0..255 (pixels) and int8 weights, or None.

    The rule: when every element of ``x`` is a whole number in ``[0, 255]`` (``-0.0`` counts as 0),
    the result is ``u8s8_matmul(x.astype(np.uint8), w)``; when any element is not (a fraction, a value
    outside the range, inf or NaN), the result is None, as :func:`bitsim.kernels.byte_codes.uint8_codes`
    says. With AVX2, ``K <= 65793`` and ``2 * 255 * max|w| <= 32767`` (any ``|w| <= 64``, e.g. ±1
    weights), the check and conversion run inside the product: each task converts its block of rows
    into a uint8 buffer of its own and multiplies it at once, so the float32 input is read once and no
    uint8 copy of it is written. Otherwise the result is computed as ``uint8_codes`` then
    :func:`u8s8_matmul`. The oracle is :func:`bitsim.reference.u8.float_u8s8_matmul`.

    Parameters
    ----------
    x : numpy.ndarray of float32, shape (M, K)
        Pixel values; non-C-contiguous arrays are copied.
    w : numpy.ndarray of int8, shape (N, K)
        Weights, one row per output column.

    Returns
    -------
    numpy.ndarray or None
        As :func:`u8s8_matmul` (int32 when ``K <= 65793``, else int64), or None when ``x`` is not
        made of whole numbers 0..255.

    Raises
    ------
    TypeError
        If ``x`` is not float32 or ``w`` not int8.
    ValueError
        Wrong shapes.

    Examples
    --------
    >>> w = np.array([[1, -1, 1, -1], [-1, -1, -1, -1]], dtype=np.int8)
    >>> float_u8s8_matmul(np.array([[255, 0, 3, 200]], dtype=np.float32), w)
    array([[  58, -458]], dtype=int32)
    >>> float_u8s8_matmul(np.array([[255, 0.5, 3, 200]], dtype=np.float32), w) is None
    True
    """
    x, w, steps = _pixel_operands(x, w, "float_u8s8_matmul")
    return _float_avx2_gemm(x, w, steps) if steps else _two_passes(x, w)


def float_u8s8_signs(x, w, thresholds):
    """:func:`float_u8s8_matmul` and the packed compares of its result with per-channel thresholds, or None.

    The rule: ``acc = float_u8s8_matmul(x, w)`` and bit ``j`` of row ``i`` of ``signs`` is 1 where
    ``acc[i, j] >= thresholds[j]`` (:func:`bitsim.kernels.xnor.threshold_pack` without ``flip``); None when
    ``x`` is not made of whole numbers 0..255. On the AVX2 path the compares run in the product's tasks,
    each row while it is in cache, on int32: every threshold is first clipped to ``[-(2**31 - 1),
    2**31 - 1]``, which changes no compare, because ``|acc| <= 255 * 128 * K < 2**31 - 1`` there
    (``K <= 65793``). Its oracle is :func:`bitsim.reference.u8.float_u8s8_signs`.

    Parameters
    ----------
    x : numpy.ndarray of float32, shape (M, K)
        Pixel values.
    w : numpy.ndarray of int8, shape (N, K)
        Weights, one row per output column.
    thresholds : numpy.ndarray of int64, shape (N,)
        One integer threshold per output column.

    Returns
    -------
    tuple of (numpy.ndarray, numpy.ndarray of uint64, shape (M, ceil(N / 64))) or None
        The product as :func:`float_u8s8_matmul` returns it and the packed signs (bitorder 'little',
        padding bits 0), or None.

    Raises
    ------
    TypeError
        As :func:`float_u8s8_matmul`, or thresholds that are not int64.
    ValueError
        Wrong shapes.

    Examples
    --------
    >>> w = np.array([[1, -1, 1, -1], [-1, -1, -1, -1]], dtype=np.int8)
    >>> acc, signs = float_u8s8_signs(np.array([[255, 0, 3, 200]], dtype=np.float32), w, np.array([58, -457]))
    >>> acc, signs
    (array([[  58, -458]], dtype=int32), array([[1]], dtype=uint64))
    """
    t = np.asarray(thresholds)
    if t.dtype != np.int64:
        raise InputTypeError(f"float_u8s8_signs: thresholds must be int64, got {t.dtype}")
    x, w, steps = _pixel_operands(x, w, "float_u8s8_signs")
    if t.shape != (w.shape[0],):
        raise InputError(f"float_u8s8_signs: expected {w.shape[0]} thresholds (one per output column), got shape "
                         f"{t.shape}")
    if steps:
        return _float_avx2_gemm(x, w, steps, np.clip(t, -INT32_MAX, INT32_MAX).astype(np.int32))
    acc = _two_passes(x, w)
    return None if acc is None else (acc, threshold_pack(acc, t))


@numba.njit(cache=True, parallel=True)
def _unpack_pm1(words, n, out):
    for r in numba.prange(out.shape[0]):
        row = words[r]
        o = out[r]
        for i in range(n):
            o[i] = 1 if (row[i >> 6] >> np.uint64(i & 63)) & np.uint64(1) else -1


def pm1_int8(words, n, bitorder="little"):
    """Unpack packed ±1 rows into int8 ±1 values, the weight operand of :func:`u8s8_matmul`.

    Parameters
    ----------
    words : numpy.ndarray of uint64, shape (N, ceil(n / 64))
        Packed ±1 rows (:func:`bitsim.formats.binary.pack`): bit 1 = +1, element ``i`` at bit
        ``i % 64`` of word ``i // 64``, padding bits 0.
    n : int
        Values per row (K).
    bitorder : {'little', 'big'}
        Layout of ``words``.

    Returns
    -------
    numpy.ndarray of int8, shape (N, n), every value -1 or +1

    Raises
    ------
    TypeError
        If ``words`` is not uint64 or ``n`` not an integer.
    ValueError
        If the shape does not match ``n`` or a padding bit is set.

    Examples
    --------
    >>> from bitsim.formats.binary import pack
    >>> pm1_int8(pack([[1, -1, -1, 1]]), 4)
    array([[ 1, -1, -1,  1]], dtype=int8)
    """
    n = as_length(n)
    words = as_words(words, "pm1_int8: words", n, 2, bitorder)
    out = np.empty((words.shape[0], n), dtype=np.int8)
    if out.size:
        launch(_unpack_pm1, out.size, words, n, out, min_work=PARALLEL_MIN_WORK)
    return out

