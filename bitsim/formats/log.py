"""Log code: a sign bit and a two's-complement exponent, i.e. a signed power of two, in one byte.

The rule (``docs/formats.md``, "Log code"), for ``exp_bits = w`` (7 by default, 8 bits in all):

* code bit ``w`` is the sign (1 = negative); bits ``w-1 .. 0`` hold the exponent field ``f``
  in two's complement; the bits above ``w`` are 0. Codes are stored as uint8.
* the field value ``-2**(w-1)`` (pattern ``1 0...0``) is reserved for zero, so the code means
  ``(-1)**sign * 2**(f + exp_offset)`` for ``f`` in ``-2**(w-1)+1 .. 2**(w-1)-1``, and ``±0``
  for the reserved field. For w = 7: exponents -63..63, +0 = 0x40, -0 = 0xC0.
* encoding reads the IEEE-754 float32 fields of ``x``: ``E = exponent - 127`` and the 23-bit
  mantissa ``M`` (subnormals are normalised first, so ``E = floor(log2|x|)`` exactly); the
  mantissa only decides whether to round the exponent up to ``E + 1``:

  ==============  ======================================================================
  LINEAR          up iff ``M >= 2**22`` (the mantissa's MSB; nearest power in the linear
                  domain, ties ``1.5 * 2**E`` go up)
  LOG             up iff ``1.M >= sqrt(2)``, i.e. ``M >= 3474676`` (nearest in the log domain,
                  ``round(log2|x|)``; no ties exist)
  TRUNCATE        never (``floor(log2|x|)``)
  STOCHASTIC      up iff ``(u >> 9) < M`` for a uint32 draw ``u`` (probability ``M / 2**23``)
  ==============  ======================================================================

* exponents above the largest are handled by ``overflow`` (saturate, counted, or error),
  below the smallest by ``underflow`` (flush to a signed zero or saturate, counted, or error).
* NaN and infinity raise by default; ``nonfinite='saturate'`` maps ±inf to the largest code.

Inputs of other float dtypes are first converted to float32 (round to nearest even).
"""

import math
import re
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ..errors import InputError, InputTypeError, RangeError
from .modes import (Counts, NonFinite, Overflow, Underflow, as_format, as_int, check_range, first_index, parse_enum,
                    set_fields)
from .rng import as_rng

LOG_SQRT2_THRESHOLD = math.isqrt(2**47) + 1 - 2**23
FLT_MAX_BITS = 0x7F7FFFFF


class LogRounding(Enum):
    """How the float32 mantissa rounds the exponent; see the module docstring."""

    LINEAR = "linear"
    LOG = "log"
    TRUNCATE = "truncate"
    STOCHASTIC = "stochastic"


