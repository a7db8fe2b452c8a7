"""Number formats as codecs: packed binary, ternary, log codes, fixed point and dynamic fixed point.

Each format module holds one format: an encode/decode pair, a frozen description of the format, and
its bit layout stated in every signature. The rules are written out in ``docs/formats.md``. Beside
them: the random generators of the stochastic modes (``rng``), the rounding, overflow and counting
modes and the checks of parameters and values the formats share (``modes``), and how bitsim calls a
parallel Numba kernel (``launch``).
"""

from . import binary, fixed, log, rng, ternary
from ..errors import InputError
from .fixed import FixedFormat, as_fixed, parse_fixed
from .log import LogFormat, LogRounding, as_log, parse_log
from .modes import Counts, NonFinite, Overflow, Rounding, Underflow

FORMAT_NAMES = ("binary", "ternary", "float32", "logN (e.g. log8, log4)", "QI.F (e.g. Q3.4, Q7.8)", "fixB:F (e.g. fix16:8)")


def parse_format(spec, **options):
    """Return the format named by ``spec``.

    Parameters
    ----------
    spec : str
        ``'binary'``, ``'ternary'``, ``'float32'``, ``'log8'`` (``'logN'``: N-bit log code, 3..8),
        ``'Q3.4'`` or ``'fix16:8'`` (fixed point).
    **options
        Fields of the format's description, e.g. ``rounding='log'`` for a log code.

    Returns
    -------
    str or LogFormat or FixedFormat
    """
    text = str(spec).strip().lower()
    if text in ("binary", "ternary", "float32"):
        if options:
            raise InputError(f"format {text!r} takes no options, got {sorted(options)}")
        return text
    if text.startswith("log") and text[3:].isdigit():
        return parse_log(text, **options)
    if text.startswith(("q", "fix")):
        return parse_fixed(text, **options)
    raise InputError(f"unknown format {spec!r}; valid formats: {', '.join(FORMAT_NAMES)}")


__all__ = [
    "binary", "ternary", "log", "fixed", "rng", "FixedFormat", "LogFormat", "LogRounding", "Counts",
    "NonFinite", "Overflow", "Rounding", "Underflow", "parse_format", "parse_fixed", "parse_log", "as_fixed",
    "as_log", "FORMAT_NAMES",
]
