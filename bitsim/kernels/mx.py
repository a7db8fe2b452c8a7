"""MX dot products and GEMM under two written accumulation rules (``docs/formats.md``, section 14.5).

``exact``    every element product and every block sum is exact, the blocks' contributions
             ``P_b * X_a * X_b`` are summed exactly in a wide fixed-point accumulator (24 limbs of 32 bits,
             LSB ``2**-320``, enough for any two E8M0 scales and any element format), and the sum is
             rounded once to float32, to nearest, ties to even (beyond float32's range: +-Inf; an exact
             zero: +0.0).
``float32``  what many hardware units do: per block, ``s = 0``; ``s = fl32(s + a_k * b_k)`` in k order (the
             element products are exact in float32); then ``acc = fl32(acc + fl32(s * X_a * X_b))`` in block
             order, ``acc`` starting at +0.0; float32 arithmetic rounds to nearest, ties to even, beyond
             float32's range to +-Inf (IEEE-754: Inf - Inf is NaN, written as the quiet NaN 0x7fc00000).

Both: a block whose scale is NaN (0xFF) or which holds a NaN or Inf element makes the result NaN.

The exact kernel turns element codes into integers ``c`` with value ``c * 2**-q`` (E4M3 ``q = 9``, E2M1
``q = 1`` ...) so that a block's dot product is an integer dot (in float64 or float32 lanes, exact because
every partial sum stays below ``2**53`` or ``2**24``). Before it, :func:`gemm` tries two exact routes,
each used only where its check proves it exact: the shifted-integer route (:func:`int8_route`: within a
row or column all blocks on one grid, integers of at most 7 bits, one uint8 x int8 GEMM; MXFP4 data), and
a BLAS product of the decoded values when every partial sum is a multiple of the smallest value grid and
below ``2**53`` (float64) or ``2**24`` (float32), so that BLAS computes the exact sum in any order
(:func:`blas_rows`; MXFP8 data). ``route=`` forces one.
"""

import numba
import numpy as np

from ..errors import InputError, InputTypeError
from ..formats.launch import launch
from ..formats.minifloat import MinifloatFormat, values
from ..formats.mx import SCALE_NAN, MXTensor, as_mx
from .u8 import u8s8_matmul

LIMBS = 24
BASE = -320  # exponent of the accumulator's LSB
PARALLEL_MIN_WORK = 1 << 16
# The passes over the operands and the result before and after a GEMM (O(M K + K N + M N) work) run on
# the calling thread below this many elements (about 1 ms on one core): on cores shared with other
# processes every parallel call waits for its slowest thread, which costs more than a shorter pass.
PREP_MIN_WORK = 1 << 20
BAD_INT = 1 << 62  # |element integer| standing for a NaN or Inf code in the block summaries
INT8_MAX = 127
RULES = ("exact", "float32")
ROUTES = ("auto", "integer", "blas", "int8")


def element_integers(element):
    """``(ints, q, bad)``: every code's value as ``ints[code] * 2**-q`` (float64 integers), and NaN/Inf codes."""
    if isinstance(element, MinifloatFormat):
        v = values(element)
        q = element.bias - 1 + element.man_bits
        bad = ~np.isfinite(v)
        ints = np.ldexp(np.where(bad, 0.0, v), q)
    else:
        q = element.man_bits
        ints = np.arange(256).astype(np.uint8).view(np.int8).astype(np.float64)
        bad = np.zeros(256, bool)
    if element.bits < 8:
        pad = 256 - ints.size
        ints, bad = np.concatenate([ints, np.zeros(pad)]), np.concatenate([bad, np.ones(pad, bool)])
    return ints, q, bad


