"""Float32 products by log codes (exponent addition) and float32 accumulation in a stated order
(``docs/formats.md``, sections 3 and 9); the quantized GRU language model of :mod:`bitsim.kernels.gru`
is built on them.

Rules (each kernel below follows them bit for bit; :mod:`bitsim.reference.gru` is the slow oracle):

* **Coding.** :func:`encode_log` equals :func:`bitsim.formats.log.encode` and :func:`quantize_fixed`
  equals :func:`bitsim.formats.fixed.quantize` (deterministic rounding modes; log codes saturate above
  the window and flush or saturate below it; fixed point saturates), with the same counts.
* **Products.** A float32 weight ``w`` times a log code is :func:`bitsim.formats.log.multiply_float32`:
  the code's exponent is added to the biased exponent field of ``w``, the signs XOR; a zero code or a
  zero ``w`` gives a signed zero; a subnormal ``w`` or a result field ``<= 0`` gives a signed zero
  (counted as flushed); a result field ``>= 255`` gives ±FLT_MAX (counted as saturated). A float32
  weight times a float32 value (float32 or an exactly decoded fixed-point code) is the IEEE-754
  float32 product, rounded to nearest even.
* **Accumulation.** Each output starts at ``+0.0`` and adds the products in order of ascending ``k``
  in float32 (round to nearest even, no fused multiply-add), then adds the bias. Since the sum starts
  at ``+0.0`` it is never ``-0.0``, so adding a zero product never changes it: the kernels skip zero
  codes and zero values, which gives the same bits as adding them.

The kernels are compiled with ``fastmath=False``; the sums over ``k`` are written as sums of weight
columns (an axpy over the output index), which LLVM vectorizes without reordering any sum. Rows are
independent, so the bits do not depend on the number of threads.
"""

import math

import numba
import numpy as np

from ..errors import InputError, InputTypeError
from ..formats.fixed import FixedFormat, clamp
from ..formats.log import LOG_SQRT2_THRESHOLD, LogFormat, LogRounding
from ..formats.modes import NonFinite, Overflow, Underflow
from .bits import bits_of_f32, exp_add, f32_from_bits
from .requantize import ROUNDING_CODES

__all__ = ["encode_log", "quantize_fixed", "log_matmul", "float_matmul", "column_bounds"]

LOG_ROUNDING = {LogRounding.LINEAR: 0, LogRounding.LOG: 1, LogRounding.TRUNCATE: 2}
FLT_MAX_BITS = 0x7F7FFFFF
SIGN_BIT = -(2**31)


# ---------------------------------------------------------------------------------------
# coding one value


@numba.njit(cache=True)
def log_encode_one(x, w, o, rounding, under_saturate):
    """(code, event) of float32 ``x``: event 0 none, 1 saturated, 2 flushed, 3 NaN/inf (code 0)."""
    bits = bits_of_f32(x)
    sign = bits >> 31
    biased = (bits >> 23) & 0xFF
    m = bits & 0x7FFFFF
    half = np.int64(1) << (w - 1)
    if 0 < biased < 0xFF and rounding == 0:  # the common case, without branches on the value
        e = biased - 127 + (m >> 22)
        if o - half < e < o + half:
            return (sign << w) | ((e - o) & ((half << 1) - 1)), 0
    if biased == 0xFF:
        return np.int64(0), 3
    if biased == 0 and m == 0:
        return (sign << w) | half, 0
    if biased == 0:
        lead = np.int64(0)
        while (m >> (lead + 1)) != 0:
            lead += 1
        e = lead - 149
        m = (m << (23 - lead)) & 0x7FFFFF
    else:
        e = biased - 127
    if rounding == 0:
        e += m >= (1 << 22)
    elif rounding == 1:
        e += m >= LOG_SQRT2_THRESHOLD
    emin = o - half + 1
    emax = o + half - 1
    event = 0
    if e > emax:
        e = emax
        event = 1
    elif e < emin:
        if under_saturate:
            e = emin
            event = 1
        else:
            return (sign << w) | half, 2
    return (sign << w) | ((e - o) & ((np.int64(1) << w) - 1)), event


@numba.njit(cache=True)
def log_parts(code, w, o):
    """(negative, exponent, zero) of a log code."""
    field = code & ((np.int64(1) << w) - 1)
    half = np.int64(1) << (w - 1)
    zero = field == half
    signed = field - (np.int64(1) << w) if field >= half else field
    return (code >> w) & 1, signed + o, zero


