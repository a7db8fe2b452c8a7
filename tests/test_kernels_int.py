"""Integer kernels (shift-add and fixed-point GEMM, requantize) against their oracles, exactly."""

import numba
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bitsim.formats import fixed as ff
from bitsim.formats.fixed import FixedFormat
from bitsim.formats.log import LogFormat, encode
from bitsim.formats.modes import Counts, Overflow, Rounding
from bitsim.kernels import intmatmul as kf
from bitsim.kernels import requantize as kr
from bitsim.kernels import shift as ks
from bitsim.reference import intmatmul as rf
from bitsim.reference import shift as rs

DETERMINISTIC = [m for m in Rounding if m is not Rounding.STOCHASTIC]
ks_lengths = st.one_of(st.sampled_from([0, 1, 63, 64, 65]), st.integers(0, 130))
rows = st.integers(0, 5)


def codes_of(dtype, lo, hi, shape):
    edges = [v for v in (lo, hi, -1, 0, 1) if lo <= v <= hi]
    return hnp.arrays(dtype, shape, elements=st.one_of(st.sampled_from(edges), st.integers(lo, hi)))


@st.composite
def fixed_formats(draw, max_bits=16):
    bits = draw(st.one_of(st.sampled_from([8, 16][: 1 + (max_bits > 8)]), st.integers(2, max_bits)))
    return FixedFormat(bits, draw(st.integers(-4, 20)))


@st.composite
def fixed_operands(draw):
    fa = draw(fixed_formats())
    same_width = draw(st.booleans())
    fb = draw(fixed_formats(8 if fa.bits <= 8 else 16)) if same_width else draw(fixed_formats())
    m, n, k = draw(rows), draw(rows), draw(ks_lengths)
    a = draw(codes_of(fa.dtype, fa.min_code, fa.max_code, (m, k)))
    b = draw(codes_of(fb.dtype, fb.min_code, fb.max_code, (n, k)))
    return a, fa, b, fb


@st.composite
def out_formats(draw):
    bits = draw(st.integers(2, 32))
    return FixedFormat(
        bits,
        draw(st.integers(-8, 40)),
        rounding=draw(st.sampled_from(DETERMINISTIC)),
        overflow=draw(st.sampled_from([Overflow.SATURATE, Overflow.WRAP])),
    )


# ---------------------------------------------------------------------------------------
# fixed-point GEMM


@given(fixed_operands(), st.one_of(st.none(), out_formats()), st.sampled_from([np.int32, np.int64]),
       st.sampled_from(["integer", "auto", "blas"]))
def test_fixed_matmul_matches_oracle(operands, out_fmt, acc_dtype, route):
    a, fa, b, fb = operands
    if route == "blas":
        try:
            kf.plan(fa, fb, a.shape[1], route="blas")
        except ValueError:
            assume(False)
    assume(out_fmt is None or abs(fa.frac_bits + fb.frac_bits - out_fmt.frac_bits) <= 62)
    got_counts, want_counts = Counts(), Counts()
    got = kf.matmul(a, fa, b, fb, out_fmt, acc_dtype=acc_dtype, route=route, counts=got_counts)
    want = rf.matmul(a, fa, b, fb, out_fmt, acc_dtype=acc_dtype, counts=want_counts)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert got_counts == want_counts


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_fixed_matmul_long_reduction(dtype):
    info = np.iinfo(dtype)
    fmt = FixedFormat(info.bits, 0)
    rng = np.random.default_rng(7)
    a = rng.integers(info.min, info.max, (3, 4097), endpoint=True).astype(dtype)
    b = rng.integers(info.min, info.max, (2, 4097), endpoint=True).astype(dtype)
    a[0] = info.min
    b[0] = info.min
    want = rf.exact_matmul(a, b).astype(np.int64)
    for route in ("integer", "auto"):
        np.testing.assert_array_equal(kf.matmul(a, fmt, b, fmt, acc_dtype=np.int64, route=route), want)