@numba.njit(cache=True, inline="always")
def _add_term(limbs, p, off):
    """limbs += p * 2**off (p an int64 below 2**53 in magnitude, 0 <= off < 32 * (LIMBS - 3))."""
    mask = np.int64(0xFFFFFFFF)
    li = off >> 5
    r = off & 31
    p0 = p & mask
    p1 = p >> 32
    t0 = p0 << r
    limbs[li] += t0 & mask
    limbs[li + 1] += t0 >> 32
    t1 = p1 << r
    limbs[li + 1] += t1 & mask
    limbs[li + 2] += t1 >> 32


@numba.njit(cache=True)
def _round_limbs(limbs):
    """The accumulator's value rounded once to float32 (nearest, ties to even); clears the limbs."""
    n = limbs.size
    for i in range(n - 1):
        c = limbs[i] >> 32
        limbs[i] -= c << 32
        limbs[i + 1] += c
    neg = limbs[n - 1] < 0
    if neg:
        for i in range(n):
            limbs[i] = -limbs[i]
        for i in range(n - 1):
            c = limbs[i] >> 32
            limbs[i] -= c << 32
            limbs[i + 1] += c
    h = n - 1
    while h >= 0 and limbs[h] == 0:
        h -= 1
    if h < 0:
        return np.float32(0.0)
    top = limbs[h]
    nb = 0
    while top > 0:
        top >>= 1
        nb += 1
    tb = 32 * h + nb - 1
    e = tb + BASE
    ls = max(e - 23, -149)
    lp = ls - BASE
    q = np.int64(0)
    for pos in range(tb, lp - 1, -1):
        q = (q << 1) | ((limbs[pos >> 5] >> (pos & 31)) & 1)
    hp = lp - 1
    half = (limbs[hp >> 5] >> (hp & 31)) & 1
    sticky = (limbs[hp >> 5] & ((np.int64(1) << (hp & 31)) - 1)) != 0
    for i in range(hp >> 5):
        if limbs[i] != 0:
            sticky = True
    if half == 1 and (sticky or (q & 1) == 1):
        q += 1
    for i in range(n):
        limbs[i] = 0
    v = np.float32(np.float64(q) * 2.0 ** ls)
    return -v if neg else v


@numba.njit(cache=True, parallel=True, fastmath={"reassoc", "contract", "nsz"})
def _gemm_exact(ai, sa, bti, sb, block, tq, out):
    """out[i, j] = the exact sum rounded once to float32; ai (M, K), bti (N, K) integer-valued float64."""
    m, k = ai.shape
    n = bti.shape[0]
    nb = sa.shape[1]
    for i in numba.prange(m):
        limbs = np.zeros(LIMBS, np.int64)
        for j in range(n):
            nan = False
            for b in range(nb):
                if sa[i, b] == SCALE_NAN or sb[j, b] == SCALE_NAN:
                    nan = True
                    break
                lo = b * block
                hi = min(lo + block, k)
                s = 0.0
                for kk in range(lo, hi):
                    s += ai[i, kk] * bti[j, kk]  # integers below 2**53: exact in any order
                if s != 0.0:
                    t = np.int64(sa[i, b]) + np.int64(sb[j, b]) - 254 - tq
                    _add_term(limbs, np.int64(s), t - BASE)
            if nan:
                limbs[:] = 0
                out[i, j] = np.float32(np.nan)
            else:
                out[i, j] = _round_limbs(limbs)


@numba.njit(cache=True)
def _gemm_exact_terms(ai, sa, bti, sb, block, tq, out):
    """Like :func:`_gemm_exact`, adding every element product to the accumulator on its own (any format)."""
    m, k = ai.shape
    n = bti.shape[0]
    nb = sa.shape[1]
    limbs = np.zeros(LIMBS, np.int64)
    for i in range(m):
        for j in range(n):
            nan = False
            for b in range(nb):
                if sa[i, b] == SCALE_NAN or sb[j, b] == SCALE_NAN:
                    nan = True
                    break
                t = np.int64(sa[i, b]) + np.int64(sb[j, b]) - 254 - tq
                for kk in range(b * block, min(b * block + block, k)):
                    x, y = ai[i, kk], bti[j, kk]
                    if x != 0.0 and y != 0.0:
                        # split each integer into its odd part and a power of two: the product of odd parts
                        # has at most 2 * 4 significant bits for every element format of at most 8 bits
                        ex = 0
                        while x == np.floor(x / 2.0) * 2.0:
                            x /= 2.0
                            ex += 1
                        ey = 0
                        while y == np.floor(y / 2.0) * 2.0:
                            y /= 2.0
                            ey += 1
                        _add_term(limbs, np.int64(x * y), t + ex + ey - BASE)
            if nan:
                limbs[:] = 0
                out[i, j] = np.float32(np.nan)
            else:
                out[i, j] = _round_limbs(limbs)


