"""Recurrent layers: an embedding table, one-hot input and a GRU over whole sequences, forward and
back-propagation through time.

The GRU has gates in the order (r, z, n) and two forms of the candidate state ``n``:

* ``reset='before'`` (Cho et al. 2014; the form of the log-quantized GRU paper): the reset gate
  multiplies the state before the matrix product::

      r = sigmoid(Wx_r x + Wh_r h + b_r)
      z = sigmoid(Wx_z x + Wh_z h + b_z)
      n = tanh(Wx_n x + Wh_n (h * r) + b_n)
      h' = z * h + (1 - z) * n

* ``reset='after'`` (cuDNN, PyTorch's ``torch.nn.GRU``): ``n = tanh(Wx_n x + b_n + r * (Wh_n h + b_hn))``,
  with one more bias ``b_hn`` inside the reset product. PyTorch's ``b_ih`` and ``b_hh`` map to
  ``b = b_ih + [b_hh_r, b_hh_z, 0]`` and ``b_hn = b_hh_n`` (see :func:`from_torch`).

``Wx`` is ``(3H, n_in)``, ``Wh`` is ``(3H, H)`` and ``b`` is ``(3H,)``, row blocks r, z, n (PyTorch's
``weight_ih_l0`` / ``weight_hh_l0`` layout). Sequences are batch-first ``(N, T, features)``.

Back-propagation through time is exact for the float forward pass; the state handed in as ``h0`` is a
constant (truncated BPTT: gradients stop at the start of the sequence, the state value does not).
"""

import math

import numba
import numpy as np

from ..errors import InputError
from .init import generator, glorot_uniform, uniform
from .layers import Layer, Param

RESET_FORMS = ("before", "after")


def sigmoid(a):
    """The logistic function as ``0.5 + 0.5 * tanh(a / 2)`` in the dtype of ``a`` (no overflow for any ``a``)."""
    half = a.dtype.type(0.5) if isinstance(a, np.ndarray) else 0.5
    return half + half * np.tanh(half * a)


def _check_ids(ids, layer):
    """``ids`` as an integer array, or a ValueError naming the layer's valid range."""
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu" or (ids.size and (ids.min() < 0 or ids.max() >= layer.n_vocab)):
        raise InputError(f"{layer} expects integer ids in 0..{layer.n_vocab - 1}")
    return ids


class Embedding(Layer):
    """A table of ``n_vocab`` learned vectors: ids ``(N, T)`` -> vectors ``(N, T, dim)``.

    Parameters
    ----------
    n_vocab, dim : int
    init_rng : bitsim generator, int or None
        Draws the initial table uniformly in (-0.1, 0.1) (:func:`bitsim.nn.init.uniform`).
    dtype : numpy dtype
    """

    def __init__(self, n_vocab, dim, *, init_rng=None, dtype=np.float32):
        self.n_vocab, self.dim, self.dtype = int(n_vocab), int(dim), np.dtype(dtype)
        self.weight_bits = 8 * self.dtype.itemsize
        self.E = Param(uniform((self.n_vocab, self.dim), -0.1, 0.1, init_rng, self.dtype), "E")

    def forward(self, ids, training=True):
        ids = _check_ids(ids, self)
        self._ids = ids
        return self.E.value[ids]

    @property
    def table(self):
        """The ``(n_vocab, dim)`` vectors, row ``c`` the input of character ``c``."""
        return self.E.value

    def backward(self, grad):
        ids = self._cached("_ids").reshape(-1)
        g = np.asarray(grad).reshape(-1, self.dim)
        out = np.empty((self.n_vocab, self.dim), dtype=self.dtype)
        for d in range(self.dim):
            out[:, d] = np.bincount(ids, weights=g[:, d], minlength=self.n_vocab)
        self.E.grad = out
        return None

    def params(self):
        return [self.E]

    def output_shape(self, shape):
        return tuple(shape) + (self.dim,)

    def _describe(self):
        return f"{self.n_vocab}, {self.dim}"


class OneHot(Layer):
    """Ids ``(N, T)`` -> one-hot vectors ``(N, T, n_vocab)``: the fixed input of a character model, no parameters.

    Every entry is 0 or 1, so every code of ``x_t`` (log, fixed point) holds it exactly.
    """

    def __init__(self, n_vocab, *, dtype=np.float32):
        self.n_vocab = self.dim = int(n_vocab)
        self.dtype = np.dtype(dtype)

    @property
    def table(self):
        """The identity ``(n_vocab, n_vocab)``: row ``c`` is the input of character ``c``."""
        return np.eye(self.n_vocab, dtype=self.dtype)

    def forward(self, ids, training=True):
        ids = _check_ids(ids, self)
        return self.table[ids]

    def backward(self, grad):
        return None

    def output_shape(self, shape):
        return tuple(shape) + (self.n_vocab,)

    def _describe(self):
        return f"{self.n_vocab}"


