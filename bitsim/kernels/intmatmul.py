"""Fixed-point GEMM with exact integer accumulation, and an optional fused requantization.

The arithmetic rules (each public function's docstring states its own):

* **Products** of int8 or int16 codes are exact (at most 30 bits).
* **Accumulation** is exact: the sum over K is the exact integer sum, as if accumulated in
  int64. The integer kernel adds products in int32 over blocks of K whose length is proven
  safe from the largest code magnitudes of the operands (no partial sum of a block can leave
  int32), and adds the block sums in int64; when no useful block length exists (full-range
  int16 codes) it accumulates every product in int64. No 16-bit saturating intermediate is
  ever used (unlike libraries built on ``vpmaddubsw``).
* **int32 output** saturates the exact sum to ``[-2**31, 2**31 - 1]`` and counts each
  saturated value in ``Counts.saturated``. A wrapping 32-bit hardware accumulator gives the
  same answer whenever the exact sum fits (two's-complement addition is exact modulo 2**32).
* **Requantization** (optional, fused) rescales the accumulator, with
  ``fmt_a.frac_bits + fmt_b.frac_bits`` fractional bits, into ``out_fmt`` exactly as
  :func:`bitsim.formats.fixed.requantize`: rounding right shift by
  :func:`bitsim.formats.fixed.rshift_round`, exact left shift, then the overflow mode
  (:func:`bitsim.kernels.requantize.requantize`).
* **BLAS route**: a float BLAS product is exact when every partial sum is an integer below
  2**24 (float32) or 2**53 (float64) in magnitude. From the formats, each product is at most
  ``P = 2**(bits_a - 1) * 2**(bits_b - 1)`` in magnitude, so a sum of ``c`` products is exact
  in float32 when ``c * P <= 2**24`` and in float64 when ``c * P <= 2**53``, whatever order
  the BLAS adds them in (this assumes a classical GEMM, which OpenBLAS and MKL are; not a
  Strassen-type algorithm). See :func:`plan`.

The integer kernels are the reference implementation and are always available; results do
not depend on the route, the kernel or the number of numba threads. On CPUs with AVX2 the
int32-block kernel is a 4 x 16 tile written in LLVM IR around ``vpmaddwd`` (16 exact int16
products per instruction, adjacent pairs added in int32: the block proof covers the pairs);
elsewhere a portable Numba loop (``vpmulld`` on x86) computes the same sums. Slow oracles live
in :mod:`bitsim.reference.intmatmul`.
"""

import numba
import numpy as np
from llvmlite import binding
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..errors import InputError
from ..formats.launch import launch
from .operands import as_acc_dtype, as_codes, check_k
from .requantize import INT32_MAX, check_fixed_format, requantize, saturate_int32, shift_of

__all__ = ["matmul", "plan"]

FLOAT32_EXACT = 2**24
FLOAT64_EXACT = 2**53
CHUNK32_MIN = 512  # float32 K-chunks shorter than this are not worth their extra BLAS calls
BLOCK_MIN = 64  # below this int32 block length the kernel accumulates products in int64
KC = 512  # K-block of the integer kernels (also bounded by the int32 proof)
MR, NR, NCB = 4, 16, 4  # vpmaddwd tile: 4 rows of a by 16 rows of b; a task covers NCB tiles of b
RG, NC = 64, 32  # a task: RG rows of a by NC rows of b (their K-blocks, 96 KiB of int16, stay in L2)
PARALLEL_MIN_WORK = 2**18

# ---------------------------------------------------------------------------------------
# integer GEMM kernels
#
# out[i, j] += sum_k a[i, k] * b[j, k], a tile of 4 rows of a by 2 rows of b at a time: the
# accumulator s{r}{c} pairs row r of the tile with row c. LLVM vectorizes the loop over k
# (8 int32 lanes per ymm register; each loaded vector is used by 2 or 4 products). With int32
# accumulators the caller proves that no block of k can overflow them.


