"""Signed fixed point: two's-complement Qm.n codes in int8/int16/int32 containers.

The rule (``docs/formats.md``, "Fixed point"): a format has ``bits`` bits in all (sign
included) and ``frac_bits`` fractional bits; code ``q`` means the value ``q * 2**-frac_bits``.
``Qm.n`` names it with ``m = bits - 1 - n`` integer bits beside the sign. Codes range over
``-2**(bits-1) .. 2**(bits-1) - 1``. Quantizing rounds the exactly scaled value
``x * 2**frac_bits`` to an integer by a :class:`Rounding` mode, then applies an :class:`Overflow`
mode; every saturated or wrapped value is counted in a :class:`Counts` when one is passed.

Right shifts of integers (rescaling products and accumulators) use the same rounding modes,
defined on the exact quotient ``x / 2**s``; see :func:`rshift_round`.
"""

import re
from dataclasses import dataclass

import numba
import numpy as np

from ..errors import InputError, InputTypeError, RangeError
from .modes import (Counts, NonFinite, Overflow, Rounding, as_format, as_int, check_range, first_index, parse_enum,
                    set_fields)
from .rng import as_rng, bernoulli

MAX_SHIFT = 62
INT64_MAX = 2**63 - 1
HUGE = 2.0**1023  # stands in for finite scaled values beyond float64: integral, a multiple of 2**32
TINY = 2.0**-1074  # stands in for nonzero scaled values that underflow to 0


@dataclass(frozen=True)
class FixedFormat:
    """A signed fixed-point format.

    Parameters
    ----------
    bits : int
        Total width including the sign bit, 2..32. An int or NumPy integer: floats (even 16.0) and
        bools are refused, never truncated.
    frac_bits : int
        Fractional bits, -32..62 (negative means the LSB weighs more than 1); an int like ``bits``.
    rounding : Rounding or str
    overflow : Overflow or str
    nonfinite : NonFinite or str
        ERROR (default) rejects NaN and +-inf; SATURATE maps +-inf to the extreme codes (counted).

    Examples
    --------
    >>> f = FixedFormat(8, 4)
    >>> f
    FixedFormat(bits=8, frac_bits=4)  # Q3.4, nearest_even, saturate
    >>> quantize(3.5, f)
    array(56, dtype=int8)
    """

    bits: int
    frac_bits: int
    rounding: Rounding = Rounding.NEAREST_EVEN
    overflow: Overflow = Overflow.SATURATE
    nonfinite: NonFinite = NonFinite.ERROR

    def __post_init__(self):
        bits, frac_bits = as_int(self.bits, "fixed-point bits"), as_int(self.frac_bits, "frac_bits")
        check_range(bits, "fixed-point bits", 2, 32)
        check_range(frac_bits, "frac_bits", -32, MAX_SHIFT)
        set_fields(self, bits=bits, frac_bits=frac_bits, rounding=parse_enum(Rounding, self.rounding),
                   overflow=parse_enum(Overflow, self.overflow), nonfinite=parse_enum(NonFinite, self.nonfinite))

    @property
    def int_bits(self):
        """Integer bits beside the sign (the ``m`` of Qm.n)."""
        return self.bits - 1 - self.frac_bits

    @property
    def dtype(self):
        """The smallest of int8, int16, int32 that holds the codes."""
        return np.dtype(np.int8 if self.bits <= 8 else np.int16 if self.bits <= 16 else np.int32)

    @property
    def min_code(self):
        return -(1 << (self.bits - 1))

    @property
    def max_code(self):
        return (1 << (self.bits - 1)) - 1

    @property
    def resolution(self):
        """The value of one LSB, ``2**-frac_bits``."""
        return 2.0 ** -self.frac_bits

    @property
    def name(self):
        return f"Q{self.int_bits}.{self.frac_bits}"

    def __repr__(self):
        return (
            f"FixedFormat(bits={self.bits}, frac_bits={self.frac_bits})  "
            f"# {self.name}, {self.rounding.value}, {self.overflow.value}"
        )

    def replace(self, **changes):
        """Return a copy with some fields changed."""
        fields = dict(bits=self.bits, frac_bits=self.frac_bits, rounding=self.rounding,
                      overflow=self.overflow, nonfinite=self.nonfinite)
        fields.update(changes)
        return FixedFormat(**fields)


