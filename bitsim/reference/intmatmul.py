"""Slow, obvious fixed-point GEMM in Python integers: the oracle of :mod:`bitsim.kernels.intmatmul`.

The exact sum of exact products is computed with Python ints (numpy object arrays), then
saturated to int32 (counted) or kept as int64, then requantized by
:func:`bitsim.formats.fixed.requantize`, the documented rule.
"""

import numpy as np

from ..formats.fixed import requantize

__all__ = ["exact_matmul", "matmul", "requantize", "saturate_int32"]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def exact_matmul(a, b):
    """``A @ B.T`` of integer arrays, as a numpy object array of Python ints."""
    a = np.asarray(a).astype(object)
    b = np.asarray(b).astype(object)
    out = np.zeros((a.shape[0], b.shape[0]), dtype=object)
    for i in range(a.shape[0]):
        for j in range(b.shape[0]):
            out[i, j] = sum(int(u) * int(v) for u, v in zip(a[i], b[j]))
    return out


def saturate_int32(values, counts=None):
    """Clamp Python ints to int32, counting the clamped ones."""
    flat = [int(v) for v in np.asarray(values, dtype=object).reshape(-1)]
    clamped = [min(max(v, INT32_MIN), INT32_MAX) for v in flat]
    if counts is not None:
        counts.saturated += sum(c != v for c, v in zip(clamped, flat))
    return np.array(clamped, dtype=np.int32).reshape(np.shape(values))


def matmul(a, fmt_a, b, fmt_b, out_fmt=None, acc_dtype=np.int32, rng=None, counts=None):
    """Oracle of :func:`bitsim.kernels.intmatmul.matmul`."""
    exact = exact_matmul(a, b)
    if np.dtype(acc_dtype) == np.int32:
        acc = saturate_int32(exact, counts)
    else:
        acc = exact.astype(np.int64)
    if out_fmt is None:
        return acc
    return requantize(acc, fmt_a.frac_bits + fmt_b.frac_bits, out_fmt, rng, counts)
