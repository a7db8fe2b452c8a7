"""Requantization of integer accumulators into a fixed-point format, in parallel jitted kernels.

The rule is :func:`bitsim.formats.fixed.requantize` (rounding right shift by
:func:`bitsim.formats.fixed.rshift_round`, exact left shift, then the overflow mode), bit for bit;
:func:`saturate_int32` clamps exact sums to int32. The integer GEMM of
:mod:`bitsim.kernels.intmatmul` and the shift-add GEMM of :mod:`bitsim.kernels.shift` share these
rules and the jitted :func:`rshift_round`.
"""

import numba
import numpy as np

from ..errors import InputError, InputTypeError, RangeError
from ..formats import fixed
from ..formats.fixed import MAX_SHIFT, FixedFormat, clamp
from ..formats.launch import launch
from ..formats.modes import Overflow, Rounding

__all__ = ["requantize", "saturate_int32", "rshift_round", "ROUNDING_CODES", "OVERFLOW_CODES"]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
PARALLEL_MIN_WORK = 2**18  # values below which a kernel runs on the calling thread

ROUNDING_CODES = {
    Rounding.FLOOR: 0,
    Rounding.CEIL: 1,
    Rounding.TOWARD_ZERO: 2,
    Rounding.NEAREST_UP: 3,
    Rounding.NEAREST_EVEN: 4,
    Rounding.NEAREST_AWAY: 5,
}
OVERFLOW_CODES = {Overflow.SATURATE: 0, Overflow.WRAP: 1, Overflow.ERROR: 2}


# ---------------------------------------------------------------------------------------
# requantization


@numba.njit(cache=True)
def rshift_round(x, s, mode):
    """``bitsim.formats.fixed.rshift_round`` for one int64 and a shift 0..63 (jitted code only).

    Parameters
    ----------
    x : int64
    s : int
        The shift, 0..63.
    mode : int
        The deterministic rounding mode's code in :data:`ROUNDING_CODES`.

    Returns
    -------
    int64
        ``x / 2**s`` rounded by the mode.
    """
    q = x >> s
    if s == 0:
        return q
    r = x - (q << s)
    half = np.int64(1) << (s - 1)
    if mode == 0:
        up = False
    elif mode == 1:
        up = r > 0
    elif mode == 2:
        up = r > 0 and x < 0
    elif mode == 3:
        up = r >= half
    elif mode == 4:
        up = r > half or (r == half and (q & 1) == 1)
    else:
        up = r > half or (r == half and x >= 0)
    return q + 1 if up else q


@numba.njit(cache=True, parallel=True)
def _requantize(acc, delta, mode, overflow, bits, out):
    lo = -(np.int64(1) << (bits - 1))
    hi = -lo - 1
    span = np.int64(1) << bits
    over = 0
    for i in numba.prange(acc.size):
        v = np.int64(acc[i])
        if delta >= 0:
            v = rshift_round(v, delta, mode)
            high = v > hi
            low = v < lo
        else:
            high = v > (hi >> -delta)
            low = v < -((-lo) >> -delta)
            v = v << -delta
        if high or low:
            over += 1
            if overflow == 1:
                v = ((v - lo) & (span - 1)) + lo
            elif high:
                v = hi
            else:
                v = lo
        out[i] = v
    return over


@numba.njit(cache=True, parallel=True)
def _saturate_int32(acc, out):
    n = 0
    for i in numba.prange(acc.size):
        v, clamped = clamp(acc[i], INT32_MIN, INT32_MAX)
        n += clamped
        out[i] = v
    return n


def check_fixed_format(fmt, name):
    """Raise ``TypeError`` unless ``fmt``, the argument called ``name``, is a :class:`~bitsim.formats.FixedFormat`."""
    if not isinstance(fmt, FixedFormat):
        raise InputTypeError(f"{name} must be a bitsim.formats.fixed.FixedFormat, got {type(fmt).__name__}")


def shift_of(acc_frac_bits, fmt):
    """The right shift ``acc_frac_bits - fmt.frac_bits`` from accumulators into ``fmt``; raises beyond 62 bits."""
    delta = int(acc_frac_bits) - fmt.frac_bits
    if abs(delta) > MAX_SHIFT:
        way = f"2**-{delta}" if delta > 0 else f"2**{-delta}"
        raise InputError(f"rescaling by {way} exceeds the largest shift {MAX_SHIFT}; choose closer frac_bits")
    return delta


