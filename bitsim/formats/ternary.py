"""Ternary format: values in {-1, 0, +1} stored as two packed bit planes, 2 bits per value.

The rule (``docs/formats.md``, "Ternary"):

* ``mask``: bit 1 where the value is nonzero;
* ``signs``: bit 1 where the value is +1, and 0 where it is -1 *or 0* (so ``signs`` is a
  subset of ``mask``; a set sign bit under a clear mask bit is rejected as non-canonical);
* both planes use the packed binary layout of :mod:`bitsim.formats.binary` (uint64 words,
  the same ``bitorder``, padding bits 0).

Dot products need only popcounts: with ``m = mask_a & mask_b`` (or ``mask_a`` against a
binary operand), ``dot = popcount(m) - 2 * popcount(m & (signs_a XOR signs_b))``.
"""

import numpy as np

from ..errors import InputError, InputTypeError
from .binary import WORD_BITS, pack_bits, unpack_bits
from .modes import check_values, real_values
from .rng import as_rng, bernoulli


def check_ternary(values, what="pack_ternary"):
    """Return ``values`` as an array, raising unless every value is -1, 0 or +1 (``what`` names the caller)."""
    return check_values(values, (1, -1, 0), what, "quantize first with bitsim.formats.ternary.ternarize(x)")


def pack_ternary(values, bitorder="little"):
    """Pack values in {-1, 0, +1} along the last axis into ``(signs, mask)`` uint64 planes.

    Returns
    -------
    signs, mask : numpy.ndarray of uint64, each shape (..., ceil(n / 64))

    Examples
    --------
    >>> pack_ternary([1, 0, -1, 1])
    (array([9], dtype=uint64), array([13], dtype=uint64))
    """
    values = check_ternary(values)
    return pack_bits(values > 0, WORD_BITS, bitorder), pack_bits(values != 0, WORD_BITS, bitorder)


def unpack_ternary(signs, mask, n, bitorder="little"):
    """Unpack ``(signs, mask)`` planes into int8 values in {-1, 0, +1}, shape (..., n)."""
    for name, plane in (("signs", signs), ("mask", mask)):
        if np.asarray(plane).dtype != np.uint64:
            raise InputTypeError(f"expected uint64 {name} plane, got {np.asarray(plane).dtype}; use pack_ternary(...)")
    s = unpack_bits(signs, n, bitorder)
    m = unpack_bits(mask, n, bitorder)
    if s.shape != m.shape:
        raise InputError(f"signs and mask planes differ in shape: {np.shape(signs)} vs {np.shape(mask)}")
    if (s & ~m).any():
        raise InputError("non-canonical ternary planes: a sign bit is set where the mask is 0; clear it with signs &= mask")
    return np.where(m, np.where(s, 1, -1), 0).astype(np.int8)


def ternarize(x, threshold=0.5):
    """Deterministic ternarization: +1 where ``x > threshold``, -1 where ``x < -threshold``, else 0.

    Parameters
    ----------
    x : array_like of real numbers, no NaN or infinity
    threshold : float
        A finite number ``>= 0``; 0 gives ``sign(x)`` (with sign(0) = 0).

    Returns
    -------
    numpy.ndarray of int8 in {-1, 0, +1}, shaped like ``x``

    Raises
    ------
    InputError
        If ``x`` holds NaN or infinity, or ``threshold`` is NaN, infinite or negative.
    """
    x = real_values(x, "ternarize", "ternarizing")
    t = np.asarray(threshold)
    if t.ndim or t.dtype.kind not in "fiu":
        raise InputTypeError(f"ternarize threshold must be a real number, got {threshold!r}; pass e.g. threshold=0.5")
    if not (np.isfinite(t) and t >= 0):
        raise InputError(
            f"ternarize threshold must be a finite number >= 0, got {threshold!r}; pass e.g. threshold=0.5"
        )
    t = float(t)
    return (np.where(x > t, 1, 0) - np.where(x < -t, 1, 0)).astype(np.int8)


def ternarize_stochastic(x, rng):
    """Stochastic ternarization: ``sign(x)`` with probability ``min(|x|, 1)``, else 0.

    One draw per element in row-major order, decided by :func:`bitsim.formats.rng.bernoulli`.
    """
    x = np.asarray(real_values(x, "ternarize_stochastic", "ternarizing"), dtype=np.float64)
    keep = bernoulli(np.abs(x), as_rng(rng))
    return np.where(keep, np.sign(x), 0).astype(np.int8)
