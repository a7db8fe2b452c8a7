"""MNIST digits: the bundled, checksummed ``mnist.npz``, or the four original IDX files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DamagedFileError, InputError, MissingFileError
from .files import REBUILD_HINT, check_sha256, locate
from .idx import read_idx
from .npz import read_npz

MNIST_SHA256 = "99b6212d8b734503d7fa2e29ea6413bad62226998e56555f4a6b0b30072f1aec"
MNIST_FILE = "mnist.npz"
MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
MNIST_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def load_mnist(path=None, verify=True) -> dict[str, np.ndarray]:
    """Load the bundled MNIST digits.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The ``.npz`` file to read.  Defaults to ``mnist.npz`` in
        ``$BITSIM_DATA`` or the repository's ``data/`` directory.
    verify : bool, default True
        Check the file's sha256 against :data:`MNIST_SHA256` first.

    Returns
    -------
    dict of str to numpy.ndarray
        ``x_train`` uint8 (60000, 28, 28), ``y_train`` uint8 (60000,),
        ``x_test`` uint8 (10000, 28, 28) and ``y_test`` uint8 (10000,).
        Pixels are 0..255 and labels 0..9.  The training set is in the
        standard order; its last 10,000 images are the classic validation
        split.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the checksum does not match, an array is missing, or the file is
        damaged or holds arrays of another type or shape.
    """
    resolved = locate(path, MNIST_FILE)
    if verify:
        check_sha256(resolved, MNIST_SHA256)
    arrays = read_npz(resolved, MNIST_KEYS)
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or y.dtype != np.uint8 or x.shape[1:] != (28, 28) or y.shape != x.shape[:1]:
            raise DamagedFileError(
                resolved, f"{split} images are {x.dtype} {x.shape} and labels {y.dtype} {y.shape}; expected uint8 "
                f"images (N, 28, 28) and N uint8 labels: {REBUILD_HINT}"
            )
    return arrays


def load_mnist_idx(directory) -> dict[str, np.ndarray]:
    """Load MNIST from the four original IDX files in a directory.

    Parameters
    ----------
    directory : str or os.PathLike
        Directory containing ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
        ``t10k-labels-idx1-ubyte``, each optionally with a ``.gz`` suffix.

    Returns
    -------
    dict of str to numpy.ndarray
        Same layout as :func:`load_mnist`: ``x_train``, ``y_train``,
        ``x_test``, ``y_test``, uint8 images (N, rows, cols) and N uint8
        labels per split.

    Raises
    ------
    FileNotFoundError
        If a file is missing.
    ValueError
        If a file is malformed, is not of unsigned bytes (IDX type 0x08),
        or the images and labels do not match.
    """
    directory = Path(directory)
    arrays = {}
    for key, name in MNIST_IDX_FILES.items():
        candidates = [directory / name, directory / f"{name}.gz"]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise MissingFileError(f"{directory} has neither {name} nor {name}.gz")
        arrays[key] = read_idx(found)
        if arrays[key].dtype != np.uint8:
            raise DamagedFileError(
                found, f"holds {arrays[key].dtype}; MNIST files hold unsigned bytes (IDX type 0x08)"
            )
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise InputError(
                f"{directory}: {split} images {images.shape} and labels {labels.shape} "
                "do not match; expected (N, rows, cols) images and N labels"
            )
    return arrays