def parse_fixed(spec, **options):
    """Parse ``'Q3.4'`` (sign + 3 integer + 4 fractional bits = 8 bits) or ``'fix16:8'`` (16 bits, 8 fractional)."""
    text = str(spec).strip().lower()
    m = re.fullmatch(r"q(\d+)\.(\d+)", text)
    if m:
        i, f = int(m.group(1)), int(m.group(2))
        return FixedFormat(1 + i + f, f, **options)
    m = re.fullmatch(r"fix(\d+):(-?\d+)", text)
    if m:
        return FixedFormat(int(m.group(1)), int(m.group(2)), **options)
    raise InputError(f"cannot parse fixed-point format {spec!r}; write it as 'Q3.4' or 'fix16:8'")


def as_fixed(fmt):
    """Return ``fmt`` as a :class:`FixedFormat`, parsing a name such as ``'Q7.8'`` or ``'fix16:8'``.

    Raises
    ------
    InputTypeError
        If ``fmt`` is neither a FixedFormat nor a string.
    InputError
        If the string is not a fixed-point format name.
    """
    return as_format(fmt, FixedFormat, parse_fixed, "Q7.8",
                     "pass bitsim.formats.FixedFormat(bits, frac_bits) or parse_fixed('Q7.8')")


def int_codes(x, what):
    """Return integer array ``x`` as int64, refusing other dtypes and uint64 values above int64's range."""
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise InputTypeError(
            f"{what} expects integers, got dtype {x.dtype}; quantize real values with fixed.quantize(...)"
        )
    if x.dtype == np.uint64:
        big = x > np.uint64(INT64_MAX)
        if big.any():
            raise RangeError(
                f"{what}: {int(x[big].flat[0])} at index {first_index(big)} exceeds int64's range; "
                "values must fit int64"
            )
    return x.astype(np.int64)


def check_codes(codes, fmt, what):
    """Raise unless every integer code lies in ``fmt``'s range; one vectorised pass."""
    codes = np.asarray(codes)
    bad = codes > fmt.max_code
    if codes.dtype.kind == "i":
        bad |= codes < fmt.min_code
    if bad.any():
        idx = first_index(bad)
        raise RangeError(
            f"{what}: code {int(codes[idx])} at index {idx} is outside {fmt.name}'s range "
            f"{fmt.min_code}..{fmt.max_code}; quantize with fixed.quantize(...) or pass the format the codes are in"
        )
    return codes


def _round_scaled(v, rounding, rng):
    """Round float64 values to integral float64 values; exact for every mode."""
    if rounding is Rounding.NEAREST_EVEN:
        return np.rint(v)
    if rounding is Rounding.CEIL:
        return np.ceil(v)
    if rounding is Rounding.TOWARD_ZERO:
        return np.trunc(v)
    if rounding is Rounding.FLOOR:
        return np.floor(v)
    whole = np.trunc(v)
    tie = np.abs(v - whole) == 0.5  # v - trunc(v) is exact, unlike v - floor(v) for v in (-1, 0)
    if rounding is Rounding.NEAREST_UP:
        return np.where(tie, np.ceil(v), np.rint(v))
    if rounding is Rounding.NEAREST_AWAY:
        return np.where(tie, whole + np.sign(v), np.rint(v))
    if rounding is Rounding.STOCHASTIC:
        low = np.floor(v)
        # floor(frac * 2**32) with frac = v - low; for v in (-1, 0), 1 + v may round, 2**32 + floor(v * 2**32) is exact
        with np.errstate(over="ignore"):
            t = np.where((v < 0) & (v > -1), 2.0**32 + np.floor(np.ldexp(v, 32)), np.floor(np.ldexp(v - low, 32)))
        return low + bernoulli(np.ldexp(t, -32), as_rng(rng))
    raise InputError(f"unsupported rounding {rounding}")


