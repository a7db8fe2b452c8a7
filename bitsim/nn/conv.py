"""Convolution and pooling of NHWC images: im2col and its adjoint, the convolution layers' base, Conv2d, MaxPool2d.

The conventions of :mod:`bitsim.nn.layers` hold. A convolution unfolds its input with :func:`im2col`
(rows ``(n, r, q)``, columns ``(u, v, c)``, channels fastest) and multiplies by ``W`` reshaped to
``(c_out, KH * KW * c_in)``; its backward pass folds the patch gradients back with :func:`col2im`.
"""

import numpy as np

from bitsim.formats.launch import launch

from . import patches
from ..errors import InputError
from .init import glorot_uniform
from .layers import Layer, Param, as_float
from .shapes import check_nhwc, pair, window

PARALLEL_MIN_WORK = 2**16  # elements below which the patch and pooling loops stay on the calling thread


def im2col(x, kernel, stride, padding):
    """Patches of an NHWC batch as rows: shape ``(N * OH * OW, KH * KW * C)``, channels fastest.

    Row ``(n, r, q)`` holds ``xp[n, r*sh + u, q*sw + v, c]`` at column ``(u * KW + v) * C + c``, where
    ``xp`` is ``x`` zero-padded by ``padding = (ph, pw)`` on both sides of each axis. A parallel Numba
    copy; :func:`bitsim.reference.conv.im2col` is the NumPy version it equals.

    Returns
    -------
    cols : numpy.ndarray
    out_hw : (int, int)
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding = window(kernel, stride, padding)
    check_nhwc(x, None, "im2col")
    n, h, w, c = x.shape
    if h + 2 * ph < kh or w + 2 * pw < kw:
        raise InputError(f"kernel {kernel} is larger than the padded input {(h + 2 * ph, w + 2 * pw)}")
    oh, ow = conv_output_hw((h, w), kernel, stride, padding)
    cols = np.empty((n * oh * ow, kh * kw * c), dtype=x.dtype)
    launch(patches.im2col, cols.size, np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, oh, ow, cols,
           min_work=PARALLEL_MIN_WORK)
    return cols, (oh, ow)


def col2im(cols, x_shape, kernel, stride, padding):
    """Adjoint of :func:`im2col`: sum the patch gradients back into an NHWC array of ``x_shape``.

    Each element is ``0 +`` its patch entries added in ``(u, v)`` window order (as
    :func:`bitsim.reference.conv.col2im`); entries that fall in the padding are dropped.
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding = window(kernel, stride, padding)
    n, h, w, c = x_shape
    oh, ow = conv_output_hw((h, w), kernel, stride, padding)
    if cols.shape != (n * oh * ow, kh * kw * c):
        raise InputError(f"col2im: patches of shape {(n * oh * ow, kh * kw * c)} expected for an input of shape "
                         f"{tuple(x_shape)}, kernel {kernel}, stride {stride} and padding {padding}; got {cols.shape}")
    out = np.zeros((n, h, w, c), dtype=cols.dtype)
    launch(patches.col2im, cols.size, np.ascontiguousarray(cols), kh, kw, sh, sw, ph, pw, oh, ow, out,
           min_work=PARALLEL_MIN_WORK)
    return out


