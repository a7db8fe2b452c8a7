"""An XNOR-popcount product and the sign compares after it in one pass: a BNN's hidden layer.

The rule of :func:`xnor_signs`: ``acc = xnor_gemm(a, b, n)`` (``acc[i, j]`` the dot product of the
-1/+1 rows ``a[i]`` and ``b[j]`` of length ``n``), and ``signs[i]`` the packed words (bitorder
'little', padding bits 0) of ``acc[i, j] >= thresholds[j]`` (bit 1 = +1). Both are returned; the
accumulators are exact integers and every compare is an integer compare, so the results do not
depend on the thread count. The slow oracles are :func:`bitsim.reference.xnor.xnor_gemm` and
:func:`bitsim.reference.xnor.threshold_pack`.
"""

import numba
import numpy as np

from ..errors import InputError, InputTypeError
from ..formats.binary import WORD_BITS, n_words
from ..formats.launch import launch
from .bits import popcount
from .words import as_length, as_words

__all__ = ["xnor_signs"]

PARALLEL_MIN_WORK = 2**19  # about 0.3 ms on one core
ROWS = 16  # rows of a task


@numba.njit(cache=True, parallel=True)
def _xnor_signs_one_word(a, bt, n, t, acc, out):
    # rows of one word: the popcounts of a row against every channel in one loop, then the compares
    b1 = bt[0]
    channels = bt.shape[1]
    for i in numba.prange(a.shape[0]):
        x = a[i, 0]
        row = acc[i]
        for c in range(channels):
            row[c] = n - 2 * np.int32(popcount(x ^ b1[c]))
        for word in range(out.shape[1]):
            first = word * WORD_BITS
            bits = np.uint64(0)
            for c in range(min(WORD_BITS, channels - first)):
                bits |= np.uint64(row[first + c] >= t[first + c]) << np.uint64(c)
            out[i, word] = bits


@numba.njit(cache=True, parallel=True)
def _xnor_signs(a, bt, n, t, acc, out):
    # bt (words, channels): the weights transposed, so that the popcounts of one input word against
    # every channel are one loop over contiguous words, which LLVM vectorizes
    m, words = a.shape
    channels = bt.shape[1]
    for block in numba.prange((m + ROWS - 1) // ROWS):
        s = np.empty(channels, np.int64)
        for i in range(block * ROWS, min(m, block * ROWS + ROWS)):
            row = a[i]
            s[:] = 0
            for k in range(words):
                x = row[k]
                bk = bt[k]
                for c in range(channels):
                    s[c] += popcount(x ^ bk[c])
            for word in range(out.shape[1]):
                first = word * WORD_BITS
                bits = np.uint64(0)
                for c in range(min(WORD_BITS, channels - first)):
                    v = n - 2 * s[first + c]
                    acc[i, first + c] = v
                    bits |= np.uint64(v >= t[first + c]) << np.uint64(c)
                out[i, word] = bits


def xnor_signs(a, b, n, thresholds):
    """Accumulators of a packed -1/+1 product and their packed compares with per-channel thresholds.

    Parameters
    ----------
    a : numpy.ndarray of uint64, shape (M, ceil(n / 64))
        Packed -1/+1 rows (:func:`bitsim.formats.binary.pack`), padding bits 0.
    b : numpy.ndarray of uint64, shape (N, ceil(n / 64))
        Packed -1/+1 rows of the weights (out, in).
    n : int
        The reduction length.
    thresholds : numpy.ndarray of int64, shape (N,)
        Bit ``j`` of a row is 1 where ``acc[i, j] >= thresholds[j]``.

    Returns
    -------
    acc : numpy.ndarray of int32, shape (M, N)
    signs : numpy.ndarray of uint64, shape (M, ceil(N / 64))

    Examples
    --------
    >>> from bitsim.formats.binary import pack
    >>> acc, signs = xnor_signs(pack([[1, -1, 1]]), pack([[1, 1, 1], [-1, 1, -1]]), 3, np.array([0, -3]))
    >>> acc, signs
    (array([[ 1, -3]], dtype=int32), array([[3]], dtype=uint64))
    """
    n = as_length(n)
    if n > 2**31 - 1:
        raise InputError(f"xnor_signs: a reduction of {n} values does not fit the int32 accumulators")
    a = as_words(a, "xnor_signs: a", n, 2, "little")
    b = as_words(b, "xnor_signs: b", n, 2, "little")
    t = np.asarray(thresholds)
    if t.dtype != np.int64 or t.shape != (b.shape[0],):
        raise InputTypeError(f"xnor_signs: thresholds must be int64 of shape ({b.shape[0]},), got {t.dtype} of "
                             f"shape {t.shape}")
    acc = np.empty((a.shape[0], b.shape[0]), np.int32)
    out = np.empty((a.shape[0], n_words(b.shape[0])), np.uint64)
    if acc.size:
        one = a.shape[1] == 1
        launch(_xnor_signs_one_word if one else _xnor_signs, acc.size * a.shape[1], a, np.ascontiguousarray(b.T), n,
               np.ascontiguousarray(t), acc, out, min_work=PARALLEL_MIN_WORK, tasks=not one)
    else:
        out[:] = 0
    return acc, out
