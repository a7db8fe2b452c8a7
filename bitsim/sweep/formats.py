"""The number formats a sweep can give a layer's weights or activations: a registry of plain entries.

Each entry of :data:`FORMATS` describes one format: its parameters (a schema of :mod:`bitsim.schema`, with
defaults), how many bits a value takes, whether its products need a multiplier, the largest code magnitude
in bits (to prove that products fit the accumulator kernel), its storage in bytes, and
:meth:`Format.quantizer`, which fixes the format's scale from reference values (the weights themselves, or a
layer's float activations on the calibration images) and returns a :class:`Quantizer` mapping float values to
integer codes. A value is ``code * scale``. The MX block formats (``blocked``) have no such code: a layer in
MX formats is quantized by :func:`bitsim.formats.mx.quantize` and multiplied by :func:`bitsim.kernels.mx.gemm`
(:meth:`MX.tensor`). Adding a format is one entry: a subclass of :class:`Format` and a line in :data:`FORMATS`.
The rules are written in ``docs/sweep.md`` ("Formats").
"""

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..formats import fixed, log, mx
from ..formats.fixed import FixedFormat
from ..formats.log import LogFormat
from ..schema import NUMBER, Either, Int, OneOf

__all__ = ["FORMATS", "Format", "Quantizer", "canonical", "format_of", "label", "pair_error"]

AUTO = OneOf("auto")
FIXED_ROUNDINGS = ("nearest_even", "nearest_away", "nearest_up", "floor", "ceil", "toward_zero")
LOG_ROUNDINGS = ("linear", "log", "truncate")


@dataclass(frozen=True)
class Quantizer:
    """Float values to integer codes of one format with a fixed scale: a value is ``code * scale``."""

    encode: object  # encode(x float64 array, counts) -> int64 codes
    scale: float

    def codes(self, x, counts):
        """int64 codes of ``x``; saturated values and nonzero values that became 0 are added to ``counts``
        (``saturated`` and ``flushed``)."""
        return self.encode(np.asarray(x, np.float64), counts)


def _underflows(x, codes, counts):
    counts.flushed += int(np.count_nonzero((codes == 0) & (x != 0)))


class Format:
    """One entry of the registry (subclass and fill in the class attributes and methods)."""

    name = ""
    params = {}  # parameter -> schema leaf
    defaults = {}  # parameter -> default value
    multiplier_free = False  # products are sign flips, additions or shifts
    blocked = False  # an MX block format: no per-tensor integer code (see MX)

    def check(self, p):
        """Raise :class:`InputError` for parameters that cannot go together."""

    def bits(self, p):
        """Bits one value takes in memory."""
        raise NotImplementedError

    def code_bits(self, p):
        """``b`` such that every code's magnitude is at most ``2**b``."""
        raise NotImplementedError

    def storage_bytes(self, p, rows, cols):
        """Bytes of a ``(rows, cols)`` tensor in this format, packed densely: ``ceil(rows * cols * bits / 8)``."""
        return math.ceil(rows * cols * self.bits(p) / 8)

    def quantizer(self, p, reference):
        """The :class:`Quantizer` of parameters ``p`` whose scale fits ``reference`` (float64 values)."""
        raise NotImplementedError

    def label(self, p):
        """A short name of the format with its parameters, for tables."""
        return self.name


def _top(reference):
    return float(np.max(np.abs(reference))) if np.size(reference) else 0.0


class Binary(Format):
    """``+1`` for values >= 0, else ``-1``; scale: the mean ``|value|`` of the reference (1 if it is 0)."""

    name = "binary"
    multiplier_free = True

    def bits(self, p):
        return 1

    def code_bits(self, p):
        return 0

    def quantizer(self, p, reference):
        scale = float(np.mean(np.abs(reference))) if np.size(reference) else 0.0
        return Quantizer(lambda x, counts: np.where(x >= 0, 1, -1).astype(np.int64), scale or 1.0)


class Ternary(Format):
    """``sign(value)`` where ``|value| > threshold * mean|reference|``, else 0; scale: the mean ``|value|`` of the
    reference values above the threshold (Ternary Weight Networks' rule with ``threshold = 0.7``)."""

    name = "ternary"
    params = {"threshold?": NUMBER}
    defaults = {"threshold": 0.7}
    multiplier_free = True

    def check(self, p):
        if not 0 <= p["threshold"] <= 10:
            raise InputError(f"ternary threshold must be in [0, 10] (times the mean |value|), got {p['threshold']}")

    def bits(self, p):
        return 2

    def code_bits(self, p):
        return 0

    def quantizer(self, p, reference):
        ref = np.abs(np.asarray(reference, np.float64))
        cut = p["threshold"] * (float(ref.mean()) if ref.size else 0.0)
        kept = ref[ref > cut]
        scale = float(kept.mean()) if kept.size else 1.0

        def encode(x, counts):
            codes = np.where(np.abs(x) > cut, np.sign(x), 0).astype(np.int64)
            _underflows(x, codes, counts)
            return codes

        return Quantizer(encode, scale)

    def label(self, p):
        return f"ternary/{p['threshold']:g}"


