"""Safe reading of ``.npz`` archives: every size a member declares is checked before it is read."""

from __future__ import annotations

import io
import lzma
import math
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import BitsimError, DamagedFileError, InputError
from .files import REBUILD_HINT

# what zipfile and its decompressors raise for a damaged archive
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError, KeyError,
              NotImplementedError, RuntimeError, struct.error, OverflowError)


def _npy(path: Path, name: str, raw: bytes) -> np.ndarray:
    """Array ``name`` of a ``.npz`` from its ``.npy`` bytes, its declared size checked before it is read."""
    f = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f".npy format version {version[0]}.{version[1]}, expected 1.0 or 2.0")
        read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
        shape, fortran, dtype = read_header(f)
    except (ValueError, TypeError, EOFError) as error:
        raise DamagedFileError(path, f"{name}.npy has a damaged header ({error}); {REBUILD_HINT}") from None
    if dtype.hasobject:
        raise DamagedFileError(path, f"{name} holds Python objects, not numbers; {REBUILD_HINT}")
    size = math.prod(shape) * dtype.itemsize
    if f.tell() + size != len(raw):
        raise DamagedFileError(
            path, f"{name} declares {dtype} {shape}, {size} bytes, but holds {len(raw) - f.tell()}; {REBUILD_HINT}"
        )
    return np.ndarray(shape, dtype, raw, f.tell(), order="F" if fortran else "C").copy(order="K")


def read_npz(path: Path, keys) -> dict[str, np.ndarray]:
    """Read arrays of a ``.npz`` file, checking every size against the file before it is read.

    Parameters
    ----------
    path : pathlib.Path
    keys : sequence of str
        The arrays to read (member names without ``.npy``).

    Returns
    -------
    dict of str to numpy.ndarray
        The arrays in the order of ``keys``; Python objects are never unpickled.

    Raises
    ------
    ValueError
        If an array is missing, or the archive or a member is damaged or holds Python objects.
    """
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            members = {info.filename.removesuffix(".npy"): info for info in zf.infolist()}
            missing = [key for key in keys if key not in members]
            if missing:
                raise InputError(f"{path} lacks arrays {missing}; {REBUILD_HINT}")
            arrays = {}
            for key in keys:
                info = members[key]
                if info.header_offset + info.compress_size > size:
                    raise DamagedFileError(
                        path, f"{info.filename} declares {info.compress_size} bytes at byte {info.header_offset}, "
                        f"past the end of the file ({size} bytes); {REBUILD_HINT}"
                    )
                arrays[key] = _npy(path, key, zf.read(info))
            return arrays
    except BitsimError:
        raise
    except ZIP_ERRORS as error:
        raise DamagedFileError(path, f"not a readable .npz archive ({error}); {REBUILD_HINT}") from None
