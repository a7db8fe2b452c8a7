"""Minifloats: FP8 (E4M3, E5M2), FP6 (E2M3, E3M2), FP4 (E2M1), the E8M0 scale and any ExMy, as codes.

The rule (``docs/formats.md``, section 13): a code of ``1 + exp_bits + man_bits`` bits (no sign bit for
unsigned formats such as E8M0) holds a sign ``s``, an exponent field ``E`` and a mantissa field ``M``. A
field ``E > 0`` (or any ``E`` without subnormals) means ``(-1)**s * (1 + M / 2**man_bits) * 2**(E - bias)``;
``E == 0`` with subnormals means ``(-1)**s * (M / 2**man_bits) * 2**(1 - bias)``. The special codes are
named by two flags, as QONNX's ``FloatQuant`` names them: ``infinities`` (IEEE-like: the top exponent
field is reserved, mantissa 0 is +-Inf and every other mantissa NaN) and ``nans`` alone (OCP "fn": only
the all-ones code of each sign is NaN). A format without zero (E8M0) decodes every finite code as a
power of two.

Encoding rounds a real value to one of its two representable neighbours by a :class:`Rounding` mode,
then applies a :class:`FloatOverflow` mode to magnitudes beyond the largest finite value. The
neighbours are read from the sorted table of the format's values, extended by the value the next code
would have with an unbounded exponent (480 for E4M3), so that "rounds beyond the largest finite value"
means what IEEE-754 says. Events are counted in a :class:`~bitsim.formats.modes.Counts`: ``saturated``
counts values whose rounded magnitude exceeded the largest finite value (clamped or sent to Inf/NaN)
and infinities clamped; ``flushed`` counts nonzero values that became zero.
"""

import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

import numpy as np

from ..errors import InputError, InputTypeError, RangeError
from .modes import Rounding, as_format, as_int, check_range, first_index, parse_enum, set_fields
from .rng import as_rng, bernoulli


class FloatOverflow(Enum):
    """What encoding does with a magnitude that rounds beyond the largest finite value, and with +-Inf.

    SATURATE   clamp to +-the largest finite value (OCP's saturating conversion; the MX rule), counted
    NONFINITE  IEEE-754: +-Inf where the format has infinities, else NaN; a directed rounding mode that
               rounds the magnitude down still gives +-max (as IEEE's overflow rule); counted
    ERROR      raise :class:`~bitsim.errors.RangeError`
    """

    SATURATE = "saturate"
    NONFINITE = "nonfinite"
    ERROR = "error"


@dataclass(frozen=True)
class MinifloatFormat:
    """A floating-point format of at most 16 bits.

    Parameters
    ----------
    exp_bits : int
        Exponent field width, 1..8.
    man_bits : int
        Mantissa (trailing significand) field width, 0..10.
    bias : int, optional
        Exponent bias; ``2**(exp_bits - 1) - 1`` when None.
    subnormals : bool
        Exponent field 0 means subnormal numbers (else normal numbers with exponent ``-bias``).
    infinities : bool
        The top exponent field is reserved as in IEEE-754 (needs ``nans``).
    nans : bool
        Without ``infinities``: the all-ones code of each sign is NaN (OCP "fn" formats).
    signed : bool
        A sign bit (E8M0 has none).
    zero : bool
        Code 0 (and the negative one) means zero; E8M0 has no zero.
    name : str, optional
        How the format is named, e.g. ``'e4m3'``.

    Examples
    --------
    >>> parse_minifloat("e4m3")
    MinifloatFormat('e4m3': 1+4+3 bits, bias 7, subnormals, NaN 0x7f/0xff, max 448.0)
    """

    exp_bits: int
    man_bits: int
    bias: int = None
    subnormals: bool = True
    infinities: bool = False
    nans: bool = False
    signed: bool = True
    zero: bool = True
    name: str = None

    def __post_init__(self):
        e, m = as_int(self.exp_bits, "exp_bits"), as_int(self.man_bits, "man_bits")
        check_range(e, "exp_bits", 1, 8)
        check_range(m, "man_bits", 0, 10)
        bias = (1 << (e - 1)) - 1 if self.bias is None else as_int(self.bias, "bias")
        check_range(bias, "bias", -(1 << 10), 1 << 10)
        if int(self.signed) + e + m > 16:
            raise InputError(f"a minifloat has at most 16 bits, got {int(self.signed) + e + m}")
        if self.infinities and not self.nans:
            raise InputError("infinities reserve the top exponent field, whose other codes are NaN; pass nans=True")
        if self.infinities and e < 2:
            raise InputError("infinities need an exponent field of at least 2 bits")
        name = self.name or f"e{e}m{m}"
        set_fields(self, exp_bits=e, man_bits=m, bias=bias, subnormals=bool(self.subnormals),
                   infinities=bool(self.infinities), nans=bool(self.nans), signed=bool(self.signed),
                   zero=bool(self.zero), name=name)

    @property
    def bits(self):
        return int(self.signed) + self.exp_bits + self.man_bits

    @property
    def dtype(self):
        return np.dtype(np.uint8 if self.bits <= 8 else np.uint16)

    @property
    def sign_bit(self):
        """The sign bit's mask, 0 for unsigned formats."""
        return (1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self):
        """The largest finite value."""
        return float(np.nanmax(np.where(np.isfinite(values(self)), values(self), np.nan)))

    @property
    def min_positive(self):
        """The smallest positive value."""
        v = values(self)
        return float(np.min(v[np.isfinite(v) & (v > 0)]))

    @property
    def emax(self):
        """The exponent of the largest finite value, ``floor(log2(max))`` (E4M3 8, E2M1 2)."""
        return int(np.frexp(self.max)[1]) - 1

    def __repr__(self):
        special = ("Inf/NaN top exponent" if self.infinities else
                   f"NaN 0x{(1 << self.bits) - 1 - self.sign_bit:x}" + (f"/0x{(1 << self.bits) - 1:x}" if self.signed
                                                                        else "") if self.nans else "no Inf/NaN")
        return (f"MinifloatFormat({self.name!r}: {int(self.signed)}+{self.exp_bits}+{self.man_bits} bits, bias "
                f"{self.bias}, {'subnormals' if self.subnormals else 'no subnormals'}, {special}"
                f"{'' if self.zero else ', no zero'}, max {self.max!r})")