@numba.njit(cache=True, parallel=True)
def _gemm_float32(av, sa, btv, sb, block, out):
    """The float32 rule: block sums in k order, then scaled, then summed in block order; av, btv float32."""
    m, k = av.shape
    n = btv.shape[0]
    nb = sa.shape[1]
    for i in numba.prange(m):
        for j in range(n):
            acc = np.float32(0.0)
            for b in range(nb):
                if sa[i, b] == SCALE_NAN or sb[j, b] == SCALE_NAN:
                    acc = np.float32(np.nan)
                    break
                s = np.float32(0.0)
                for kk in range(b * block, min(b * block + block, k)):
                    s = np.float32(s + av[i, kk] * btv[j, kk])
                x = np.float32(np.float64(s) * 2.0 ** (np.int64(sa[i, b]) + np.int64(sb[j, b]) - 254))
                acc = np.float32(acc + x)
            out[i, j] = acc if acc == acc else np.float32(np.nan)  # Inf - Inf gives the quiet NaN 0x7fc00000


@numba.njit(cache=True, parallel=True)
def _row_blocks(codes, scales, absints, block, bmax, bsum):
    """Per block of a (R, K) operand blocked along axis 1: the largest and the sum of |element integer|
    (``absints[code]``, ``BAD_INT`` for a NaN/Inf code), into bmax (R, nb) int64 and bsum (R, nb)."""
    r, k = codes.shape
    for i in numba.prange(r):
        for b in range(scales.shape[1]):
            m = np.int64(0)
            t = 0.0
            for kk in range(b * block, min(b * block + block, k)):
                v = absints[codes[i, kk]]
                m = max(m, v)
                t += v
            bmax[i, b] = m
            bsum[i, b] = t


@numba.njit(cache=True, parallel=True)
def _col_blocks(codes, scales, absints, block, bmax, bsum):
    """Like :func:`_row_blocks` for a (K, C) operand blocked along axis 0: bmax, bsum (nb, C)."""
    k, c = codes.shape
    for b in numba.prange(scales.shape[0]):
        m, t = bmax[b], bsum[b]
        m[:] = 0
        t[:] = 0.0
        for kk in range(b * block, min(b * block + block, k)):
            row = codes[kk]
            for j in range(c):
                v = absints[row[j]]
                m[j] = max(m[j], v)
                t[j] += v


