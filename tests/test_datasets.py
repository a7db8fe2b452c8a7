import gzip
import hashlib
import lzma
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitsim import datasets
from bitsim.datasets import (
    char_vocab,
    decode_chars,
    encode_chars,
    load_mnist,
    load_mnist_idx,
    load_shakespeare,
    read_idx,
    split_text,
)

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
SHAKESPEARE_CHARS = 5057321
SHAKESPEARE_VOCAB = 84


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def text():
    return load_shakespeare()


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def idx_bytes(array, code=0x08, dtype=">u1"):
    array = np.asarray(array)
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


# Bundled files


def test_bundled_checksums():
    directory = datasets.data_dir()
    assert sha256(directory / "mnist.npz") == datasets.MNIST_SHA256
    assert sha256(directory / "shakespeare.txt.xz") == datasets.SHAKESPEARE_SHA256


def test_mnist_layout(mnist):
    assert list(mnist) == ["x_train", "y_train", "x_test", "y_test"]
    assert mnist["x_train"].shape == (60000, 28, 28)
    assert mnist["y_train"].shape == (60000,)
    assert mnist["x_test"].shape == (10000, 28, 28)
    assert mnist["y_test"].shape == (10000,)
    assert all(a.dtype == np.uint8 for a in mnist.values())


def test_mnist_values(mnist):
    for key in ("x_train", "x_test"):
        images = mnist[key]
        assert images.min() == 0 and images.max() == 255
        assert 25 < images.mean() < 40
        assert (images.reshape(len(images), -1).max(axis=1) > 0).all()
    assert np.bincount(mnist["y_train"], minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist["y_test"], minlength=10).tolist() == TEST_COUNTS
    assert mnist["y_train"][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist["y_test"][:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_shakespeare(text):
    assert len(text) == SHAKESPEARE_CHARS
    assert text.isascii() and "\r" not in text
    assert text.startswith("ALL'S WELL THAT ENDS WELL\n\nby William Shakespeare\n")
    assert text.endswith("hastily lead away!\n\n[Exeunt.]\n")
    assert text.count("by William Shakespeare") >= 42
    assert "gutenberg" not in text.lower()
    assert len(char_vocab(text)) == SHAKESPEARE_VOCAB


def test_shakespeare_round_trip(text):
    vocab = char_vocab(text)
    ids = encode_chars(text, vocab)
    assert ids.dtype == np.uint8 and ids.shape == (len(text),)
    assert ids.max() == len(vocab) - 1
    assert decode_chars(ids, vocab) == text


# Loader errors and overrides


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="data/build.py"):
        load_mnist(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError, match="BITSIM_DATA"):
        load_shakespeare(tmp_path / "nope.txt.xz")


def test_checksum_mismatch(tmp_path):
    fake = tmp_path / "mnist.npz"
    np.savez_compressed(fake, x_train=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="checksum mismatch.*data/build.py"):
        load_mnist(fake)
    with pytest.raises(ValueError, match="lacks arrays"):
        load_mnist(fake, verify=False)
    corpus = tmp_path / "shakespeare.txt.xz"
    corpus.write_bytes(lzma.compress(b"to be\n"))
    with pytest.raises(ValueError, match="checksum mismatch.*data/build.py"):
        load_shakespeare(corpus)
    assert load_shakespeare(corpus, verify=False) == "to be\n"


def test_env_override(tmp_path, monkeypatch):
    arrays = {
        "x_train": np.full((2, 28, 28), 7, np.uint8),
        "y_train": np.array([1, 2], np.uint8),
        "x_test": np.zeros((1, 28, 28), np.uint8),
        "y_test": np.array([3], np.uint8),
    }
    np.savez_compressed(tmp_path / "mnist.npz", **arrays)
    monkeypatch.setenv("BITSIM_DATA", str(tmp_path))
    assert datasets.data_dir() == tmp_path
    loaded = load_mnist(verify=False)
    for key, array in arrays.items():
        np.testing.assert_array_equal(loaded[key], array)
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_mnist()
    with pytest.raises(FileNotFoundError):
        load_shakespeare()


def test_damaged_xz(tmp_path):
    corpus = tmp_path / "shakespeare.txt.xz"
    corpus.write_bytes(lzma.compress(b"to be or not to be\n")[:-8])
    with pytest.raises(ValueError, match="cannot read"):
        load_shakespeare(corpus, verify=False)


# IDX reader


@pytest.mark.parametrize(
    "code, dtype",
    [(0x08, ">u1"), (0x09, ">i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8")],
)
def test_read_idx_types(tmp_path, code, dtype):
    offset = 0 if dtype == ">u1" else 5
    array = (np.arange(24).reshape(2, 3, 4) - offset).astype(dtype)
    path = tmp_path / "a.idx"
    path.write_bytes(idx_bytes(array, code, dtype))
    result = read_idx(path)
    assert result.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(result, array)


def test_read_idx_gzip(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    path = tmp_path / "labels.idx1.gz"
    path.write_bytes(gzip.compress(idx_bytes(labels)))
    np.testing.assert_array_equal(read_idx(path), labels)
    assert read_idx(str(path)).shape == (5,)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x00", "too short"),
        (b"\x08\x03\x00\x00" + bytes(8), "not an IDX file"),
        (b"\x00\x00\x07\x01" + bytes(8), "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05" + bytes(4), "truncated, 12 bytes"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05" + bytes(6), "trailing data"),
        (b"\x00\x00\x0c\x01\x00\x00\x00\x02" + bytes(7), "truncated"),
    ],
)
def test_read_idx_malformed(tmp_path, data, message):
    path = tmp_path / "bad.idx"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message):
        read_idx(path)


