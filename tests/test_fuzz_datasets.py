"""Fuzzing the data-set loaders of :mod:`bitsim.datasets`: a damaged file loads or is refused with a bitsim error.

Each test mutates one tiny data file in place (restoring it after every example) and checks the property
of its loaders. A file read against its checksum (``mnist.npz`` and ``shakespeare.txt.xz`` with
``verify=True``) loads exactly the original content or raises a :class:`~bitsim.errors.BitsimError`.
A file without one (the same files with ``verify=False``, IDX files, CIFAR-10 batches, SVHN ``.mat``
files) loads data of the documented dtype and shape, possibly other values, or raises a bitsim error
whose message names the file. Never another exception type. Besides the shared byte and array edits of
:mod:`fuzzing`, edits aim at the bytes a parser decides on: zip and ``.mat`` headers, IDX headers,
pickle opcodes. The ``ci`` profile runs :data:`fuzzing.FUZZ_CASES` cases per test.
"""

import gzip
import io
import lzma
import math
import pickle
import pickletools
import struct
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.io import savemat

from bitsim import datasets
from bitsim.datasets import mnist as mnist_module
from bitsim.datasets import text as text_module
from bitsim.io import sha256_file as sha256
from bitsim.errors import DamagedFileError
from fuzzing import (CHUNKS, POS, ArrayEdit, Delete, Duplicate, Files, Flip, Insert, Replace, Truncate, array_edits,
                     byte_edits, call, expect, fuzz_settings, npz_of, py2_pickle, record, refused)

pytest_plugins = ["fuzz_summary_plugin"]


def edits_at(spots):
    """Byte edits at or just after ``spots`` (offsets of headers, fields, opcodes), where parsers decide."""
    at = st.builds(int.__add__, st.sampled_from(sorted(set(spots))), st.integers(0, 7))
    return st.one_of(
        st.builds(Truncate, at),
        st.builds(lambda p, b: Flip(8 * p + b), at, st.integers(0, 7)),
        st.builds(Replace, at, st.integers(0, 255)),
        st.builds(Insert, at, CHUNKS),
        st.builds(Delete, at, st.integers(1, 64)),
        st.builds(Duplicate, at, st.integers(1, 64), POS),
    )


def named(err, *paths):
    """True when the message of ``err`` names one of ``paths``."""
    return any(str(p) in str(err) for p in paths)


def refused_naming(loader, mutation, err, *paths):
    """A bitsim error whose message names the damaged file (or its directory)."""
    refused(loader, mutation, err)
    expect(named(err, *paths), loader, mutation, f"the message does not name {paths[0]}: {err}")


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def same_arrays(got, want):
    """Same keys in the same order, each array bit-identical."""
    return list(got) == list(want) and all(same_bits(got[k], want[k]) for k in want)


