"""Slow, obvious uint8 x int8 GEMM in numpy int64: the oracle of :mod:`bitsim.kernels.u8`.

Every product of a uint8 and an int8 is below 2**15 in magnitude and numpy's int64 sum over K
is exact for K < 2**48, so ``x.astype(int64) @ w.astype(int64).T`` is the exact integer
product (numpy does not use BLAS for integers, so no float rounding is involved).
"""

import numpy as np

from ..errors import InputTypeError
from .byte_codes import uint8_codes
from .xnor import threshold_pack

__all__ = ["u8s8_matmul", "float_u8s8_matmul", "float_u8s8_signs"]


def u8s8_matmul(x, w):
    """Oracle of :func:`bitsim.kernels.u8.u8s8_matmul`: the exact int64 product ``x @ w.T``.

    Parameters
    ----------
    x : array_like of uint8, shape (M, K)
    w : array_like of int8, shape (N, K)

    Returns
    -------
    numpy.ndarray of int64, shape (M, N)
    """
    x = np.asarray(x)
    w = np.asarray(w)
    if x.dtype != np.uint8 or w.dtype != np.int8:
        raise InputTypeError(f"u8s8_matmul oracle expects uint8 x and int8 w, got {x.dtype} and {w.dtype}")
    return x.astype(np.int64) @ w.astype(np.int64).T


def float_u8s8_matmul(x, w):
    """Oracle of :func:`bitsim.kernels.u8.float_u8s8_matmul`: the oracle codes of ``x`` times ``w``, or None.

    Parameters
    ----------
    x : array_like of float32, shape (M, K)
    w : array_like of int8, shape (N, K)

    Returns
    -------
    numpy.ndarray of int64, shape (M, N), or None
        None when an element of ``x`` is not a whole number 0..255
        (:func:`bitsim.reference.byte_codes.uint8_codes`).
    """
    codes = uint8_codes(x)
    return None if codes is None else u8s8_matmul(codes, w)


def float_u8s8_signs(x, w, thresholds):
    """Oracle of :func:`bitsim.kernels.u8.float_u8s8_signs`: the oracle product and its packed compares
    ``acc >= thresholds`` in Python ints (:func:`bitsim.reference.xnor.threshold_pack`), or None.

    Parameters
    ----------
    x : array_like of float32, shape (M, K)
    w : array_like of int8, shape (N, K)
    thresholds : array_like of integers, shape (N,)

    Returns
    -------
    tuple of (numpy.ndarray of int64, numpy.ndarray of uint64) or None
    """
    acc = float_u8s8_matmul(x, w)
    return None if acc is None else (acc, threshold_pack(acc, thresholds))
