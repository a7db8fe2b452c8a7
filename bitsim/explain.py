"""Worked examples that show the bits: how one value is encoded in each format, and why."""

import re

import numpy as np

from .errors import InputError
from .formats import binary, fixed, log, parse_format, ternary
from .formats import minifloat as mf
from .formats import mx
from .formats.modes import Counts, Rounding, parse_enum


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
    """The worked example of encoding ``x`` in the log code ``fmt``, as a list of lines."""
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
    """The worked example of quantizing ``x`` to the fixed-point ``fmt``, as a list of lines."""
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
    """The worked example of binarizing ``x`` and packing the bit, as a list of lines."""
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
    """The worked example of ternary quantization at ``threshold``, as a list of lines."""
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


def explain_minifloat(x, fmt, rounding="nearest_even", overflow="saturate"):
    """The worked example of encoding ``x`` in the minifloat ``fmt``, as a list of lines."""
    rounding, overflow = parse_enum(Rounding, rounding), parse_enum(mf.FloatOverflow, overflow)
    with np.errstate(over="ignore"):  # beyond float32's range: shown as the float64 input
        as32 = np.float32(x)
        shown32 = (as32 == x and np.isfinite(as32)) or not np.isfinite(x)
    lines = float32_lines(as32) if shown32 else [f"input        {x!r}"]
    special = ("top exponent field reserved: mantissa 0 = Inf, else NaN" if fmt.infinities else
               "the all-ones code is NaN, no Inf" if fmt.nans else "no Inf, no NaN")
    lines.append(f"format       {fmt.name}: {int(fmt.signed)} sign + {fmt.exp_bits} exponent + {fmt.man_bits} mantissa "
                 f"bits, bias {fmt.bias}, {'subnormals' if fmt.subnormals else 'no subnormals'}, {special}; "
                 f"largest {fmt.max!r}, smallest positive {fmt.min_positive!r}")
    rules = {Rounding.FLOOR: "toward -inf", Rounding.CEIL: "toward +inf", Rounding.TOWARD_ZERO: "toward zero",
             Rounding.NEAREST_UP: "nearest, ties toward +inf", Rounding.NEAREST_EVEN: "nearest, ties to the even code",
             Rounding.NEAREST_AWAY: "nearest, ties away from zero",
             Rounding.STOCHASTIC: "up with probability (|x| - lo) / (hi - lo): u < floor(p * 2^32), seed 1 here"}
    vals = mf.values(fmt)
    a = abs(float(x))
    if np.isfinite(a):
        finite = np.sort(np.unique(np.abs(vals[np.isfinite(vals)])))
        lo = float(finite[finite <= a].max()) if (finite <= a).any() else np.nan
        hi = float(finite[finite >= a].min()) if (finite >= a).any() else np.nan
        if np.isnan(hi):
            step = 2.0 ** (fmt.emax - fmt.man_bits)
            lines.append(f"neighbours   |x| = {a!r} lies beyond the largest value {fmt.max!r}; the next value with an "
                         f"unbounded exponent is {fmt.max + step!r}")
        elif lo == hi:
            lines.append(f"neighbours   |x| = {a!r} is a value of {fmt.name}: no rounding")
        elif np.isnan(lo):
            lines.append(f"neighbours   |x| = {a!r} lies below the smallest value {hi!r} (the format has no zero)")
        else:
            lines.append(f"neighbours   {lo!r} <= |x| = {a!r} <= {hi!r}, midpoint {(lo + hi) / 2!r}")
    lines.append(f"rule         {rounding.value}: {rules[rounding]}; overflow {overflow.value}")
    counts = Counts()
    code = int(mf.encode(np.float64(x), fmt, rounding, overflow, rng=1, counts=counts))
    if counts.saturated:
        lines.append(f"overflow     beyond the largest finite value: {overflow.value} (counted {counts.saturated})")
    if counts.flushed:
        lines.append("underflow    a nonzero value became zero (counted as flushed)")
    s, e, m = mf.fields(code, fmt)
    digits = (fmt.bits + 3) // 4
    fields_named = "sign | exponent | mantissa" if fmt.signed else "exponent"
    bits = (f"{s}_" if fmt.signed else "") + f"{e:0{fmt.exp_bits}b}" + (f"_{m:0{fmt.man_bits}b}" if fmt.man_bits else "")
    lines.append(f"code         0x{code:0{digits}x} = 0b{bits}  ({fields_named})")
    v = float(mf.decode(np.array(code), fmt))
    if np.isfinite(v) and v != 0:
        if e == 0 and fmt.subnormals:
            how = f"subnormal: {m}/2^{fmt.man_bits} * 2^{1 - fmt.bias}"
        else:
            how = f"(1 + {m}/2^{fmt.man_bits}) * 2^({e} - {fmt.bias})"
        lines.append(f"decoded      {'-' if s else '+'}{how} = {v!r}")
    else:
        lines.append(f"decoded      {v!r}")
    lines.append(_error_line(np.float64(v), np.float64(x)))
    return lines