def digits(n, seed):
    """``n`` MNIST-like images: 28 x 28 uint8, mostly background, strokes of any grey level."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 28, 28)) * (rng.random((n, 28, 28)) < 0.2)).astype(np.uint8)


MNIST = {"x_train": digits(20, 1), "y_train": np.arange(20, dtype=np.uint8) % 10,
         "x_test": digits(6, 2), "y_test": np.arange(6, dtype=np.uint8)[::-1].copy()}


def zip_spots(data):
    """Offsets of the fields of every zip local header, central directory entry and end record."""
    spots = []
    for signature, size in ((b"PK\x03\x04", 30), (b"PK\x01\x02", 46), (b"PK\x05\x06", 22)):
        at = data.find(signature)
        while at >= 0:
            spots += range(at, at + size, 2)
            at = data.find(signature, at + 1)
    return spots


# ---------------------------------------------------------------------------------------------------
# load_mnist: a small mnist.npz of the bundled layout (data/build.py), read with and without its checksum

def mnist_npz(arrays):
    """The layout of data/build.py: deflated ``KEY.npy`` members with a fixed date."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for key, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system, info.external_attr = 3, 0o644 << 16
            zf.writestr(info, member.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    path = tmp_path_factory.mktemp("mnist") / "mnist.npz"
    path.write_bytes(mnist_npz(MNIST))
    files = Files(path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mnist_module, "MNIST_SHA256", sha256(path))
        assert same_arrays(datasets.load_mnist(path), MNIST)
        yield path, files, st.one_of(byte_edits, edits_at(zip_spots(files.original[path])), array_edits)


def mnist_layout(got):
    """The documented layout: uint8 images (N, 28, 28) and N uint8 labels, for train and test."""
    if not isinstance(got, dict) or list(got) != list(MNIST):
        return False
    if not all(isinstance(a, np.ndarray) and a.dtype == np.uint8 for a in got.values()):
        return False
    return all(got[f"x_{s}"].shape == (len(got[f"y_{s}"]), 28, 28) and got[f"y_{s}"].ndim == 1
               for s in ("train", "test"))


@fuzz_settings
@given(data=st.data())
def test_load_mnist(mnist, data):
    """With its checksum a damaged mnist.npz loads unchanged or is refused; without, it keeps the layout."""
    path, files, mutations = mnist
    edit = data.draw(mutations, "mutation")
    files.write(path, npz_of(edit(MNIST)) if isinstance(edit, ArrayEdit) else edit(files.original[path]))
    try:
        checked, err = call(datasets.load_mnist, path, True)
        if err is not None:
            refused_naming("load_mnist verify=True", edit, err, path)
        else:
            expect(same_arrays(checked, MNIST), "load_mnist verify=True", edit, "loaded other arrays")
            record("load_mnist verify=True", "unchanged")
        got, err = call(datasets.load_mnist, path, False)
    finally:
        files.restore()
    loader = "load_mnist verify=False"
    if err is not None:
        return refused_naming(loader, edit, err, path)
    expect(mnist_layout(got), loader, edit, lambda: f"loaded {layout(got)}")
    record(loader, "unchanged" if same_arrays(got, MNIST) else "different")


def layout(got):
    """Types, dtypes and shapes of a loader's result, for failure messages."""
    if isinstance(got, dict):
        return {k: layout(v) for k, v in got.items()}
    if isinstance(got, (tuple, list)) and len(got) < 20:
        return type(got)([layout(v) for v in got])
    if isinstance(got, np.ndarray):
        return f"{got.dtype} {got.shape}"
    return type(got).__name__


# ---------------------------------------------------------------------------------------------------
# read_idx and load_mnist_idx: the four IDX files of MNIST, two plain and two gzip-compressed

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte.gz",
             "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte"}


def idx_of(array):
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def gunzip(data):
    """What the loader reads: gzip data (by its magic) decompressed, anything else as it is; None if damaged."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        return None


def idx_oracle(raw):
    """The array an IDX file holds by the format's definition (header, then big-endian data), or None."""
    if raw is None or len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_TYPES or raw[3] == 0:
        return None
    ndim, dtype = raw[3], np.dtype(IDX_TYPES[raw[2]])
    if len(raw) < 4 + 4 * ndim:
        return None
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    if len(raw) != 4 + 4 * ndim + math.prod(shape) * dtype.itemsize:
        return None
    return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(shape).astype(dtype.newbyteorder("="))


class Gzipped:
    """An edit of the decompressed content of a gzip file, compressed again."""

    def __init__(self, edit):
        self.edit = edit

    def __call__(self, data):
        return gzip.compress(self.edit(gzip.decompress(data)), mtime=0)

    def __repr__(self):
        return f"Gzipped({self.edit!r})"


@pytest.fixture(scope="module")
def idx(tmp_path_factory):
    directory = tmp_path_factory.mktemp("idx")
    for key, name in IDX_FILES.items():
        raw = idx_of(MNIST[key])
        (directory / name).write_bytes(gzip.compress(raw, mtime=0) if name.endswith(".gz") else raw)
    files = Files(*(directory / name for name in IDX_FILES.values()))
    header = edits_at(range(16))
    mutations = {name: st.one_of(byte_edits, header) if not name.endswith(".gz") else
                 st.one_of(byte_edits, st.builds(Gzipped, st.one_of(byte_edits, header)))
                 for name in IDX_FILES.values()}
    assert same_arrays(datasets.load_mnist_idx(directory), MNIST)
    return directory, files, mutations


