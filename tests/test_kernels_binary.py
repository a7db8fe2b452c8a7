"""The popcount kernels of bitsim.kernels.xnor against the oracles of bitsim.reference.xnor, exactly."""

import json
from pathlib import Path

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitsim.formats.binary import n_words, pack, pack_bits, padding_mask, unpack_bits
from bitsim.formats.ternary import pack_ternary
from bitsim.kernels import xnor as K
from bitsim.reference import xnor as R

LENGTHS = st.sampled_from([0, 1, 2, 63, 64, 65, 127, 128, 129, 200, 1000])
ROWS = st.integers(0, 6)
SEEDS = st.integers(0, 2**32 - 1)
# probability of +1: the extremes give all -1 / all +1 rows, which catch padding mistakes
DENSITIES = st.sampled_from([0.0, 0.5, 0.5, 1.0])
CHANNELS = st.one_of(st.sampled_from([1, 63, 64, 65]), st.integers(1, 130))


def pm1(rng, shape, density=0.5):
    return np.where(rng.random(shape) < density, 1, -1).astype(np.int8)


def ternary_values(rng, shape):
    return rng.integers(-1, 2, size=shape).astype(np.int8)


# ---------------------------------------------------------------------------------------
# XNOR GEMM / GEMV


@given(ROWS, ROWS, LENGTHS, DENSITIES, SEEDS)
def test_xnor_gemm_matches_oracle(m, n_rows, n, density, seed):
    rng = np.random.default_rng(seed)
    a = pack(pm1(rng, (m, n), density))
    b = pack(pm1(rng, (n_rows, n)))
    out = K.xnor_gemm(a, b, n)
    assert out.dtype == np.int32 and out.shape == (m, n_rows)
    np.testing.assert_array_equal(out, R.xnor_gemm(a, b, n))


@settings(max_examples=8)
@given(st.integers(1, 9), st.integers(1, 9), st.sampled_from([4097, 4096 + 63]), SEEDS)
def test_xnor_gemm_long_rows(m, n_rows, n, seed):
    rng = np.random.default_rng(seed)
    a = pack(pm1(rng, (m, n)))
    b = pack(pm1(rng, (n_rows, n)))
    np.testing.assert_array_equal(K.xnor_gemm(a, b, n), R.xnor_gemm(a, b, n))


@given(st.integers(0, 11), LENGTHS, DENSITIES, SEEDS)
def test_xnor_gemv_matches_oracle(m, n, density, seed):
    rng = np.random.default_rng(seed)
    a = pack(pm1(rng, (m, n), density))
    x = pack(pm1(rng, n))
    out = K.xnor_gemv(a, x, n)
    assert out.dtype == np.int32 and out.shape == (m,)
    np.testing.assert_array_equal(out, R.xnor_gemv(a, x, n))
    if m:
        np.testing.assert_array_equal(out, K.xnor_gemm(a, x[None, :], n)[:, 0])


@given(st.integers(1, 6), LENGTHS, SEEDS)
def test_xnor_gemm_laws(m, n, seed):
    rng = np.random.default_rng(seed)
    values = pm1(rng, (m, n))
    other = pm1(rng, (m + 1, n))
    a, b = pack(values), pack(other)
    out = K.xnor_gemm(a, b, n)
    # a row against itself: n agreements
    np.testing.assert_array_equal(np.diag(K.xnor_gemm(a, a, n)), np.full(m, n))
    # negating one operand (flip the valid bits only) negates the result
    negated = ~a
    if n % 64:
        negated[:, -1] &= padding_mask(n)
    np.testing.assert_array_equal(K.xnor_gemm(negated, b, n), -out)
    np.testing.assert_array_equal(K.xnor_gemm(b, a, n), out.T)
    # equals the float32 product of the ±1 values while |result| < 2**24 (always here)
    expected = values.astype(np.float32) @ other.astype(np.float32).T
    np.testing.assert_array_equal(out, expected.astype(np.int32))


def test_xnor_gemm_empty_and_zero_length():
    a = np.zeros((3, 0), dtype=np.uint64)
    np.testing.assert_array_equal(K.xnor_gemm(a, np.zeros((2, 0), np.uint64), 0), np.zeros((3, 2), np.int32))
    assert K.xnor_gemm(np.zeros((0, 2), np.uint64), np.zeros((4, 2), np.uint64), 100).shape == (0, 4)
    assert K.xnor_gemm(np.zeros((4, 2), np.uint64), np.zeros((0, 2), np.uint64), 100).shape == (4, 0)
    assert K.xnor_gemv(np.zeros((0, 1), np.uint64), np.zeros(1, np.uint64), 5).shape == (0,)
    np.testing.assert_array_equal(K.xnor_gemv(np.zeros((2, 0), np.uint64), np.zeros(0, np.uint64), 0), [0, 0])


