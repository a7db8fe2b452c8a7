"""CIFAR-10 and SVHN loaders, on small files in the real formats written here."""

import pickle

import numpy as np
import pytest
from scipy.io import savemat

from bitsim.datasets import load_cifar10, load_svhn, read_cifar10_batch, read_svhn_mat
from fuzzing import py2_pickle


def images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def write_cifar(directory, per_batch=3, style="py2"):
    """Five training batches and a test batch of ``per_batch`` images; returns the NHWC images and labels."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        x = images(per_batch, i)
        y = [(3 * i + j) % 10 for j in range(per_batch)]
        data = x.transpose(0, 3, 1, 2).reshape(per_batch, 3072)  # 1024 R, 1024 G, 1024 B, row by row
        batch = {b"batch_label": f"batch {i}".encode(), b"labels": y, b"data": data,
                 b"filenames": [f"img{j}.png".encode() for j in range(per_batch)]}
        raw = py2_pickle(batch) if style == "py2" else pickle.dumps(batch, protocol=2)
        (directory / name).write_bytes(raw)
        out[name] = (x, np.array(y, np.uint8))
    meta = {b"label_names": [n.encode() for n in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]],
            b"num_vis": 3072}
    (directory / "batches.meta").write_bytes(py2_pickle(meta))
    return out


@pytest.mark.parametrize("style", ["py2", "py3"])
def test_cifar10_round_trip_nhwc(tmp_path, style):
    written = write_cifar(tmp_path / "cifar-10-batches-py", style=style)
    data = load_cifar10(tmp_path)  # the parent directory works too
    assert data["x_train"].shape == (15, 32, 32, 3) and data["x_train"].dtype == np.uint8
    expect = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    np.testing.assert_array_equal(data["x_train"], expect)
    np.testing.assert_array_equal(data["y_train"], np.concatenate([written[f"data_batch_{i}"][1] for i in range(1, 6)]))
    np.testing.assert_array_equal(data["x_test"], written["test_batch"][0])
    assert data["label_names"][:2] == ["a", "b"]
    # pixel (row 0, col 1) of image 0: the red value is data[1], green data[1025], blue data[2049]
    raw = read_cifar10_batch(tmp_path / "cifar-10-batches-py" / "test_batch")
    assert tuple(data["x_test"][0, 0, 1]) == (raw["data"][0, 1], raw["data"][0, 1025], raw["data"][0, 2049])
    assert raw["filenames"][0] in (b"img0.png", "img0.png")


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo owned",))


def test_cifar10_refuses_anything_but_plain_data(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match=r"refusing to load (posix|os)\.system"):
        load_cifar10(tmp_path)
    from collections import OrderedDict

    (tmp_path / "data_batch_3").write_bytes(pickle.dumps(OrderedDict(data=1), protocol=2))
    with pytest.raises(ValueError, match="refusing to load collections.OrderedDict"):
        read_cifar10_batch(tmp_path / "data_batch_3")
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps([1, 2], protocol=4))
    with pytest.raises(ValueError, match="is a dict"):
        read_cifar10_batch(tmp_path / "data_batch_3")


def test_cifar10_errors_say_what_is_wrong(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_2").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_2"):
        load_cifar10(tmp_path)
    write_cifar(tmp_path)
    (tmp_path / "test_batch").write_bytes(py2_pickle({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"\(N, 3072\)"):
        load_cifar10(tmp_path)
    (tmp_path / "test_batch").write_bytes(py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 11]}))
    with pytest.raises(ValueError, match="0..9"):
        load_cifar10(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a readable CIFAR-10 batch"):
        load_cifar10(tmp_path)


def write_svhn(path, n, seed):
    x = images(n, seed)
    y = (np.arange(n) % 10) + 1  # 1..10, 10 meaning the digit 0
    savemat(path, {"X": x.transpose(1, 2, 3, 0), "y": y.reshape(-1, 1).astype(np.uint8)})
    return x, y % 10


def test_svhn_files_and_directory(tmp_path):
    train = write_svhn(tmp_path / "train_32x32.mat", 12, 1)
    test = write_svhn(tmp_path / "test_32x32.mat", 5, 2)
    data = load_svhn(tmp_path)
    assert set(data) == {"x_train", "y_train", "x_test", "y_test"}
    np.testing.assert_array_equal(data["x_train"], train[0])
    np.testing.assert_array_equal(data["y_train"], train[1])
    assert data["y_train"][9] == 0 and data["y_train"].dtype == np.uint8
    np.testing.assert_array_equal(data["x_test"], test[0])
    extra = write_svhn(tmp_path / "extra_32x32.mat", 3, 3)
    np.testing.assert_array_equal(load_svhn(tmp_path)["x_extra"], extra[0])
    one = load_svhn(tmp_path / "test_32x32.mat")
    np.testing.assert_array_equal(one["x"], test[0])
    x, y = read_svhn_mat(tmp_path / "train_32x32.mat")
    assert x.shape == (12, 32, 32, 3) and x.flags.c_contiguous


def test_svhn_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_32x32.mat"):
        load_svhn(tmp_path)
    savemat(tmp_path / "bad.mat", {"X": np.zeros((28, 28, 3, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(ValueError, match=r"\(32, 32, 3, N\)"):
        read_svhn_mat(tmp_path / "bad.mat")
    savemat(tmp_path / "bad.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.zeros((2, 1))})
    with pytest.raises(ValueError, match="1..10"):
        read_svhn_mat(tmp_path / "bad.mat")
    savemat(tmp_path / "bad.mat", {"images": np.zeros(3)})
    with pytest.raises(ValueError, match="X and y"):
        read_svhn_mat(tmp_path / "bad.mat")
    (tmp_path / "bad.mat").write_bytes(b"nonsense")
    with pytest.raises(ValueError, match="not a readable MATLAB file"):
        read_svhn_mat(tmp_path / "bad.mat")
