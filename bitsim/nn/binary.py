"""Binary layers (BinaryConnect / BNN): latent float weights, ±1 weights in every forward pass.

Rules shared by :class:`BinaryDense` and :class:`BinaryConv2d`:

* The latent weights ``W`` are a :class:`~bitsim.nn.layers.Param` with ``clip=(-1, 1)``: every
  optimizer step ends by clipping them to [-1, 1]. They start uniform on (-1, 1) (the BNN code's
  ``H = 1``), drawn from ``init_rng`` (see :mod:`bitsim.nn.init`).
* Each training forward pass binarizes them anew: deterministically, ``Wb = +1 iff W >= 0``
  (:func:`bitsim.formats.binary.binarize`), or stochastically, ``P(Wb = +1) = clip((W + 1) / 2, 0, 1)``
  with one draw per weight in row-major order of ``W`` from the layer's generator
  (:func:`bitsim.formats.binary.binarize_stochastic`). Inference (``training=False``) always uses the
  deterministic sign, so the deployed network is the ±1 network of :meth:`binary_weights`.
* The output is the float matrix product with the ±1 values. When the inputs are integers
  (±1 activations, or 8-bit pixels 0..255 fed as uint8) every partial sum is an integer bounded by
  ``n * max|x|``; below ``2**24`` (float32) or ``2**53`` (float64) it is exact in any summation
  order, so the result equals the integer product bit for bit. Integer-dtype inputs are checked
  against that bound.
* Backward: the input gradient uses the **binarized** weights (``g @ Wb``); the weight gradient is the
  gradient w.r.t. ``Wb`` passed straight through to the latent ``W`` (BinaryConnect / BNN rule, no
  ``|W| <= 1`` cancellation needed since ``W`` is clipped).
"""

import numpy as np

from bitsim.formats import binary
from bitsim.formats.rng import as_rng

from ..errors import InputError
from ._fused import sign_pm1
from .init import uniform
from .layers import Layer, Param, _check_2d, _check_nhwc, _window, conv_backward, conv_forward, conv_output_hw

EXACT_LIMIT = {np.dtype(np.float32): 2**24, np.dtype(np.float64): 2**53}


def _check_exact(x, n, dtype, layer):
    """Refuse integer inputs whose ±1-weighted sums could exceed the float's exact-integer range."""
    if x.dtype.kind not in "iub" or x.size == 0:
        return
    bound = int(np.abs(x.astype(np.int64)).max()) * n
    limit = EXACT_LIMIT.get(np.dtype(dtype))
    if limit is not None and bound >= limit:
        raise InputError(
            f"{layer}: integer inputs up to {bound // n} over {n} terms can reach {bound} >= {limit}, "
            f"beyond the exact integers of {np.dtype(dtype)}; use dtype=float64 or smaller inputs"
        )


class _Binarized:
    """Weight binarization shared by the binary layers (deterministic or stochastic)."""

    def _init_binary(self, stochastic, rng):
        self.stochastic = bool(stochastic)
        self.rng = as_rng(rng) if stochastic or rng is not None else None
        self._wb = None

    def _binarize(self, training):
        """The ±1 weights of this forward pass, in the layer's float dtype."""
        if self.stochastic and training:
            wb = binary.binarize_stochastic(self.W.value, self.rng).astype(self.dtype)
        else:
            wb = np.empty(self.W.value.shape, self.dtype)
            if sign_pm1(np.ascontiguousarray(self.W.value).reshape(-1), wb.reshape(-1)):
                raise InputError(f"{self}: latent weights contain NaN; the training diverged")
        self._wb = wb
        return wb

    def binary_weights(self):
        """The ±1 int8 weights used in the last forward pass (the deterministic sign of ``W`` before any).

        Same shape as ``W``; pack them with :func:`bitsim.formats.binary.pack` along the last axis.
        """
        if self._wb is None:
            return binary.binarize(self.W.value)
        return self._wb.astype(np.int8)