def test_golden_vector():
    case = json.loads((Path(__file__).parent / "golden" / "xnor_gemm.json").read_text(encoding="utf-8"))

    def words(rows):
        return np.array([[int(w, 16) for w in row] for row in rows], dtype=np.uint64)

    a, b, n = words(case["a"]), words(case["b"]), case["n"]
    expected = np.array(case["expected"], dtype=np.int32)
    np.testing.assert_array_equal(K.xnor_gemm(a, b, n), expected)
    np.testing.assert_array_equal(R.xnor_gemm(a, b, n), expected)
    np.testing.assert_array_equal(K.xnor_gemv(a, b[1], n), expected[:, 1])


# ---------------------------------------------------------------------------------------
# convolution


def explicit_pads(padding, size, kernel, stride):
    """((top, bottom), (left, right)); 'same' as in TensorFlow: extra padding at the end."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        pads = []
        for s, k, st_ in zip(size, kernel, stride):
            out = -(-s // st_)
            total = max((out - 1) * st_ + k - s, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return ((ph, ph), (pw, pw))


@st.composite
def conv_cases(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.sampled_from([1, 2, (1, 2), (2, 1)]))
    padding = draw(st.sampled_from([0, 1, "same", "valid", (1, 0), (0, 2)]))
    h, w = draw(st.integers(kh, 7)), draw(st.integers(kw, 7))
    return dict(
        batch=draw(st.integers(0, 2)),
        size=(h, w),
        kernel=(kh, kw),
        c=draw(CHANNELS),
        out=draw(st.integers(1, 5)),
        stride=stride,
        padding=padding,
        seed=draw(SEEDS),
    )


@given(conv_cases())
def test_binary_conv2d_matches_oracle(case):
    rng = np.random.default_rng(case["seed"])
    c = case["c"]
    x = pack(pm1(rng, (case["batch"], *case["size"], c), rng.choice([0.0, 0.5, 1.0])))
    w = pack(pm1(rng, (case["out"], *case["kernel"], c)))
    stride = case["stride"] if isinstance(case["stride"], tuple) else (case["stride"],) * 2
    out = K.binary_conv2d(x, w, c, case["stride"], case["padding"])
    pads = explicit_pads(case["padding"], case["size"], case["kernel"], stride)
    expected = R.binary_conv2d(x, w, c, stride, pads)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, expected)


def test_binary_conv2d_same_keeps_size_and_one_by_one_is_gemm():
    rng = np.random.default_rng(0)
    x = pack(pm1(rng, (2, 5, 6, 70)))
    w = pack(pm1(rng, (4, 3, 3, 70)))
    assert K.binary_conv2d(x, w, 70, padding="same").shape == (2, 5, 6, 4)
    assert K.binary_conv2d(x, w, 70, stride=2, padding="same").shape == (2, 3, 3, 4)
    w1 = pack(pm1(rng, (4, 1, 1, 70)))
    np.testing.assert_array_equal(
        K.binary_conv2d(x, w1, 70).reshape(-1, 4), K.xnor_gemm(x.reshape(-1, 2), w1.reshape(4, 2), 70)
    )


def test_binary_conv2d_padding_is_zero_not_plus_or_minus_one():
    # a 3x3 all-(+1) kernel over an all-(+1) 1x1 image with padding 1: only the centre tap counts
    x = pack(np.ones((1, 1, 1, 5), np.int8))
    w = pack(np.ones((1, 3, 3, 5), np.int8))
    np.testing.assert_array_equal(K.binary_conv2d(x, w, 5, padding=1), [[[[5]]]])
    np.testing.assert_array_equal(K.binary_conv2d(x, ~w & padding_mask(5), 5, padding=1), [[[[-5]]]])


# ---------------------------------------------------------------------------------------
# bit planes


@given(ROWS, ROWS, LENGTHS, st.sampled_from([(np.uint8, 8), (np.uint8, 3), (np.uint16, 16), (np.uint16, 11)]), SEEDS)
def test_bitplane_gemm_matches_oracle(m, n_rows, n, dtype_bits, seed):
    dtype, bits = dtype_bits
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2**bits, size=(m, n), dtype=np.int64).astype(dtype)
    if m and n:
        x[0, 0] = 2**bits - 1  # the largest input
    w = pack(pm1(rng, (n_rows, n)))
    planes = K.pack_planes(x, bits)
    np.testing.assert_array_equal(planes, R.pack_planes(x, bits))
    out = K.bitplane_gemm(x, w, n, bits)
    assert out.dtype == np.int32 and out.shape == (m, n_rows)
    np.testing.assert_array_equal(out, R.bitplane_gemm(x, w, n))
    np.testing.assert_array_equal(K.bitplane_gemm_planes(planes, w, n), out)


def test_bitplane_gemm_widens_to_int64_when_int32_could_overflow():
    n = 40000  # (2**16 - 1) * 40000 > 2**31 - 1
    x = np.full((2, n), 2**16 - 1, dtype=np.uint16)
    w = pack(np.ones((3, n), np.int8))
    out = K.bitplane_gemm(x, w, n, bits=16)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, np.full((2, 3), (2**16 - 1) * n))
    assert K.bitplane_gemm(x[:, :100], pack(np.ones((3, 100), np.int8)), 100, bits=16).dtype == np.int32


# ---------------------------------------------------------------------------------------
# ternary


@given(ROWS, ROWS, LENGTHS, SEEDS)
def test_ternary_kernels_match_oracles(m, n_rows, n, seed):
    rng = np.random.default_rng(seed)
    ts, tm = pack_ternary(ternary_values(rng, (m, n)))
    sb, mb = pack_ternary(ternary_values(rng, (n_rows, n)))
    b = pack(pm1(rng, (n_rows, n)))
    out = K.ternary_binary_gemm(ts, tm, b, n)
    assert out.dtype == np.int32 and out.shape == (m, n_rows)
    np.testing.assert_array_equal(out, R.ternary_binary_gemm(ts, tm, b, n))
    out = K.ternary_gemm(ts, tm, sb, mb, n)
    assert out.dtype == np.int32 and out.shape == (m, n_rows)
    np.testing.assert_array_equal(out, R.ternary_gemm(ts, tm, sb, mb, n))


def test_ternary_with_full_mask_is_binary():
    rng = np.random.default_rng(3)
    values = pm1(rng, (5, 130))
    b = pack(pm1(rng, (4, 130)))
    ts, tm = pack_ternary(values)
    np.testing.assert_array_equal(K.ternary_binary_gemm(ts, tm, b, 130), K.xnor_gemm(pack(values), b, 130))
    np.testing.assert_array_equal(K.ternary_gemm(ts, tm, b, tm[:4], 130), K.xnor_gemm(pack(values), b, 130))


# ---------------------------------------------------------------------------------------
# thresholds


@given(st.integers(0, 5), st.integers(0, 200), st.sampled_from([np.int32, np.int64]), st.booleans(), SEEDS)
def test_threshold_pack_matches_oracle(m, c, dtype, use_flip, seed):
    rng = np.random.default_rng(seed)
    acc = rng.integers(-4, 5, size=(m, c)).astype(dtype)
    thresholds = rng.integers(-4, 5, size=c).astype(np.int32)
    flip = rng.random(c) < 0.5 if use_flip else None
    out = K.threshold_pack(acc, thresholds, flip)
    assert out.dtype == np.uint64 and out.shape == (m, n_words(c))
    np.testing.assert_array_equal(out, R.threshold_pack(acc, thresholds, flip))


def test_threshold_pack_extremes_and_leading_axes():
    i64 = np.iinfo(np.int64)
    acc = np.array([[i64.min, i64.max, 0, -1]], dtype=np.int64)
    thresholds = np.array([i64.min, i64.max, 0, 0], dtype=np.int64)
    np.testing.assert_array_equal(unpack_bits(K.threshold_pack(acc, thresholds), 4), [[1, 1, 1, 0]])
    flip = np.array([True, True, True, True])
    np.testing.assert_array_equal(unpack_bits(K.threshold_pack(acc, thresholds, flip), 4), [[1, 1, 1, 1]])
    conv_out = np.arange(2 * 3 * 4 * 70, dtype=np.int32).reshape(2, 3, 4, 70) - 800
    out = K.threshold_pack(conv_out, np.zeros(70, np.int32))
    assert out.shape == (2, 3, 4, 2)
    np.testing.assert_array_equal(out, pack_bits(conv_out >= 0))


# ---------------------------------------------------------------------------------------
# layouts the wrappers accept: non-contiguous (copied) and bitorder 'big' (converted)


def test_non_contiguous_operands_are_copied():
    rng = np.random.default_rng(5)
    a = pack(pm1(rng, (6, 200)))
    b = pack(pm1(rng, (5, 200)))
    expected = R.xnor_gemm(a[::2], b, 200)
    wide = np.zeros((3, 8), np.uint64)
    wide[:, ::2] = a[::2]  # every other column: a strided view
    assert not wide[:, ::2].flags.c_contiguous
    np.testing.assert_array_equal(K.xnor_gemm(wide[:, ::2], b, 200), expected)
    np.testing.assert_array_equal(K.xnor_gemm(np.asfortranarray(a[::2]), b, 200), expected)
    np.testing.assert_array_equal(K.xnor_gemv(a[::2], b[0], 200), expected[:, 0])
    x = pack(pm1(rng, (1, 4, 4, 70)))
    w = pack(pm1(rng, (2, 3, 3, 70)))
    np.testing.assert_array_equal(
        K.binary_conv2d(np.asfortranarray(x), w[:, ::-1], 70, padding=1),
        R.binary_conv2d(x, np.ascontiguousarray(w[:, ::-1]), 70, (1, 1), ((1, 1), (1, 1))),
    )


@pytest.mark.parametrize("n", [1, 64, 130])
def test_bitorder_big_is_converted(n):
    rng = np.random.default_rng(n)
    A, B = pm1(rng, (3, n)), pm1(rng, (4, n))
    expected = K.xnor_gemm(pack(A), pack(B), n)
    np.testing.assert_array_equal(K.xnor_gemm(pack(A, "big"), pack(B, "big"), n, bitorder="big"), expected)
    T = ternary_values(rng, (3, n))
    np.testing.assert_array_equal(
        K.ternary_binary_gemm(*pack_ternary(T, "big"), pack(B, "big"), n, bitorder="big"),
        K.ternary_binary_gemm(*pack_ternary(T), pack(B), n),
    )
    with pytest.raises(ValueError, match="bitorder must be 'little' or 'big'"):
        K.xnor_gemm(pack(A), pack(B), n, bitorder="middle")


# ---------------------------------------------------------------------------------------
# errors


def test_wrong_dtype_says_how_to_pack():
    a = np.zeros((2, 1), np.uint64)
    with pytest.raises(TypeError, match=r"xnor_gemm: a: expected uint64 packed words, got int32; pack with"):
        K.xnor_gemm(a.astype(np.int32), a, 10)
    with pytest.raises(TypeError, match="xnor_gemv: x: expected uint64 packed words, got float64"):
        K.xnor_gemv(a, np.zeros(1), 10)
    with pytest.raises(TypeError, match="expected uint64 packed words, got >u8"):
        K.xnor_gemm(a, a.astype(">u8"), 10)
    with pytest.raises(TypeError, match="n must be an integer"):
        K.xnor_gemm(a, a, 10.0)
    with pytest.raises(TypeError, match="expected uint8 or uint16 inputs, got int64"):
        K.bitplane_gemm(np.zeros((2, 10), np.int64), a, 10)
    with pytest.raises(TypeError, match=r"expected int32 or int64 accumulators, got float32"):
        K.threshold_pack(np.zeros((2, 3), np.float32), np.zeros(3, np.int32))
    with pytest.raises(TypeError, match=r"round them first: np.ceil\(t\)"):
        K.threshold_pack(np.zeros((2, 3), np.int32), np.zeros(3))


def test_wrong_shapes():
    a = np.zeros((2, 2), np.uint64)
    with pytest.raises(ValueError, match=r"xnor_gemm: b: 100 values need 2 uint64 words along the last axis, got shape \(3, 1\)"):
        K.xnor_gemm(a, np.zeros((3, 1), np.uint64), 100)
    with pytest.raises(ValueError, match="pass the unpacked length n, not the number of words"):
        K.xnor_gemm(a, a, 2)
    with pytest.raises(ValueError, match=r"expected a 2-D array of packed words, got shape \(2,\)"):
        K.xnor_gemm(a[0], a, 100)
    with pytest.raises(ValueError, match="n must be >= 0"):
        K.xnor_gemm(a, a, -1)
    with pytest.raises(ValueError, match="signs and mask planes differ in shape"):
        K.ternary_gemm(a, a[:1], a, a, 100)
    with pytest.raises(ValueError, match="x has 10 columns but n = 11"):
        K.bitplane_gemm(np.zeros((2, 10), np.uint8), np.zeros((2, 1), np.uint64), 11)
    with pytest.raises(ValueError, match="bits must be in 1..8 for uint8"):
        K.bitplane_gemm(np.zeros((2, 10), np.uint8), np.zeros((2, 1), np.uint64), 10, bits=9)
    with pytest.raises(ValueError, match=r"inputs must be < 2\*\*3, got max 8"):
        K.pack_planes(np.full((2, 10), 8, np.uint8), bits=3)
    with pytest.raises(ValueError, match=r"expected 3 thresholds \(one per channel\)"):
        K.threshold_pack(np.zeros((2, 3), np.int32), np.zeros(4, np.int32))
    with pytest.raises(ValueError, match="do not fit the int32 output"):
        K.xnor_gemm(a, a, 2**31)


def test_conv_argument_errors():
    x = np.zeros((1, 4, 4, 1), np.uint64)
    w = np.zeros((2, 3, 3, 1), np.uint64)
    with pytest.raises(ValueError, match="kernel size .* is larger than the padded input"):
        K.binary_conv2d(x[:, :2], w, 10)
    with pytest.raises(ValueError, match="padding must be an int, a pair, 'valid' or 'same', got 'full'"):
        K.binary_conv2d(x, w, 10, padding="full")
    with pytest.raises(ValueError, match="stride must be >= 1"):
        K.binary_conv2d(x, w, 10, stride=0)
    with pytest.raises(ValueError, match=r"binary_conv2d: w: expected a 4-D array of packed words"):
        K.binary_conv2d(x, w[0], 10)
    with pytest.raises(ValueError, match=r"binary_conv2d: w: 65 values need 2 uint64 words"):
        K.binary_conv2d(np.zeros((1, 4, 4, 2), np.uint64), w, 65)


def test_nonzero_padding_bits_are_rejected():
    a = pack(np.ones((2, 65), np.int8))
    bad = a.copy()
    bad[1, -1] |= np.uint64(1) << np.uint64(7)
    with pytest.raises(ValueError, match=r"xnor_gemm: b: padding bits beyond length 65 are not zero; pack with"):
        K.xnor_gemm(a, bad, 65)
    with pytest.raises(ValueError, match="xnor_gemv: x: padding bits beyond length 65 are not zero"):
        K.xnor_gemv(a, bad[1], 65)
    with pytest.raises(ValueError, match="binary_conv2d: x: padding bits beyond length 65"):
        K.binary_conv2d(bad.reshape(1, 1, 2, 2), a[:1].reshape(1, 1, 1, 2), 65)
    with pytest.raises(ValueError, match="bitplane_gemm: w: padding bits"):
        K.bitplane_gemm(np.zeros((1, 65), np.uint8), bad, 65)
    with pytest.raises(ValueError, match="ternary_gemm: a mask: padding bits"):
        K.ternary_gemm(a, bad, a, a, 65)
    signs, mask = pack_ternary(np.array([[1, 0, -1]]))
    with pytest.raises(ValueError, match="non-canonical ternary planes, a sign bit is set where the mask is 0"):
        K.ternary_binary_gemm(signs | np.uint64(2), mask, pack(np.ones((1, 3), np.int8)), 3)


# ---------------------------------------------------------------------------------------
# threads


@pytest.fixture
def thread_counts():
    before = numba.get_num_threads()
    yield [1, min(2, numba.config.NUMBA_NUM_THREADS)]
    numba.set_num_threads(before)


def test_results_do_not_depend_on_thread_count(thread_counts, monkeypatch):
    monkeypatch.setattr(K, "PARALLEL_MIN_WORK", 0)  # small shapes use every thread too
    rng = np.random.default_rng(11)
    n = 1000
    a, b = pack(pm1(rng, (67, n))), pack(pm1(rng, (45, n)))
    ts, tm = pack_ternary(ternary_values(rng, (67, n)))
    x = rng.integers(0, 256, size=(67, n)).astype(np.uint8)
    img, w = pack(pm1(rng, (2, 9, 9, 70))), pack(pm1(rng, (5, 3, 3, 70)))
    acc = rng.integers(-50, 50, size=(67, 130)).astype(np.int32)
    results = []
    for threads in thread_counts:
        numba.set_num_threads(threads)
        results.append(
            [
                K.xnor_gemm(a, b, n),
                K.xnor_gemv(a, b[0], n),
                K.binary_conv2d(img, w, 70, stride=2, padding="same"),
                K.bitplane_gemm(x, b, n),
                K.ternary_binary_gemm(ts, tm, b, n),
                K.ternary_gemm(ts, tm, ts[:45], tm[:45], n),
                K.threshold_pack(acc, np.zeros(130, np.int32)),
            ]
        )
    for first, second in zip(*results):
        np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(results[0][0], R.xnor_gemm(a, b, n))
    assert numba.get_num_threads() == thread_counts[-1]


def test_small_calls_run_on_one_thread_and_restore_the_thread_count(thread_counts):
    numba.set_num_threads(thread_counts[-1])
    a = pack(np.ones((2, 10), np.int8))
    np.testing.assert_array_equal(K.xnor_gemm(a, a, 10), np.full((2, 2), 10))
    assert numba.get_num_threads() == thread_counts[-1]
