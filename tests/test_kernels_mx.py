"""Both MX accumulation rules against the Fraction oracles, and the exact route's bound check."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitsim.formats import mx
from bitsim.kernels import mx as kmx
from bitsim.reference import mx as ref


def same(a, b):
    return np.array_equal(np.asarray(a, np.float32).view(np.uint32), np.asarray(b, np.float32).view(np.uint32))


@pytest.mark.parametrize("name", list(mx.FORMATS))
def test_both_rules_equal_their_oracle(name):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 70)) * 2.0 ** rng.integers(-8, 8, (4, 70))
    y = rng.standard_normal((70, 3)) * 2.0 ** rng.integers(-8, 8, (70, 3))
    x[3, :32] = 0
    a, b = mx.quantize(x, name, axis=1), mx.quantize(y, name, axis=0)
    exact = ref.gemm_exact(a, b)
    for route in ("integer", "auto"):
        assert same(kmx.gemm(a, b, "exact", route), exact)
    assert same(kmx.gemm(a, b, "float32"), ref.gemm_float32(a, b))


def test_extreme_scales_and_nan_blocks():
    x = np.ones((2, 64))
    x[0, 32:] = 2.0**-120  # blocks 2**-120 apart: only the exact rule keeps the small block
    x[1, 5] = np.nan
    y = np.full((64, 1), 2.0**100)
    a, b = mx.quantize(x * 3, "mxfp8_e4m3", axis=1), mx.quantize(y, "mxfp8_e4m3", axis=0)
    out = kmx.gemm(a, b, "exact")
    assert same(out, ref.gemm_exact(a, b)) and np.isnan(out[1, 0])
    assert same(kmx.gemm(a, b, "float32"), ref.gemm_float32(a, b))
    big = mx.quantize(np.full((1, 32), 2.0**120), "mxfp8_e4m3", axis=1)
    bigb = mx.quantize(np.full((32, 1), 2.0**120), "mxfp8_e4m3", axis=0)
    assert np.isinf(kmx.gemm(big, bigb, "exact")[0, 0])


def test_the_bound_check_chooses_the_integer_kernel_when_blas_is_not_exact():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 64))
    y = rng.standard_normal((64, 2))
    a, b = mx.quantize(x, "mxfp4_e2m1", axis=1), mx.quantize(y, "mxfp4_e2m1", axis=0)
    assert kmx.blas_rows(a, b, 24).all()  # small FP4 products: float32 BLAS is exact
    x[0, 32:] *= 2.0**-60  # row 0's blocks now 60 binades apart: no float BLAS holds its sum exactly
    a = mx.quantize(x, "mxfp4_e2m1", axis=1)
    assert not kmx.blas_rows(a, b, 24)[0] and not kmx.blas_rows(a, b, 53)[0] and kmx.blas_rows(a, b, 53)[1:].all()
    assert list(kmx.auto_routes(a, b)) == ["integer", "int8", "int8"]
    assert same(kmx.gemm(a, b, "exact"), ref.gemm_exact(a, b))


def test_dot_and_errors():
    a = mx.quantize(np.arange(40.0), "mxfp8_e4m3")
    assert kmx.dot(a, a) == ref.gemm_exact(mx.MXTensor(a.codes[None], a.scales[None], a.fmt, 1),
                                           mx.MXTensor(a.codes[:, None], a.scales[:, None], a.fmt, 0))[0, 0]
    with pytest.raises(ValueError):
        kmx.gemm(a, a, "float16")
    with pytest.raises(TypeError):
        kmx.gemm(np.ones((2, 2)), a)


def random_mx(rng, name, shape, axis, base, window, nan_blocks=0.0, zero_blocks=0.0):
    """An MXTensor with uniform element codes and scales ``base .. base + window`` (E8M0 codes)."""
    fmt = mx.as_mx(name)
    codes = rng.integers(0, 1 << fmt.element.bits, shape).astype(np.uint8)
    sshape = list(shape)
    sshape[axis] = -(-shape[axis] // fmt.block)
    scales = np.clip(base + rng.integers(0, window + 1, sshape), 0, 254).astype(np.uint8)
    blocks = np.repeat(rng.random(sshape) < zero_blocks, fmt.block, axis=axis)
    codes[np.take(blocks, np.arange(shape[axis]), axis=axis)] = 0
    scales[rng.random(sshape) < nan_blocks] = 0xFF
    return mx.MXTensor(codes, scales, fmt, axis)


FITS_INT8 = {"mxfp4_e2m1": 3, "mxfp6_e2m3": 1}  # widest window: E2M1 12 * 2**3, E2M3 60 * 2 fit in int8
ROUTE_FORMATS = ["mxfp4_e2m1", "mxfp6_e2m3", "mxint8", "mxfp8_e4m3"]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(ROUTE_FORMATS), st.sampled_from(ROUTE_FORMATS), st.integers(1, 5), st.integers(1, 5),
       st.integers(1, 80), st.sampled_from([1, 40, 127, 200, 251]), st.integers(0, 3), st.integers(0, 2**32 - 1))
def test_every_route_equals_the_oracle(name, name_b, m, n, k, base, window, seed):
    rng = np.random.default_rng(seed)
    nan, zero = (0.05, 0.2) if seed % 3 == 0 else (0.0, 0.0)
    if seed % 2:
        name_b = name
    a = random_mx(rng, name, (m, k), 1, base, window, nan, zero)
    b = random_mx(rng, name_b, (k, n), 0, 254 - base, window, nan, zero)
    exact = ref.gemm_exact(a, b)
    for route in kmx.ROUTES:
        assert same(kmx.gemm(a, b, "exact", route), exact), route
    rows, _ = kmx.int8_route(a, b)
    if window <= min(FITS_INT8.get(name, -1), FITS_INT8.get(name_b, -1)):
        assert rows is not None and rows.all()


def test_the_int8_check_sends_wide_lines_elsewhere():
    rng = np.random.default_rng(3)
    a = random_mx(rng, "mxfp4_e2m1", (3, 96), 1, 120, 1)
    b = random_mx(rng, "mxfp4_e2m1", (96, 2), 0, 130, 1)
    rows, _ = kmx.int8_route(a, b)
    assert rows.all()  # windows of 2**1: integers up to 12 * 2 fit in int8
    a.scales[1] = [120, 120, 124]  # row 1's blocks now span 2**4: 12 * 16 = 192 does not fit
    a.codes[1, 64:] = 0b0111  # ... and the widest block holds 6 (integer 12)
    rows, _ = kmx.int8_route(a, b)
    assert list(rows) == [True, False, True]
    assert list(kmx.auto_routes(a, b)) == ["int8", "blas float32", "int8"]
    assert same(kmx.gemm(a, b, "exact", "int8"), ref.gemm_exact(a, b))
    assert same(kmx.gemm(a, b, "exact"), ref.gemm_exact(a, b))
    b.scales[:, 1], b.codes[:32, 1] = [125, 130, 130], 0b0111  # a column with blocks 2**5 apart: no row can use it
    assert kmx.int8_route(a, b) == (None, None)
    assert same(kmx.gemm(a, b, "exact", "int8"), ref.gemm_exact(a, b))


def test_normal_fp4_data_takes_the_int8_route():
    rng = np.random.default_rng(5)
    a = mx.quantize(rng.standard_normal((8, 256)), "mxfp4_e2m1", axis=1)
    b = mx.quantize(rng.standard_normal((256, 8)), "mxfp4_e2m1", axis=0)
    rows, out = kmx.int8_route(a, b)
    assert rows.all() and same(out, ref.gemm_exact(a, b))
    assert set(kmx.auto_routes(a, b)) == {"int8"}
    a8 = mx.quantize(rng.standard_normal((4, 256)), "mxfp8_e4m3", axis=1)
    b8 = mx.quantize(rng.standard_normal((256, 3)), "mxfp8_e4m3", axis=0)
    assert set(kmx.auto_routes(a8, b8)) == {"blas float64"}
    assert same(kmx.gemm(a8, b8), ref.gemm_exact(a8, b8))


def test_int8_route_worked_example():
    """docs/formats.md 14.5: block 0 = 1.5 x 2**-1, block 1 = -0.5 x 2**1, against 2.0 x 2**0 everywhere."""
    fmt = mx.as_mx("mxfp4_e2m1")
    codes = np.repeat(np.array([[3, 9]], np.uint8), 32, axis=1)  # E2M1 codes of 1.5 and -0.5
    a = mx.MXTensor(codes, np.array([[126, 128]], np.uint8), fmt, 1)
    b = mx.MXTensor(np.full((64, 1), 4, np.uint8), np.array([[127], [127]], np.uint8), fmt, 0)  # 2.0
    assert list(a.dequantize()[0, [0, 32]]) == [0.75, -1.0]
    rows, out = kmx.int8_route(a, b)
    assert rows.all() and out[0, 0] == np.float32(-16.0) == ref.gemm_exact(a, b)[0, 0]


def test_int8_route_beyond_int32_sums():
    """K = 65,800 > 65,793: the uint8 x int8 GEMM returns int64 sums (K-chunks of int32). Checked against
    the limb kernel (itself checked against the oracle above), the oracle taking seconds at this K."""
    rng = np.random.default_rng(8)
    a = random_mx(rng, "mxfp4_e2m1", (2, 65_800), 1, 127, 2)
    b = random_mx(rng, "mxfp4_e2m1", (65_800, 2), 0, 120, 2)
    rows, out = kmx.int8_route(a, b)
    assert rows.all() and same(out, kmx.gemm(a, b, "exact", "integer"))
