"""Directed corner cases per format: the values random stimulus rarely hits and designs most often get wrong.

Saturation edges and the most negative values of two's-complement codes, the ties of every rounding
mode at every shift amount, accumulators built from operand pairs, every log code (the two zero codes
included), and ±1 rows whose set elements sit on word boundaries and next to the padding bits.
"""

import numpy as np

from ..errors import InputError
from ..formats.log import LogFormat, split

__all__ = ["code_range", "fixed_edges", "ties", "requantize_edges", "pairs_summing_to", "log_codes",
           "binary_rows"]


def code_range(bits):
    """``(lo, hi)`` of ``bits``-bit two's-complement codes."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def fixed_edges(bits):
    """The edges of a ``bits``-bit code: most negative, its neighbour, -2 .. 2, the largest and its neighbour.

    Examples
    --------
    >>> fixed_edges(8)
    [-128, -127, -2, -1, 0, 1, 2, 126, 127]
    """
    lo, hi = code_range(bits)
    return sorted({lo, lo + 1, -2, -1, 0, 1, 2, hi - 1, hi})


def ties(shift, reach=3):
    """Values exactly halfway between two multiples of ``2**shift``, positive and negative, q even and odd.

    ``(2 m + 1) * 2**(shift - 1)`` for ``m`` in ``-reach .. reach - 1``: the quotient by ``2**shift`` is
    ``m + 1/2``, so each rounding mode's tie rule decides. Empty for ``shift == 0`` (nothing is discarded).

    Examples
    --------
    >>> ties(2, reach=2)
    [-6, -2, 2, 6]
    """
    if shift < 1:
        return []
    return [(2 * m + 1) << (shift - 1) for m in range(-reach, reach)]


def requantize_edges(shift, out_bits):
    """Accumulators that a right shift by ``shift`` puts on the edges of ``out_bits``-bit codes.

    For each end of the range: the value that lands exactly on it, one LSB beyond it, and the ties and
    near-ties between them, so that saturation decides (or a wrap shows).
    """
    lo, hi = code_range(out_bits)
    half = (1 << (shift - 1)) if shift else 0
    values = {hi << shift, (hi + 1) << shift, lo << shift, (lo - 1) << shift,
              (hi << shift) + half, (lo << shift) - half}
    if shift:
        values |= {(hi << shift) + half - 1, (lo << shift) - half + 1, ((hi + 1) << shift) - 1}
    return sorted(values)


def pairs_summing_to(target, width, kmax):
    """Operand pairs ``(a, b)`` of ``width``-bit codes whose products sum to ``target``, or None.

    Whole products of the largest magnitude ``m = 2**(width-1) - 1`` first (``m * m``), then one
    ``q * m`` and one ``r * 1`` for the rest: at most ``target // m**2 + 2`` pairs. A target beyond the
    int32 range (to exercise a wrapping accumulator) takes the same route.

    Examples
    --------
    >>> pairs_summing_to(-300, 8, 4)
    [(-2, 127), (-46, 1)]
    """
    m = (1 << (width - 1)) - 1
    sign = -1 if target < 0 else 1
    rest = abs(int(target))
    if rest // (m * m) > kmax:
        return None
    pairs = [(sign * m, m)] * (rest // (m * m))
    rest -= len(pairs) * m * m
    if rest >= m:
        pairs.append((sign * (rest // m), m))
        rest %= m
    if rest:
        pairs.append((sign * rest, 1))
    if not pairs:
        pairs = [(0, 0)]
    return pairs if len(pairs) <= kmax else None


def log_codes(fmt=LogFormat()):
    """Every code of ``fmt`` with its name: ``+2^e`` / ``-2^e``, and ``+0`` / ``-0`` for the zero codes."""
    codes = np.arange(1 << fmt.bits, dtype=np.uint8)
    sign, exponent, zero = split(codes, fmt)
    names = [("-" if s else "+") + ("0" if z else f"2^{int(e)}") for s, e, z in zip(sign, exponent, zero)]
    return codes, names


def binary_rows(n):
    """Named ±1 rows of length ``n`` (int8): all +1, all -1, alternating, and a lone +1 at each word edge.

    The lone elements sit at 0, 63, 64, 127, 128, ... and at ``n - 1``, the last element before the
    padding bits, where a design that counts padding or misplaces a word boundary goes wrong.
    """
    if n < 1:
        raise InputError(f"a row needs at least one element, got n={n}")
    rows = {"all +1": np.ones(n, np.int8), "all -1": -np.ones(n, np.int8),
            "alternating": np.where(np.arange(n) % 2 == 0, 1, -1).astype(np.int8)}
    edges = sorted({e for w in range(0, n, 64) for e in (w, w + 63) if e < n} | {n - 1})
    for e in edges:
        row = -np.ones(n, np.int8)
        row[e] = 1
        rows[f"lone +1 at element {e}"] = row
    return rows