@numba.njit(cache=True)
def log_value(code, w, o):
    """The float32 value ``±2**e`` (or ``±0``) of a log code, built from its bits."""
    neg, e, zero = log_parts(code, w, o)
    if zero:
        return f32_from_bits(neg << 31)
    if e >= -126:
        return f32_from_bits((neg << 31) | ((e + 127) << 23))
    return f32_from_bits((neg << 31) | (np.int64(1) << (e + 149)))


@numba.njit(cache=True)
def fixed_quantize_one(x, bits, frac, scale, rounding):
    """(code, event) of float32 ``x`` in a signed ``bits``-bit format with ``frac`` fractional bits.

    ``scale`` is ``2.0**frac`` (exact); event 0 none, 1 saturated, 3 NaN/inf.
    """
    v = np.float64(x) * scale
    if not math.isfinite(v):
        return np.int64(0), 3
    low = np.floor(v)
    if rounding == 0:
        r = low
    elif rounding == 1:
        r = np.ceil(v)
    elif rounding == 2:
        r = np.trunc(v)
    elif rounding == 3:
        r = low + (1.0 if v - low >= 0.5 else 0.0)
    elif rounding == 4:
        r = np.rint(v)
    else:
        f = v - low
        r = low + (1.0 if f > 0.5 or (f == 0.5 and v > 0) else 0.0)
    r, clamped = clamp(r, -float(1 << (bits - 1)), float((1 << (bits - 1)) - 1))
    return np.int64(r), clamped


@numba.njit(cache=True, parallel=True)
def _encode_log_array(x, w, o, rounding, under_saturate, out):
    events = np.zeros((x.size, 4), np.int64)
    for i in numba.prange(x.size):
        c, ev = log_encode_one(x[i], w, o, rounding, under_saturate)
        out[i] = c
        events[i, ev] += 1
    return events.sum(axis=0)


@numba.njit(cache=True, parallel=True)
def _quantize_fixed_array(x, bits, frac, scale, rounding, out):
    events = np.zeros((x.size, 4), np.int64)
    for i in numba.prange(x.size):
        c, ev = fixed_quantize_one(x[i], bits, frac, scale, rounding)
        out[i] = c
        events[i, ev] += 1
    return events.sum(axis=0)


def check_log_coder(fmt):
    """Raise unless the jitted log coder (:func:`log_encode_one`) takes ``fmt``, a :class:`LogFormat`."""
    if not isinstance(fmt, LogFormat):
        raise InputTypeError(f"expected a bitsim.formats.log.LogFormat, got {type(fmt).__name__}")
    if fmt.rounding not in LOG_ROUNDING:
        raise InputError(f"the jitted log coder takes rounding 'linear', 'log' or 'truncate', "
                         f"got {fmt.rounding.value!r}")
    if fmt.overflow is not Overflow.SATURATE or fmt.underflow is Underflow.ERROR:
        raise InputError("the jitted log coder saturates above the window and flushes or saturates below it; "
                         "use overflow='saturate' and underflow='flush' or 'saturate'")


def check_fixed_coder(fmt):
    """Raise unless the jitted fixed-point coder (:func:`fixed_quantize_one`) takes ``fmt``, a :class:`FixedFormat`."""
    if not isinstance(fmt, FixedFormat):
        raise InputTypeError(f"expected a bitsim.formats.fixed.FixedFormat, got {type(fmt).__name__}")
    if fmt.rounding not in ROUNDING_CODES or fmt.overflow is not Overflow.SATURATE or fmt.bits > 31:
        raise InputError("the jitted fixed-point coder takes deterministic rounding, overflow='saturate' and at "
                         f"most 31 bits; got {fmt!r}")


def raise_nonfinite(n, fmt):
    """Raise when ``n`` values met by a coder of ``fmt`` were NaN or infinite."""
    if n:
        raise InputError(f"{n} NaN or infinite value(s) cannot be coded in {fmt.name}; remove them first")


def encode_log(x, fmt=LogFormat(), counts=None):
    """Jitted :func:`bitsim.formats.log.encode` of float32 values (same codes, same counts).

    Parameters
    ----------
    x : array_like of float32
    fmt : LogFormat
        Rounding 'linear', 'log' or 'truncate'; overflow 'saturate'; underflow 'flush' or 'saturate'.
    counts : Counts, optional

    Returns
    -------
    numpy.ndarray of uint8
    """
    check_log_coder(fmt)
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(x.shape, np.uint8)
    ev = _encode_log_array(x.reshape(-1), fmt.exp_bits, fmt.exp_offset, LOG_ROUNDING[fmt.rounding],
                           fmt.underflow is Underflow.SATURATE, out.reshape(-1))
    raise_nonfinite(int(ev[3]), fmt)
    if counts is not None:
        counts.saturated += int(ev[1])
        counts.flushed += int(ev[2])
    return out