def auto_frac(bits, top):
    """The most fractional bits of a ``bits``-bit fixed-point format whose range holds ``top`` after rounding."""
    if top <= 0:
        return bits - 1
    frac = bits - 2 - math.floor(math.log2(top))
    if round(top * 2.0**frac) > (1 << (bits - 1)) - 1:
        frac -= 1
    return max(-32, min(frac, 62))


class Fixed(Format):
    """Signed ``bits``-bit two's-complement codes ``round(value * 2**frac)``, saturating (counted);
    ``frac = 'auto'``: the most fractional bits that hold the largest ``|reference|``."""

    name = "fixed"
    params = {"bits": Int(2, 16), "frac?": Either(Int(-32, 62), AUTO), "rounding?": OneOf(*FIXED_ROUNDINGS)}
    defaults = {"frac": "auto", "rounding": "nearest_even"}

    def bits(self, p):
        return p["bits"]

    def code_bits(self, p):
        return p["bits"] - 1

    def quantizer(self, p, reference):
        frac = auto_frac(p["bits"], _top(reference)) if p["frac"] == "auto" else p["frac"]
        fmt = FixedFormat(p["bits"], frac, rounding=p["rounding"], overflow="saturate")

        def encode(x, counts):
            codes = fixed.quantize(x, fmt, counts=counts).astype(np.int64)
            _underflows(x, codes, counts)
            return codes

        return Quantizer(encode, 2.0**-frac)

    def label(self, p):
        return f"fixed{p['bits']}/{p['frac']}/{p['rounding']}"


class Log(Format):
    """Signed powers of two, :class:`bitsim.formats.log.LogFormat` with ``exp_bits`` (a ``1 + exp_bits``-bit code)
    and its rounding, saturating and flushing (counted); ``offset = 'auto'`` puts the largest exponent at
    ``ceil(log2(max |reference|))``. The integer code of ``±2**e`` is ``±2**(e - emin)``, its scale ``2**emin``."""

    name = "log"
    params = {"exp_bits": Int(2, 5), "offset?": Either(Int(-100, 100), AUTO), "rounding?": OneOf(*LOG_ROUNDINGS)}
    defaults = {"offset": "auto", "rounding": "linear"}
    multiplier_free = True

    def check(self, p):
        if p["offset"] != "auto":
            LogFormat(p["exp_bits"], p["offset"])

    def bits(self, p):
        return 1 + p["exp_bits"]

    def code_bits(self, p):
        return (1 << p["exp_bits"]) - 2

    def quantizer(self, p, reference):
        half = (1 << (p["exp_bits"] - 1)) - 1
        if p["offset"] == "auto":
            top = _top(reference)
            offset = (math.ceil(math.log2(top)) if top > 0 else 0) - half
        else:
            offset = p["offset"]
        try:
            fmt = LogFormat(p["exp_bits"], offset, rounding=p["rounding"])
        except InputError as err:
            raise InputError(f"log format with offset {offset}: {err}") from None

        def encode(x, counts):
            codes = log.encode(x.astype(np.float32), fmt, counts=counts)
            sign, exponent, zero = log.split(codes, fmt)
            mag = np.where(zero, 0, np.left_shift(1, (exponent.astype(np.int64) - fmt.emin).clip(0)))
            return np.where(sign == 1, -mag, mag).astype(np.int64)

        return Quantizer(encode, 2.0**fmt.emin)

    def label(self, p):
        return f"log{1 + p['exp_bits']}/{p['offset']}/{p['rounding']}"


MINIFLOATS = ("e4m3", "e5m2", "e2m3", "e3m2", "e2m1")
MX_TYPES = tuple(mx.FORMATS)