def _finish(v, fmt, high, low, counts):
    """Apply the overflow mode to int64 values ``v`` whose out-of-range lanes are ``high`` / ``low``."""
    over = high | low
    n_over = int(np.count_nonzero(over))
    if n_over:
        if fmt.overflow is Overflow.ERROR:
            idx = first_index(over)
            raise RangeError(
                f"{n_over} value(s) overflow {fmt.name} (first at index {idx}); "
                "widen the format or choose overflow='saturate' or 'wrap'"
            )
        if fmt.overflow is Overflow.SATURATE:
            v = np.where(high, fmt.max_code, np.where(low, fmt.min_code, v))
            if counts is not None:
                counts.saturated += n_over
        else:
            span = np.int64(1) << np.int64(fmt.bits)
            v = ((v - fmt.min_code) & (span - 1)) + fmt.min_code
            if counts is not None:
                counts.wrapped += n_over
    return np.asarray(v).astype(fmt.dtype)


def quantize_int(x, fmt, rng=None, counts=None):
    """Quantize integer values to fixed-point codes exactly, in int64: ``round(x * 2**frac_bits)``.

    A left shift for ``frac_bits >= 0`` (wrapping keeps the low bits, exact modulo ``2**64``), else
    :func:`rshift_round` by ``-frac_bits``; then ``fmt.overflow``. The rule and the draws are those of
    :func:`quantize` (under STOCHASTIC rounding one draw per element, even when nothing is discarded).
    uint64 values above int64's range are handled exactly too.
    """
    fmt = as_fixed(fmt)
    x = np.asarray(x)
    if x.dtype.kind not in "iu":
        raise InputTypeError(f"quantize_int expects integers, got dtype {x.dtype}; use fixed.quantize(...) for floats")
    big = x > np.uint64(INT64_MAX) if x.dtype == np.uint64 else None
    v = x.astype(np.int64)  # uint64 above int64's range wrap to x - 2**64: the same low bits
    f = fmt.frac_bits
    if f >= 0:
        if fmt.rounding is Rounding.STOCHASTIC:
            as_rng(rng).uint32(v.size)  # nothing is discarded, but each element still takes its draw
        high, low = v > (fmt.max_code >> f), v < -((-fmt.min_code) >> f)
        v = v << np.int64(f)
    else:
        v = rshift_round(v, -f, fmt.rounding, rng)
        high, low = v > fmt.max_code, v < fmt.min_code
    if big is not None and big.any():
        # x - 2**64 rounds like x, up to a multiple of 2**(64 + f), except where the rule looks at the sign
        positive = {Rounding.TOWARD_ZERO: Rounding.FLOOR, Rounding.NEAREST_AWAY: Rounding.NEAREST_UP}
        if f < 0 and fmt.rounding in positive:
            v = np.where(big, rshift_round(x.astype(np.int64), -f, positive[fmt.rounding]), v)
        high, low = high | big, low & ~big
    return _finish(v, fmt, high, low, counts)


