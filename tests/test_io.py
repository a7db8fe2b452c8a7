import json

import numpy as np
import pytest

from bitsim.io import atomic_write_bytes, load_bundle, save_bundle


def test_bundle_round_trip_is_exact(tmp_path):
    arrays = {"w": np.arange(12, dtype=np.uint64).reshape(3, 4) * (2**61 + 3), "t": np.int32([-5, 7]),
              "f": np.float32([0.1, -0.0, np.inf]), "scalar": np.array(7, np.int64),
              "strided": np.arange(20, dtype=np.int16).reshape(4, 5)[:, ::2]}
    save_bundle(tmp_path / "m", arrays, "test.kind", {"layers": [1, 2]})
    loaded, meta = load_bundle(tmp_path / "m.json", "test.kind")
    assert meta == {"layers": [1, 2]}
    for name, a in arrays.items():
        assert loaded[name].dtype == a.dtype and loaded[name].shape == a.shape
        np.testing.assert_array_equal(loaded[name], a)
        assert loaded[name].tobytes() == a.tobytes()


def test_bundle_bytes_are_deterministic(tmp_path):
    arrays = {"a": np.arange(5)}
    save_bundle(tmp_path / "x", arrays, "k")
    save_bundle(tmp_path / "y", arrays, "k")
    assert (tmp_path / "x.npz").read_bytes() == (tmp_path / "y.npz").read_bytes()


def test_damage_is_reported(tmp_path):
    save_bundle(tmp_path / "m", {"a": np.arange(5)}, "k")
    with pytest.raises(ValueError, match="holds 'k', expected 'other'"):
        load_bundle(tmp_path / "m", "other")
    data = bytearray((tmp_path / "m.npz").read_bytes())
    data[-30] ^= 1
    (tmp_path / "m.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match the checksum"):
        load_bundle(tmp_path / "m")
    (tmp_path / "m.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_bundle(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="no manifest"):
        load_bundle(tmp_path / "absent")
    manifest = {"kind": "k", "format_version": 99}
    (tmp_path / "v.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="format version 99"):
        load_bundle(tmp_path / "v")


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(TypeError, match="without pickle"):
        save_bundle(tmp_path / "m", {"a": np.array([{}], dtype=object)}, "k")


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    import os

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / "f.bin", b"abc")
    assert list(tmp_path.iterdir()) == []
