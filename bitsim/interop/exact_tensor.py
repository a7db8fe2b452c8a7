"""Exact tensors of the ``exact`` semantics: integer codes times an exact rational scale.

An :class:`Exact` tensor holds ``codes`` (int64, or an object array of Python ints when a value could
leave int64) and ``scale``, an object array of :class:`fractions.Fraction` that broadcasts against the
codes (one value, or one per channel). Its value is ``codes * scale`` in real arithmetic, with no
rounding anywhere. :func:`round_ratio` rounds a ratio of integers by each of QONNX's seven rounding
modes exactly, and :func:`to_float32` rounds an exact value to float32 once (to nearest, ties to even).
"""

from dataclasses import dataclass, field
from fractions import Fraction
from math import gcd

import numpy as np

from ..errors import InputError
from ..kernels.operands import max_abs

INT64_SAFE = 1 << 62  # magnitudes below this are kept in int64; sums of two stay inside int64
ROUNDING_MODES = ("ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN")


def as_codes(values):
    """Integer ``values`` as a NumPy integer array when every magnitude is below 2**62 (signed integer arrays
    are kept as they are, unsigned and bool ones become int64), else as Python ints (object)."""
    values = np.asarray(values)
    if values.dtype == object:
        return values.astype(np.int64) if max_abs(values) < INT64_SAFE else values
    if values.dtype in (np.int8, np.int16, np.int32, np.int64):
        return values
    return values.astype(np.int64)


def widen(a):
    """``a`` as an object array of Python ints."""
    return np.asarray(a).astype(object)