class BinaryDense(_Binarized, Layer):
    """Fully connected layer with ±1 weights: ``y = x @ Wb.T (+ b)``; see the module docstring for the rules.

    Parameters
    ----------
    n_in, n_out : int
    stochastic : bool
        Stochastic binarization in training (needs ``rng``).
    rng : bitsim generator or int, optional
        Generator for the stochastic binarization draws.
    bias : bool
        A float bias (off by default: a BatchNorm usually follows).
    lr_scale : float
        Learning-rate scale of ``W`` (e.g. :func:`bitsim.nn.init.glorot_lr_scale`).
    init_rng : bitsim generator, int or None
        Draws the initial latent weights, uniform on (-1, 1).
    dtype : numpy dtype
    input_grad : bool
        Compute the gradient w.r.t. the input (False for a first layer saves the work; its
        ``backward`` then returns None).

    Notes
    -----
    ``W`` and :meth:`binary_weights` have shape ``(n_out, n_in)``, the (out, in) layout of
    :func:`bitsim.kernels.binary.xnor_gemm`.
    """

    weight_bits = 1

    def __init__(self, n_in, n_out, stochastic=False, rng=None, *, bias=False, lr_scale=1.0, init_rng=None,
                 dtype=np.float32, input_grad=True):
        self.n_in, self.n_out, self.dtype = int(n_in), int(n_out), np.dtype(dtype)
        self.input_grad = bool(input_grad)
        self.W = Param(uniform((self.n_out, self.n_in), -1.0, 1.0, init_rng, self.dtype), "W",
                       clip=(-1.0, 1.0), lr_scale=lr_scale)
        self.b = Param(np.zeros(self.n_out, self.dtype), "b") if bias else None
        self._init_binary(stochastic, rng)

    def forward(self, x, training=True):
        x = np.asarray(x)
        _check_2d(x, self.n_in, self)
        _check_exact(x, self.n_in, self.dtype, self)
        x = x.astype(self.dtype, copy=False)
        wb = self._binarize(training)
        self._x = x
        y = x @ wb.T
        return y + self.b.value if self.b is not None else y

    def backward(self, grad):
        x = self._cached("_x")
        self.W.grad = grad.T @ x
        if self.b is not None:
            self.b.grad = grad.sum(axis=0)
        return grad @ self._wb if self.input_grad else None

    def params(self):
        return [self.W] + ([self.b] if self.b is not None else [])

    def output_shape(self, shape):
        return (self.n_out,)

    def _describe(self):
        return f"{self.n_in}, {self.n_out}, stochastic={self.stochastic}, bias={self.b is not None}"


class BinaryConv2d(_Binarized, Layer):
    """2-D convolution of NHWC images with ±1 weights; see :class:`~bitsim.nn.layers.Conv2d` and the module rules.

    Parameters
    ----------
    c_in, c_out : int
    kernel, stride, padding : int or (int, int)
        As in :class:`~bitsim.nn.layers.Conv2d`; padded positions hold 0 (not ±1), as in
        :func:`bitsim.kernels.binary.binary_conv2d`.
    stochastic, rng, bias, lr_scale, init_rng, dtype
        As in :class:`BinaryDense`.

    Notes
    -----
    ``W`` and :meth:`binary_weights` have shape ``(c_out, KH, KW, c_in)``, the layout of the packed
    binary convolution kernel (input channels packed along the last axis).
    """

    weight_bits = 1

    def __init__(self, c_in, c_out, kernel, stride=1, padding=0, stochastic=False, rng=None, *, bias=False,
                 lr_scale=1.0, init_rng=None, dtype=np.float32):
        self.c_in, self.c_out, self.dtype = int(c_in), int(c_out), np.dtype(dtype)
        self.kernel, self.stride, self.padding = _window(kernel, stride, padding)
        kh, kw = self.kernel
        self.W = Param(uniform((self.c_out, kh, kw, self.c_in), -1.0, 1.0, init_rng, self.dtype), "W",
                       clip=(-1.0, 1.0), lr_scale=lr_scale)
        self.b = Param(np.zeros(self.c_out, self.dtype), "b") if bias else None
        self._init_binary(stochastic, rng)

    def forward(self, x, training=True):
        x = np.asarray(x)
        _check_nhwc(x, self.c_in, self)
        _check_exact(x, self.kernel[0] * self.kernel[1] * self.c_in, self.dtype, self)
        x = x.astype(self.dtype, copy=False)
        return conv_forward(self, x, self._binarize(training).reshape(self.c_out, -1))

    def backward(self, grad):
        return conv_backward(self, grad)

    def params(self):
        return [self.W] + ([self.b] if self.b is not None else [])

    def output_shape(self, shape):
        return conv_output_hw(shape[:2], self.kernel, self.stride, self.padding) + (self.c_out,)

    def _describe(self):
        return (f"{self.c_in}, {self.c_out}, kernel={self.kernel}, stride={self.stride}, padding={self.padding}, "
                f"stochastic={self.stochastic}, bias={self.b is not None}")
