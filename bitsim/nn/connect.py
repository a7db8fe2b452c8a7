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
the forward product and along N for the backward one.

**Forward.** The input is held in dynamic fixed point (:func:`dynamic_fixed`: int16 codes whose
fractional bits are set per tensor by its largest magnitude) and multiplied by the packed
weights with :func:`bitsim.kernels.signadd.signadd_gemm`: additions and subtractions selected by
the weight bits, exact integer sums. The sums are converted to float32 and scaled by
``2**-frac`` (exact below ``2**24``).

**Backward (QBP).** For the error term ``g = dL/dy`` (the gradient at the product's output,
i.e. ``delta * h'`` after the batch norm's backward):

1. ``g`` is held in dynamic fixed point: ``err_bits`` codes ``g_fx`` with ``f_g`` fractional bits;
2. the input ``x`` (the exact values the forward used) becomes log codes ``x_q = ±2**e``
   (:func:`qbp_log_codes`): ``e = floor(log2|x|) + Bernoulli(|x| / 2**floor(log2|x|) - 1)``,
   with an exponent window ``[emin, emax]`` of ``exp_bits`` bits;
3. ``dW = g_fx^T x_q`` by the shift-add kernel :func:`bitsim.kernels.shift.fixed_log_matmul`,
   with ``f_g - emin`` fractional bits in the accumulator so that every shift is a left shift:
   the integer sums are exact;
4. ``db = sum over the batch of g_fx`` (additions; only for layers with a bias);
5. ``dx = g_fx W_q`` by :func:`~bitsim.kernels.signadd.signadd_gemm` on the transposed planes
   (sign flips and additions, exact).

The integers become float32 only at the end (``dW`` for the optimizer, ``dx`` for the batch
norm below): a conversion, rounded to nearest even only when a sum exceeds ``2**24``, and a
scaling by a power of two. :func:`qbp_float_emulation` computes what the authors' Theano code
computes (``g`` in float32, ``dW = g^T x_q`` by a float32 product) for comparison.

