import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitsim.deploy import IntegerModel, check_exact, compile_model
from bitsim.deploy.packed import fold_threshold
from bitsim.formats.rng import Philox
from bitsim.nn import layers as L
from bitsim.nn.binarized import BinaryConv2d, BinaryDense
from bitsim.nn.conv import MaxPool2d
from bitsim.nn.model import Sequential

finite = st.floats(-1e3, 1e3, width=32)


def randomize_batch_norms(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNorm):
            c = layer.n_features
            layer.running_mean[:] = rng.normal(0, 5, c)
            layer.running_var[:] = rng.uniform(0.5, 60, c)
            layer.gamma.value[:] = rng.normal(0, 1, c)
            layer.gamma.value[: c // 8] = 0  # constant channels
            layer.beta.value[:] = rng.normal(0, 1, c)


def mlp(seed=1, shift=False):
    g = Philox(seed)
    return Sequential([
        L.Flatten(), BinaryDense(64, 70, init_rng=g), L.BatchNorm(70, shift=shift), L.Sign(), L.Dropout(0.2, 4),
        BinaryDense(70, 130, init_rng=g), L.BatchNorm(130, shift=shift), L.HardTanh(), L.Sign(),
        BinaryDense(130, 10, init_rng=g), L.BatchNorm(10, shift=shift),
    ])


def convnet(seed=1):
    g = Philox(seed)
    return Sequential([
        BinaryConv2d(1, 16, 3, padding=1, init_rng=g), MaxPool2d(2), L.BatchNorm(16), L.Sign(),
        BinaryConv2d(16, 70, (3, 2), stride=(1, 2), padding=1, init_rng=g), L.BatchNorm(70), L.Sign(),
        L.Flatten(), BinaryDense(4 * 3 * 70, 10, init_rng=g), L.BatchNorm(10),
    ])


@given(st.lists(st.tuples(finite, st.floats(2.0**-10, 1e4, width=32), st.floats(-3, 3, width=32), finite),
                min_size=1, max_size=6), st.booleans())
def test_folded_threshold_equals_sign_of_batch_norm_at_every_integer(params, shift):
    bn = L.BatchNorm(len(params), shift=shift)
    mean, var, gamma, beta = (np.float32(v) for v in zip(*params))
    bn.running_mean[:], bn.running_var[:], bn.gamma.value[:], bn.beta.value[:] = mean, var, gamma, beta
    lo, hi = -300, 300
    t, flip = fold_threshold(bn, lo, hi)
    acc = np.arange(lo, hi + 1)
    expected = bn.forward(np.repeat(acc[:, None], len(params), 1).astype(np.float32), training=False) >= 0
    got = np.where(flip, acc[:, None] <= t, acc[:, None] >= t)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("shift", [False, True])
def test_compiled_mlp_equals_float_model_exactly(shift):
    model = mlp(shift=shift)
    randomize_batch_norms(model, 5)
    x = np.random.default_rng(0).integers(0, 256, (300, 8, 8)).astype(np.uint8)
    compiled = compile_model(model, (8, 8))
    assert [type(s).__name__ for s in compiled.stages] == [
        "BitplaneDense", "Threshold", "XnorDense", "Threshold", "XnorDense", "Affine"]
    report = check_exact(model, compiled, x)
    assert report["all_equal"], report


def test_compiled_convnet_equals_float_model_exactly():
    model = convnet()
    randomize_batch_norms(model, 6)
    x = np.random.default_rng(1).integers(0, 256, (64, 8, 8, 1)).astype(np.uint8)
    report = check_exact(model, compile_model(model, (8, 8, 1)), x)
    assert report["all_equal"], report
    assert [r["stage"] for r in report["stages"]][:3] == ["BitplaneConv", "MaxPool", "Threshold"]


@pytest.mark.parametrize("shape, make", [((8, 8), mlp), ((8, 8, 1), convnet)])
def test_first_layer_gemms_agree_and_both_are_exact(shape, make):
    model = make()
    randomize_batch_norms(model, 9)
    x = np.random.default_rng(4).integers(0, 256, (50, *shape)).astype(np.uint8)
    x[:, 0] = 255  # the largest pixel against every weight sign
    compiled = compile_model(model, shape)
    first = compiled.stages[0]
    assert first.gemm == "u8"
    by_u8 = first.run(x)
    first.gemm = "bitplane"
    by_planes = first.run(x)
    assert by_u8.dtype == by_planes.dtype == np.int32
    np.testing.assert_array_equal(by_u8, by_planes)
    assert check_exact(model, compiled, x)["all_equal"]


def test_unknown_first_layer_gemm_is_refused():
    from bitsim.deploy.packed import BitplaneDense
    with pytest.raises(ValueError, match="gemm must be one of"):
        BitplaneDense(np.zeros((3, 1), np.uint64), 10, gemm="float")


def test_check_exact_catches_a_changed_threshold():
    model = mlp()
    randomize_batch_norms(model, 7)
    x = np.random.default_rng(2).integers(0, 256, (300, 8, 8)).astype(np.uint8)
    compiled = compile_model(model, (8, 8))
    compiled.stages[1].thresholds = compiled.stages[1].thresholds + 1
    report = check_exact(model, compiled, x)
    assert not report["all_equal"] and not report["stages"][1]["equal"]


def test_save_load_round_trip(tmp_path):
    model = convnet()
    randomize_batch_norms(model, 8)
    compiled = compile_model(model, (8, 8, 1))
    compiled.save(tmp_path / "m")
    loaded = IntegerModel.load(tmp_path / "m.json")
    x = np.random.default_rng(3).integers(0, 256, (20, 8, 8, 1)).astype(np.uint8)
    np.testing.assert_array_equal(loaded.forward(x).view(np.uint32), compiled.forward(x).view(np.uint32))
    assert loaded.weight_bits() == compiled.weight_bits()


def test_unsupported_models_are_refused():
    g = Philox(1)
    with pytest.raises(ValueError, match="cannot compile layer 0 \\(Dense\\)"):
        compile_model(Sequential([L.Dense(4, 4), L.BatchNorm(4)]), (4,))
    with pytest.raises(ValueError, match="cannot compile layer 2 \\(Dense\\)"):  # dropout counts in the index
        compile_model(Sequential([L.Dropout(0.2, 1), BinaryDense(4, 4, init_rng=g), L.Dense(4, 4)]), (4,))
    with pytest.raises(ValueError, match="must be followed by Sign"):
        compile_model(Sequential([BinaryDense(4, 4, init_rng=g), L.BatchNorm(4), L.ReLU(), BinaryDense(4, 2)]), (4,))
    compiled = compile_model(Sequential([BinaryDense(4, 3, init_rng=g)]), (4,))
    with pytest.raises(TypeError, match="uint8"):
        compiled.forward(np.zeros((1, 4), np.float32))


def test_first_layer_worked_example_of_the_docs():
    from bitsim.formats.binary import pack
    from bitsim.kernels.xnor import bitplane_gemm
    from bitsim.kernels.u8 import u8s8_matmul

    x = np.array([[255, 0, 3, 200]], np.uint8)
    w = np.array([[1, -1, 1, -1]], np.int8)
    assert u8s8_matmul(x, w)[0, 0] == bitplane_gemm(x, pack(w), 4)[0, 0] == 58
