"""The uint8 x int8 GEMM of bitsim.kernels.u8 against the oracle of bitsim.reference.u8, exactly."""

import doctest

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bitsim.formats.binary import n_words, pack, unpack
from bitsim.kernels import u8 as K
from bitsim.reference import u8 as R

ROUTES = ["auto", "avx2", "portable"]
LENGTHS = st.one_of(st.sampled_from([1, 63, 64, 65, 784, 4097]), st.integers(0, 130))
ROWS = st.one_of(st.sampled_from([0, 1, 6, 7, 16, 17]), st.integers(0, 20))
avx2_only = pytest.mark.skipif(not K.HAS_AVX2, reason="the vpmaddubsw kernel needs AVX2")


def saturating_pair_sums(x, w):
    """What vpmaddubsw computes for each (row, weight row): adjacent products added, saturated to int16."""
    x = x.astype(np.int64)
    w = w.astype(np.int64)
    k = x.shape[1] + x.shape[1] % 2
    x = np.pad(x, ((0, 0), (0, k - x.shape[1])))
    w = np.pad(w, ((0, 0), (0, k - w.shape[1])))
    products = x[:, None, :] * w[None, :, :]
    return np.clip(products[..., 0::2] + products[..., 1::2], -(2**15), 2**15 - 1)


def check_routes(x, w):
    """Every route and both layouts of ``w`` equal the oracle; 'avx2' raises exactly when the int16 bound fails."""
    want = R.u8s8_matmul(x, w)
    max_x = int(x.max()) if x.size else 0
    max_w = max(int(w.max()), -int(w.min())) if w.size else 0
    for route in ROUTES:
        if route == "avx2" and x.shape[0] and w.shape[0] and x.shape[1]:
            if not K.HAS_AVX2 or K.int16_steps(max_x, max_w) == 0:
                with pytest.raises(ValueError, match="route='avx2' needs"):
                    K.u8s8_matmul(x, w, route=route)
                continue
        got = K.u8s8_matmul(x, w, route=route)
        assert got.dtype == np.int32 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        transposed = K.u8s8_matmul(x, np.ascontiguousarray(w.T), route=route, layout="kn")
        assert transposed.dtype == np.int32
        np.testing.assert_array_equal(transposed, want)


@st.composite
def operands(draw):
    m, n, k = draw(ROWS), draw(ROWS), draw(LENGTHS)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x_kind = draw(st.sampled_from(["full", "full", "255", "small", "zero"]))
    x = {
        "full": lambda: rng.integers(0, 256, (m, k)),
        "255": lambda: np.full((m, k), 255),
        "small": lambda: rng.integers(0, 128, (m, k)),
        "zero": lambda: np.zeros((m, k)),
    }[x_kind]().astype(np.uint8)
    w_kind = draw(st.sampled_from(["pm1", "pm1", "pm1 constant", "int8", "edges", "64"]))
    if w_kind == "pm1":
        w = np.where(rng.random((n, k)) < draw(st.sampled_from([0.0, 0.5, 1.0])), 1, -1)
    elif w_kind == "pm1 constant":
        w = np.full((n, k), draw(st.sampled_from([-1, 1])))
    elif w_kind == "int8":
        w = rng.integers(-128, 128, (n, k))
    elif w_kind == "edges":
        w = rng.choice(np.array([-128, -127, -65, -64, -1, 0, 1, 64, 65, 127]), (n, k))
    else:
        w = rng.integers(-64, 65, (n, k))
    return x, w.astype(np.int8)


@given(operands())
def test_u8s8_matmul_matches_oracle(ops):
    check_routes(*ops)


@settings(max_examples=10)
@given(st.sampled_from([(200, 300, 2100), (97, 129, 1025), (96, 128, 784)]), st.sampled_from(["pm1", "64", "int8"]),
       st.integers(0, 2**32 - 1))
def test_u8s8_matmul_many_tiles_and_k_blocks(shape, kind, seed):
    """Row/column tiles, tasks (96 x 128) and K-blocks (1024) of the AVX2 kernel, with partial edges."""
    m, n, k = shape
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (m, k)).astype(np.uint8)
    w = {"pm1": lambda: np.where(rng.random((n, k)) < 0.5, 1, -1),
         "64": lambda: rng.integers(-64, 65, (n, k)),
         "int8": lambda: rng.integers(-128, 128, (n, k))}[kind]().astype(np.int8)
    check_routes(x, w)


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("wmax", [1, 2, 3, 64])
def test_u8s8_matmul_worst_case_lanes(sign, wmax):
    """x = 255 and w = ±max|w| everywhere: every pair sum and int16 lane sits at its proven limit."""
    steps = K.int16_steps(255, wmax)
    k = 4 * steps * 3 + 5  # three full int16 chunks per K-block, and a ragged tail
    x = np.full((7, k), 255, np.uint8)
    w = np.full((17, k), sign * wmax, np.int8)
    w[3, ::2] = -sign * wmax  # mixed signs in one row
    check_routes(x, w)
    assert 2 * 255 * wmax * steps <= 2**15 - 1 < 2 * 255 * wmax * (steps + 1)


