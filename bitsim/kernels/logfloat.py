"""Float32 products by log codes (exponent addition), float32 accumulation in a stated order, and the
quantized GRU language model built on them (``docs/formats.md``, sections 3 and 9).

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
columns (an axpy over the output index), which LLVM vectorizes without reordering any sum. Streams and
rows are independent, so the bits do not depend on the number of threads.
"""

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ..errors import InputError, InputTypeError, RangeError
from ..formats.fixed import FixedFormat
from ..formats.log import LOG_SQRT2_THRESHOLD, LogFormat, LogRounding
from ..formats.modes import Counts, NonFinite, Overflow, Rounding, Underflow

__all__ = ["encode_log", "quantize_fixed", "log_matmul", "float_matmul", "column_bounds", "run_gru_lm", "x_table",
           "run_fixed_weights",
           "MODE_FLOAT", "MODE_LOG", "MODE_FIXED"]

MODE_FLOAT, MODE_LOG, MODE_FIXED = 0, 1, 2
LOG_ROUNDING = {LogRounding.LINEAR: 0, LogRounding.LOG: 1, LogRounding.TRUNCATE: 2}
FIXED_ROUNDING = {Rounding.FLOOR: 0, Rounding.CEIL: 1, Rounding.TOWARD_ZERO: 2, Rounding.NEAREST_UP: 3,
                  Rounding.NEAREST_EVEN: 4, Rounding.NEAREST_AWAY: 5}
FLT_MAX_BITS = 0x7F7FFFFF
SIGN_BIT = -(2**31)


@intrinsic
def _f32_from_bits(typingctx, x):
    """The float32 whose IEEE-754 bit pattern is the low 32 bits of the integer ``x``."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        if x.bitwidth > 32:
            v = builder.trunc(v, ir.IntType(32))
        elif x.bitwidth < 32:
            v = builder.zext(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(x), codegen


@intrinsic
def _exp_add(typingctx, bits, delta, flip):
    """``float32 from bits ((bits + delta) XOR flip)`` in 32-bit integer arithmetic (wrapping)."""
    if not all(isinstance(t, types.Integer) for t in (bits, delta, flip)):
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)

        def to32(v, t):
            if t.bitwidth > 32:
                return builder.trunc(v, i32)
            if t.bitwidth < 32:
                return builder.sext(v, i32) if t.signed else builder.zext(v, i32)
            return v

        b, d, f = (to32(v, t) for v, t in zip(args, signature.args))
        return builder.bitcast(builder.xor(builder.add(b, d), f), ir.FloatType())

    return types.float32(bits, delta, flip), codegen


@intrinsic
def _bits_of_f32(typingctx, x):
    """The IEEE-754 bit pattern of a float32, as a non-negative int64."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.zext(builder.bitcast(args[0], ir.IntType(32)), ir.IntType(64))

    return types.int64(x), codegen


# ---------------------------------------------------------------------------------------
# coding one value


@numba.njit(cache=True)
def _log_encode1(x, w, o, rounding, under_saturate):
    """(code, event) of float32 ``x``: event 0 none, 1 saturated, 2 flushed, 3 NaN/inf (code 0)."""
    bits = _bits_of_f32(x)
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
def _log_parts(code, w, o):
    """(negative, exponent, zero) of a log code."""
    field = code & ((np.int64(1) << w) - 1)
    half = np.int64(1) << (w - 1)
    zero = field == half
    signed = field - (np.int64(1) << w) if field >= half else field
    return (code >> w) & 1, signed + o, zero


@numba.njit(cache=True)
def _log_value(code, w, o):
    """The float32 value ``±2**e`` (or ``±0``) of a log code, built from its bits."""
    neg, e, zero = _log_parts(code, w, o)
    if zero:
        return _f32_from_bits(neg << 31)
    if e >= -126:
        return _f32_from_bits((neg << 31) | ((e + 127) << 23))
    return _f32_from_bits((neg << 31) | (np.int64(1) << (e + 149)))


@numba.njit(cache=True)
def _fixed_quantize1(x, bits, frac, scale, rounding):
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
    hi = float((1 << (bits - 1)) - 1)
    lo = -float(1 << (bits - 1))
    if r > hi:
        return np.int64(hi), 1
    if r < lo:
        return np.int64(lo), 1
    return np.int64(r), 0


@numba.njit(cache=True, parallel=True)
def _encode_log_array(x, w, o, rounding, under_saturate, out):
    events = np.zeros((x.size, 4), np.int64)
    for i in numba.prange(x.size):
        c, ev = _log_encode1(x[i], w, o, rounding, under_saturate)
        out[i] = c
        events[i, ev] += 1
    return events.sum(axis=0)


