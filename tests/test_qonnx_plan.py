"""The compiled plan of the exact level equals the general exact path bit for bit, and steps aside where it does
not apply; its kernels (pixel codes, fused XNOR and sign compares, affine tails) against slow oracles."""

import numpy as np
import pytest
import qonnx_networks as nets
from hypothesis import given
from hypothesis import strategies as st

from bitsim.errors import InputError, InputTypeError
from bitsim.formats.binary import pack
from bitsim.interop import qonnx
from bitsim.interop.exact_plan import plan_of, run_planned
from bitsim.kernels.affine import affine_codes
from bitsim.kernels.byte_codes import uint8_codes
from bitsim.kernels.thresholds import float32_thresholds, float_signs
from bitsim.kernels.xnor_signs import xnor_signs
from bitsim.reference.affine import affine_codes as affine_codes_oracle
from bitsim.reference.byte_codes import uint8_codes as uint8_codes_oracle
from bitsim.reference.xnor import threshold_pack as threshold_pack_oracle
from bitsim.reference.xnor import xnor_gemm as xnor_gemm_oracle


def loaded(model, tmp_path, name="m"):
    return qonnx.load(nets.save(model, tmp_path / f"{name}.onnx"))


def bits(a):
    a = np.asarray(a)
    return a.dtype, a.shape, np.ascontiguousarray(a).view(np.uint8).tobytes()


def assert_plan_equals_general(graph, x):
    """Every tensor of ``graph.run(x, 'exact')`` equals the general path's (``run_exact``), bit for bit."""
    fast = graph.run(x, semantics="exact")
    general = graph.run_exact(x)[0]
    assert list(fast) == list(general)
    for name in general:
        assert bits(fast[name]) == bits(general[name]), name


def kinds(graph):
    plan = plan_of(graph)
    return None if plan is None else [s.kind for s in plan.steps]


@pytest.mark.parametrize("w_bits,a_bits,sizes,expected", [
    (1, 1, (784, 64, 64, 64, 10), ["u8_signs", "xnor_signs", "xnor_signs", "xnor"]),
    (1, 1, (100, 130, 70, 10), ["u8_signs", "xnor_signs", "xnor"]),  # three words per row, 70 channels
    (2, 2, (784, 64, 64, 10), ["u8", "counts", "u8", "counts", "u8"]),
    (4, 4, (50, 20, 10), ["u8", "counts", "u8"]),
    (1, 1, (784, 64, 64, 64, 10, "binary input"), ["input_signs", "xnor_signs", "xnor_signs", "xnor_signs", "xnor"]),
    (1, 1, (70, 130, 10, "binary input"), ["input_signs", "xnor_signs", "xnor"]),
])
def test_plan_equals_general_path(tmp_path, w_bits, a_bits, sizes, expected):
    binary = sizes[-1] == "binary input"
    sizes = sizes[:-1] if binary else sizes
    graph = loaded(nets.tfc_streamlined(seed=w_bits + a_bits, w_bits=w_bits, a_bits=a_bits, batch=4, sizes=sizes,
                                        binary_input=binary), tmp_path)
    assert kinds(graph) == expected
    x = nets.images(1, (8, sizes[0]), grid=1)
    x[0, :3] = [0.0, 255.0, -0.0]
    if binary:  # any float input: the compare with the threshold 128 is exact
        x[1, :5] = [127.99999, 128.0, -5.5, 1e30, 128.00002]
        bad = x.copy()
        bad[2, 7] = np.nan
        assert run_planned(graph, bad, graph.tensor_names()) is None  # the general path refuses it
    assert run_planned(graph, x, graph.tensor_names()) is not None
    assert_plan_equals_general(graph, x)
    outputs = graph.run(x, semantics="exact", names=graph.outputs)
    assert bits(outputs[graph.outputs[0]]) == bits(graph.run_exact(x)[0][graph.outputs[0]])


def test_plan_equals_qonnx_executor(tmp_path):
    from bitsim.interop.differences import execute_qonnx

    graph = loaded(nets.tfc_streamlined(seed=3, batch=2), tmp_path)
    x = nets.images(2, (2, 784), grid=1)
    assert run_planned(graph, x, graph.outputs) is not None
    expected = execute_qonnx(graph, x)
    got = graph.run(x, semantics="exact")
    for name in graph.tensor_names():
        assert bits(got[name]) == bits(np.asarray(expected[name], np.float32)), name