E4M3 = MinifloatFormat(4, 3, nans=True, name="e4m3")
E5M2 = MinifloatFormat(5, 2, infinities=True, nans=True, name="e5m2")
E2M3 = MinifloatFormat(2, 3, name="e2m3")
E3M2 = MinifloatFormat(3, 2, name="e3m2")
E2M1 = MinifloatFormat(2, 1, name="e2m1")
E8M0 = MinifloatFormat(8, 0, bias=127, subnormals=False, nans=True, signed=False, zero=False, name="e8m0")
FORMATS = {f.name: f for f in (E4M3, E5M2, E2M3, E3M2, E2M1, E8M0)}


def parse_minifloat(spec, **options):
    """Return the format named ``spec``: one of :data:`FORMATS`, or ``'eXmY'`` for another minifloat.

    A name outside :data:`FORMATS` is an IEEE-like format (bias ``2**(X-1)-1``, subnormals, infinities
    and NaNs) unless ``options`` say otherwise, e.g. ``parse_minifloat('e3m4', infinities=False,
    nans=False)``.
    """
    text = str(spec).strip().lower()
    if text in FORMATS and not options:
        return FORMATS[text]
    m = re.fullmatch(r"e(\d+)m(\d+)", text)
    if not m:
        raise InputError(f"unknown minifloat {spec!r}; choose one of {', '.join(FORMATS)} or write 'eXmY'")
    if text in FORMATS:
        base = FORMATS[text]
        fields = dict(exp_bits=base.exp_bits, man_bits=base.man_bits, bias=base.bias, subnormals=base.subnormals,
                      infinities=base.infinities, nans=base.nans, signed=base.signed, zero=base.zero)
    else:
        fields = dict(exp_bits=int(m.group(1)), man_bits=int(m.group(2)), infinities=True, nans=True)
    fields.update(options)
    return MinifloatFormat(**fields)


def as_minifloat(fmt):
    """Return ``fmt`` as a :class:`MinifloatFormat`, parsing a name such as ``'e4m3'``."""
    return as_format(fmt, MinifloatFormat, parse_minifloat, "e4m3",
                     "pass bitsim.formats.minifloat.MinifloatFormat(exp_bits, man_bits, ...) or a name like 'e4m3'")