class Summary:
    """Per-block facts of one MX operand, with its lines (rows of ``a``, columns of ``b``) along axis 0.

    ``e`` (lines, nb) the scale exponents; ``nonzero`` and ``nan`` (lines, nb) blocks; ``bmax``, ``bsum``
    the largest and the sum of |element integer| per block; ``grid`` (lines,) the smallest ``e`` over a
    line's nonzero blocks (0 for a line without one); ``nan_line`` whether a line has a NaN block; ``q``
    the element integers' exponent (value = integer * 2**(e - q)).
    """

    def __init__(self, t, by_rows):
        ints, self.q, bad = element_integers(as_mx(t.fmt).element)
        absints = np.where(bad, BAD_INT, np.abs(ints)).astype(np.int64)
        lines = t.codes.shape[0] if by_rows else t.codes.shape[1]
        nb = t.scales.shape[1] if by_rows else t.scales.shape[0]
        bmax, bsum = np.empty((lines, nb), np.int64), np.empty((lines, nb))
        if by_rows:
            launch(_row_blocks, t.codes.size, t.codes, t.scales, absints, t.fmt.block, bmax, bsum,
                   min_work=PREP_MIN_WORK)
            scales = t.scales
        else:
            bm, bs = np.empty((nb, lines), np.int64), np.empty((nb, lines))
            launch(_col_blocks, t.codes.size, t.codes, t.scales, absints, t.fmt.block, bm, bs,
                   min_work=PREP_MIN_WORK)
            bmax, bsum, scales = bm.T, bs.T, t.scales.T
        self.nan = (scales == SCALE_NAN) | (bmax >= BAD_INT)
        self.nonzero = (bmax > 0) & ~self.nan
        self.e = scales.astype(np.int64) - 127
        self.bmax, self.bsum = np.where(self.nan, 0, bmax), np.where(self.nan, 0.0, bsum)
        self.nan_line = self.nan.any(axis=1)
        g = np.where(self.nonzero, self.e, 1 << 20).min(axis=1, initial=1 << 20)
        self.grid = np.where(g == 1 << 20, 0, g)
        self.shifted = None

    def shifts(self):
        """(shift (lines, nb), widest (lines,)): each nonzero block's ``e - grid`` (0 elsewhere) and the
        largest |element integer| * 2**shift of each line, the line's values in units of 2**(grid - q)."""
        if self.shifted is None:
            d = np.where(self.nonzero, self.e - self.grid[:, None], 0)
            self.shifted = d, (self.bmax * np.ldexp(1.0, np.minimum(d, 60))).max(axis=1, initial=0)
        return self.shifted

    def stats(self):
        """``(grid, top, l1, max, nan)`` of :func:`blas_rows`: value grids and top exponents (minus q),
        L1 norm and largest magnitude in units of 2**grid, NaN lines."""
        d = np.where(self.nonzero, self.e - self.grid[:, None], 0)
        unit = np.ldexp(1.0, np.minimum(d, 1000))
        l1 = (self.bsum * unit).sum(axis=1)
        mx = (self.bmax * unit).max(axis=1, initial=0)
        top = np.where(self.nonzero, self.e, -(1 << 20)).max(axis=1, initial=-(1 << 20))
        grid = np.where(self.nonzero.any(axis=1), self.grid, 1 << 20)
        return grid - self.q, top - self.q, l1, mx, self.nan_line


@numba.njit(cache=True, parallel=True)
def _decode_rows(codes, scales, ints, q, block, out):
    """out[i, k] = ints[codes[i, k]] * 2**(scale exponent - q) (exact); scales (R, nb)."""
    r, k = codes.shape
    for i in numba.prange(r):
        for b in range(scales.shape[1]):
            f = 2.0 ** (np.int64(scales[i, b]) - 127 - q)
            for kk in range(b * block, min(b * block + block, k)):
                out[i, kk] = ints[codes[i, kk]] * f


@numba.njit(cache=True, parallel=True)
def _decode_cols(codes, scales, ints, pow2, block, out):
    """out[k, j] = ints[codes[k, j]] * 2**(scale exponent - q) (exact); scales (nb, C)."""
    k, c = codes.shape
    for kk in numba.prange(k):
        b = kk // block
        for j in range(c):
            out[kk, j] = ints[codes[kk, j]] * pow2[scales[b, j]]


@numba.njit(cache=True, parallel=True)
def _fill_rows(codes, picked, shift, lut, block, x):
    """x[r, k] = lut[shift[i, b] + 1, codes[i, k]] (uint8) for i = picked[r]: rows of a (R, K) operand blocked
    along axis 1; ``lut`` flat."""
    k = codes.shape[1]
    for r in numba.prange(picked.size):
        i = picked[r]
        for b in range(shift.shape[1]):
            base = (np.int64(shift[i, b]) + 1) << 8
            for kk in range(b * block, min(b * block + block, k)):
                x[r, kk] = lut[base + codes[i, kk]]


