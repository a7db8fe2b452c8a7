"""Rounding and overflow modes shared by the number formats, and the counts they keep."""

from dataclasses import dataclass
from enum import Enum


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
        raise ValueError(f"unknown {kind.__name__} {value!r}; choose one of {choices}") from None


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