@pytest.mark.parametrize("dtype,hi", [(np.int8, 128), (np.int16, 2000), (np.int16, 2**14), (np.int16, 2**15)])
def test_integer_kernels_agree(dtype, hi):
    """The AVX2 vpmaddwd kernel (when the CPU has AVX2), the portable int32-block kernel and int64 kernel."""
    rng = np.random.default_rng(hi)
    for m, n, k in ((1, 1, 1), (5, 17, 3), (9, 33, 64), (70, 40, 1001), (3, 2, 4097)):
        a = rng.integers(-hi, hi, (m, k)).astype(dtype)
        b = rng.integers(-hi, hi, (n, k)).astype(dtype)
        a[0], b[0] = -hi, -hi
        want = rf.exact_matmul(a, b).astype(np.int64) if m * n * k < 20000 else a.astype(np.int64) @ b.astype(np.int64).T
        for portable in (False, True):
            np.testing.assert_array_equal(kf._integer_gemm(a, b, hi, hi, portable=portable), want)


def test_fixed_matmul_int32_saturation_counted():
    fmt = FixedFormat(16, 0)
    a = np.full((2, 4), -32768, dtype=np.int16)
    b = np.full((3, 4), -32768, dtype=np.int16)
    b[2] = 32767  # 4 * -32768 * 32767 = -2**32 + 2**17: saturates low
    counts = Counts()
    got = kf.matmul(a, fmt, b, fmt, counts=counts)
    assert (got[:, :2] == 2**31 - 1).all() and (got[:, 2] == -(2**31)).all()
    assert counts.saturated == 6
    np.testing.assert_array_equal(kf.matmul(a, fmt, b, fmt, acc_dtype=np.int64), rf.exact_matmul(a, b).astype(np.int64))


def saturating_pair_matmul(a, b):
    """What an int8 GEMM built on vpmaddubsw computes: pair sums saturated to int16."""
    a = a.astype(np.int64)
    b = b.astype(np.int64)
    k = a.shape[1] + a.shape[1] % 2
    a = np.pad(a, ((0, 0), (0, k - a.shape[1])))
    b = np.pad(b, ((0, 0), (0, k - b.shape[1])))
    products = a[:, None, :] * b[None, :, :]
    pairs = np.clip(products[..., 0::2] + products[..., 1::2], -(2**15), 2**15 - 1)
    return pairs.sum(-1)


def test_fixed_matmul_has_no_16bit_saturating_intermediate():
    fmt = FixedFormat(8, 0)
    a = np.array([[-128, -128, 100, 3]], dtype=np.int8)
    b = np.array([[-128, -128, 5, 7], [127, 127, 1, 1]], dtype=np.int8)
    exact = rf.exact_matmul(a, b).astype(np.int64)
    emulated = saturating_pair_matmul(a, b)
    assert emulated[0, 0] == 32767 + 521 and exact[0, 0] == 32768 + 521
    assert (emulated != exact).any()
    for route in ("integer", "auto"):
        np.testing.assert_array_equal(kf.matmul(a, fmt, b, fmt, acc_dtype=np.int64, route=route), exact)


def test_blas_bound_chooses_integer_kernel_when_it_fails():
    f16 = FixedFormat(16, 0)
    k = 2**23 + 1  # k * 2**30 > 2**53: float64 cannot be proven exact
    assert kf.plan(f16, f16, k) == "integer"
    assert kf.plan(f16, f16, 2**23) == "blas-float64"
    assert kf.plan(FixedFormat(8, 0), FixedFormat(8, 0), 4096, route="blas") == "blas-float32"
    assert kf.plan(f16, f16, 4096, max_abs=(2**12, 2**12)) == ("integer" if kf.HAS_AVX2 else "blas-float64")
    assert kf.plan(FixedFormat(12, 0), f16, 2**26) == "blas-float64"
    assert kf.plan(f16, f16, 64, route="integer") == "integer"
    with pytest.raises(ValueError, match="not provably exact"):
        kf.plan(f16, f16, k, route="blas")
    rng = np.random.default_rng(3)
    a = rng.integers(-(2**15), 2**15, (1, k)).astype(np.int16)
    b = rng.integers(-(2**15), 2**15, (1, k)).astype(np.int16)
    want = int(a[0].astype(np.int64) @ b[0].astype(np.int64))
    assert kf.matmul(a, f16, b, f16, acc_dtype=np.int64)[0, 0] == want
    with pytest.raises(ValueError, match="route='integer'"):
        kf.matmul(a, f16, b, f16, route="blas")


