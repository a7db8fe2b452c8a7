"""Slow, obvious shift-add products in Python integers: the oracle of :mod:`bitsim.kernels.shift`.

Every term is computed on its own with unbounded Python integers: ``x * 2**t`` for
``t >= 0``, else the exact quotient ``x / 2**-t`` rounded by the rule of
:func:`bitsim.formats.fixed.rshift_round`; the log code's sign is applied after rounding,
zero codes give 0, and the exact sum is returned (int64) or saturated to int32 (counted).
"""

import numpy as np

from ..formats.log import split
from ..formats.modes import Rounding, parse_enum

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def round_shift(x, t, rounding):
    """``x * 2**t`` for Python ints, rounded by ``rounding`` when ``t < 0``."""
    if t >= 0:
        return x << t
    s = -t
    q = x >> s  # floor, for any s
    r = x - (q << s)
    half = 1 << (s - 1)
    up = {
        Rounding.FLOOR: False,
        Rounding.CEIL: r > 0,
        Rounding.TOWARD_ZERO: r > 0 and x < 0,
        Rounding.NEAREST_UP: r >= half,
        Rounding.NEAREST_EVEN: r > half or (r == half and q % 2 == 1),
        Rounding.NEAREST_AWAY: r > half or (r == half and x >= 0),
    }[rounding]
    return q + int(up)


def _sums(fixed, fixed_frac, codes, fmt, acc_frac, rounding):
    """sums[l][f] = sum_k sign * round_shift(fixed[f, k], e + acc_frac - fixed_frac)."""
    rounding = parse_enum(Rounding, rounding)
    sign, exponent, zero = split(codes, fmt)
    fixed = np.asarray(fixed).tolist()
    sums = []
    for l in range(codes.shape[0]):
        terms = [
            (-1 if int(sign[l, k]) else 1, int(exponent[l, k]) + acc_frac - fixed_frac)
            for k in range(codes.shape[1])
            if not zero[l, k]
        ]
        idx = [k for k in range(codes.shape[1]) if not zero[l, k]]
        sums.append([sum(sg * round_shift(row[k], t, rounding) for (sg, t), k in zip(terms, idx)) for row in fixed])
    return sums


def _out(sums, shape, acc_dtype, counts):
    flat = [v for row in sums for v in row]
    if np.dtype(acc_dtype) == np.int64:
        return np.array(flat, dtype=np.int64).reshape(shape)
    clamped = [min(max(v, INT32_MIN), INT32_MAX) for v in flat]
    if counts is not None:
        counts.saturated += sum(c != v for c, v in zip(clamped, flat))
    return np.array(clamped, dtype=np.int32).reshape(shape)


def fixed_log_matmul(x, x_frac, w, w_fmt, acc_frac=None, rounding="floor", acc_dtype=np.int32, counts=None):
    """Oracle of :func:`bitsim.kernels.shift.fixed_log_matmul`: ``out[m, n]`` over K, exactly."""
    acc_frac = x_frac if acc_frac is None else acc_frac
    w = np.asarray(w)
    sums = _sums(x, x_frac, w, w_fmt, acc_frac, rounding)  # [n][m]
    transposed = [[sums[n][m] for n in range(w.shape[0])] for m in range(np.shape(x)[0])]
    return _out(transposed, (np.shape(x)[0], w.shape[0]), acc_dtype, counts)


def log_fixed_matmul(a, a_fmt, w, w_frac, acc_frac=None, rounding="floor", acc_dtype=np.int32, counts=None):
    """Oracle of :func:`bitsim.kernels.shift.log_fixed_matmul`: ``out[m, n]`` over K, exactly."""
    acc_frac = w_frac if acc_frac is None else acc_frac
    a = np.asarray(a)
    sums = _sums(w, w_frac, a, a_fmt, acc_frac, rounding)  # [m][n]
    return _out(sums, (a.shape[0], np.shape(w)[0]), acc_dtype, counts)