@numba.njit(cache=True, parallel=True)
def _quantize_fixed_array(x, bits, frac, scale, rounding, out):
    events = np.zeros((x.size, 4), np.int64)
    for i in numba.prange(x.size):
        c, ev = _fixed_quantize1(x[i], bits, frac, scale, rounding)
        out[i] = c
        events[i, ev] += 1
    return events.sum(axis=0)


def _check_log_format(fmt):
    if not isinstance(fmt, LogFormat):
        raise InputTypeError(f"expected a bitsim.formats.log.LogFormat, got {type(fmt).__name__}")
    if fmt.rounding not in LOG_ROUNDING:
        raise InputError(f"the jitted log coder takes rounding 'linear', 'log' or 'truncate', "
                         f"got {fmt.rounding.value!r}")
    if fmt.overflow is not Overflow.SATURATE or fmt.underflow is Underflow.ERROR:
        raise InputError("the jitted log coder saturates above the window and flushes or saturates below it; "
                         "use overflow='saturate' and underflow='flush' or 'saturate'")


def _check_fixed_format(fmt):
    if not isinstance(fmt, FixedFormat):
        raise InputTypeError(f"expected a bitsim.formats.fixed.FixedFormat, got {type(fmt).__name__}")
    if fmt.rounding not in FIXED_ROUNDING or fmt.overflow is not Overflow.SATURATE or fmt.bits > 31:
        raise InputError("the jitted fixed-point coder takes deterministic rounding, overflow='saturate' and at "
                         f"most 31 bits; got {fmt!r}")


def _raise_nonfinite(n, fmt):
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
    _check_log_format(fmt)
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(x.shape, np.uint8)
    ev = _encode_log_array(x.reshape(-1), fmt.exp_bits, fmt.exp_offset, LOG_ROUNDING[fmt.rounding],
                           fmt.underflow is Underflow.SATURATE, out.reshape(-1))
    _raise_nonfinite(int(ev[3]), fmt)
    if counts is not None:
        counts.saturated += int(ev[1])
        counts.flushed += int(ev[2])
    return out


def quantize_fixed(x, fmt, counts=None):
    """Jitted :func:`bitsim.formats.fixed.quantize` of float32 values (same codes, same counts)."""
    _check_fixed_format(fmt)
    if fmt.nonfinite is not NonFinite.ERROR:
        raise InputError("the jitted fixed-point coder rejects infinities; use nonfinite='error'")
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(x.shape, np.int64)
    ev = _quantize_fixed_array(x.reshape(-1), fmt.bits, fmt.frac_bits, 2.0**fmt.frac_bits,
                               FIXED_ROUNDING[fmt.rounding], out.reshape(-1))
    _raise_nonfinite(int(ev[3]), fmt)
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
            acc[j] += _f32_from_bits(sign)
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
        acc[j] += _f32_from_bits(sign | mag)


@numba.njit(cache=True)
def _all_fast(lo, hi, special, codes, w, o):
    """Whether every nonzero code meets a weight row whose exponent fields stay normal after adding it."""
    for k in range(codes.shape[0]):
        neg, e, zero = _log_parts(np.int64(codes[k]), w, o)
        if not zero and (special[k] or lo[k] + e < 1 or hi[k] + e > 254):
            return False
    return True


@numba.njit(cache=True)
def _add_log_fast(acc, j0, j1, wbits_t, codes, w, o):
    """The vectorized path of :func:`_add_log_products`, for codes that :func:`_all_fast` accepts."""
    a = acc[j0:j1]  # slices from 0: indices LLVM knows are non-negative, so the loop vectorizes
    for k in range(codes.shape[0]):
        neg, e, zero = _log_parts(np.int64(codes[k]), w, o)
        if zero:
            continue
        delta = e << 23
        flip = SIGN_BIT if neg else 0
        col = wbits_t[k, j0:j1]
        for j in range(a.shape[0]):
            a[j] += _exp_add(col[j], delta, flip)


@numba.njit(cache=True)
def _add_log_products(acc, j0, j1, wbits_t, lo, hi, special, codes, w, o, events):
    """acc[j] += sum over k ascending of w[j, k] * code[k] (exponent addition), j in [j0, j1).

    A weight row whose exponent fields all stay normal after adding ``e`` (known from ``lo``, ``hi`` and
    ``special``) is added as ``bits + (e << 23)`` with the sign flipped, a vectorized loop; any other row
    goes through :func:`_add_log_column_exact`. Both give the rule's bits.
    """
    if _all_fast(lo, hi, special, codes, w, o):
        _add_log_fast(acc, j0, j1, wbits_t, codes, w, o)
        return
    for k in range(codes.shape[0]):
        neg, e, zero = _log_parts(np.int64(codes[k]), w, o)
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
            a[j] += _exp_add(col[j], delta, flip)