@numba.njit(cache=True, parallel=True)
def _fill_cols(codes, shift, lut, block, w, partial):
    """w[k, j] = lut[shift[b, j] + 1, codes[k, j]] (int8) for a (K, C) operand blocked along axis 0, ``lut``
    flat; partial[b, j] = the sum of w[k, j] over block b."""
    k, c = codes.shape
    for b in numba.prange(shift.shape[0]):
        sums = partial[b]
        sums[:] = 0
        for kk in range(b * block, min(b * block + block, k)):
            crow, wrow = codes[kk], w[kk]
            for j in range(c):
                v = lut[((np.int64(shift[b, j]) + 1) << 8) + crow[j]]
                wrow[j] = v
                sums[j] += v


def shifted_table(t, off, dtype):
    """``lut[256 * (d + 1) + code] = element integer * 2**d + off`` for shifts ``d = -1 .. 6`` (``d = -1``: a
    NaN block, ``off``), wrapped to ``dtype``; the route reads only entries its check proved to fit."""
    ints = element_integers(as_mx(t.fmt).element)[0].astype(np.int64)
    lut = np.concatenate([np.zeros((1, 256), np.int64), ints[None, :] << np.arange(7)[:, None]]) + off
    return lut.astype(dtype).reshape(-1)


@numba.njit(cache=True, parallel=True)
def _scale_out(s, shift, pa, pb, out):
    """out[i, j] = fl32((s[i, j] - shift[j]) * pa[i] * pb[j]); shift = off * colsum as float64. Every step is
    exact in float64 (integers below 2**53, powers of two), so the cast to float32 is the one rounding."""
    m, n = out.shape
    for i in numba.prange(m):
        for j in range(n):
            out[i, j] = np.float32((np.float64(s[i, j]) - shift[j]) * pa[i] * pb[j])


def int8_rows(sa, sb, k):
    """The rows that :func:`int8_route` admits (bool (M,)), or None when none: every column of ``b`` and the
    row hold integers ``|c * 2**shift| <= 127`` (:class:`Summary`), and ``K * 254 * 127 < 2**53`` (so that the
    offset product, the offset column sums and their difference are exact in float64)."""
    if k * 2 * INT8_MAX**2 >= 2**53 or sb.shifts()[1].max(initial=0) > INT8_MAX:
        return None
    rows = sa.shifts()[1] <= INT8_MAX
    return rows if rows.any() else None


def auto_routes(a, b):
    """The route ``gemm(a, b, 'exact')`` takes for each row of ``a``, without computing the product.

    Returns
    -------
    numpy.ndarray of str, (M,)
        ``'int8'``, ``'blas float32'``, ``'blas float64'`` or ``'integer'``.
    """
    operands_check(a, b)
    m, k = a.codes.shape
    out = np.full(m, "integer", dtype=object)
    if not (m and b.codes.shape[1] and k):
        return out
    sa, sb = Summary(a, True), Summary(b, False)
    rows = int8_rows(sa, sb, k)
    left = np.ones(m, bool) if rows is None else ~rows
    out[~left] = "int8"
    stats = sa.stats(), sb.stats()
    for bits, name in ((24, "blas float32"), (53, "blas float64")):
        good = blas_rows(a, b, bits, stats) & left
        out[good] = name
        left &= ~good
    return out


