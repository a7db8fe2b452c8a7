"""Row-wise products: one dot product per row of two operands of the same shape, for reference models.

A hardware unit that takes one transaction at a time (a multiply-accumulate over one vector, a shift-add over
one vector) is checked against one product per transaction, not a matrix product. These kernels compute
``out[t] = sum_k term(a[t, k], b[t, k])`` for every row ``t`` by the rules of the GEMM kernels:

* :func:`row_dot`: ``term = a * b``, the exact int64 sum of fixed-point products
  (:func:`bitsim.kernels.intmatmul.matmul`'s accumulator, before any saturation);
* :func:`row_shift_add`: the shift-add rule of :func:`bitsim.kernels.shift.fixed_log_matmul`
  (``docs/formats.md``, section 11): ``term = (-1)**s * shift(x, e + acc_frac - x_frac)``, a left shift
  exact, a right shift rounded by the rule of :func:`bitsim.formats.fixed.rshift_round`, the sign applied
  after the shift, zero codes adding 0, the exact sum saturated to int32 (counted) unless ``acc_dtype=int64``;
* :func:`mac_requantize`: the MAC unit of ``docs/hardware.md``: :func:`row_dot`, kept in a wrapping
  ``acc_bits``-bit register, then :func:`bitsim.kernels.requantize.requantize` by a per-row right shift.

Short rows are padded with zeros (a zero operand, or a zero log code, adds 0). The slow oracles are in
:mod:`bitsim.reference.rowwise`.
"""

import numba
import numpy as np

from ..errors import InputError, InputTypeError, RangeError
from ..formats.fixed import FixedFormat
from ..formats.launch import launch
from ..formats.log import LogFormat, split
from ..formats.modes import Overflow, Rounding, parse_enum
from .operands import FIXED_DTYPES, as_acc_dtype, as_codes
from .requantize import ROUNDING_CODES, requantize, rshift_round, saturate_int32
from .shift import shift_bound

__all__ = ["row_dot", "row_shift_add", "mac_requantize", "wrap_int"]

INT64_MAX = 2**63 - 1
PARALLEL_MIN_WORK = 2**18


@numba.njit(cache=True, parallel=True)
def _row_dot(a, b, out):
    for t in numba.prange(a.shape[0]):
        s = np.int64(0)
        for k in range(a.shape[1]):
            s += np.int64(a[t, k]) * np.int64(b[t, k])
        out[t] = s


@numba.njit(cache=True, parallel=True)
def _row_shift_add(x, codes, neg, amount, zero, mode, out):
    for t in numba.prange(x.shape[0]):
        s = np.int64(0)
        for k in range(x.shape[1]):
            c = codes[t, k]
            if zero[c]:
                continue
            v = np.int64(x[t, k])
            a = amount[c]
            v = v << a if a >= 0 else rshift_round(v, min(-a, 63), mode)
            s += -v if neg[c] else v
        out[t] = s


def _same_shape(a, b, names):
    if a.shape != b.shape:
        raise InputError(f"{names[0]} and {names[1]} must have the same shape (transactions, K); "
                         f"got {a.shape} and {b.shape}")


def row_dot(a, b):
    """Exact int64 dot product of each row pair: ``out[t] = sum_k a[t, k] * b[t, k]``.

    Parameters
    ----------
    a, b : numpy.ndarray of int8, int16 or int32, shape (T, K)

    Returns
    -------
    numpy.ndarray of int64, shape (T,)

    Raises
    ------
    TypeError
        If an operand is not int8, int16 or int32.
    ValueError
        If the shapes differ, or if K is so large that the sum could overflow int64.

    Examples
    --------
    >>> row_dot(np.array([[3, -2], [-128, -128]], np.int8), np.array([[5, 7], [-128, 1]], np.int8))
    array([   1, 16256])
    """
    fix = "pass fixed-point codes (bitsim.formats.fixed.quantize)"
    a = as_codes(a, "row_dot: a", FIXED_DTYPES, "int8, int16 or int32 codes", fix)
    b = as_codes(b, "row_dot: b", FIXED_DTYPES, "int8, int16 or int32 codes", fix)
    _same_shape(a, b, ("row_dot: a", "row_dot: b"))
    if a.shape[1] << (a.dtype.itemsize * 8 + b.dtype.itemsize * 8 - 2) > INT64_MAX:
        raise InputError(f"row_dot: K={a.shape[1]} products of {a.dtype} and {b.dtype} can overflow int64")
    out = np.zeros(a.shape[0], dtype=np.int64)
    if a.size:
        launch(_row_dot, a.size, a.astype(np.int32, copy=False), b.astype(np.int32, copy=False), out,
               min_work=PARALLEL_MIN_WORK)
    return out