@numba.njit(cache=True)
def _add_float_products(acc, j0, j1, w_t, values):
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
        _add_log_products(acc, 0, n, wbits_t, lo, hi, special, codes[i], w, o, ev[i])
        for j in range(n):
            out[i, j] = acc[j] + bias[j]
    events += ev.sum(axis=0)


@numba.njit(cache=True, parallel=True, fastmath=False)
def _float_matmul(x, w_t, bias, out):
    m = x.shape[0]
    n = out.shape[1]
    for i in numba.prange(m):
        acc = np.zeros(n, np.float32)
        _add_float_products(acc, 0, n, w_t, x[i])
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


# ---------------------------------------------------------------------------------------
# the quantized GRU language model over independent streams


@numba.njit(cache=True)
def _code_vector(v, mode, w, o, rnd, under_sat, bits, frac, scale, codes, values, events):
    """Code float32 ``v`` into ``codes`` (the stored code) and ``values`` (its exact float32 value)."""
    if mode == MODE_FLOAT:
        for k in range(v.shape[0]):
            values[k] = v[k]
        return
    n = v.shape[0]
    sat = 0
    low = 0
    bad = 0
    if mode == MODE_LOG:
        for k in range(n):
            c, ev = _log_encode1(v[k], w, o, rnd, under_sat)
            sat += ev == 1
            low += ev == 2
            bad += ev == 3
            codes[k] = c
            values[k] = _log_value(c, w, o)
    else:
        inv = 1.0 / scale
        for k in range(n):
            c, ev = _fixed_quantize1(v[k], bits, frac, scale, rnd)
            sat += ev == 1
            bad += ev == 3
            codes[k] = c
            values[k] = np.float32(c * inv)
    events[1] += sat
    events[2] += low
    events[3] += bad
    events[0] += n - sat - low - bad


NO_TERM = np.int64(1) << 40  # the product term of a zero code: nothing to add


@numba.njit(cache=True)
def _code_log_vector(v, w, o, rnd, under_sat, codes, values, deltas, flips, events):
    """Log-code float32 ``v`` like :func:`_code_vector`, and keep each code's product term for
    :func:`_add_log_terms`: ``deltas[k] = e << 23`` (``NO_TERM`` for a zero code) and ``flips[k]`` (the sign
    bit). Returns ``(emin, emax)``, the range of the nonzero codes' exponents (empty: ``emin > emax``)."""
    half = np.int64(1) << (w - 1)
    mask = (half << 1) - 1
    lowest = o - half + 1
    highest = o + half - 1
    emin = NO_TERM
    emax = -NO_TERM
    sat = 0
    low = 0
    bad = 0
    for k in range(v.shape[0]):
        bits = _bits_of_f32(v[k])
        biased = (bits >> 23) & 0xFF
        sign = bits >> 31
        e = biased - 127 + ((bits >> 22) & 1)
        if 0 < biased < 0xFF and rnd == 0 and lowest <= e <= highest:  # _log_encode1's common case
            codes[k] = (sign << w) | ((e - o) & mask)
            values[k] = _f32_from_bits((sign << 31) | ((e + 127) << 23))
        else:
            c, ev = _log_encode1(v[k], w, o, rnd, under_sat)
            sat += ev == 1
            low += ev == 2
            bad += ev == 3
            codes[k] = c
            values[k] = _log_value(c, w, o)
            neg, e, zero = _log_parts(c, w, o)
            sign = neg
            if zero:
                deltas[k] = NO_TERM
                flips[k] = 0
                continue
        deltas[k] = e << 23
        flips[k] = SIGN_BIT if sign else 0
        emin = min(emin, e)
        emax = max(emax, e)
    events[1] += sat
    events[2] += low
    events[3] += bad
    events[0] += v.shape[0] - sat - low - bad
    return emin, emax


@numba.njit(cache=True)
def _global_bounds(lo, hi, special):
    """(lowest, highest) exponent field of a whole weight matrix; lowest is 0 when a row holds a zero or subnormal."""
    if lo.shape[0] == 0:
        return np.int64(255), np.int64(0)
    return (np.int64(0) if special.any() else lo.min()), hi.max()


@numba.njit(cache=True)
def _add_log_terms(acc, j0, j1, wbits_t, lo, hi, special, glo, ghi, codes, deltas, flips, emin, emax, w, o, events):
    """:func:`_add_log_products` with the terms of :func:`_code_log_vector`: when every exponent field of
    the matrix stays in 1..254 for every code (checked once, from the matrix's bounds and the codes'
    exponent range), one vectorized loop; otherwise :func:`_add_log_products`. Both give the rule's bits."""
    if glo + emin < 1 or ghi + emax > 254:
        _add_log_products(acc, j0, j1, wbits_t, lo, hi, special, codes, w, o, events)
        return
    a = acc[j0:j1]
    for k in range(codes.shape[0]):
        delta = deltas[k]
        if delta == NO_TERM:
            continue
        flip = flips[k]
        col = wbits_t[k, j0:j1]
        for j in range(a.shape[0]):
            a[j] += _exp_add(col[j], delta, flip)


