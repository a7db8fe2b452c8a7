"""BinaryConnect / TernaryConnect layers with quantized back-propagation (Lin et al., 2016).

The rules are written out in ``docs/formats.md``, section 10; in short, for a layer
``y = x W_q^T`` (dense, or convolution by im2col) in training:

**Weights.** Latent float weights ``W`` (clipped to [-1, 1] after every optimizer step) are
sampled anew in every training forward pass, one uint32 draw ``u`` per weight in row-major order
of ``W`` from the layer's generator, decided by the Bernoulli rule ``yes iff u < floor(p * 2**32)``:

* binary: ``+1`` with ``p = (W + 1) / 2``, else ``-1`` (as :func:`bitsim.formats.binary.binarize_stochastic`);
* ternary: ``sign(W)`` with ``p = |W|``, else ``0`` (as :func:`bitsim.formats.ternary.ternarize_stochastic`);
* deterministic variants: ``+1 iff W >= 0``; ternary ``+1 if W > 0.5``, ``-1 if W < -0.5``, else 0.

The sampled weights are packed (binary: one plane; ternary: signs and mask planes), along K for
the forward product and along N for the backward one (:func:`bitsim.kernels.sampling.sample_weights`).

**Forward.** The input is held in dynamic fixed point (:func:`bitsim.formats.dynamic_fixed.dynamic_fixed`:
int16 codes whose fractional bits are set per tensor by its largest magnitude) and multiplied by the packed
weights with :func:`bitsim.kernels.signadd.signadd_gemm`: additions and subtractions selected by
the weight bits, exact integer sums. The sums are converted to float32 and scaled by
``2**-frac`` (exact below ``2**24``).

**Backward (QBP,** :mod:`bitsim.nn.qbp` **).** For the error term ``g = dL/dy`` (the gradient at the
product's output, i.e. ``delta * h'`` after the batch norm's backward):

1. ``g`` is held in dynamic fixed point: ``err_bits`` codes ``g_fx`` with ``f_g`` fractional bits;
2. the input ``x`` (the exact values the forward used) becomes log codes ``x_q = ±2**e``
   (:func:`~bitsim.nn.qbp.qbp_log_codes`):
   ``e = floor(log2|x|) + Bernoulli(|x| / 2**floor(log2|x|) - 1)``, with an exponent window
   ``[emin, emax]`` of ``exp_bits`` bits;
3. ``dW = g_fx^T x_q`` by the shift-add kernel :func:`bitsim.kernels.shift.fixed_log_matmul`,
   with ``f_g - emin`` fractional bits in the accumulator so that every shift is a left shift:
   the integer sums are exact;
4. ``db = sum over the batch of g_fx`` (additions; only for layers with a bias);
5. ``dx = g_fx W_q`` by :func:`~bitsim.kernels.signadd.signadd_gemm` on the transposed planes
   (sign flips and additions, exact).

The integers become float32 only at the end (``dW`` for the optimizer, ``dx`` for the batch
norm below): a conversion, rounded to nearest even only when a sum exceeds ``2**24``, and a
scaling by a power of two. :func:`~bitsim.nn.qbp.qbp_float_emulation` computes what the authors'
Theano code computes (``g`` in float32, ``dW = g^T x_q`` by a float32 product) for comparison.

Reproducibility: all draws come from explicit bitsim generators
(:func:`bitsim.formats.rng.make_rng`), ``philox`` or the hardware-friendly ``xorshift32``;
:func:`bitsim.formats.rng.draws` gives the same numbers as ``rng.uint32`` (for Philox, by a
parallel kernel). :mod:`bitsim.nn.mults` counts the multiplications of a training step.
"""

import numpy as np

from bitsim.formats.dynamic_fixed import dynamic_fixed, to_float32
from bitsim.formats.modes import Counts
from bitsim.formats.rng import as_rng
from bitsim.kernels.sampling import WEIGHT_KINDS, sample_weights

from ..errors import InputError
from .conv import ConvLayer, col2im, im2col
from .layers import DenseLayer, Param, latent_weights
from .qbp import qbp_log_codes, qbp_weight_grad
from .shapes import check_2d, check_nhwc