def test_read_idx_truncated_gzip(tmp_path):
    path = tmp_path / "bad.idx.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))[:-10])
    with pytest.raises(ValueError, match="truncated gzip"):
        read_idx(path)


def test_read_idx_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent")


def write_mnist_idx(directory, compress):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 5, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 3, dtype=np.uint8),
    }
    for (key, name), gz in zip(datasets.MNIST_IDX_FILES.items(), compress):
        data = idx_bytes(arrays[key])
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("compress", [(False,) * 4, (True,) * 4, (True, False, False, True)])
def test_load_mnist_idx(tmp_path, compress):
    arrays = write_mnist_idx(tmp_path, compress)
    loaded = load_mnist_idx(tmp_path)
    assert list(loaded) == list(arrays)
    for key, array in arrays.items():
        np.testing.assert_array_equal(loaded[key], array)
        assert loaded[key].dtype == np.uint8


def test_load_mnist_idx_errors(tmp_path):
    write_mnist_idx(tmp_path, (False,) * 4)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(2, np.uint8)))
    with pytest.raises(ValueError, match="test images .* do not match"):
        load_mnist_idx(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist_idx(tmp_path)


# Vocabulary and splits


def test_vocab_encode():
    vocab = char_vocab("hello world")
    assert vocab == [" ", "d", "e", "h", "l", "o", "r", "w"]
    ids = encode_chars("hello", vocab)
    assert ids.tolist() == [3, 2, 4, 4, 5] and ids.dtype == np.uint8
    assert encode_chars("", vocab).shape == (0,)
    assert encode_chars("ba", ["b", "a"]).tolist() == [0, 1]
    with pytest.raises(ValueError, match="not in vocab"):
        encode_chars("help", vocab)
    with pytest.raises(ValueError, match="duplicate"):
        encode_chars("a", ["a", "a"])
    with pytest.raises(ValueError, match="single characters"):
        encode_chars("a", ["ab"])
    with pytest.raises(ValueError, match="ids must lie"):
        decode_chars([8], vocab)
    with pytest.raises(ValueError, match="integers"):
        decode_chars([1.0], vocab)
    assert decode_chars([], vocab) == ""
    assert decode_chars(np.array([0, 1]), ["\x00", "a"]) == "\x00a"


def test_encode_large_vocab():
    text = "".join(chr(0x100 + i) for i in range(300)) + "é€😀"
    vocab = char_vocab(text)
    ids = encode_chars(text, vocab)
    assert ids.dtype == np.int32
    assert decode_chars(ids, vocab) == text


@given(st.text(max_size=200))
def test_round_trip_property(text):
    vocab = char_vocab(text)
    assert decode_chars(encode_chars(text, vocab), vocab) == text


def test_split_boundaries():
    assert split_text(100) == ((0, 90), (90, 95), (95, 100))
    assert split_text(SHAKESPEARE_CHARS) == (
        (0, 4551588), (4551588, 4804454), (4804454, SHAKESPEARE_CHARS)
    )
    assert split_text(0) == ((0, 0), (0, 0), (0, 0))
    assert split_text(10, (1 / 3, 1 / 3, 1 / 3)) == ((0, 3), (3, 6), (6, 10))
    assert split_text(7, (1.0,)) == ((0, 7),)
    with pytest.raises(ValueError, match="sum to 1"):
        split_text(10, (0.5, 0.4))
    with pytest.raises(ValueError, match="non-negative"):
        split_text(10, (1.5, -0.5))
    with pytest.raises(ValueError, match="non-negative"):
        split_text(-1)


@given(st.integers(0, 10**9))
def test_split_contiguous(n):
    parts = split_text(n)
    assert parts[0][0] == 0 and parts[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    assert all(start <= stop for start, stop in parts)
    assert parts[0][1] == (9 * n) // 10
    assert parts[1][1] == (95 * n) // 100


def test_build_unpickler_refuses_other_globals():
    import importlib.util
    import io
    import pickle
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "data" / "build.py"
    spec = importlib.util.spec_from_file_location("data_build", script)
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)

    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    restored = build.NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(array, protocol=4))).load()
    np.testing.assert_array_equal(restored, array)
    for obj in (print, struct.pack, {1: np.int64(3)}):
        with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
            build.NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(obj, protocol=4))).load()


