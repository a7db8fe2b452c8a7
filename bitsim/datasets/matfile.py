"""A reader of MATLAB 5 files (``save -v7`` or ``-v6``, ``scipy.io.savemat``) that checks every declared size."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np

# MATLAB 5 data types of numeric data (miINT8 .. miUINT64) and the numeric array classes (mxDOUBLE .. mxUINT64)
MAT_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
MAT_NUMERIC_CLASSES = range(6, 16)
MI_INT8, MI_INT32, MI_UINT32, MI_MATRIX, MI_COMPRESSED, MI_UTF8 = 1, 5, 6, 14, 15, 16


class MatError(Exception):
    """A damaged MATLAB file; the caller names the file (:func:`bitsim.datasets.read_svhn_mat` does)."""


def _elements(data, order, padded=True):
    """``(type, payload)`` of each data element in ``data``, every size checked against what is there."""
    at = 0
    while at < len(data):
        if len(data) - at < 8:
            raise MatError(f"{len(data) - at} bytes at offset {at} are too short for a data element tag")
        kind, size = struct.unpack_from(order + "II", data, at)
        if kind >> 16:  # small data element: size and type in the first word, the data in the second
            kind, size, start, stop = kind & 0xFFFF, kind >> 16, at + 4, at + 8
            if size > 4:
                raise MatError(f"a small data element at offset {at} declares {size} bytes, at most 4 fit")
        else:
            start = at + 8
            stop = start + (-(-size // 8) * 8 if padded else size)
        if start + size > len(data):
            raise MatError(f"a data element at offset {at} declares {size} bytes, only {len(data) - start} follow")
        yield kind, data[start:start + size]
        at = stop


def _matrix(payload, order):
    """``(name, array)`` of an miMATRIX element; the array is None for anything but a real numeric array."""
    parts = _elements(payload, order)
    kind, flags = next(parts, (None, b""))
    if kind != MI_UINT32 or len(flags) != 8:
        raise MatError(f"an array starts with its flags (type {MI_UINT32}, 8 bytes), got type {kind}")
    flags = struct.unpack(order + "I", flags[:4])[0]
    kind, dims = next(parts, (None, b""))
    if kind not in (MI_INT32, MI_UINT32) or not dims or len(dims) % 4:
        raise MatError(f"an array's dimensions are 32-bit integers, got type {kind}, {len(dims)} bytes")
    dims = struct.unpack(f"{order}{len(dims) // 4}{'i' if kind == MI_INT32 else 'I'}", dims)
    kind, name = next(parts, (None, b""))
    if kind not in (MI_INT8, MI_UTF8):
        raise MatError(f"an array's name is text, got type {kind}")
    name = bytes(name).decode("utf-8", "replace")
    if min(dims) < 0:
        raise MatError(f"{name!r} has negative dimensions {dims}")
    if flags & 0xFF not in MAT_NUMERIC_CLASSES or flags & 0x0800:
        return name, None  # not a real numeric array: no SVHN variable
    kind, real = next(parts, (None, b""))
    if kind not in MAT_TYPES:
        raise MatError(f"{name!r} has numeric data of unknown type {kind}")
    dtype = np.dtype(MAT_TYPES[kind]).newbyteorder(order)
    if len(real) != math.prod(dims) * dtype.itemsize:
        raise MatError(f"{name!r} of shape {dims} needs {math.prod(dims) * dtype.itemsize} bytes, holds {len(real)}")
    array = np.ndarray(dims, dtype, real, order="F").astype(dtype.newbyteorder("="), copy=False)
    return name, array.astype(bool) if flags & 0x0200 else array


def read_mat(path: Path) -> dict:
    """Read the real numeric arrays of a MATLAB 5 file (``save -v7`` or ``-v6``, or ``scipy.io.savemat``).

    Parameters
    ----------
    path : pathlib.Path

    Returns
    -------
    dict of str to numpy.ndarray or None
        Each top-level variable by name: a real numeric (or logical) array in native byte order,
        or None for anything else (text, cells, structs, complex or sparse arrays).

    Raises
    ------
    MatError
        If the file is not MATLAB 5 or a declared type or size does not fit what is there.
    zlib.error
        If a compressed element holds damaged zlib data.
    ValueError
        If the data of an array cannot be interpreted as its declared type.
    """
    data = memoryview(path.read_bytes())
    if len(data) < 128:
        raise MatError(f"{len(data)} bytes is too short for the 128-byte MATLAB 5 header")
    if 0 in data[:4]:
        raise MatError("a MATLAB 4 file (or not a MATLAB file)")
    order = {b"IM": "<", b"MI": ">"}.get(bytes(data[126:128]))
    if order is None:
        raise MatError(f"endian indicator {bytes(data[126:128])!r}, expected b'IM' or b'MI'")
    version = struct.unpack_from(order + "H", data, 124)[0]
    if version != 0x0100:
        hint = " (MATLAB 7.3 HDF5 files are not supported: save with -v7)" if version == 0x0200 else ""
        raise MatError(f"version 0x{version:04x}, expected 0x0100{hint}")
    arrays = {}
    for kind, payload in _elements(data[128:], order, padded=False):
        if kind == MI_COMPRESSED:
            inflate = zlib.decompressobj()
            payload = inflate.decompress(payload)
            if not inflate.eof:
                raise MatError("a compressed element ends before its zlib stream does")
            kind, payload = next(_elements(memoryview(payload), order), (None, b""))
        if kind != MI_MATRIX:
            raise MatError(f"a top-level element of type {kind}, expected an array ({MI_MATRIX} or {MI_COMPRESSED})")
        if len(payload):
            name, array = _matrix(payload, order)
            arrays[name] = array
    return arrays