@avx2_only
def test_int16_lanes_would_wrap_one_step_beyond_the_bound():
    """The kernel run with one int16 step too many is wrong: the bound of int16_steps is tight."""
    steps = K.int16_steps(255, 1)
    assert steps == 64
    x = np.full((6, 4 * (steps + 1)), 255, np.uint8)
    w = np.ones((16, x.shape[1]), np.int8)
    want = R.u8s8_matmul(x, w)
    np.testing.assert_array_equal(K._avx2_gemm(x, w, steps), want)
    assert (K._avx2_gemm(x, w, steps + 1) != want).all()  # 65 * 510 = 33150 wraps in an int16 lane


def test_int16_steps():
    assert K.int16_steps(255, 1) == 64
    assert K.int16_steps(255, 64) == 1
    assert K.int16_steps(255, 65) == 0
    assert K.int16_steps(255, 127) == 0 and K.int16_steps(255, 128) == 0
    assert K.int16_steps(127, 128) == 1  # 2 * 127 * 128 = 32512
    assert K.int16_steps(128, 128) == 0
    assert K.int16_steps(0, 128) == K.int16_steps(255, 0) == K.STEPS_CAP
    for max_x in (1, 17, 255):
        for max_w in (1, 5, 64, 128):
            s = K.int16_steps(max_x, max_w)
            assert s * 2 * max_x * max_w <= 2**15 - 1 < (s + 1) * 2 * max_x * max_w


def test_no_16bit_saturating_intermediate():
    """max|w| = 127 with x = 255: a vpmaddubsw pair sum saturates, yet the result is exact."""
    x = np.array([[255, 255, 100, 3, 255, 255, 0, 0]], dtype=np.uint8)
    w = np.array([[127, 127, 5, 7, -128, -128, 1, 1], [1, -1, 1, -1, 1, -1, 1, -1]], dtype=np.int8)
    pairs = saturating_pair_sums(x, w)
    assert pairs[0, 0, 0] == 2**15 - 1 and 255 * 127 * 2 == 64770  # saturated high
    assert pairs[0, 0, 2] == -(2**15) and 255 * -128 * 2 == -65280  # saturated low
    naive = pairs.sum(-1)
    exact = R.u8s8_matmul(x, w)
    assert naive[0, 0] != exact[0, 0] and naive[0, 1] == exact[0, 1]
    assert K.int16_steps(int(x.max()), 128) == 0
    for route in ("auto", "portable"):
        np.testing.assert_array_equal(K.u8s8_matmul(x, w, route=route), exact)
    with pytest.raises(ValueError, match="2 \\* max\\(x\\) \\* max\\|w\\| <= 32767"):
        K.u8s8_matmul(x, w, route="avx2")
    # the same weights with inputs below 128 are inside the bound, and the AVX2 kernel is exact
    small = x // 2
    assert K.int16_steps(int(small.max()), 128) == 1
    check_routes(small, w)
    np.testing.assert_array_equal(saturating_pair_sums(small, w).sum(-1), R.u8s8_matmul(small, w))


def test_u8s8_matmul_int32_limit_and_int64_beyond():
    """int32 up to K = 65793 (255 * 128 * K fits), int64 beyond, exact at the extremes."""
    k = K.INT32_K_MAX
    assert 255 * 128 * k <= 2**31 - 1 < 255 * 128 * (k + 1)
    for kk, dtype in ((k, np.int32), (k + 1, np.int64)):
        x = np.full((2, kk), 255, np.uint8)
        w = np.stack([np.full(kk, -128), np.full(kk, 127), np.ones(kk), -np.ones(kk)]).astype(np.int8)
        want = R.u8s8_matmul(x, w)
        assert want[0, 0] == -255 * 128 * kk
        for route in ("auto", "portable"):
            got = K.u8s8_matmul(x, w, route=route)
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, want)
        if K.HAS_AVX2:  # ±1 rows only: inside the int16 bound
            got = K.u8s8_matmul(x, w[2:], route="avx2")
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, want[:, 2:])


def test_u8s8_matmul_without_avx2(monkeypatch):
    monkeypatch.setattr(K, "HAS_AVX2", False)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (9, 70)).astype(np.uint8)
    w = np.where(rng.random((5, 70)) < 0.5, 1, -1).astype(np.int8)
    np.testing.assert_array_equal(K.u8s8_matmul(x, w), R.u8s8_matmul(x, w))
    with pytest.raises(ValueError, match="needs a CPU with AVX2"):
        K.u8s8_matmul(x, w, route="avx2")


def test_u8s8_matmul_non_contiguous_operands():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (10, 2 * 70)).astype(np.uint8)[:, ::2]
    w = np.asfortranarray(np.where(rng.random((19, 70)) < 0.5, 1, -1).astype(np.int8))
    assert not x.flags.c_contiguous and not w.flags.c_contiguous
    for route in ROUTES:
        np.testing.assert_array_equal(K.u8s8_matmul(x, w, route=route), R.u8s8_matmul(x, w))