def explain_mx(spec, values, scale_rule="floor", rounding="nearest_even"):
    """The worked example of one MX block (or several) of ``values``, as a list of lines."""
    fmt = mx.as_mx(spec)
    rule = parse_enum(mx.ScaleRule, scale_rule)
    x = np.asarray(values, dtype=np.float64).ravel()
    t = mx.quantize(x, fmt, scale_rule=rule, rounding=rounding)
    el = fmt.element
    lines = [f"format       {fmt.name}: blocks of {fmt.block} {el.name} elements (largest {el.max!r} = "
             f"{'1.x' if el.emax >= 0 else ''} * 2^{el.emax}, emax_elem {el.emax}) sharing one E8M0 scale "
             f"X = 2^(code - 127)",
             f"scale rule   {rule.value}: " + {
                 mx.ScaleRule.FLOOR: "e = floor(log2(amax)) - emax_elem (OCP MX v1.0)",
                 mx.ScaleRule.CEIL: "e = the smallest e with amax <= largest element * 2^e",
                 mx.ScaleRule.RCEIL: "e = ceil(log2(fl32(fl32(amax) / largest element))) (cuBLAS RCEIL)",
                 mx.ScaleRule.EVEN: "e = floor(log2(amax rounded to the element's mantissa)) - emax_elem",
                 mx.ScaleRule.CEIL_LOG2: "e = ceil(log2(amax)) - emax_elem (torchao CEIL)"}[rule]]
    for b, s in enumerate(t.scales):
        part = x[b * fmt.block:(b + 1) * fmt.block]
        codes = t.codes[b * fmt.block:(b + 1) * fmt.block]
        finite = np.isfinite(part).all()
        amax = float(np.max(np.abs(part))) if finite else float("nan")
        lines.append(f"block {b}      {len(part)} values, amax {amax!r}")
        if not finite:
            lines.append("  rule       the block holds NaN or Inf: scale code 0xff (NaN), every element decodes to NaN")
            continue
        if amax == 0:
            lines.append("  rule       an all-zero block: scale code 0x00 (2^-127), element codes 0")
        else:
            e_raw = int(mx.shared_exponent(amax, fmt, rule))
            clipped = f", clipped to {int(s) - 127}" if e_raw != int(s) - 127 else ""
            lines.append(f"  exponent   floor(log2(amax)) = {int(np.frexp(amax)[1]) - 1}; e = {e_raw}{clipped}")
        lines.append(f"  scale      code 0x{int(s):02x} = 0b{int(s):08b}  ->  X = 2^{int(s) - 127}")
        dec = mx.dequantize(mx.MXTensor(codes, np.array([s], np.uint8), fmt, 0))
        for v, c, d in zip(part.tolist(), codes, dec):
            scaled = v / 2.0 ** (int(s) - 127)
            ev = float(mx.decode_elements(np.array([c], np.uint8), el)[0])
            note = "  (saturated)" if abs(scaled) > el.max else ""
            lines.append(f"  x = {v!r:<12} x/X = {scaled!r:<12} code 0x{int(c):02x} = {ev!r:<8} value {float(d)!r:<12} "
                         f"error {float(d) - v:.6g}{note}")
    lines.append("decoded      element value * X (exact); the error column is decoded - x")
    return lines


MINIFLOAT_OPTIONS = ("rounding", "overflow")
MX_OPTIONS = ("scale_rule", "rounding")


def explain_block_format(spec, value, **options):
    """The worked example of a minifloat or an MX format, or None when ``spec`` names neither."""
    text = str(spec).strip().lower()
    is_mx = text in mx.FORMATS
    is_mini = not is_mx and (text in mf.FORMATS or re.fullmatch(r"e\d+m\d+", text) is not None)
    if not (is_mx or is_mini):
        return None
    allowed = MX_OPTIONS if is_mx else MINIFLOAT_OPTIONS
    for name in options:
        if name not in allowed:
            raise InputError(f"option {name!r} does not apply to {text}: it takes {', '.join(allowed)}; leave it out")
    if is_mx:
        vals = value if isinstance(value, (list, tuple, np.ndarray)) else [value]
        return "\n".join(explain_mx(text, vals, **options))
    vals = value if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if len(vals) != 1:
        raise InputError(f"{text} explains one value at a time, got {len(vals)}; MX formats take a block of values")
    return "\n".join(explain_minifloat(float(vals[0]), mf.parse_minifloat(text), **options))


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
    shown = explain_block_format(spec, value, **options)
    if shown is not None:
        return shown
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != 1:
            raise InputError(f"{spec} explains one value at a time, got {len(value)}; MX formats take a block")
        value = value[0]
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