@dataclass(frozen=True)
class LogFormat:
    """A log (signed power of two) code.

    Parameters
    ----------
    exp_bits : int
        Width of the two's-complement exponent field, 2..7; the code has ``1 + exp_bits`` bits.
    exp_offset : int
        Added to the field to give the exponent, so the window can be moved (default 0).
        Both are ints or NumPy integers; floats and bools are refused, never truncated.
    rounding : LogRounding or str
    overflow : Overflow or str
        SATURATE (default) or ERROR; WRAP is not meaningful for exponents.
    underflow : Underflow or str
        FLUSH (default), SATURATE or ERROR.
    nonfinite : NonFinite or str
        ERROR (default) or SATURATE.

    Examples
    --------
    >>> fmt = LogFormat()
    >>> hex(int(encode(np.float32(0.3), fmt)))
    '0x7e'
    >>> float(decode(0x7E, fmt))
    0.25
    """

    exp_bits: int = 7
    exp_offset: int = 0
    rounding: LogRounding = LogRounding.LINEAR
    overflow: Overflow = Overflow.SATURATE
    underflow: Underflow = Underflow.FLUSH
    nonfinite: NonFinite = NonFinite.ERROR

    def __post_init__(self):
        exp_bits, exp_offset = as_int(self.exp_bits, "exp_bits"), as_int(self.exp_offset, "exp_offset")
        check_range(exp_bits, "exp_bits", 2, 7, " (the code has 1 + exp_bits <= 8 bits)")
        set_fields(self, exp_bits=exp_bits, exp_offset=exp_offset, rounding=parse_enum(LogRounding, self.rounding),
                   overflow=parse_enum(Overflow, self.overflow), underflow=parse_enum(Underflow, self.underflow),
                   nonfinite=parse_enum(NonFinite, self.nonfinite))
        if self.overflow is Overflow.WRAP:
            raise InputError("a log code cannot wrap its exponent; use overflow='saturate' or 'error'")
        if self.emin < -149 or self.emax > 127:
            raise InputError(
                f"exponents {self.emin}..{self.emax} leave float32's range -149..127; choose a smaller exp_offset"
            )

    @property
    def bits(self):
        return 1 + self.exp_bits

    @property
    def emin(self):
        return self.exp_offset - (1 << (self.exp_bits - 1)) + 1

    @property
    def emax(self):
        return self.exp_offset + (1 << (self.exp_bits - 1)) - 1

    @property
    def zero_field(self):
        """The reserved exponent field pattern meaning zero (``1 0...0``)."""
        return 1 << (self.exp_bits - 1)

    @property
    def name(self):
        return f"log{self.bits}"

    def zero_code(self, negative=False):
        return (int(negative) << self.exp_bits) | self.zero_field

    def __repr__(self):
        return (
            f"LogFormat(exp_bits={self.exp_bits}, exp_offset={self.exp_offset})  "
            f"# {self.name}: ±2^{self.emin}..±2^{self.emax}, {self.rounding.value}, "
            f"{self.overflow.value}/{self.underflow.value}"
        )

    def replace(self, **changes):
        fields = dict(exp_bits=self.exp_bits, exp_offset=self.exp_offset, rounding=self.rounding,
                      overflow=self.overflow, underflow=self.underflow, nonfinite=self.nonfinite)
        fields.update(changes)
        return LogFormat(**fields)


def parse_log(spec, **options):
    """Parse ``'log8'`` (``'logN'``: an N-bit log code, N in 3..8, i.e. ``exp_bits = N - 1``)."""
    m = re.fullmatch(r"log(\d+)", str(spec).strip().lower())
    if not m:
        raise InputError(f"cannot parse log format {spec!r}; write it as 'log8' (an N-bit code, N in 3..8)")
    width = int(m.group(1))
    if not 3 <= width <= 8:
        raise InputError(f"log codes have 3..8 bits, got {spec!r}")
    return LogFormat(exp_bits=width - 1, **options)


def as_log(fmt):
    """Return ``fmt`` as a :class:`LogFormat`, parsing a name such as ``'log8'``."""
    return as_format(fmt, LogFormat, parse_log, "log8", "pass bitsim.formats.LogFormat(...)")


def float32_fields(x):
    """Split float32 values into (sign, biased exponent, mantissa) integer arrays."""
    bits = np.array(x, dtype=np.float32).view(np.uint32).astype(np.int64)
    return bits >> 31, (bits >> 23) & 0xFF, bits & 0x7FFFFF


def exponent_mantissa(biased, mantissa):
    """``(E, M)`` with ``|x| = (1 + M / 2**23) * 2**E`` for finite nonzero float32, subnormals normalised."""
    sub = (biased == 0) & (mantissa != 0)
    lead = np.frexp(np.where(sub, mantissa, 1).astype(np.float64))[1] - 1  # index of the leading 1
    e = np.where(sub, lead - 149, biased - 127)
    m = np.where(sub, (mantissa << np.maximum(23 - lead, 0)) & 0x7FFFFF, mantissa)
    return e, m