@numba.njit(cache=True)
def _code(v, mode, w, o, rnd, under_sat, bits, frac, scale, codes, values, deltas, flips, events):
    """Code ``v`` in the mode; returns the exponent range of :func:`_code_log_vector` (log) or (0, 0)."""
    if mode == MODE_LOG:
        return _code_log_vector(v, w, o, rnd, under_sat, codes, values, deltas, flips, events)
    _code_vector(v, mode, w, o, rnd, under_sat, bits, frac, scale, codes, values, events)
    return np.int64(0), np.int64(0)


@numba.njit(cache=True)
def _add_products(acc, j0, j1, mode, w_t, wbits_t, lo, hi, special, glo, ghi, codes, values, deltas, flips, erange,
                  w, o, events):
    if mode == MODE_LOG:
        _add_log_terms(acc, j0, j1, wbits_t, lo, hi, special, glo, ghi, codes, deltas, flips, erange[0], erange[1],
                       w, o, events)
    else:
        _add_float_products(acc, j0, j1, w_t, values)


@numba.njit(cache=True)
def _sigmoid(a):
    return np.float32(0.5 + 0.5 * math.tanh(0.5 * np.float64(a)))


@numba.njit(cache=True)
def _tanh(a):
    return np.float32(math.tanh(np.float64(a)))


@numba.njit(cache=True, fastmath=False)
def _run_stream(s, e, ids, starts, lengths, tx, wh_t, whbits_t, wh_lo, wh_hi, wh_special, b, b_hn, before, wf_t,
                wfbits_t, wf_lo, wf_hi, wf_special, bf, mode, w, o, rnd, under_sat, bits, frac, scale, coded_state,
                pred, final):
    hidden = wh_t.shape[0]
    h3 = wh_t.shape[1]
    vocab = wf_t.shape[1]
    one = np.float32(1.0)
    hval = np.zeros(hidden, np.float32)  # the value of the coded state, read by the products
    hcode = np.zeros(hidden, np.int64)
    hst = np.zeros(hidden, np.float32)  # the state read by the element-wise operations
    gval = np.zeros(hidden, np.float32)
    gcode = np.zeros(hidden, np.int64)
    hn = np.zeros(hidden, np.float32)
    newh = np.zeros(hidden, np.float32)
    acc = np.zeros(h3, np.float32)
    score = np.zeros(vocab, np.float32)
    hdelta = np.zeros(hidden, np.int64)
    hflip = np.zeros(hidden, np.int64)
    gdelta = np.zeros(hidden, np.int64)
    gflip = np.zeros(hidden, np.int64)
    wh_glo, wh_ghi = _global_bounds(wh_lo, wh_hi, wh_special)
    wf_glo, wf_ghi = _global_bounds(wf_lo, wf_hi, wf_special)
    hr = _code(hval, mode, w, o, rnd, under_sat, bits, frac, scale, hcode, hval, hdelta, hflip, e)
    for t in range(lengths[s]):
        p = starts[s] + t
        c = ids[p]
        for j in range(h3):
            acc[j] = tx[c, j]
        _add_products(acc, 0, 2 * hidden, mode, wh_t, whbits_t, wh_lo, wh_hi, wh_special, wh_glo, wh_ghi, hcode, hval,
                      hdelta, hflip, hr, w, o, e)
        for j in range(2 * hidden):
            acc[j] = _sigmoid(acc[j] + b[j])
        if before:
            for k in range(hidden):
                gval[k] = hst[k] * acc[k]
            gr = _code(gval, mode, w, o, rnd, under_sat, bits, frac, scale, gcode, gval, gdelta, gflip, e)
            _add_products(acc, 2 * hidden, h3, mode, wh_t, whbits_t, wh_lo, wh_hi, wh_special, wh_glo, wh_ghi, gcode,
                          gval, gdelta, gflip, gr, w, o, e)
            for j in range(hidden):
                acc[2 * hidden + j] = _tanh(acc[2 * hidden + j] + b[2 * hidden + j])
        else:
            for j in range(hidden):
                acc[2 * hidden + j] = 0
            _add_products(acc, 2 * hidden, h3, mode, wh_t, whbits_t, wh_lo, wh_hi, wh_special, wh_glo, wh_ghi, hcode,
                          hval, hdelta, hflip, hr, w, o, e)
            for j in range(hidden):
                hn[j] = acc[2 * hidden + j] + b_hn[j]
                acc[2 * hidden + j] = _tanh((tx[c, 2 * hidden + j] + b[2 * hidden + j]) + acc[j] * hn[j])
        for j in range(hidden):
            z = acc[hidden + j]
            newh[j] = z * hst[j] + (one - z) * acc[2 * hidden + j]
        hr = _code(newh, mode, w, o, rnd, under_sat, bits, frac, scale, hcode, hval, hdelta, hflip, e)
        hst[:] = hval if coded_state else newh
        score[:] = 0
        _add_products(score, 0, vocab, mode, wf_t, wfbits_t, wf_lo, wf_hi, wf_special, wf_glo, wf_ghi, hcode, hval,
                      hdelta, hflip, hr, w, o, e)
        best = 0
        top = score[0] + bf[0]
        for j in range(1, vocab):
            v = score[j] + bf[j]
            if v > top:
                top = v
                best = j
        pred[p] = best
    final[s] = hst