Reproducibility: all draws come from explicit bitsim generators
(:func:`bitsim.formats.rng.make_rng`), ``philox`` or the hardware-friendly ``xorshift32``;
:func:`draws` gives the same numbers as ``rng.uint32`` (for Philox, by a parallel kernel).
"""

import math
from dataclasses import dataclass

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from bitsim.formats.log import LogFormat, decode
from bitsim.formats.modes import Counts, Rounding, parse_enum
from bitsim.formats.rng import Philox, as_rng
from bitsim.kernels.shift import fixed_log_matmul
from bitsim.kernels.fixed import _launch
from bitsim.kernels.signadd import signadd_gemm

from ..errors import InputError, InputTypeError
from .init import uniform
from .layers import Layer, Param, _check_2d, _check_nhwc, _window, col2im, conv_output_hw, im2col

WEIGHT_KINDS = ("binary", "ternary")
UNDERFLOW_MODES = ("stochastic", "flush", "saturate")
TERNARY_THRESHOLD = 0.5

# ---------------------------------------------------------------------------------------
# draws: Philox-4x64-10 as NumPy computes it, in parallel

_PHILOX_M0 = np.uint64(0xD2E7470EE14C6C93)
_PHILOX_M1 = np.uint64(0xCA5A826395121157)
_PHILOX_W0 = np.uint64(0x9E3779B97F4A7C15)
_PHILOX_W1 = np.uint64(0xBB67AE8584CAA73B)


@intrinsic
def _mulhi(typingctx, a, b):
    """High 64 bits of the 128-bit product of two uint64."""
    sig = types.uint64(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        wide = ir.IntType(128)
        p = builder.mul(builder.zext(args[0], wide), builder.zext(args[1], wide))
        return builder.trunc(builder.lshr(p, ir.Constant(wide, 64)), ir.IntType(64))

    return sig, codegen


@numba.njit(cache=True, inline="always")
def _philox_block(c0, c1, c2, c3, k0, k1):
    for r in range(10):
        if r > 0:
            k0 += _PHILOX_W0
            k1 += _PHILOX_W1
        hi0 = _mulhi(_PHILOX_M0, c0)
        lo0 = _PHILOX_M0 * c0
        hi1 = _mulhi(_PHILOX_M1, c2)
        lo1 = _PHILOX_M1 * c2
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


@numba.njit(cache=True, parallel=True)
def _philox_fill(k0, k1, start, out):
    """out[i] = high 32 bits of raw output start + i of Philox(key=(k0, k1), counter=0)."""
    n = out.size
    first = start // 4
    last = (start + n - 1) // 4
    top = np.uint64(32)
    for b in numba.prange(first, last + 1):
        r0, r1, r2, r3 = _philox_block(np.uint64(b + 1), np.uint64(0), np.uint64(0), np.uint64(0), k0, k1)
        i = 4 * b - start
        if i >= 0 and i + 3 < n:
            out[i] = np.uint32(r0 >> top)
            out[i + 1] = np.uint32(r1 >> top)
            out[i + 2] = np.uint32(r2 >> top)
            out[i + 3] = np.uint32(r3 >> top)
        else:
            if 0 <= i < n:
                out[i] = np.uint32(r0 >> top)
            if 0 <= i + 1 < n:
                out[i + 1] = np.uint32(r1 >> top)
            if 0 <= i + 2 < n:
                out[i + 2] = np.uint32(r2 >> top)
            if 0 <= i + 3 < n:
                out[i + 3] = np.uint32(r3 >> top)


@numba.njit(cache=True)
def _philox_block_py(c, k0, k1):
    r = _philox_block(c, np.uint64(0), np.uint64(0), np.uint64(0), k0, k1)
    return np.array([r[0], r[1], r[2], r[3]], dtype=np.uint64)


def _philox_position(rng):
    """The number of draws ``rng`` has made, if its NumPy state is the plain one bitsim creates."""
    bits = getattr(rng, "_bits", None)
    if not isinstance(bits, np.random.Philox) or not 0 <= rng.seed < 2**64:
        return None
    st = bits.state
    counter, key = st["state"]["counter"], st["state"]["key"]
    if st.get("has_uint32", 0) or int(key[0]) != rng.seed or int(key[1]) or counter[1:].any():
        return None
    g = int(rng.drawn)
    blocks = -(-g // 4)
    if int(counter[0]) != blocks or blocks >= 2**63:
        return None
    pos = int(st["buffer_pos"])
    if pos != (4 if g == 0 else g - 4 * (blocks - 1)):
        return None
    return g


def draws(rng, n):
    """``n`` uint32 draws from a bitsim generator: the same numbers, and the same state after, as ``rng.uint32(n)``.

    For :class:`~bitsim.formats.rng.Philox` (draw ``i`` is the high half of raw output ``i`` of
    NumPy's Philox-4x64-10 with key ``seed`` and counter 0, and NumPy computes block ``b`` of four
    outputs with counter ``b + 1``) the blocks are computed in parallel and the generator's NumPy
    state is then set to where ``rng.uint32(n)`` would have left it. Any other generator, or a
    Philox whose state is not the plain one, is simply asked for ``rng.uint32(n)``.
    """
    rng = as_rng(rng)
    n = int(n)
    g = _philox_position(rng) if isinstance(rng, Philox) else None
    if g is None or n == 0:
        return rng.uint32(n)
    k0 = np.uint64(rng.seed)
    out = np.empty(n, np.uint32)
    _launch(_philox_fill, 8 * n, k0, np.uint64(0), g, out)
    end = g + n
    blocks = -(-end // 4)
    st = rng._bits.state
    st["state"]["counter"] = np.array([blocks, 0, 0, 0], dtype=np.uint64)
    st["buffer"] = _philox_block_py(np.uint64(blocks), k0, np.uint64(0))
    st["buffer_pos"] = end - 4 * (blocks - 1)
    rng._bits.state = st
    rng.drawn = end
    return out


# ---------------------------------------------------------------------------------------
# weight sampling and packing

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


# one kernel per rule, so that each compiles with its rule inlined (and vectorizes)


@numba.njit(cache=True, parallel=True)
def _sample_binary(w, u, values, signs, mask):
    k = w.shape[1]
    nans = 0
    for n in numba.prange(w.shape[0]):
        nans += _sample_row(w[n], u[n * k:(n + 1) * k], values[n], signs[n], mask[n], 0)
    return nans


@numba.njit(cache=True, parallel=True)
def _sign_binary(w, u, values, signs, mask):
    nans = 0
    for n in numba.prange(w.shape[0]):
        nans += _sample_row(w[n], u, values[n], signs[n], mask[n], 1)
    return nans


@numba.njit(cache=True, parallel=True)
def _sample_ternary(w, u, values, signs, mask):
    k = w.shape[1]
    nans = 0
    for n in numba.prange(w.shape[0]):
        nans += _sample_row(w[n], u[n * k:(n + 1) * k], values[n], signs[n], mask[n], 2)
    return nans


@numba.njit(cache=True, parallel=True)
def _threshold_ternary(w, u, values, signs, mask):
    nans = 0
    for n in numba.prange(w.shape[0]):
        nans += _sample_row(w[n], u, values[n], signs[n], mask[n], 3)
    return nans


_SAMPLERS = {("binary", True): _sample_binary, ("binary", False): _sign_binary,
             ("ternary", True): _sample_ternary, ("ternary", False): _threshold_ternary}


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
    u = draws(as_rng(rng), w.size) if stochastic else np.zeros(k, np.uint32)  # one row of unused draws
    kw, nw = -(-k // 64), -(-n // 64)
    values = np.empty((n, k), np.int8)
    signs, mask = np.empty((n, kw), np.uint64), np.empty((n, kw), np.uint64)
    signs_t, mask_t = np.empty((k, nw), np.uint64), np.empty((k, nw), np.uint64)
    if _launch(_SAMPLERS[kind, bool(stochastic)], 4 * w.size, w, u, values, signs, mask):
        raise InputError("latent weights contain NaN; the training diverged (lower the learning rate)")
    _launch(_pack_columns, w.size, values, signs_t, mask_t)
    return SampledWeights(kind, (n, k), signs, mask, signs_t, mask_t, values)


# ---------------------------------------------------------------------------------------
# dynamic fixed point


@numba.njit(cache=True)
def _max_abs(v):
    m = 0.0
    bad = False
    for i in range(v.size):
        a = abs(np.float64(v[i]))
        if not a <= 1.7976931348623157e308:
            bad = True
        elif a > m:
            m = a
    return m, bad


@numba.njit(cache=True, parallel=True)
def _fixed_codes(v, scale, lo, hi, stochastic, u, out):
    sat = 0
    for i in numba.prange(v.size):
        s = np.float64(v[i]) * scale
        if stochastic:
            r = np.floor(s)
            if np.float64(u[i]) < np.floor((s - r) * 4294967296.0):
                r += 1.0
        else:
            r = np.rint(s)
        if r > hi:
            r = hi
            sat += 1
        elif r < lo:
            r = lo
            sat += 1
        out[i] = r
    return sat


def frac_bits_for(max_abs, bits):
    """Fractional bits of dynamic fixed point: ``bits - 1 - E`` with ``E`` the least integer such that ``max_abs < 2**E``.

    ``E`` is the exponent of ``max_abs`` (``math.frexp``); for ``max_abs = 0``, ``E = 0``. The
    result is clipped to -32..62 (the range of :class:`bitsim.formats.FixedFormat`).
    """
    e = math.frexp(float(max_abs))[1] if max_abs > 0 else 0
    return int(min(max(bits - 1 - e, -32), 62))


def dynamic_fixed(v, bits=16, rounding="nearest_even", rng=None, counts=None, frac_bits=None):
    """Quantize a tensor to fixed-point codes whose fractional bits follow its largest magnitude.

    Rule: ``f = frac_bits_for(max|v|, bits)`` (so ``max|v| * 2**f < 2**(bits - 1)``), then
    ``q = round(v * 2**f)`` (``v * 2**f`` exact in float64) by ``rounding``: ``'nearest_even'``,
    or ``'stochastic'`` (up iff ``u < floor(frac * 2**32)``, one draw per element, row-major),
    saturated to ``[-2**(bits-1), 2**(bits-1) - 1]`` (counted; only a value rounding up to
    ``2**(bits-1)`` can saturate). The same codes as
    ``bitsim.formats.fixed.quantize(v, FixedFormat(bits, f, rounding))``.

    Parameters
    ----------
    v : numpy.ndarray of float
    bits : int
        2..16 (int8 codes up to 8 bits, int16 above).
    rounding : {'nearest_even', 'stochastic'}
    rng : bitsim generator, optional
        For stochastic rounding.
    counts : Counts, optional
        Receives saturations.
    frac_bits : int, optional
        A fixed number of fractional bits instead of the dynamic rule.

    Returns
    -------
    codes : numpy.ndarray of int8 or int16, shaped like ``v``
    frac_bits : int
    """
    bits = int(bits)
    if not 2 <= bits <= 16:
        raise InputError(f"dynamic fixed point takes 2..16 bits, got {bits}")
    rounding = parse_enum(Rounding, rounding)
    if rounding not in (Rounding.NEAREST_EVEN, Rounding.STOCHASTIC):
        raise InputError("dynamic fixed point rounds 'nearest_even' or 'stochastic'")
    v = np.ascontiguousarray(v)
    flat = v.reshape(-1)
    m, bad = _max_abs(flat)
    if bad:
        raise InputError("NaN or infinity in a tensor to quantize; the training diverged (lower the learning rate)")
    f = frac_bits_for(m, bits) if frac_bits is None else int(frac_bits)
    stochastic = rounding is Rounding.STOCHASTIC
    u = draws(as_rng(rng), flat.size) if stochastic else np.zeros(1, np.uint32)
    out = np.empty(v.shape, np.int8 if bits <= 8 else np.int16)
    sat = _launch(_fixed_codes, flat.size, flat, 2.0**f, -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1, stochastic, u, out.reshape(-1))
    if counts is not None:
        counts.saturated += int(sat)
    return out, f


@numba.njit(cache=True, parallel=True)
def _scaled(acc, scale, out):
    for i in numba.prange(acc.shape[0]):
        for j in range(acc.shape[1]):
            out[i, j] = np.float32(acc[i, j]) * scale


def to_float32(acc, frac_bits):
    """Integer sums with ``frac_bits`` fractional bits as float32: ``float32(acc) * 2**-frac_bits``.

    The conversion rounds to nearest even (exact when ``|acc| <= 2**24``); the scaling by a power
    of two is exact (barring float32 underflow). The result is C-contiguous.
    """
    acc = np.asarray(acc)
    if not -126 <= -frac_bits <= 127:
        return np.ldexp(acc.astype(np.float64), -frac_bits).astype(np.float32)
    out = np.empty(acc.shape, np.float32)
    if acc.size:
        a2 = acc.reshape(acc.shape[0], -1) if acc.ndim > 1 else acc.reshape(1, -1)
        o2 = out.reshape(a2.shape)
        _launch(_scaled, a2.size, a2, np.float32(2.0 ** -frac_bits), o2)
    return out


# ---------------------------------------------------------------------------------------
# QBP: log codes of x


@numba.njit(cache=True, parallel=True)
def _log_codes(bits, u, emin, emax, exp_bits, offset, underflow, out):
    """Log codes (section 3 layout) from float32 bit patterns; returns (saturated, flushed).

    underflow: 0 stochastic, 1 flush, 2 saturate.
    """
    sat = 0
    flushed = 0
    field_mask = (1 << exp_bits) - 1
    zero_field = 1 << (exp_bits - 1)
    for i in numba.prange(bits.size):
        b = np.int64(bits[i])
        neg = (b >> 31) & 1
        biased = (b >> 23) & 0xFF
        m = b & 0x7FFFFF
        code = zero_field
        if biased != 0 or m != 0:
            if biased == 0:  # subnormal: normalise
                lead = 22
                while (m >> lead) == 0:
                    lead -= 1
                e = lead - 149
                m = (m << (23 - lead)) & 0x7FFFFF
            else:
                e = biased - 127
            r = np.int64(u[i])
            if e >= emin or underflow != 0:
                e += 1 if (r >> 9) < m else 0
                if e > emax:
                    e = emax
                    sat += 1
                if e < emin:
                    if underflow == 1:
                        e = emin - 1
                        flushed += 1
                    else:
                        e = emin
                        sat += 1
            else:
                # below the window: 2**emin with probability |x| / 2**emin = (2**23 + m) * 2**(e - 23 - emin)
                sh = e + 9 - emin
                full = (np.int64(1) << 23) | m
                t = full << sh if sh >= 0 else (full >> -sh if -sh < 63 else 0)
                if r < t:
                    e = emin
                else:
                    e = emin - 1
                    flushed += 1
            code = zero_field if e < emin else (e - offset) & field_mask
        out[i] = (neg << exp_bits) | code
    return sat, flushed


@dataclass(frozen=True)
class QBP:
    """Arithmetic of quantized back-propagation (``docs/formats.md``, section 10).

    Parameters
    ----------
    exp_bits : int
        Exponent field of the log codes of ``x``: ``2**exp_bits - 1`` exponents plus a zero code
        (3 bits: 7 exponents; the code is ``1 + exp_bits`` bits with the sign).
    exp_offset : int
        Moves the exponent window: exponents ``exp_offset - 2**(exp_bits-1) + 1 .. exp_offset +
        2**(exp_bits-1) - 1`` (3 bits, offset -1: -4..2).
    underflow : {'stochastic', 'flush', 'saturate'}
        A nonzero ``|x| < 2**emin`` becomes ``2**emin`` with probability ``|x| / 2**emin`` and 0
        otherwise ('stochastic', unbiased); or is rounded like the others and flushed to 0
        ('flush') or raised to ``2**emin`` ('saturate') when below the window.
    err_bits : int
        Width of the dynamic fixed-point error term (2..16).
    err_rounding : {'nearest_even', 'stochastic'}
    act_bits : int
        Width of the dynamic fixed-point activations fed to the forward product (2..16).
    """

    exp_bits: int = 3
    exp_offset: int = -1
    underflow: str = "stochastic"
    err_bits: int = 16
    err_rounding: str = "nearest_even"
    act_bits: int = 16

    def __post_init__(self):
        if self.underflow not in UNDERFLOW_MODES:
            raise InputError(f"underflow must be one of {UNDERFLOW_MODES}, got {self.underflow!r}")
        for name in ("err_bits", "act_bits"):
            if not 2 <= getattr(self, name) <= 16:
                raise InputError(f"{name} must be 2..16, got {getattr(self, name)}")
        parse_enum(Rounding, self.err_rounding)
        self.log_format  # validates exp_bits and exp_offset

    @property
    def log_format(self):
        """The :class:`~bitsim.formats.log.LogFormat` of the codes of ``x`` (layout of section 3)."""
        return LogFormat(exp_bits=self.exp_bits, exp_offset=self.exp_offset)


def qbp_log_codes(x, qbp=QBP(), rng=None, counts=None):
    """Log codes of ``x`` with stochastic rounding between neighbouring powers of two.

    For nonzero ``x`` with ``E = floor(log2|x|)`` (exact, from the float fields) and
    ``p = |x| / 2**E - 1``: ``e = E + 1`` iff ``u < floor(p * 2**32)`` for one uint32 draw ``u``,
    else ``E``; then ``e > emax`` saturates to ``emax``. Below the window (``E < emin``) the
    ``underflow`` rule of :class:`QBP` applies. Zeros give the zero code of their sign. One draw
    per element, row-major, whatever the value. For values inside the window this is exactly
    ``log.encode(x, LogFormat(..., rounding='stochastic'))`` with the same generator.

    Returns
    -------
    numpy.ndarray of uint8, shaped like ``x``
        Codes of ``qbp.log_format`` (section 3 layout).
    """
    fmt = qbp.log_format
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise InputTypeError(f"qbp_log_codes expects float values (the exact fixed-point values), got {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    flat = x.reshape(-1)
    if _max_abs(flat)[1]:
        raise InputError("NaN or infinity in the layer input; the training diverged")
    u = draws(as_rng(rng), flat.size)
    out = np.empty(x.shape, np.uint8)
    sat, flushed = _launch(_log_codes, flat.size, flat.view(np.uint32), u, fmt.emin, fmt.emax, fmt.exp_bits,
                           fmt.exp_offset, UNDERFLOW_MODES.index(qbp.underflow), out.reshape(-1))
    if counts is not None:
        counts.saturated += int(sat)
        counts.flushed += int(flushed)
    return out


def qbp_weight_grad(x_codes, qbp, g_codes, g_frac):
    """``dW = g^T x_q`` by the shift-add kernel: exact integer sums and their fractional bits.

    :func:`bitsim.kernels.shift.fixed_log_matmul` with the error term as the fixed-point operand
    (``g^T``, one row per output) and the log codes of ``x`` as the power-of-two operand, so that
    ``dW[n, k] = sum_m (-1)**s[m, k] * (g[m, n] << (e[m, k] - emin))``.

    Parameters
    ----------
    x_codes : numpy.ndarray of uint8, shape (M, K)
        Log codes of the layer input (``qbp.log_format``).
    g_codes : numpy.ndarray of int8 or int16, shape (M, N)
        The error term in fixed point with ``g_frac`` fractional bits.

    Returns
    -------
    sums : numpy.ndarray of int64, shape (N, K)
    frac_bits : int
        ``g_frac - emin``: every term ``g << (e - emin)`` is a left shift, so the sums are exact.
    """
    fmt = qbp.log_format
    acc_frac = int(g_frac) - fmt.emin
    sums = fixed_log_matmul(np.ascontiguousarray(g_codes.T), int(g_frac), np.ascontiguousarray(x_codes.T), fmt,
                            acc_frac=acc_frac, rounding="floor", acc_dtype=np.int64)
    return sums, acc_frac


def qbp_float_emulation(x_codes, qbp, g):
    """What the authors' Theano code computes: ``dW = g^T x_q`` as a float32 product of float32 ``g``.

    ``x_q`` are the decoded log codes (exact in float32). Compare with the integer result: they
    differ by the fixed-point rounding of ``g`` (at most half an LSB, ``2**-(f_g + 1)``, per
    element) and by float32 rounding of the product.
    """
    xq = decode(x_codes, qbp.log_format).astype(np.float32)
    return np.asarray(g, np.float32).T @ xq


# ---------------------------------------------------------------------------------------
# layers


class _Connect:
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

    def _product(self, x2d, training):
        """Forward on (M, K) float input: fixed-point codes, sampled weights, exact sums -> float32."""
        codes, f = dynamic_fixed(x2d, self.act_bits, counts=self.counts)
        if not training and self.inference == "latent":
            y = to_float32(codes, f) @ self.W.value.reshape(self.W.value.shape[0], -1).T.astype(np.float32)
            return y, codes, f
        sample = self.sampled_weights(training)
        self._sample = sample
        return to_float32(sample.forward(codes), f), codes, f

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


class ConnectDense(_Connect, Layer):
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
    qbp : QBP or None
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
        self.n_in, self.n_out, self.dtype = int(n_in), int(n_out), np.dtype(np.float32)
        self.W = Param(uniform((self.n_out, self.n_in), -1.0, 1.0, init_rng, np.float32), "W", clip=(-1.0, 1.0),
                       lr_scale=lr_scale)
        self.b = Param(np.zeros(self.n_out, np.float32), "b") if bias else None
        self._init_connect(weights, stochastic, rng, qbp, qbp_rng, input_grad, inference)

    def forward(self, x, training=True):
        x = np.asarray(x)
        _check_2d(x, self.n_in, self)
        x = x.astype(np.float32, copy=False)
        y, self._codes, self._frac = self._product(x, training)
        return y + self.b.value if self.b is not None else y

    def backward(self, grad):
        codes = self._cached("_codes")
        return self._gradients(np.ascontiguousarray(grad, np.float32), codes, self._frac)

    def params(self):
        return [self.W] + ([self.b] if self.b is not None else [])

    def output_shape(self, shape):
        return (self.n_out,)

    def _describe(self):
        return (f"{self.n_in}, {self.n_out}, weights={self.kind!r}, stochastic={self.stochastic}, "
                f"qbp={self.qbp is not None}, bias={self.b is not None}")


class ConnectConv2d(_Connect, Layer):
    """2-D convolution (NHWC) with binary / ternary sampled weights and optional QBP, by im2col.

    The input is quantized to dynamic fixed point first, then unfolded (padding taps are code
    0); the rows of the unfolded input are the ``M`` axis of the dense rules (``M = N * OH * OW``).
    ``W`` has shape ``(c_out, KH, KW, c_in)``, reduced in (kh, kw, c) order as in
    :func:`bitsim.nn.layers.im2col`. Other parameters as in :class:`ConnectDense` and
    :class:`bitsim.nn.layers.Conv2d`.
    """

    def __init__(self, c_in, c_out, kernel, stride=1, padding=0, weights="binary", stochastic=True, rng=None, *,
                 qbp=None, qbp_rng=None, input_grad=True, inference="deterministic", bias=False, lr_scale=1.0,
                 init_rng=None):
        self.c_in, self.c_out, self.dtype = int(c_in), int(c_out), np.dtype(np.float32)
        self.kernel, self.stride, self.padding = _window(kernel, stride, padding)
        kh, kw = self.kernel
        self.W = Param(uniform((self.c_out, kh, kw, self.c_in), -1.0, 1.0, init_rng, np.float32), "W",
                       clip=(-1.0, 1.0), lr_scale=lr_scale)
        self.b = Param(np.zeros(self.c_out, np.float32), "b") if bias else None
        self._init_connect(weights, stochastic, rng, qbp, qbp_rng, input_grad, inference)

    def forward(self, x, training=True):
        x = np.asarray(x)
        _check_nhwc(x, self.c_in, self)
        x = x.astype(np.float32, copy=False)
        codes, f = dynamic_fixed(x, self.act_bits, counts=self.counts)
        cols, (oh, ow) = im2col(codes, self.kernel, self.stride, self.padding)
        self._x_shape, self._codes, self._frac = x.shape, cols, f
        if not training and self.inference == "latent":
            y = to_float32(cols, f) @ self.W.value.reshape(self.c_out, -1).T
        else:
            self._sample = self.sampled_weights(training)
            y = to_float32(self._sample.forward(cols), f)
        if self.b is not None:
            y = y + self.b.value
        return y.reshape(x.shape[0], oh, ow, self.c_out)

    def backward(self, grad):
        cols = self._cached("_codes")
        g = np.ascontiguousarray(grad, np.float32).reshape(-1, self.c_out)
        dcols = self._gradients(g, cols, self._frac)
        if dcols is None:
            return None
        return col2im(dcols, self._x_shape, self.kernel, self.stride, self.padding)

    def params(self):
        return [self.W] + ([self.b] if self.b is not None else [])

    def output_shape(self, shape):
        return conv_output_hw(shape[:2], self.kernel, self.stride, self.padding) + (self.c_out,)

    def _describe(self):
        return (f"{self.c_in}, {self.c_out}, kernel={self.kernel}, stride={self.stride}, padding={self.padding}, "
                f"weights={self.kind!r}, stochastic={self.stochastic}, qbp={self.qbp is not None}")


# ---------------------------------------------------------------------------------------
# counting the real multiplications of a training step


def _pow2(c):
    """True when the constant ``c`` is ``±2**k`` (a product by it is an exponent shift, not a multiplication)."""
    c = abs(float(c))
    return c > 0 and math.frexp(c)[0] == 0.5


@dataclass
class Mults:
    """Real multiplications (products and quotients of two arbitrary reals) and square roots."""

    mul: int = 0
    div: int = 0
    sqrt: int = 0

    def __add__(self, other):
        return Mults(self.mul + other.mul, self.div + other.div, self.sqrt + other.sqrt)

    @property
    def total(self):
        """Multiplications plus divisions (square roots are listed apart)."""
        return self.mul + self.div


def _prod(shape):
    return int(np.prod(shape, dtype=np.int64))


def _matmul_dims(layer, shape, batch):
    """(M, K, N) of the layer's matrix product for one batch, and the output shape of one example."""
    out = layer.output_shape(shape)
    if hasattr(layer, "kernel"):  # convolution by im2col
        kh, kw = layer.kernel
        return batch * out[0] * out[1], kh * kw * layer.c_in, layer.c_out, out
    return batch, layer.n_in, layer.n_out, out