@pytest.mark.parametrize("bits,k", [(8, 1500), (8, 1024), (16, 3000), (12, 700)])
def test_blas_routes_equal_integer_kernel(bits, k):
    fmt = FixedFormat(bits, 3)
    rng = np.random.default_rng(bits + k)
    a = rng.integers(fmt.min_code, fmt.max_code, (9, k), endpoint=True).astype(fmt.dtype)
    b = rng.integers(fmt.min_code, fmt.max_code, (7, k), endpoint=True).astype(fmt.dtype)
    a[:2] = fmt.min_code  # extreme sums: 1024 * 2**14 = 2**24 for int8
    b[:2] = fmt.min_code
    assert kf.plan(fmt, fmt, k, route="blas").startswith("blas")
    ints = kf.matmul(a, fmt, b, fmt, acc_dtype=np.int64, route="integer")
    np.testing.assert_array_equal(kf.matmul(a, fmt, b, fmt, acc_dtype=np.int64, route="blas"), ints)
    np.testing.assert_array_equal(ints, rf.exact_matmul(a, b).astype(np.int64))


def test_fixed_matmul_stochastic_requantize_delegates():
    f = FixedFormat(8, 4)
    out = FixedFormat(8, 2, rounding="stochastic")
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (4, 9)).astype(np.int8)
    b = rng.integers(-128, 128, (5, 9)).astype(np.int8)
    got = kf.matmul(a, f, b, f, out, rng=11)
    np.testing.assert_array_equal(got, rf.matmul(a, f, b, f, out, rng=11))


def test_fixed_matmul_errors():
    f8, f16 = FixedFormat(8, 0), FixedFormat(16, 0)
    a8 = np.zeros((2, 3), np.int8)
    with pytest.raises(TypeError, match="expected int8 fixed-point codes.*quantize"):
        kf.matmul(a8.astype(np.float32), f8, a8, f8)
    with pytest.raises(TypeError, match="expected int16"):
        kf.matmul(a8, f16, a8, f8)
    with pytest.raises(ValueError, match="K=3 columns but b has K=4"):
        kf.matmul(a8, f8, np.zeros((2, 4), np.int8), f8)
    with pytest.raises(ValueError, match="2-D"):
        kf.matmul(a8[0], f8, a8, f8)
    with pytest.raises(TypeError, match="FixedFormat"):
        kf.matmul(a8, "Q3.4", a8, f8)
    with pytest.raises(ValueError, match="8- or 16-bit codes"):
        kf.matmul(a8.astype(np.int32), FixedFormat(24, 0), a8, f8)
    with pytest.raises(ValueError, match="outside the 12-bit range"):
        kf.matmul(np.full((1, 3), 3000, np.int16), FixedFormat(12, 0), np.zeros((1, 3), np.int16), f16)
    with pytest.raises(ValueError, match="route must be"):
        kf.matmul(a8, f8, a8, f8, route="gpu")
    with pytest.raises(TypeError, match="acc_dtype"):
        kf.matmul(a8, f8, a8, f8, acc_dtype=np.float32)
    with pytest.raises(ValueError, match="exceeds the largest shift"):
        kf.matmul(a8, FixedFormat(8, 40), a8, FixedFormat(8, 40), FixedFormat(8, -30))
    with pytest.raises(OverflowError, match="overflow"):
        kf.matmul(np.full((1, 2), 100, np.int8), f8, np.full((1, 2), 100, np.int8), f8, FixedFormat(8, 0, overflow="error"))


# ---------------------------------------------------------------------------------------
# requantize


EDGES = {
    np.int32: [-(2**31), 2**31 - 1, -1, 0, 1, -(2**31) + 1, 12345, -12345],
    np.int64: [-(2**63), 2**63 - 1, -1, 0, 1, -(2**63) + 1, 2**40 + 3, -(2**40) - 3],
}


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("rounding", DETERMINISTIC)
def test_requantize_every_shift_and_edge_value(dtype, rounding):
    acc = np.array(EDGES[dtype] + list(range(-20, 21)), dtype=dtype)
    for bits in (8, 16, 32):
        for overflow in (Overflow.SATURATE, Overflow.WRAP):
            fmt = FixedFormat(bits, 0, rounding=rounding, overflow=overflow)
            for shift in range(-62, 63):
                got_counts, want_counts = Counts(), Counts()
                got = kr.requantize(acc, shift, fmt, counts=got_counts)
                want = ff.requantize(acc, shift, fmt, counts=want_counts)
                assert got.dtype == want.dtype
                np.testing.assert_array_equal(got, want, err_msg=f"shift {shift}, {fmt!r}")
                assert got_counts == want_counts


