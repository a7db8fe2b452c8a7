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

from .binary import WORD_BITS, pack_bits, unpack_bits
from .rng import as_rng, bernoulli


def check_ternary(values, what="pack_ternary"):
    values = np.asarray(values)
    bad = (values != 1) & (values != -1) & (values != 0)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{what} expects values in {{-1, 0, +1}}, got {values[idx]!r} at index {idx}; "
            "quantize first with bitsim.formats.ternary.ternarize(x)"
        )
    return values


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
            raise TypeError(f"expected uint64 {name} plane, got {np.asarray(plane).dtype}; use pack_ternary(...)")
    s = unpack_bits(signs, n, bitorder)
    m = unpack_bits(mask, n, bitorder)
    if s.shape != m.shape:
        raise ValueError(f"signs and mask planes differ in shape: {np.shape(signs)} vs {np.shape(mask)}")
    if (s & ~m).any():
        raise ValueError("non-canonical ternary planes: a sign bit is set where the mask is 0; clear it with signs &= mask")
    return np.where(m, np.where(s, 1, -1), 0).astype(np.int8)


def ternarize(x, threshold=0.5):
    """Deterministic ternarization: +1 where ``x > threshold``, -1 where ``x < -threshold``, else 0."""
    x = np.asarray(x)
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError("ternarize got NaN or Inf; remove them first")
    return (np.where(x > threshold, 1, 0) - np.where(x < -threshold, 1, 0)).astype(np.int8)


def ternarize_stochastic(x, rng):
    """Stochastic ternarization: ``sign(x)`` with probability ``min(|x|, 1)``, else 0.

    One draw per element in row-major order, decided by :func:`bitsim.formats.rng.bernoulli`.
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("ternarize_stochastic got NaN or Inf; remove them first")
    keep = bernoulli(np.abs(x), as_rng(rng))
    return np.where(keep, np.sign(x), 0).astype(np.int8)