@lru_cache(maxsize=64)
def _tables(fmt):
    """(value of every code, sorted non-negative magnitudes extended by two stand-ins, their codes)."""
    n = 1 << fmt.bits
    codes = np.arange(n, dtype=np.int64)
    s = (codes & fmt.sign_bit) != 0 if fmt.signed else np.zeros(n, bool)
    e = (codes >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)
    m = codes & ((1 << fmt.man_bits) - 1)
    sub = fmt.subnormals & (e == 0)
    v = np.where(sub, np.ldexp(m.astype(np.float64), 1 - fmt.bias - fmt.man_bits),
                 np.ldexp((m + (1 << fmt.man_bits)).astype(np.float64), e - fmt.bias - fmt.man_bits))
    if fmt.zero:
        v = np.where((e == 0) & (m == 0), 0.0, v)
    top = (1 << fmt.exp_bits) - 1
    if fmt.infinities:
        v = np.where(e == top, np.where(m == 0, np.inf, np.nan), v)
    elif fmt.nans:
        v = np.where((e == top) & (m == (1 << fmt.man_bits) - 1), np.nan, v)
    v = np.where(s, -v, v)
    pos = ~s & np.isfinite(v)
    mags, mcodes = v[pos], codes[pos]
    order = np.argsort(mags, kind="stable")
    mags, mcodes = mags[order], mcodes[order]
    step = np.ldexp(1.0, int(np.frexp(mags[-1])[1]) - 1 - fmt.man_bits)
    mags = np.concatenate([mags, [mags[-1] + step, np.inf]])
    mcodes = np.concatenate([mcodes, [mcodes[-1] + 1, mcodes[-1] + 2]])
    v.setflags(write=False)
    return v, mags, mcodes


def values(fmt):
    """The value of every code of ``fmt`` as float64 (NaN and +-Inf included), indexed by code."""
    return _tables(as_minifloat(fmt))[0]


def decode(codes, fmt, dtype=np.float64):
    """Decode codes to their values (exact in float64; float32 holds every value of an 8-bit format).

    Raises
    ------
    InputTypeError
        If the codes are not integers.
    RangeError
        If a code has more bits than the format.
    """
    fmt = as_minifloat(fmt)
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu":
        raise InputTypeError(f"decode expects integer codes, got dtype {codes.dtype}; encode values first")
    bad = (codes < 0) | (codes >= (1 << fmt.bits))
    if bad.any():
        idx = first_index(bad)
        raise RangeError(f"code {int(codes[idx])} at index {idx} is not a {fmt.bits}-bit {fmt.name} code")
    return values(fmt)[codes.astype(np.int64)].astype(dtype)


def _nan_code(fmt, neg):
    top = (1 << fmt.bits) - 1 - fmt.sign_bit
    if fmt.infinities:
        top = (((1 << fmt.exp_bits) - 1) << fmt.man_bits) | ((1 << fmt.man_bits) - 1)
    return np.where(neg, top | fmt.sign_bit, top)


