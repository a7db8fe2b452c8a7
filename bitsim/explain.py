"""Worked examples that show the bits: how one value is encoded in each format, and why."""

import numpy as np

from .errors import InputError
from .formats import binary, fixed, log, parse_format
from .formats.modes import Counts, Rounding


def float32_lines(x32):
    """Lines describing the IEEE-754 fields of one float32."""
    sign, biased, mantissa = (int(v) for v in log.float32_fields(x32))
    bits = int(np.array(x32, dtype=np.float32).view(np.uint32))
    b = f"{bits:032b}"
    lines = [
        f"float32      {float(x32)!r}  (0x{bits:08x})",
        f"  bits       {b[0]} {b[1:9]} {b[9:]}   (sign | exponent | mantissa)",
        f"  sign       {sign} ({'-' if sign else '+'})",
    ]
    if biased == 0xFF:
        lines.append("  exponent   all ones: " + ("NaN" if mantissa else "infinity"))
    elif biased == 0 and mantissa == 0:
        lines.append("  exponent   0 with mantissa 0: zero")
    else:
        e, m = (int(v) for v in log.exponent_mantissa(np.int64(biased), np.int64(mantissa)))
        kind = "subnormal, normalised" if biased == 0 else f"0b{biased:08b} = {biased}, minus bias 127"
        lines.append(f"  exponent   {kind}: E = {e}")
        lines.append(f"  mantissa   M = 0x{m:06x} = {m} = {m / 2**23:.10f} * 2^23  ->  |x| = {1 + m / 2**23:.10f} * 2^{e}")
    return lines


def _error_line(decoded, x):
    err = float(decoded) - float(x)
    rel = f" (relative {100 * err / float(x) + 0.0:+.4g}%)" if np.isfinite(x) and float(x) != 0 else ""
    return f"error        {float(decoded)!r} - {float(x)!r} = {err:.6g}{rel}"


def explain_log(x, fmt):
    x32 = np.float32(x)
    lines = float32_lines(x32)
    counts = Counts()
    sign, biased, mantissa = (int(v) for v in log.float32_fields(x32))
    lines.append(f"format       {fmt.name}: sign bit + {fmt.exp_bits}-bit two's-complement exponent, "
                 f"exponents {fmt.emin}..{fmt.emax}, field {fmt.zero_field:#x} reserved for zero")
    if biased == 0 and mantissa == 0:
        lines.append("rule         zero encodes as the reserved exponent field, keeping the sign")
    elif biased != 0xFF:
        e, m = (int(v) for v in log.exponent_mantissa(np.int64(biased), np.int64(mantissa)))
        rule = {
            log.LogRounding.LINEAR: (m >= 1 << 22, f"round up iff the mantissa MSB is 1 (M >= 2^22 = {1 << 22})"),
            log.LogRounding.LOG: (m >= log.LOG_SQRT2_THRESHOLD,
                                  f"round up iff 1.M >= sqrt(2) (M >= {log.LOG_SQRT2_THRESHOLD})"),
            log.LogRounding.TRUNCATE: (False, "never round up: e = floor(log2|x|)"),
            log.LogRounding.STOCHASTIC: (None, "round up iff (u >> 9) < M for a uint32 draw u (seed 1 here)"),
        }[fmt.rounding]
        up, text = rule
        lines.append(f"rule         {fmt.rounding.value}: {text}")
        if up is not None:
            lines.append(f"exponent     {'E + 1' if up else 'E'} = {e + int(up)}")
    code = int(log.encode(x32, fmt, rng=1, counts=counts))
    s, exponent, zero = (v.item() for v in log.split(np.uint8(code), fmt))
    if counts.total:
        lines.append(f"range        outside {fmt.emin}..{fmt.emax}: saturated {counts.saturated}, flushed {counts.flushed}"
                     f" ({fmt.overflow.value} / {fmt.underflow.value})")
    field = code & ((1 << fmt.exp_bits) - 1)
    meaning = "reserved: zero" if zero else f"{exponent - fmt.exp_offset} in {fmt.exp_bits}-bit two's complement"
    lines.append(f"code         0x{code:02x} = 0b{s}_{field:0{fmt.exp_bits}b}  (sign {s} | exponent field {meaning})")
    decoded = log.decode(np.uint8(code), fmt)
    shown = f"{'-' if s else '+'}0" if zero else f"{'-' if s else '+'}2^{exponent}"
    lines.append(f"decoded      {shown} = {float(decoded)!r}")
    lines.append(_error_line(decoded, x32))
    return lines


