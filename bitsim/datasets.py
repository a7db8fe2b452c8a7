"""Bundled data sets: MNIST digits and the Shakespeare character corpus.

The files live in the repository's ``data/`` directory and are built by
``python data/build.py`` (see ``data/README.md`` for provenance).  Set the
environment variable ``BITSIM_DATA`` to a directory to load them from
elsewhere.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = [
    "MNIST_SHA256",
    "SHAKESPEARE_SHA256",
    "char_vocab",
    "data_dir",
    "decode_chars",
    "encode_chars",
    "load_mnist",
    "load_mnist_idx",
    "load_shakespeare",
    "read_idx",
    "split_text",
]

MNIST_SHA256 = "99b6212d8b734503d7fa2e29ea6413bad62226998e56555f4a6b0b30072f1aec"
SHAKESPEARE_SHA256 = "0cb8567821a4a403c32c1df9ca467505a7ac53e69d51bb2ae7321fd28b77c1b8"

MNIST_FILE = "mnist.npz"
SHAKESPEARE_FILE = "shakespeare.txt.xz"
MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
MNIST_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

GZIP_MAGIC = b"\x1f\x8b"
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
    return Path(__file__).resolve().parent.parent / "data"


def _resolve(path, name: str) -> Path:
    resolved = Path(path) if path is not None else data_dir() / name
    if not resolved.is_file():
        raise FileNotFoundError(
            f"data file not found: {resolved}; build it with `python data/build.py`, "
            "or point the BITSIM_DATA environment variable at a directory containing "
            f"{name}"
        )
    return resolved


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, expected: str) -> None:
    actual = _sha256(path)
    if actual != expected:
        raise ValueError(
            f"checksum mismatch for {path}: sha256 is {actual}, expected {expected}; "
            f"the file is damaged or from another build: {REBUILD_HINT} "
            "(or pass verify=False to load it anyway)"
        )


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
        If the checksum does not match or an array is missing.
    """
    resolved = _resolve(path, MNIST_FILE)
    if verify:
        _verify(resolved, MNIST_SHA256)
    with np.load(resolved, allow_pickle=False) as npz:
        missing = [key for key in MNIST_KEYS if key not in npz.files]
        if missing:
            raise ValueError(f"{resolved} lacks arrays {missing}; {REBUILD_HINT}")
        return {key: npz[key] for key in MNIST_KEYS}


