"""OCP Microscaling (MX) block formats: blocks of minifloat (or int8) elements sharing one E8M0 scale.

The rule (``docs/formats.md``, section 14): along ``axis``, consecutive runs of ``block`` values (32 by
default; a short last block is padded with zeros, which change nothing) share a scale ``X = 2**e``
stored as an E8M0 code ``e + 127``. Element ``i`` holds ``round(V_i / X)`` in the element format,
saturated to its largest finite value. The exponent ``e`` comes from the block's largest magnitude
``amax`` by a named :class:`ScaleRule` and is clipped to E8M0's range -127..127; a block whose ``amax``
is 0 gets ``e = -127`` (code 0x00); a block holding NaN or +-Inf gets the NaN scale 0xFF and element
codes 0, and decodes to NaN throughout (the OCP rule: a NaN scale makes every element NaN).
"""

from dataclasses import dataclass
from enum import Enum

import numpy as np

from ..errors import InputError, InputTypeError
from .minifloat import E2M1, E2M3, E3M2, E4M3, E5M2, FloatOverflow, MinifloatFormat, decode, encode, exact_float
from .modes import Rounding, as_int, first_index, parse_enum
from .rng import as_rng, bernoulli

SCALE_BIAS = 127
SCALE_NAN = 0xFF
EMIN, EMAX = -127, 127


class ScaleRule(Enum):
    """How a block's shared exponent ``e`` is chosen from its largest magnitude ``amax``.

    FLOOR  ``floor(log2(amax)) - emax_elem`` (OCP MX v1.0, section 6.3; microxcaling, gfloat, torchao FLOOR).
           Values up to ``2**(emax_elem + 1) * X`` can exceed the element's largest value and saturate.
    CEIL   the smallest ``e`` with ``amax <= max_elem * 2**e``: nothing saturates (exact rational test).
    RCEIL  ``ceil(log2(d))``, ``d = fl32(fl32(amax) / max_elem)``: ``amax`` rounded to float32, then divided
           in float32 (cuBLAS and torchao RCEIL, whose inputs are float32): CEIL except where a rounding
           lands on a power of two; ``d = 0`` (amax below float32's range) gives -127 and ``d = inf`` 127.
    EVEN   ``floor(log2(r)) - emax_elem`` where ``r`` is ``amax`` rounded to the element's mantissa width,
           ties away from zero (torchao EVEN): FLOOR, except that a block whose ``amax`` would round up
           into the next binade takes the larger scale.
    CEIL_LOG2  ``ceil(log2(amax)) - emax_elem`` (torchao CEIL): FLOOR plus one unless ``amax`` is a power of
           two. ``amax / X <= 2**emax_elem``, so nothing saturates, but the scale is up to twice CEIL's.
    """

    FLOOR = "floor"
    CEIL = "ceil"
    RCEIL = "rceil"
    EVEN = "even"
    CEIL_LOG2 = "ceil_log2"


@dataclass(frozen=True)
class Int8Element:
    """MXINT8's element: two's-complement int8 ``c`` meaning ``c * 2**-6`` (-2 .. 1.984375)."""

    name: str = "int8"
    bits: int = 8
    emax: int = 0
    max: float = 127 / 64
    man_bits: int = 6


INT8 = Int8Element()


@dataclass(frozen=True)
class MXFormat:
    """An MX block format: an element format, a block size, and the E8M0 scale."""

    name: str
    element: object
    block: int = 32

    def with_block(self, block):
        """This format with another block size (an int >= 1)."""
        block = as_int(block, "block size")
        if block < 1:
            raise InputError(f"block size must be >= 1, got {block}")
        return MXFormat(self.name, self.element, block)


FORMATS = {
    "mxfp8_e4m3": MXFormat("mxfp8_e4m3", E4M3), "mxfp8_e5m2": MXFormat("mxfp8_e5m2", E5M2),
    "mxfp6_e2m3": MXFormat("mxfp6_e2m3", E2M3), "mxfp6_e3m2": MXFormat("mxfp6_e3m2", E3M2),
    "mxfp4_e2m1": MXFormat("mxfp4_e2m1", E2M1), "mxint8": MXFormat("mxint8", INT8),
}


def as_mx(fmt, block=None):
    """Return ``fmt`` (an :class:`MXFormat` or a name such as ``'mxfp4_e2m1'``), with ``block`` if given."""
    if isinstance(fmt, str):
        key = fmt.strip().lower()
        if key not in FORMATS:
            raise InputError(f"unknown MX format {fmt!r}; choose one of {', '.join(FORMATS)}")
        fmt = FORMATS[key]
    elif not isinstance(fmt, MXFormat):
        raise InputTypeError(f"expected an MXFormat or a name such as 'mxfp8_e4m3', got {type(fmt).__name__}")
    return fmt if block is None else fmt.with_block(block)


