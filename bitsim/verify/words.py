"""Packed words for testbenches: fields of a hardware bus packed into, and read back from, Python ints.

A bus is described by its fields' widths, the first at bit 0 (the least significant bit). Driving a bus
is one integer per clock; reading it back gives one integer per clock. These functions convert whole
batches at once (NumPy bit matrices), so that a testbench packs and unpacks thousands of transactions
in one call instead of a Python loop per field.
"""

import numpy as np

from ..errors import InputError, InputTypeError

__all__ = ["to_unsigned", "to_signed", "pack_fields", "unpack_fields", "join_words", "split_word"]


def _bits(bits):
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 64:
        raise InputError(f"a field width must be an int in 1..64, got {bits!r}")
    return int(bits)


def to_unsigned(values, bits):
    """Two's-complement codes of ``bits`` bits as unsigned integers (uint64): ``v mod 2**bits``.

    Examples
    --------
    >>> to_unsigned(np.array([-1, 5, -128]), 8)
    array([255,   5, 128], dtype=uint64)
    """
    bits = _bits(bits)
    v = np.asarray(values)
    if v.dtype.kind not in "iu":
        raise InputTypeError(f"to_unsigned expects integers, got {v.dtype}")
    mask = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(2**64 - 1)
    return v.astype(np.int64).astype(np.uint64) & mask


def to_signed(values, bits):
    """Unsigned ``bits``-bit fields read from a bus as two's-complement integers (int64).

    Examples
    --------
    >>> to_signed(np.array([255, 5, 128], np.uint64), 8)
    array([  -1,    5, -128])
    """
    bits = _bits(bits)
    v = np.asarray(values).astype(np.uint64)
    if bits == 64:
        return v.astype(np.int64)
    sign = np.uint64(1 << (bits - 1))
    return (v ^ sign).astype(np.int64) - np.int64(1 << (bits - 1))


def _bit_matrix(fields, widths):
    count = len(fields[0]) if fields else 0
    total = sum(widths)
    bits = np.zeros((count, total), dtype=np.uint8)
    offset = 0
    for values, width in zip(fields, widths):
        u = to_unsigned(values, width)
        if u.shape != (count,):
            raise InputError(f"every field must hold {count} values (one per word), got shape {u.shape}")
        shifts = np.arange(width, dtype=np.uint64)
        bits[:, offset:offset + width] = (u[:, None] >> shifts) & np.uint64(1)
        offset += width
    return bits


def pack_fields(fields, widths):
    """Pack fields into one integer per word: field ``i`` at bits ``sum(widths[:i]) ..``, the first at bit 0.

    Parameters
    ----------
    fields : sequence of array_like of ints, each of shape (T,)
        Signed values are taken as two's complement of their width.
    widths : sequence of int
        Bits of each field, 1..64.

    Returns
    -------
    list of int
        T Python integers (any width), ready to drive a bus.

    Examples
    --------
    >>> [hex(w) for w in pack_fields([[3, -1], [1, 0]], [8, 1])]
    ['0x103', '0xff']
    """
    widths = [_bits(w) for w in widths]
    if len(fields) != len(widths):
        raise InputError(f"{len(fields)} fields but {len(widths)} widths")
    bits = _bit_matrix([np.asarray(f) for f in fields], widths)
    packed = np.packbits(bits, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def unpack_fields(words, widths, signed=None):
    """Read fields back from integers (one per word), the first field at bit 0.

    Parameters
    ----------
    words : sequence of int
        Non-negative integers read from a bus.
    widths : sequence of int
        Bits of each field, 1..64.
    signed : sequence of bool, optional
        Which fields are two's complement (int64 results); the others are uint64.

    Returns
    -------
    list of numpy.ndarray, one per field, shape (T,)

    Examples
    --------
    >>> unpack_fields([0x1FF, 0x003], [8, 1], [True, False])
    [array([-1,  3]), array([1, 0], dtype=uint64)]
    """
    widths = [_bits(w) for w in widths]
    signed = [False] * len(widths) if signed is None else list(signed)
    total = sum(widths)
    nbytes = -(-total // 8)
    try:
        raw = b"".join(int(w).to_bytes(nbytes, "little") for w in words)
    except OverflowError as err:
        raise InputError(f"a word is wider than the {total} bits of the fields, or negative: {err}") from None
    data = np.frombuffer(raw, dtype=np.uint8).reshape(len(words), nbytes)
    bits = np.unpackbits(data, axis=1, bitorder="little")[:, :total].astype(np.uint64)
    out, offset = [], 0
    for width, sign in zip(widths, signed):
        weights = np.uint64(1) << np.arange(width, dtype=np.uint64)
        u = (bits[:, offset:offset + width] * weights).sum(axis=1, dtype=np.uint64)
        out.append(to_signed(u, width) if sign else u)
        offset += width
    return out


def join_words(words, word_bits=64):
    """One integer from an array of words, word 0 in the low bits: a packed row driven on a flat bus.

    Examples
    --------
    >>> hex(join_words(np.array([1, 2], np.uint64)))
    '0x20000000000000001'
    """
    return sum(int(w) << (word_bits * i) for i, w in enumerate(np.asarray(words).tolist()))


def split_word(value, word_bits, count):
    """The inverse of :func:`join_words`: ``count`` words of ``word_bits`` bits as uint64, word 0 first.

    Examples
    --------
    >>> split_word(0x20000000000000001, 64, 2)
    array([1, 2], dtype=uint64)
    """
    word_bits = _bits(word_bits)
    mask = (1 << word_bits) - 1
    return np.array([(int(value) >> (word_bits * i)) & mask for i in range(count)], dtype=np.uint64)