def _requantize_into(acc, delta, fmt, counts):
    """Jitted requantize of an int32/int64 array by ``delta``; raises for Overflow.ERROR."""
    out = np.empty(acc.shape, dtype=np.int64)  # one compiled kernel per input dtype; narrowed below
    flat = acc.reshape(-1)
    over = launch(_requantize, flat.size, flat, delta, ROUNDING_CODES[fmt.rounding],
                  OVERFLOW_CODES[fmt.overflow], fmt.bits, out.reshape(-1), min_work=PARALLEL_MIN_WORK)
    if over:
        if fmt.overflow is Overflow.ERROR:
            raise RangeError(
                f"{over} value(s) overflow {fmt.name}; widen the format or choose overflow='saturate' or 'wrap'"
            )
        if counts is not None:
            if fmt.overflow is Overflow.SATURATE:
                counts.saturated += over
            else:
                counts.wrapped += over
    return out.astype(fmt.dtype)


def requantize(acc, acc_frac_bits, fmt, rng=None, counts=None):
    """Rescale integer accumulators with ``acc_frac_bits`` fractional bits into ``fmt``.

    Bit for bit equal to :func:`bitsim.formats.fixed.requantize`, in a parallel jitted kernel.
    With ``delta = acc_frac_bits - fmt.frac_bits``:

    * ``delta >= 0``: ``v = rshift_round(acc, delta, fmt.rounding)``: the floor quotient
      ``q = acc >> delta`` and remainder ``r = acc - (q << delta)``, then ``q + 1`` when the
      mode's rule holds (FLOOR never; CEIL ``r > 0``; TOWARD_ZERO ``r > 0 and acc < 0``;
      NEAREST_UP ``r >= 2**(delta-1)``; NEAREST_EVEN ``r > 2**(delta-1)`` or a tie with ``q``
      odd; NEAREST_AWAY ``r > 2**(delta-1)`` or a tie with ``acc >= 0``; never when
      ``delta == 0``). Out of range when ``v`` leaves ``[fmt.min_code, fmt.max_code]``.
    * ``delta < 0``: ``v = acc << -delta`` (int64, exact when in range); out of range when
      ``acc > max_code >> -delta`` or ``acc < -((-min_code) >> -delta)``.
    * out-of-range values: SATURATE clamps to the nearest end (counted in
      ``counts.saturated``), WRAP keeps the low ``fmt.bits`` bits as a two's-complement code
      (counted in ``counts.wrapped``), ERROR raises ``OverflowError``.

    Parameters
    ----------
    acc : array_like of int
        Accumulators; any integer dtype (converted to int64 unless int32 or int64).
    acc_frac_bits : int
        Fractional bits of ``acc``; ``|acc_frac_bits - fmt.frac_bits| <= 62``.
    fmt : FixedFormat
    rng : generator or int, optional
        Only for ``Rounding.STOCHASTIC``, which is delegated to
        :func:`bitsim.formats.fixed.requantize` (one uint32 draw per value, row-major).
    counts : Counts, optional
        Receives the saturated or wrapped values.

    Returns
    -------
    numpy.ndarray of ``fmt.dtype``, shaped like ``acc``

    Raises
    ------
    TypeError
        If ``acc`` is not an integer array or ``fmt`` is not a FixedFormat.
    ValueError
        If the shift exceeds 62.
    OverflowError
        If ``fmt.overflow`` is ERROR and a value is out of range.

    Examples
    --------
    >>> requantize(np.array([37, -37], dtype=np.int32), 3, FixedFormat(8, 0, rounding="nearest_up"))
    array([ 5, -5], dtype=int8)
    """
    check_fixed_format(fmt, "fmt")
    acc = np.asarray(acc)
    if acc.dtype.kind not in "iu":
        raise InputTypeError(
            f"requantize expects integer accumulators, got {acc.dtype}; quantize floats with "
            "bitsim.formats.fixed.quantize(...) instead"
        )
    delta = shift_of(acc_frac_bits, fmt)
    if fmt.rounding is Rounding.STOCHASTIC:
        return fixed.requantize(acc, acc_frac_bits, fmt, rng, counts)
    if acc.dtype not in (np.int32, np.int64):
        acc = acc.astype(np.int64)
    return _requantize_into(np.ascontiguousarray(acc), delta, fmt, counts)


def saturate_int32(acc, counts=None):
    """Clamp int64 values to int32, counting each clamped value in ``counts.saturated``.

    Parameters
    ----------
    acc : numpy.ndarray of int64
    counts : Counts, optional

    Returns
    -------
    numpy.ndarray of int32, shaped like ``acc``
    """
    acc = np.ascontiguousarray(acc, dtype=np.int64)
    out = np.empty(acc.shape, dtype=np.int32)
    n = launch(_saturate_int32, acc.size, acc.reshape(-1), out.reshape(-1), min_work=PARALLEL_MIN_WORK)
    if counts is not None:
        counts.saturated += n
    return out
