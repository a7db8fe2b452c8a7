"""NVFP4: E2M1 elements in blocks of 16, each block with an E4M3 scale, and one float32 tensor scale.

The rule (``docs/formats.md``, section 14.3), every operation in float32, rounding to nearest even, on the
values first rounded to float32:

1. tensor scale ``T = amax(|x|) / (448 * 6)`` (``T = 1`` when the tensor is all zeros; ``T = 2**-149``, the
   smallest float32 subnormal, when the division rounds to zero);
2. per block of 16 along ``axis``: ``S = e4m3(amax_block / 6 / T)``, the E4M3 code rounded to nearest even
   and saturated to 448 (a block scale that rounds to zero makes the block's elements zero);
3. element ``i``: ``e2m1(x_i / (decode(S) * T))``, saturated to 6.

The value of element ``i`` is ``decode(c_i) * decode(S) * T``. NaN and Inf are refused, and so are finite
values that round beyond float32's range.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import InputError, RangeError
from .minifloat import E2M1, E4M3, FloatOverflow, decode, encode, exact_float
from .modes import as_int, first_index
from .mx import blocks_of

BLOCK = 16
T_MIN = np.float32(2.0**-149)  # the smallest float32 subnormal: a tensor scale that rounds to zero becomes this


@dataclass
class NVFP4Tensor:
    """``codes`` (uint8 E2M1, the input's shape), ``scales`` (uint8 E4M3 per block along ``axis``),
    ``tensor_scale`` (float32) and ``axis``."""

    codes: np.ndarray
    scales: np.ndarray
    tensor_scale: np.float32
    axis: int
    block: int = BLOCK

    def dequantize(self, dtype=np.float64):
        """The tensor's values (:func:`dequantize`)."""
        return dequantize(self, dtype)


def quantize(x, axis=-1, block=BLOCK, counts=None):
    """Quantize real values to NVFP4 (see the module's rule).

    Parameters
    ----------
    x : array_like of float or int
        Finite values; each is first rounded to float32 (nearest even), which must not overflow.
    axis : int
        The axis along which blocks run.
    block : int
        Block size, at least 1 (16 in NVFP4).
    counts : Counts, optional
        ``saturated`` and ``flushed`` events of the E4M3 and E2M1 encodings.

    Returns
    -------
    NVFP4Tensor

    Raises
    ------
    InputTypeError
        Values that are not real; a block size or axis that is not an int.
    InputError
        NaN or Inf; a block size below 1; an axis outside the array; an integer beyond 2**53 in magnitude.
    RangeError
        A finite value that rounds beyond float32's range.
    """
    x = exact_float(x, "NVFP4 quantize")
    if x.ndim == 0:
        x = x.reshape(1)
    bad = ~np.isfinite(x)
    if bad.any():
        raise InputError(f"NVFP4 has no NaN or Inf; got {x[first_index(bad)]} at index {first_index(bad)}; remove "
                         "them before quantizing")
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    big = np.isinf(x32)
    if big.any():
        idx = first_index(big)
        raise RangeError(f"NVFP4 computes in float32, and {float(x[idx])!r} at index {idx} rounds beyond float32's "
                         f"range (+-{float(np.finfo(np.float32).max)!r}); scale the tensor down first")
    x = x32
    block = as_int(block, "block size")
    if block < 1:
        raise InputError(f"block size must be >= 1, got {block}")
    axis = as_int(axis, "axis")
    if not -x.ndim <= axis < x.ndim:
        raise InputError(f"axis {axis} is out of range for an array of {x.ndim} dimension(s); give "
                         f"{-x.ndim}..{x.ndim - 1}")
    axis %= x.ndim
    amax = np.float32(np.max(np.abs(x))) if x.size else np.float32(0)
    t = np.float32(amax / np.float32(448 * 6)) if amax > 0 else np.float32(1)
    t = max(t, T_MIN)
    b, n = blocks_of(x, axis, block)
    bmax = np.max(np.abs(b), axis=-1)
    s = encode((bmax / np.float32(6)) / t, E4M3, "nearest_even", FloatOverflow.SATURATE, counts=counts)
    sv = decode(s, E4M3, np.float32)
    div = (sv * t)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(div > 0, b / np.where(div > 0, div, np.float32(1)), np.float32(0)).astype(np.float32)
    c = encode(v, E2M1, "nearest_even", FloatOverflow.SATURATE, counts=counts)
    c = c.reshape(c.shape[:-2] + (-1,))[..., :n]
    return NVFP4Tensor(np.ascontiguousarray(np.moveaxis(c, -1, axis)), np.ascontiguousarray(np.moveaxis(s, -1, axis)),
                       t, axis, block)


def dequantize(t, dtype=np.float64):
    """``decode(c) * decode(S) * T`` for every element (exact in float64)."""
    el = decode(t.codes, E2M1)
    b, n = blocks_of(el, t.axis, t.block)
    s = np.moveaxis(decode(t.scales, E4M3), t.axis, -1)
    out = (b * s[..., None] * np.float64(t.tensor_scale)).reshape(b.shape[:-2] + (-1,))[..., :n]
    return np.moveaxis(out, -1, t.axis).astype(dtype)


__all__ = ["BLOCK", "NVFP4Tensor", "quantize", "dequantize"]
