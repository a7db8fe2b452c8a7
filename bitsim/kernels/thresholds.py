"""Multi-threshold counts of integer codes: ``count[i, c]`` = how many thresholds of channel ``c`` the code meets.

The rule of :func:`threshold_counts`: ``out[i, c] = sum_j (x[i, c] >= t[c, j])`` for integer codes ``x`` and
integer thresholds ``t`` (one row per channel, or a single row for every channel), then mapped to
``step * count + offset``. Pure integer compares, so results do not depend on the thread count. The slow
oracle is :func:`bitsim.reference.thresholds.threshold_counts`.
"""

import numba
import numpy as np

from ..errors import InputError, InputTypeError
from ..formats.launch import launch

__all__ = ["threshold_counts"]

PARALLEL_MIN_WORK = 2**16
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