def row_shift_add(x, x_frac, codes, fmt, *, acc_frac=None, rounding="floor", acc_dtype=np.int32, counts=None):
    """Shift-add product of each row of fixed-point codes with the same row of log codes.

    ``out[t] = sum_k (-1)**s[t, k] * shift(x[t, k], e[t, k] + acc_frac - x_frac)``: the rule of
    :func:`bitsim.kernels.shift.fixed_log_matmul`, one row at a time (``row_shift_add(x, f, w, fmt)[t]``
    equals ``fixed_log_matmul(x[t:t+1], f, w[t:t+1], fmt)[0, 0]``).

    Parameters
    ----------
    x : numpy.ndarray of int8, int16 or int32, shape (T, K)
        Fixed-point codes with ``x_frac`` fractional bits.
    x_frac : int
    codes : numpy.ndarray of uint8, shape (T, K)
        Log codes of ``fmt``.
    fmt : LogFormat
    acc_frac : int, optional
        Fractional bits of the result; default ``x_frac``.
    rounding : Rounding or str
        Rounding of right shifts, any deterministic mode ('floor' is the arithmetic shift ``x >> -t``).
    acc_dtype : {numpy.int32, numpy.int64}
        int32 saturates the exact sum, counted in ``counts.saturated``.
    counts : Counts, optional

    Returns
    -------
    numpy.ndarray of ``acc_dtype``, shape (T,)

    Raises
    ------
    TypeError
        Wrong dtypes, a format that is not a LogFormat, or non-integer bit counts.
    ValueError
        Shapes that differ, codes that do not fit ``fmt``, stochastic rounding.
    OverflowError
        If a left shift summed over K could overflow int64 (the bound of
        :func:`bitsim.kernels.shift.shift_bound`).

    Examples
    --------
    >>> from bitsim.formats.log import encode
    >>> w = encode(np.array([[0.5, -0.25]], dtype=np.float32))       # 2**-1, -2**-2
    >>> row_shift_add(np.array([[3, 5]], np.int8), 0, w, LogFormat())  # (3 >> 1) - (5 >> 2)
    array([0], dtype=int32)
    """
    if not isinstance(fmt, LogFormat):
        raise InputTypeError(f"row_shift_add: fmt must be a bitsim.formats.log.LogFormat, got {type(fmt).__name__}")
    for value, name in ((x_frac, "x_frac"), (acc_frac, "acc_frac")):
        if value is not None and (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))):
            raise InputTypeError(f"row_shift_add: {name} must be an integer number of fractional bits, got {value!r}")
    x_frac = int(x_frac)
    acc_frac = x_frac if acc_frac is None else int(acc_frac)
    rounding = parse_enum(Rounding, rounding)
    if rounding is Rounding.STOCHASTIC:
        raise InputError("row_shift_add: stochastic rounding of shifted terms is not supported; "
                         "choose 'floor', 'nearest_up' or another deterministic mode")
    acc_dtype = as_acc_dtype(acc_dtype)
    x = as_codes(x, "row_shift_add: x", FIXED_DTYPES, "int8, int16 or int32 fixed-point codes",
                 "quantize with bitsim.formats.fixed.quantize(...)")
    codes = as_codes(codes, "row_shift_add: codes", (np.uint8,), "uint8 log codes",
                     "encode with bitsim.formats.log.encode(x, fmt)")
    _same_shape(x, codes, ("row_shift_add: x", "row_shift_add: codes"))
    if codes.size and int(codes.max()) >> fmt.bits:
        raise InputError(f"row_shift_add: code {int(codes.max())} does not fit the {fmt.bits}-bit {fmt.name} code")
    sign, exponent, zero = split(np.arange(1 << fmt.bits, dtype=np.uint8), fmt)
    amount = exponent.astype(np.int64) + acc_frac - x_frac
    present = np.bincount(codes.reshape(-1), minlength=1 << fmt.bits) > 0
    live = present & ~zero
    t_max = int(amount[live].max()) if live.any() else 0
    if shift_bound(x.dtype, x.shape[1], t_max) > INT64_MAX:
        raise RangeError(f"row_shift_add: a {x.dtype} code shifted left by {t_max} bits, summed over "
                         f"K={x.shape[1]}, can overflow int64; lower acc_frac (now {acc_frac})")
    out = np.zeros(x.shape[0], dtype=np.int64)
    if x.size:
        launch(_row_shift_add, x.size, x.astype(np.int32, copy=False), codes, sign.astype(np.uint8), amount,
               zero.astype(np.uint8), ROUNDING_CODES[rounding], out, min_work=PARALLEL_MIN_WORK)
    return out if acc_dtype == np.int64 else saturate_int32(out, counts)


