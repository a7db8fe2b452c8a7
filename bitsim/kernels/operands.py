"""Integer operands of the GEMM kernels (fixed-point, shift-add, sign-add, uint8): the checks they share.

Each function returns its operand in the kernels' layout (a C-contiguous 2-D array) or raises a bitsim
error that names the operand; the packed-word operands are :mod:`bitsim.kernels.words`'.
"""

import numpy as np

from ..errors import InputError, InputTypeError

FIXED_DTYPES = (np.int8, np.int16, np.int32)  # the containers of fixed-point codes


def as_codes(x, name, dtypes, expected, fix, shape="a 2-D array of codes (rows, K)"):
    """Return ``x`` as a C-contiguous 2-D array of integer codes, or raise naming the operand.

    Parameters
    ----------
    x : array_like
    name : str
        The operand, for the messages (e.g. ``'matmul: a'``).
    dtypes : tuple of numpy dtypes
        The dtypes taken.
    expected, fix : str
        What the type error says was expected, and how to get it.
    shape : str
        What the shape error says was expected.

    Returns
    -------
    numpy.ndarray, shape (rows, K)

    Raises
    ------
    InputTypeError
        If the dtype is not one of ``dtypes``.
    InputError
        If ``x`` is not 2-D.
    """
    x = np.asarray(x)
    if x.dtype not in dtypes:
        raise InputTypeError(f"{name}: expected {expected}, got {x.dtype}; {fix}")
    if x.ndim != 2:
        raise InputError(f"{name}: expected {shape}, got shape {x.shape}")
    return np.ascontiguousarray(x)


def check_k(name, a, b, names=("x", "w"), tail=" (pass the weight matrix as (out, in))"):
    """Raise unless the 2-D operands ``a`` and ``b`` (one row per output column) have the same K.

    Parameters
    ----------
    name : str
        The function, for the message.
    a, b : numpy.ndarray
    names : (str, str)
        The operands' names.
    tail : str
        Appended to the message.

    Raises
    ------
    InputError
        If ``a.shape[1] != b.shape[1]``.
    """
    if a.shape[1] != b.shape[1]:
        raise InputError(
            f"{name}: {names[0]} has K={a.shape[1]} columns but {names[1]} has K={b.shape[1]}; "
            f"{names[1]} holds one row per output column{tail}"
        )


def as_acc_dtype(acc_dtype):
    """Return ``acc_dtype`` as a numpy dtype, refusing all but int32 and int64.

    Raises
    ------
    InputTypeError
        For any other dtype.
    """
    acc_dtype = np.dtype(acc_dtype)
    if acc_dtype not in (np.int32, np.int64):
        raise InputTypeError(f"acc_dtype must be numpy.int32 or numpy.int64, got {acc_dtype}")
    return acc_dtype


def max_abs(x):
    """The largest magnitude in an integer array, as a Python int (0 when empty; exact for every int64 and uint64
    value and for arrays of Python ints)."""
    x = np.asarray(x)
    return max(abs(int(x.min())), abs(int(x.max()))) if x.size else 0