# random translations (docs/formats.md, section 5) against Python-integer oracles

def shifts_oracle(draws, n, max_shift):
    values = [int(u) * (2 * max_shift + 1) // 2**32 - max_shift for u in draws]
    return values[0:2 * n:2], values[1:2 * n:2]


def translate_oracle(images, dy, dx):
    n, h, w = images.shape
    out = np.zeros_like(images)
    for i in range(n):
        for r in range(h):
            for c in range(w):
                if 0 <= r - dy[i] < h and 0 <= c - dx[i] < w:
                    out[i, r, c] = images[i, r - dy[i], c - dx[i]]
    return out


@pytest.mark.parametrize("name", ["philox", "xorshift32"])
@pytest.mark.parametrize("max_shift", [1, 2, 5, 1000])
def test_random_shifts_follow_the_written_rule(name, max_shift):
    from bitsim.formats.rng import make_rng

    dy, dx = datasets.random_shifts(make_rng(name, 11), 500, max_shift)
    want = shifts_oracle(make_rng(name, 11).uint32(1000), 500, max_shift)
    assert (dy.tolist(), dx.tolist()) == want
    assert dy.min() >= -max_shift and dx.max() <= max_shift
    if max_shift <= 2:  # every value is drawn
        assert set(dy.tolist()) == set(range(-max_shift, max_shift + 1)) == set(dx.tolist())


def test_random_shifts_boundaries_and_errors():
    from bitsim.formats.rng import Philox, Xorshift32

    class Fixed:  # draws chosen at the edges of the intervals of floor(u * 5 / 2**32)
        def uint32(self, n):
            return np.array([0, 2**32 - 1, 858993459, 858993460, 3435973836, 3435973837][:n], dtype=np.uint32)

    worked = datasets.random_shifts(Xorshift32(1), 2, 2)  # docs/formats.md, section 5
    assert (worked[0].tolist(), worked[1].tolist()) == ([-2, 1], [-2, -2])
    dy, dx = datasets.random_shifts(Fixed(), 3, 2)
    assert dy.tolist() == [-2, -2, 1] and dx.tolist() == [2, -1, 2]
    rng = Philox(3)
    assert datasets.random_shifts(rng, 4, 0)[0].tolist() == [0] * 4 and rng.drawn == 0  # no draws without shifts
    for bad in (-1, 2**31, 1.5, True):
        with pytest.raises(ValueError, match="max_shift"):
            datasets.random_shifts(rng, 4, bad)
    dy, dx = datasets.random_shifts(Philox(3), 3, 2**31 - 1)  # the largest: (2N + 1) * u still fits in 64 bits
    want = shifts_oracle(Philox(3).uint32(6), 3, 2**31 - 1)
    assert (dy.tolist(), dx.tolist()) == want


@given(st.integers(1, 6), st.integers(1, 7), st.integers(1, 7), st.integers(0, 2**32 - 1))
def test_translate_equals_the_pixel_oracle(n, h, w, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, h, w), dtype=np.uint8)
    dy, dx = rng.integers(-h - 1, h + 2, n), rng.integers(-w - 1, w + 2, n)
    got = datasets.translate(images, dy, dx)
    assert got.dtype == images.dtype
    np.testing.assert_array_equal(got, translate_oracle(images, dy, dx))


def test_translate_worked_example_and_errors():
    # docs/formats.md, section 5: a 3x3 image moved one row down and one column left
    image = np.arange(1, 10, dtype=np.uint8).reshape(1, 3, 3)
    assert datasets.translate(image, [1], [-1])[0].tolist() == [[0, 0, 0], [2, 3, 0], [5, 6, 0]]
    assert datasets.translate(image, [0], [0])[0].tolist() == image[0].tolist()
    with pytest.raises(ValueError, match=r"shape \(n, H, W\)"):
        datasets.translate(image[0], [0], [0])
    with pytest.raises(ValueError, match="one shift per image"):
        datasets.translate(image, [0, 1], [0, 1])
    with pytest.raises(ValueError, match="whole pixels"):
        datasets.translate(image, [0.7], [0])
    assert datasets.translate(image[:0], [], []).shape == (0, 3, 3)