def _optimizer_mults(optimizer, size):
    """Per-step multiplications of the element-wise update of ``size`` parameter values (scalars not counted)."""
    from .optim import SGD, AdaMax, Adam, ShiftAdaMax

    if optimizer is None:
        return Mults()
    if isinstance(optimizer, Adam):  # b1*m + (1-b1)*g; b2*v + ((1-b2)*g)*g; lr*(m/c1) / (sqrt(v/c2) + eps)
        return Mults(6 * size, 3 * size, size)
    if isinstance(optimizer, ShiftAdaMax):  # b1*m + (1-b1)*g; b2*u; the step and divisor are powers of two
        return Mults(3 * size)
    if isinstance(optimizer, AdaMax):  # b1*m + (1-b1)*g; b2*u; step*m / (u + eps)
        return Mults(4 * size, size)
    if isinstance(optimizer, SGD):  # lr*g; momentum: momentum*v, and nesterov g + momentum*v
        return Mults(size * (1 + (optimizer.momentum != 0) + bool(optimizer.nesterov)))
    raise InputTypeError(f"no multiplication count for optimizer {type(optimizer).__name__}")


def layer_mults(layer, shape, batch, float_equivalent=False):
    """Real multiplications of one training step of ``layer`` (forward, backward) for a batch.

    Parameters
    ----------
    layer : Layer
    shape : tuple of int
        Input shape of one example.
    batch : int
    float_equivalent : bool
        Count the standard float layer instead (a Connect layer counted as a float
        :class:`~bitsim.nn.layers.Dense` / :class:`~bitsim.nn.layers.Conv2d`).

    Returns
    -------
    forward, backward : Mults
    out_shape : tuple of int
    """
    from .binary import BinaryConv2d, BinaryDense
    from .layers import BatchNorm, Conv2d, Dense, Dropout, Flatten, HardTanh, MaxPool2d, ReLU, Sign

    size = batch * _prod(shape)
    if isinstance(layer, (_Connect, Dense, Conv2d, BinaryDense, BinaryConv2d)):
        m, k, n, out = _matmul_dims(layer, shape, batch)
        mkn = m * k * n
        dx = getattr(layer, "input_grad", True)
        if isinstance(layer, _Connect) and not float_equivalent:
            # sign-add forward; QBP: shifts and sign-add backward; without QBP dW = g^T x in float
            return Mults(), Mults(0 if layer.qbp is not None else mkn), out
        if isinstance(layer, (BinaryDense, BinaryConv2d)) and not float_equivalent:
            return Mults(), Mults(mkn), out  # ±1 weights: only dW = g^T x multiplies
        return Mults(mkn), Mults(mkn * (2 if dx else 1)), out
    if isinstance(layer, BatchNorm):
        if layer.shift:
            raise InputTypeError("no multiplication count for shift-based batch norm; use BatchNorm(shift=False)")
        c = layer.n_features
        div_m = 0 if _pow2(size // c) else 1  # means: a division by the m values per feature
        running = 2 * c * ((not _pow2(1 - layer.momentum)) + (not _pow2(layer.momentum)))
        # forward: c*c, c*scale, gain*xhat; running averages; mean and var / m, 1/sqrt(var + eps)
        fwd = Mults(3 * size + running, 2 * c * div_m + c, c)
        # backward: grad*xhat, grad*gain, dxhat*scale, dxhat*c, dvar*(ac + c); inv**3 as two products
        # and the sum times it (-0.5 is a shift); / m of every value and the mean of dc
        bwd = Mults(5 * size + 3 * c, div_m * (size + c))
        return fwd, bwd, tuple(shape)
    if isinstance(layer, Dropout):
        scale = 0 if (layer.p == 0 or _pow2(1 - layer.p)) else size
        return Mults(0, scale), Mults(scale), tuple(shape)
    if isinstance(layer, (ReLU, HardTanh, Sign, Flatten, MaxPool2d)):
        return Mults(), Mults(), layer.output_shape(tuple(shape))
    raise InputTypeError(f"no multiplication count for layer {type(layer).__name__}")


def loss_mults(loss, batch, classes):
    """Real multiplications of a loss and its gradient for a batch of scores."""
    from .losses import SoftmaxCrossEntropy, SquaredHinge

    size = batch * classes
    if isinstance(loss, SquaredHinge):  # margin**2; sum / count; grad (-2 t) * margin / count
        count = batch if loss.mean == "batch" else size
        return Mults(size, (1 + size) * (not _pow2(count)))
    if isinstance(loss, SoftmaxCrossEntropy):  # exp, log and the grad / N
        return Mults(0, size * (not _pow2(batch)))
    raise InputTypeError(f"no multiplication count for loss {type(loss).__name__}")


def count_multiplications(model, input_shape, batch, loss=None, optimizer=None):
    """Per layer, the real multiplications of one training step, beside a standard float network.

    The rule: a product or quotient of two floating-point operands counts unless one of them is
    ``±2**k`` (``±1`` included) by construction: sign flips and exponent shifts are not
    multiplications; selections by 0/1 masks are not either. Square roots are listed apart. The
    counts follow the arithmetic bitsim performs (``docs/formats.md``, section 10); the standard
    float network is the same model with float layers in place of the Connect layers (its forward
    product, ``dW = g^T x`` and ``dx = g W``, the latter skipped where the layer computes no input
    gradient), the same batch norms, loss and optimizer.

    Parameters
    ----------
    model : Sequential
    input_shape : tuple of int
        One example's shape.
    batch : int
    loss : SquaredHinge or SoftmaxCrossEntropy, optional
    optimizer : Optimizer, optional
        Adam, AdaMax, ShiftAdaMax or SGD; the element-wise update of every parameter counts.

    Returns
    -------
    list of dict
        ``layer``, ``forward``, ``backward``, ``update`` (:class:`Mults`) and the same keys prefixed
        with ``float_`` for the standard float network; the loss as a last row.
    """
    rows, shape = [], tuple(input_shape)
    for i, layer in enumerate(model.layers):
        fwd, bwd, out = layer_mults(layer, shape, batch)
        ffwd, fbwd, _ = layer_mults(layer, shape, batch, float_equivalent=True)
        upd = Mults()
        for p in layer.params():
            upd = upd + _optimizer_mults(optimizer, p.value.size)
        rows.append({"layer": f"{i} {type(layer).__name__} {shape}->{out}", "forward": fwd, "backward": bwd,
                     "update": upd, "float_forward": ffwd, "float_backward": fbwd, "float_update": upd})
        shape = out
    if loss is not None:
        lm = loss_mults(loss, batch, _prod(shape))
        rows.append({"layer": f"loss {type(loss).__name__}", "forward": lm, "backward": Mults(), "update": Mults(),
                     "float_forward": lm, "float_backward": Mults(), "float_update": Mults()})
    return rows