def int8_route(a, b, sa=None, sb=None):
    """The rows of ``a @ b`` that the shifted-integer route computes exactly, and their float32 results.

    Within a line (row of ``a``, column of ``b``) every block's values are multiples of
    ``2**(grid - q)``, ``grid`` the smallest scale exponent of its nonzero blocks, so block by block
    ``value = c * 2**shift * 2**(grid - q)`` with ``shift = e - grid``. When every column of ``b`` and a
    row of ``a`` hold these integers ``c * 2**shift`` within ``[-127, 127]``, the whole K-sum is one
    integer dot product ``S``, computed exactly by :func:`bitsim.kernels.u8.u8s8_matmul` (``a`` offset by
    ``o = max |a'|`` into uint8, ``o * colsum(b')`` subtracted in float64, exactly: every term is an integer
    below ``K * 254 * 127 < 2**53``). ``|S| <= K * 127**2 < 2**53``,
    so ``S * 2**(grid_a - qa) * 2**(grid_b - qb)`` is exact in float64 (its exponent stays far inside
    float64's range) and one conversion rounds it to float32, nearest even. Lines with a NaN block are
    set to NaN afterwards; their NaN blocks enter the product as zeros.

    Returns
    -------
    (rows, out) : (numpy.ndarray of bool (M,), numpy.ndarray of float32 (rows.sum(), N)), or (None, None)
        when no row qualifies.
    """
    sa, sb = sa or Summary(a, True), sb or Summary(b, False)
    k = a.codes.shape[1]
    rows = int8_rows(sa, sb, k)
    if rows is None:
        return None, None
    da, wa = sa.shifts()
    db, _ = sb.shifts()
    n = b.codes.shape[1]
    w = np.empty((k, n), np.int8)
    shift_b = np.ascontiguousarray(np.where(sb.nan, -1, db).T)
    partial = np.empty(shift_b.shape, np.int64)
    launch(_fill_cols, w.size, b.codes, shift_b, shifted_table(b, 0, np.int8), b.fmt.block, w, partial,
           min_work=PREP_MIN_WORK)
    colsum = partial.sum(axis=0)
    picked = np.flatnonzero(rows)
    shift_a = np.ascontiguousarray(np.where(sa.nan, -1, da))
    off = int(wa[picked].max(initial=0))
    x = np.empty((picked.size, k), np.uint8)
    launch(_fill_rows, x.size, a.codes, picked, shift_a, shifted_table(a, off, np.uint8), a.fmt.block, x,
           min_work=PREP_MIN_WORK)
    out = np.empty((picked.size, n), np.float32)
    launch(_scale_out, out.size, u8s8_matmul(x, w, layout="kn"), (off * colsum).astype(np.float64),
           np.ldexp(1.0, sa.grid[picked] - sa.q), np.ldexp(1.0, sb.grid - sb.q), out, min_work=PREP_MIN_WORK)
    out[sa.nan_line[picked]] = np.nan
    out[:, sb.nan_line] = np.nan
    return rows, out


def side_stats(t, by_rows):
    """``(grid, top, l1, max, nan)`` of an MX operand's rows (``by_rows``) or columns (see :class:`Summary`)."""
    return Summary(t, by_rows).stats()


def blas_rows(a, b, mantissa_bits, stats=None):
    """Rows of ``a @ b`` that a BLAS product with ``mantissa_bits`` of precision computes exactly.

    Every element ``a_ik * b_kj`` is an integer multiple of ``Q = 2**(ga_i + gb_j)``, ``ga_i`` the smallest
    value grid of row ``i`` (``scale exponent - q`` over its nonzero blocks); every partial sum, in any
    order, is then a multiple of ``Q`` no larger than ``min(L1(a_i) * max_j max|b_j|, max|a_i| * max_j
    L1(b_j))``. If that is below ``2**(mantissa_bits - 1) * Q`` (one bit of margin for the float64 bound
    itself), every partial sum is representable and BLAS adds exactly. float32 also needs every value and
    ``Q`` within its range.
    """
    (ga, ta, l1a, mxa, nana), (gb, tb, l1b, mxb, nanb) = stats or (side_stats(a, True), side_stats(b, False))
    if nanb.any():
        return np.zeros(ga.size, bool)
    lim = 2.0 ** (mantissa_bits - 1)
    gmin = gb.min(initial=1 << 20)
    # bound in units of 2**(ga_i + gmin): column maxima are taken in the coarsest common unit
    mb = (mxb * np.ldexp(1.0, np.clip(gb - gmin, 0, 1000))).max(initial=0)
    lb = (l1b * np.ldexp(1.0, np.clip(gb - gmin, 0, 1000))).max(initial=0)
    ok = (np.minimum(l1a * mb, mxa * lb) < lim) & ~nana
    if mantissa_bits == 24:
        ok &= (ga + gmin >= -149) & (ga >= -149) & (gmin >= -149) & (ta < 100) & (tb.max(initial=0) < 100)
        ok &= ga + gmin < 60
    return ok


