"""Both MX accumulation rules against the Fraction oracles, and the exact route's bound check."""

import numpy as np
import pytest

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
    assert same(kmx.gemm(a, b, "exact"), ref.gemm_exact(a, b))


def test_dot_and_errors():
    a = mx.quantize(np.arange(40.0), "mxfp8_e4m3")
    assert kmx.dot(a, a) == ref.gemm_exact(mx.MXTensor(a.codes[None], a.scales[None], a.fmt, 1),
                                           mx.MXTensor(a.codes[:, None], a.scales[:, None], a.fmt, 0))[0, 0]
    with pytest.raises(ValueError):
        kmx.gemm(a, a, "float16")
    with pytest.raises(TypeError):
        kmx.gemm(np.ones((2, 2)), a)