def quantize_fixed(x, fmt, counts=None):
    """Jitted :func:`bitsim.formats.fixed.quantize` of float32 values (same codes, same counts)."""
    check_fixed_coder(fmt)
    if fmt.nonfinite is not NonFinite.ERROR:
        raise InputError("the jitted fixed-point coder rejects infinities; use nonfinite='error'")
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(x.shape, np.int64)
    ev = _quantize_fixed_array(x.reshape(-1), fmt.bits, fmt.frac_bits, 2.0**fmt.frac_bits,
                               ROUNDING_CODES[fmt.rounding], out.reshape(-1))
    raise_nonfinite(int(ev[3]), fmt)
    if counts is not None:
        counts.saturated += int(ev[1])
    return out.astype(fmt.dtype)


# ---------------------------------------------------------------------------------------
# sums of products, one output vector at a time


@numba.njit(cache=True)
def _add_log_column_exact(acc, j0, j1, wbits_col, neg, e, events):
    """acc[j] += w[j] * (-1)**neg * 2**e for j in [j0, j1), element by element with every special case."""
    for j in range(j0, j1):
        b = np.int64(wbits_col[j]) & 0xFFFFFFFF
        field = (b >> 23) & 0xFF
        sign = ((b >> 31) ^ neg) << 31
        if field == 0:
            if (b & 0x7FFFFF) != 0:
                events[2] += 1
            acc[j] += f32_from_bits(sign)
            continue
        f = field + e
        if f <= 0:
            events[2] += 1
            mag = np.int64(0)
        elif f >= 255:
            events[1] += 1
            mag = np.int64(FLT_MAX_BITS)
        else:
            mag = (f << 23) | (b & 0x7FFFFF)
        acc[j] += f32_from_bits(sign | mag)


@numba.njit(cache=True)
def _all_fast(lo, hi, special, codes, w, o):
    """Whether every nonzero code meets a weight row whose exponent fields stay normal after adding it."""
    for k in range(codes.shape[0]):
        neg, e, zero = log_parts(np.int64(codes[k]), w, o)
        if not zero and (special[k] or lo[k] + e < 1 or hi[k] + e > 254):
            return False
    return True


@numba.njit(cache=True)
def _add_log_fast(acc, j0, j1, wbits_t, codes, w, o):
    """The vectorized path of :func:`add_log_products`, for codes that :func:`_all_fast` accepts."""
    a = acc[j0:j1]  # slices from 0: indices LLVM knows are non-negative, so the loop vectorizes
    for k in range(codes.shape[0]):
        neg, e, zero = log_parts(np.int64(codes[k]), w, o)
        if zero:
            continue
        delta = e << 23
        flip = SIGN_BIT if neg else 0
        col = wbits_t[k, j0:j1]
        for j in range(a.shape[0]):
            a[j] += exp_add(col[j], delta, flip)


@numba.njit(cache=True)
def add_log_products(acc, j0, j1, wbits_t, lo, hi, special, codes, w, o, events):
    """acc[j] += sum over k ascending of w[j, k] * code[k] (exponent addition), j in [j0, j1).

    A weight row whose exponent fields all stay normal after adding ``e`` (known from ``lo``, ``hi`` and
    ``special``) is added as ``bits + (e << 23)`` with the sign flipped, a vectorized loop; any other row
    goes through :func:`_add_log_column_exact`. Both give the rule's bits.
    """
    if _all_fast(lo, hi, special, codes, w, o):
        _add_log_fast(acc, j0, j1, wbits_t, codes, w, o)
        return
    for k in range(codes.shape[0]):
        neg, e, zero = log_parts(np.int64(codes[k]), w, o)
        if zero:
            continue
        if special[k] or lo[k] + e < 1 or hi[k] + e > 254:
            _add_log_column_exact(acc, j0, j1, wbits_t[k], neg, e, events)
            continue
        delta = e << 23
        flip = SIGN_BIT if neg else 0
        a = acc[j0:j1]
        col = wbits_t[k, j0:j1]
        for j in range(a.shape[0]):
            a[j] += exp_add(col[j], delta, flip)


@numba.njit(cache=True)
def add_float_products(acc, j0, j1, w_t, values):
    """acc[j] += sum over k ascending of w[j, k] * values[k] (float32 products), j in [j0, j1)."""
    a = acc[j0:j1]
    for k in range(values.shape[0]):
        v = values[k]
        if v == 0:
            continue
        col = w_t[k, j0:j1]
        for j in range(a.shape[0]):
            a[j] += col[j] * v


