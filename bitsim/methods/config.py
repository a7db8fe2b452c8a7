"""The base of the trainers' configurations: every field checked against its declared type, range and choices.

A configuration is a dataclass whose fields are plain JSON values (it is saved in every model's
manifest and read back with :meth:`RunConfig.from_dict`), so a value of the wrong type, from a
caller or from a damaged file, is refused with an :class:`~bitsim.errors.InputError` naming the
field, never turned into something else.
"""

import math
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from ..errors import InputError

SIZE = (1, 1 << 16)  # widths and counts that allocate memory: at most 65,536
WHAT = {bool: "true or false", int: "a whole number", float: "a finite number", str: "a string",
        tuple: "a list of finite numbers"}


def is_integer(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value):
    return (is_integer(value) or isinstance(value, (float, np.floating))) and math.isfinite(value)


def checked(name, value, kind):
    """``value`` as a plain value of ``kind`` (int, float, bool, str or tuple of numbers), or InputError."""
    if kind is bool and isinstance(value, (bool, np.bool_)):
        return bool(value)
    if kind is int and is_integer(value):
        return int(value)
    if kind is float and is_real(value):
        return float(value)
    if kind is str and isinstance(value, str):
        return value
    if kind is tuple and isinstance(value, (list, tuple)) and all(is_real(v) for v in value):
        return tuple(value)
    raise InputError(f"{name} must be {WHAT.get(kind, kind)}, got {value!r}")


def _span(lo, hi):
    """``'>= lo'``, ``'<= hi'`` or ``'in lo..hi'``: an inclusive range with either end None."""
    if hi is None:
        return f">= {lo}"
    return f"<= {hi}" if lo is None else f"in {lo}..{hi}"


@dataclass
class RunConfig:
    """Base of the trainers' configurations (:class:`~bitsim.methods.bnn.BNNConfig` and its siblings).

    Subclasses declare their fields with types ``int``, ``float``, ``bool``, ``str`` or ``tuple``, give
    inclusive ranges in ``LIMITS`` (``{field: (lo, hi)}``, either end None) and the values a field may
    take in ``CHOICES`` (``{field: choices}``, named in the error as they are), and put the checks that
    relate fields to each other in :meth:`check`.
    """

    LIMITS: ClassVar[dict] = {}
    CHOICES: ClassVar[dict] = {}

    def __post_init__(self):
        for f in fields(self):
            value = checked(f.name, getattr(self, f.name), f.type)
            lo, hi = self.LIMITS.get(f.name, (None, None))
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise InputError(f"{f.name} must be {WHAT[f.type]} {_span(lo, hi)}, got {value!r}")
            if f.name in self.CHOICES and value not in self.CHOICES[f.name]:
                raise InputError(f"unknown {f.name} {value!r}; choose one of {self.CHOICES[f.name]}")
            setattr(self, f.name, value)
        self.check()

    def check(self):
        """Checks across fields; subclasses override it."""

    @classmethod
    def from_dict(cls, d):
        """A configuration from a saved dict (fields it does not know are ignored: they come from older runs)."""
        if not isinstance(d, dict):
            raise InputError(f"a {cls.__name__} is saved as an object, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


__all__ = ["RunConfig", "SIZE", "checked"]