def _idx_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, gzip.BadGzipFile) as error:
        raise ValueError(f"{path}: damaged or truncated gzip data ({error})") from None


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
    raw = _idx_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{path}: not an IDX file (magic number starts with {raw[:2].hex()}, "
            "expected 0000)"
        )
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02x} (known: {known})")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{path}: truncated header, {len(raw)} bytes but {ndim} dimensions need {header}"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "has trailing data"
        raise ValueError(
            f"{path}: {state}, {len(raw)} bytes but shape {shape} of {dtype.name} "
            f"needs {expected}"
        )
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


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
        ``x_test``, ``y_test``.

    Raises
    ------
    FileNotFoundError
        If a file is missing.
    ValueError
        If a file is malformed or the images and labels do not match.
    """
    directory = Path(directory)
    arrays = {}
    for key, name in MNIST_IDX_FILES.items():
        candidates = [directory / name, directory / f"{name}.gz"]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"{directory} has neither {name} nor {name}.gz")
        arrays[key] = read_idx(found)
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{directory}: {split} images {images.shape} and labels {labels.shape} "
                "do not match; expected (N, rows, cols) images and N labels"
            )
    return arrays


def load_shakespeare(path=None, verify=True) -> str:
    """Load the bundled Shakespeare corpus.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The ``.txt.xz`` file to read.  Defaults to ``shakespeare.txt.xz`` in
        ``$BITSIM_DATA`` or the repository's ``data/`` directory.
    verify : bool, default True
        Check the file's sha256 against :data:`SHAKESPEARE_SHA256` first.

    Returns
    -------
    str
        The complete works, 5,057,321 ASCII characters with ``\\n`` line
        endings.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the checksum does not match or the file cannot be decoded.
    """
    resolved = _resolve(path, SHAKESPEARE_FILE)
    if verify:
        _verify(resolved, SHAKESPEARE_SHA256)
    try:
        with lzma.open(resolved) as f:
            return f.read().decode("utf-8")
    except (lzma.LZMAError, EOFError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read {resolved}: {error}; {REBUILD_HINT}") from None


def char_vocab(text: str) -> list[str]:
    """Return the sorted distinct characters of a text.

    Parameters
    ----------
    text : str

    Returns
    -------
    list of str
        Distinct characters in code point order; the index of a character
        is its id in :func:`encode_chars`.
    """
    return sorted(set(text))


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def encode_chars(text: str, vocab) -> np.ndarray:
    """Map each character of a text to its index in a vocabulary.

    Parameters
    ----------
    text : str
    vocab : sequence of str
        Distinct single characters, e.g. from :func:`char_vocab`.

    Returns
    -------
    numpy.ndarray
        1-D ids, ``uint8`` when the vocabulary has at most 256 entries,
        ``int32`` otherwise.

    Raises
    ------
    ValueError
        If the vocabulary is invalid or the text has characters outside it.
    """
    vocab = list(vocab)
    if any(not isinstance(c, str) or len(c) != 1 for c in vocab):
        raise ValueError("vocab must contain single characters")
    if len(set(vocab)) != len(vocab):
        raise ValueError("vocab contains duplicate characters")
    dtype = np.uint8 if len(vocab) <= 256 else np.int32
    if not text:
        return np.zeros(0, dtype)
    codes = _code_points("".join(vocab))
    order = np.argsort(codes)
    points = _code_points(text)
    pos = np.minimum(np.searchsorted(codes[order], points), len(codes) - 1)
    known = codes[order][pos] == points if len(codes) else np.zeros(len(points), bool)
    if not known.all():
        unknown = sorted(set(text) - set(vocab))
        raise ValueError(f"text has {len(unknown)} characters not in vocab: {unknown[:20]!r}")
    return order[pos].astype(dtype)


def decode_chars(ids, vocab) -> str:
    """Inverse of :func:`encode_chars`.

    Parameters
    ----------
    ids : array_like of int
        Indices into ``vocab``.
    vocab : sequence of str

    Returns
    -------
    str
    """
    ids = np.asarray(ids)
    if ids.size == 0:
        return ""
    if ids.dtype.kind not in "iu":
        raise ValueError(f"ids must be integers, got {ids.dtype}")
    if ids.min() < 0 or ids.max() >= len(vocab):
        raise ValueError(f"ids must lie in 0..{len(vocab) - 1}")
    table = _code_points("".join(vocab))
    return table[ids].tobytes().decode("utf-32-le")


def split_text(n: int, fractions=(0.9, 0.05, 0.05)) -> tuple[tuple[int, int], ...]:
    """Split ``n`` items into contiguous parts, by default train/validation/test.

    Part ``i`` is ``[floor(n * c[i-1]), floor(n * c[i]))`` where ``c`` is the
    cumulative sum of the fractions, each read as the exact decimal it
    prints as; the last part ends at ``n``.

    Parameters
    ----------
    n : int
        Number of items, e.g. characters.
    fractions : sequence of float, default (0.9, 0.05, 0.05)
        Non-negative sizes summing to 1.

    Returns
    -------
    tuple of (int, int)
        ``(start, stop)`` of each part, in order; use ``text[start:stop]``.

    Raises
    ------
    ValueError
        If ``n`` is negative or the fractions are invalid.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    exact = [Fraction(repr(float(f))) for f in fractions]
    if not exact or any(f < 0 for f in exact):
        raise ValueError(f"fractions must be non-negative and non-empty, got {fractions}")
    if abs(sum(exact) - 1) > Fraction(1, 10**9):
        raise ValueError(f"fractions must sum to 1, got {float(sum(exact))}")
    stops, total = [], Fraction(0)
    for f in exact[:-1]:
        total += f
        stops.append(min(n, int(n * total)))
    stops.append(n)
    starts = [0] + stops[:-1]
    return tuple(zip(starts, stops))


# ---------------------------------------------------------------------------------------
# Random translations of training images (docs/formats.md, section 5)

__all__ += ["random_shifts", "translate"]


def random_shifts(rng, n, max_shift):
    """Draw one translation ``(dy, dx)`` per image, each in ``-max_shift..max_shift``.

    Image ``i`` takes draws ``2 i`` (``dy``) and ``2 i + 1`` (``dx``) of ``rng``, and a draw ``u``
    becomes ``floor(u * (2 max_shift + 1) / 2**32) - max_shift``, exact in integers.

    Parameters
    ----------
    rng : bitsim.formats.rng.Philox or Xorshift32
        The generator; ``2 n`` draws are consumed.
    n : int
        Number of images.
    max_shift : int
        Largest shift in pixels, 0 .. 2**31 - 1 (0 draws nothing and returns zeros).

    Returns
    -------
    dy, dx : ndarray of int64, shape (n,)
        Rows down and columns right.

    Raises
    ------
    ValueError
        If ``n`` or ``max_shift`` is not an integer in range.

    Examples
    --------
    >>> from bitsim.formats.rng import Xorshift32
    >>> random_shifts(Xorshift32(1), 2, 2)
    (array([-2,  1]), array([-2, -2]))
    """
    if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) for v in (n, max_shift)):
        raise ValueError(f"n and max_shift must be integers, got n={n!r}, max_shift={max_shift!r}")
    n, max_shift = int(n), int(max_shift)
    if n < 0 or not 0 <= max_shift < 2**31:  # (2 max_shift + 1) * u must fit in 64 bits
        raise ValueError(f"need n >= 0 and 0 <= max_shift < 2**31, got n={n}, max_shift={max_shift}")
    if max_shift == 0:
        return np.zeros(n, np.int64), np.zeros(n, np.int64)
    u = rng.uint32(2 * n).astype(np.uint64).reshape(n, 2)
    shifts = ((u * np.uint64(2 * max_shift + 1)) >> np.uint64(32)).astype(np.int64) - max_shift
    return shifts[:, 0].copy(), shifts[:, 1].copy()


