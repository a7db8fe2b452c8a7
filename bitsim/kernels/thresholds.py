"""Multi-threshold counts of integer codes: ``count[i, c]`` = how many thresholds of channel ``c`` the code meets.

The rule of :func:`threshold_counts`: ``out[i, c] = sum_j (x[i, c] >= t[c, j])`` for integer codes ``x`` and
integer thresholds ``t`` (one row per channel, or a single row for every channel), then mapped to
``step * count + offset``. Pure integer compares, so results do not depend on the thread count. The slow
oracle is :func:`bitsim.reference.thresholds.threshold_counts`.

The rule of :func:`float_signs`: bit ``c`` of row ``i`` (packed, bitorder 'little', padding bits 0) is
``x[i, c] >= t[c]`` for float32 ``x`` and float64 thresholds ``t``, an exact comparison of the two
values (made as ``x >= t32`` with :func:`float32_thresholds`, which is the same compare); the rows holding a
value that is not finite are counted. Its oracle is NumPy's ``x >= t`` packed by
:func:`bitsim.formats.binary.pack`.
"""

import numba
import numpy as np

from ..errors import InputError, InputTypeError
from ..formats.launch import launch

__all__ = ["threshold_counts", "float_signs", "float32_thresholds"]

PARALLEL_MIN_WORK = 2**16
ROWS = 64  # rows of a task of float_signs
WORD_BITS = 64
FLOAT32_MAX = np.float32(np.finfo(np.float32).max)
PACK8 = np.uint64(0x0102040810204080)  # (8 bytes of 0/1 * PACK8) >> 56: byte b of the word to bit b
INT_DTYPES = (np.int8, np.int16, np.int32, np.int64)


@numba.njit(cache=True, parallel=True)
def _counts(x, t, step, offset, out):
    rows, channels = x.shape
    per_channel = t.shape[0] > 1
    for i in numba.prange(rows):
        for c in range(channels):
            v = np.int64(x[i, c])
            row = c if per_channel else 0
            n = 0
            for j in range(t.shape[1]):
                if v >= t[row, j]:
                    n += 1
            out[i, c] = n * step + offset


def threshold_counts(x, thresholds, step=1, offset=0, out_dtype=np.int32):
    """``step * (number of thresholds met) + offset`` for every code of ``x`` (channels on the last axis).

    Parameters
    ----------
    x : numpy.ndarray of int8, int16, int32 or int64, shape (rows, C)
    thresholds : numpy.ndarray of int64, shape (C, B) or (1, B)
        The code is counted for each threshold it is greater than or equal to.
    step, offset : int
        The output mapping; ``step * B + offset`` and ``offset`` must fit ``out_dtype``.
    out_dtype : numpy dtype
        A signed integer type.

    Returns
    -------
    numpy.ndarray of out_dtype, shape (rows, C)

    Examples
    --------
    >>> threshold_counts(np.array([[-3, 0, 5]], np.int32), np.array([[0, 4]]), 2, -1)
    array([[-1,  1,  3]], dtype=int32)
    """
    x = np.asarray(x)
    if x.dtype not in INT_DTYPES or x.ndim != 2:
        raise InputTypeError(f"threshold_counts: x must be a 2-D array of signed integers, got {x.dtype} "
                             f"of shape {x.shape}")
    t = np.asarray(thresholds)
    if t.dtype != np.int64 or t.ndim != 2 or t.shape[0] not in (1, x.shape[1]):
        raise InputError(f"threshold_counts: thresholds must be int64 of shape ({x.shape[1]}, B) or (1, B), got "
                         f"{t.dtype} of shape {t.shape}")
    out_dtype = np.dtype(out_dtype)
    info = np.iinfo(out_dtype)
    ends = (offset, step * t.shape[1] + offset)
    if min(ends) < info.min or max(ends) > info.max:
        raise InputError(f"threshold_counts: outputs {min(ends)}..{max(ends)} do not fit {out_dtype}")
    out = np.empty(x.shape, out_dtype)
    launch(_counts, x.size * max(1, t.shape[1]), np.ascontiguousarray(x), np.ascontiguousarray(t), int(step),
           int(offset), out, min_work=PARALLEL_MIN_WORK)
    return out