def test_u8s8_matmul_errors():
    x = np.zeros((2, 3), np.uint8)
    w = np.zeros((4, 3), np.int8)
    with pytest.raises(TypeError, match="u8s8_matmul: x: expected uint8, got int8"):
        K.u8s8_matmul(x.astype(np.int8), w)
    with pytest.raises(TypeError, match="u8s8_matmul: x: expected uint8, got float32"):
        K.u8s8_matmul(x.astype(np.float32), w)
    with pytest.raises(TypeError, match="u8s8_matmul: w: expected int8, got uint8; unpack ±1 weights"):
        K.u8s8_matmul(x, w.astype(np.uint8))
    with pytest.raises(TypeError, match="u8s8_matmul: w: expected int8, got int16"):
        K.u8s8_matmul(x, w.astype(np.int16))
    with pytest.raises(ValueError, match="x: expected a 2-D array \\(rows, K\\), got shape \\(3,\\)"):
        K.u8s8_matmul(x[0], w)
    with pytest.raises(ValueError, match="w: expected a 2-D array"):
        K.u8s8_matmul(x, w[None])
    with pytest.raises(ValueError, match="x has K=3 columns but w has K=2"):
        K.u8s8_matmul(x, w[:, :2])
    with pytest.raises(ValueError, match="route must be 'auto', 'avx2' or 'portable', got 'blas'"):
        K.u8s8_matmul(x, w, route="blas")
    with pytest.raises(ValueError, match="layout must be 'nk'"):
        K.u8s8_matmul(x, w, layout="tn")
    with pytest.raises(ValueError, match="x has K=3 columns but w has K=4"):
        K.u8s8_matmul(x, w, layout="kn")  # (4, 3) read as (K, N): K = 4


@pytest.fixture
def thread_counts():
    before = numba.get_num_threads()
    yield [1, min(2, numba.config.NUMBA_NUM_THREADS)]
    numba.set_num_threads(before)


def test_results_do_not_depend_on_thread_count(thread_counts, monkeypatch):
    monkeypatch.setattr(K, "PARALLEL_MIN_WORK", 0)  # small shapes use every thread too
    rng = np.random.default_rng(11)
    x = rng.integers(0, 256, (203, 1100)).astype(np.uint8)
    w = np.where(rng.random((261, 1100)) < 0.5, 1, -1).astype(np.int8)
    w8 = rng.integers(-128, 128, (61, 1100)).astype(np.int8)
    results = []
    for threads in thread_counts:
        numba.set_num_threads(threads)
        results.append([K.u8s8_matmul(x, w, route=r) for r in ROUTES] + [K.u8s8_matmul(x, w8), K.pm1_int8(pack(w), 1100)])
        assert numba.get_num_threads() == threads
    for first, second in zip(*results):
        np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(results[0][0], R.u8s8_matmul(x, w))


# ---------------------------------------------------------------------------------------
# pm1_int8


@given(st.integers(0, 5), st.one_of(st.sampled_from([0, 1, 63, 64, 65, 784]), st.integers(0, 200)),
       st.sampled_from(["little", "big"]), st.integers(0, 2**32 - 1))
def test_pm1_int8_unpacks_packed_rows(rows, n, bitorder, seed):
    rng = np.random.default_rng(seed)
    values = np.where(rng.random((rows, n)) < 0.5, 1, -1).astype(np.int8)
    words = pack(values, bitorder)
    got = K.pm1_int8(words, n, bitorder)
    assert got.dtype == np.int8 and got.shape == (rows, n) and got.flags.c_contiguous
    np.testing.assert_array_equal(got, values)
    np.testing.assert_array_equal(got, unpack(words, n, bitorder))


def test_pm1_int8_feeds_u8s8_matmul():
    rng = np.random.default_rng(5)
    words = pack(np.where(rng.random((33, 784)) < 0.5, 1, -1))
    x = rng.integers(0, 256, (50, 784)).astype(np.uint8)
    w = K.pm1_int8(words, 784)
    np.testing.assert_array_equal(K.u8s8_matmul(x, w), R.u8s8_matmul(x, unpack(words, 784)))


def test_pm1_int8_errors():
    words = pack(np.ones((2, 70), np.int8))
    with pytest.raises(TypeError, match="pm1_int8: words: expected uint64 packed words, got int64"):
        K.pm1_int8(words.astype(np.int64), 70)
    with pytest.raises(ValueError, match="70 values need 2 uint64 words"):
        K.pm1_int8(words[:, :1], 70)
    with pytest.raises(ValueError, match="expected a 2-D array of packed words"):
        K.pm1_int8(words[0], 70)
    bad = words.copy()
    bad[0, -1] |= np.uint64(1) << np.uint64(63)
    with pytest.raises(ValueError, match="padding bits beyond length 70 are not zero"):
        K.pm1_int8(bad, 70)
    with pytest.raises(ValueError, match="n must be >= 0"):
        K.pm1_int8(words, -1)
    assert K.pm1_int8(np.zeros((3, n_words(0)), np.uint64), 0).shape == (3, 0)


def test_docstring_examples():
    result = doctest.testmod(K, extraglobs={"np": np}, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3 and result.failed == 0
