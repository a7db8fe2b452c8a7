"""Minifloats: FP8 (E4M3, E5M2), FP6 (E2M3, E3M2), FP4 (E2M1), the E8M0 scale and any ExMy, as codes.

The rule (``docs/formats.md``, section 13): a code of ``1 + exp_bits + man_bits`` bits (no sign bit for
unsigned formats such as E8M0) holds a sign ``s``, an exponent field ``E`` and a mantissa field ``M``. A
field ``E > 0`` (or any ``E`` without subnormals) means ``(-1)**s * (1 + M / 2**man_bits) * 2**(E - bias)``;
``E == 0`` with subnormals means ``(-1)**s * (M / 2**man_bits) * 2**(1 - bias)``. The special codes are
named by two flags, as QONNX's ``FloatQuant`` names them: ``infinities`` (IEEE-like: the top exponent
field is reserved, mantissa 0 is +-Inf and every other mantissa NaN; encoding writes the quiet NaN, only
the mantissa's top bit set, E5M2 0x7e/0xfe, as ml_dtypes does) and ``nans`` alone (OCP "fn": only
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

import math
import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

import numba
import numpy as np

from ..errors import InputError, InputTypeError, RangeError
from .launch import launch
from .modes import Rounding, as_format, as_int, check_range, first_index, parse_enum, set_fields
from .rng import as_rng


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
        for flag in ("subnormals", "infinities", "nans", "signed", "zero"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise InputTypeError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        if self.name is not None and not isinstance(self.name, str):
            raise InputTypeError(f"name must be a string, got {self.name!r}")
        e, m = as_int(self.exp_bits, "exp_bits"), as_int(self.man_bits, "man_bits")
        check_range(e, "exp_bits", 1, 8)
        check_range(m, "man_bits", 0, 10)
        bias = (1 << (e - 1)) - 1 if self.bias is None else as_int(self.bias, "bias")
        check_range(bias, "bias", -(1 << 10), 1 << 10)
        if int(self.signed) + e + m > 16:
            raise InputError(f"a minifloat has at most 16 bits, got {int(self.signed) + e + m}")
        if self.infinities and not self.nans:
            raise InputError("infinities reserve the top exponent field, whose other codes are NaN; pass nans=True")
        if self.infinities and (e < 2 or m < 1):
            raise InputError("infinities need an exponent field of at least 2 bits and a mantissa bit (for NaN)")
        if (1 << e) - 1 - bias > 1022 or 1 - bias - m < -1074:
            raise InputError(f"bias {bias} puts e{e}m{m}'s values outside float64's range (2**-1074 .. 2**1023, "
                             f"which bitsim computes in); choose a bias between {(1 << e) - 1 - 1022} and {min(1 << 10, 1075 - m)}")
        name = self.name or f"e{e}m{m}"
        set_fields(self, exp_bits=e, man_bits=m, bias=bias, subnormals=bool(self.subnormals),
                   infinities=bool(self.infinities), nans=bool(self.nans), signed=bool(self.signed),
                   zero=bool(self.zero), name=name)

    @property
    def bits(self):
        """The code width: sign bit, exponent and mantissa fields."""
        return int(self.signed) + self.exp_bits + self.man_bits

    @property
    def dtype(self):
        """The dtype codes are held in: uint8 up to 8 bits, else uint16."""
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


OPTIONS = ("exp_bits", "man_bits", "bias", "subnormals", "infinities", "nans", "signed", "zero", "name")


def parse_minifloat(spec, **options):
    """Return the format named ``spec``: one of :data:`FORMATS`, or ``'eXmY'`` for another minifloat.

    A name outside :data:`FORMATS` is an IEEE-like format (bias ``2**(X-1)-1``, subnormals, infinities
    and NaNs) unless ``options`` say otherwise, e.g. ``parse_minifloat('e3m4', infinities=False,
    nans=False)``.
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise InputError(f"unknown minifloat option(s) {', '.join(unknown)}; the options are {', '.join(OPTIONS)}")
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


