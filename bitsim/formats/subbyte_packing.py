"""Packing FP4 and FP6 element codes into bytes, with the bit order stated.

FP4: two codes per byte; element ``2i`` in bits 0-3 (the low nibble) and element ``2i + 1`` in bits 4-7 of
byte ``i`` (the order of PyTorch's ``float4_e2m1fn_x2`` and of torchao's packed MXFP4). An odd count is
padded with a zero code.

FP6: four codes per three bytes, as a little-endian bit stream: element ``4i + j`` occupies bits
``6j .. 6j + 5`` of the 24-bit little-endian word made of bytes ``3i, 3i + 1, 3i + 2``. A count that is
not a multiple of four is padded with zero codes.

The unpacked layout, one code per byte in the low bits, is the layout of ``ml_dtypes`` (``float4_e2m1fn``,
``float6_e2m3fn``, ``float6_e3m2fn``, ...: :func:`to_ml_dtypes` views the uint8 array with that dtype,
:func:`from_ml_dtypes` back) and of the OCP specification's element codes (the MX specification defines
element encodings, not a byte layout of FP4 or FP6 streams).
"""

import numpy as np

from ..errors import InputError, InputTypeError
from .modes import as_int, first_index


def _codes(codes, bits):
    codes = np.asarray(codes)
    if codes.dtype != np.uint8:
        raise InputTypeError(f"expected uint8 codes, got dtype {codes.dtype}")
    bad = codes >= (1 << bits)
    if bad.any():
        raise InputError(f"code {int(codes[first_index(bad)])} at index {first_index(bad)} has more than {bits} bits")
    return codes.ravel()


def code_count(count, capacity, size, kind):
    """``count`` as an int between 0 and ``capacity`` (the codes ``size`` packed bytes hold), else an error."""
    count = as_int(count, "count")
    if not 0 <= count <= capacity:
        raise InputError(f"count must be 0..{capacity} ({size} bytes hold at most {capacity} {kind} codes), got "
                         f"{count}; give the number of codes that were packed")
    return count


def pack_fp4(codes):
    """Pack 4-bit codes (uint8, any shape, row-major) two per byte, low nibble first."""
    c = _codes(codes, 4)
    if c.size % 2:
        c = np.concatenate([c, np.zeros(1, np.uint8)])
    return (c[0::2] | (c[1::2] << 4)).astype(np.uint8)


def unpack_fp4(packed, count):
    """The first ``count`` 4-bit codes of bytes packed by :func:`pack_fp4`, one per byte."""
    p = np.asarray(packed)
    if p.dtype != np.uint8 or p.ndim != 1:
        raise InputTypeError(f"expected a 1-D uint8 array of packed bytes, got {p.dtype} of shape {p.shape}")
    count = code_count(count, 2 * p.size, p.size, "FP4")
    out = np.empty(2 * p.size, np.uint8)
    out[0::2], out[1::2] = p & 0xF, p >> 4
    return out[:count]


def pack_fp6(codes):
    """Pack 6-bit codes four per three bytes, little-endian bit stream."""
    c = _codes(codes, 6).astype(np.uint32)
    pad = -c.size % 4
    if pad:
        c = np.concatenate([c, np.zeros(pad, np.uint32)])
    q = c.reshape(-1, 4)
    word = q[:, 0] | (q[:, 1] << 6) | (q[:, 2] << 12) | (q[:, 3] << 18)
    return np.stack([word & 0xFF, (word >> 8) & 0xFF, word >> 16], axis=1).astype(np.uint8).ravel()


def unpack_fp6(packed, count):
    """The first ``count`` 6-bit codes of bytes packed by :func:`pack_fp6`, one per byte."""
    p = np.asarray(packed)
    if p.dtype != np.uint8 or p.ndim != 1 or p.size % 3:
        raise InputTypeError(f"expected a 1-D uint8 array of 3-byte groups, got {p.dtype} of shape {p.shape}")
    count = code_count(count, 4 * (p.size // 3), p.size, "FP6")
    t = p.reshape(-1, 3).astype(np.uint32)
    word = t[:, 0] | (t[:, 1] << 8) | (t[:, 2] << 16)
    out = np.stack([(word >> s) & 0x3F for s in (0, 6, 12, 18)], axis=1).astype(np.uint8).ravel()
    return out[:count]


ML_DTYPES = {"e4m3": "float8_e4m3fn", "e5m2": "float8_e5m2", "e2m3": "float6_e2m3fn", "e3m2": "float6_e3m2fn",
             "e2m1": "float4_e2m1fn", "e8m0": "float8_e8m0fnu"}


def _ml_dtypes():
    try:  # imported here: ml_dtypes is optional, needed only by the two converters
        import ml_dtypes
    except ImportError:
        raise InputError("the ml_dtypes layout needs the ml_dtypes package: pip install ml_dtypes") from None
    return ml_dtypes


def to_ml_dtypes(codes, element):
    """One-code-per-byte codes (uint8) as an ml_dtypes array of the element format, sharing the memory.

    Parameters
    ----------
    codes : numpy.ndarray of uint8
    element : str
        ``'e4m3'``, ``'e5m2'``, ``'e2m3'``, ``'e3m2'``, ``'e2m1'`` or ``'e8m0'``.
    """
    if element not in ML_DTYPES:
        raise InputError(f"no ml_dtypes type for {element!r}; choose one of {', '.join(ML_DTYPES)}")
    bits = {"e2m3": 6, "e3m2": 6, "e2m1": 4}.get(element, 8)
    c = np.asarray(codes)
    _codes(c, bits)
    return c.view(getattr(_ml_dtypes(), ML_DTYPES[element]))


def from_ml_dtypes(array):
    """``(codes, element)``: an ml_dtypes array's codes as uint8 (one per byte) and its element format's name."""
    a = np.asarray(array)
    names = {np.dtype(getattr(_ml_dtypes(), t)): e for e, t in ML_DTYPES.items()}
    if a.dtype not in names:
        raise InputTypeError(f"expected an ml_dtypes array of {', '.join(ML_DTYPES.values())}, got dtype {a.dtype}")
    return a.view(np.uint8), names[a.dtype]


__all__ = ["pack_fp4", "unpack_fp4", "pack_fp6", "unpack_fp6", "to_ml_dtypes", "from_ml_dtypes", "ML_DTYPES"]