def operands_check(a, b):
    """Raise unless ``a`` (M, K) is blocked along axis 1 and ``b`` (K, N) along axis 0 with the same block."""
    if not isinstance(a, MXTensor) or not isinstance(b, MXTensor):
        raise InputTypeError("MX gemm expects two MXTensor operands; quantize them with bitsim.formats.mx.quantize")
    if a.codes.ndim != 2 or b.codes.ndim != 2 or a.axis != 1 or b.axis != 0:
        raise InputError(f"MX gemm multiplies a (M, K) tensor blocked along axis 1 by a (K, N) tensor blocked along "
                         f"axis 0; got shapes {a.codes.shape} (axis {a.axis}) and {b.codes.shape} (axis {b.axis})")
    if a.codes.shape[1] != b.codes.shape[0] or a.fmt.block != b.fmt.block:
        raise InputError(f"inner dimensions {a.codes.shape[1]} and {b.codes.shape[0]} (blocks {a.fmt.block} and "
                         f"{b.fmt.block}) must agree")
    if a.codes.dtype != np.uint8 or b.codes.dtype != np.uint8:
        raise InputTypeError("MX element codes are uint8")


def operands(a, b):
    """Check an MX GEMM's operands: ``a`` (M, K) blocked along axis 1, ``b`` (K, N) along axis 0."""
    operands_check(a, b)
    fa, fb = as_mx(a.fmt), as_mx(b.fmt)
    ia, qa, bad_a = element_integers(fa.element)
    ib, qb, bad_b = element_integers(fb.element)
    ac, btc = a.codes, np.ascontiguousarray(b.codes.T)
    sa, sb = a.scales.copy(), np.ascontiguousarray(b.scales.T)
    block = a.fmt.block
    for codes, bad, scales in ((ac, bad_a, sa), (btc, bad_b, sb)):  # NaN/Inf elements make their block NaN
        hit = bad[codes]
        if hit.any():
            nb = scales.shape[1]
            padded = np.zeros((hit.shape[0], nb * block), bool)
            padded[:, :hit.shape[1]] = hit
            scales[padded.reshape(hit.shape[0], nb, block).any(axis=2)] = SCALE_NAN
    return ia[ac], ib[btc], sa, sb, block, qa, qb