def explain_fixed(x, fmt):
    counts = Counts()
    lines = [
        f"input        {float(x)!r}",
        f"format       {fmt.name}: {fmt.bits} bits = sign + {fmt.int_bits} integer + {fmt.frac_bits} fraction bits, "
        f"LSB 2^{-fmt.frac_bits} = {fmt.resolution!r}, codes {fmt.min_code}..{fmt.max_code} "
        f"= {fmt.min_code * fmt.resolution!r}..{fmt.max_code * fmt.resolution!r}",
    ]
    scaled = np.ldexp(np.float64(x), fmt.frac_bits)
    lines.append(f"scaled       x * 2^{fmt.frac_bits} = {float(scaled)!r} (exact)")
    code = int(fixed.quantize(x, fmt, rng=1, counts=counts))
    rule = {
        Rounding.FLOOR: "toward -inf", Rounding.CEIL: "toward +inf", Rounding.TOWARD_ZERO: "toward zero",
        Rounding.NEAREST_UP: "nearest, ties toward +inf", Rounding.NEAREST_EVEN: "nearest, ties to even",
        Rounding.NEAREST_AWAY: "nearest, ties away from zero",
        Rounding.STOCHASTIC: "up with probability = fraction (u < floor(frac * 2^32), seed 1 here)",
    }[fmt.rounding]
    lines.append(f"rule         {fmt.rounding.value}: {rule}")
    if counts.total:
        lines.append(f"overflow     outside {fmt.min_code}..{fmt.max_code}: {fmt.overflow.value} "
                     f"(saturated {counts.saturated}, wrapped {counts.wrapped})")
    raw = code & ((1 << fmt.bits) - 1)
    lines.append(f"code         {code} = 0x{raw:0{(fmt.bits + 3) // 4}x} = 0b{raw:0{fmt.bits}b}  ({fmt.dtype} container)")
    decoded = fixed.to_float(np.int64(code), fmt)
    lines.append(f"decoded      {code} * 2^{-fmt.frac_bits} = {float(decoded)!r}")
    lines.append(_error_line(decoded, x))
    return lines


def explain_binary(x):
    x32 = np.float32(x)
    lines = float32_lines(x32)
    v = int(binary.binarize(x32))
    lines.append("rule         sign: +1 iff x >= 0 (so sign(0) = sign(-0) = +1), else -1")
    lines.append(f"value        {v:+d}")
    word = binary.pack([v])
    lines.append(f"bit          {1 if v > 0 else 0}  (bit 1 = +1, bit 0 = -1)")
    lines.append(f"packed       element 0 of a vector sits at bit 0 of word 0: 0x{int(word[0]):016x} "
                 "(the other 63 bits: later elements, or 0 as padding)")
    lines.append(_error_line(np.float32(v), x32))
    return lines


def explain_ternary(x, threshold=0.5):
    from .formats import ternary

    lines = [f"input        {float(x)!r}",
             f"rule         +1 if x > {threshold}, -1 if x < -{threshold}, else 0"]
    v = int(ternary.ternarize(np.float64(x), threshold))
    signs, mask = ternary.pack_ternary([v])
    lines.append(f"value        {v:+d}")
    lines.append(f"planes       mask bit {int(mask[0]) & 1} (1 = nonzero), sign bit {int(signs[0]) & 1} (1 = +1)")
    lines.append(_error_line(np.float64(v), x))
    return lines


# the options of each family of formats, and how the families are named in messages
OPTIONS = {"log": ("rounding", "overflow", "underflow", "nonfinite"), "fixed": ("rounding", "overflow", "nonfinite")}
FAMILIES = {"log": "log codes (logN, e.g. log8)", "fixed": "fixed point (QI.F or fixB:F, e.g. Q3.4)"}


def check_options(spec, options):
    """Raise :class:`InputError` unless every option in ``options`` applies to the format ``spec``.

    Parameters
    ----------
    spec : str
        A format name understood by :func:`bitsim.formats.parse_format`.
    options : iterable of str
        Option names, e.g. ``['rounding', 'underflow']``.
    """
    fmt = parse_format(spec)
    family = "log" if isinstance(fmt, log.LogFormat) else "fixed" if isinstance(fmt, fixed.FixedFormat) else None
    for name in options:
        families = [f for f, names in OPTIONS.items() if name in names]
        if not families:
            known = sorted({n for names in OPTIONS.values() for n in names})
            raise InputError(f"unknown option {name!r}; the formats take {', '.join(known)}")
        if family not in families:
            raise InputError(f"option {name!r} does not apply to {fmt if family is None else fmt.name}: it applies "
                             f"to {' and '.join(FAMILIES[f] for f in families)} only; leave it out")


def explain(spec, value, **options):
    """Return the worked example for encoding ``value`` in the format ``spec``, as text.

    Parameters
    ----------
    spec : str
        A format name understood by :func:`bitsim.formats.parse_format`, e.g. ``'log8'``, ``'Q3.4'``.
    value : float
    **options
        Format options: ``rounding``, ``overflow`` and ``nonfinite`` (log codes and fixed point) and
        ``underflow`` (log codes), e.g. ``rounding='log'``.

    Raises
    ------
    InputError
        An unknown format, or an option that does not apply to it.
    """
    check_options(spec, options)
    fmt = parse_format(spec, **options)
    value = float(value)
    if fmt == "binary":
        lines = explain_binary(value)
    elif fmt == "ternary":
        lines = explain_ternary(value)
    elif fmt == "float32":
        lines = float32_lines(np.float32(value))
    elif isinstance(fmt, log.LogFormat):
        lines = explain_log(value, fmt)
    else:
        lines = explain_fixed(value, fmt)
    return "\n".join(lines)
