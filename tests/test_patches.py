"""The Numba patch and pooling loops equal their NumPy references (bitsim.reference.conv) bit for bit."""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitsim.nn import MaxPool2d
from bitsim.nn.conv import col2im, im2col
from bitsim.reference import conv as ref


@st.composite
def conv_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int64, np.uint8]))
    seed = draw(st.integers(0, 2**31))
    return (n, h, w, c), (kh, kw), (sh, sw), (ph, pw), dtype, seed


def values(shape, dtype, rng):
    if np.dtype(dtype).kind == "f":
        x = rng.standard_normal(shape).astype(dtype)
        x.reshape(-1)[:: 7] = -0.0  # signed zeros must survive the sums as NumPy leaves them
        return x
    return rng.integers(0, 200, shape).astype(dtype)


@given(conv_cases())
def test_im2col_and_col2im_equal_the_numpy_reference(case):
    shape, kernel, stride, padding, dtype, seed = case
    rng = np.random.default_rng(seed)
    x = values(shape, dtype, rng)
    cols, hw = im2col(x, kernel, stride, padding)
    want, want_hw = ref.im2col(x, kernel, stride, padding)
    assert hw == want_hw and cols.dtype == want.dtype
    assert cols.tobytes() == np.ascontiguousarray(want).tobytes()
    g = values(cols.shape, dtype, rng)
    back = col2im(g, shape, kernel, stride, padding)
    assert back.tobytes() == np.ascontiguousarray(ref.col2im(g, shape, kernel, stride, padding)).tobytes()


@given(conv_cases(), st.booleans())
def test_max_pool_equals_the_numpy_reference(case, with_nan):
    (n, h, w, c), kernel, stride, _, _, seed = case
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, (n, h + 3, w + 3, c)).astype(np.float32)  # small integers: many ties
    if with_nan:
        x.reshape(-1)[rng.integers(0, x.size, 3)] = np.nan
    layer = MaxPool2d(kernel, stride)
    y = layer.forward(x)
    want, argmax = ref.max_pool(x, kernel, stride)
    assert y.tobytes() == np.ascontiguousarray(want).tobytes()
    np.testing.assert_array_equal(layer._argmax, argmax)
    g = rng.standard_normal(y.shape).astype(np.float32)
    got = layer.backward(g)
    assert got.tobytes() == ref.max_pool_backward(g, argmax, x.shape, kernel, stride).tobytes()


def test_max_pool_keeps_signed_zeros_and_infinities():
    x = np.array([[-0.0, 0.0, -np.inf, -np.inf], [0.0, -0.0, -np.inf, np.inf],
                  [np.inf, 1.0, -0.0, -0.0], [np.inf, 2.0, -0.0, -1.0]], np.float32).reshape(1, 4, 4, 1)
    layer = MaxPool2d(2)
    y = layer.forward(x)
    want, argmax = ref.max_pool(x, (2, 2), (2, 2))
    assert y.tobytes() == np.ascontiguousarray(want).tobytes()
    assert np.signbit(y).ravel().tolist() == [True, False, False, True]  # ties keep the first: -0.0 before 0.0
    g = np.array([-0.0, 1.0, 2.0, -0.0], np.float32).reshape(y.shape)
    assert layer.backward(g).tobytes() == ref.max_pool_backward(g, argmax, x.shape, (2, 2), (2, 2)).tobytes()


def test_large_inputs_run_in_parallel_with_the_bits_of_the_reference_and_of_one_thread():
    most = numba.config.NUMBA_NUM_THREADS
    if most < 2:
        pytest.skip("Numba has one thread (NUMBA_NUM_THREADS=1)")
    rng = np.random.default_rng(1)
    x = values((64, 28, 28, 3), np.float32, rng)  # each loop well above PARALLEL_MIN_WORK
    want_cols, _ = ref.im2col(x, (5, 5), (1, 1), (2, 2))
    want_pool, argmax = ref.max_pool(x, (3, 3), (2, 2))
    want = [np.ascontiguousarray(want_cols).tobytes(),
            np.ascontiguousarray(ref.col2im(want_cols, x.shape, (5, 5), (1, 1), (2, 2))).tobytes(),
            np.ascontiguousarray(want_pool).tobytes(),
            ref.max_pool_backward(np.ascontiguousarray(want_pool), argmax, x.shape, (3, 3), (2, 2)).tobytes()]
    before = numba.get_num_threads()
    for threads in (1, most):
        numba.set_num_threads(threads)
        try:
            cols, _ = im2col(x, (5, 5), (1, 1), (2, 2))
            back = col2im(cols, x.shape, (5, 5), (1, 1), (2, 2))
            pool = MaxPool2d(3, 2)
            y = pool.forward(x)
            assert [cols.tobytes(), back.tobytes(), y.tobytes(), pool.backward(y).tobytes()] == want, threads
        finally:
            numba.set_num_threads(before)


def test_a_window_larger_than_the_input_is_refused():
    with pytest.raises(ValueError, match="larger than the padded input"):
        im2col(np.zeros((1, 3, 3, 1), np.float32), (5, 5), (1, 1), (0, 0))
    with pytest.raises(ValueError, match="larger than the input"):
        MaxPool2d(4).forward(np.zeros((1, 3, 3, 1), np.float32))


def test_bad_windows_and_shapes_say_what_is_wrong():
    x = np.zeros((1, 4, 4, 1), np.float32)
    with pytest.raises(ValueError, match="stride must be at least 1"):
        im2col(x, (2, 2), (0, 1), (0, 0))
    with pytest.raises(ValueError, match="padding must be at least 0"):
        im2col(x, (2, 2), (1, 1), (-1, 0))
    with pytest.raises(ValueError, match="NHWC"):
        im2col(x[0], (2, 2), (1, 1), (0, 0))
    with pytest.raises(ValueError, match=r"patches of shape \(9, 4\) expected"):
        col2im(np.ones((3, 4), np.float32), x.shape, (2, 2), (1, 1), (0, 0))
    with pytest.raises(ValueError, match="kernel must be at least 1"):
        MaxPool2d(0)
    pool = MaxPool2d(2)
    pool.forward(x)
    with pytest.raises(ValueError, match=r"gradient of shape \(1, 2, 2, 1\) expected"):
        pool.backward(np.ones((1, 4, 4, 1), np.float32))
