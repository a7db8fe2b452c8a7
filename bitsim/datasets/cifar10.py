"""CIFAR-10 from its python batches, read with a restricted unpickler that cannot run code."""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import warnings
from pathlib import Path

import numpy as np

from ..errors import DamagedFileError, MissingFileError

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


class _NdarrayName:
    """What ``numpy.ndarray`` means in a batch: the first argument of ``_reconstruct``, never called."""

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError("a CIFAR-10 batch builds arrays only through numpy's _reconstruct")


_NDARRAY = _NdarrayName()


class _Dtype:
    """A dtype as a batch describes it (``numpy.dtype(spec, align, copy)`` and its state), made real by
    :meth:`make` only for plain numbers, bytes and text: a pickled dtype state could otherwise claim that
    raw bytes are Python objects."""

    def __init__(self, spec, align=False, copy=False):
        self.spec, self.order = spec, "|"

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"a dtype's state must name a byte order, got {state!r:.80}")
        self.order = state[1]

    def make(self):
        dtype = np.dtype(self.spec) if isinstance(self.spec, str) else None
        if dtype is None or dtype.kind not in "biufcSU" or dtype.fields or dtype.subdtype:
            raise pickle.UnpicklingError(f"a CIFAR-10 batch holds arrays of numbers or text, not {self.spec!r:.80}")
        return dtype.newbyteorder(self.order) if self.order in "<>" else dtype


class _BatchArray(np.ndarray):
    """An array of a batch: its state is checked (dtype, and data of exactly the declared size) first."""

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError(f"an array's state is (1, shape, dtype, fortran, data), got {state!r:.80}")
        shape, dtype, fortran, data = state[-4:]
        if not isinstance(dtype, _Dtype):
            raise pickle.UnpicklingError(f"an array's dtype must be a numpy.dtype, got {type(dtype).__name__}")
        if not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape):
            raise pickle.UnpicklingError(f"an array's shape must be non-negative integers, got {shape!r:.80}")
        dtype = dtype.make()
        data = data.encode("latin1") if isinstance(data, str) else data  # Python 2 str, read as latin-1 text
        if not isinstance(data, bytes) or len(data) != math.prod(shape) * dtype.itemsize:
            raise pickle.UnpicklingError(
                f"an array of {dtype} {shape} needs {math.prod(shape) * dtype.itemsize} bytes of data, "
                f"got {len(data) if isinstance(data, bytes) else type(data).__name__}"
            )
        super().__setstate__((1, shape, dtype, bool(fortran), data))


def _reconstruct(subtype, shape, dtype):
    """numpy's ``_reconstruct(ndarray, (0,), b'b')``: an empty array that the pickle's state fills."""
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError("numpy's _reconstruct makes only numpy.ndarray in a CIFAR-10 batch")
    return _NUMPY_RECONSTRUCT(_BatchArray, (0,), "b")


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR-10 batches: plain containers and numpy arrays only.

    Dicts, lists, tuples, str, bytes, int, float, bool and None are pickle opcodes and need no
    lookup. The only globals allowed are numpy's array reconstruction (``_reconstruct``,
    ``ndarray``, ``dtype``) and ``_codecs.encode`` with latin-1 (how protocol-2 pickles written by
    Python 3 store bytes); anything else (a class, a function, a module) is refused before it is
    imported, so loading a file cannot run code. numpy's own names are replaced by stand-ins that
    check each array's dtype and size before numpy sees them.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): _Dtype,
        ("_codecs", "encode"): _latin1_encode,
    }

    def find_class(self, module, name):
        found = self.ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch holds only dicts, lists, bytes, str, int "
                "and numpy arrays; is this file really a CIFAR-10 python batch?"
            )
        return found

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("a CIFAR-10 batch has no persistent references")


# opcodes that reach objects outside the pickle: persistent ids, the copyreg extension registry, buffers
_FOREIGN_OPCODES = {"PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4", "NEXT_BUFFER", "READONLY_BUFFER"}
UNPICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
                   OverflowError)


def _check_pickle(raw: bytes) -> None:
    """Refuse unknown or foreign opcodes, lengths past the end of the data and memo indices the unpickler would
    allocate a table for, before anything is allocated."""
    for opcode, arg, pos in pickletools.genops(raw):
        if opcode.name in _FOREIGN_OPCODES:
            raise pickle.UnpicklingError(f"opcode {opcode.name} at byte {pos} has no place in a CIFAR-10 batch")
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and arg > len(raw):
            raise pickle.UnpicklingError(f"memo index {arg} at byte {pos} is larger than the whole pickle")


