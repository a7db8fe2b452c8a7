"""Slow, obvious oracles for the number formats, one element at a time in Python ints and Fractions."""

import math
from fractions import Fraction

import numpy as np

from ..errors import InputError, RangeError
from ..formats.log import LogRounding
from ..formats.modes import Overflow, Rounding, Underflow


def pack_one(values, word_bits=64, bitorder="little"):
    """Pack one vector of ±1 into a list of Python-int words, bit by bit."""
    words = [0] * (-(-len(values) // word_bits))
    for i, v in enumerate(values):
        if v == 1:
            bit = i % word_bits if bitorder == "little" else word_bits - 1 - i % word_bits
            words[i // word_bits] |= 1 << bit
    return words


def round_fraction(q, rounding, u=None):
    """Round a Fraction to an int by a :class:`Rounding` mode; ``u`` is the uint32 draw for STOCHASTIC."""
    low = math.floor(q)
    frac = q - low
    if rounding is Rounding.FLOOR:
        return low
    if rounding is Rounding.CEIL:
        return math.ceil(q)
    if rounding is Rounding.TOWARD_ZERO:
        return math.trunc(q)
    if rounding is Rounding.NEAREST_UP:
        return low + (frac >= Fraction(1, 2))
    if rounding is Rounding.NEAREST_EVEN:
        return low + (frac > Fraction(1, 2) or (frac == Fraction(1, 2) and low % 2 == 1))
    if rounding is Rounding.NEAREST_AWAY:
        return low + (frac > Fraction(1, 2) or (frac == Fraction(1, 2) and q > 0))
    return low + (u < math.floor(frac * 2**32))


def overflow_int(v, bits, overflow):
    """Apply an overflow mode to a Python int; return (value, event) with event in {None, 'saturated', 'wrapped'}."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if lo <= v <= hi:
        return v, None
    if overflow is Overflow.SATURATE:
        return (hi if v > hi else lo), "saturated"
    if overflow is Overflow.WRAP:
        return (v - lo) % (1 << bits) + lo, "wrapped"
    raise RangeError(v)


def fixed_quantize_one(x, fmt, u=None):
    """Quantize one finite float to a fixed-point code as a Python int."""
    q = Fraction(float(x)) * Fraction(2) ** fmt.frac_bits
    return overflow_int(round_fraction(q, fmt.rounding, u), fmt.bits, fmt.overflow)[0]


def rshift_round_one(x, s, rounding, u=None):
    """``round(x / 2**s)`` for Python ints, by the definition of the rounding mode."""
    return round_fraction(Fraction(int(x), 2**s), rounding, u)


def log_encode_one(x, fmt, u=None):
    """Encode one float32 as a log code, from ``math.frexp`` and exact rational comparisons."""
    x = float(np.float32(x))
    if math.isnan(x):
        raise InputError("NaN")
    sign = 1 if math.copysign(1.0, x) < 0 else 0
    w = fmt.exp_bits
    zero_code = (sign << w) | fmt.zero_field
    if x == 0:
        return zero_code
    if math.isinf(x):
        e = fmt.emax
    else:
        m, e2 = math.frexp(abs(x))  # |x| = m * 2**e2 with 0.5 <= m < 1
        e = e2 - 1  # floor(log2|x|)
        mant = Fraction(abs(x)) / Fraction(2) ** e  # in [1, 2)
        if fmt.rounding is LogRounding.LINEAR:
            up = mant >= Fraction(3, 2)
        elif fmt.rounding is LogRounding.LOG:
            up = mant * mant >= 2
        elif fmt.rounding is LogRounding.TRUNCATE:
            up = False
        else:
            up = (u >> 9) < (mant - 1) * 2**23
        e += int(up)
        if e > fmt.emax:
            if fmt.overflow is Overflow.ERROR:
                raise RangeError(x)
            e = fmt.emax
        if e < fmt.emin:
            if fmt.underflow is Underflow.FLUSH:
                return zero_code
            if fmt.underflow is Underflow.ERROR:
                raise RangeError(x)
            e = fmt.emin
    return (sign << w) | ((e - fmt.exp_offset) % (1 << w))


def log_decode_one(code, fmt):
    """Decode one log code to a Python float (exact)."""
    w = fmt.exp_bits
    sign = (code >> w) & 1
    field = code & ((1 << w) - 1)
    if field == fmt.zero_field:
        return -0.0 if sign else 0.0
    e = (field - (1 << w) if field >= fmt.zero_field else field) + fmt.exp_offset
    return (-1.0 if sign else 1.0) * math.ldexp(1.0, e)
