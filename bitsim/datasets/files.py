"""Where the bundled data files live, and the checks made before one is read: presence and checksum."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DamagedFileError, MissingFileError
from ..io import sha256_file

REBUILD_HINT = "rebuild it with `python data/build.py` or restore it with `git checkout -- data/`"


def data_dir() -> Path:
    """Return the directory holding the bundled data files.

    Returns
    -------
    pathlib.Path
        ``$BITSIM_DATA`` if that environment variable is set and not empty,
        otherwise the ``data/`` directory of the repository.
    """
    override = os.environ.get("BITSIM_DATA")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "data"


def locate(path, name: str) -> Path:
    """Return the data file to read: ``path``, or ``name`` in :func:`data_dir`.

    Parameters
    ----------
    path : str or os.PathLike or None
        The file the caller names; None for the bundled one.
    name : str
        File name of the bundled file, e.g. ``mnist.npz``.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        If the file does not exist (the message says how to build it).
    """
    resolved = Path(path) if path is not None else data_dir() / name
    if not resolved.is_file():
        raise MissingFileError(
            f"data file not found: {resolved}; build it with `python data/build.py`, "
            "or point the BITSIM_DATA environment variable at a directory containing "
            f"{name}"
        )
    return resolved


def check_sha256(path: Path, expected: str) -> None:
    """Check a file's SHA-256 against the one it must have.

    Parameters
    ----------
    path : pathlib.Path
    expected : str
        The SHA-256 in hex, e.g. :data:`bitsim.datasets.MNIST_SHA256`.

    Raises
    ------
    ValueError
        If the checksums differ (a :class:`~bitsim.errors.DamagedFileError` naming the file).
    """
    actual = sha256_file(path)
    if actual != expected:
        raise DamagedFileError(
            path,
            f"checksum mismatch: sha256 is {actual}, expected {expected}; "
            f"the file is damaged or from another build: {REBUILD_HINT} "
            "(or pass verify=False to load it anyway)",
        )
