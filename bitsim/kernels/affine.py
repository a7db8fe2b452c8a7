"""Per-channel integer affine maps of integer codes: a network's last ``Mul`` and ``Add`` by constants.

The rule of :func:`affine_codes`: ``out[i, c] = x[i, c] * factor[c] + offset[c]``, the exact integer, as
int64. The wrapper proves that no value can leave int64 (``max|x| * max|factor| + max|offset| < 2**63``)
before it runs the kernel, and raises otherwise. Pure integer arithmetic, so results do not depend on
the thread count. The slow oracle is :func:`bitsim.reference.affine.affine_codes`.
"""

import numba
import numpy as np

from ..errors import InputError, InputTypeError
from ..formats.launch import launch
from .operands import max_abs

__all__ = ["affine_codes"]

PARALLEL_MIN_WORK = 2**18
INT_DTYPES = (np.int8, np.int16, np.int32, np.int64)
INT64_MAX = 2**63 - 1


@numba.njit(cache=True, parallel=True)
def _affine(x, factor, offset, out):
    rows, channels = x.shape
    for i in numba.prange(rows):
        for c in range(channels):
            out[i, c] = np.int64(x[i, c]) * factor[c] + offset[c]


def affine_codes(x, factor, offset):
    """``x * factor + offset`` per channel, exactly, as int64.

    Parameters
    ----------
    x : numpy.ndarray of int8, int16, int32 or int64, shape (M, C)
        Integer codes, channels along axis 1.
    factor, offset : numpy.ndarray of int64, shape (C,)
        One factor and one offset per channel.

    Returns
    -------
    numpy.ndarray of int64, shape (M, C)

    Raises
    ------
    InputTypeError
        If an operand is not an integer array of the types above.
    InputError
        If the shapes do not match, or a result could leave int64.

    Examples
    --------
    >>> affine_codes(np.array([[1, -2], [3, 0]], np.int32), np.array([8, 1]), np.array([0, -5]))
    array([[ 8, -7],
           [24, -5]])
    """
    x = np.asarray(x)
    if x.dtype not in INT_DTYPES or x.ndim != 2:
        raise InputTypeError(f"affine_codes: x must be a 2-D array of int8, int16, int32 or int64 codes, got "
                             f"{x.dtype} of shape {x.shape}")
    factor, offset = np.asarray(factor), np.asarray(offset)
    for name, v in (("factor", factor), ("offset", offset)):
        if v.dtype != np.int64 or v.shape != (x.shape[1],):
            raise InputTypeError(f"affine_codes: {name} must be int64 of shape ({x.shape[1]},), got {v.dtype} of "
                                 f"shape {v.shape}")
    if max_abs(x) * max_abs(factor) + max_abs(offset) > INT64_MAX:
        raise InputError("affine_codes: a result could leave int64; compute it with Python integers")
    out = np.empty(x.shape, np.int64)
    if out.size:
        launch(_affine, out.size, np.ascontiguousarray(x), factor, offset, out, min_work=PARALLEL_MIN_WORK)
    return out