def _make_gemm(acc):
    @numba.njit(cache=True)
    def tile(a0, a1, a2, a3, b, j0, j1, k0, k1, o0, o1, o2, o3):
        j = j0
        while j + 1 < j1:
            b0 = b[j, k0:k1]
            b1 = b[j + 1, k0:k1]
            s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = acc(0)
            for k in range(k1 - k0):
                x0 = a0[k]
                x1 = a1[k]
                x2 = a2[k]
                x3 = a3[k]
                y0 = b0[k]
                y1 = b1[k]
                s00 = acc(s00 + acc(x0 * y0))
                s01 = acc(s01 + acc(x0 * y1))
                s10 = acc(s10 + acc(x1 * y0))
                s11 = acc(s11 + acc(x1 * y1))
                s20 = acc(s20 + acc(x2 * y0))
                s21 = acc(s21 + acc(x2 * y1))
                s30 = acc(s30 + acc(x3 * y0))
                s31 = acc(s31 + acc(x3 * y1))
            o0[j] += s00
            o0[j + 1] += s01
            o1[j] += s10
            o1[j + 1] += s11
            o2[j] += s20
            o2[j + 1] += s21
            o3[j] += s30
            o3[j + 1] += s31
            j += 2
        if j < j1:
            b0 = b[j, k0:k1]
            s00 = s10 = s20 = s30 = acc(0)
            for k in range(k1 - k0):
                y0 = b0[k]
                s00 = acc(s00 + acc(a0[k] * y0))
                s10 = acc(s10 + acc(a1[k] * y0))
                s20 = acc(s20 + acc(a2[k] * y0))
                s30 = acc(s30 + acc(a3[k] * y0))
            o0[j] += s00
            o1[j] += s10
            o2[j] += s20
            o3[j] += s30

    @numba.njit(cache=True)
    def row(a0, b, j0, j1, k0, k1, o0):
        for j in range(j0, j1):
            b0 = b[j, k0:k1]
            s = acc(0)
            for k in range(k1 - k0):
                s = acc(s + acc(a0[k] * b0[k]))
            o0[j] += s

    @numba.njit(cache=True, parallel=True)
    def gemm(a, b, kb, out):
        m, kk = a.shape
        n = b.shape[0]
        groups = (m + RG - 1) // RG
        for t in numba.prange(groups * ((n + NC - 1) // NC)):
            j0 = (t // groups) * NC
            j1 = min(j0 + NC, n)
            g0 = (t % groups) * RG
            g1 = min(g0 + RG, m)
            for k0 in range(0, kk, kb):
                k1 = min(k0 + kb, kk)
                i = g0
                while i + 3 < g1:
                    tile(a[i, k0:k1], a[i + 1, k0:k1], a[i + 2, k0:k1], a[i + 3, k0:k1], b, j0, j1, k0, k1,
                         out[i], out[i + 1], out[i + 2], out[i + 3])
                    i += 4
                for r in range(i, g1):
                    row(a[r, k0:k1], b, j0, j1, k0, k1, out[r])

    return gemm


_gemm_i32 = _make_gemm(np.int32)
_gemm_i64 = _make_gemm(np.int64)


@numba.njit(cache=True, parallel=True)
def _max_abs_rows(x, lo, hi):
    """Largest |code| of a 2-D array, and whether every code lies in [lo, hi]."""
    m = x.shape[0]
    big = np.zeros(m, np.int64)
    bad = np.zeros(m, np.bool_)
    for i in numba.prange(m):
        r = x[i]
        mx = np.int64(0)
        mn = np.int64(0)
        for k in range(r.shape[0]):
            v = np.int64(r[k])
            mx = max(mx, v)
            mn = min(mn, v)
        big[i] = max(mx, -mn)
        bad[i] = mx > hi or mn < lo
    return big, bad


def max_abs(x, fmt, name):
    """Largest code magnitude of ``x`` (2-D); raises if a code lies outside ``fmt``'s range."""
    if x.size == 0:
        return 0
    big, bad = launch(_max_abs_rows, x.size, x, fmt.min_code, fmt.max_code, min_work=PARALLEL_MIN_WORK)
    if bad.any():
        row = int(np.argmax(bad))
        raise InputError(
            f"{name}: row {row} holds codes outside the {fmt.bits}-bit range {fmt.min_code}..{fmt.max_code} "
            f"of {fmt.name}; saturate them first (bitsim.formats.fixed.saturate(codes, fmt))"
        )
    return int(big.max())


def int32_block(max_a, max_b, k):
    """Longest K-block whose int32 partial sums cannot overflow, given the largest |codes|."""
    p = max_a * max_b
    if p == 0:
        return max(k, 1)
    return max(1, min(k, INT32_MAX // p))


# ---------------------------------------------------------------------------------------
# AVX2 kernel: vpmaddwd multiplies 16 pairs of int16 and adds adjacent products into 8 int32
# lanes (exact unless both products of a pair are (-2**15)**2, excluded by the block proof:
# 2 products per lane are part of the block). LLVM does not form it for register-blocked
# loops, so the 4 x 16 tile below is written in LLVM IR: per pair of k, two loads of b's
# packed pairs, four broadcasts of a's (a[i + r, k], a[i + r, k + 1]), eight vpmaddwd.


def _has_avx2():
    try:
        features = binding.get_host_cpu_features()
    except RuntimeError:
        return False
    return bool(features.get("avx2")) and numba.config.CPU_NAME in (None, "host")


HAS_AVX2 = _has_avx2()


@intrinsic
def _madd_tile(typingctx, a, i, k0, pairs, panel, c):
    """c[r, :] = sum over p < pairs of the products of a[i + r, k0 + 2p : k0 + 2p + 2] and panel[p, :, :]."""
    sig = types.void(a, types.intp, types.intp, types.intp, panel, c)

    def codegen(context, builder, signature, args):
        a_v, i_v, k0_v, pairs_v, panel_v, c_v = args
        arr_a = context.make_array(signature.args[0])(context, builder, a_v)
        arr_b = context.make_array(signature.args[4])(context, builder, panel_v)
        arr_c = context.make_array(signature.args[5])(context, builder, c_v)
        i32, i64 = ir.IntType(32), ir.IntType(64)
        v16, v8 = ir.VectorType(ir.IntType(16), 16), ir.VectorType(i32, 8)
        madd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v8, [v16, v16]), "llvm.x86.avx2.pmadd.wd")
        lda = builder.extract_value(arr_a.strides, 0)
        a0 = builder.add(builder.ptrtoint(arr_a.data, i64), builder.add(builder.mul(i_v, lda), builder.shl(k0_v, ir.Constant(i64, 1))))
        b0 = builder.ptrtoint(arr_b.data, i64)
        accs = [cgutils.alloca_once_value(builder, ir.Constant(v8, None)) for _ in range(2 * MR)]
        with cgutils.for_range(builder, pairs_v) as loop:
            bp = builder.add(b0, builder.shl(loop.index, ir.Constant(i64, 6)))
            bv = [builder.load(builder.inttoptr(builder.add(bp, ir.Constant(i64, 32 * h)), v16.as_pointer()), align=2)
                  for h in range(2)]
            ap = builder.add(a0, builder.shl(loop.index, ir.Constant(i64, 2)))
            for r in range(MR):
                word = builder.load(builder.inttoptr(builder.add(ap, builder.mul(ir.Constant(i64, r), lda)),
                                                     i32.as_pointer()), align=2)
                splat = builder.insert_element(ir.Constant(v8, None), word, ir.Constant(i32, 0))
                splat = builder.bitcast(builder.shuffle_vector(splat, splat, ir.Constant(v8, None)), v16)
                for h in range(2):
                    acc = accs[2 * r + h]
                    builder.store(builder.add(builder.load(acc), builder.call(madd, [splat, bv[h]])), acc)
        ldc = builder.extract_value(arr_c.strides, 0)
        c0 = builder.ptrtoint(arr_c.data, i64)
        for r in range(MR):
            for h in range(2):
                at = builder.add(c0, builder.add(builder.mul(ir.Constant(i64, r), ldc), ir.Constant(i64, 32 * h)))
                builder.store(builder.load(accs[2 * r + h]), builder.inttoptr(at, v8.as_pointer()), align=4)
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=True, parallel=True)
def _pack_pairs(b, kpad, out):
    """out[t, p, c, h] = b[t * NR + c, 2p + h], zero padded: 16 rows of b as int16 pairs along K."""
    n, k = b.shape
    for t in numba.prange(out.shape[0]):
        for c in range(min(NR, n - t * NR)):
            r = b[t * NR + c]
            for j in range(k):
                out[t, j >> 1, c, j & 1] = r[j]


@numba.njit(cache=True, parallel=True)
def _gemm_madd(a, bp, kb, m, n, out):
    """out += a @ b.T: a (M4, Kpad) int16 with M4 % 4 == 0, Kpad even; bp from _pack_pairs."""
    m4, kpad = a.shape
    groups = max(1, m4 // RG)
    rows = (m4 // groups + MR - 1) // MR * MR
    tiles = bp.shape[0]
    for task in numba.prange(groups * ((tiles + NCB - 1) // NCB)):
        g0 = (task % groups) * rows
        t0 = (task // groups) * NCB
        c = np.empty((MR, NR), np.int32)
        for k0 in range(0, kpad, kb):
            k1 = min(k0 + kb, kpad)
            for t in range(t0, min(t0 + NCB, tiles)):
                panel = bp[t, k0 >> 1 : k1 >> 1]
                cols = min(NR, n - t * NR)
                for i in range(g0, min(g0 + rows, m4), MR):
                    _madd_tile(a, i, k0, (k1 - k0) >> 1, panel, c)
                    for r in range(min(MR, m - i)):
                        o = out[i + r]
                        cr = c[r]
                        for h in range(cols):
                            o[t * NR + h] += cr[h]


def _integer_gemm(a, b, max_a, max_b, portable=False):
    a, b = a.astype(np.int16, copy=False), b.astype(np.int16, copy=False)
    m, k = a.shape
    n = b.shape[0]
    out = np.zeros((m, n), dtype=np.int64)
    if out.size == 0 or k == 0:
        return out
    kb = int32_block(max_a, max_b, k)
    if kb < BLOCK_MIN and kb < k:
        launch(_gemm_i64, out.size * k, a, b, min(k, KC), out, min_work=PARALLEL_MIN_WORK, tasks=True)
    elif portable or not HAS_AVX2:
        launch(_gemm_i32, out.size * k, a, b, min(kb, KC), out, min_work=PARALLEL_MIN_WORK, tasks=True)
    else:
        kpad = k + k % 2
        a16 = np.zeros(((m + MR - 1) // MR * MR, kpad), dtype=np.int16)
        a16[:m, :k] = a
        bp = np.empty(((n + NR - 1) // NR, kpad // 2, NR, 2), dtype=np.int16)
        if n % NR or k % 2:
            bp[-1] = 0
        launch(_pack_pairs, n * k, b, kpad, bp, min_work=PARALLEL_MIN_WORK)
        kb = max(2, min(kb, KC, kpad) // 2 * 2)
        launch(_gemm_madd, out.size * k, a16, bp, kb, m, n, out, min_work=PARALLEL_MIN_WORK, tasks=True)
    return out


def plan(fmt_a, fmt_b, k, route="auto", max_abs=None):
    """Which computation :func:`matmul` uses for these formats and reduction length.

    The BLAS bound uses only the formats: ``P = 2**(fmt_a.bits - 1) * 2**(fmt_b.bits - 1)``
    bounds every product (codes are checked to lie in their formats' ranges). A BLAS product
    is provably exact as

    * ``'blas-float32'`` when ``c = floor(2**24 / P) >= max(1, min(k, 512))``: float32 GEMMs
      over K-chunks of ``c`` products, each exact, added in int64;
    * else ``'blas-float64'`` when ``k * P <= 2**53``: one float64 GEMM, exact.

    ``route='auto'`` prefers the integer kernel when it runs int32 blocks on the AVX2
    ``vpmaddwd`` kernel (faster than the float BLAS on such CPUs), i.e. when
    ``floor((2**31 - 1) / (max|a| * max|b|)) >= 64`` (``max_abs``, else the formats' largest
    magnitudes); otherwise a provably exact BLAS product; otherwise the integer kernel.

    Parameters
    ----------
    fmt_a, fmt_b : FixedFormat
    k : int
        Reduction length.
    route : {'auto', 'integer', 'blas'}
        ``'integer'`` always gives ``'integer'``; ``'blas'`` raises ``ValueError`` when the
        bound does not hold.
    max_abs : (int, int), optional
        The operands' largest code magnitudes, for ``'auto'``.

    Returns
    -------
    str
        ``'integer'``, ``'blas-float32'`` or ``'blas-float64'``.
    """
    if route not in ("auto", "integer", "blas"):
        raise InputError(f"route must be 'auto', 'integer' or 'blas', got {route!r}")
    if route == "integer":
        return "integer"
    if route == "auto" and HAS_AVX2:
        max_a, max_b = max_abs if max_abs is not None else (-fmt_a.min_code, -fmt_b.min_code)
        if int32_block(max_a, max_b, k) >= min(BLOCK_MIN, max(k, 1)):
            return "integer"
    p = (1 << (fmt_a.bits - 1)) * (1 << (fmt_b.bits - 1))
    if FLOAT32_EXACT // p >= max(1, min(k, CHUNK32_MIN)):
        return "blas-float32"
    if k * p <= FLOAT64_EXACT:
        return "blas-float64"
    if route == "blas":
        raise InputError(
            f"a float BLAS product of {fmt_a.name} x {fmt_b.name} codes over K={k} is not provably exact "
            f"(K * 2**{fmt_a.bits + fmt_b.bits - 2} > 2**53); use route='integer' or 'auto'"
        )
    return "integer"


def _blas_gemm(a, b, fmt_a, fmt_b, how):
    m, k = a.shape
    if how == "blas-float64":
        return (a.astype(np.float64) @ b.astype(np.float64).T).astype(np.int64)
    chunk = FLOAT32_EXACT // ((1 << (fmt_a.bits - 1)) * (1 << (fmt_b.bits - 1)))
    af = a.astype(np.float32)
    bf = b.astype(np.float32)
    out = np.zeros((m, b.shape[0]), dtype=np.int64)
    for k0 in range(0, k, chunk):
        out += (af[:, k0 : k0 + chunk] @ bf[:, k0 : k0 + chunk].T).astype(np.int64)
    return out


def _codes(x, fmt, name):
    return as_codes(x, name, (fmt.dtype,), f"{fmt.dtype} fixed-point codes of {fmt.name}",
                    "quantize with bitsim.formats.fixed.quantize(x, fmt)")


def matmul(a, fmt_a, b, fmt_b, out_fmt=None, *, acc_dtype=np.int32, route="auto", rng=None, counts=None):
    """Fixed-point matrix product ``A @ B.T`` with exact accumulation and optional requantize.

    ``acc[i, j] = sum_k a[i, k] * b[j, k]``, exact (products and the sum are exact integers,
    as if accumulated in int64), with ``fmt_a.frac_bits + fmt_b.frac_bits`` fractional bits.

    * ``acc_dtype=int32``: values outside int32 saturate to ``-2**31`` / ``2**31 - 1``, each
      counted in ``counts.saturated``. A wrapping 32-bit hardware accumulator gives the same
      answer whenever the exact sum fits int32. ``int64``: the exact sum.
    * ``out_fmt``: the int32 (or int64) accumulator is then requantized into ``out_fmt``
      exactly as :func:`bitsim.formats.fixed.requantize` (rounding right shift by
      ``out_fmt.rounding``, exact left shift, then ``out_fmt.overflow``, counted); see
      :func:`requantize`.

    No 16-bit saturating intermediate is used: the integer kernel adds products in int32
    only over K-blocks that the largest code magnitudes prove safe, otherwise in int64.

    Parameters
    ----------
    a : numpy.ndarray of int8 or int16, shape (M, K)
        Codes of ``fmt_a`` (``a.dtype == fmt_a.dtype``).
    fmt_a : FixedFormat
        2..16 bits.
    b : numpy.ndarray of int8 or int16, shape (N, K)
        Codes of ``fmt_b``, one row per output column (a weight matrix (out, in)).
    fmt_b : FixedFormat
    out_fmt : FixedFormat, optional
        Fused requantization target.
    acc_dtype : {numpy.int32, numpy.int64}
    route : {'auto', 'integer', 'blas'}
        ``'integer'``: the Numba integer kernel. ``'blas'``: a float BLAS product that the
        formats prove exact (see :func:`plan`; raises when the bound fails). ``'auto'``: the
        integer kernel when it runs on its fast int32-block AVX2 path, else BLAS when provably
        exact, else the integer kernel. All routes give identical results.
    rng : generator or int, optional
        For ``out_fmt.rounding == STOCHASTIC`` (delegated to
        :func:`bitsim.formats.fixed.requantize`).
    counts : Counts, optional
        Receives int32 saturations and requantization overflows.

    Returns
    -------
    numpy.ndarray, shape (M, N)
        int32 / int64 accumulators, or ``out_fmt.dtype`` codes when ``out_fmt`` is given.

    Raises
    ------
    TypeError
        Wrong dtypes or format types.
    ValueError
        Wrong shapes, formats wider than 16 bits, codes outside their format, an unknown
        route, or ``route='blas'`` without an exactness bound.
    OverflowError
        If ``out_fmt.overflow`` is ERROR and a value is out of range.

    Examples
    --------
    >>> f = FixedFormat(8, 4)
    >>> a = np.array([[16, 32]], dtype=np.int8)              # 1.0, 2.0
    >>> b = np.array([[16, 16], [8, -8]], dtype=np.int8)     # rows (1, 1) and (0.5, -0.5)
    >>> matmul(a, f, b, f)                                   # 8 fractional bits
    array([[ 768, -128]], dtype=int32)
    >>> matmul(a, f, b, f, out_fmt=f)
    array([[48, -8]], dtype=int8)
    """
    check_fixed_format(fmt_a, "fmt_a")
    check_fixed_format(fmt_b, "fmt_b")
    for fmt, name in ((fmt_a, "fmt_a"), (fmt_b, "fmt_b")):
        if fmt.bits > 16:
            raise InputError(
                f"{name}: matmul takes 8- or 16-bit codes (int8/int16); {fmt.name} has {fmt.bits} bits. "
                "Requantize the operand to at most 16 bits first"
            )
    if out_fmt is not None:
        check_fixed_format(out_fmt, "out_fmt")
    acc_dtype = as_acc_dtype(acc_dtype)
    a = _codes(a, fmt_a, "matmul: a")
    b = _codes(b, fmt_b, "matmul: b")
    check_k("matmul", a, b, ("a", "b"), " (pass the weight matrix as (out, in), i.e. transposed)")
    a, b = a.astype(np.int16, copy=False), b.astype(np.int16, copy=False)  # one compiled kernel each
    k = a.shape[1]
    plan(fmt_a, fmt_b, k, route)  # validates the route and the BLAS bound first
    if out_fmt is not None:
        shift_of(fmt_a.frac_bits + fmt_b.frac_bits, out_fmt)  # refuses a rescaling beyond 62 bits before the work
    max_a = max_abs(a, fmt_a, "matmul: a")
    max_b = max_abs(b, fmt_b, "matmul: b")
    how = plan(fmt_a, fmt_b, k, route, (max_a, max_b))
    if how == "integer":
        acc = _integer_gemm(a, b, max_a, max_b)
    else:
        acc = _blas_gemm(a, b, fmt_a, fmt_b, how)
    if acc_dtype == np.int32:
        acc = saturate_int32(acc, counts)
    if out_fmt is None:
        return acc
    return requantize(acc, fmt_a.frac_bits + fmt_b.frac_bits, out_fmt, rng, counts)