INT_EXACT = 1 << 53  # integers up to this magnitude convert to float64 exactly


def exact_float(x, what):
    """``x`` as float32 or float64 without rounding: float16 and integers become float64.

    Parameters
    ----------
    x : array_like of float or int
    what : str
        The caller, for the messages.

    Raises
    ------
    InputTypeError
        If the dtype is not a real float (at most 64 bits) or an integer.
    InputError
        An integer of magnitude above 2**53, which float64 would round (a second rounding before the format's).
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiu" or x.dtype.itemsize > 8:
        raise InputTypeError(f"{what} expects real float or integer values, got dtype {x.dtype}")
    if x.dtype.kind in "iu" and x.size:
        big = (x > INT_EXACT) if x.dtype.kind == "u" else ((x > INT_EXACT) | (x < -INT_EXACT))
        if big.any():
            idx = first_index(big)
            raise InputError(f"{what}: integer {int(x[idx])} at index {idx} is beyond 2**53 in magnitude, where "
                             "float64 (which bitsim rounds from) would round it first; round it yourself "
                             "(x.astype(numpy.float64)) if that is what you mean")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return x


def _nan_code(fmt, neg):
    top = (1 << fmt.bits) - 1 - fmt.sign_bit
    if fmt.infinities:
        top = (((1 << fmt.exp_bits) - 1) << fmt.man_bits) | (1 << (fmt.man_bits - 1))  # the quiet NaN
    return np.where(neg, top | fmt.sign_bit, top)


def encode(x, fmt, rounding=Rounding.NEAREST_EVEN, overflow=FloatOverflow.SATURATE, rng=None, counts=None):
    """Encode real values as codes of ``fmt``.

    Parameters
    ----------
    x : array_like of float
        float16/32/64 values, or integers of magnitude at most 2**53 (converted to float64 exactly).
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
        NaN for a format without NaN; an integer of magnitude above 2**53.
    RangeError
        Overflow under ``overflow='error'``.
    """
    fmt = as_minifloat(fmt)
    rounding = parse_enum(Rounding, rounding)
    overflow = parse_enum(FloatOverflow, overflow)
    x = exact_float(x, "encode")
    if overflow is FloatOverflow.NONFINITE and not fmt.nans:
        raise InputError(f"{fmt.name} has no Inf or NaN; choose overflow='saturate' or 'error'")
    if not fmt.nans:
        nan = np.isnan(x)
        if nan.any():
            raise InputError(f"NaN at index {first_index(nan)}: {fmt.name} has no NaN; remove NaN before encoding")
    _, mags, mcodes = _tables(fmt)
    flat = np.ascontiguousarray(x).reshape(-1)
    u = as_rng(rng).uint32(flat.size) if rounding is Rounding.STOCHASTIC else np.zeros(1, np.uint32)
    out = np.empty(flat.size, fmt.dtype)
    stats = np.zeros(STATS, np.int64)
    flags = np.zeros(flat.size if overflow is FloatOverflow.ERROR else 1, np.uint8)
    nan_pos = int(_nan_code(fmt, False))
    special = int(mcodes[mags.size - 3]) + 1 if fmt.infinities else nan_pos
    launch(_encode_kernel, flat.size, flat, mags, mcodes, MODE_CODES[rounding], OVERFLOW_CODES[overflow],
           fmt.sign_bit, fmt.signed, fmt.zero, nan_pos, special, u, out, stats, flags, min_work=1 << 16)
    if overflow is FloatOverflow.ERROR and (stats[2] or stats[3]):
        flags = flags.reshape(x.shape)
        if stats[2]:
            idx = first_index((flags & 1) != 0)
            raise RangeError(f"{int(stats[2])} value(s) beyond {fmt.name}'s largest finite value {fmt.max!r} (first "
                             f"{float(x[idx])!r} at index {idx}); choose overflow='saturate' or 'nonfinite'")
        idx = first_index((flags & 2) != 0)
        raise RangeError(f"{fmt.name} holds positive values only, got {float(x[idx])!r} at index {idx}; choose "
                         "overflow='saturate' (2**-127) or 'nonfinite' (NaN)")
    if counts is not None:
        counts.saturated += int(stats[0])
        counts.flushed += int(stats[1])
    return out.reshape(x.shape)


STATS = 4  # saturated, flushed, overflows under 'error', unsigned values outside the range
MODE_CODES = {Rounding.TOWARD_ZERO: 0, Rounding.CEIL: 1, Rounding.FLOOR: 2, Rounding.NEAREST_EVEN: 3,
              Rounding.NEAREST_AWAY: 4, Rounding.NEAREST_UP: 5, Rounding.STOCHASTIC: 6}
OVERFLOW_CODES = {FloatOverflow.SATURATE: 0, FloatOverflow.NONFINITE: 1, FloatOverflow.ERROR: 2}


@numba.njit(cache=True, parallel=True)
def _encode_kernel(x, mags, mcodes, mode, overflow, sign_bit, signed, zero, nan_pos, special, u, out, stats, flags):
    """One code per element by the module's rule; ``stats`` gets the four counts (see :data:`STATS`) and, under
    ``overflow='error'``, ``flags`` bit 0 marks overflows and bit 1 unsigned values outside the range."""
    size = mags.size
    n_max = size - 3
    sat = 0
    flushed = 0
    n_error = 0
    n_outside = 0
    for k in numba.prange(x.size):
        v = np.float64(x[k])
        isnan = v != v
        neg = math.copysign(1.0, v) < 0.0
        a = 0.0 if isnan else abs(v)
        first, last = 0, size
        while first < last:  # the first index whose magnitude exceeds a
            mid = (first + last) >> 1
            if mags[mid] <= a:
                first = mid + 1
            else:
                last = mid
        i = min(max(first - 1, 0), size - 2)
        lo, hi = mags[i], mags[i + 1]
        exact = a == lo
        up = False
        if mode == 1:
            up = not neg
        elif mode == 2:
            up = neg
        elif mode == 3:
            mid_v = lo + (hi - lo) / 2
            up = a > mid_v or (a == mid_v and (mcodes[i] & 1) == 1)
        elif mode == 4:
            up = a >= lo + (hi - lo) / 2
        elif mode == 5:
            mid_v = lo + (hi - lo) / 2
            up = a > mid_v or (a == mid_v and not neg)
        elif mode == 6 and not exact and hi < np.inf:
            p = min(max((a - lo) / (hi - lo), 0.0), 1.0)
            up = np.float64(u[k]) < math.floor(p * 4294967296.0)
        j = i + 1 if up and not exact else i
        if a < mags[0]:
            j = 0
            if a > 0.0:
                sat += 1
        inf_in = a == np.inf
        over = j > n_max and not inf_in
        code = mcodes[min(j, n_max)]
        if overflow == 0:
            if over or inf_in:
                sat += 1
        else:
            if over:
                sat += 1
            if over or inf_in:
                n_error += 1
                if overflow == 2:
                    flags[k] |= 1
            if overflow == 1:
                keep = over and (mode == 0 or (mode == 2 and not neg) or (mode == 1 and neg))
                if (over and not keep) or inf_in:
                    code = special
        if signed and neg:
            code |= sign_bit
        if isnan:
            code = nan_pos | (sign_bit if neg and signed else 0)
        if not signed and (neg or a == 0.0) and not isnan:
            n_outside += 1
            sat += 1
            if overflow == 2:
                flags[k] |= 2
            code = nan_pos if overflow == 1 else mcodes[0]
        if zero and a > 0.0 and not inf_in and j == 0:
            flushed += 1
        out[k] = code
    stats[0] = sat
    stats[1] = flushed
    stats[2] = n_error
    stats[3] = n_outside


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
           "parse_minifloat", "as_minifloat", "values", "decode", "encode", "exact_float", "quantize", "fields"]