def quantize(x, fmt, rng=None, counts=None):
    """Quantize real values to fixed-point codes.

    Parameters
    ----------
    x : array_like of float or int
        Floats (up to float64) are scaled exactly by ``2**frac_bits`` in float64; integers are
        quantized exactly in int64 by :func:`quantize_int`, whatever their magnitude.
    fmt : FixedFormat or str
        A format, or its name such as ``'Q7.8'`` or ``'fix16:8'`` (:func:`parse_fixed`).
    rng : generator or int, optional
        Needed for ``Rounding.STOCHASTIC``: round up iff ``u < floor(frac * 2**32)``.
    counts : Counts, optional
        Receives the number of saturated or wrapped values.

    Returns
    -------
    numpy.ndarray of ``fmt.dtype``
    """
    fmt = as_fixed(fmt)
    x = np.asarray(x)
    if x.dtype.kind in "iu":
        return quantize_int(x, fmt, rng, counts)
    if x.dtype.kind != "f":
        raise InputTypeError(
            f"quantize expects a real array, got dtype {x.dtype}; convert it with np.asarray(x, float)"
        )
    if x.dtype.itemsize > 8:
        raise InputTypeError(
            f"quantize scales in float64 and would round {x.dtype} values; convert them to float64 first"
        )
    x = x.astype(np.float64)
    nan = np.isnan(x)
    if nan.any():
        raise InputError(f"NaN at index {first_index(nan)}; remove NaN before quantizing to {fmt.name}")
    with np.errstate(over="ignore", under="ignore"):
        v = np.ldexp(x, fmt.frac_bits)
    big = np.isinf(v)
    if big.any():
        inf = np.isinf(x)
        if inf.any() and fmt.nonfinite is NonFinite.ERROR:
            raise InputError(
                f"infinity at index {first_index(inf)}; remove it or use nonfinite='saturate' to clamp it to the range"
            )
        if inf.any() and fmt.overflow is not Overflow.SATURATE:
            raise InputError("infinity can only be saturated; use overflow='saturate' with nonfinite='saturate'")
        # a finite x scaled beyond float64 is still finite: an integral stand-in whose low bits are 0, like its own
        v = np.where(big, np.copysign(HUGE, v), v)
    if fmt.frac_bits < 0:
        lost = (v == 0) & (x != 0)
        if lost.any():
            v = np.where(lost, np.copysign(TINY, x), v)
    r = _round_scaled(v, fmt.rounding, rng)
    high, low = r > fmt.max_code, r < fmt.min_code
    if fmt.overflow is Overflow.WRAP:
        low_bits = np.mod(r, 2.0**fmt.bits)  # exact on integral floats of any magnitude
        wrapped = np.where(low_bits > fmt.max_code, low_bits - 2.0**fmt.bits, low_bits)
        if counts is not None:
            counts.wrapped += int(np.count_nonzero(high | low))
        return wrapped.astype(np.int64).astype(fmt.dtype)
    return _finish(np.clip(r, fmt.min_code, fmt.max_code).astype(np.int64), fmt, high, low, counts)


def to_float(codes, fmt, dtype=np.float64):
    """Decode codes to real values ``code * 2**-frac_bits`` (exact in float64).

    Parameters
    ----------
    codes : array_like of int
        Codes in ``fmt``'s range ``fmt.min_code .. fmt.max_code``.
    fmt : FixedFormat or str
    dtype : numpy dtype, optional

    Raises
    ------
    InputTypeError
        If the codes are not integers.
    RangeError
        If a code is outside the format's range (the message names the first one).
    """
    fmt = as_fixed(fmt)
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu":
        raise InputTypeError(f"expected integer fixed-point codes, got {codes.dtype}; quantize first")
    check_codes(codes, fmt, "to_float")
    return np.ldexp(codes.astype(np.float64), -fmt.frac_bits).astype(dtype)