@dataclass
class MXTensor:
    """Quantized MX data: ``codes`` (uint8, the input's shape), ``scales`` (uint8 E8M0 codes, the input's
    shape with ``axis`` holding ``ceil(n / block)`` blocks), the format and the axis."""

    codes: np.ndarray
    scales: np.ndarray
    fmt: MXFormat
    axis: int

    def dequantize(self, dtype=np.float64):
        """The tensor's values (:func:`dequantize`)."""
        return dequantize(self, dtype)


def shared_exponent(amax, fmt, rule=ScaleRule.FLOOR):
    """The unclipped shared exponent of blocks with largest magnitudes ``amax`` (> 0, finite), as int64.

    Parameters
    ----------
    amax : array_like of float
    fmt : MXFormat or str
    rule : ScaleRule or str
    """
    fmt, rule = as_mx(fmt), parse_enum(ScaleRule, rule)
    amax = np.asarray(amax, dtype=np.float64)
    el = fmt.element
    mant, ex = np.frexp(amax)
    floor_log2 = ex.astype(np.int64) - 1
    if rule is ScaleRule.FLOOR:
        return floor_log2 - el.emax
    if rule is ScaleRule.CEIL_LOG2:
        return floor_log2 + (mant != 0.5) - el.emax
    if rule is ScaleRule.CEIL:
        # smallest e with amax <= max_elem * 2**e; max_elem * 2**e is exact in float64 for |e| < 900
        e = floor_log2 - el.emax - 1
        return e + (amax > np.ldexp(el.max, e)) + (amax > np.ldexp(el.max, e + 1))
    if rule is ScaleRule.RCEIL:
        with np.errstate(over="ignore"):
            d = (amax.astype(np.float32) / np.float32(el.max)).astype(np.float64)
        mant, ex = np.frexp(np.where(np.isinf(d) | (d == 0), 1.0, d))
        e = ex.astype(np.int64) - 1 + (mant != 0.5)
        return np.where(np.isinf(d), 1 << 20, np.where(d == 0, -(1 << 20), e))  # beyond float32: clipped
    step = np.ldexp(1.0, floor_log2 - el.man_bits)  # EVEN: round amax to man_bits, ties away
    r = np.floor(amax / step + 0.5) * step
    return np.frexp(r)[1].astype(np.int64) - 1 - el.emax


def encode_elements(v, element, rounding=Rounding.NEAREST_EVEN, rng=None, counts=None):
    """Element codes of values already divided by the block scale, saturating (uint8)."""
    if isinstance(element, MinifloatFormat):
        return encode(v, element, rounding, FloatOverflow.SATURATE, rng, counts)
    scaled = np.ldexp(np.asarray(v, dtype=np.float64), element.man_bits)
    rounding = parse_enum(Rounding, rounding)
    if rounding is Rounding.STOCHASTIC:
        low = np.floor(scaled)
        r = low + bernoulli(scaled - low, as_rng(rng))
    else:
        r = {Rounding.NEAREST_EVEN: np.rint, Rounding.FLOOR: np.floor, Rounding.CEIL: np.ceil,
             Rounding.TOWARD_ZERO: np.trunc}.get(rounding, None)
        if r is None:
            whole = np.trunc(scaled)
            tie = np.abs(scaled - whole) == 0.5
            up = np.where(rounding is Rounding.NEAREST_AWAY, whole + np.sign(scaled), np.ceil(scaled))
            r = np.where(tie, up, np.rint(scaled))
        else:
            r = r(scaled)
    clipped = np.clip(r, -128, 127)
    if counts is not None:
        counts.saturated += int(np.count_nonzero(clipped != r))
    return clipped.astype(np.int64).astype(np.int8).view(np.uint8)


def decode_elements(codes, element):
    """Element values (float64) of element codes."""
    if isinstance(element, MinifloatFormat):
        return decode(codes, element)
    return np.ldexp(np.asarray(codes, dtype=np.uint8).view(np.int8).astype(np.float64), -element.man_bits)


