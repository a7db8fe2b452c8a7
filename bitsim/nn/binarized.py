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
from .conv import ConvLayer, conv_backward, conv_forward
from .fused import sign_pm1
from .layers import DenseLayer, Param, dense_backward, dense_forward, latent_weights
from .shapes import check_2d, check_nhwc

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


class BinaryDense(_Binarized, DenseLayer):
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
    :func:`bitsim.kernels.xnor.xnor_gemm`.
    """

    weight_bits = 1

    def __init__(self, n_in, n_out, stochastic=False, rng=None, *, bias=False, lr_scale=1.0, init_rng=None,
                 dtype=np.float32, input_grad=True):
        self._init_sizes(n_in, n_out, dtype)
        self.input_grad = bool(input_grad)
        self.W = latent_weights((self.n_out, self.n_in), init_rng, self.dtype, lr_scale)
        self.b = Param(np.zeros(self.n_out, self.dtype), "b") if bias else None
        self._init_binary(stochastic, rng)

    def forward(self, x, training=True):
        x = np.asarray(x)
        check_2d(x, self.n_in, self)
        _check_exact(x, self.n_in, self.dtype, self)
        x = x.astype(self.dtype, copy=False)
        return dense_forward(self, x, self._binarize(training))

    def backward(self, grad):
        return dense_backward(self, grad, self.input_grad)

    def _describe(self):
        return f"{self.n_in}, {self.n_out}, stochastic={self.stochastic}, bias={self.b is not None}"


class BinaryConv2d(_Binarized, ConvLayer):
    """2-D convolution of NHWC images with ±1 weights; see :class:`~bitsim.nn.conv.Conv2d` and the module rules.

    Parameters
    ----------
    c_in, c_out : int
    kernel, stride, padding : int or (int, int)
        As in :class:`~bitsim.nn.conv.Conv2d`; padded positions hold 0 (not ±1), as in
        :func:`bitsim.kernels.xnor.binary_conv2d`.
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
        self._init_window(c_in, c_out, kernel, stride, padding, dtype)
        kh, kw = self.kernel
        self.W = latent_weights((self.c_out, kh, kw, self.c_in), init_rng, self.dtype, lr_scale)
        self.b = Param(np.zeros(self.c_out, self.dtype), "b") if bias else None
        self._init_binary(stochastic, rng)

    def forward(self, x, training=True):
        x = np.asarray(x)
        check_nhwc(x, self.c_in, self)
        _check_exact(x, self.kernel[0] * self.kernel[1] * self.c_in, self.dtype, self)
        x = x.astype(self.dtype, copy=False)
        return conv_forward(self, x, self._binarize(training).reshape(self.c_out, -1))

    def backward(self, grad):
        return conv_backward(self, grad)

    def _describe(self):
        return f"{self._describe_window()}, stochastic={self.stochastic}, bias={self.b is not None}"