@fuzz_settings
@given(data=st.data())
def test_idx(idx, data):
    """read_idx reads exactly what a damaged IDX file declares or refuses it; load_mnist_idx keeps the layout."""
    directory, files, mutations = idx
    name = data.draw(st.sampled_from(sorted(IDX_FILES.values())), "file")
    edit = data.draw(mutations[name], "mutation")
    path = directory / name
    mutated = edit(files.original[path])
    files.write(path, mutated)
    try:
        array, err = call(datasets.read_idx, path)
        arrays, dir_err = call(datasets.load_mnist_idx, directory)
    finally:
        files.restore()
    mutation = (name, edit)
    want = idx_oracle(gunzip(mutated))
    if err is not None:
        refused_naming("read_idx", mutation, err, path)
        expect(want is None, "read_idx", mutation, lambda: f"refused a valid IDX file of {layout(want)}")
    else:
        expect(want is not None, "read_idx", mutation, lambda: f"loaded {layout(array)} from an invalid IDX file")
        expect(same_bits(array, want), "read_idx", mutation, lambda: f"loaded {layout(array)}, not {layout(want)}")
        key = next(k for k, n in IDX_FILES.items() if n == name)
        record("read_idx", "unchanged" if same_bits(array, MNIST[key]) else "different")
    loader = "load_mnist_idx"
    if dir_err is not None:
        return refused_naming(loader, mutation, dir_err, path, directory)
    layout_ok = isinstance(arrays, dict) and list(arrays) == list(MNIST) and all(
        a.dtype == np.uint8 and a.ndim == (3 if k[0] == "x" else 1) for k, a in arrays.items())
    expect(layout_ok and all(len(arrays[f"x_{s}"]) == len(arrays[f"y_{s}"]) for s in ("train", "test")), loader,
           mutation, lambda: f"loaded {layout(arrays)}")
    record(loader, "unchanged" if same_arrays(arrays, MNIST) else "different")


# ---------------------------------------------------------------------------------------------------
# load_shakespeare: a small .txt.xz of the bundled kind (data/build.py), with and without its checksum

TEXT = ("ALL'S WELL THAT ENDS WELL\n\nby William Shakespeare\n\n"
        "It is like a barber's chair, that fits all buttocks.\n" * 3)


XZ_MUTATIONS = st.one_of(byte_edits, edits_at(range(64)))  # the whole file is about 170 bytes


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "shakespeare.txt.xz"
    path.write_bytes(lzma.compress(TEXT.encode("ascii"), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=9))
    files = Files(path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(text_module, "SHAKESPEARE_SHA256", sha256(path))
        assert datasets.load_shakespeare(path) == TEXT
        yield path, files


@fuzz_settings
@given(data=st.data())
def test_load_shakespeare(corpus, data):
    """With its checksum a damaged corpus loads unchanged or is refused; without, it loads some text."""
    path, files = corpus
    edit = data.draw(XZ_MUTATIONS, "mutation")
    files.write(path, edit(files.original[path]))
    try:
        checked, err = call(datasets.load_shakespeare, path, True)
        if err is not None:
            refused_naming("load_shakespeare verify=True", edit, err, path)
        else:
            expect(checked == TEXT, "load_shakespeare verify=True", edit, "loaded another text")
            record("load_shakespeare verify=True", "unchanged")
        text, err = call(datasets.load_shakespeare, path, False)
    finally:
        files.restore()
    loader = "load_shakespeare verify=False"
    if err is not None:
        return refused_naming(loader, edit, err, path)
    expect(isinstance(text, str), loader, edit, lambda: f"loaded {type(text).__name__}")
    record(loader, "unchanged" if text == TEXT else "different")


# ---------------------------------------------------------------------------------------------------
# read_cifar10_batch and load_cifar10: tiny batches, written by Python 3 (protocol 2) and as Python 2 did

def cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    return {b"batch_label": f"batch {seed}".encode(), b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img{seed}_{j}.png".encode() for j in range(n)]}


CIFAR_META = {b"label_names": [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                                   "frog", "horse", "ship", "truck")],
              b"num_cases_per_batch": 2, b"num_vis": 3072}
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def pickle_spots(data):
    """Offsets of every opcode of a pickle and of the first bytes of its argument."""
    return [pos + d for _, _, pos in pickletools.genops(data) for d in (0, 1)]


def same_value(a, b):
    """Deep equality of plain data: same types, arrays bit-identical."""
    if isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and same_bits(a, b)
    if isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same_value, a, b))
    if isinstance(b, dict):
        return isinstance(a, dict) and list(a) == list(b) and all(same_value(a[k], b[k]) for k in b)
    return type(a) is type(b) and a == b


