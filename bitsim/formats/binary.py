"""Packed binary format: values in {-1, +1} stored one bit each in uint64 words.

The rule (``docs/formats.md``, "Packed binary"):

* bit value 1 means +1, bit value 0 means -1;
* element ``i`` of the last axis lives in word ``i // 64``; inside that word it sits at
  bit ``i % 64`` for ``bitorder='little'`` (the default) or at bit ``63 - i % 64`` for
  ``bitorder='big'``;
* the padding bits of the last word (when the length is not a multiple of 64) are 0;
* on disk, words are 8 bytes each, little-endian.

With zero padding in both operands, the padding bits XOR to 0, so the ±1 dot product of
length ``n`` is ``n - 2 * popcount(a XOR b)`` summed over all words, with no correction.
"""

import numpy as np

from .rng import as_rng, bernoulli

WORD_BITS = 64
BITORDERS = ("little", "big")


def n_words(n, word_bits=WORD_BITS):
    """Number of ``word_bits``-bit words holding ``n`` bits."""
    return -(-int(n) // word_bits)


def check_bitorder(bitorder):
    if bitorder not in BITORDERS:
        raise ValueError(f"bitorder must be 'little' or 'big', got {bitorder!r}")


def _float_values(x, what):
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{what} expects a real numeric array, got dtype {x.dtype}")
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{what} got {x[idx]} at index {idx}; remove NaN/Inf before binarizing")
    return x


def binarize(x):
    """Deterministic binarization: +1 where ``x >= 0`` (so sign(0) = +1, also for -0.0), else -1.

    Returns
    -------
    numpy.ndarray of int8 in {-1, +1}
    """
    x = _float_values(x, "binarize")
    return np.where(x >= 0, 1, -1).astype(np.int8)


def binarize_stochastic(x, rng):
    """Stochastic binarization: +1 with probability ``clip((x + 1) / 2, 0, 1)``, else -1.

    One draw per element in row-major order, decided by :func:`bitsim.formats.rng.bernoulli`.
    """
    x = _float_values(x, "binarize_stochastic")
    p = (np.asarray(x, dtype=np.float64) + 1.0) / 2.0
    return np.where(bernoulli(p, as_rng(rng)), 1, -1).astype(np.int8)


def pack_bits(bits, word_bits=WORD_BITS, bitorder="little"):
    """Pack a boolean array along its last axis into unsigned words (padding bits 0).

    Parameters
    ----------
    bits : array_like of bool, shape (..., n)
    word_bits : {8, 16, 32, 64}
    bitorder : {'little', 'big'}
        'little' puts element ``i`` at bit ``i % word_bits``; 'big' at bit ``word_bits - 1 - i % word_bits``.

    Returns
    -------
    numpy.ndarray of uint{word_bits}, shape (..., ceil(n / word_bits))
    """
    check_bitorder(bitorder)
    if word_bits not in (8, 16, 32, 64):
        raise ValueError(f"word_bits must be 8, 16, 32 or 64, got {word_bits}")
    bits = np.asarray(bits, dtype=bool)
    if bits.ndim == 0:
        raise ValueError("pack expects at least one axis; the last axis is packed")
    n = bits.shape[-1]
    pad = n_words(n, word_bits) * word_bits - n
    if pad:
        bits = np.concatenate([bits, np.zeros(bits.shape[:-1] + (pad,), dtype=bool)], axis=-1)
    packed = np.packbits(bits, axis=-1, bitorder=bitorder)
    endian = "<" if bitorder == "little" else ">"
    words = np.ascontiguousarray(packed).view(f"{endian}u{word_bits // 8}")
    return words.astype(f"=u{word_bits // 8}")


def unpack_bits(words, n, bitorder="little"):
    """Inverse of :func:`pack_bits`: return the first ``n`` bits along the last axis as bool."""
    check_bitorder(bitorder)
    words = np.asarray(words)
    if words.dtype.kind != "u":
        raise TypeError(f"expected unsigned packed words, got {words.dtype}; pack with bitsim.formats.binary.pack(...)")
    word_bits = words.dtype.itemsize * 8
    n = int(n)
    if words.ndim == 0 or words.shape[-1] != n_words(n, word_bits):
        raise ValueError(
            f"{n} values need {n_words(n, word_bits)} words of {word_bits} bits along the last axis, "
            f"got shape {words.shape}"
        )
    endian = "<" if bitorder == "little" else ">"
    as_bytes = np.ascontiguousarray(words.astype(f"{endian}u{word_bits // 8}")).view(np.uint8)
    bits = np.unpackbits(as_bytes, axis=-1, bitorder=bitorder)
    return bits[..., :n].astype(bool)


def check_pm1(values, what="pack"):
    """Raise unless every element is exactly -1 or +1."""
    values = np.asarray(values)
    bad = (values != 1) & (values != -1)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{what} expects values in {{-1, +1}}, got {values[idx]!r} at index {idx}; "
            "binarize first with bitsim.formats.binary.binarize(x) or use pack_signs(x)"
        )
    return values


