"""Masked layers for Dynamic Network Surgery (Guo, Yao, Chen, NIPS 2016): pruning and splicing.

A masked layer keeps its weights ``W`` and bias ``b`` beside binary masks ``T`` and ``Tb`` of the same
shapes and computes with the products ``W ∘ T`` and ``b ∘ Tb``. The backward pass writes the gradient
with respect to those products into ``W.grad`` and ``b.grad`` for **every** entry, masked or not, so
the optimizer keeps moving pruned weights and a pruned connection can grow back (splicing).

Mask rule (the authors' ``compress_*_layer`` code, per layer, with a hyper-parameter ``c``):

* at the start of the layer's surgery, ``mu`` and ``sigma`` are the mean and the (population)
  standard deviation of ``|v|`` over the **nonzero** entries ``v`` of ``W ∘ T`` and ``b ∘ Tb`` together
  (weights and biases are pruned alike); they are computed once, in float64;
* ``a = 0.9 * max(mu + c * sigma, 0)`` and ``b = 1.1 * max(mu + c * sigma, 0)``;
* an update sets ``T = 0`` where ``|W| <= a``, ``T = 1`` where ``|W| > b`` and leaves ``T`` unchanged in
  between (the same for ``Tb`` with ``|b|``), comparing in float64;
* at the layer's surgery iteration ``t`` an update happens iff ``t < iter_stop`` and one Bernoulli draw
  with probability ``p(t) = (1 + gamma * t) ** -power`` says yes
  (:func:`bitsim.formats.rng.bernoulli`: one uint32 ``u``, yes iff ``u < floor(p * 2**32)``).

Example
-------
>>> from bitsim.formats.rng import Philox
>>> layer = MaskedDense(4, 3, init_rng=1)
>>> layer.start_surgery(PruneRule(c=0.0))
>>> updated, pruned, spliced = layer.surgery_step(0, Philox(7))   # p(0) = 1: always an update
>>> updated, spliced
(True, 0)
"""

from dataclasses import dataclass

import numpy as np

from bitsim.formats.rng import bernoulli

from ..errors import InputError
from .conv import Conv2d, conv_backward, conv_forward
from .layers import Dense, dense_backward, dense_forward
from .shapes import check_2d, check_nhwc

PRUNE_LOW, SPLICE_HIGH = 0.9, 1.1


@dataclass(frozen=True)
class PruneRule:
    """The surgery hyper-parameters of one layer.

    Parameters
    ----------
    c : float
        Threshold offset in standard deviations: ``a, b = (0.9, 1.1) * max(mu + c * sigma, 0)``.
    gamma, power : float
        Update probability ``(1 + gamma * t) ** -power`` at surgery iteration ``t``.
    iter_stop : int
        No update at surgery iterations ``t >= iter_stop``.
    """

    c: float
    gamma: float = 1e-4
    power: float = 1.0
    iter_stop: int = 10_000

    def __post_init__(self):
        if self.gamma < 0 or self.power < 0 or self.iter_stop < 0:
            raise InputError(f"gamma, power and iter_stop must be >= 0, got {self}")

    def probability(self, t):
        """``(1 + gamma * t) ** -power`` for ``t < iter_stop``, else 0 (float64)."""
        t = int(t)
        if t < 0:
            raise InputError(f"surgery iteration must be >= 0, got {t}")
        if t >= self.iter_stop:
            return 0.0
        return float((1.0 + self.gamma * t) ** -self.power)


def moments(values):
    """``(mu, sigma)``: mean and population standard deviation of ``|v|`` over the nonzero ``v``, float64.

    Raises
    ------
    ValueError
        If every value is zero (nothing left to prune).
    """
    v = np.abs(np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in values]))
    v = v[v != 0]
    if v.size == 0:
        raise InputError("every weight of the layer is zero; there is nothing to prune")
    mu = float(v.mean())
    return mu, float(np.sqrt(np.mean((v - mu) ** 2)))