def batch_layout(batch):
    """The documented content of a batch: ``data`` uint8 (N, 3072) with ``labels`` N ints 0..9, or neither."""
    if not isinstance(batch, dict) or not all(isinstance(k, str) for k in batch):
        return False
    if "data" not in batch and "labels" not in batch:
        return True
    data, labels = batch.get("data"), batch.get("labels")
    return (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072
            and isinstance(labels, list) and len(labels) == len(data)
            and all(type(v) is int and 0 <= v <= 9 for v in labels))


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py"
    directory.mkdir()
    batches = {name: cifar_batch(2 if name == "test_batch" else 1, seed) for seed, name in enumerate(CIFAR_FILES)}
    for name, batch in batches.items():
        (directory / name).write_bytes(py2_pickle(batch) if name == "data_batch_1" else pickle.dumps(batch, 2))
    (directory / "batches.meta").write_bytes(py2_pickle(CIFAR_META))
    batches["batches.meta"] = CIFAR_META
    files = Files(*(directory / name for name in batches))
    mutations = {name: st.one_of(byte_edits, edits_at(pickle_spots(files.original[directory / name])))
                 for name in ("test_batch", "data_batch_1", "batches.meta")}
    want = {name: datasets.read_cifar10_batch(directory / name) for name in batches}
    for name, batch in batches.items():
        assert all(same_value(want[name][k.decode()], v) for k, v in batch.items() if k in (b"data", b"labels"))
    loaded = datasets.load_cifar10(directory)
    return directory, files, mutations, want, loaded


def cifar_layout(got):
    if not isinstance(got, dict) or sorted(got) != ["label_names", "x_test", "x_train", "y_test", "y_train"]:
        return False
    names = got["label_names"]
    if not isinstance(names, list) or len(names) != 10 or not all(isinstance(n, str) for n in names):
        return False
    return all(isinstance(got[f"{p}_{s}"], np.ndarray) and got[f"{p}_{s}"].dtype == np.uint8
               and got[f"x_{s}"].shape[1:] == (32, 32, 3) and got[f"y_{s}"].shape == (len(got[f"x_{s}"]),)
               for p in "xy" for s in ("train", "test"))


@fuzz_settings
@given(data=st.data())
def test_cifar10(cifar, data):
    """A damaged batch loads plain data of the documented layout or is refused, by both readers."""
    directory, files, mutations, want, loaded = cifar
    name = data.draw(st.sampled_from(sorted(mutations)), "file")
    edit = data.draw(mutations[name], "mutation")
    path = directory / name
    files.write(path, edit(files.original[path]))
    try:
        batch, err = call(datasets.read_cifar10_batch, path)
        everything, dir_err = call(datasets.load_cifar10, directory)
    finally:
        files.restore()
    mutation = (name, edit)
    if err is not None:
        refused_naming("read_cifar10_batch", mutation, err, path)
    else:
        expect(batch_layout(batch), "read_cifar10_batch", mutation, lambda: f"loaded {layout(batch)}")
        record("read_cifar10_batch", "unchanged" if same_value(batch, want[name]) else "different")
    loader = "load_cifar10"
    if dir_err is not None:
        return refused_naming(loader, mutation, dir_err, path)
    expect(cifar_layout(everything), loader, mutation, lambda: f"loaded {layout(everything)}")
    same = all(same_bits(everything[k], loaded[k]) for k in loaded if k != "label_names")
    record(loader, "unchanged" if same and everything["label_names"] == loaded["label_names"] else "different")


