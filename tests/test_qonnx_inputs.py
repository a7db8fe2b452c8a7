"""The dtypes `bitsim qonnx` and `bitsim export MODEL.onnx` read from --inputs: uint8, int8 and float32."""

import numpy as np
import pytest
import qonnx_networks as nets

from bitsim.cli import main
from bitsim.errors import InputTypeError
from bitsim.interop import qonnx
from bitsim.io import read_inputs


@pytest.mark.parametrize("dtype", ["uint8", "int8", "float32"])
def test_read_inputs_takes_the_dtypes_it_is_given(tmp_path, dtype):
    x = np.arange(12).reshape(3, 4).astype(dtype)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", x=x)
    for name in ("x.npy", "x.npz"):
        got = read_inputs(tmp_path / name, ("uint8", "int8", "float32"))
        assert got.dtype == dtype and np.array_equal(got, x)
    if dtype != "uint8":
        with pytest.raises(InputTypeError, match=f"dtype {dtype}; export needs uint8"):
            read_inputs(tmp_path / "x.npy")


def test_other_dtypes_and_byte_orders_are_refused_by_name(tmp_path):
    np.save(tmp_path / "f64.npy", np.zeros((2, 3)))
    np.save(tmp_path / "big.npy", np.zeros((2, 3), ">f4"))
    for name in ("f64.npy", "big.npy"):
        with pytest.raises(InputTypeError, match="give one of uint8, int8, float32"):
            read_inputs(tmp_path / name, ("uint8", "int8", "float32"))


def test_a_truncated_float32_file_is_damaged_not_short(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.ones((4, 5), np.float32))
    path.write_bytes(path.read_bytes()[:-4])
    assert main(["qonnx", "run", str(nets.save(nets.tfc(seed=3), tmp_path / "m.onnx")), "--inputs", str(path)]) == 2


def test_float32_inputs_run_check_and_export(tmp_path, capsys):
    model = nets.save(nets.tfc(seed=3, pow2=False), tmp_path / "m.onnx")
    x = np.random.default_rng(3).uniform(-1, 1, (4, 784)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["qonnx", "run", str(model), "--inputs", str(tmp_path / "x.npy"), "--out", str(tmp_path / "run")]) == 0
    with np.load(tmp_path / "run" / "tensors.npz") as saved:
        expected = qonnx.load(model).run(x)
        assert all(np.array_equal(saved[name], expected[name]) for name in expected)
    assert main(["qonnx", "check", str(model), "--inputs", str(tmp_path / "x.npy")]) == 0
    assert main(["export", str(model), "--inputs", str(tmp_path / "x.npy"), "--out", str(tmp_path / "g")]) == 0
    assert "wrote" in capsys.readouterr().out