def thresholds(mu, sigma, c):
    """``(a, b) = (0.9, 1.1) * max(mu + c * sigma, 0)`` in float64."""
    base = max(float(mu) + float(c) * float(sigma), 0.0)
    return PRUNE_LOW * base, SPLICE_HIGH * base


def _floor_to(x, dtype):
    """The largest value of the float ``dtype`` that is <= the float64 ``x``."""
    y = dtype.type(x)
    return np.nextafter(y, dtype.type(-np.inf)) if float(y) > float(x) else y


def apply_thresholds(mask, values, a, b):
    """The updated mask: 0 where ``|values| <= a``, 1 where ``|values| > b``, else ``mask``.

    ``a <= b`` are float64; the comparisons are exact (a float32 ``|v|`` is compared with the largest
    float32 not above the threshold, which decides ``<=`` and ``>`` exactly as float64 would).

    Returns
    -------
    new : numpy.ndarray of bool
    pruned, spliced : int
        Connections switched off (1 -> 0) and restored (0 -> 1).
    """
    values = np.asarray(values)
    if values.dtype.kind != "f":
        values = values.astype(np.float64)
    mask = np.asarray(mask, dtype=bool)
    mag = np.abs(values)
    keep = mag > _floor_to(a, values.dtype)
    new = keep & (mask | (mag > _floor_to(b, values.dtype)))  # |v| > b implies |v| > a
    both = np.count_nonzero(mask & new)
    return new, int(np.count_nonzero(mask) - both), int(np.count_nonzero(new) - both)


class _Masked:
    """Masks, thresholds and the surgery step shared by :class:`MaskedDense` and :class:`MaskedConv2d`."""

    def _init_masks(self, input_grad):
        self.T = np.ones(self.W.value.shape, dtype=bool)
        self.Tb = np.ones(self.b.value.shape if self.b is not None else (0,), dtype=bool)
        # mu, sigma, a, b: NaN until start_surgery
        self.stats = np.full(4, np.nan)
        self.rule = None
        self.input_grad = bool(input_grad)

    def weight(self):
        """``W ∘ T`` (masked entries +0)."""
        return np.where(self.T, self.W.value, self.W.value.dtype.type(0))

    def bias(self):
        """``b ∘ Tb``, or None without a bias."""
        if self.b is None:
            return None
        return np.where(self.Tb, self.b.value, self.b.value.dtype.type(0))

    def start_surgery(self, rule):
        """Fix the thresholds from the current weights and set ``rule`` (a :class:`PruneRule`)."""
        mu, sigma = moments([self.weight()] + ([self.bias()] if self.b is not None else []))
        a, b = thresholds(mu, sigma, rule.c)
        self.stats[:] = (mu, sigma, a, b)
        self.rule = rule

    def resume_surgery(self, rule):
        """Set ``rule`` keeping the thresholds already in ``stats`` (after loading a checkpoint)."""
        if np.isnan(self.stats).any():
            raise InputError(f"{type(self).__name__}: no thresholds in the state to resume from; "
                             "call start_surgery(rule) instead")
        self.rule = rule

    def end_surgery(self):
        """Freeze the masks: later :meth:`surgery_step` calls draw nothing and change nothing."""
        self.rule = None

    @property
    def thresholds(self):
        """``(a, b)``; NaN before :meth:`start_surgery`."""
        return float(self.stats[2]), float(self.stats[3])

    def surgery_step(self, t, rng):
        """Surgery iteration ``t``: one Bernoulli draw from ``rng``, then maybe a mask update.

        Returns
        -------
        (bool, int, int)
            Whether the masks were updated, connections pruned, connections spliced.
        """
        if self.rule is None:
            raise RuntimeError(f"{type(self).__name__}: call start_surgery(rule) before surgery_step")
        if not bool(bernoulli(np.float64(self.rule.probability(t)), rng)):
            return False, 0, 0
        a, b = self.thresholds
        self.T, pw, sw = apply_thresholds(self.T, self.W.value, a, b)
        self.Tb, pb, sb = apply_thresholds(self.Tb, self.b.value if self.b is not None else np.zeros(0), a, b)
        return True, pw + pb, sw + sb

    def active(self):
        """Connections in use: ones of ``T`` and ``Tb``."""
        return int(np.count_nonzero(self.T) + np.count_nonzero(self.Tb))

    def size(self):
        """All weights and biases of the layer."""
        return int(self.T.size + self.Tb.size)

    def density(self):
        """``active() / size()``."""
        return self.active() / self.size()

    def buffers(self):
        return {"T": self.T, "Tb": self.Tb, "stats": self.stats}

    def load_state(self, state):
        super().load_state(state)
        self.rule = None