def _round_up(m, rounding, rng):
    if rounding is LogRounding.LINEAR:
        return m >= (1 << 22)
    if rounding is LogRounding.LOG:
        return m >= LOG_SQRT2_THRESHOLD
    if rounding is LogRounding.TRUNCATE:
        return np.zeros(m.shape, dtype=bool)
    u = as_rng(rng).uint32(m.size).astype(np.int64).reshape(m.shape)
    return (u >> 9) < m


def encode(x, fmt=LogFormat(), rng=None, counts=None):
    """Encode real values as log codes (uint8), by the rule of the module docstring.

    Parameters
    ----------
    x : array_like of float (converted to float32)
    fmt : LogFormat
    rng : generator or int, optional
        Needed for ``LogRounding.STOCHASTIC``; one draw per element, row-major.
    counts : Counts, optional
        Receives saturated (overflow, infinities) and flushed (underflow) counts.

    Returns
    -------
    numpy.ndarray of uint8
    """
    fmt = as_log(fmt)
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise InputTypeError(
            f"log encode expects a real array, got dtype {x.dtype}; convert it with np.asarray(x, float)"
        )
    with np.errstate(over="ignore", under="ignore"):
        sign, biased, mantissa = float32_fields(x)
    nonfinite = biased == 0xFF
    tiny = None
    if x.dtype.kind == "f" and x.dtype != np.float32:
        # finite values beyond float32's range become ±inf, nonzero ones below it ±0: they overflow and underflow
        nonfinite &= ~np.isfinite(x)
        tiny = (biased == 0) & (mantissa == 0) & (x != 0)
    if nonfinite.any():
        nan = nonfinite & (mantissa != 0)
        if nan.any():
            raise InputError(f"NaN at index {first_index(nan)} has no log code; remove NaN before encoding")
        if fmt.nonfinite is NonFinite.ERROR:
            raise InputError(
                f"infinity at index {first_index(nonfinite)}; "
                "remove it or use nonfinite='saturate' to map it to ±2^emax"
            )
    zero = (biased == 0) & (mantissa == 0)
    e, m = exponent_mantissa(biased, mantissa)
    e = e + _round_up(m, fmt.rounding, rng)
    if tiny is not None:
        zero &= ~tiny
        e = np.where(tiny, fmt.emin - 1, e)
    high = (e > fmt.emax) & ~zero | nonfinite
    low = (e < fmt.emin) & ~zero & ~nonfinite
    if high.any():
        if fmt.overflow is Overflow.ERROR and (high & ~nonfinite).any():
            raise RangeError(
                f"{int(np.count_nonzero(high))} value(s) above 2^{fmt.emax} (first at index {first_index(high)}); "
                "use overflow='saturate', a larger exp_offset or more exp_bits"
            )
        e = np.where(high, fmt.emax, e)
        if counts is not None:
            counts.saturated += int(np.count_nonzero(high))
    if low.any():
        if fmt.underflow is Underflow.ERROR:
            raise RangeError(
                f"{int(np.count_nonzero(low))} nonzero value(s) below 2^{fmt.emin} "
                f"(first at index {first_index(low)}); "
                "use underflow='flush' or 'saturate', a smaller exp_offset or more exp_bits"
            )
        if fmt.underflow is Underflow.FLUSH:
            zero = zero | low
            if counts is not None:
                counts.flushed += int(np.count_nonzero(low))
        else:
            e = np.where(low, fmt.emin, e)
            if counts is not None:
                counts.saturated += int(np.count_nonzero(low))
    field = np.where(zero, fmt.zero_field, (e - fmt.exp_offset) & ((1 << fmt.exp_bits) - 1))
    return ((sign << fmt.exp_bits) | field).astype(np.uint8)


