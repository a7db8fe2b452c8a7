"""Dynamic fixed point: integer codes whose fractional bits follow the tensor's largest magnitude.

The quantizer of the BinaryConnect / TernaryConnect layers (``docs/formats.md``, section 10):
:func:`dynamic_fixed` picks ``f = frac_bits_for(max|v|, bits)`` and rounds ``v * 2**f`` to ``bits``-bit
codes, the same codes as :func:`bitsim.formats.fixed.quantize` with ``FixedFormat(bits, f, rounding)``;
:func:`to_float32` turns integer sums with ``f`` fractional bits back into float32.
"""

import math

import numba
import numpy as np

from ..errors import InputError
from .fixed import clamp
from .launch import launch
from .modes import Rounding, parse_enum
from .rng import draws

PARALLEL_MIN_WORK = 2**18  # values below which a kernel runs on the calling thread


@numba.njit(cache=True)
def max_magnitude(v):
    """``(max |v|, whether v holds a NaN or an infinity)`` of a 1-D array, in float64 (jitted code and Python)."""
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
        r, clamped = clamp(r, lo, hi)
        sat += clamped
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
    m, bad = max_magnitude(flat)
    if bad:
        raise InputError("NaN or infinity in a tensor to quantize; the training diverged (lower the learning rate)")
    f = frac_bits_for(m, bits) if frac_bits is None else int(frac_bits)
    stochastic = rounding is Rounding.STOCHASTIC
    u = draws(rng, flat.size) if stochastic else np.zeros(1, np.uint32)
    out = np.empty(v.shape, np.int8 if bits <= 8 else np.int16)
    sat = launch(_fixed_codes, flat.size, flat, 2.0**f, -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1, stochastic, u,
                 out.reshape(-1), min_work=PARALLEL_MIN_WORK)
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
        launch(_scaled, a2.size, a2, np.float32(2.0 ** -frac_bits), o2, min_work=PARALLEL_MIN_WORK)
    return out
