"""bitsim.nn.blas.matmul: blocks fixed by the shape, exact where the arithmetic is, same bits on any thread count."""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitsim.nn import blas

dims = st.integers(1, 3000)


@given(dims, dims, dims)
def test_blocks_cover_the_longer_side_in_a_power_of_two_of_large_enough_pieces(m, k, n):
    axis, bounds = blas.blocks(m, k, n)
    length = m if axis == 0 else n
    count = len(bounds) - 1
    assert axis == (0 if m >= n else 1)
    assert bounds[0] == 0 and bounds[-1] == length
    assert count & (count - 1) == 0 and count <= blas.MAX_BLOCKS
    assert bounds == [length * i // count for i in range(count + 1)]
    if count > 1:
        assert min(np.diff(bounds)) >= blas.MIN_SPAN
        assert 2 * m * n * k // count >= blas.BLOCK_FLOPS
    if count < blas.MAX_BLOCKS:  # the next power of two would break a limit
        assert 2 * m * n * k // (2 * count) < blas.BLOCK_FLOPS or length // (2 * count) < blas.MIN_SPAN


def test_blocks_examples():
    assert blas.blocks(100, 784, 1024) == (1, [0, 128, 256, 384, 512, 640, 768, 896, 1024])
    assert blas.blocks(1024, 100, 784) == (0, [0, 128, 256, 384, 512, 640, 768, 896, 1024])
    assert blas.blocks(64, 784, 300) == (1, [0, 300])  # 30 MFLOP: two blocks would be below BLOCK_FLOPS
    assert blas.blocks(64, 784, 600) == (1, [0, 300, 600])
    assert blas.blocks(10, 10, 10) == (0, [0, 10])


@pytest.fixture
def threads():
    """Run a body at 1 thread and at the most Numba allows; restore the setting afterwards."""
    most = numba.config.NUMBA_NUM_THREADS
    before = numba.get_num_threads()

    def each():
        for count in sorted({1, most}):
            numba.set_num_threads(count)
            yield count

    yield each
    numba.set_num_threads(before)


SHAPES = [(100, 784, 1024), (1024, 100, 784), (64, 784, 300), (10, 1024, 10), (200, 1024, 1024), (7, 3, 5)]


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_equals_the_exact_integer_product(m, k, n, dtype, threads):
    # integer operands whose every partial sum stays below 2**24: any summation order gives the exact result
    rng = np.random.default_rng(m * 7 + n)
    a = rng.integers(-3, 4, (m, k)).astype(dtype)
    b = rng.integers(-1, 2, (k, n)).astype(dtype)
    exact = a.astype(np.int64) @ b.astype(np.int64)
    for _ in threads():
        out = blas.matmul(a, b)
        assert out.dtype == dtype and out.flags.c_contiguous
        np.testing.assert_array_equal(out, exact)


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_every_block_is_one_numpy_product_whatever_the_thread_count(m, k, n, threads):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((k, m)).astype(np.float32).T  # a transposed view, as W.grad = grad.T @ x passes it
    b = rng.standard_normal((n, k)).astype(np.float32).T
    axis, bounds = blas.blocks(m, k, n)
    rule = np.concatenate([a[lo:hi] @ b if axis == 0 else a @ b[:, lo:hi] for lo, hi in zip(bounds, bounds[1:])],
                          axis=axis)
    for _ in threads():
        assert blas.matmul(a, b).tobytes() == rule.tobytes()


def test_bad_operands_say_what_is_wrong():
    a = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"\(m, k\) @ \(k, n\)"):
        blas.matmul(a, a)
    with pytest.raises(TypeError, match="one dtype"):
        blas.matmul(a, np.zeros((3, 2), np.float64))
    with pytest.raises(TypeError, match="float"):
        blas.matmul(a.astype(np.int32), np.zeros((3, 2), np.int32))