@pytest.mark.parametrize("change", [0.5, 256.0, -1.0, np.nan])
def test_inputs_that_are_not_pixels_take_the_general_path(tmp_path, change):
    graph = loaded(nets.tfc_streamlined(seed=4, batch=2), tmp_path)
    x = nets.images(3, (2, 784), grid=1)
    x[1, 7] = change
    assert kinds(graph) is not None and run_planned(graph, x, graph.tensor_names()) is None
    if np.isnan(change):
        return
    assert_plan_equals_general(graph, x)


def test_graphs_without_a_chain_take_the_general_path(tmp_path):
    quantized = loaded(nets.tfc(seed=5, batch=2, sizes=(784, 16, 10)), tmp_path, "q")
    assert kinds(quantized) is None  # a Quant on the input: no integer chain to start
    wide = loaded(nets.tfc_streamlined(seed=6, w_bits=8, a_bits=2, batch=2, sizes=(40, 30, 10)), tmp_path, "w")
    assert kinds(wide) is None  # weights of -128 leave the u8 x int8 bound: MatMul by the general rule
    x = nets.images(4, (2, 40), grid=1)
    assert_plan_equals_general(wide, x)


def test_tfc_tail_is_one_affine_map(tmp_path):
    graph = loaded(nets.tfc_streamlined(seed=2, batch=4), tmp_path)
    plan = plan_of(graph)
    mul, add = plan.tail
    assert set(plan.affine) == {mul.outputs[0], add.outputs[0]}
    assert plan.affine[add.outputs[0]][0] == mul.inputs[0]  # both maps start from the last product


PER_CHANNEL = np.random.default_rng(8).uniform(0.1, 3.0, 10).astype(np.float32)


@pytest.mark.parametrize("tail,mapped", [
    ([("Mul", PER_CHANNEL, False), ("Sub", 3.3, True), ("Add", -PER_CHANNEL, False)], 3),
    ([("Sub", PER_CHANNEL, False), ("Mul", -0.7, True)], 2),
    ([("Mul", 0.1, False), ("Relu", None, False), ("Add", 1.5, False)], 1),  # Relu is not affine: Add by the rules
    ([("Add", 2.0 ** -70, False)], 0),  # codes past 2**62 in the common scale: the general rules, Python ints
])
def test_affine_tails_equal_general_path(tmp_path, tail, mapped):
    graph = loaded(nets.tfc_streamlined(seed=9, batch=4, sizes=(784, 64, 64, 10), tail=tail), tmp_path)
    assert len(plan_of(graph).affine) == mapped
    x = nets.images(5, (8, 784), grid=1)
    assert run_planned(graph, x, graph.tensor_names()) is not None
    assert_plan_equals_general(graph, x)


@given(st.integers(0, 30), st.integers(1, 12), st.sampled_from([np.int8, np.int16, np.int32, np.int64]),
       st.integers(0, 2 ** 16))
def test_affine_codes_equal_the_oracle(rows, channels, dtype, seed):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    x = rng.integers(max(info.min, -2 ** 40), min(info.max, 2 ** 40), (rows, channels), endpoint=True).astype(dtype)
    factor = rng.integers(-2 ** 20, 2 ** 20, channels).astype(np.int64)
    offset = rng.integers(-2 ** 40, 2 ** 40, channels).astype(np.int64)
    got = affine_codes(x, factor, offset)
    assert got.dtype == np.int64 and got.tolist() == affine_codes_oracle(x, factor, offset)


def test_affine_codes_refuse_what_could_leave_int64():
    x = np.array([[2 ** 40]], np.int64)
    with pytest.raises(InputError, match="leave int64"):
        affine_codes(x, np.array([2 ** 23], np.int64), np.array([0], np.int64))
    with pytest.raises(InputTypeError, match="int64 of shape"):
        affine_codes(x, np.array([1, 2], np.int64), np.array([0], np.int64))


