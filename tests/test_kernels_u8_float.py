"""float_u8s8_matmul: float32 pixels checked, converted and multiplied in one pass, against its oracle."""

import doctest

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitsim.kernels import u8 as K
from bitsim.kernels.byte_codes import uint8_codes
from bitsim.reference import u8 as R

ROWS = st.one_of(st.sampled_from([1, 6, 7, 127, 128, 129, 257]), st.integers(0, 40))
LENGTHS = st.one_of(st.sampled_from([1, 2, 3, 127, 128, 129, 784, 1025, 2051]), st.integers(0, 130))
BAD_VALUES = [0.5, 255.5, 256.0, -1.0, 1e-45, 254.99998, np.nan, np.inf, -np.inf, 1e30, -0.5]


@st.composite
def operands(draw):
    m, n, k = draw(ROWS), draw(st.one_of(st.integers(0, 40), st.sampled_from([63, 64, 65, 128]))), draw(LENGTHS)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    density = draw(st.sampled_from([0.0, 0.05, 0.2, 1.0]))  # zero pixels leave groups of the product out
    x = np.where(rng.random((m, k)) < density, rng.integers(0, 256, (m, k)), 0).astype(np.float32)
    if draw(st.booleans()) and x.size:
        x[rng.random((m, k)) < 0.1] = -0.0  # counts as 0
    w_kind = draw(st.sampled_from(["pm1", "pm1", "8", "64", "int8"]))  # int16 lanes widened after 64, 8, 1 pairs
    w = {"pm1": lambda: np.where(rng.random((n, k)) < 0.5, 1, -1),
         "8": lambda: rng.integers(-8, 9, (n, k)),
         "64": lambda: rng.integers(-64, 65, (n, k)),
         "int8": lambda: rng.integers(-128, 128, (n, k))}[w_kind]()
    return x, w.astype(np.int8), rng


@given(operands())
def test_float_u8s8_matmul_matches_oracle(ops):
    x, w, _ = ops
    got = K.float_u8s8_matmul(x, w)
    want = R.float_u8s8_matmul(x, w)
    assert got.dtype == np.int32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, K.u8s8_matmul(uint8_codes(x), w))


@given(operands(), st.sampled_from(BAD_VALUES))
def test_float_u8s8_matmul_refuses_a_value_that_is_not_a_code(ops, bad):
    """One value that is not a whole number 0..255, anywhere (any block, the last rows too): None, as the oracle."""
    x, w, rng = ops
    if not x.size:
        return
    x[rng.integers(0, x.shape[0]), rng.integers(0, x.shape[1])] = bad
    assert R.float_u8s8_matmul(x, w) is None
    assert K.float_u8s8_matmul(x, w) is None


@settings(max_examples=10)
@given(st.sampled_from([(200, 64, 784), (97, 129, 1025), (300, 17, 2100)]), st.sampled_from(["pm1", "int8"]),
       st.integers(0, 2**32 - 1))
def test_float_u8s8_matmul_many_blocks_and_k_blocks(shape, kind, seed):
    """Row blocks (128 rows), tiles of 64 columns and mask words (128 K-values) with partial edges; sparse and
    dense rows."""
    m, n, k = shape
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (m, k)).astype(np.float32)
    x[: m // 2, : k // 2] = 0  # whole groups of zeros in some row tiles and K-blocks only
    w = (np.where(rng.random((n, k)) < 0.5, 1, -1) if kind == "pm1" else rng.integers(-128, 128, (n, k)))
    np.testing.assert_array_equal(K.float_u8s8_matmul(x, w.astype(np.int8)), R.float_u8s8_matmul(x, w.astype(np.int8)))


@pytest.mark.parametrize("top", [1, 8, 64])
def test_float_u8s8_matmul_worst_case_lanes(top):
    """x = 255 and w = ±top everywhere: the int16 lanes at their proven limit (64, 8 and 1 pair sums of
    2 * 255 * top before they are widened), through the fused path."""
    k = 2 * K.int16_steps(255, top) * 7 + 5
    x = np.full((13, k), 255, np.float32)
    w = np.full((17, k), top, np.int8)
    w[3] = -top
    np.testing.assert_array_equal(K.float_u8s8_matmul(x, w), R.float_u8s8_matmul(x, w))


def test_float_u8s8_matmul_without_avx2(monkeypatch):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (9, 70)).astype(np.float32)
    w = np.where(rng.random((5, 70)) < 0.5, 1, -1).astype(np.int8)
    monkeypatch.setattr(K, "HAS_AVX2", False)
    np.testing.assert_array_equal(K.float_u8s8_matmul(x, w), R.float_u8s8_matmul(x, w))
    x[2, 3] = 0.25
    assert K.float_u8s8_matmul(x, w) is None


