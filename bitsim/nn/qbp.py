"""Quantized back-propagation (QBP) of the BinaryConnect / TernaryConnect layers (Lin et al., 2016).

The rules are written out in ``docs/formats.md``, section 10. For the error term ``g = dL/dy`` of a
layer ``y = x W_q^T``, held in dynamic fixed point (:func:`bitsim.formats.dynamic_fixed.dynamic_fixed`):

1. the input ``x`` becomes log codes ``x_q = ±2**e`` (:func:`qbp_log_codes`):
   ``e = floor(log2|x|) + Bernoulli(|x| / 2**floor(log2|x|) - 1)``, with an exponent window
   ``[emin, emax]`` of ``exp_bits`` bits;
2. ``dW = g_fx^T x_q`` by the shift-add kernel :func:`bitsim.kernels.shift.fixed_log_matmul`
   (:func:`qbp_weight_grad`), with ``f_g - emin`` fractional bits in the accumulator so that every
   shift is a left shift: the integer sums are exact.

:func:`qbp_float_emulation` computes what the authors' Theano code computes (``g`` in float32,
``dW = g^T x_q`` by a float32 product) for comparison.
"""

from dataclasses import dataclass

import numba
import numpy as np

from bitsim.formats.dynamic_fixed import max_magnitude
from bitsim.formats.launch import launch
from bitsim.formats.log import LogFormat, decode
from bitsim.formats.modes import Rounding, parse_enum
from bitsim.formats.rng import draws
from bitsim.kernels.shift import fixed_log_matmul

from ..errors import InputError, InputTypeError

__all__ = ["QBP", "qbp_log_codes", "qbp_weight_grad", "qbp_float_emulation", "UNDERFLOW_MODES"]

UNDERFLOW_MODES = ("stochastic", "flush", "saturate")
PARALLEL_MIN_WORK = 2**18  # values below which a kernel runs on the calling thread


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
    if max_magnitude(flat)[1]:
        raise InputError("NaN or infinity in the layer input; the training diverged")
    u = draws(rng, flat.size)
    out = np.empty(x.shape, np.uint8)
    sat, flushed = launch(_log_codes, flat.size, flat.view(np.uint32), u, fmt.emin, fmt.emax, fmt.exp_bits,
                          fmt.exp_offset, UNDERFLOW_MODES.index(qbp.underflow), out.reshape(-1),
                          min_work=PARALLEL_MIN_WORK)
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