@given(
    hnp.arrays(np.int64, hnp.array_shapes(max_dims=2, max_side=20), elements=st.integers(-(2**63), 2**63 - 1)),
    st.integers(-62, 62),
    out_formats(),
)
def test_requantize_matches_formats(acc, shift, fmt):
    got_counts, want_counts = Counts(), Counts()
    got = kr.requantize(acc, fmt.frac_bits + shift, fmt, counts=got_counts)
    want = ff.requantize(acc, fmt.frac_bits + shift, fmt, counts=want_counts)
    np.testing.assert_array_equal(got, want)
    assert got.shape == want.shape and got_counts == want_counts


def test_requantize_modes_and_errors():
    acc = np.arange(-50, 50, dtype=np.int16)
    fmt = FixedFormat(8, 0, rounding="stochastic")
    np.testing.assert_array_equal(kr.requantize(acc, 3, fmt, rng=5), ff.requantize(acc, 3, fmt, rng=5))
    with pytest.raises(OverflowError, match="overflow"):
        kr.requantize(np.array([1000]), 0, FixedFormat(8, 0, overflow="error"))
    with pytest.raises(TypeError, match="integer accumulators"):
        kr.requantize(np.array([1.5]), 0, FixedFormat(8, 0))
    with pytest.raises(ValueError, match="largest shift"):
        kr.requantize(np.array([1]), 63, FixedFormat(8, 0))
    with pytest.raises(TypeError, match="FixedFormat"):
        kr.requantize(np.array([1]), 0, LogFormat())


# ---------------------------------------------------------------------------------------
# shift-add GEMM


@st.composite
def shift_operands(draw):
    dtype = draw(st.sampled_from([np.int8, np.int16, np.int32]))
    info = np.iinfo(dtype)
    fmt = LogFormat(exp_bits=draw(st.integers(2, 7)), exp_offset=draw(st.integers(-12, 4)))
    m, n, k = draw(rows), draw(rows), draw(ks_lengths)
    lo, hi = draw(st.sampled_from([(info.min, info.max), (-128, 127), (-4, 4), (1 - 2**14, 2**14 - 1), (1 - 2**30, 2**30 - 1)]))
    x = draw(codes_of(dtype, max(lo, info.min), min(hi, info.max), (m, k)))
    zeros = [fmt.zero_code(False), fmt.zero_code(True)]
    w = draw(hnp.arrays(np.uint8, (n, k), elements=st.one_of(st.sampled_from(zeros), st.integers(0, (1 << fmt.bits) - 1))))
    return x, w, fmt


def overflows(x, w, fmt, x_frac, acc_frac):
    from bitsim.formats.log import split

    _, e, zero = split(w, fmt)
    if not (~zero).any() or x.shape[0] == 0:
        return False
    t_max = int(e[~zero].max()) + acc_frac - x_frac
    return ks.shift_bound(x.dtype, x.shape[1], t_max) > 2**63 - 1


@given(shift_operands(), st.integers(0, 16), st.one_of(st.none(), st.integers(-4, 24)),
       st.sampled_from(DETERMINISTIC), st.sampled_from([np.int32, np.int64]))
def test_shift_add_matches_oracle(operands, x_frac, acc_frac, rounding, acc_dtype):
    x, w, fmt = operands
    effective = x_frac if acc_frac is None else acc_frac
    kwargs = dict(acc_frac=acc_frac, rounding=rounding, acc_dtype=acc_dtype)
    if overflows(x, w, fmt, x_frac, effective) and x.shape[0] and w.shape[0]:
        with pytest.raises(OverflowError, match="can overflow int64"):
            ks.fixed_log_matmul(x, x_frac, w, fmt, **kwargs)
        return
    got_counts, want_counts = Counts(), Counts()
    got = ks.fixed_log_matmul(x, x_frac, w, fmt, counts=got_counts, **kwargs)
    want = rs.fixed_log_matmul(x, x_frac, w, fmt, counts=want_counts, **kwargs)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert got_counts == want_counts
    mirror = ks.log_fixed_matmul(w, fmt, x, x_frac, **kwargs)
    np.testing.assert_array_equal(mirror, rs.log_fixed_matmul(w, fmt, x, x_frac, **kwargs))
    np.testing.assert_array_equal(mirror, got.T)