class Minifloat(Format):
    """A signed minifloat of :mod:`bitsim.formats.minifloat` (``type``: E4M3, E5M2, E2M3, E3M2, E2M1), rounding by
    ``rounding``, saturating to its largest finite value (counted). The tensor is first divided by the power of two
    ``2**ceil(log2(max |reference| / max))`` that brings its largest value into range; the integer code of a
    minifloat value ``v`` is ``v / min_positive`` (every value is a multiple of the smallest subnormal)."""

    name = "minifloat"
    params = {"type": OneOf(*MINIFLOATS), "rounding?": OneOf(*FIXED_ROUNDINGS)}
    defaults = {"rounding": "nearest_even"}

    def bits(self, p):
        from ..formats.minifloat import parse_minifloat

        return parse_minifloat(p["type"]).bits

    def code_bits(self, p):
        from ..formats.minifloat import parse_minifloat

        fmt = parse_minifloat(p["type"])
        return math.ceil(math.log2(fmt.max / fmt.min_positive))

    def quantizer(self, p, reference):
        from ..formats import minifloat

        fmt = minifloat.parse_minifloat(p["type"])
        top = _top(reference)
        shift = math.ceil(math.log2(top / fmt.max)) if top > 0 else 0
        unit = fmt.min_positive

        def encode(x, counts):
            codes = minifloat.encode(np.ldexp(x, -shift), fmt, rounding=p["rounding"], overflow="saturate",
                                     counts=counts)
            return np.rint(minifloat.decode(codes, fmt) / unit).astype(np.int64)

        return Quantizer(encode, math.ldexp(unit, shift))

    def label(self, p):
        return f"{p['type']}/{p['rounding']}"


SCALE_RULES = tuple(rule.value for rule in mx.ScaleRule)


class MX(Format):
    """An OCP MX block format of :mod:`bitsim.formats.mx` (``type``: ``mxfp8_e4m3`` ... ``mxint8``): runs of
    ``block`` values along a layer's input axis share one E8M0 scale chosen by ``scale_rule`` from the run's
    own largest magnitude; elements round by ``rounding`` and saturate (counted). No calibration: every block
    of weights and of activations sets its own scale. A layer whose weights are MX has MX activations of the
    same block (:func:`bitsim.kernels.mx.gemm` multiplies two MX tensors)."""

    name = "mx"
    params = {"type": OneOf(*MX_TYPES), "block?": Int(1, 4096), "scale_rule?": OneOf(*SCALE_RULES),
              "rounding?": OneOf(*FIXED_ROUNDINGS)}
    defaults = {"block": 32, "scale_rule": "floor", "rounding": "nearest_even"}
    blocked = True

    def bits(self, p):
        return mx.as_mx(p["type"]).element.bits

    def code_bits(self, p):
        return None  # not an integer code of the accumulator kernel

    def storage_bytes(self, p, rows, cols):
        """The packed elements, ``ceil(rows * cols * bits / 8)``, and one E8M0 byte per block of each row."""
        return math.ceil(rows * cols * self.bits(p) / 8) + rows * -(-cols // p["block"])

    def tensor(self, p, x, counts):
        """``x`` (rows, cols) as an :class:`bitsim.formats.mx.MXTensor` blocked along axis 1; elements clamped to
        the largest value, and blocks whose exponent was clipped, add to ``counts.saturated``, nonzero values
        whose element is zero to ``counts.flushed``."""
        return mx.quantize(x, p["type"], axis=1, block=p["block"], scale_rule=p["scale_rule"],
                           rounding=p["rounding"], counts=counts)

    def quantizer(self, p, reference):
        raise InputError("an MX format has one scale per block, not a Quantizer; use MX.tensor")

    def label(self, p):
        return f"{p['type']}/{p['block']}/{p['scale_rule']}/{p['rounding']}"


FORMATS = {entry.name: entry for entry in (Binary(), Ternary(), Fixed(), Log(), Minifloat(), MX())}


def format_of(name):
    """The registry entry of ``name``; an unknown name raises :class:`InputError` listing the known ones."""
    if name not in FORMATS:
        raise InputError(f"unknown format {name!r}; the formats are {', '.join(FORMATS)}")
    return FORMATS[name]


def canonical(choice):
    """A format choice ``{'format': NAME, ...}`` with every default filled in and checked."""
    entry = format_of(choice["format"])
    p = {**entry.defaults, **{k: v for k, v in choice.items() if k != "format"}}
    entry.check(p)
    return {"format": entry.name, **{k: p[k] for k in sorted(p)}}


def label(choice):
    """A short name of a canonical choice, e.g. ``fixed8/auto/nearest_even``."""
    return format_of(choice["format"]).label(choice)



def pair_error(weight, activation):
    """Why a canonical (weight, activation) pair cannot be a layer's formats, or None when it can."""
    w, a = format_of(weight["format"]), format_of(activation["format"])
    if w.blocked != a.blocked:
        return (f"weight {label(weight)} with activation {label(activation)}: an MX format multiplies only with an MX "
                "format (bitsim.kernels.mx.gemm takes two MX tensors); give both sides an MX format")
    if w.blocked and weight["block"] != activation["block"]:
        return (f"weight {label(weight)} with activation {label(activation)}: MX blocks of {weight['block']} and "
                f"{activation['block']} values; both sides need the same block size")
    return None