def encode(x, fmt, rounding=Rounding.NEAREST_EVEN, overflow=FloatOverflow.SATURATE, rng=None, counts=None):
    """Encode real values as codes of ``fmt``.

    Parameters
    ----------
    x : array_like of float
        float16/32/64 values (integers are converted to float64 exactly up to 2**53).
    fmt : MinifloatFormat or str
    rounding : Rounding or str
        Which neighbour a value between two representable ones takes: ``nearest_even`` (ties to the even
        code), ``nearest_away``, ``nearest_up`` (ties toward +inf), ``toward_zero``, ``floor``, ``ceil``, or
        ``stochastic``: the larger magnitude with probability ``(|x| - lo) / (hi - lo)``, decided by one
        uint32 draw per element as ``u < floor(p * 2**32)`` (``bitsim.formats.rng``).
    overflow : FloatOverflow or str
    rng : generator or int, optional
        For ``stochastic`` rounding.
    counts : Counts, optional

    Returns
    -------
    numpy.ndarray of ``fmt.dtype``

    Raises
    ------
    InputError
        NaN for a format without NaN.
    RangeError
        Overflow under ``overflow='error'``.
    """
    fmt = as_minifloat(fmt)
    rounding = parse_enum(Rounding, rounding)
    overflow = parse_enum(FloatOverflow, overflow)
    x = np.asarray(x)
    if x.dtype.kind not in "fiu" or x.dtype.itemsize > 8:
        raise InputTypeError(f"encode expects real float or integer values, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if overflow is FloatOverflow.NONFINITE and not fmt.nans:
        raise InputError(f"{fmt.name} has no Inf or NaN; choose overflow='saturate' or 'error'")
    _, mags, mcodes = _tables(fmt)
    nan = np.isnan(x)
    if nan.any() and not fmt.nans:
        raise InputError(f"NaN at index {first_index(nan)}: {fmt.name} has no NaN; remove NaN before encoding")
    neg = np.signbit(x)
    a = np.where(nan, 0.0, np.abs(x))
    n_max = mags.size - 3  # index of the largest finite magnitude
    i = np.clip(np.searchsorted(mags, a, side="right") - 1, 0, mags.size - 2)
    lo, hi = mags[i], mags[i + 1]
    below = a < mags[0]  # only formats without zero
    exact = a == lo
    mid = lo + (hi - lo) / 2
    if rounding is Rounding.TOWARD_ZERO:
        up = np.zeros(a.shape, bool)
    elif rounding is Rounding.CEIL:
        up = ~exact & ~neg
    elif rounding is Rounding.FLOOR:
        up = ~exact & neg
    elif rounding is Rounding.NEAREST_EVEN:
        up = (a > mid) | ((a == mid) & ((mcodes[i] & 1) == 1))
    elif rounding is Rounding.NEAREST_AWAY:
        up = a >= mid
    elif rounding is Rounding.NEAREST_UP:
        up = (a > mid) | ((a == mid) & ~neg)
    else:
        with np.errstate(invalid="ignore"):
            p = np.where(np.isfinite(hi) & ~exact, (a - lo) / (hi - lo), 0.0)
        up = bernoulli(p, as_rng(rng)).astype(bool)
    j = np.where(up & ~exact, i + 1, i)
    j = np.where(below, 0, j)
    inf_in = np.isinf(a)
    over = (j > n_max) & ~inf_in
    sat_count = int(np.count_nonzero(below & (a > 0)))
    code = mcodes[np.minimum(j, n_max)]
    n_over = int(np.count_nonzero(over | inf_in))
    if n_over and overflow is FloatOverflow.ERROR:
        idx = first_index(over | inf_in)
        raise RangeError(f"{n_over} value(s) beyond {fmt.name}'s largest finite value {fmt.max!r} (first "
                         f"{x[idx]!r} at index {idx}); choose overflow='saturate' or 'nonfinite'")
    if overflow is FloatOverflow.NONFINITE:
        down = {Rounding.TOWARD_ZERO: np.ones(a.shape, bool), Rounding.FLOOR: ~neg, Rounding.CEIL: neg}
        keep = over & down.get(rounding, np.zeros(a.shape, bool))
        to_special = (over & ~keep) | inf_in
        if fmt.infinities:
            special = mcodes[n_max] + 1
            code = np.where(to_special, special, code)
        else:
            code = np.where(to_special, _nan_code(fmt, False), code)
    sat_count += n_over if overflow is FloatOverflow.SATURATE else int(np.count_nonzero(over))
    if fmt.signed:
        code = np.where(neg, code | fmt.sign_bit, code)
    if fmt.nans:
        code = np.where(nan, _nan_code(fmt, neg & fmt.signed), code)
    if not fmt.signed:  # unsigned: negatives and zero are outside
        outside = (neg | (a == 0)) & ~nan
        if outside.any():
            if overflow is FloatOverflow.ERROR:
                raise RangeError(f"{fmt.name} holds positive values only, got {x[first_index(outside)]!r} at index "
                                 f"{first_index(outside)}")
            code = np.where(outside, _nan_code(fmt, False) if overflow is FloatOverflow.NONFINITE else mcodes[0],
                            code)
            sat_count += int(np.count_nonzero(outside))
    if counts is not None:
        counts.saturated += sat_count
        if fmt.zero:
            counts.flushed += int(np.count_nonzero((a > 0) & ~inf_in & (j == 0)))
    return np.asarray(code).astype(fmt.dtype)


def quantize(x, fmt, rounding=Rounding.NEAREST_EVEN, overflow=FloatOverflow.SATURATE, rng=None, counts=None):
    """``decode(encode(x, ...))``: the values of ``x`` rounded to ``fmt``, as float64."""
    return decode(encode(x, fmt, rounding, overflow, rng, counts), fmt)


def fields(code, fmt):
    """``(sign, exponent field, mantissa field)`` of one code, as ints."""
    fmt = as_minifloat(fmt)
    code = int(code)
    sign = (code >> (fmt.bits - 1)) & 1 if fmt.signed else 0
    return sign, (code >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1), code & ((1 << fmt.man_bits) - 1)


__all__ = ["FloatOverflow", "MinifloatFormat", "FORMATS", "E4M3", "E5M2", "E2M3", "E3M2", "E2M1", "E8M0",
           "parse_minifloat", "as_minifloat", "values", "decode", "encode", "quantize", "fields"]