class GRU(Layer):
    """One GRU layer over batch-first sequences ``(N, T, n_in) -> (N, T, hidden)``; see the module docstring.

    Parameters
    ----------
    n_in, hidden : int
    reset : {'before', 'after'}
        Where the reset gate acts: on ``h`` before the product (the paper's form, default) or on the
        product (PyTorch's form).
    init_rng : bitsim generator, int or None
        Draws ``Wx`` then ``Wh`` (Glorot uniform per gate block, blocks r, z, n in order); biases start at 0.
    dtype : numpy dtype
        float32 (default) or float64.

    Notes
    -----
    ``forward(x, h0=None)`` starts from ``h0`` (zeros when None) and leaves the last state in
    ``self.h_last``; ``backward(grad)`` takes the gradient w.r.t. every output state and returns the
    gradient w.r.t. ``x``.
    """

    def __init__(self, n_in, hidden, reset="before", *, init_rng=None, dtype=np.float32):
        if reset not in RESET_FORMS:
            raise InputError(f"reset must be one of {RESET_FORMS}, got {reset!r}")
        self.n_in, self.hidden, self.reset, self.dtype = int(n_in), int(hidden), reset, np.dtype(dtype)
        self.weight_bits = 8 * self.dtype.itemsize
        h = self.hidden
        rng = generator(init_rng)
        wx = np.concatenate([glorot_uniform((h, self.n_in), self.n_in, h, rng, self.dtype) for _ in range(3)])
        wh = np.concatenate([glorot_uniform((h, h), h, h, rng, self.dtype) for _ in range(3)])
        self.Wx, self.Wh = Param(wx, "Wx"), Param(wh, "Wh")
        self.b = Param(np.zeros(3 * h, self.dtype), "b", decay=False)
        self.b_hn = Param(np.zeros(h, self.dtype), "b_hn", decay=False) if reset == "after" else None
        self.h_last = None

    def params(self):
        return [self.Wx, self.Wh, self.b] + ([self.b_hn] if self.b_hn is not None else [])

    def output_shape(self, shape):
        return tuple(shape[:-1]) + (self.hidden,)

    def _describe(self):
        return f"{self.n_in}, {self.hidden}, reset={self.reset!r}"

    def forward(self, x, h0=None, training=True):
        x = np.asarray(x).astype(self.dtype, copy=False)
        if x.ndim != 3 or x.shape[2] != self.n_in:
            raise InputError(f"{self} expects (N, T, {self.n_in}) sequences, got {x.shape}")
        n, steps, h = x.shape[0], x.shape[1], self.hidden
        state = np.zeros((n, h), self.dtype) if h0 is None else np.asarray(h0).astype(self.dtype, copy=True)
        if state.shape != (n, h):
            raise InputError(f"h0 must have shape ({n}, {h}), got {state.shape}")
        ax = np.ascontiguousarray(x @ self.Wx.value.T + self.b.value)  # (N, T, 3H)
        hs = np.empty((n, steps, h), self.dtype)
        prev = np.empty((n, steps, h), self.dtype)
        gates = np.empty((n, steps, 3 * h), self.dtype)  # r, z, n
        inner = np.empty((n, steps, h), self.dtype)  # h * r (before) or Wh_n h + b_hn (after)
        b_hn = self.b_hn.value if self.b_hn is not None else np.zeros(h, self.dtype)
        _forward(ax, np.ascontiguousarray(self.Wh.value.T), b_hn, state, self.reset == "before",
                 prev, gates, inner, hs, self.dtype.type(0.5), self.dtype.type(1))
        self.h_last = hs[:, -1].copy() if steps else state
        self._cache = (x, prev, gates, inner)
        return hs

    def backward(self, grad):
        x, prev, gates, inner = self._cached("_cache")
        grad = np.ascontiguousarray(np.asarray(grad).astype(self.dtype, copy=False))
        n, steps, h = prev.shape
        wh = np.ascontiguousarray(self.Wh.value)
        da = np.empty((n, steps, 3 * h), self.dtype)  # pre-activation gradients r, z, n
        dhn = np.empty((n, steps, h), self.dtype)  # gradient of Wh_n h + b_hn ('after' only)
        self.grad_h0 = np.empty((n, h), self.dtype)
        _backward(grad, wh, prev, gates, inner, self.reset == "before", da, dhn, self.grad_h0, self.dtype.type(1))
        flat_da = da.reshape(-1, 3 * h)
        flat_prev = prev.reshape(-1, h)
        dwh = np.empty_like(wh)
        dwh[:2 * h] = flat_da[:, :2 * h].T @ flat_prev
        if self.reset == "before":
            dwh[2 * h:] = flat_da[:, 2 * h:].T @ inner.reshape(-1, h)
        else:
            dwh[2 * h:] = dhn.reshape(-1, h).T @ flat_prev
            self.b_hn.grad = dhn.reshape(-1, h).sum(axis=0)
        self.Wh.grad = dwh
        self.Wx.grad = flat_da.T @ x.reshape(-1, self.n_in)
        self.b.grad = flat_da.sum(axis=0)
        return (flat_da @ self.Wx.value).reshape(n, steps, self.n_in)