def conv_output_hw(hw, kernel, stride, padding):
    """Output height and width of a convolution or pooling window (floor division, no partial windows)."""
    return tuple((size + 2 * p - k) // s + 1 for size, k, s, p in zip(hw, kernel, stride, padding))


def conv_forward(layer, x, w2d, bias=None):
    """im2col convolution of NHWC ``x`` with weights ``w2d`` (c_out, KH*KW*c_in); caches for :func:`conv_backward`.

    ``layer`` supplies ``kernel``, ``stride``, ``padding``, ``c_out`` and the optional bias ``b``, whose value
    is added unless ``bias`` gives the values to add instead.
    """
    cols, (oh, ow) = im2col(x, layer.kernel, layer.stride, layer.padding)
    layer._x_shape, layer._cols, layer._w2d = x.shape, cols, w2d
    y = cols @ w2d.T
    if layer.b is not None:
        y += layer.b.value if bias is None else bias
    return y.reshape(x.shape[0], oh, ow, layer.c_out)


def conv_backward(layer, grad, input_grad=True):
    """Fill ``layer.W.grad`` (and ``b.grad``) from the output gradient; return the input gradient (None
    without ``input_grad``)."""
    cols = layer._cached("_cols")
    g = grad.reshape(-1, layer.c_out)
    layer.W.grad = (g.T @ cols).reshape(layer.W.value.shape)
    if layer.b is not None:
        layer.b.grad = g.sum(axis=0)
    if not input_grad:
        return None
    return col2im(g @ layer._w2d, layer._x_shape, layer.kernel, layer.stride, layer.padding)


class ConvLayer(Layer):
    """Base of the 2-D convolutions of NHWC images: weights ``W`` (c_out, KH, KW, c_in), bias ``b`` or None.

    What :class:`Conv2d` and the binary, masked and Connect convolutions share: the window
    (``kernel``, ``stride`` and ``padding`` pairs), the parameter list and the output shape.
    """

    def _init_window(self, c_in, c_out, kernel, stride, padding, dtype):
        self.c_in, self.c_out, self.dtype = int(c_in), int(c_out), np.dtype(dtype)
        self.kernel, self.stride, self.padding = window(kernel, stride, padding)

    def params(self):
        return [self.W] + ([self.b] if self.b is not None else [])

    def output_shape(self, shape):
        return conv_output_hw(shape[:2], self.kernel, self.stride, self.padding) + (self.c_out,)

    def _describe_window(self):
        return f"{self.c_in}, {self.c_out}, kernel={self.kernel}, stride={self.stride}, padding={self.padding}"


class Conv2d(ConvLayer):
    """2-D convolution (cross-correlation) of NHWC images by im2col and one matrix product.

    ``y[n, r, q, o] = b[o] + sum_{u, v, c} xp[n, r*sh + u, q*sw + v, c] * W[o, u, v, c]`` with ``xp`` the
    input zero-padded by ``padding`` on both sides.

    Parameters
    ----------
    c_in, c_out : int
    kernel : int or (int, int)
        (KH, KW).
    stride : int or (int, int)
    padding : int or (int, int)
        Zeros added on both sides of the height and width axes.
    bias : bool
    init_rng : bitsim generator, int or None
        Draws the Glorot-uniform initial ``W`` (fan-in ``KH*KW*c_in``, fan-out ``KH*KW*c_out``).
    dtype : numpy dtype

    Notes
    -----
    ``W`` has shape ``(c_out, KH, KW, c_in)``, the layout of the packed binary convolution kernel.
    """

    def __init__(self, c_in, c_out, kernel, stride=1, padding=0, bias=True, *, init_rng=None, dtype=np.float32):
        self._init_window(c_in, c_out, kernel, stride, padding, dtype)
        self.weight_bits = 8 * self.dtype.itemsize
        kh, kw = self.kernel
        shape = (self.c_out, kh, kw, self.c_in)
        self.W = Param(glorot_uniform(shape, kh * kw * self.c_in, kh * kw * self.c_out, init_rng, self.dtype), "W")
        self.b = Param(np.zeros(self.c_out, self.dtype), "b") if bias else None

    def forward(self, x, training=True):
        x = np.asarray(x).astype(self.dtype, copy=False)
        check_nhwc(x, self.c_in, self)
        return conv_forward(self, x, self.W.value.reshape(self.c_out, -1))

    def backward(self, grad):
        return conv_backward(self, grad)

    def _describe(self):
        return f"{self._describe_window()}, bias={self.b is not None}"


class MaxPool2d(Layer):
    """Max pooling over ``kernel`` windows of NHWC images, without padding (partial windows dropped).

    Parameters
    ----------
    kernel : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel``.

    Notes
    -----
    The backward pass routes each output gradient to the first maximum of its window in
    row-major window order; overlapping windows add their contributions.
    """

    def __init__(self, kernel, stride=None):
        self.kernel = pair(kernel, "kernel")
        self.stride = self.kernel if stride is None else pair(stride, "stride")

    def forward(self, x, training=True):
        x = np.ascontiguousarray(as_float(x))
        check_nhwc(x, None, self)
        (kh, kw), (sh, sw) = self.kernel, self.stride
        n, h, w, c = x.shape
        if h < kh or w < kw:
            raise InputError(f"{self}: pooling window {self.kernel} is larger than the input {(h, w)}")
        oh, ow = conv_output_hw((h, w), self.kernel, self.stride, (0, 0))
        y = np.empty((n, oh, ow, c), x.dtype)
        self._argmax = np.empty((n, oh, ow, c), np.int32)
        self._x_shape = x.shape
        launch(patches.max_pool, x.size, x, kh, kw, sh, sw, y, self._argmax, min_work=PARALLEL_MIN_WORK)
        return y

    def backward(self, grad):
        argmax = self._cached("_argmax")
        if grad.shape != argmax.shape:
            raise InputError(f"{self}: gradient of shape {argmax.shape} expected (the last output), got {grad.shape}")
        (kh, kw), (sh, sw) = self.kernel, self.stride
        dx = np.zeros(self._x_shape, dtype=grad.dtype)
        launch(patches.max_pool_backward, dx.size, np.ascontiguousarray(grad), argmax, kh, kw, sh, sw, dx,
               min_work=PARALLEL_MIN_WORK)
        return dx

    def output_shape(self, shape):
        return conv_output_hw(shape[:2], self.kernel, self.stride, (0, 0)) + (shape[2],)

    def _describe(self):
        return f"kernel={self.kernel}, stride={self.stride}"