def column_bounds(w_t):
    """Per row ``k`` of a transposed float32 weight matrix: lowest and highest exponent field, and whether
    the row holds a zero or subnormal weight (which sends that row to the per-element path)."""
    field = ((np.ascontiguousarray(w_t, np.float32).view(np.uint32) >> 23) & 0xFF).astype(np.int64)
    if field.shape[1] == 0:
        rows = field.shape[0]
        return np.full(rows, 255, np.int64), np.zeros(rows, np.int64), np.zeros(rows, bool)
    return field.min(axis=1), field.max(axis=1), (field == 0).any(axis=1)


@numba.njit(cache=True, parallel=True, fastmath=False)
def _log_matmul(codes, wbits_t, lo, hi, special, bias, w, o, out, events):
    m = codes.shape[0]
    n = out.shape[1]
    ev = np.zeros((m, 4), np.int64)
    for i in numba.prange(m):
        acc = np.zeros(n, np.float32)
        add_log_products(acc, 0, n, wbits_t, lo, hi, special, codes[i], w, o, ev[i])
        for j in range(n):
            out[i, j] = acc[j] + bias[j]
    events += ev.sum(axis=0)


@numba.njit(cache=True, parallel=True, fastmath=False)
def _float_matmul(x, w_t, bias, out):
    m = x.shape[0]
    n = out.shape[1]
    for i in numba.prange(m):
        acc = np.zeros(n, np.float32)
        add_float_products(acc, 0, n, w_t, x[i])
        for j in range(n):
            out[i, j] = acc[j] + bias[j]


def _weights(w, k, bias):
    w = np.asarray(w)
    if w.dtype != np.float32 or w.ndim != 2 or w.shape[1] != k:
        raise InputError(f"weights must be a float32 (N, {k}) matrix (one row per output), got {w.dtype} {w.shape}")
    if not np.isfinite(w).all():
        raise InputError("weights must be finite")
    b = np.zeros(w.shape[0], np.float32) if bias is None else np.asarray(bias)
    if b.dtype != np.float32 or b.shape != (w.shape[0],):
        raise InputError(f"bias must be float32 of shape ({w.shape[0]},), got {b.dtype} {b.shape}")
    return np.ascontiguousarray(w.T), b


def log_matmul(codes, fmt, w, bias=None, counts=None):
    """``out[i, j] = (sum over k ascending of w[j, k] * code[i, k]) + bias[j]``, products by exponent addition.

    Parameters
    ----------
    codes : numpy.ndarray of uint8, shape (M, K)
        Log codes of ``fmt``.
    fmt : LogFormat
    w : numpy.ndarray of float32, shape (N, K)
    bias : numpy.ndarray of float32, shape (N,), optional
    counts : Counts, optional
        Receives the flushed and saturated products.

    Returns
    -------
    numpy.ndarray of float32, shape (M, N)
    """
    codes = np.asarray(codes)
    if codes.dtype != np.uint8 or codes.ndim != 2:
        raise InputTypeError(f"codes must be a 2-D uint8 array of log codes, got {codes.dtype} {codes.shape}")
    if codes.size and int(codes.max()) >> fmt.bits:
        raise InputError(f"code {int(codes.max())} does not fit the {fmt.bits}-bit {fmt.name} code")
    w_t, b = _weights(w, codes.shape[1], bias)
    lo, hi, special = column_bounds(w_t)
    out = np.empty((codes.shape[0], w_t.shape[1]), np.float32)
    events = np.zeros(4, np.int64)
    _log_matmul(np.ascontiguousarray(codes), w_t.view(np.int32), lo, hi, special, b, fmt.exp_bits, fmt.exp_offset,
                out, events)
    if counts is not None:
        counts.saturated += int(events[1])
        counts.flushed += int(events[2])
    return out


def float_matmul(x, w, bias=None):
    """``out[i, j] = (sum over k ascending of w[j, k] * x[i, k]) + bias[j]`` in float32 (products rounded)."""
    x = np.asarray(x)
    if x.dtype != np.float32 or x.ndim != 2:
        raise InputTypeError(f"x must be a 2-D float32 array, got {x.dtype} {x.shape}")
    w_t, b = _weights(w, x.shape[1], bias)
    out = np.empty((x.shape[0], w_t.shape[1]), np.float32)
    _float_matmul(np.ascontiguousarray(x), w_t, b, out)
    return out