def gemm(a, b, rule="exact", route="auto"):
    """MX GEMM ``a @ b`` under an accumulation rule, as float32.

    Parameters
    ----------
    a : MXTensor
        (M, K) blocked along axis 1.
    b : MXTensor
        (K, N) blocked along axis 0.
    rule : {'exact', 'float32'}
    route : {'auto', 'integer', 'blas', 'int8'}
        ``exact`` only: ``integer`` always uses the integer kernel; ``int8`` takes the shifted-integer
        route (:func:`int8_route`) for the rows its check admits, ``blas`` the BLAS product for the rows
        where :func:`blas_rows` proves it exact, the integer kernel the remaining rows; ``auto`` tries
        ``int8``, then ``blas``, then the integer kernel. Every route gives the same bits.

    Returns
    -------
    numpy.ndarray of float32, (M, N)
    """
    if rule not in RULES:
        raise InputError(f"unknown accumulation rule {rule!r}; choose one of {', '.join(RULES)}")
    if route not in ROUTES:
        raise InputError(f"unknown route {route!r}; choose one of {', '.join(ROUTES)}")
    operands_check(a, b)
    m, n, k = a.codes.shape[0], b.codes.shape[1], a.codes.shape[1]
    out = np.empty((m, n), np.float32)
    if rule == "float32":
        ai, bti, sa, sb, block, qa, qb = operands(a, b)
        av = np.ldexp(ai, -qa).astype(np.float32)
        btv = np.ldexp(bti, -qb).astype(np.float32)
        launch(_gemm_float32, m * n * k, av, sa, btv, sb, block, out, min_work=PARALLEL_MIN_WORK)
        return out
    rows = np.ones(m, bool)
    if route != "integer" and m and n and k:
        summaries = Summary(a, True), Summary(b, False)
        if route in ("auto", "int8"):
            good, sub = int8_route(a, b, *summaries)
            if good is not None:
                if good.all():
                    return sub
                out[good] = sub
                rows &= ~good
        if route in ("auto", "blas"):
            stats = summaries[0].stats(), summaries[1].stats()
            for bits, dtype in ((24, np.float32), (53, np.float64)):
                good = blas_rows(a, b, bits, stats) & rows
                if good.any():
                    prod = blas_product(a, b, good, dtype)
                    with np.errstate(over="ignore"):  # beyond float32's range: +-Inf, as the rule says
                        if good.all():
                            return prod if dtype == np.float32 else prod.astype(np.float32)
                        out[good] = prod
                    rows &= ~good
        if not rows.any():
            return out
    ai, bti, sa, sb, block, qa, qb = operands(a, b)
    tq = qa + qb
    sub = np.empty((int(rows.sum()), n), np.float32)
    if np.abs(ai).max(initial=0) ** 2 * block < 2.0**53 and np.abs(bti).max(initial=0) ** 2 * block < 2.0**53:
        launch(_gemm_exact, int(rows.sum()) * n * k, np.ascontiguousarray(ai[rows]), np.ascontiguousarray(sa[rows]),
               bti, sb, block, tq, sub, min_work=PARALLEL_MIN_WORK)
    else:
        _gemm_exact_terms(np.ascontiguousarray(ai[rows]), np.ascontiguousarray(sa[rows]), bti, sb, block, tq, sub)
    out[rows] = sub
    return out


def blas_product(a, b, rows, dtype):
    """BLAS ``a[rows] @ b`` of the decoded values in ``dtype`` (exact where :func:`blas_rows` holds)."""
    ia, qa, _ = element_integers(as_mx(a.fmt).element)
    ib, qb, _ = element_integers(as_mx(b.fmt).element)
    sel = rows.all()
    ac = a.codes if sel else np.ascontiguousarray(a.codes[rows])
    sca = a.scales if sel else np.ascontiguousarray(a.scales[rows])
    av = np.empty(ac.shape, dtype)
    bv = np.empty(b.codes.shape, dtype)
    launch(_decode_rows, ac.size, ac, sca, ia, qa, a.fmt.block, av, min_work=PREP_MIN_WORK)
    launch(_decode_cols, b.codes.size, b.codes, b.scales, ib, np.ldexp(1.0, np.arange(256) - 127 - qb), b.fmt.block,
           bv, min_work=PREP_MIN_WORK)
    return av @ bv


def dot(a, b, rule="exact"):
    """MX dot product of two 1-D MX tensors (blocked along axis 0), as a float32 scalar."""
    if not isinstance(a, MXTensor) or not isinstance(b, MXTensor) or a.codes.ndim != 1 or b.codes.ndim != 1:
        raise InputTypeError("MX dot expects two 1-D MXTensor operands")
    a2 = MXTensor(a.codes[None, :], a.scales[None, :], a.fmt, 1)
    b2 = MXTensor(b.codes[:, None], b.scales[:, None], b.fmt, 0)
    return np.float32(gemm(a2, b2, rule, route="integer")[0, 0])


__all__ = ["RULES", "ROUTES", "gemm", "dot", "auto_routes", "blas_rows", "int8_route", "element_integers"]