@pytest.mark.parametrize("dtype,gap", [(np.int8, -8), (np.int16, -16), (np.int32, -32)])
@pytest.mark.parametrize("rounding", DETERMINISTIC)
def test_shift_add_every_code_and_shift(dtype, gap, rounding):
    """One term per output: all 256 codes of the 7-bit LogFormat, shifts gap-63 .. gap+63, times edge values."""
    info = np.iinfo(dtype)
    fmt = LogFormat(exp_bits=7)
    x = np.array([[info.min], [info.max], [-1], [0], [1], [info.min + 1], [3], [-3], [5], [-6]], dtype=dtype)
    w = np.arange(256, dtype=np.uint8)[:, None]
    for acc_dtype in (np.int32, np.int64):
        c1, c2 = Counts(), Counts()
        got = ks.fixed_log_matmul(x, 0, w, fmt, acc_frac=gap, rounding=rounding, acc_dtype=acc_dtype, counts=c1)
        want = rs.fixed_log_matmul(x, 0, w, fmt, acc_frac=gap, rounding=rounding, acc_dtype=acc_dtype, counts=c2)
        np.testing.assert_array_equal(got, want)
        assert c1 == c2


@pytest.mark.parametrize("k", [63, 64, 65, 4097])
@pytest.mark.parametrize("rounding", ["floor", "nearest_up", "ceil", "nearest_even"])
def test_shift_add_longer_reductions(k, rounding):
    rng = np.random.default_rng(k)
    fmt = LogFormat(exp_bits=4, exp_offset=-4)
    w = encode(rng.normal(0, 0.1, (3, k)).astype(np.float32), fmt)
    w[:, ::7] = fmt.zero_code(True)
    for dtype, hi in ((np.int8, 127), (np.int16, 2047), (np.int16, 32767), (np.int32, 2**31 - 1)):
        x = rng.integers(-hi - 1, hi, (2, k), endpoint=True).astype(dtype)
        x[:, ::5] = -hi - 1
        for acc_frac in (0, 3, 9):
            got = ks.fixed_log_matmul(x, 3, w, fmt, acc_frac=acc_frac, rounding=rounding, acc_dtype=np.int64)
            want = rs.fixed_log_matmul(x, 3, w, fmt, acc_frac=acc_frac, rounding=rounding, acc_dtype=np.int64)
            np.testing.assert_array_equal(got, want, err_msg=f"{dtype.__name__} |x|<={hi} acc_frac={acc_frac}")


@pytest.mark.parametrize("rounding", ["floor", "nearest_up", "ceil"])
def test_shift_add_shift_as_wide_as_a_lane(rounding):
    """|x| just below 2**14 in int16 lanes with only positive codes: shifts of 15 and 16 must not wrap."""
    fmt = LogFormat()
    x = np.array([[12000, -9000, 16383, -16383], [-8192, 8191, -1, 0]], dtype=np.int16)
    w = encode(np.array([[2.0**-16, 2.0**-16, 2.0**-15, 2.0**-20], [2.0**-14] * 4], dtype=np.float32), fmt)
    for acc_frac in (0, 1, -1):
        got = ks.fixed_log_matmul(x, 0, w, fmt, acc_frac=acc_frac, rounding=rounding, acc_dtype=np.int64)
        want = rs.fixed_log_matmul(x, 0, w, fmt, acc_frac=acc_frac, rounding=rounding, acc_dtype=np.int64)
        np.testing.assert_array_equal(got, want)


def test_shift_add_int32_saturation_counted():
    fmt = LogFormat()
    x = np.full((2, 100), -32768, dtype=np.int16)
    w = np.full((3, 100), encode(np.float32(2.0**10), fmt), dtype=np.uint8)  # -2**25 per term
    w[2] = encode(np.float32(-(2.0**10)), fmt)
    counts = Counts()
    got = ks.fixed_log_matmul(x, 0, w, fmt, counts=counts)
    assert (got[:, :2] == -(2**31)).all() and (got[:, 2] == 2**31 - 1).all()
    assert counts.saturated == 6
    assert (ks.fixed_log_matmul(x, 0, w, fmt, acc_dtype=np.int64)[:, 0] == -100 * 2**25).all()


def test_shift_add_sign_after_shift():
    fmt = LogFormat()
    x = np.array([[3, -3]], dtype=np.int8)
    w = encode(np.array([[-0.5, -0.5]], dtype=np.float32), fmt)
    # -(3 >> 1) + -(-3 >> 1) = -1 + 2; shifting the negated values instead would give -2 + 1
    assert ks.fixed_log_matmul(x, 0, w, fmt)[0, 0] == 1
    assert ks.fixed_log_matmul(x, 0, w, fmt, rounding="nearest_up")[0, 0] == -2 + 1