def blocks_of(x, axis, block):
    """``x`` with ``axis`` moved last and split into ``(..., nb, block)``, zero-padded; and ``n``."""
    x = np.moveaxis(x, axis, -1)
    n = x.shape[-1]
    nb = -(-n // block)
    if nb * block != n:
        pad = np.zeros(x.shape[:-1] + (nb * block - n,), x.dtype)
        x = np.concatenate([x, pad], axis=-1)
    return x.reshape(x.shape[:-1] + (nb, block)), n


def quantize(x, fmt, axis=-1, block=None, scale_rule=ScaleRule.FLOOR, rounding=Rounding.NEAREST_EVEN, rng=None,
             counts=None):
    """Quantize real values to an MX format: element codes and E8M0 scale codes.

    Parameters
    ----------
    x : array_like of float or int
        Integers of magnitude above 2**53 are refused (float64, which the rule computes in, would round them).
    fmt : MXFormat or str
        ``'mxfp8_e4m3'``, ``'mxfp8_e5m2'``, ``'mxfp6_e2m3'``, ``'mxfp6_e3m2'``, ``'mxfp4_e2m1'``, ``'mxint8'``.
    axis : int
        The axis along which blocks run.
    block : int, optional
        Block size (the format's, 32, when None).
    scale_rule : ScaleRule or str
    rounding : Rounding or str
        How elements round (the scale rule alone chooses the scale).
    rng : generator or int, optional
    counts : Counts, optional
        ``saturated``: elements clamped to the element's largest value, and blocks whose exponent was
        clipped to 127; ``flushed``: nonzero values whose element code is zero.

    Returns
    -------
    MXTensor
    """
    fmt = as_mx(fmt, block)
    scale_rule = parse_enum(ScaleRule, scale_rule)
    x = exact_float(x, "MX quantize")
    if x.ndim == 0:
        x = x.reshape(1)
    axis = as_int(axis, "axis")
    if not -x.ndim <= axis < x.ndim:
        raise InputError(f"axis {axis} is out of range for an array of {x.ndim} dimension(s)")
    axis %= x.ndim
    b, n = blocks_of(x.astype(np.float64), axis, fmt.block)
    nonfinite = ~np.isfinite(b).all(axis=-1)
    amax = np.max(np.abs(np.where(np.isfinite(b), b, 0.0)), axis=-1)
    zero = amax == 0
    e = shared_exponent(np.where(zero, 1.0, amax), fmt, scale_rule)
    high = (e > EMAX) & ~zero & ~nonfinite
    e = np.where(zero, EMIN, np.clip(e, EMIN, EMAX))
    v = np.ldexp(np.where(np.isfinite(b), b, 0.0), -e[..., None])
    codes = encode_elements(v, fmt.element, rounding, rng, counts)
    codes = np.where(nonfinite[..., None], 0, codes).astype(np.uint8)
    scales = np.where(nonfinite, SCALE_NAN, e + SCALE_BIAS).astype(np.uint8)
    if counts is not None:
        counts.saturated += int(np.count_nonzero(high))
    codes = codes.reshape(codes.shape[:-2] + (-1,))[..., :n]
    return MXTensor(np.ascontiguousarray(np.moveaxis(codes, -1, axis)),
                    np.ascontiguousarray(np.moveaxis(scales, -1, axis)), fmt, axis)


def scale_values(scales):
    """E8M0 scale codes as float64 values ``2**(code - 127)``, NaN for 0xFF."""
    s = np.asarray(scales)
    if s.dtype != np.uint8:
        raise InputTypeError(f"E8M0 scales are uint8 codes, got dtype {s.dtype}")
    return np.where(s == SCALE_NAN, np.nan, np.ldexp(1.0, s.astype(np.int64) - SCALE_BIAS))


def dequantize(t, dtype=np.float64):
    """The values an :class:`MXTensor` holds: element value times its block's scale (exact in float64)."""
    fmt, axis = t.fmt, t.axis
    codes = np.asarray(t.codes)
    if codes.dtype != np.uint8:
        raise InputTypeError(f"MX element codes are uint8, got dtype {codes.dtype}")
    el = decode_elements(codes, fmt.element)
    b, n = blocks_of(el, axis, fmt.block)
    s = np.moveaxis(scale_values(t.scales), axis, -1)
    if s.shape != b.shape[:-1]:
        raise InputError(f"scales of shape {np.shape(t.scales)} do not fit codes of shape {codes.shape} in blocks "
                         f"of {fmt.block} along axis {axis}")
    out = (b * s[..., None]).reshape(b.shape[:-2] + (-1,))[..., :n]
    return np.moveaxis(out, -1, axis).astype(dtype)


__all__ = ["ScaleRule", "MXFormat", "MXTensor", "FORMATS", "INT8", "as_mx", "shared_exponent", "quantize",
           "dequantize", "scale_values", "encode_elements", "decode_elements", "blocks_of", "first_index"]
