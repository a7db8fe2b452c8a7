"""Integer GEMM through an accumulator of a given width that wraps or saturates at every addition.

The rule (``docs/formats.md`` section 11, "Narrow accumulators"), for ``out = a @ b.T`` with integer codes
``a`` (M, K) and ``b`` (N, K):

* the accumulator of output ``(i, j)`` starts at 0 and takes the products ``a[i, k] * b[j, k]`` one at a time,
  ``k = 0, 1, ..., K - 1`` (ascending); each product is exact;
* after every addition the ``width``-bit accumulator applies its ``edge``: ``'wrap'`` keeps the low
  ``width`` bits as a two's-complement number (the result is the exact sum modulo ``2**width``, the same in
  every order), ``'saturate'`` clamps to ``[-2**(width-1), 2**(width-1) - 1]`` (the result depends on the
  order, which is why it is fixed above);
* every addition whose exact result lay outside that range is one event: counted in
  ``Counts.wrapped`` (wrap) or ``Counts.saturated`` (saturate). Adding a zero product is never an event
  (the accumulator is always in range), so zero codes are skipped.

The slow oracle is :func:`bitsim.reference.accumulate.accumulate_matmul` (Python ints).
"""

import numba
import numpy as np

from ..errors import InputError, InputTypeError
from .operands import max_abs

__all__ = ["EDGES", "MAX_WIDTH", "accumulate_matmul", "accumulator_range"]

EDGES = ("wrap", "saturate")
MAX_WIDTH = 62  # the running sum plus one product stays inside int64
MAX_PRODUCT = 2**61


def accumulator_range(width):
    """``(lo, hi)``: the values a ``width``-bit two's-complement accumulator holds."""
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


@numba.njit(cache=True, fastmath=True)  # pure integer code: fastmath cannot change a result
def _saturate(a, b, lo, hi, out):
    m, k = a.shape
    n = b.shape[1]
    events = 0
    for i in range(m):
        acc = out[i]
        for kk in range(k):
            x = a[i, kk]
            if x == 0:
                continue
            for j in range(n):
                s = acc[j] + x * b[kk, j]
                c = min(max(s, lo), hi)
                events += s != c
                acc[j] = c
    return events


@numba.njit(cache=True, fastmath=True)
def _wrap(a, b, half, mask, out):
    m, k = a.shape
    n = b.shape[1]
    events = 0
    for i in range(m):
        acc = out[i]
        for kk in range(k):
            x = a[i, kk]
            if x == 0:
                continue
            for j in range(n):
                s = acc[j] + x * b[kk, j]
                c = ((s + half) & mask) - half
                events += s != c
                acc[j] = c
    return events


def _codes(x, name):
    x = np.asarray(x)
    if x.dtype.kind not in "iu" or x.ndim != 2:
        raise InputTypeError(f"accumulate_matmul: {name} must be a 2-D integer array of codes, got {x.dtype} "
                             f"with shape {x.shape}")
    return x


def accumulate_matmul(a, b, width, edge, counts=None):
    """``a @ b.T`` through a ``width``-bit accumulator that wraps or saturates at every addition (module rule).

    Parameters
    ----------
    a : numpy.ndarray of int, shape (M, K)
    b : numpy.ndarray of int, shape (N, K)
    width : int
        Accumulator bits including the sign, 2..62.
    edge : {'wrap', 'saturate'}
    counts : Counts, optional
        Receives the events: ``wrapped`` or ``saturated``.

    Returns
    -------
    numpy.ndarray of int64, shape (M, N)
        Every value lies in the accumulator's range.

    Raises
    ------
    InputError
        Unknown edge, width outside 2..62, K that differs, or codes whose products could reach 2**61.
    """
    a, b = _codes(a, "a"), _codes(b, "b")
    if edge not in EDGES:
        raise InputError(f"unknown accumulator edge {edge!r}; choose one of {list(EDGES)}")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or not 2 <= width <= MAX_WIDTH:
        raise InputError(f"accumulator width must be an integer in 2..{MAX_WIDTH}, got {width!r}")
    if a.shape[1] != b.shape[1]:
        raise InputError(f"accumulate_matmul: a has K = {a.shape[1]} columns but b has {b.shape[1]}")
    if max_abs(a) * max_abs(b) >= MAX_PRODUCT:
        raise InputError("accumulate_matmul: a product of these codes could reach 2**61; use narrower codes")
    width = int(width)
    lo, hi = accumulator_range(width)
    a64 = np.ascontiguousarray(a, dtype=np.int64)
    bt = np.ascontiguousarray(b.T, dtype=np.int64)
    out = np.zeros((a.shape[0], b.shape[0]), np.int64)
    if edge == "saturate":
        events = _saturate(a64, bt, np.int64(lo), np.int64(hi), out)
    else:
        events = _wrap(a64, bt, np.int64(1 << (width - 1)), np.int64((1 << width) - 1), out)
    if counts is not None:
        if edge == "saturate":
            counts.saturated += int(events)
        else:
            counts.wrapped += int(events)
    return out