def _text(key):
    return key.decode("latin1") if isinstance(key, bytes) else key


def _check_batch(path, batch) -> None:
    """``data`` and ``labels``, when a batch holds either, must be N images and N labels 0..9."""
    if "data" not in batch and "labels" not in batch:
        return  # batches.meta
    if "data" not in batch or "labels" not in batch:
        raise DamagedFileError(path, f"a CIFAR-10 batch needs 'data' and 'labels', found {sorted(batch)}")
    data, labels = batch["data"], batch["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DamagedFileError(path, f"'data' must be uint8 (N, 3072), got {got}")
    if isinstance(labels, np.ndarray):
        whole = labels.dtype.kind in "iu" and labels.shape == (len(data),)
        ok = whole and (labels.size == 0 or 0 <= labels.min() and labels.max() <= 9)
    else:
        ok = isinstance(labels, list) and len(labels) == len(data) and all(
            type(v) is int and 0 <= v <= 9 for v in labels)
    if not ok:
        raise DamagedFileError(path, f"'labels' must be {len(data)} integers 0..9, one per image")


def read_cifar10_batch(path) -> dict:
    """Read one CIFAR-10 python batch (``data_batch_1`` ... ``test_batch``) with a restricted unpickler.

    The batches are Python pickles, so unpickling is the format itself; :class:`_BatchUnpickler`
    allows only containers, bytes, str, int and numpy arrays of numbers or text, never a class or a
    function, and every length the file declares is checked against its size first. Keys written as
    bytes (Python 2 files) are returned as str.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict
        ``data`` uint8 (N, 3072) (1024 red, 1024 green, 1024 blue values of each 32x32 image, row
        by row), ``labels`` list of N int 0..9, and whatever else the file holds (``batch_label``,
        ``filenames``); ``batches.meta`` holds neither ``data`` nor ``labels``.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not a valid batch or holds anything but plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"CIFAR-10 batch not found: {path}")
    raw = path.read_bytes()
    try:
        with warnings.catch_warnings():  # a damaged STRING opcode warns of invalid escapes: the error says more
            warnings.simplefilter("ignore", DeprecationWarning)
            _check_pickle(raw)
            obj = _BatchUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except UNPICKLE_ERRORS as error:
        raise DamagedFileError(path, f"not a readable CIFAR-10 batch ({error})") from None
    if not isinstance(obj, dict):
        raise DamagedFileError(path, f"a CIFAR-10 batch is a dict, got {type(obj).__name__}")
    if not all(isinstance(k, (str, bytes)) for k in obj):
        raise DamagedFileError(path, f"a CIFAR-10 batch has text keys, got {[k for k in obj][:10]!r:.200}")
    batch = {_text(k): v.view(np.ndarray) if isinstance(v, _BatchArray) else v for k, v in obj.items()}
    _check_batch(path, batch)
    return batch


def _cifar_arrays(path):
    batch = read_cifar10_batch(path)
    if "data" not in batch:
        raise DamagedFileError(path, f"a CIFAR-10 batch needs 'data' and 'labels', found {sorted(batch)}")
    images = batch["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(batch["labels"]).astype(np.uint8)


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
        raise MissingFileError(
            f"{directory} lacks CIFAR-10 batches {missing}; extract cifar-10-python.tar.gz and pass the "
            f"{CIFAR10_SUBDIR} directory"
        )
    parts = [_cifar_arrays(directory / n) for n in CIFAR10_TRAIN_FILES]
    x_test, y_test = _cifar_arrays(directory / CIFAR10_TEST_FILE)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    if (directory / CIFAR10_META_FILE).is_file():
        meta = read_cifar10_batch(directory / CIFAR10_META_FILE)
        if "label_names" in meta:
            names = meta["label_names"]
            if not isinstance(names, list) or len(names) != 10 or not all(isinstance(n, (str, bytes)) for n in names):
                raise DamagedFileError(directory / CIFAR10_META_FILE, "'label_names' must be a list of 10 names")
            names = [_text(n) for n in names]
    return {"x_train": np.concatenate([p[0] for p in parts]), "y_train": np.concatenate([p[1] for p in parts]),
            "x_test": x_test, "y_test": y_test, "label_names": names}
