"""Slow, obvious row-wise products in Python ints and Fractions: the oracle of :mod:`bitsim.kernels.rowwise`.

Each term is computed on its own: an exact product, or ``x * 2**t`` as a Fraction rounded by the mode
(:func:`bitsim.reference.formats.round_fraction`), the log code's sign applied after rounding; sums are
unbounded Python ints, then wrapped, saturated or requantized by :func:`bitsim.reference.formats.overflow_int`.
"""

from fractions import Fraction

import numpy as np

from ..formats.log import split
from ..formats.modes import Overflow, Rounding, parse_enum
from .formats import overflow_int, round_fraction


def row_dot(a, b):
    """``[sum_k a[t][k] * b[t][k] for t]`` in Python ints."""
    return [sum(int(x) * int(y) for x, y in zip(ra, rb)) for ra, rb in zip(np.asarray(a).tolist(),
                                                                          np.asarray(b).tolist())]


def row_shift_add(x, x_frac, codes, fmt, acc_frac=None, rounding="floor", acc_dtype=np.int32, counts=None):
    """Per row, ``sum_k sign * round(x * 2**(e + acc_frac - x_frac))``; int32 saturation counted."""
    rounding = parse_enum(Rounding, rounding)
    acc_frac = x_frac if acc_frac is None else acc_frac
    sign, exponent, zero = split(np.asarray(codes), fmt)
    out = []
    for t, row in enumerate(np.asarray(x).tolist()):
        total = 0
        for k, v in enumerate(row):
            if zero[t, k]:
                continue
            term = round_fraction(Fraction(v) * Fraction(2) ** (int(exponent[t, k]) + acc_frac - x_frac), rounding)
            total += -term if sign[t, k] else term
        out.append(total)
    if np.dtype(acc_dtype) == np.int64:
        return out
    clamped = [overflow_int(v, 32, Overflow.SATURATE)[0] for v in out]
    if counts is not None:
        counts.saturated += sum(c != v for c, v in zip(clamped, out))
    return clamped


def mac_requantize(a, b, shift, out_fmt, acc_bits=32):
    """``(acc, q)`` as lists: the exact dot product wrapped to ``acc_bits``, then ``round(acc / 2**shift)``."""
    acc = [overflow_int(v, acc_bits, Overflow.WRAP)[0] for v in row_dot(a, b)]
    q = [overflow_int(round_fraction(Fraction(v, 2 ** int(s)), out_fmt.rounding), out_fmt.bits, out_fmt.overflow)[0]
         for v, s in zip(acc, np.asarray(shift).tolist())]
    return acc, q
