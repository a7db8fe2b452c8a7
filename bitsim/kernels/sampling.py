"""Stochastic and deterministic binary / ternary weights sampled from latent float weights, packed both ways.

The sampling rules of the BinaryConnect / TernaryConnect layers (``docs/formats.md``, section 10): one
uint32 draw ``u`` per weight in row-major order of ``W``, decided by ``yes iff u < floor(p * 2**32)``:

* binary: ``+1`` with ``p = (W + 1) / 2``, else ``-1`` (as :func:`bitsim.formats.binary.binarize_stochastic`);
* ternary: ``sign(W)`` with ``p = |W|``, else ``0`` (as :func:`bitsim.formats.ternary.ternarize_stochastic`);
* deterministic variants: ``+1 iff W >= 0``; ternary ``+1 if W > 0.5``, ``-1 if W < -0.5``, else 0.

The sampled weights are packed (binary: one plane; ternary: signs and mask planes) along K for the
forward product and along N for the backward one, both by :func:`bitsim.kernels.signadd.signadd_gemm`.
"""

import numba
import numpy as np

from ..errors import InputError
from ..formats.launch import launch
from ..formats.rng import draws
from .signadd import signadd_gemm

__all__ = ["SampledWeights", "sample_weights", "WEIGHT_KINDS", "TERNARY_THRESHOLD"]

WEIGHT_KINDS = ("binary", "ternary")
TERNARY_THRESHOLD = 0.5
PARALLEL_MIN_WORK = 2**18  # work below which a kernel runs on the calling thread


@numba.njit(cache=True, inline="always")
def _rule(x, r, mode):
    """The sampled weight for latent ``x`` and draw ``r`` (float64); ``mode`` is a constant after inlining."""
    if mode == 0:  # binary: +1 iff u < floor((x + 1) / 2 * 2**32)
        return 1 if r < np.floor(min(max((x + 1.0) * 2147483648.0, 0.0), 4294967296.0)) else -1
    if mode == 1:  # binary, deterministic
        return 1 if x >= 0 else -1
    if mode == 2:  # ternary: sign(x) iff u < floor(|x| * 2**32)
        return (1 if x > 0 else -1) if r < np.floor(min(abs(x), 1.0) * 4294967296.0) else 0
    return 1 if x > TERNARY_THRESHOLD else (-1 if x < -TERNARY_THRESHOLD else 0)


@numba.njit(cache=True, inline="always")
def _sample_row(wr, ur, vr, sr, mr, mode):
    """Sample one row into int8 values and its packed words; returns the number of NaNs met."""
    k = wr.size
    nans = 0
    for j0 in range(0, k, 64):
        ws = np.uint64(0)
        wm = np.uint64(0)
        for j in range(j0, min(j0 + 64, k)):
            x = np.float64(wr[j])
            nans += x != x
            v = _rule(x, np.float64(ur[j]), mode)
            vr[j] = v
            ws |= np.uint64(v > 0) << np.uint64(j - j0)
            wm |= np.uint64(v != 0) << np.uint64(j - j0)
        sr[j0 >> 6] = ws
        mr[j0 >> 6] = wm
    return nans


def _make_sampler(mode):
    """A parallel kernel sampling every row with the rule ``mode`` of :func:`_rule` compiled in (so that it vectorizes).

    Modes 0 and 2 read one draw per weight, row-major; the deterministic modes 1 and 3 read none
    (``u`` is one row of unused draws).
    """
    per_weight = mode in (0, 2)

    @numba.njit(cache=True, parallel=True)
    def sample(w, u, values, signs, mask):
        k = w.shape[1]
        nans = 0
        for n in numba.prange(w.shape[0]):
            draws_n = u[n * k:(n + 1) * k] if per_weight else u[:k]
            nans += _sample_row(w[n], draws_n, values[n], signs[n], mask[n], mode)
        return nans

    return sample


_SAMPLERS = {("binary", True): _make_sampler(0), ("binary", False): _make_sampler(1),
             ("ternary", True): _make_sampler(2), ("ternary", False): _make_sampler(3)}