class MaskedDense(_Masked, Dense):
    """A :class:`~bitsim.nn.Dense` layer computing ``y = x @ (W ∘ T).T + b ∘ Tb``.

    Parameters
    ----------
    n_in, n_out, bias, init_rng, dtype
        As for :class:`~bitsim.nn.Dense`.
    input_grad : bool
        Compute the gradient w.r.t. the input (False for a first layer saves the work; its
        ``backward`` then returns None).

    Notes
    -----
    ``backward`` writes ``W.grad = grad.T @ x`` (the gradient w.r.t. ``W ∘ T``) and
    ``b.grad = grad.sum(0)`` for every entry, pruned or not; the input gradient uses ``W ∘ T``.
    State keys: ``W``, ``b``, ``T``, ``Tb`` (bool masks) and ``stats`` (``mu, sigma, a, b``, float64).
    """

    def __init__(self, n_in, n_out, bias=True, *, init_rng=None, dtype=np.float32, input_grad=True):
        super().__init__(n_in, n_out, bias, init_rng=init_rng, dtype=dtype)
        self._init_masks(input_grad)

    def forward(self, x, training=True):
        x = np.asarray(x).astype(self.dtype, copy=False)
        check_2d(x, self.n_in, self)
        return dense_forward(self, x, self.weight(), self.bias())

    def backward(self, grad):
        return dense_backward(self, grad, self.input_grad)


class MaskedConv2d(_Masked, Conv2d):
    """A :class:`~bitsim.nn.Conv2d` layer (NHWC) computing with ``W ∘ T`` and ``b ∘ Tb``.

    Parameters
    ----------
    c_in, c_out, kernel, stride, padding, bias, init_rng, dtype
        As for :class:`~bitsim.nn.Conv2d`.
    input_grad : bool
        As for :class:`MaskedDense`.

    Notes
    -----
    The gradient rule is :class:`MaskedDense`'s, on the im2col matrix of the input.
    """

    def __init__(self, c_in, c_out, kernel, stride=1, padding=0, bias=True, *, init_rng=None, dtype=np.float32,
                 input_grad=True):
        super().__init__(c_in, c_out, kernel, stride, padding, bias, init_rng=init_rng, dtype=dtype)
        self._init_masks(input_grad)

    def forward(self, x, training=True):
        x = np.asarray(x).astype(self.dtype, copy=False)
        check_nhwc(x, self.c_in, self)
        return conv_forward(self, x, self.weight().reshape(self.c_out, -1),
                            self.bias() if self.b is not None else None)

    def backward(self, grad):
        return conv_backward(self, grad, self.input_grad)


def masked_layers(model):
    """The masked layers of a :class:`~bitsim.nn.Sequential`, in order."""
    return [layer for layer in model.layers if isinstance(layer, _Masked)]


def is_masked(layer):
    """Whether ``layer`` is a :class:`MaskedDense` or :class:`MaskedConv2d`."""
    return isinstance(layer, _Masked)


__all__ = ["PruneRule", "MaskedDense", "MaskedConv2d", "moments", "thresholds", "apply_thresholds",
           "masked_layers", "is_masked"]