class Connect:
    """Sampling, forward product and QBP shared by :class:`ConnectDense` and :class:`ConnectConv2d`."""

    def _init_connect(self, kind, stochastic, rng, qbp, qbp_rng, input_grad, inference):
        if kind not in WEIGHT_KINDS:
            raise InputError(f"weights must be one of {WEIGHT_KINDS}, got {kind!r}")
        if inference not in ("deterministic", "latent", "stochastic"):
            raise InputError(f"inference must be 'deterministic', 'latent' or 'stochastic', got {inference!r}")
        self.kind, self.stochastic = kind, bool(stochastic)
        self.rng = as_rng(rng) if (stochastic or rng is not None) else None
        self.qbp = qbp
        self.qbp_rng = as_rng(qbp_rng) if qbp is not None else None
        self.input_grad = bool(input_grad)
        self.inference = inference
        self.counts = Counts()
        self.last = {}
        self._sample = None
        self.weight_bits = 1 if kind == "binary" else 2

    @property
    def act_bits(self):
        return self.qbp.act_bits if self.qbp is not None else 16

    def sampled_weights(self, training=True):
        """The packed weights of a forward pass (a new sample in training, when stochastic)."""
        w = self.W.value.reshape(self.W.value.shape[0], -1)
        stochastic = self.stochastic if training else self.inference == "stochastic"
        return sample_weights(w, self.kind, stochastic, self.rng)

    def _quantize(self, x):
        """The dynamic fixed-point codes of the input as float32, and their fractional bits."""
        return dynamic_fixed(x.astype(np.float32, copy=False), self.act_bits, counts=self.counts)

    def _product(self, codes, f, training):
        """Forward on (M, K) codes with ``f`` fractional bits: the latent float weights (inference 'latent') or
        sampled weights with exact sums, to float32; then the bias."""
        if not training and self.inference == "latent":
            y = to_float32(codes, f) @ self.W.value.reshape(self.W.value.shape[0], -1).T.astype(np.float32)
        else:
            self._sample = self.sampled_weights(training)
            y = to_float32(self._sample.forward(codes), f)
        return y + self.b.value if self.b is not None else y

    def _gradients(self, g2d, codes, f):
        """Weight gradient (set on W) and input gradient (M, K) or None, from the error (M, N)."""
        sample = self._cached("_sample")
        shape = self.W.value.shape
        if self.qbp is None:
            x = to_float32(codes, f)
            self.W.grad = (g2d.T @ x).reshape(shape).astype(self.W.value.dtype, copy=False)
            if self.b is not None:
                self.b.grad = g2d.sum(axis=0)
            return g2d @ sample.values().astype(np.float32) if self.input_grad else None
        q = self.qbp
        g_codes, g_frac = dynamic_fixed(g2d, q.err_bits, q.err_rounding, self.qbp_rng, self.counts)
        x_codes = qbp_log_codes(to_float32(codes, f), q, self.qbp_rng, self.counts)
        dw, dw_frac = qbp_weight_grad(x_codes, q, g_codes, g_frac)
        self.W.grad = to_float32(dw, dw_frac).reshape(shape)
        if self.b is not None:
            self.b.grad = to_float32(g_codes.sum(axis=0, dtype=np.int64), g_frac)
        dx = sample.backward(g_codes) if self.input_grad else None
        self.last = {"g": g2d, "x_codes": x_codes, "g_codes": g_codes, "g_frac": g_frac, "dw": dw,
                     "dw_frac": dw_frac, "dx": dx}
        return to_float32(dx, g_frac) if dx is not None else None