def rshift_round(x, shift, rounding=Rounding.NEAREST_EVEN, rng=None):
    """Arithmetic right shift of int64 values with rounding: ``round(x / 2**shift)``.

    The quotient is split into ``q = x >> s`` (floor) and remainder ``r = x - q * 2**s``
    (``0 <= r < 2**s``), then ``q`` is incremented by the mode's rule:

    =============  =========================================
    FLOOR          never
    CEIL           ``r > 0``
    TOWARD_ZERO    ``r > 0 and x < 0``
    NEAREST_UP     ``r >= 2**(s-1)``
    NEAREST_EVEN   ``r > 2**(s-1)``, or ``r == 2**(s-1)`` and ``q`` odd
    NEAREST_AWAY   ``r > 2**(s-1)``, or ``r == 2**(s-1)`` and ``x >= 0``
    STOCHASTIC     ``u < r * 2**(32-s)`` (``r >> (s-32)`` for ``s > 32``), ``u`` a uint32 draw
    =============  =========================================

    No intermediate can overflow: ``q + 1`` fits because ``s >= 1`` halves the range.

    Parameters
    ----------
    x : array_like of int
    shift : int or array_like of int, 0..62
    rounding : Rounding or str
    rng : generator or int, optional (STOCHASTIC only)

    Returns
    -------
    numpy.ndarray of int64
    """
    rounding = parse_enum(Rounding, rounding)
    x = int_codes(x, "rshift_round")
    s = np.asarray(shift)
    if s.dtype.kind not in "iu" or (s < 0).any() or (s > MAX_SHIFT).any():
        raise InputError(f"shift must be integers in 0..{MAX_SHIFT}, got {shift!r}")
    s = s.astype(np.int64)
    q = x >> s
    r = x - (q << s)
    half = np.where(s > 0, np.int64(1) << np.maximum(s - 1, 0), np.int64(1) << np.int64(62))
    if rounding is Rounding.FLOOR:
        up = np.zeros(np.broadcast(x, s).shape, dtype=bool)
    elif rounding is Rounding.CEIL:
        up = r > 0
    elif rounding is Rounding.TOWARD_ZERO:
        up = (r > 0) & (x < 0)
    elif rounding is Rounding.NEAREST_UP:
        up = (r >= half) & (s > 0)
    elif rounding is Rounding.NEAREST_EVEN:
        up = (r > half) | ((r == half) & ((q & 1) == 1))
    elif rounding is Rounding.NEAREST_AWAY:
        up = (r > half) | ((r == half) & (x >= 0))
    else:
        r_u = r.astype(np.uint64)
        s_u = np.broadcast_to(s, r.shape).astype(np.uint64)
        t = np.where(s_u <= 32, r_u << (np.uint64(32) - np.minimum(s_u, 32)), r_u >> (np.maximum(s_u, 32) - np.uint64(32)))
        u = as_rng(rng).uint32(t.size).astype(np.uint64).reshape(t.shape)
        up = u < t
    return q + up


def requantize(acc, acc_frac_bits, fmt, rng=None, counts=None):
    """Rescale integer values with ``acc_frac_bits`` fractional bits into ``fmt``.

    Right shifts round by ``fmt.rounding`` (:func:`rshift_round`); left shifts are exact.
    Then ``fmt.overflow`` applies, counted in ``counts``.
    """
    fmt = as_fixed(fmt)
    acc = int_codes(acc, "requantize")
    delta = as_int(acc_frac_bits, "acc_frac_bits") - fmt.frac_bits
    if delta >= 0:
        if delta > MAX_SHIFT:
            raise InputError(f"rescaling by 2**-{delta} exceeds the largest shift {MAX_SHIFT}")
        v = rshift_round(acc, delta, fmt.rounding, rng)
        return _finish(v, fmt, v > fmt.max_code, v < fmt.min_code, counts)
    k = -delta
    if k > MAX_SHIFT:
        raise InputError(f"rescaling by 2**{k} exceeds the largest shift {MAX_SHIFT}")
    high = acc > (fmt.max_code >> k)
    low = acc < -((-fmt.min_code) >> k)
    return _finish(acc << np.int64(k), fmt, high, low, counts)


def multiply(a, fmt_a, b, fmt_b, out_fmt, rng=None, counts=None):
    """Multiply fixed-point codes exactly in int64, then :func:`requantize` into ``out_fmt``.

    The exact product of codes has ``fmt_a.frac_bits + fmt_b.frac_bits`` fractional bits and
    fits int64 because both operands have at most 32 bits.
    """
    fmt_a, fmt_b = as_fixed(fmt_a), as_fixed(fmt_b)
    a = check_codes(int_codes(a, "multiply"), fmt_a, "multiply (a)")
    b = check_codes(int_codes(b, "multiply"), fmt_b, "multiply (b)")
    return requantize(a * b, fmt_a.frac_bits + fmt_b.frac_bits, out_fmt, rng, counts)


def saturate(v, fmt, counts=None):
    """Apply ``fmt.overflow`` to integer values already on the format's scale (exact in int64)."""
    fmt = as_fixed(fmt)
    v = int_codes(v, "saturate")
    return _finish(v, fmt, v > fmt.max_code, v < fmt.min_code, counts)


@numba.njit(cache=True, inline="always")
def clamp(v, lo, hi):
    """``(v clamped to [lo, hi], 1 if it was clamped else 0)``: the SATURATE rule on one value (jitted code only)."""
    if v > hi:
        return hi, 1
    if v < lo:
        return lo, 1
    return v, 0