def wrap_int(values, bits):
    """Keep the low ``bits`` bits of int64 values as two's complement: a ``bits``-bit register that wraps.

    The WRAP overflow rule of ``docs/formats.md``, section 4: ``v mod 2**bits``, mapped to
    ``-2**(bits-1) .. 2**(bits-1) - 1``.

    Examples
    --------
    >>> wrap_int(np.array([2**31, -2**31 - 1, 5]), 32)
    array([-2147483648,  2147483647,           5])
    """
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 64:
        raise InputError(f"wrap_int: bits must be an int in 2..64, got {bits!r}")
    v = np.asarray(values, dtype=np.int64)
    if bits == 64:
        return v.copy()
    lo = np.int64(-(1 << (bits - 1)))
    return ((v - lo) & np.int64((1 << bits) - 1)) + lo


def mac_requantize(a, b, shift, out_fmt, acc_bits=32, counts=None):
    """The MAC unit's results: a wrapping ``acc_bits``-bit accumulator, then a per-row requantize.

    ``acc[t] = wrap_int(row_dot(a, b)[t], acc_bits)`` and
    ``q[t] = requantize(acc[t], shift[t], out_fmt)``: the rounding right shift by ``shift[t]`` with
    ``out_fmt.rounding`` (``out_fmt.frac_bits`` is 0: the shift is the only rescaling), then
    ``out_fmt.overflow`` (saturate or wrap, counted), as :func:`bitsim.kernels.requantize.requantize`.

    Parameters
    ----------
    a, b : numpy.ndarray of int8 or int16, shape (T, K)
        Operand codes; rows shorter than K are padded with zeros.
    shift : numpy.ndarray of ints, shape (T,)
        Right shifts, 0..62.
    out_fmt : FixedFormat
        The result format, with ``frac_bits == 0`` and a deterministic rounding mode.
    acc_bits : int
        Width of the wrapping accumulator register (32 by default).
    counts : Counts, optional
        Receives the saturated or wrapped results.

    Returns
    -------
    acc : numpy.ndarray of int64, shape (T,)
    q : numpy.ndarray of ``out_fmt.dtype``, shape (T,)

    Examples
    --------
    >>> a = np.array([[100, 100], [-7, 0]], np.int8); b = np.array([[100, 2], [1, 0]], np.int8)
    >>> mac_requantize(a, b, np.array([4, 1]), FixedFormat(8, 0, rounding="nearest_even"))
    (array([10200,    -7]), array([127,  -4], dtype=int8))
    """
    if not isinstance(out_fmt, FixedFormat):
        raise InputTypeError(f"mac_requantize: out_fmt must be a FixedFormat, got {type(out_fmt).__name__}")
    if out_fmt.frac_bits != 0 or out_fmt.rounding is Rounding.STOCHASTIC or out_fmt.overflow is Overflow.ERROR:
        raise InputError(f"mac_requantize: out_fmt must have frac_bits 0, a deterministic rounding and overflow "
                         f"'saturate' or 'wrap'; got {out_fmt!r}")
    acc = wrap_int(row_dot(a, b), acc_bits)
    shift = np.asarray(shift)
    if shift.dtype.kind not in "iu" or shift.shape != acc.shape:
        raise InputError(f"mac_requantize: shift must be {acc.shape[0]} integers, got {shift.dtype} {shift.shape}")
    if shift.size and (shift.min() < 0 or shift.max() > 62):
        raise InputError("mac_requantize: shifts must be in 0..62")
    q = np.zeros(acc.shape, dtype=out_fmt.dtype)
    for s in np.unique(shift):
        rows = shift == s
        q[rows] = requantize(acc[rows], int(s), out_fmt, counts=counts)
    return acc, q
