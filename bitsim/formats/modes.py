"""Rounding and overflow modes shared by the number formats, and the counts they keep."""

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
