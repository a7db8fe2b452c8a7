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

from ..errors import InputError, InputTypeError
from .modes import as_int, check_values, real_values
from .rng import as_rng, bernoulli

WORD_BITS = 64
BITORDERS = ("little", "big")
WORD_SIZES = (8, 16, 32, 64)


def as_length(n):
    """Return the vector length ``n`` as an int, refusing non-integers and negative numbers."""
    n = as_int(n, "the length n")
    if n < 0:
        raise InputError(f"the length n must be >= 0, got {n}; pass the number of unpacked values")
    return n


def check_word_bits(word_bits):
    """Return ``word_bits`` as an int if it is one of 8, 16, 32, 64, else raise."""
    if as_int(word_bits, "word_bits") not in WORD_SIZES:
        raise InputError(f"word_bits must be 8, 16, 32 or 64, got {word_bits}")
    return int(word_bits)


def n_words(n, word_bits=WORD_BITS):
    """Number of ``word_bits``-bit words holding ``n`` bits."""
    return -(-as_length(n) // word_bits)


def check_bitorder(bitorder):
    """Raise unless ``bitorder`` is 'little' or 'big'."""
    if bitorder not in BITORDERS:
        raise InputError(f"bitorder must be 'little' or 'big', got {bitorder!r}")


def binarize(x):
    """Deterministic binarization: +1 where ``x >= 0`` (so sign(0) = +1, also for -0.0), else -1.

    Returns
    -------
    numpy.ndarray of int8 in {-1, +1}
    """
    x = real_values(x, "binarize", "binarizing")
    return np.where(x >= 0, 1, -1).astype(np.int8)


def binarize_stochastic(x, rng):
    """Stochastic binarization: +1 with probability ``clip((x + 1) / 2, 0, 1)``, else -1.

    One draw per element in row-major order, decided by :func:`bitsim.formats.rng.bernoulli`.
    """
    x = real_values(x, "binarize_stochastic", "binarizing")
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
    word_bits = check_word_bits(word_bits)
    bits = np.asarray(bits, dtype=bool)
    if bits.ndim == 0:
        raise InputError("pack expects at least one axis; the last axis is packed")
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
        raise InputTypeError(f"expected unsigned packed words, got {words.dtype}; pack with bitsim.formats.binary.pack(...)")
    word_bits = words.dtype.itemsize * 8
    n = as_length(n)
    if words.ndim == 0 or words.shape[-1] != n_words(n, word_bits):
        raise InputError(
            f"{n} values need {n_words(n, word_bits)} words of {word_bits} bits along the last axis, "
            f"got shape {words.shape}"
        )
    endian = "<" if bitorder == "little" else ">"
    as_bytes = np.ascontiguousarray(words.astype(f"{endian}u{word_bits // 8}")).view(np.uint8)
    bits = np.unpackbits(as_bytes, axis=-1, bitorder=bitorder)
    return bits[..., :n].astype(bool)


def check_pm1(values, what="pack"):
    """Return ``values`` as an array, raising unless every element is -1 or +1 (``what`` names the caller)."""
    return check_values(values, (1, -1), what,
                        "binarize first with bitsim.formats.binary.binarize(x) or use pack_signs(x)")


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
        raise InputTypeError(f"expected uint64 packed words, got {words.dtype}; pack with bitsim.formats.binary.pack(...)")
    return np.where(unpack_bits(words, n, bitorder), 1, -1).astype(np.int8)


def padding_mask(n, word_bits=WORD_BITS, bitorder="little"):
    """The mask of the valid bits of the last word for length ``n`` (all ones when ``n % word_bits == 0``)."""
    check_bitorder(bitorder)
    word_bits = check_word_bits(word_bits)
    used = as_length(n) % word_bits or word_bits
    mask = (1 << used) - 1
    if bitorder == "big":
        mask <<= word_bits - used
    return np.array(mask, dtype=f"u{word_bits // 8}")


def check_padding(words, n, bitorder="little"):
    """Raise unless the padding bits of the last word are all 0 (what :func:`pack` writes).

    ``words`` must be unsigned packed words holding ``n`` values along the last axis.
    """
    words = np.asarray(words)
    if words.dtype.kind != "u":
        raise InputTypeError(
            f"expected unsigned packed words, got {words.dtype}; pack with bitsim.formats.binary.pack(...)"
        )
    word_bits = words.dtype.itemsize * 8
    if words.ndim == 0 or words.shape[-1] != n_words(n, word_bits):
        raise InputError(
            f"{n} values need {n_words(n, word_bits)} words of {word_bits} bits along the last axis, "
            f"got shape {words.shape}; pass the unpacked length n, not the number of words"
        )
    if words.size == 0:
        return
    mask = padding_mask(n, words.dtype.itemsize * 8, bitorder)
    if (words[..., -1] & ~mask).any():
        raise InputError(
            f"padding bits beyond length {n} are not zero; pack with bitsim.formats.binary.pack(...) "
            "or clear them with words[..., -1] &= padding_mask(n)"
        )


def dot(a, b, n, bitorder="little"):
    """±1 dot product of two packed vectors of length ``n``: ``n - 2 * popcount(a XOR b)`` (slow, obvious).

    Parameters
    ----------
    a, b : numpy.ndarray of uint64, shape (ceil(n / 64),)
        Packed vectors as :func:`pack` writes them, padding bits 0.
    n : int
        The number of ±1 values in each vector, ``n >= 0``.
    bitorder : {'little', 'big'}
        The order the vectors were packed with.

    Returns
    -------
    int
        The dot product of the two ±1 vectors, in ``-n..n``.

    Raises
    ------
    InputTypeError
        If a word array is not uint64 or ``n`` is not an int.
    InputError
        If the shapes differ or do not hold ``n`` values, ``n < 0``, or a padding bit is set.
    """
    check_bitorder(bitorder)
    n = as_length(n)
    a, b = np.asarray(a), np.asarray(b)
    for name, words in (("a", a), ("b", b)):
        if words.dtype != np.uint64:
            raise InputTypeError(
                f"dot: {name} must be uint64 packed words, got {words.dtype}; pack with bitsim.formats.binary.pack(...)"
            )
    if a.shape != b.shape:
        raise InputError(f"dot: a has shape {a.shape} and b {b.shape}; pack two vectors of the same length n")
    if a.shape != (n_words(n),):
        raise InputError(
            f"dot: {n} values need a 1-D array of {n_words(n)} uint64 words, got shape {a.shape}; "
            "pass the unpacked length n, not the number of words"
        )
    check_padding(a, n, bitorder)
    check_padding(b, n, bitorder)
    x = np.bitwise_xor(a, b)
    return n - 2 * sum(int(w).bit_count() for w in x.ravel())


def to_lce(words, n, bitorder="little"):
    """Convert to Larq Compute Engine's bitpacking: int32 words, element ``i`` at bit ``i % 32``, bit 1 = -1.

    Padding bits of the last word are written as 0.
    """
    return pack_bits(~unpack_bits(words, n, bitorder), 32, "little").view(np.int32)


def from_lce(words, n):
    """Convert Larq Compute Engine int32 bitpacked words (bit 1 = -1) to bitsim uint64 words ('little')."""
    words = np.asarray(words)
    if words.dtype not in (np.int32, np.uint32):
        raise InputTypeError(f"expected int32 LCE words, got {words.dtype}")
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
    words = np.atleast_1d(np.asarray(words))
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
