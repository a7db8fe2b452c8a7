"""Rounding and overflow modes shared by the number formats, the counts they keep, and the checks of
parameters and values they share."""

from dataclasses import dataclass
from enum import Enum

import numpy as np

from ..errors import InputError, InputTypeError


class Rounding(Enum):
    """How a value between two representable neighbours is rounded.

    FLOOR           toward minus infinity (two's-complement truncation, an arithmetic right shift)
    CEIL            toward plus infinity
    TOWARD_ZERO     toward zero (sign-magnitude truncation)
    NEAREST_UP      nearest, ties toward plus infinity (add half an LSB, then floor)
    NEAREST_EVEN    nearest, ties to the even neighbour (IEEE-754 default)
    NEAREST_AWAY    nearest, ties away from zero
    STOCHASTIC      up with probability equal to the discarded fraction, drawn from an explicit generator
    """

    FLOOR = "floor"
    CEIL = "ceil"
    TOWARD_ZERO = "toward_zero"
    NEAREST_UP = "nearest_up"
    NEAREST_EVEN = "nearest_even"
    NEAREST_AWAY = "nearest_away"
    STOCHASTIC = "stochastic"


class Overflow(Enum):
    """What happens to a value above the largest (or below the smallest) code.

    SATURATE  clamp to the nearest end of the range and count it
    WRAP      keep the low bits (two's-complement wrap-around) and count it
    ERROR     raise ``OverflowError``
    """

    SATURATE = "saturate"
    WRAP = "wrap"
    ERROR = "error"


class Underflow(Enum):
    """What a log code does with a nonzero value whose exponent is below the smallest exponent.

    FLUSH     encode it as zero (keeping its sign) and count it
    SATURATE  encode it as the smallest power of two and count it
    ERROR     raise ``ArithmeticError``
    """

    FLUSH = "flush"
    SATURATE = "saturate"
    ERROR = "error"


class NonFinite(Enum):
    """What an encoder does with NaN and infinity.

    ERROR     raise ``ValueError`` naming the first offending index (the default everywhere)
    SATURATE  encode +-inf as the largest magnitude of the right sign, counted as saturated; NaN still raises
    """

    ERROR = "error"
    SATURATE = "saturate"


def parse_enum(kind, value):
    """Return ``kind(value)`` for an enum member or its string value, with an error listing the choices."""
    if isinstance(value, kind):
        return value
    try:
        return kind(str(value).lower())
    except ValueError:
        choices = ", ".join(repr(m.value) for m in kind)
        raise InputError(f"unknown {kind.__name__} {value!r}; choose one of {choices}") from None


def as_int(value, name):
    """Return ``value`` as a Python int if it is an ``int`` or a NumPy integer, else raise.

    Bools and floats are refused, even integral ones such as ``16.0``: a count of bits, a shift or
    a seed that arrives as a float is a mistake upstream, and truncating it would hide that.

    Parameters
    ----------
    value : int or numpy.integer
    name : str
        What the value is, for the message.

    Returns
    -------
    int

    Raises
    ------
    InputTypeError
        If ``value`` is not an integer.
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    integral = isinstance(value, (float, np.floating)) and float(value).is_integer()
    fix = f"pass int({value!r}) if that is what you mean" if integral else "pass a whole number as an int"
    raise InputTypeError(f"{name} must be an int, got {value!r} ({type(value).__name__}); {fix}")


def check_range(value, name, lo, hi, note=""):
    """Raise unless the int ``value`` lies in ``lo..hi``.

    Parameters
    ----------
    value : int
    name : str
        What the value is, for the message.
    lo, hi : int
        The inclusive range.
    note : str
        Appended to the range in the message, e.g. ``" (the code has 1 + exp_bits <= 8 bits)"``.

    Raises
    ------
    InputError
        If ``value`` is outside the range.
    """
    if not lo <= value <= hi:
        raise InputError(f"{name} must be {lo}..{hi}{note}, got {value}")


def set_fields(obj, **values):
    """Store normalised field values on a frozen dataclass instance, from its ``__post_init__``."""
    for name, value in values.items():
        object.__setattr__(obj, name, value)


def as_format(fmt, kind, parse, example, fix):
    """Return ``fmt`` as a ``kind`` instance, parsing a name such as ``example`` with ``parse``.

    Parameters
    ----------
    fmt : kind or str
    kind : type
        The format's class, e.g. :class:`bitsim.formats.fixed.FixedFormat`.
    parse : callable
        Turns a name into a ``kind``.
    example : str
        A name of such a format, for the message.
    fix : str
        How to build one, for the message.

    Raises
    ------
    InputTypeError
        If ``fmt`` is neither a ``kind`` nor a string.
    """
    if isinstance(fmt, kind):
        return fmt
    if isinstance(fmt, str):
        return parse(fmt)
    raise InputTypeError(f"expected a {kind.__name__} or a name such as {example!r}, got {type(fmt).__name__}; {fix}")


def first_index(mask):
    """The index of the first True element of a boolean array, as a tuple of ints (``()`` when 0-d)."""
    return tuple(int(i) for i in np.argwhere(mask)[0]) if mask.ndim else ()


def check_values(values, allowed, what, fix):
    """Return ``values`` as an array, raising unless every element is one of the ints ``allowed``.

    Parameters
    ----------
    values : array_like
    allowed : tuple of int
        E.g. ``(1, -1)``; the message lists them in ascending order.
    what : str
        The caller, for the message.
    fix : str
        How to get such values, for the message.

    Raises
    ------
    InputError
        Naming the first element that is not allowed and its index.
    """
    values = np.asarray(values)
    bad = values != allowed[0]
    for v in allowed[1:]:
        bad = bad & (values != v)
    if bad.any():
        idx = first_index(bad)
        listed = ", ".join(f"{v:+d}" if v else "0" for v in sorted(allowed))
        raise InputError(f"{what} expects values in {{{listed}}}, got {values[idx]!r} at index {idx}; {fix}")
    return values


def real_values(x, what, doing):
    """Return ``x`` as an array of a real dtype (float, int or bool), refusing NaN and infinity.

    Parameters
    ----------
    x : array_like
    what : str
        The caller, for the messages.
    doing : str
        What the caller does, for the message, e.g. ``'binarizing'``.

    Raises
    ------
    InputTypeError
        If the dtype is not real.
    InputError
        Naming the first NaN or infinity and its index.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise InputTypeError(
            f"{what} expects a real numeric array, got dtype {x.dtype}; convert it with np.asarray(x, float)"
        )
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            idx = first_index(bad)
            raise InputError(f"{what} got {x[idx]} at index {idx}; remove NaN/Inf before {doing}")
    return x


@dataclass
class Counts:
    """Events counted by quantizers and kernels, so that no saturation passes silently.

    Pass one instance as ``counts=`` to any number of calls; each adds to it.
    """

    saturated: int = 0
    wrapped: int = 0
    flushed: int = 0

    @property
    def total(self):
        return self.saturated + self.wrapped + self.flushed

    def add(self, other):
        """Add the counts of ``other`` into this instance and return it."""
        self.saturated += other.saturated
        self.wrapped += other.wrapped
        self.flushed += other.flushed
        return self