def multiply(a, b):
    """Exact element-wise product of integer arrays (int64 when the bound allows, else Python ints)."""
    ma, mb = max_abs(a), max_abs(b)
    if ma * mb < INT64_SAFE and max(ma, mb) < INT64_SAFE:  # zeros times a huge factor: still no int64 operand
        return np.multiply(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
    return as_codes(np.multiply(widen(a), widen(b)))


def add(a, b):
    """Exact element-wise sum of integer arrays."""
    if max_abs(a) + max_abs(b) < INT64_SAFE:
        return np.add(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
    return as_codes(np.add(widen(a), widen(b)))


class NonFiniteError(InputError):
    """A :class:`NonFinite` constant used where the exact level has no rule for inf or NaN; the message names
    the constant (and the node)."""


def refuse_nonfinite(x, what):
    """Raise :class:`InputError` naming ``what`` (e.g. ``"input 'x'"``) when the float array ``x`` holds inf or NaN."""
    x = np.asarray(x)
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise InputError(f"the exact semantics needs finite values; {what} holds inf or NaN: run it at the "
                         "reference level (semantics='reference')")


def fractions(x, what="this tensor"):
    """An object array of the exact Fractions of a float (or int) array's values (``what`` names it in the
    error on inf or NaN)."""
    x = np.asarray(x)
    refuse_nonfinite(x, what)
    out = np.empty(x.shape, dtype=object)
    flat = out.reshape(-1)
    for i, v in enumerate(x.reshape(-1).tolist()):
        flat[i] = Fraction(v)
    return out


def is_power_of_two(f):
    """True when the Fraction ``f`` is ``2**k`` for an integer ``k``."""
    n, d = f.numerator, f.denominator
    return n > 0 and n & (n - 1) == 0 and d & (d - 1) == 0


@dataclass
class Exact:
    """An exact tensor: ``codes * scale`` (see the module docstring).

    Attributes
    ----------
    codes : numpy.ndarray of int64 or object
    scale : numpy.ndarray of object (Fraction)
        Broadcastable against ``codes``, of the same number of dimensions or 0-d.
    """

    codes: np.ndarray
    scale: np.ndarray
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def shape(self):
        """The shape of the codes."""
        return self.codes.shape

    def scale_full(self):
        """The scale with as many dimensions as the codes."""
        s = np.asarray(self.scale, dtype=object)
        return s.reshape((1,) * (self.codes.ndim - s.ndim) + s.shape)

    def scalar_scale(self):
        """The one scale value when all elements share it, else None."""
        values = set(np.asarray(self.scale, dtype=object).reshape(-1).tolist())
        return next(iter(values)) if len(values) == 1 else None

    def positive(self):
        """True when every scale value is positive (then comparisons of values are comparisons of codes)."""
        return all(f > 0 for f in np.asarray(self.scale, dtype=object).reshape(-1).tolist())


@dataclass
class NonFinite:
    """A constant that holds inf or NaN, kept as its float values: only an op with a rule for such values
    (``MultiThreshold``'s thresholds: ``+inf`` never met, ``-inf`` always) takes it; the others refuse it.

    Its :attr:`codes` and scale do not exist: asking for them raises :class:`NonFiniteError` naming it.

    Attributes
    ----------
    values : numpy.ndarray of float
    name : str
        The tensor's ONNX name.
    """

    values: np.ndarray
    name: str
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    def refuse(self, node=None):
        """Raise the :class:`NonFiniteError` of a use of this constant that has no rule for inf or NaN."""
        where = "" if node is None else f", an input of node {node.name!r} ({node.op_type}),"
        raise NonFiniteError(f"the exact semantics needs finite values; the constant {self.name!r}{where} holds inf "
                         "or NaN, and only MultiThreshold's thresholds have a rule for them (docs/qonnx.md, "
                         "Level 2): run it at the reference level (semantics='reference')")

    @property
    def codes(self):
        """Refused (:meth:`refuse`)."""
        self.refuse()

    @property
    def scale(self):
        """Refused (:meth:`refuse`)."""
        self.refuse()

    def scale_full(self):
        """Refused (:meth:`refuse`)."""
        self.refuse()

    def scalar_scale(self):
        """Refused (:meth:`refuse`)."""
        self.refuse()

    def positive(self):
        """Refused (:meth:`refuse`)."""
        self.refuse()


def constant_of(value, name):
    """The exact tensor of a constant array, or a :class:`NonFinite` when it holds inf or NaN."""
    value = np.asarray(value)
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        return NonFinite(value, name)
    return exact_of_float(value)


def exact_of_float(x, what="this tensor"):
    """The exact tensor of a float array: integer codes times one power-of-two scale.

    Every float is ``m * 2**e`` with an integer ``m``; the common scale is ``2**min(e)``. ``what`` names the
    array in the error on inf or NaN.
    """
    x = np.asarray(x)
    if x.dtype.kind in "iub":
        return Exact(as_codes(x.astype(np.int64)), np.array(Fraction(1), dtype=object))
    refuse_nonfinite(x, what)
    if x.size and x.dtype.itemsize <= 4 and np.all(np.abs(x) < 2.0 ** 24) and np.all(x == np.trunc(x)):
        return Exact(x.astype(np.int32), np.array(Fraction(1), dtype=object))  # integer-valued: exact in int32
    x64 = x.astype(np.float64)
    nonzero = x64[x64 != 0]
    if nonzero.size == 0:
        return Exact(np.zeros(x.shape, np.int64), np.array(Fraction(1), dtype=object))
    mantissa, exponent = np.frexp(nonzero)
    # m * 2**(e - 53) is exact for every float64; the lowest set bit decides the common exponent
    ints = (mantissa * 2.0 ** 53).astype(np.int64)
    lowest_bit = (ints & -ints).astype(np.float64)  # a power of two, exact in float64
    trailing = np.frexp(lowest_bit)[1] - 1
    low = int((exponent - 53 + trailing).min())
    high = int(exponent.max())
    if high - low < 62:
        codes = np.ldexp(x64, -low)  # exact: every value is an integer below 2**62 after the shift
        return Exact(codes.astype(np.int64), np.array(Fraction(2) ** low, dtype=object))
    codes = np.array([int(Fraction(v) / Fraction(2) ** low) for v in x64.reshape(-1).tolist()], dtype=object)
    return Exact(as_codes(codes.reshape(x.shape)), np.array(Fraction(2) ** low, dtype=object))


def common_scale(scales):
    """A scale ``g`` (per element of the broadcast) such that every scale in ``scales`` is an integer
    multiple of ``g``: numerator gcd over denominator lcm."""
    arrays = np.broadcast_arrays(*[np.asarray(s, dtype=object) for s in scales])
    out = np.empty(arrays[0].shape, dtype=object)
    for idx in np.ndindex(out.shape):
        values = [a[idx] for a in arrays]
        num, den = 0, 1
        for v in values:
            num = gcd(num, v.numerator)
            den = den * v.denominator // gcd(den, v.denominator)
        out[idx] = Fraction(num, den) if num else Fraction(1)
    return out


def rescale(e, g):
    """The codes of ``e`` expressed in scale ``g`` (each scale of ``e`` an integer multiple of ``g``)."""
    factor = np.asarray(e.scale_full(), dtype=object) / np.asarray(g, dtype=object)
    ints = np.vectorize(lambda f: int(f) if f.denominator == 1 else None, otypes=[object])(factor)
    if any(v is None for v in ints.reshape(-1).tolist()):
        raise InputError("internal: rescale to a scale that does not divide the tensor's scale")
    return multiply(e.codes, as_codes(ints))


def reduce_scale(g):
    """``g`` as a small array: one value when all are equal."""
    g = np.asarray(g, dtype=object)
    values = set(g.reshape(-1).tolist())
    return np.array(next(iter(values)), dtype=object) if len(values) == 1 else g


def add_exact(a, b, sign=1):
    """``a + sign * b`` of two exact tensors, exactly (both rescaled to a common scale)."""
    g = reduce_scale(common_scale([a.scale_full(), b.scale_full()]))
    ca, cb = rescale(a, g), rescale(b, g)
    return Exact(add(ca, cb if sign > 0 else multiply(cb, np.int64(-1))), g)


def round_ratio(num, den, mode):
    """``num / den`` rounded to an integer by a QONNX rounding mode, exactly.

    Parameters
    ----------
    num, den : integer arrays (broadcast); ``den > 0``
    mode : str
        ``ROUND`` or ``HALF_EVEN`` (ties to even), ``CEIL``, ``FLOOR``, ``UP`` (away from zero),
        ``DOWN`` (toward zero), ``HALF_UP`` (ties away from zero), ``HALF_DOWN`` (ties toward zero).

    Returns
    -------
    numpy.ndarray of int64 or object
    """
    num, den = np.asarray(num), np.asarray(den)
    small = num.dtype != object and den.dtype != object and 2 * (max_abs(num) + max_abs(den)) < INT64_SAFE
    kind = np.int64 if small else object
    num, den = np.broadcast_arrays(num.astype(kind), den.astype(kind))
    mode = mode.upper()
    floor = num // den
    if mode == "FLOOR":
        out = floor
    elif mode == "CEIL":
        out = -((-num) // den)
    elif mode in ("ROUND", "HALF_EVEN"):
        twice = 2 * (num - floor * den)
        up = (twice > den) | ((twice == den) & (floor % 2 == 1))
        out = floor + np.asarray(up).astype(kind)
    else:
        negative = num < 0
        mag = np.where(negative, -num, num)
        if mode == "UP":
            m = -((-mag) // den)
        elif mode == "DOWN":
            m = mag // den
        elif mode == "HALF_UP":
            m = (2 * mag + den) // (2 * den)
        elif mode == "HALF_DOWN":
            m = -((-(2 * mag - den)) // (2 * den))
        else:
            raise InputError(f"unknown rounding mode {mode!r}; QONNX's modes are {', '.join(ROUNDING_MODES)}")
        out = np.where(negative, -m, m)
    return as_codes(out)


def nearest_float32(f):
    """The float32 nearest the Fraction ``f`` (ties to even), by exact comparison."""
    guess = np.float32(float(f))  # within one float32 step of the answer
    candidates = [guess, np.nextafter(guess, np.float32(np.inf)), np.nextafter(guess, np.float32(-np.inf))]
    candidates = [c for c in candidates if np.isfinite(c)]
    best = min(candidates, key=lambda c: (abs(Fraction(float(c)) - f),
                                          int(np.array(c, np.float32).view(np.uint32)) & 1))
    return np.float32(best)


def to_float32(e):
    """The value of exact tensor ``e`` rounded once to float32 (to nearest, ties to even).

    Fast path: when every scale is a float64 of ``b`` significant bits and every code is below
    ``2**(53 - b)`` in magnitude, ``codes * scale`` in float64 is exact, and the cast to float32 is
    then the one rounding. Otherwise each element is rounded from its exact Fraction. A :class:`NonFinite`
    constant gives its values as float32.
    """
    if isinstance(e, NonFinite):
        return np.asarray(e.values).astype(np.float32)
    scale = e.scale_full()
    flat = scale.reshape(-1).tolist()
    bits = 0
    for f in flat:
        if f.denominator & (f.denominator - 1) or abs(f.numerator) >= 1 << 53 or abs(f) > 2.0 ** 900:
            bits = None
            break
        bits = max(bits, abs(f.numerator).bit_length())
    if bits is not None and bits <= 1 and max_abs(e.codes) < 1 << 24 and scale.size == 1:
        # a power-of-two scale and codes below 2**24: both exact in float32, and so is their product
        factor = np.float32(float(flat[0])) if flat else np.float32(1)
        if np.isfinite(factor) and factor != 0:
            return np.asarray(e.codes).astype(np.float32) * factor
    if bits is not None and max_abs(e.codes) < 1 << (53 - bits):
        s64 = np.vectorize(float, otypes=[np.float64])(scale) if scale.size else scale.astype(np.float64)
        return (np.asarray(e.codes, dtype=np.float64) * s64).astype(np.float32)
    return round_to_float32(e.codes, scale)


def round_to_float32(codes, scale):
    """``codes * scale`` (integers times Fractions) rounded once to float32, ties to even.

    A float64 estimate ``v`` of each value is within 3 float64 steps of it; its float32 rounding is the
    right answer unless ``v`` lies within ``2**-45 * |v|`` of a midpoint between two float32 values (or
    float32's range or subnormals are involved): only those elements are rounded from their exact Fraction.
    """
    scale = np.asarray(scale, dtype=object)
    codes_f = np.asarray(codes, dtype=np.float64) if np.asarray(codes).dtype != object else \
        np.array([float(c) for c in np.asarray(codes).reshape(-1).tolist()], np.float64).reshape(np.shape(codes))
    scale_f = np.vectorize(float, otypes=[np.float64])(scale) if scale.size else scale.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        v = codes_f * scale_f
        r = v.astype(np.float32)
        up = np.nextafter(r, np.float32(np.inf)).astype(np.float64)
        down = np.nextafter(r, np.float32(-np.inf)).astype(np.float64)
        r64 = r.astype(np.float64)
        near = np.minimum(np.abs(v - (r64 + up) / 2), np.abs(v - (r64 + down) / 2))
        doubtful = ~np.isfinite(near) | ~np.isfinite(r) | (near <= np.abs(v) * 2.0 ** -45) | \
            (np.abs(v) < 2.0 ** -120) | (np.abs(codes_f) >= 2.0 ** 1000)
    doubtful &= np.broadcast_to(np.asarray(codes_f) != 0, doubtful.shape)
    out = np.array(r, np.float32)
    if doubtful.any():
        wide, full = np.broadcast_arrays(widen(codes), scale)
        for idx in zip(*np.nonzero(doubtful)):
            out[idx] = nearest_float32(wide[idx] * full[idx])
    return out


def exact_values(e):
    """An object array of the exact Fraction values of ``e`` (slow; for reports and tests)."""
    codes, scale = np.broadcast_arrays(widen(e.codes), e.scale_full())
    return codes * scale


__all__ = ["Exact", "NonFinite", "NonFiniteError", "ROUNDING_MODES", "exact_of_float", "constant_of",
           "refuse_nonfinite", "add_exact", "round_ratio", "to_float32", "fractions", "is_power_of_two",
           "common_scale", "rescale", "reduce_scale", "multiply", "add", "as_codes", "max_abs", "exact_values",
           "nearest_float32", "widen"]