def split(codes, fmt=LogFormat()):
    """Split codes into ``(sign, exponent, is_zero)``: sign 0/1, exponent int16, zero flag.

    The exponent of a zero code is reported as ``fmt.emin - 1``.
    """
    fmt = as_log(fmt)
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu":
        raise InputTypeError(f"expected uint8 log codes, got {codes.dtype}; encode with bitsim.formats.log.encode(...)")
    c = codes.astype(np.int64)
    if ((c < 0) | (c >> fmt.bits != 0)).any():
        bad = first_index((c < 0) | (c >> fmt.bits != 0))
        raise InputError(f"code {int(c[bad])} at index {bad} does not fit the {fmt.bits}-bit {fmt.name} code")
    sign = (c >> fmt.exp_bits) & 1
    field = c & ((1 << fmt.exp_bits) - 1)
    zero = field == fmt.zero_field
    signed = np.where(field >= fmt.zero_field, field - (1 << fmt.exp_bits), field)
    exponent = np.where(zero, fmt.emin - 1, signed + fmt.exp_offset)
    return sign.astype(np.uint8), exponent.astype(np.int16), zero


def decode(codes, fmt=LogFormat()):
    """Decode log codes to float32: ``±2**exponent``, or ``±0.0`` for the zero codes (exact)."""
    sign, exponent, zero = split(codes, fmt)
    magnitude = np.where(zero, 0.0, np.ldexp(1.0, exponent.astype(np.int64)))
    return np.where(sign == 1, -magnitude, magnitude).astype(np.float32)


def multiply_float32(x, codes, fmt=LogFormat(), counts=None):
    """Multiply float32 values by log-coded powers of two by adding the exponent to the exponent field.

    Rule: the sign bits XOR; a zero operand gives a signed zero; otherwise the code's exponent is
    added to the biased exponent field of ``x``, keeping the mantissa. Where ``x`` and the result are
    normal this equals float32 ``x * 2**e`` bit for bit. A subnormal ``x`` or a result below the normal
    range becomes a signed zero (counted as flushed); a result above it becomes ±FLT_MAX (counted as
    saturated, or ``OverflowError`` when ``fmt.overflow`` is ERROR). NaN and infinity raise.

    Parameters
    ----------
    x : array_like of float32
    codes : array_like of uint8
        Log codes of ``fmt``, broadcast against ``x``.
    fmt : LogFormat
    counts : Counts, optional
        Receives the flushed and saturated products.

    Returns
    -------
    numpy.ndarray of float32

    Raises
    ------
    InputTypeError
        If ``x`` is not real.
    InputError
        For NaN or infinity in ``x``.
    RangeError
        For ``x`` beyond float32's range, or a product that overflows when ``fmt.overflow`` is ERROR.
    """
    fmt = as_log(fmt)
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise InputTypeError(f"multiply_float32 expects float32 values, got dtype {x.dtype}")
    with np.errstate(over="ignore"):
        xs, xe, xm = float32_fields(x)
    if (xe == 0xFF).any():
        idx = first_index(xe == 0xFF)
        if np.isfinite(x[idx]):
            raise RangeError(
                f"{float(x[idx])!r} at index {idx} is beyond float32's range; "
                "multiply_float32 multiplies float32 values, so scale or clip them into float32 first"
            )
        raise InputError(f"non-finite value at index {idx}; multiply_float32 takes finite floats")
    cs, e, czero = split(codes, fmt)
    xs, xe, xm, cs, e, czero = np.broadcast_arrays(xs, xe, xm, cs.astype(np.int64), e.astype(np.int64), czero)
    field = xe + e
    zero = czero | (xe == 0) | (field <= 0)
    flushed = ~czero & (((xe == 0) & (xm != 0)) | ((xe != 0) & (field <= 0)))
    over = ~zero & (field >= 0xFF)
    if over.any() and fmt.overflow is Overflow.ERROR:
        raise RangeError(f"product overflows float32 at index {first_index(over)}; use overflow='saturate'")
    if counts is not None:
        counts.flushed += int(np.count_nonzero(flushed))
        counts.saturated += int(np.count_nonzero(over))
    magnitude = np.where(zero, 0, np.where(over, FLT_MAX_BITS, (field << 23) | xm))
    bits = ((xs ^ cs) << 31) | magnitude
    return bits.astype(np.uint32).view(np.float32)
