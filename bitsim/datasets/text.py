"""Text data: the bundled, checksummed Shakespeare corpus, character vocabularies and contiguous splits."""

from __future__ import annotations

import lzma
from fractions import Fraction

import numpy as np

from ..errors import DamagedFileError, InputError
from .files import REBUILD_HINT, check_sha256, locate

SHAKESPEARE_SHA256 = "0cb8567821a4a403c32c1df9ca467505a7ac53e69d51bb2ae7321fd28b77c1b8"
SHAKESPEARE_FILE = "shakespeare.txt.xz"


def load_shakespeare(path=None, verify=True) -> str:
    """Load the bundled Shakespeare corpus.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The ``.txt.xz`` file to read.  Defaults to ``shakespeare.txt.xz`` in
        ``$BITSIM_DATA`` or the repository's ``data/`` directory.
    verify : bool, default True
        Check the file's sha256 against :data:`SHAKESPEARE_SHA256` first.

    Returns
    -------
    str
        The complete works, 5,057,321 ASCII characters with ``\\n`` line
        endings.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the checksum does not match or the file cannot be decoded.
    """
    resolved = locate(path, SHAKESPEARE_FILE)
    if verify:
        check_sha256(resolved, SHAKESPEARE_SHA256)
    try:
        with lzma.open(resolved) as f:
            return f.read().decode("utf-8")
    except (lzma.LZMAError, EOFError, UnicodeDecodeError) as error:
        raise DamagedFileError(resolved, f"cannot read the xz-compressed text ({error}); {REBUILD_HINT}") from None


def char_vocab(text: str) -> list[str]:
    """Return the sorted distinct characters of a text.

    Parameters
    ----------
    text : str

    Returns
    -------
    list of str
        Distinct characters in code point order; the index of a character
        is its id in :func:`encode_chars`.
    """
    return sorted(set(text))


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def encode_chars(text: str, vocab) -> np.ndarray:
    """Map each character of a text to its index in a vocabulary.

    Parameters
    ----------
    text : str
    vocab : sequence of str
        Distinct single characters, e.g. from :func:`char_vocab`.

    Returns
    -------
    numpy.ndarray
        1-D ids, ``uint8`` when the vocabulary has at most 256 entries,
        ``int32`` otherwise.

    Raises
    ------
    ValueError
        If the vocabulary is invalid or the text has characters outside it.
    """
    vocab = list(vocab)
    if any(not isinstance(c, str) or len(c) != 1 for c in vocab):
        raise InputError("vocab must contain single characters")
    if len(set(vocab)) != len(vocab):
        raise InputError("vocab contains duplicate characters")
    dtype = np.uint8 if len(vocab) <= 256 else np.int32
    if not text:
        return np.zeros(0, dtype)
    codes = _code_points("".join(vocab))
    order = np.argsort(codes)
    points = _code_points(text)
    pos = np.minimum(np.searchsorted(codes[order], points), len(codes) - 1)
    known = codes[order][pos] == points if len(codes) else np.zeros(len(points), bool)
    if not known.all():
        unknown = sorted(set(text) - set(vocab))
        raise InputError(f"text has {len(unknown)} characters not in vocab: {unknown[:20]!r}")
    return order[pos].astype(dtype)


def decode_chars(ids, vocab) -> str:
    """Inverse of :func:`encode_chars`.

    Parameters
    ----------
    ids : array_like of int
        Indices into ``vocab``.
    vocab : sequence of str

    Returns
    -------
    str
    """
    ids = np.asarray(ids)
    if ids.size == 0:
        return ""
    if ids.dtype.kind not in "iu":
        raise InputError(f"ids must be integers, got {ids.dtype}")
    if ids.min() < 0 or ids.max() >= len(vocab):
        raise InputError(f"ids must lie in 0..{len(vocab) - 1}")
    table = _code_points("".join(vocab))
    return table[ids].tobytes().decode("utf-32-le")


def split_text(n: int, fractions=(0.9, 0.05, 0.05)) -> tuple[tuple[int, int], ...]:
    """Split ``n`` items into contiguous parts, by default train/validation/test.

    Part ``i`` is ``[floor(n * c[i-1]), floor(n * c[i]))`` where ``c`` is the
    cumulative sum of the fractions, each read as the exact decimal it
    prints as; the last part ends at ``n``.

    Parameters
    ----------
    n : int
        Number of items, e.g. characters.
    fractions : sequence of float, default (0.9, 0.05, 0.05)
        Non-negative sizes summing to 1.

    Returns
    -------
    tuple of (int, int)
        ``(start, stop)`` of each part, in order; use ``text[start:stop]``.

    Raises
    ------
    ValueError
        If ``n`` is negative or the fractions are invalid.
    """
    if n < 0:
        raise InputError(f"n must be non-negative, got {n}")
    exact = [Fraction(repr(float(f))) for f in fractions]
    if not exact or any(f < 0 for f in exact):
        raise InputError(f"fractions must be non-negative and non-empty, got {fractions}")
    if abs(sum(exact) - 1) > Fraction(1, 10**9):
        raise InputError(f"fractions must sum to 1, got {float(sum(exact))}")
    stops, total = [], Fraction(0)
    for f in exact[:-1]:
        total += f
        stops.append(min(n, int(n * total)))
    stops.append(n)
    starts = [0] + stops[:-1]
    return tuple(zip(starts, stops))