# ---------------------------------------------------------------------------------------------------
# read_svhn_mat and load_svhn: tiny MATLAB files of SVHN format 2 (labels stored as double, as SVHN does)

def svhn(n, seed):
    x = np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = (np.arange(n) + seed) % 10 + 1.0
    return x, y


def mat_spots(data):
    """Offsets of the header and of the first bytes of every top-level element of a MATLAB 5 file."""
    spots, at = list(range(116, 128)), 128
    while at + 8 <= len(data):
        spots += range(at, min(at + 64, len(data)))
        at += 8 + struct.unpack_from("<I", data, at + 4)[0]
    return spots


@pytest.fixture(scope="module")
def mat(tmp_path_factory):
    """train_32x32.mat as scipy writes it by default, test_32x32.mat compressed as MATLAB writes it."""
    directory = tmp_path_factory.mktemp("svhn")
    want = {}
    for name, n, seed, compress in (("train_32x32.mat", 2, 1, False), ("test_32x32.mat", 1, 2, True)):
        x, y = svhn(n, seed)
        savemat(directory / name, {"X": x.transpose(1, 2, 3, 0), "y": y.reshape(-1, 1)}, do_compression=compress)
        want[name] = x, (y % 10).astype(np.uint8)
    files = Files(*(directory / name for name in want))
    mutations = {name: st.one_of(byte_edits, edits_at(mat_spots(files.original[directory / name])))
                 for name in want}
    assert all(all(map(same_bits, datasets.read_svhn_mat(directory / name), want[name])) for name in want)
    return directory, files, mutations, want


def svhn_layout(x, y):
    return (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 4 and x.shape[1:] == (32, 32, 3)
            and x.flags.c_contiguous and isinstance(y, np.ndarray) and y.dtype == np.uint8
            and y.shape == (len(x),) and (y.size == 0 or y.max() <= 9))


@fuzz_settings
@given(data=st.data())
def test_svhn(mat, data):
    """A damaged SVHN .mat file gives uint8 NHWC images and digits 0..9, or is refused, by both readers."""
    directory, files, mutations, want = mat
    name = data.draw(st.sampled_from(sorted(mutations)), "file")
    edit = data.draw(mutations[name], "mutation")
    path = directory / name
    files.write(path, edit(files.original[path]))
    try:
        got, err = call(datasets.read_svhn_mat, path)
        everything, dir_err = call(datasets.load_svhn, directory)
    finally:
        files.restore()
    mutation = (name, edit)
    if err is not None:
        refused_naming("read_svhn_mat", mutation, err, path)
    else:
        expect(isinstance(got, tuple) and len(got) == 2 and svhn_layout(*got), "read_svhn_mat", mutation,
               lambda: f"loaded {layout(got)}")
        record("read_svhn_mat", "unchanged" if all(map(same_bits, got, want[name])) else "different")
    loader = "load_svhn"
    if dir_err is not None:
        return refused_naming(loader, mutation, dir_err, path)
    split = name.split("_")[0]
    expect(sorted(everything) == ["x_test", "x_train", "y_test", "y_train"]
           and all(svhn_layout(everything[f"x_{s}"], everything[f"y_{s}"]) for s in ("train", "test")),
           loader, mutation, lambda: f"loaded {layout(everything)}")
    same = all(map(same_bits, (everything[f"x_{split}"], everything[f"y_{split}"]), want[name]))
    record(loader, "unchanged" if same else "different")


# ---------------------------------------------------------------------------------------------------
# one damaged file of each kind that broke a loader, as plain tests

def test_regression_mat_data_type_out_of_range(tmp_path):
    """scipy.io.loadmat crashed the interpreter (SIGSEGV) on a data type code above MATLAB's 18."""
    path = tmp_path / "train_32x32.mat"
    x, y = svhn(2, 1)
    savemat(path, {"X": x.transpose(1, 2, 3, 0), "y": y.reshape(-1, 1)})
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"\x01\x00\x01\x00X\x00\x00\x00") + 8] = 30  # the type of X's data, miUINT8 (2)
    path.write_bytes(raw)
    with pytest.raises(DamagedFileError, match=f"{path}: not a readable MATLAB file.*unknown type 30"):
        datasets.read_svhn_mat(path)


