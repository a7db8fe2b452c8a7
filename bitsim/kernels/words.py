"""Packed-word operands of the popcount and sign-add kernels: the checks and conversions they share.

Each function returns its operand in the kernels' layout (C-contiguous uint64 words, bitorder
'little', padding bits 0) or raises a bitsim error that names the operand.
"""

import operator

import numpy as np

from ..errors import InputError, InputTypeError
from ..formats.binary import WORD_BITS, check_bitorder, n_words, padding_mask

_REVERSE_BYTE = np.array([int(f"{i:08b}"[::-1], 2) for i in range(256)], dtype=np.uint8)


def as_length(n, what="n"):
    """Return the unpacked length ``n`` as an int, refusing non-integers and negative numbers.

    Parameters
    ----------
    n : int
    what : str
        The name of the length, for the message.

    Returns
    -------
    int
    """
    try:
        n = operator.index(n)
    except TypeError:
        raise InputTypeError(f"{what} must be an integer number of values, got {type(n).__name__}") from None
    if n < 0:
        raise InputError(f"{what} must be >= 0, got {n}")
    return n


def _reverse_bits(words):
    """Reverse the bit order inside every uint64 word (converts bitorder 'big' to 'little')."""
    as_bytes = np.ascontiguousarray(words, dtype="<u8").view(np.uint8).reshape(words.shape + (8,))
    reversed_bytes = np.ascontiguousarray(_REVERSE_BYTE[as_bytes[..., ::-1]])
    return reversed_bytes.view("<u8").reshape(words.shape).astype(np.uint64)


def as_words(arr, name, n, ndim, bitorder="little"):
    """Return ``arr`` as C-contiguous little-bitorder uint64 words of length-``n`` rows, or raise.

    Parameters
    ----------
    arr : array_like of uint64
        Packed words, ``ceil(n / 64)`` along the last axis.
    name : str
        The operand's name, for the messages.
    n : int
        Unpacked values per row.
    ndim : int
        The number of axes ``arr`` must have.
    bitorder : {'little', 'big'}
        Layout of the given words; 'big' is converted with a copy.

    Returns
    -------
    numpy.ndarray of uint64
    """
    check_bitorder(bitorder)
    arr = np.asarray(arr)
    if arr.dtype != np.uint64:
        raise InputTypeError(
            f"{name}: expected uint64 packed words, got {arr.dtype}; pack with bitsim.formats.binary.pack(...)"
        )
    if arr.ndim != ndim:
        raise InputError(f"{name}: expected a {ndim}-D array of packed words, got shape {arr.shape}")
    need = n_words(n)
    if arr.shape[-1] != need:
        raise InputError(
            f"{name}: {n} values need {need} uint64 words along the last axis, got shape {arr.shape}; "
            "pass the unpacked length n, not the number of words"
        )
    if bitorder == "big":
        arr = _reverse_bits(arr)
    arr = np.ascontiguousarray(arr)
    if arr.size and n % WORD_BITS and (arr[..., -1] & ~padding_mask(n)).any():
        raise InputError(
            f"{name}: padding bits beyond length {n} are not zero; pack with bitsim.formats.binary.pack(...) "
            "or clear them with words[..., -1] &= bitsim.formats.binary.padding_mask(n)"
        )
    return arr


def as_ternary_planes(signs, mask, name, n, bitorder):
    """Return the ``(signs, mask)`` planes of ternary rows as :func:`as_words` does, refusing non-canonical planes.

    Parameters
    ----------
    signs, mask : array_like of uint64, shape (rows, ceil(n / 64))
        Bit 1 of ``signs`` is +1, bit 1 of ``mask`` a nonzero value; no sign bit outside the mask.
    name : str
    n : int
    bitorder : {'little', 'big'}

    Returns
    -------
    signs, mask : numpy.ndarray of uint64
    """
    signs = as_words(signs, f"{name} signs", n, 2, bitorder)
    mask = as_words(mask, f"{name} mask", n, 2, bitorder)
    if signs.shape != mask.shape:
        raise InputError(f"{name}: signs and mask planes differ in shape: {signs.shape} vs {mask.shape}")
    if (signs & ~mask).any():
        raise InputError(
            f"{name}: non-canonical ternary planes, a sign bit is set where the mask is 0; clear it with signs &= mask"
        )
    return signs, mask
