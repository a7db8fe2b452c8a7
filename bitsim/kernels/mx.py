"""MX dot products and GEMM under two written accumulation rules (``docs/formats.md``, section 14.5).

``exact``    every element product and every block sum is exact, the blocks' contributions
             ``P_b * X_a * X_b`` are summed exactly in a wide fixed-point accumulator (24 limbs of 32 bits,
             LSB ``2**-320``, enough for any two E8M0 scales and any element format), and the sum is
             rounded once to float32, to nearest, ties to even (beyond float32's range: +-Inf; an exact
             zero: +0.0).
``float32``  what many hardware units do: per block, ``s = 0``; ``s = fl32(s + a_k * b_k)`` in k order (the
             element products are exact in float32); then ``acc = fl32(acc + fl32(s * X_a * X_b))`` in block
             order, ``acc`` starting at +0.0; float32 arithmetic rounds to nearest, ties to even.

Both: a block whose scale is NaN (0xFF) or which holds a NaN or Inf element makes the result NaN.

The exact kernel turns element codes into integers ``c`` with value ``c * 2**-q`` (E4M3 ``q = 9``, E2M1
``q = 1`` ...) so that a block's dot product is an integer dot (in float64 or float32 lanes, exact because
every partial sum stays below ``2**53`` or ``2**24``). Beside it, :func:`gemm` takes an exact fast path
(a BLAS product of the decoded values) when it can prove that every partial sum is a multiple of the
smallest value grid and below ``2**53`` (float64) or ``2**24`` (float32): then BLAS computes the exact
sum in any order. Otherwise it uses the integer kernel. ``route=`` forces either.
"""

import numba
import numpy as np

from ..errors import InputError, InputTypeError
from ..formats.launch import launch
from ..formats.minifloat import MinifloatFormat, values
from ..formats.mx import SCALE_NAN, MXTensor, as_mx

LIMBS = 24
BASE = -320  # exponent of the accumulator's LSB
PARALLEL_MIN_WORK = 1 << 16
RULES = ("exact", "float32")
ROUTES = ("auto", "integer", "blas")


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
            out[i, j] = acc


@numba.njit(cache=True, parallel=True)
def _stats(codes, scales, ints, bad, pow2, block, by_rows, grid, top, l1, mx, nan):
    """Per row (``by_rows``; codes (R, K), scales (R, nb)) or per column (codes (K, C), scales (nb, C)): the
    smallest and largest scale exponent of nonzero blocks, the sum and the largest of |element integer| *
    2**(scale exponent), and whether a NaN scale or a NaN/Inf element occurs."""
    r = codes.shape[0] if by_rows else codes.shape[1]
    k = codes.shape[1] if by_rows else codes.shape[0]
    for i in numba.prange(r):
        g, t, s1, m1, bad_row = 1 << 20, -(1 << 20), 0.0, 0.0, False
        for kk in range(k):
            b = kk // block
            c = codes[i, kk] if by_rows else codes[kk, i]
            sc = scales[i, b] if by_rows else scales[b, i]
            if sc == SCALE_NAN or bad[c]:
                bad_row = True
            v = abs(ints[c])
            if v != 0.0:
                e = np.int64(sc) - 127
                g = min(g, e)
                t = max(t, e)
                w = v * pow2[sc]
                s1 += w
                m1 = max(m1, w)
        grid[i], top[i], l1[i], mx[i], nan[i] = g, t, s1, m1, bad_row


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


def side_stats(t, by_rows):
    """:func:`_stats` of an MX operand: ``(grid, top, l1, max, nan)``, l1 and max in units of 2**grid."""
    ints, q, bad = element_integers(as_mx(t.fmt).element)
    r = t.codes.shape[0] if by_rows else t.codes.shape[1]
    grid, top = np.empty(r, np.int64), np.empty(r, np.int64)
    l1, mx, nan = np.empty(r), np.empty(r), np.empty(r, np.bool_)
    pow2 = np.ldexp(1.0, np.arange(256) - 127)
    launch(_stats, t.codes.size, t.codes, t.scales, ints, bad, pow2, t.fmt.block, by_rows, grid, top, l1, mx, nan,
           min_work=PARALLEL_MIN_WORK)
    unit = np.ldexp(1.0, np.minimum(grid, 1000))
    return grid - q, top - q, l1 / unit, mx / unit, nan


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


def operands_shape(a, b):
    """Check an MX GEMM's operands (see :func:`operands`) without preparing them; returns a lazy preparer."""
    operands_check(a, b)
    return LazyOperands(a, b)