@numba.njit(cache=True, parallel=True, fastmath=False)
def _run(ids, starts, lengths, tx, wh_t, whbits_t, wh_lo, wh_hi, wh_special, b, b_hn, before,
         wf_t, wfbits_t, wf_lo, wf_hi, wf_special, bf, mode, w, o, rnd, under_sat, bits, frac, scale,
         coded_state, pred, final, events):
    ev = np.zeros((starts.shape[0], 4), np.int64)
    for s in numba.prange(starts.shape[0]):  # one stream per iteration: the bits do not depend on threads
        _run_stream(s, ev[s], ids, starts, lengths, tx, wh_t, whbits_t, wh_lo, wh_hi, wh_special, b, b_hn, before,
                    wf_t, wfbits_t, wf_lo, wf_hi, wf_special, bf, mode, w, o, rnd, under_sat, bits, frac, scale,
                    coded_state, pred, final)
    events += ev.sum(axis=0)


def _coded_state(state):
    if state not in ("float32", "coded"):
        raise InputError(f"state must be 'float32' (coded only where a matrix product reads it) or 'coded' "
                         f"(stored coded), got {state!r}")
    return state == "coded"


def _mode_args(act):
    """(mode, w, o, rnd, under_sat, bits, frac, scale) of an activation code: None (float32), LogFormat, FixedFormat."""
    if act is None:
        return MODE_FLOAT, 7, 0, 0, False, 16, 0, 1.0
    if isinstance(act, LogFormat):
        _check_log_format(act)
        under_sat = act.underflow is Underflow.SATURATE
        return MODE_LOG, act.exp_bits, act.exp_offset, LOG_ROUNDING[act.rounding], under_sat, 16, 0, 1.0
    _check_fixed_format(act)
    return MODE_FIXED, 7, 0, FIXED_ROUNDING[act.rounding], False, act.bits, act.frac_bits, 2.0**act.frac_bits