@numba.njit(cache=True, parallel=True)
def _float_signs(x, t32, out, bad):
    # t32: the thresholds as float32 (see float32_thresholds), so that each compare is one float32 compare that
    # LLVM vectorizes; the 0/1 bytes of 8 channels become 8 bits by one multiplication (PACK8)
    rows, channels = x.shape
    for block in numba.prange((rows + ROWS - 1) // ROWS):
        ge = np.zeros(out.shape[1] * WORD_BITS, np.uint8)
        eights = ge.view(np.uint64)
        for i in range(block * ROWS, min(rows, block * ROWS + ROWS)):
            row = x[i]
            n = np.int32(0)
            for c in range(channels):
                v = row[c]
                ge[c] = np.uint8(v >= t32[c])
                n += np.int32(not (abs(v) <= FLOAT32_MAX))  # inf or NaN
            for word in range(out.shape[1]):
                bits = np.uint64(0)
                for b in range(8):
                    bits |= ((eights[8 * word + b] * PACK8) >> np.uint64(56)) << np.uint64(8 * b)
                out[i, word] = bits
            bad[i] = n


def float32_thresholds(thresholds):
    """For each float64 threshold ``t``, the least float32 ``t32 >= t`` (inf above the float32 range; NaN stays NaN).

    For every float32 ``x`` (inf and NaN included), ``x >= t`` exactly when ``x >= t32``: a float32 ``x >= t``
    is a float32 at least ``t``, so at least the least one; and ``x >= t32 >= t`` the other way (no value is
``>= NaN``).

    Examples
    --------
    >>> float32_thresholds(np.array([128.0, 127.5000001, -np.inf]))
    array([128.     , 127.50001,      -inf], dtype=float32)
    """
    t = np.asarray(thresholds, np.float64)
    with np.errstate(over="ignore"):
        t32 = t.astype(np.float32)
    low = t32.astype(np.float64) < t
    t32[low] = np.nextafter(t32[low], np.float32(np.inf))
    return t32


def float_signs(x, thresholds):
    """Packed ``x >= thresholds`` of float32 values, one threshold per channel (channels on the last axis).

    Parameters
    ----------
    x : numpy.ndarray of float32, shape (rows, C)
    thresholds : numpy.ndarray of float64, shape (C,)

    Returns
    -------
    words : numpy.ndarray of uint64, shape (rows, ceil(C / 64))
        Bit ``c`` of a row's words is 1 where ``x[i, c] >= thresholds[c]`` (bitorder 'little', padding 0).
    nonfinite : int
        How many rows hold inf or NaN.

    Examples
    --------
    >>> float_signs(np.array([[0.0, 200.0, 128.0]], np.float32), np.full(3, 128.0))
    (array([[6]], dtype=uint64), 0)
    """
    x = np.asarray(x)
    if x.dtype != np.float32 or x.ndim != 2:
        raise InputTypeError(f"float_signs: x must be a 2-D float32 array, got {x.dtype} of shape {x.shape}")
    t = np.asarray(thresholds)
    if t.dtype != np.float64 or t.shape != (x.shape[1],):
        raise InputError(f"float_signs: thresholds must be float64 of shape ({x.shape[1]},), got {t.dtype} of "
                         f"shape {t.shape}")
    out = np.zeros((x.shape[0], -(-x.shape[1] // WORD_BITS)), np.uint64)
    bad = np.zeros(x.shape[0], np.int32)
    if x.size:
        launch(_float_signs, x.size, np.ascontiguousarray(x), float32_thresholds(t), out, bad,
               min_work=PARALLEL_MIN_WORK * 16, tasks=True)
    return out, int(np.count_nonzero(bad))