class LazyOperands:
    """The integer kernel's operands, prepared when first unpacked."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __iter__(self):
        return iter(operands(self.a, self.b))


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


def blas_bound_holds(ai, sa, bti, sb, qa, qb, block, mantissa_bits):
    """True where a BLAS product of the decoded values is provably the exact sum (per output, (M, N) bool).

    Every element ``a_ik * b_kj`` is an integer multiple of ``Q = 2**(ga_i + gb_j)``, ``ga_i`` the
    smallest ``scale exponent - q`` over row ``i``'s nonzero blocks; every partial sum, in any order, is
    then a multiple of ``Q`` no larger than ``S = min(L1(a_i) * max|b_j|, max|a_i| * L1(b_j))``. If
    ``S < 2**(mantissa_bits - 1) * Q`` (one bit of margin for the float64 bound itself), every partial
    sum is representable and BLAS adds exactly.
    """
    def side(ints, scales, q):
        nb = scales.shape[1]
        e = scales.astype(np.int64) - 127
        padded = np.zeros((ints.shape[0], nb * block))
        padded[:, :ints.shape[1]] = np.abs(ints)
        blocks = padded.reshape(ints.shape[0], nb, block)
        nonzero = blocks.max(axis=2) > 0
        grid = np.where(nonzero, e, 1 << 20).min(axis=1)
        scaled = blocks * np.ldexp(1.0, np.where(nonzero, e - grid[:, None], 0))[..., None]  # units of the grid
        top = np.where(nonzero, e, -(1 << 20)).max(axis=1)
        return grid - q, scaled.sum(axis=(1, 2)), scaled.max(axis=(1, 2)), top - q

    ga, l1a, mxa, ta = side(ai, sa, qa)
    gb, l1b, mxb, tb = side(bti, sb, qb)
    bound = np.minimum(np.outer(l1a, mxb), np.outer(mxa, l1b))
    ok = bound < 2.0 ** (mantissa_bits - 1)
    if mantissa_bits == 24:  # float32: every value, product and sum must lie in float32's range
        ok &= ((ga[:, None] + gb[None, :]) >= -149) & (ga[:, None] >= -149) & (gb[None, :] >= -149)
        ok &= (ta[:, None] < 100) & (tb[None, :] < 100) & (ga[:, None] + gb[None, :] < 60)
    return ok


def decoded(ints, scales, block, q):
    """Element values times their block scale as float64 (exact)."""
    nb = scales.shape[1]
    padded = np.zeros((ints.shape[0], nb * block))
    padded[:, :ints.shape[1]] = ints
    s = np.ldexp(1.0, scales.astype(np.int64) - 127 - q)
    return (padded.reshape(ints.shape[0], nb, block) * s[..., None]).reshape(ints.shape[0], -1)[:, :ints.shape[1]]


def gemm(a, b, rule="exact", route="auto"):
    """MX GEMM ``a @ b`` under an accumulation rule, as float32.

    Parameters
    ----------
    a : MXTensor
        (M, K) blocked along axis 1.
    b : MXTensor
        (K, N) blocked along axis 0.
    rule : {'exact', 'float32'}
    route : {'auto', 'integer', 'blas'}
        ``exact`` only: ``integer`` always uses the integer kernel; ``blas`` and ``auto`` take the BLAS
        path for the rows where :func:`blas_bound_holds` proves it exact (``auto`` also checks for NaN
        blocks), and the integer kernel for the others.

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
    operands_checked = operands_shape(a, b)
    rows = np.ones(m, bool)
    if route != "integer":
        stats = (side_stats(a, True), side_stats(b, False))
        for bits, dtype in ((24, np.float32), (53, np.float64)):
            good = blas_rows(a, b, bits, stats) & rows
            if good.any():
                ia, qa, _ = element_integers(as_mx(a.fmt).element)
                ib, qb, _ = element_integers(as_mx(b.fmt).element)
                sel = good.all()
                ac = a.codes if sel else np.ascontiguousarray(a.codes[good])
                sca = a.scales if sel else np.ascontiguousarray(a.scales[good])
                av = np.empty(ac.shape, dtype)
                bv = np.empty(b.codes.shape, dtype)
                launch(_decode_rows, ac.size, ac, sca, ia, qa, a.fmt.block, av, min_work=PARALLEL_MIN_WORK)
                launch(_decode_cols, b.codes.size, b.codes, b.scales, ib, np.ldexp(1.0, np.arange(256) - 127 - qb),
                       b.fmt.block, bv,
                       min_work=PARALLEL_MIN_WORK)
                prod = av @ bv
                if sel:
                    out = prod if dtype == np.float32 else prod.astype(np.float32)
                else:
                    out[good] = prod
                rows &= ~good
            if not rows.any():
                return out
    ai, bti, sa, sb, block, qa, qb = operands_checked
    tq = qa + qb
    if rows.any():
        sub = np.empty((int(rows.sum()), n), np.float32)
        if np.abs(ai).max(initial=0) ** 2 * block < 2.0**53 and np.abs(bti).max(initial=0) ** 2 * block < 2.0**53:
            launch(_gemm_exact, int(rows.sum()) * n * k, np.ascontiguousarray(ai[rows]), np.ascontiguousarray(sa[rows]),
                   bti, sb, block, tq, sub, min_work=PARALLEL_MIN_WORK)
        else:
            _gemm_exact_terms(np.ascontiguousarray(ai[rows]), np.ascontiguousarray(sa[rows]), bti, sb, block, tq, sub)
        out[rows] = sub
    return out


def dot(a, b, rule="exact"):
    """MX dot product of two 1-D MX tensors (blocked along axis 0), as a float32 scalar."""
    if not isinstance(a, MXTensor) or not isinstance(b, MXTensor) or a.codes.ndim != 1 or b.codes.ndim != 1:
        raise InputTypeError("MX dot expects two 1-D MXTensor operands")
    a2 = MXTensor(a.codes[None, :], a.scales[None, :], a.fmt, 1)
    b2 = MXTensor(b.codes[:, None], b.scales[:, None], b.fmt, 0)
    return np.float32(gemm(a2, b2, rule, route="integer")[0, 0])


__all__ = ["RULES", "ROUTES", "gemm", "dot", "blas_bound_holds", "element_integers"]