# The recurrences, one stream per parallel iteration (so the bits do not depend on the thread count).
# Matrix-vector products are written as sums of columns (axpy over the output index), which LLVM
# vectorizes without reordering any sum.


@numba.njit(cache=True, parallel=True, fastmath=False)
def _forward(ax, wht, b_hn, h0, before, prev, gates, inner, hs, half, one):
    n, steps, h3 = ax.shape
    h = h3 // 3
    for s in numba.prange(n):
        state = h0[s].copy()
        acc = np.empty(h3, ax.dtype)
        g = np.empty(h, ax.dtype)
        for t in range(steps):
            prev[s, t] = state
            acc[:2 * h] = ax[s, t, :2 * h]
            for k in range(h):
                v = state[k]
                for j in range(2 * h):
                    acc[j] += wht[k, j] * v
            for j in range(2 * h):
                acc[j] = half + half * math.tanh(half * acc[j])
            if before:
                for k in range(h):
                    g[k] = state[k] * acc[k]
                acc[2 * h:] = ax[s, t, 2 * h:]
                for k in range(h):
                    v = g[k]
                    for j in range(h):
                        acc[2 * h + j] += wht[k, 2 * h + j] * v
                for j in range(h):
                    acc[2 * h + j] = math.tanh(acc[2 * h + j])
            else:
                g[:] = b_hn
                for k in range(h):
                    v = state[k]
                    for j in range(h):
                        g[j] += wht[k, 2 * h + j] * v
                for j in range(h):
                    acc[2 * h + j] = math.tanh(ax[s, t, 2 * h + j] + acc[j] * g[j])
            inner[s, t] = g
            for j in range(h):
                z = acc[h + j]
                state[j] = z * state[j] + (one - z) * acc[2 * h + j]
            gates[s, t] = acc
            hs[s, t] = state


@numba.njit(cache=True, parallel=True, fastmath=False)
def _backward(grad, wh, prev, gates, inner, before, da, dhn, dh0, one):
    n, steps, h = prev.shape
    for s in numba.prange(n):
        carry = np.zeros(h, grad.dtype)
        dg = np.empty(h, grad.dtype)
        for t in range(steps - 1, -1, -1):
            hp = prev[s, t]
            gt = gates[s, t]
            d = da[s, t]
            for j in range(h):
                dh = grad[s, t, j] + carry[j]
                z = gt[h + j]
                cand = gt[2 * h + j]
                d[2 * h + j] = dh * (one - z) * (one - cand * cand)
                d[h + j] = dh * (hp[j] - cand) * z * (one - z)
                carry[j] = dh * z
            if before:
                dg[:] = 0
                for j in range(h):
                    v = d[2 * h + j]
                    for k in range(h):
                        dg[k] += v * wh[2 * h + j, k]
                for k in range(h):
                    r = gt[k]
                    carry[k] += dg[k] * r
                    d[k] = dg[k] * hp[k] * r * (one - r)
            else:
                for j in range(h):
                    r = gt[j]
                    v = d[2 * h + j] * r
                    dhn[s, t, j] = v
                    d[j] = d[2 * h + j] * inner[s, t, j] * r * (one - r)
                    for k in range(h):
                        carry[k] += v * wh[2 * h + j, k]
            for j in range(2 * h):
                v = d[j]
                for k in range(h):
                    carry[k] += v * wh[j, k]
        dh0[s] = carry


def from_torch(gru, weight_ih, weight_hh, bias_ih, bias_hh):
    """Load PyTorch ``torch.nn.GRU`` layer-0 parameters (as arrays) into a ``reset='after'`` :class:`GRU`."""
    if gru.reset != "after":
        raise InputError("PyTorch's GRU applies the reset gate after the product; build GRU(..., reset='after')")
    h = gru.hidden
    bias_ih, bias_hh = np.asarray(bias_ih, np.float64), np.asarray(bias_hh, np.float64)
    b = bias_ih.copy()
    b[:2 * h] += bias_hh[:2 * h]
    gru.load_state({"Wx": np.asarray(weight_ih, gru.dtype), "Wh": np.asarray(weight_hh, gru.dtype),
                    "b": b.astype(gru.dtype), "b_hn": bias_hh[2 * h:].astype(gru.dtype)})
    return gru


__all__ = ["GRU", "Embedding", "OneHot", "RESET_FORMS", "from_torch", "sigmoid"]