def translate(images, dy, dx):
    """Shift each image by whole pixels, filling the uncovered border with zeros.

    ``out[i, r, c] = images[i, r - dy[i], c - dx[i]]`` where that pixel exists, else 0.

    Parameters
    ----------
    images : ndarray, shape (n, H, W)
        The images, any dtype.
    dy, dx : array_like of int, shape (n,)
        Rows down and columns right for each image (negative: up and left). Any size: a shift of
        H or more rows (W columns) leaves a blank image.

    Returns
    -------
    ndarray
        A new array of the shape and dtype of ``images``.

    Raises
    ------
    ValueError
        If ``images`` is not 3-D, or ``dy`` and ``dx`` are not one integer per image.

    Examples
    --------
    >>> translate(np.arange(1, 10, dtype=np.uint8).reshape(1, 3, 3), [1], [-1])[0]
    array([[0, 0, 0],
           [2, 3, 0],
           [5, 6, 0]], dtype=uint8)
    """
    images = np.asarray(images)
    dy, dx = np.asarray(dy), np.asarray(dx)
    if not all(d.size == 0 or np.issubdtype(d.dtype, np.integer) for d in (dy, dx)):
        raise ValueError(f"dy and dx must be integers (whole pixels), got {dy.dtype} and {dx.dtype}")
    dy, dx = dy.astype(np.int64), dx.astype(np.int64)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (n, H, W), got {images.shape}")
    if dy.shape != (len(images),) or dx.shape != (len(images),):
        raise ValueError(f"dy and dx need one shift per image ({len(images)},), got {dy.shape} and {dx.shape}")
    h, w = images.shape[1:]
    out = np.zeros_like(images)
    pairs, which = np.unique(np.stack([dy, dx], 1), axis=0, return_inverse=True)
    for k, (sy, sx) in enumerate(pairs):
        rows = np.flatnonzero(which.reshape(-1) == k)
        if abs(sy) >= h or abs(sx) >= w:
            continue
        out[rows, max(sy, 0):h + min(sy, 0), max(sx, 0):w + min(sx, 0)] = \
            images[rows, max(-sy, 0):h + min(-sy, 0), max(-sx, 0):w + min(-sx, 0)]
    return out


# ---------------------------------------------------------------------------------------
# CIFAR-10 (python pickle batches) and SVHN (.mat) for users who have the files

import pickle  # noqa: E402  (only the CIFAR-10 reader below unpickles, with a restricted unpickler)

__all__ += ["load_cifar10", "load_svhn", "read_cifar10_batch", "read_svhn_mat"]

CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_META_FILE = "batches.meta"
CIFAR10_SUBDIR = "cifar-10-batches-py"
_NUMPY_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's array reconstructor, whatever its module


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, restricted to latin-1."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("a CIFAR-10 batch only encodes bytes as latin-1 text")
    return text.encode("latin1")


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR-10 batches: plain containers and numpy arrays only.

    Dicts, lists, tuples, str, bytes, int, float, bool and None are pickle opcodes and need no
    lookup. The only globals allowed are numpy's array reconstruction (``_reconstruct``,
    ``ndarray``, ``dtype``) and ``_codecs.encode`` with latin-1 (how protocol-2 pickles written by
    Python 3 store bytes); anything else (a class, a function, a module) is refused before it is
    imported, so loading a file cannot run code.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
        ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
        ("numpy", "ndarray"): "ndarray",
        ("numpy", "dtype"): "dtype",
        ("_codecs", "encode"): "encode",
    }

    def find_class(self, module, name):
        kind = self.ALLOWED.get((module, name))
        if kind is None:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch holds only dicts, lists, bytes, str, int "
                "and numpy arrays; is this file really a CIFAR-10 python batch?"
            )
        return {"reconstruct": _NUMPY_RECONSTRUCT, "ndarray": np.ndarray, "dtype": np.dtype,
                "encode": _latin1_encode}[kind]

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("a CIFAR-10 batch has no persistent references")


def _text(key):
    return key.decode("latin1") if isinstance(key, bytes) else key