def pack(values, bitorder="little"):
    """Pack ±1 values along the last axis into uint64 words (bit 1 = +1, padding 0).

    Parameters
    ----------
    values : array_like, shape (..., n), every element -1 or +1
    bitorder : {'little', 'big'}
        Position of element ``i`` inside its word: bit ``i % 64`` ('little') or ``63 - i % 64`` ('big').

    Returns
    -------
    numpy.ndarray of uint64, shape (..., ceil(n / 64))

    Examples
    --------
    >>> pack([1, -1, 1, 1])
    array([13], dtype=uint64)
    """
    values = check_pm1(values)
    return pack_bits(values > 0, WORD_BITS, bitorder)


def pack_signs(x, bitorder="little"):
    """Binarize a real array by sign (sign(0) = +1) and pack it; see :func:`pack`."""
    return pack_bits(binarize(x) > 0, WORD_BITS, bitorder)


def unpack(words, n, bitorder="little"):
    """Unpack uint64 words into ±1 int8 values, shape (..., n); the padding bits are ignored."""
    words = np.asarray(words)
    if words.dtype != np.uint64:
        raise TypeError(f"expected uint64 packed words, got {words.dtype}; pack with bitsim.formats.binary.pack(...)")
    return np.where(unpack_bits(words, n, bitorder), 1, -1).astype(np.int8)


def padding_mask(n, word_bits=WORD_BITS, bitorder="little"):
    """The mask of the valid bits of the last word for length ``n`` (all ones when ``n % word_bits == 0``)."""
    used = int(n) % word_bits or word_bits
    mask = (1 << used) - 1
    if bitorder == "big":
        mask <<= word_bits - used
    return np.array(mask, dtype=f"u{word_bits // 8}")


def check_padding(words, n, bitorder="little"):
    """Raise unless the padding bits of the last word are all 0 (what :func:`pack` writes)."""
    words = np.asarray(words)
    if words.size == 0 or words.shape[-1] == 0:
        return
    mask = padding_mask(n, words.dtype.itemsize * 8, bitorder)
    if (words[..., -1] & ~mask).any():
        raise ValueError(
            f"padding bits beyond length {n} are not zero; pack with bitsim.formats.binary.pack(...) "
            "or clear them with words[..., -1] &= padding_mask(n)"
        )


def dot(a, b, n):
    """±1 dot product of two packed vectors of length ``n``: ``n - 2 * popcount(a XOR b)`` (slow, obvious)."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    return int(n) - 2 * sum(int(w).bit_count() for w in x.ravel())


def to_lce(words, n, bitorder="little"):
    """Convert to Larq Compute Engine's bitpacking: int32 words, element ``i`` at bit ``i % 32``, bit 1 = -1.

    Padding bits of the last word are written as 0.
    """
    return pack_bits(~unpack_bits(words, n, bitorder), 32, "little").view(np.int32)


def from_lce(words, n):
    """Convert Larq Compute Engine int32 bitpacked words (bit 1 = -1) to bitsim uint64 words ('little')."""
    words = np.asarray(words)
    if words.dtype not in (np.int32, np.uint32):
        raise TypeError(f"expected int32 LCE words, got {words.dtype}")
    return pack_bits(~unpack_bits(words.view(np.uint32), n, "little"), WORD_BITS, "little")


def to_finn(words, n, word_bits=32, bitorder="little"):
    """Convert to FINN's convention: element 0 at the most significant bit, bit 0 = -1, bit 1 = +1.

    Parameters
    ----------
    words : uint64 array in bitsim's layout with ``bitorder``
    n : int
    word_bits : {8, 16, 32, 64}
        Width of FINN's words (its SIMD lane count times the bit width); padding bits 0.
    """
    return pack_bits(unpack_bits(words, n, bitorder), word_bits, "big")


def from_finn(words, n):
    """Convert FINN words (element 0 at the MSB, bit 1 = +1) to bitsim uint64 words ('little')."""
    return pack_bits(unpack_bits(words, n, "big"), WORD_BITS, "little")


def describe(words, n, bitorder="little"):
    """Return a human-readable dump of packed words: hex, binary (MSB first) and the values they hold."""
    words = np.atleast_1d(np.asarray(words, dtype=np.uint64))
    values = unpack(words, n, bitorder)
    lines = []
    for w, word in enumerate(words.ravel()):
        first, last = w * WORD_BITS, min((w + 1) * WORD_BITS, n)
        lines.append(f"word {w}: 0x{int(word):016x}  elements {first}..{last - 1}")
        lines.append(f"  bits 63..0: {int(word):064b}")
    shown = " ".join("+1" if v > 0 else "-1" for v in values.ravel()[:16])
    more = " ..." if n > 16 else ""
    lines.append(f"values: {shown}{more}")
    return "\n".join(lines)
