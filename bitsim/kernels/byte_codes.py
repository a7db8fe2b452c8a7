"""Float arrays of whole numbers 0..255 (pixels) as uint8 codes, checked and converted in one pass.

The rule of :func:`uint8_codes`: when every element of ``x`` is a whole number in ``[0, 255]``
(``-0.0`` counts as 0), the result is ``x.astype(np.uint8)``, equal in value to ``x``; when any
element is not (a fraction, a value outside the range, inf or NaN), the result is None. The slow
oracle is :func:`bitsim.reference.byte_codes.uint8_codes`.
"""

import numba
import numpy as np

from ..errors import InputError, InputTypeError
from ..formats.launch import launch

__all__ = ["uint8_codes"]

PARALLEL_MIN_WORK = 2**20
ROWS = 64  # rows of a task


@numba.njit(cache=True, parallel=True)
def _uint8_codes(x, out, bad):
    # branch-free so that LLVM vectorizes the loop; a NaN fails the range test and is counted
    rows = x.shape[0]
    for block in numba.prange((rows + ROWS - 1) // ROWS):
        for i in range(block * ROWS, min(rows, block * ROWS + ROWS)):
            row = x[i]
            o = out[i]
            n = np.int32(0)
            for k in range(row.shape[0]):
                v = row[k]
                c = v if (v >= np.float32(0)) & (v <= np.float32(255)) else np.float32(0)
                code = np.int32(c)
                o[k] = np.uint8(code)
                n += np.int32(np.float32(code) != v)
            bad[i] = n


def uint8_codes(x):
    """``x`` as uint8 codes when every element is a whole number 0..255, else None.

    Parameters
    ----------
    x : numpy.ndarray of float32, shape (rows, K)

    Returns
    -------
    numpy.ndarray of uint8, shape (rows, K), or None

    Examples
    --------
    >>> uint8_codes(np.array([[0.0, 255.0, 3.0]], np.float32))
    array([[  0, 255,   3]], dtype=uint8)
    >>> uint8_codes(np.array([[0.5]], np.float32)) is None
    True
    """
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise InputTypeError(f"uint8_codes: expected float32, got {x.dtype}")
    if x.ndim != 2:
        raise InputError(f"uint8_codes: expected a 2-D array (rows, K), got shape {x.shape}")
    out = np.empty(x.shape, np.uint8)
    bad = np.zeros(x.shape[0], np.int32)
    if x.size:
        launch(_uint8_codes, x.size, np.ascontiguousarray(x), out, bad, min_work=PARALLEL_MIN_WORK, tasks=True)
    return None if bad.any() else out