def read_cifar10_batch(path) -> dict:
    """Read one CIFAR-10 python batch (``data_batch_1`` ... ``test_batch``) with a restricted unpickler.

    The batches are Python pickles, so unpickling is the format itself; :class:`_BatchUnpickler`
    allows only containers, bytes, str, int and numpy array reconstruction, never a class or a
    function. Keys written as bytes (Python 2 files) are returned as str.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict
        ``data`` uint8 (N, 3072) (1024 red, 1024 green, 1024 blue values of each 32x32 image, row
        by row), ``labels`` list of int, and whatever else the file holds (``batch_label``,
        ``filenames``).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not a valid batch or holds anything but plain data.
    """
    path = Path(path)
    with open(path, "rb") as f:
        try:
            obj = _BatchUnpickler(f, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as error:
            raise ValueError(f"{path}: not a readable CIFAR-10 batch ({error})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: a CIFAR-10 batch is a dict, got {type(obj).__name__}")
    return {_text(k): v for k, v in obj.items()}


def _cifar_arrays(path):
    batch = read_cifar10_batch(path)
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path}: a CIFAR-10 batch needs 'data' and 'labels', found {sorted(batch)}")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: 'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu" or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError(f"{path}: 'labels' must be {len(data)} integers 0..9")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.uint8)


def load_cifar10(directory) -> dict:
    """Load CIFAR-10 from its python batches (the ``cifar-10-python.tar.gz`` distribution, extracted).

    Parameters
    ----------
    directory : str or os.PathLike
        The ``cifar-10-batches-py`` directory, or a directory containing it, with
        ``data_batch_1`` .. ``data_batch_5`` and ``test_batch`` (``batches.meta`` optional).

    Returns
    -------
    dict
        ``x_train`` uint8 (50000, 32, 32, 3) and ``x_test`` (10000, 32, 32, 3), images in NHWC
        (channels last, as bitsim's layers take them); ``y_train``, ``y_test`` uint8 labels 0..9;
        ``label_names`` (list of str, from ``batches.meta``, or the standard names when absent).

    Raises
    ------
    FileNotFoundError
        If a batch is missing.
    ValueError
        If a batch is malformed or holds anything but plain data (see :func:`read_cifar10_batch`).
    """
    directory = Path(directory)
    if (directory / CIFAR10_SUBDIR).is_dir():
        directory = directory / CIFAR10_SUBDIR
    missing = [n for n in CIFAR10_TRAIN_FILES + (CIFAR10_TEST_FILE,) if not (directory / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{directory} lacks CIFAR-10 batches {missing}; extract cifar-10-python.tar.gz and pass the "
            f"{CIFAR10_SUBDIR} directory"
        )
    parts = [_cifar_arrays(directory / n) for n in CIFAR10_TRAIN_FILES]
    x_test, y_test = _cifar_arrays(directory / CIFAR10_TEST_FILE)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    if (directory / CIFAR10_META_FILE).is_file():
        meta = read_cifar10_batch(directory / CIFAR10_META_FILE)
        if "label_names" in meta:
            names = [_text(n) for n in meta["label_names"]]
    return {"x_train": np.concatenate([p[0] for p in parts]), "y_train": np.concatenate([p[1] for p in parts]),
            "x_test": x_test, "y_test": y_test, "label_names": names}


SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}


def read_svhn_mat(path) -> tuple[np.ndarray, np.ndarray]:
    """Read one SVHN cropped-digits file (format 2, ``*_32x32.mat``) with ``scipy.io.loadmat``.

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
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SVHN file not found: {path}")
    try:
        mat = loadmat(path)
    except (MatReadError, ValueError, TypeError, NotImplementedError, OSError) as error:
        raise ValueError(f"{path}: not a readable MATLAB file ({error}); SVHN format 2 files are *_32x32.mat") from None
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{path}: an SVHN file needs variables X and y, found {sorted(k for k in mat if not k.startswith('__'))}")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise ValueError(f"{path}: X must be uint8 of shape (32, 32, 3, N), got {x.dtype} {x.shape}")
    if y.shape != (x.shape[3],) or (y.size and (y.min() < 1 or y.max() > 10)):
        raise ValueError(f"{path}: y must hold {x.shape[3]} labels 1..10 (10 is the digit 0)")
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), (y % 10).astype(np.uint8)


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
        raise FileNotFoundError(f"SVHN path not found: {path}")
    out = {}
    for split, name in SVHN_FILES.items():
        if not (path / name).is_file():
            if split == "extra":
                continue
            raise FileNotFoundError(f"{path} lacks {name}; download SVHN format 2 (cropped digits) .mat files")
        out[f"x_{split}"], out[f"y_{split}"] = read_svhn_mat(path / name)
    return out
