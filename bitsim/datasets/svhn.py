"""SVHN cropped digits (format 2, ``*_32x32.mat``) for users who have the files."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from ..errors import DamagedFileError, MissingFileError
from .matfile import MatError, read_mat

SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}


def read_svhn_mat(path) -> tuple[np.ndarray, np.ndarray]:
    """Read one SVHN cropped-digits file (format 2, ``*_32x32.mat``, MATLAB 5).

    bitsim reads the MATLAB 5 format itself, checking every declared type and size (``scipy.io.loadmat``
    crashes the interpreter on some damaged files).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    x : numpy.ndarray of uint8, shape (N, 32, 32, 3)
        NHWC images (the file stores them as ``X`` of shape (32, 32, 3, N)).
    y : numpy.ndarray of uint8, shape (N,)
        Digits 0..9 (the file's label 10 means the digit 0).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not a MATLAB file with ``X`` and ``y`` of the SVHN shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"SVHN file not found: {path}")
    try:
        mat = read_mat(path)
    except (MatError, zlib.error, ValueError) as error:
        raise DamagedFileError(
            path, f"not a readable MATLAB file ({error}); SVHN format 2 files are *_32x32.mat"
        ) from None
    if "X" not in mat or "y" not in mat:
        raise DamagedFileError(path, f"an SVHN file needs variables X and y, found {sorted(mat)}")
    x, y = mat["X"], mat["y"]
    if x is None or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        got = f"{x.dtype} {x.shape}" if x is not None else "not a real numeric array"
        raise DamagedFileError(path, f"X must be uint8 of shape (32, 32, 3, N), got {got}")
    if y is None or y.size != x.shape[3] or y.dtype.kind not in "iuf" or not np.isin(y, np.arange(1, 11)).all():
        raise DamagedFileError(path, f"y must hold {x.shape[3]} labels 1..10 (10 is the digit 0)")
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), (y.reshape(-1) % 10).astype(np.uint8)


def load_svhn(path) -> dict:
    """Load SVHN cropped digits (format 2) from ``.mat`` files.

    Parameters
    ----------
    path : str or os.PathLike
        A directory holding ``train_32x32.mat`` and ``test_32x32.mat`` (and optionally
        ``extra_32x32.mat``), or one such file.

    Returns
    -------
    dict
        For a directory: ``x_train``, ``y_train``, ``x_test``, ``y_test`` (and ``x_extra``,
        ``y_extra`` when present); for a file: ``x``, ``y``. Images are uint8 NHWC (N, 32, 32, 3),
        labels uint8 0..9 (the files' 10 becomes 0).

    Raises
    ------
    FileNotFoundError
        If a required file is missing.
    ValueError
        If a file is malformed (see :func:`read_svhn_mat`).
    """
    path = Path(path)
    if path.is_file():
        x, y = read_svhn_mat(path)
        return {"x": x, "y": y}
    if not path.is_dir():
        raise MissingFileError(f"SVHN path not found: {path}")
    out = {}
    for split, name in SVHN_FILES.items():
        if not (path / name).is_file():
            if split == "extra":
                continue
            raise MissingFileError(f"{path} lacks {name}; download SVHN format 2 (cropped digits) .mat files")
        out[f"x_{split}"], out[f"y_{split}"] = read_svhn_mat(path / name)
    return out