def test_regression_svhn_labels_not_digits(tmp_path):
    """A NaN or fractional label passed the range check and became a digit."""
    x, _ = svhn(3, 1)
    for y in ([1.0, np.nan, 3.0], [1.0, 2.5, 3.0]):
        savemat(tmp_path / "a.mat", {"X": x.transpose(1, 2, 3, 0), "y": np.reshape(y, (-1, 1))})
        with pytest.raises(DamagedFileError, match="labels 1..10"):
            datasets.read_svhn_mat(tmp_path / "a.mat")


def test_regression_pickle_memo_index(tmp_path):
    """A memo index of 1,851,878,512 made the unpickler allocate a 15 GB table (MemoryError)."""
    path = tmp_path / "test_batch"
    path.write_bytes(b"\x80\x02}r" + struct.pack("<I", 1851878512) + b".")
    with pytest.raises(DamagedFileError, match="memo index 1851878512"):
        datasets.read_cifar10_batch(path)


class PickledDtype:
    """Pickles as ``numpy.dtype(spec)`` with a state whose flags (last field) claim Python objects."""

    def __init__(self, spec):
        self.spec = spec

    def __reduce__(self):
        return np.dtype, (self.spec, False, True), (3, "|", None, None, None, -1, -1, 0x3F)


class PickledArray:
    """Pickles as numpy does: ``_reconstruct(ndarray, (0,), b'b')`` with the state (1, shape, dtype, False, data)."""

    def __init__(self, shape, dtype, data):
        self.state = (1, shape, dtype, False, data)

    def __reduce__(self):
        return np.zeros(0).__reduce__()[0], (np.ndarray, (0,), b"b"), self.state


def test_regression_pickled_dtype_state(tmp_path):
    """A dtype's pickled state could make numpy treat raw bytes as Python objects (numpy then raised
    SystemError); the state now gives only the byte order."""
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({"data": PickledArray((1, 8), PickledDtype("V8"), b"A" * 8), "labels": [1]}, 2))
    with pytest.raises(DamagedFileError, match="numbers or text, not 'V8'"):
        datasets.read_cifar10_batch(path)
    path.write_bytes(pickle.dumps({"data": PickledArray((1, 3072), PickledDtype("u1"), b"A" * 3072),
                                   "labels": [1]}, 2))
    data = datasets.read_cifar10_batch(path)["data"]
    assert type(data) is np.ndarray and data.dtype == np.uint8 and not data.dtype.hasobject and data.sum() == 65 * 3072


def test_regression_idx_damaged_deflate(tmp_path):
    """zlib.error escaped from a .gz IDX file whose deflate data was damaged."""
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.compress(idx_of(MNIST["y_train"]), mtime=0))
    raw[10] = 0xFF  # the first deflate block: final, of the invalid type 3
    path.write_bytes(raw)
    with pytest.raises(DamagedFileError, match=f"{path}: damaged or truncated gzip data"):
        datasets.read_idx(path)


def test_regression_npz_declared_sizes_and_types(tmp_path):
    """int32 images loaded as they were with verify=False; a member declaring more bytes than the file holds is
    refused before it is read."""
    path = tmp_path / "mnist.npz"
    raw = bytearray(mnist_npz(MNIST))
    at = raw.index(b"PK\x01\x02") + 20  # x_train's compressed size in the central directory
    raw[at:at + 4] = struct.pack("<I", 0x7FFFFFFF)
    path.write_bytes(raw)
    with pytest.raises(DamagedFileError, match="past the end of the file"):
        datasets.load_mnist(path, verify=False)
    path.write_bytes(mnist_npz({**MNIST, "x_test": MNIST["x_test"].astype(np.int32)}))
    with pytest.raises(DamagedFileError, match=r"test images are int32 \(6, 28, 28\)"):
        datasets.load_mnist(path, verify=False)
