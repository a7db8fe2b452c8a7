"""The IDX file format of the original MNIST distribution, plain or gzip-compressed."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DamagedFileError, MissingFileError

IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

GZIP_MAGIC = b"\x1f\x8b"


def _contents(path: Path) -> bytes:
    if not path.is_file():
        raise MissingFileError(f"IDX file not found: {path}")
    raw = path.read_bytes()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise DamagedFileError(path, f"damaged or truncated gzip data ({error})") from None


def read_idx(path) -> np.ndarray:
    """Read an IDX file, the format of the original MNIST distribution.

    Parameters
    ----------
    path : str or os.PathLike
        The file, plain or gzip-compressed (detected from its first bytes).

    Returns
    -------
    numpy.ndarray
        The array in native byte order, with the shape and type stored in
        the file (``uint8`` for MNIST).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the magic number, type code, dimensions or length are invalid.
    """
    path = Path(path)
    raw = _contents(path)
    if len(raw) < 4:
        raise DamagedFileError(path, f"{len(raw)} bytes is too short for an IDX header")
    if raw[0] != 0 or raw[1] != 0:
        raise DamagedFileError(
            path, f"not an IDX file (magic number starts with {raw[:2].hex()}, expected 0000)"
        )
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        raise DamagedFileError(path, f"unknown IDX type code 0x{code:02x} (known: {known})")
    if ndim == 0:
        raise DamagedFileError(path, "IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DamagedFileError(
            path, f"truncated header, {len(raw)} bytes but {ndim} dimensions need {header}"
        )
    shape = struct.unpack_from(f">{ndim}I", raw, 4)
    dtype = IDX_DTYPES[code]
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "has trailing data"
        raise DamagedFileError(
            path, f"{state}, {len(raw)} bytes but shape {shape} of {dtype.name} needs {expected}"
        )
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))