def run_gru_lm(params, ids, starts, lengths, act=None, x_act=None, counts=None, final=None, state="coded"):
    """Run the GRU language model over independent streams with coded ``x_t`` and ``h_t``; return predictions.

    Per step of a stream, with ``c`` the current character (``docs/formats.md``, section 9):

    1. ``x = code(E[c])``; the x-part of every gate row, ``sum_k Wx[j, k] * x[k]`` from ``+0.0``, is
       the same for every step with character ``c`` and is tabulated once per character (``tx``; the
       same float32 additions in the same order).
    2. Rows r and z: continue each sum with ``Wh[j, k] * h[k]`` (``h`` the coded state), then add
       ``b[j]``; ``r, z = sigmoid(.)``.
    3. ``reset='before'``: ``g = code(h * r)`` (float32 product, then coded); row n continues with
       ``Wh_n[j, k] * g[k]``, adds ``b_n[j]``: ``n = tanh(.)``. ``reset='after'``:
       ``u = (sum_k Wh_n[j, k] * h[k] from +0.0) + b_hn[j]`` and ``n = tanh((xpart + b_n[j]) + r[j] * u)``.
    4. ``h' = code(z * h + (1 - z) * n)`` (float32 element-wise, coded).
    5. Scores ``sum_k Wf[j, k] * h'[k] from +0.0, + bf[j]``; the prediction is the first index of the
       largest score.

    ``sigmoid(a) = float32(0.5 + 0.5 * tanh(0.5 * a))`` and ``tanh`` are evaluated in float64 with the C
    library's ``tanh`` and rounded to float32. Products follow the module's rules: exponent addition
    for log codes, float32 products of exactly decoded values otherwise.

    Parameters
    ----------
    params : dict
        float32 arrays ``E (V, D)``, ``Wx (3H, D)``, ``Wh (3H, H)``, ``b (3H,)``, ``b_hn (H,)`` or None
        (``reset='before'``), ``Wf (V, H)``, ``bf (V,)``; and ``reset``.
    ids : numpy.ndarray of int
        The text as character ids.
    starts, lengths : numpy.ndarray of int64
        Stream ``s`` predicts positions ``starts[s] .. starts[s] + lengths[s] - 1``, starting from ``h = 0``.
    act : None, LogFormat or FixedFormat
        The code of ``h_t`` (and of ``h * r``); None is float32.
    x_act : None, LogFormat or FixedFormat
        The code of ``x_t``; defaults to ``act``. It must be of the same kind as ``act``.
    counts : Counts, optional
        Receives saturated and flushed codes and products.
    final : numpy.ndarray of float32, shape (streams, H), optional
        Receives each stream's last state.
    state : {'coded', 'float32'}
        'coded' (default): the state is stored coded, and the element-wise operations of the next step
        (``h * r``, ``z * h``) read the exact value of its code. 'float32': the state stays float32 for
        the element-wise operations and is coded only where a matrix product reads it.

    Returns
    -------
    numpy.ndarray of int64
        ``pred[p]`` for every position covered by a stream (others are -1).
    """
    x_act = act if x_act is None else x_act
    if type(x_act) is not type(act):
        raise InputError("x_act and act must both be None, both LogFormat or both FixedFormat")
    margs = _mode_args(act)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    starts = np.ascontiguousarray(starts, np.int64)
    lengths = np.ascontiguousarray(lengths, np.int64)
    if len(starts) and (int((starts + lengths).max()) > len(ids) - 1 or int(starts.min()) < 0):
        raise InputError("a stream runs past the text: need 0 <= starts and starts + lengths <= len(ids) - 1")
    tx, row_events = x_table(params["E"], params["Wx"], x_act)
    pred = np.full(len(ids), -1, np.int64)
    events = np.zeros(4, np.int64)
    if counts is not None:  # x is coded at every step: count each character's events once per occurrence
        covered = np.zeros(len(ids) + 1, np.int64)
        np.add.at(covered, starts, 1)
        np.add.at(covered, starts + lengths, -1)
        seen = np.bincount(ids[np.cumsum(covered)[:-1] > 0], minlength=len(tx))
        events += (seen[:, None] * row_events).sum(axis=0)
    wh_t = np.ascontiguousarray(np.asarray(params["Wh"], np.float32).T)
    wf_t = np.ascontiguousarray(np.asarray(params["Wf"], np.float32).T)
    hidden = wh_t.shape[0]
    before = params["reset"] == "before"
    b_hn = np.zeros(hidden, np.float32) if before else np.asarray(params["b_hn"], np.float32)
    last = np.empty((len(starts), hidden), np.float32) if final is None else final
    _run(ids, starts, lengths, tx, wh_t, wh_t.view(np.int32), *column_bounds(wh_t),
         np.asarray(params["b"], np.float32), b_hn, before, wf_t, wf_t.view(np.int32), *column_bounds(wf_t),
         np.asarray(params["bf"], np.float32), *margs, _coded_state(state), pred, last, events)
    _raise_nonfinite(int(events[3]), act if act is not None else LogFormat())
    if counts is not None:
        counts.saturated += int(events[1])
        counts.flushed += int(events[2])
    return pred


def x_table(emb, wx, x_act):
    """Code every embedding row and tabulate its x-parts: ``tx[c, j] = sum over k ascending of Wx[j, k] * x_c[k]``
    from ``+0.0`` (no bias), and the events (none, saturated, flushed, non-finite) of each row.

    Returns
    -------
    tx : numpy.ndarray of float32, shape (V, 3H)
    events : numpy.ndarray of int64, shape (V, 4)
    """
    emb = np.ascontiguousarray(emb, np.float32)
    wx = np.asarray(wx, np.float32)
    zero = np.zeros(wx.shape[0], np.float32)
    tx = np.empty((emb.shape[0], wx.shape[0]), np.float32)
    events = np.zeros((emb.shape[0], 4), np.int64)
    for c in range(emb.shape[0]):
        n = Counts()
        row = emb[c:c + 1]
        if isinstance(x_act, LogFormat):
            tx[c] = log_matmul(encode_log(row, x_act, n), x_act, wx, zero, n)[0]
        else:
            if isinstance(x_act, FixedFormat):
                row = (quantize_fixed(row, x_act, n).astype(np.float64) * 2.0**-x_act.frac_bits).astype(np.float32)
            tx[c] = float_matmul(row, wx, zero)[0]
        events[c] = (0, n.saturated, n.flushed, 0)
    return tx, events



# ---------------------------------------------------------------------------------------
# fixed-point weights: integer products, exact sums, one rounding to float32