def test_shift_add_rejects_int64_overflow():
    fmt = LogFormat()
    x = np.ones((1, 4), dtype=np.int32)
    w = np.full((1, 4), encode(np.float32(2.0**40), fmt), dtype=np.uint8)
    with pytest.raises(OverflowError, match="can overflow int64"):
        ks.fixed_log_matmul(x, 0, w, fmt)
    with pytest.raises(OverflowError, match="can overflow int64"):
        ks.log_fixed_matmul(w, fmt, x, 0)
    assert ks.fixed_log_matmul(x, 0, w, fmt, acc_frac=-20, acc_dtype=np.int64)[0, 0] == 4 * 2**20


def test_shift_add_errors():
    fmt = LogFormat()
    x = np.zeros((2, 3), np.int8)
    w = np.full((4, 3), 0x40, np.uint8)
    with pytest.raises(TypeError, match="expected int8, int16 or int32 fixed-point codes, got float32"):
        ks.fixed_log_matmul(x.astype(np.float32), 0, w, fmt)
    with pytest.raises(TypeError, match="expected uint8 log codes"):
        ks.fixed_log_matmul(x, 0, w.astype(np.int16), fmt)
    with pytest.raises(ValueError, match="K=3 columns but w has K=2"):
        ks.fixed_log_matmul(x, 0, w[:, :2], fmt)
    with pytest.raises(ValueError, match="2-D"):
        ks.log_fixed_matmul(w[0], fmt, x, 0)
    with pytest.raises(TypeError, match="LogFormat"):
        ks.fixed_log_matmul(x, 0, w, FixedFormat(8, 0))
    with pytest.raises(ValueError, match="does not fit the 4-bit"):
        ks.fixed_log_matmul(x, 0, w, LogFormat(exp_bits=3))
    with pytest.raises(ValueError, match="stochastic"):
        ks.fixed_log_matmul(x, 0, w, fmt, rounding="stochastic")
    with pytest.raises(ValueError, match="unknown Rounding"):
        ks.fixed_log_matmul(x, 0, w, fmt, rounding="up")
    with pytest.raises(TypeError, match="x_frac must be an integer"):
        ks.fixed_log_matmul(x, 1.5, w, fmt)
    with pytest.raises(TypeError, match="acc_dtype"):
        ks.log_fixed_matmul(w, fmt, x, 0, acc_dtype=np.int16)


# ---------------------------------------------------------------------------------------
# determinism across thread counts


def test_results_do_not_depend_on_thread_count():
    threads = numba.get_num_threads()
    rng = np.random.default_rng(11)
    f8, f16 = FixedFormat(8, 2), FixedFormat(16, 5)
    a8, b8 = rng.integers(-128, 128, (70, 300)).astype(np.int8), rng.integers(-128, 128, (66, 300)).astype(np.int8)
    a16 = rng.integers(-(2**15), 2**15, (70, 300)).astype(np.int16)
    b16 = rng.integers(-(2**15), 2**15, (66, 300)).astype(np.int16)
    fmt = LogFormat(exp_bits=5, exp_offset=-6)
    w = encode(rng.normal(0, 0.2, (300, 300)).astype(np.float32), fmt)
    w[:, ::9] = fmt.zero_code()
    x32 = rng.integers(-(2**31), 2**31, (300, 300)).astype(np.int32)
    out16 = FixedFormat(16, 4, rounding="nearest_even")

    def run():
        return [
            kf.matmul(a8, f8, b8, f8, route="integer", acc_dtype=np.int64),
            kf.matmul(a16, f16, b16, f16, out16, route="integer"),
            kr.requantize(np.arange(-(2**20), 2**20, 3, dtype=np.int64), 7, out16),
            ks.fixed_log_matmul(a8[:, :300], 2, w, fmt, rounding="nearest_up"),
            ks.log_fixed_matmul(w, fmt, x32, 0, acc_dtype=np.int64),
            ks.fixed_log_matmul(a16, 0, w, fmt, acc_frac=3, rounding="nearest_away"),
        ]

    try:
        numba.set_num_threads(1)
        one = run()
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = run()
    finally:
        numba.set_num_threads(threads)
    for u, v in zip(one, two):
        np.testing.assert_array_equal(u, v)