@given(st.integers(1, 150), st.integers(1, 9), st.integers(0, 2 ** 16))
def test_uint8_codes_equal_the_oracle(rows, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (rows, k)).astype(np.float32)
    specials = np.array([0.5, -0.0, 255.0, 256.0, -1.0, 254.75, np.inf, -np.inf, np.nan, 1e9], np.float32)
    mask = rng.random((rows, k)) < 0.3
    x[mask] = rng.choice(specials, int(mask.sum()))
    got, expected = uint8_codes(x), uint8_codes_oracle(x)
    assert (got is None) == (expected is None)
    if got is not None:
        assert got.dtype == np.uint8 and np.array_equal(got, expected)


@given(st.integers(1, 40), st.integers(1, 200), st.integers(1, 140), st.integers(0, 2 ** 16))
def test_xnor_signs_equal_the_oracles(rows, k, n, seed):
    rng = np.random.default_rng(seed)
    a = pack(np.where(rng.random((rows, k)) < 0.5, -1, 1))
    b = pack(np.where(rng.random((n, k)) < 0.5, -1, 1))
    t = rng.integers(-k - 1, k + 2, n).astype(np.int64)
    acc, signs = xnor_signs(a, b, k, t)
    expected = xnor_gemm_oracle(a, b, k)
    assert acc.dtype == np.int32 and np.array_equal(acc, expected)
    assert np.array_equal(signs, threshold_pack_oracle(expected, t))


def test_xnor_signs_parallel_blocks_equal_the_oracles():
    """Enough work for both threads and rows across several tasks (the row count is not a multiple of a task)."""
    rng = np.random.default_rng(7)
    a = pack(np.where(rng.random((301, 1000)) < 0.5, -1, 1))
    b = pack(np.where(rng.random((257, 1000)) < 0.5, -1, 1))
    t = rng.integers(-60, 60, 257).astype(np.int64)
    acc, signs = xnor_signs(a, b, 1000, t)
    expected = xnor_gemm_oracle(a, b, 1000)
    assert np.array_equal(acc, expected)
    assert np.array_equal(signs, threshold_pack_oracle(expected, t))


@given(st.integers(1, 70), st.integers(1, 200), st.integers(0, 2 ** 16))
def test_float_signs_thresholds_between_float32_values(rows, k, seed):
    """Thresholds a float32 cannot hold (just above or below one), values at and around them: still exact."""
    rng = np.random.default_rng(seed)
    base = rng.choice(np.array([0.0, 1.0, 127.0, 128.0, 255.0, -3.5, 1e-40, 3.4028235e38], np.float32), k)
    nudge = rng.choice(np.array([-1, 0, 1]), k)
    t = np.where(nudge > 0, np.nextafter(base.astype(np.float64), np.inf),
                 np.where(nudge < 0, np.nextafter(base.astype(np.float64), -np.inf), base.astype(np.float64)))
    step = rng.choice(np.array([-1, 0, 1]), (rows, k))
    x = np.where(step > 0, np.nextafter(base, np.float32(np.inf)),
                 np.where(step < 0, np.nextafter(base, np.float32(-np.inf)), base)).astype(np.float32)
    words, nonfinite = float_signs(x, t)
    assert np.array_equal(words, pack(np.where(x.astype(np.float64) >= t, 1, -1)))
    assert nonfinite == np.count_nonzero(~np.isfinite(x).all(axis=1))  # inf: one step above the largest float32
    t32 = float32_thresholds(t)
    assert np.array_equal(x >= t32, x.astype(np.float64) >= t)


@given(st.integers(1, 150), st.integers(1, 140), st.integers(0, 2 ** 16))
def test_float_signs_equal_numpy(rows, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(128, 80, (rows, k)).astype(np.float32)
    t = rng.choice(np.array([128.0, 127.5, -np.inf, np.inf, 0.0, -0.0, 3e38], np.float64), k)
    x[rng.random((rows, k)) < 0.1] = 128.0  # ties with the threshold
    x[rng.random((rows, k)) < 0.05] = -0.0
    words, nonfinite = float_signs(x, t)
    assert np.array_equal(words, pack(np.where(x >= t, 1, -1))) and nonfinite == 0
    if rows > 1:
        x[rows // 2, k // 2] = rng.choice([np.nan, np.inf, -np.inf])
        assert float_signs(x, t)[1] == 1