@numba.njit(cache=True)
def _int_products(acc, j0, j1, w_t, q):
    """acc[j] += sum_k w[j, k] * q[k] exactly (int64), j in [j0, j1)."""
    a = acc[j0:j1]
    for k in range(q.shape[0]):
        v = np.int64(q[k])
        if v == 0:
            continue
        col = w_t[k, j0:j1]
        for j in range(a.shape[0]):
            a[j] += np.int64(col[j]) * v


@numba.njit(cache=True)
def _int_to_f32(acc, scale):
    """float32(acc * scale) with ``scale`` a power of two: exact in float64 below 2**53, then one rounding."""
    return np.float32(np.float64(acc) * scale)


@numba.njit(cache=True, fastmath=False)
def _run_int_stream(s, e, ids, starts, lengths, tx, sx, wh_t, sh, bias, sb, b_hn, sbn, top_n, before, wf_t, sf, bf, sbf,
                    fo, big, bits, frac, scale, rnd, coded_state, pred, final):
    hidden = wh_t.shape[0]
    h3 = wh_t.shape[1]
    vocab = wf_t.shape[1]
    one = np.float32(1.0)
    inv_big = 2.0 ** -big
    inv_top = 2.0 ** -top_n
    inv_fo = 2.0 ** -fo
    hq = np.zeros(hidden, np.int64)
    hv = np.zeros(hidden, np.float32)
    hst = np.zeros(hidden, np.float32)
    gq = np.zeros(hidden, np.int64)
    gv = np.zeros(hidden, np.float32)
    newh = np.zeros(hidden, np.float32)
    acc = np.zeros(h3, np.int64)
    gate = np.zeros(h3, np.float32)
    score = np.zeros(vocab, np.int64)
    for t in range(lengths[s]):
        p = starts[s] + t
        c = ids[p]
        acc[:] = 0
        _int_products(acc, 0, 2 * hidden, wh_t, hq)
        for j in range(2 * hidden):
            total = (tx[c, j] << sx) + (acc[j] << sh) + (bias[j] << sb)
            gate[j] = _sigmoid(_int_to_f32(total, inv_big))
        if before:
            for k in range(hidden):
                gv[k] = hst[k] * gate[k]
            _code_vector(gv, MODE_FIXED, 7, 0, rnd, False, bits, frac, scale, gq, gv, e)
            _int_products(acc, 2 * hidden, h3, wh_t, gq)
            for j in range(hidden):
                jj = 2 * hidden + j
                total = (tx[c, jj] << sx) + (acc[jj] << sh) + (bias[jj] << sb)
                gate[jj] = _tanh(_int_to_f32(total, inv_big))
        else:
            _int_products(acc, 2 * hidden, h3, wh_t, hq)
            for j in range(hidden):
                jj = 2 * hidden + j
                xn = _int_to_f32((tx[c, jj] << sx) + (bias[jj] << sb), inv_big)
                u = _int_to_f32((acc[jj] << (top_n - (big - sh))) + (b_hn[j] << sbn), inv_top)
                gate[jj] = _tanh(xn + gate[j] * u)
        for j in range(hidden):
            z = gate[hidden + j]
            newh[j] = z * hst[j] + (one - z) * gate[2 * hidden + j]
        _code_vector(newh, MODE_FIXED, 7, 0, rnd, False, bits, frac, scale, hq, hv, e)
        hst[:] = hv if coded_state else newh
        score[:] = 0
        _int_products(score, 0, vocab, wf_t, hq)
        best = 0
        top = _int_to_f32((score[0] << sf) + (bf[0] << sbf), inv_fo)
        for j in range(1, vocab):
            v = _int_to_f32((score[j] << sf) + (bf[j] << sbf), inv_fo)
            if v > top:
                top = v
                best = j
        pred[p] = best
    final[s] = hst


@numba.njit(cache=True, parallel=True, fastmath=False)
def _run_int(ids, starts, lengths, tx, sx, wh_t, sh, bias, sb, b_hn, sbn, top_n, before, wf_t, sf, bf, sbf, fo,
             big, bits, frac, scale, rnd, coded_state, pred, final, events):
    ev = np.zeros((starts.shape[0], 4), np.int64)
    for s in numba.prange(starts.shape[0]):  # one stream per iteration: the bits do not depend on threads
        _run_int_stream(s, ev[s], ids, starts, lengths, tx, sx, wh_t, sh, bias, sb, b_hn, sbn, top_n, before, wf_t, sf,
                        bf, sbf, fo, big, bits, frac, scale, rnd, coded_state, pred, final)
    events += ev.sum(axis=0)


