"""Random translations of training images (docs/formats.md, section 5): reproducible draws, exact shifts."""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def random_shifts(rng, n, max_shift):
    """Draw one translation ``(dy, dx)`` per image, each in ``-max_shift..max_shift``.

    Image ``i`` takes draws ``2 i`` (``dy``) and ``2 i + 1`` (``dx``) of ``rng``, and a draw ``u``
    becomes ``floor(u * (2 max_shift + 1) / 2**32) - max_shift``, exact in integers.

    Parameters
    ----------
    rng : bitsim.formats.rng.Philox or Xorshift32
        The generator; ``2 n`` draws are consumed.
    n : int
        Number of images.
    max_shift : int
        Largest shift in pixels, 0 .. 2**31 - 1 (0 draws nothing and returns zeros).

    Returns
    -------
    dy, dx : ndarray of int64, shape (n,)
        Rows down and columns right.

    Raises
    ------
    ValueError
        If ``n`` or ``max_shift`` is not an integer in range.

    Examples
    --------
    >>> from bitsim.formats.rng import Xorshift32
    >>> random_shifts(Xorshift32(1), 2, 2)
    (array([-2,  1]), array([-2, -2]))
    """
    if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) for v in (n, max_shift)):
        raise InputError(f"n and max_shift must be integers, got n={n!r}, max_shift={max_shift!r}")
    n, max_shift = int(n), int(max_shift)
    if n < 0 or not 0 <= max_shift < 2**31:  # (2 max_shift + 1) * u must fit in 64 bits
        raise InputError(f"need n >= 0 and 0 <= max_shift < 2**31, got n={n}, max_shift={max_shift}")
    if max_shift == 0:
        return np.zeros(n, np.int64), np.zeros(n, np.int64)
    u = rng.uint32(2 * n).astype(np.uint64).reshape(n, 2)
    shifts = ((u * np.uint64(2 * max_shift + 1)) >> np.uint64(32)).astype(np.int64) - max_shift
    return shifts[:, 0].copy(), shifts[:, 1].copy()


def translate(images, dy, dx):
    """Shift each image by whole pixels, filling the uncovered border with zeros.

    ``out[i, r, c] = images[i, r - dy[i], c - dx[i]]`` where that pixel exists, else 0.

    Parameters
    ----------
    images : ndarray, shape (n, H, W)
        The images, any dtype.
    dy, dx : array_like of int, shape (n,)
        Rows down and columns right for each image (negative: up and left). Any size: a shift of
        H or more rows (W columns) leaves a blank image.

    Returns
    -------
    ndarray
        A new array of the shape and dtype of ``images``.

    Raises
    ------
    ValueError
        If ``images`` is not 3-D, or ``dy`` and ``dx`` are not one integer per image.

    Examples
    --------
    >>> translate(np.arange(1, 10, dtype=np.uint8).reshape(1, 3, 3), [1], [-1])[0]
    array([[0, 0, 0],
           [2, 3, 0],
           [5, 6, 0]], dtype=uint8)
    """
    images = np.asarray(images)
    dy, dx = np.asarray(dy), np.asarray(dx)
    if not all(d.size == 0 or np.issubdtype(d.dtype, np.integer) for d in (dy, dx)):
        raise InputError(f"dy and dx must be integers (whole pixels), got {dy.dtype} and {dx.dtype}")
    dy, dx = dy.astype(np.int64), dx.astype(np.int64)
    if images.ndim != 3:
        raise InputError(f"images must have shape (n, H, W), got {images.shape}")
    if dy.shape != (len(images),) or dx.shape != (len(images),):
        raise InputError(f"dy and dx need one shift per image ({len(images)},), got {dy.shape} and {dx.shape}")
    h, w = images.shape[1:]
    out = np.zeros_like(images)
    pairs, which = np.unique(np.stack([dy, dx], 1), axis=0, return_inverse=True)
    for k, (sy, sx) in enumerate(pairs):
        rows = np.flatnonzero(which.reshape(-1) == k)
        if abs(sy) >= h or abs(sx) >= w:
            continue
        out[rows, max(sy, 0):h + min(sy, 0), max(sx, 0):w + min(sx, 0)] = \
            images[rows, max(-sy, 0):h + min(-sy, 0), max(-sx, 0):w + min(-sx, 0)]
    return out