class ConnectDense(Connect, DenseLayer):
    """Fully connected BinaryConnect / TernaryConnect layer ``y = x W_q^T (+ b)`` with optional QBP.

    See the module docstring for the rules.

    Parameters
    ----------
    n_in, n_out : int
    weights : {'binary', 'ternary'}
    stochastic : bool
        Sample the weights in every training forward pass (needs ``rng``); otherwise the
        deterministic rule.
    rng : bitsim generator or int, optional
        Draws for the weight sampling.
    qbp : bitsim.nn.qbp.QBP or None
        Quantized back-propagation; None back-propagates in float32 (``dW = g^T x``,
        ``dx = g W_q``).
    qbp_rng : bitsim generator or int, optional
        Draws for the log rounding of ``x`` (and a stochastic error rounding).
    input_grad : bool
        Compute the gradient w.r.t. the input (False for a first layer: ``backward`` returns None).
    inference : {'deterministic', 'latent', 'stochastic'}
        Weights used when ``training=False``: the deterministic rule, the latent float weights
        (the authors' test-time rule for stochastic BinaryConnect; a float product), or a sample.
    bias : bool
    lr_scale : float
    init_rng : bitsim generator, int or None
        Initial latent weights uniform on (-1, 1).
    """

    def __init__(self, n_in, n_out, weights="binary", stochastic=True, rng=None, *, qbp=None, qbp_rng=None,
                 input_grad=True, inference="deterministic", bias=False, lr_scale=1.0, init_rng=None):
        self._init_sizes(n_in, n_out, np.float32)
        self.W = latent_weights((self.n_out, self.n_in), init_rng, np.float32, lr_scale)
        self.b = Param(np.zeros(self.n_out, np.float32), "b") if bias else None
        self._init_connect(weights, stochastic, rng, qbp, qbp_rng, input_grad, inference)

    def forward(self, x, training=True):
        x = np.asarray(x)
        check_2d(x, self.n_in, self)
        self._codes, self._frac = self._quantize(x)
        return self._product(self._codes, self._frac, training)

    def backward(self, grad):
        codes = self._cached("_codes")
        return self._gradients(np.ascontiguousarray(grad, np.float32), codes, self._frac)

    def _describe(self):
        return (f"{self.n_in}, {self.n_out}, weights={self.kind!r}, stochastic={self.stochastic}, "
                f"qbp={self.qbp is not None}, bias={self.b is not None}")


class ConnectConv2d(Connect, ConvLayer):
    """2-D convolution (NHWC) with binary / ternary sampled weights and optional QBP, by im2col.

    The input is quantized to dynamic fixed point first, then unfolded (padding taps are code
    0); the rows of the unfolded input are the ``M`` axis of the dense rules (``M = N * OH * OW``).
    ``W`` has shape ``(c_out, KH, KW, c_in)``, reduced in (kh, kw, c) order as in
    :func:`bitsim.nn.conv.im2col`. Other parameters as in :class:`ConnectDense` and
    :class:`bitsim.nn.conv.Conv2d`.
    """

    def __init__(self, c_in, c_out, kernel, stride=1, padding=0, weights="binary", stochastic=True, rng=None, *,
                 qbp=None, qbp_rng=None, input_grad=True, inference="deterministic", bias=False, lr_scale=1.0,
                 init_rng=None):
        self._init_window(c_in, c_out, kernel, stride, padding, np.float32)
        kh, kw = self.kernel
        self.W = latent_weights((self.c_out, kh, kw, self.c_in), init_rng, np.float32, lr_scale)
        self.b = Param(np.zeros(self.c_out, np.float32), "b") if bias else None
        self._init_connect(weights, stochastic, rng, qbp, qbp_rng, input_grad, inference)

    def forward(self, x, training=True):
        x = np.asarray(x)
        check_nhwc(x, self.c_in, self)
        codes, f = self._quantize(x)
        cols, (oh, ow) = im2col(codes, self.kernel, self.stride, self.padding)
        self._x_shape, self._codes, self._frac = x.shape, cols, f
        return self._product(cols, f, training).reshape(x.shape[0], oh, ow, self.c_out)

    def backward(self, grad):
        cols = self._cached("_codes")
        g = np.ascontiguousarray(grad, np.float32).reshape(-1, self.c_out)
        dcols = self._gradients(g, cols, self._frac)
        if dcols is None:
            return None
        return col2im(dcols, self._x_shape, self.kernel, self.stride, self.padding)

    def _describe(self):
        return (f"{self._describe_window()}, weights={self.kind!r}, stochastic={self.stochastic}, "
                f"qbp={self.qbp is not None}")