def run_fixed_weights(codes, fmts, reset, ids, starts, lengths, act, x_act=None, counts=None, final=None,
                      state="coded"):
    """The GRU language model with fixed-point weights and activations: integer products, exact sums.

    The rules of :func:`run_gru_lm`, except for the products and sums: every sum of products is the exact
    integer ``sum_k w[j, k] * q[k]`` of the codes (int64; the x-parts of all characters come from
    :func:`bitsim.kernels.fixed.matmul`), the pieces of a pre-activation (x-part, h-part and bias) are
    aligned to the largest of their fractional bit counts ``F`` by exact left shifts and added as
    integers, and the total is rounded once to float32: ``float32(acc * 2**-F)``, exact in float64 (the
    formats are checked to keep ``|acc|`` below ``2**52``) and then rounded to nearest even. The
    element-wise work (gates, ``h * r``, the update) is float32 as in :func:`run_gru_lm`. With
    ``reset='after'``, ``xpart + b_n`` and ``Wh_n h + b_hn`` are each rounded to float32 before
    ``(xpart + b_n) + r * u``. The streams run in the same jitted step loop structure as :func:`run_gru_lm`.

    Parameters
    ----------
    codes, fmts : dict
        Fixed-point codes and formats of ``E`` (in ``x_act``'s format), ``Wx``, ``Wh``, ``b``, ``b_hn``
        (``reset='after'``), ``Wf``, ``bf``.
    reset : {'before', 'after'}
    ids, starts, lengths, act, x_act, counts, final, state
        As in :func:`run_gru_lm`; ``act`` and ``x_act`` are FixedFormats.

    Returns
    -------
    numpy.ndarray of int64
    """
    from . import fixed as kfixed

    x_act = act if x_act is None else x_act
    if not isinstance(act, FixedFormat) or not isinstance(x_act, FixedFormat):
        raise InputTypeError("run_fixed_weights takes fixed-point activation formats (FixedFormat)")
    _check_fixed_format(act)
    if fmts["E"] != x_act:
        raise InputError("the embedding must be coded in the format of x_t")
    ids = np.ascontiguousarray(ids, np.int64)
    starts, lengths = np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(lengths, np.int64)
    if len(starts) and (int((starts + lengths).max()) > len(ids) - 1 or int(starts.min()) < 0):
        raise InputError("a stream runs past the text: need 0 <= starts and starts + lengths <= len(ids) - 1")
    hidden = codes["Wh"].shape[1]
    fh, fx = act.frac_bits, x_act.frac_bits
    fwx, fwh, fb = fmts["Wx"].frac_bits, fmts["Wh"].frac_bits, fmts["b"].frac_bits
    big = max(fx + fwx, fh + fwh, fb)
    fwf, fbf = fmts["Wf"].frac_bits, fmts["bf"].frac_bits
    fo = max(fh + fwf, fbf)
    before = reset == "before"
    fbn = fh + fwh if before else fmts["b_hn"].frac_bits
    top_n = max(fh + fwh, fbn)
    b_hn = np.zeros(hidden, np.int64) if before else np.asarray(codes["b_hn"], np.int64)
    # the x-part of every character: exact int64 sums from the integer GEMM kernel
    tx = kfixed.matmul(np.ascontiguousarray(codes["E"]), x_act, np.ascontiguousarray(codes["Wx"]), fmts["Wx"],
                       acc_dtype=np.int64)
    wh_t = np.ascontiguousarray(np.asarray(codes["Wh"], np.int32).T)
    wf_t = np.ascontiguousarray(np.asarray(codes["Wf"], np.int32).T)
    n_in = codes["Wx"].shape[1]
    bound = lambda q, w, k: k * (1 << (q.bits - 1)) * (1 << (w.bits - 1))  # noqa: E731  (largest |sum|)
    for value, shift in ((bound(x_act, fmts["Wx"], n_in), big - fx - fwx),
                         (bound(act, fmts["Wh"], hidden), big - fh - fwh),
                         (1 << (fmts["b"].bits - 1), big - fb), (bound(act, fmts["Wf"], hidden), fo - fh - fwf)):
        if value.bit_length() + shift > 52:
            raise RangeError("these formats give accumulators beyond 2**52 once aligned; use fewer fractional bits")
    pred = np.full(len(ids), -1, np.int64)
    last = np.empty((len(starts), hidden), np.float32) if final is None else final
    events = np.zeros(4, np.int64)
    _run_int(ids, starts, lengths, tx, big - fx - fwx, wh_t, big - fh - fwh, np.asarray(codes["b"], np.int64),
             big - fb, b_hn, top_n - fbn, top_n, before, wf_t, fo - fh - fwf, np.asarray(codes["bf"], np.int64),
             fo - fbf, fo, big, act.bits, act.frac_bits, 2.0**act.frac_bits, FIXED_ROUNDING[act.rounding],
             _coded_state(state), pred, last, events)
    if counts is not None:
        counts.saturated += int(events[1])
    return pred