def test_float_u8s8_matmul_int64_beyond_the_int32_limit():
    """K = 65794 > 65793: the product may leave int32, so it is int64 (computed by the two passes)."""
    k = K.INT32_K_MAX + 1
    x = np.full((2, k), 255, np.float32)
    x[1, ::3] = 0
    w = np.full((3, k), -1, np.int8)
    w[1] = -128
    got = K.float_u8s8_matmul(x, w)
    assert got.dtype == np.int64 and got[0, 1] == -255 * 128 * k < -(2**31)
    np.testing.assert_array_equal(got, R.float_u8s8_matmul(x, w))
    x[1, 7] = 3.5
    assert K.float_u8s8_matmul(x, w) is None


def test_float_u8s8_matmul_errors():
    x = np.zeros((2, 3), np.float32)
    w = np.zeros((4, 3), np.int8)
    with pytest.raises(TypeError, match="float_u8s8_matmul: x: expected float32, got float64"):
        K.float_u8s8_matmul(x.astype(np.float64), w)
    with pytest.raises(TypeError, match="float_u8s8_matmul: w: expected int8, got int16"):
        K.float_u8s8_matmul(x, w.astype(np.int16))
    with pytest.raises(ValueError, match="x: expected a 2-D array \\(rows, K\\), got shape \\(3,\\)"):
        K.float_u8s8_matmul(x[0], w)
    with pytest.raises(ValueError, match="x has K=3 columns but w has K=2"):
        K.float_u8s8_matmul(x, w[:, :2])


def test_float_u8s8_matmul_does_not_depend_on_thread_count(monkeypatch):
    monkeypatch.setattr(K, "PARALLEL_MIN_WORK", 0)
    rng = np.random.default_rng(11)
    x = np.where(rng.random((403, 784)) < 0.2, rng.integers(0, 256, (403, 784)), 0).astype(np.float32)
    w = np.where(rng.random((64, 784)) < 0.5, 1, -1).astype(np.int8)
    before = numba.get_num_threads()
    try:
        results = []
        for threads in [1, min(2, numba.config.NUMBA_NUM_THREADS)]:
            numba.set_num_threads(threads)
            results.append(K.float_u8s8_matmul(x, w))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], R.float_u8s8_matmul(x, w))


@pytest.mark.parametrize("name", ["float_u8s8_matmul", "float_u8s8_signs"])
def test_docstring_examples(name):
    tests = doctest.DocTestFinder().find(getattr(K, name), name, globs={"np": np, name: getattr(K, name)})
    assert tests and tests[0].examples
    for t in tests:
        assert doctest.DocTestRunner().run(t).failed == 0


THRESHOLD_EXTREMES = [2**40, -(2**40), 2**31 - 1, -(2**31 - 1), 2**31, -(2**31), 0]


@given(operands(), st.integers(0, 2**32 - 1))
def test_float_u8s8_signs_matches_oracle(ops, seed):
    """The product and its compares with per-channel thresholds, some beyond int32, as the Python-int oracle."""
    x, w, _ = ops
    rng = np.random.default_rng(seed)
    n = w.shape[0]
    t = rng.integers(-3000, 3000, n)
    if n:
        t[rng.random(n) < 0.3] = rng.choice(THRESHOLD_EXTREMES)
    got = K.float_u8s8_signs(x, w, t.astype(np.int64))
    acc, signs = R.float_u8s8_signs(x, w, t)
    assert got[1].dtype == np.uint64 and got[1].shape == signs.shape
    np.testing.assert_array_equal(got[0], acc)
    np.testing.assert_array_equal(got[1], signs)


def test_float_u8s8_signs_at_the_thresholds():
    """Accumulators equal to, one below and one above their thresholds, in many rows and two words."""
    rng = np.random.default_rng(8)
    x = np.where(rng.random((300, 784)) < 0.2, rng.integers(0, 256, (300, 784)), 0).astype(np.float32)
    w = np.where(rng.random((100, 784)) < 0.5, 1, -1).astype(np.int8)
    acc = R.float_u8s8_matmul(x, w)
    for shift in (-1, 0, 1):
        t = (acc[7] + shift).astype(np.int64)
        got = K.float_u8s8_signs(x, w, t)
        np.testing.assert_array_equal(got[1], R.float_u8s8_signs(x, w, t)[1])
        assert (np.unpackbits(got[1][7].view(np.uint8), bitorder="little")[:100] == (shift <= 0)).all()


def test_float_u8s8_signs_refusals_and_errors(monkeypatch):
    rng = np.random.default_rng(9)
    x = rng.integers(0, 256, (9, 70)).astype(np.float32)
    w = np.where(rng.random((5, 70)) < 0.5, 1, -1).astype(np.int8)
    t = np.arange(-2, 3, dtype=np.int64)
    bad = x.copy()
    bad[4, 5] = 0.5
    assert K.float_u8s8_signs(bad, w, t) is None
    with pytest.raises(TypeError, match="float_u8s8_signs: thresholds must be int64, got int32"):
        K.float_u8s8_signs(x, w, t.astype(np.int32))
    with pytest.raises(ValueError, match="expected 5 thresholds"):
        K.float_u8s8_signs(x, w, t[:4])
    monkeypatch.setattr(K, "HAS_AVX2", False)
    got, want = K.float_u8s8_signs(x, w, t), R.float_u8s8_signs(x, w, t)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert K.float_u8s8_signs(bad, w, t) is None