@numba.njit(cache=True, parallel=True)
def _pack_columns(values, signs_t, mask_t):
    """Pack int8 values (N, K) along N: signs_t, mask_t of shape (K, ceil(N / 64))."""
    n_out, k = values.shape
    for blk in numba.prange((n_out + 63) // 64):
        n0 = 64 * blk
        n1 = min(n0 + 64, n_out)
        for j in range(k):
            ws = np.uint64(0)
            wm = np.uint64(0)
            for n in range(n0, n1):
                v = values[n, j]
                bit = np.uint64(1) << np.uint64(n - n0)
                if v > 0:
                    ws |= bit
                if v != 0:
                    wm |= bit
            signs_t[j, blk] = ws
            mask_t[j, blk] = wm


class SampledWeights:
    """Packed weights of one forward pass.

    Attributes
    ----------
    kind : {'binary', 'ternary'}
    shape : (int, int)
        ``(N, K)``: outputs, reduction length.
    signs, mask : numpy.ndarray of uint64, shape (N, ceil(K / 64))
        Packed along K (section 1 and 2 layouts, padding bits 0); ``mask`` has every bit below K
        set for binary weights.
    signs_t, mask_t : numpy.ndarray of uint64, shape (K, ceil(N / 64))
        The same weights transposed, packed along N (for ``g W_q``).
    """

    def __init__(self, kind, shape, signs, mask, signs_t, mask_t, values):
        self.kind, self.shape = kind, tuple(shape)
        self.signs, self.mask, self.signs_t, self.mask_t = signs, mask, signs_t, mask_t
        self._values = values

    def values(self):
        """The weights as an int8 array (N, K) of -1, 0, +1."""
        return self._values

    def forward(self, codes):
        """Exact ``codes @ W_q.T`` (integer activations (M, K) -> sums (M, N))."""
        mask = None if self.kind == "binary" else self.mask
        return signadd_gemm(codes, self.signs, self.shape[1], mask=mask)

    def backward(self, codes):
        """Exact ``codes @ W_q`` (integer errors (M, N) -> sums (M, K))."""
        mask = None if self.kind == "binary" else self.mask_t
        return signadd_gemm(codes, self.signs_t, self.shape[0], mask=mask)


def sample_weights(w, kind="binary", stochastic=True, rng=None):
    """Sample binary or ternary weights from latent weights ``w`` (N, K) and pack them both ways.

    Parameters
    ----------
    w : numpy.ndarray of float, shape (N, K)
    kind : {'binary', 'ternary'}
    stochastic : bool
        Stochastic sampling (one draw per weight, row-major) or the deterministic rule
        (``+1 iff w >= 0``; ternary: ``±1`` beyond ``±0.5``, else 0).
    rng : bitsim generator or int
        Needed when ``stochastic``.

    Returns
    -------
    SampledWeights
    """
    if kind not in WEIGHT_KINDS:
        raise InputError(f"weight kind must be one of {WEIGHT_KINDS}, got {kind!r}")
    w = np.ascontiguousarray(w)
    if w.ndim != 2 or w.dtype.kind != "f":
        raise InputError(f"expected a 2-D float array of latent weights, got {w.dtype} {w.shape}")
    n, k = w.shape
    u = draws(rng, w.size) if stochastic else np.zeros(k, np.uint32)  # one row of unused draws
    kw, nw = -(-k // 64), -(-n // 64)
    values = np.empty((n, k), np.int8)
    signs, mask = np.empty((n, kw), np.uint64), np.empty((n, kw), np.uint64)
    signs_t, mask_t = np.empty((k, nw), np.uint64), np.empty((k, nw), np.uint64)
    if launch(_SAMPLERS[kind, bool(stochastic)], 4 * w.size, w, u, values, signs, mask, min_work=PARALLEL_MIN_WORK):
        raise InputError("latent weights contain NaN; the training diverged (lower the learning rate)")
    launch(_pack_columns, w.size, values, signs_t, mask_t, min_work=PARALLEL_MIN_WORK)
    return SampledWeights(kind, (n, k), signs, mask, signs_t, mask_t, values)
