"""Slow, obvious oracles for minifloats, MX quantization and the MX accumulation rules, in Python Fractions.

Each function works element by element from the written rules of ``docs/formats.md`` (sections 13 and 14),
independently of the vectorized codecs in :mod:`bitsim.formats.minifloat` and :mod:`bitsim.formats.mx` and
of the kernels in :mod:`bitsim.kernels.mx`.
"""

import bisect
import math
from functools import lru_cache
from fractions import Fraction

import numpy as np

from ..formats.minifloat import E2M1, E4M3, MinifloatFormat

NAN = float("nan")


def decode_one(code, fmt):
    """The value of one code from its fields (a Fraction, or a float for NaN and +-Inf)."""
    sign = (code >> (fmt.bits - 1)) & 1 if fmt.signed else 0
    e = (code >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)
    m = code & ((1 << fmt.man_bits) - 1)
    top = (1 << fmt.exp_bits) - 1
    if fmt.infinities and e == top:
        return NAN if m else (-math.inf if sign else math.inf)
    if fmt.nans and not fmt.infinities and e == top and m == (1 << fmt.man_bits) - 1:
        return NAN
    if fmt.zero and e == 0 and m == 0:
        return Fraction(0)
    if e == 0 and fmt.subnormals:
        v = Fraction(m, 1 << fmt.man_bits) * Fraction(2) ** (1 - fmt.bias)
    else:
        v = (1 + Fraction(m, 1 << fmt.man_bits)) * Fraction(2) ** (e - fmt.bias)
    return -v if sign else v


@lru_cache(maxsize=64)
def finite_magnitudes(fmt):
    """Sorted ``[(value, code), ...]`` of the non-negative finite values, with the next value the format
    would have with an unbounded exponent appended (its code one above the largest finite code)."""
    out = []
    for c in range(1 << (fmt.bits - 1) if fmt.signed else 1 << fmt.bits):
        v = decode_one(c, fmt)
        if isinstance(v, Fraction):
            out.append((v, c))
    out.sort()
    top, code = out[-1]
    e = math.floor(math.log2(top))
    while Fraction(2) ** (e + 1) <= top:
        e += 1
    while Fraction(2) ** e > top:
        e -= 1
    out.append((top + Fraction(2) ** (e - fmt.man_bits), code + 1))
    return out


def encode_one(x, fmt, rounding="nearest_even", overflow="saturate", u=None):
    """One value's code by the written rule; ``u`` is the uint32 draw of stochastic rounding.

    Returns the code, or the string ``'error'`` where the rule raises.
    """
    if isinstance(x, float) and math.isnan(x):
        if not fmt.nans:
            return "error"
        code = (1 << fmt.bits) - 1 if not fmt.infinities else ((((1 << fmt.exp_bits) - 1) << fmt.man_bits)
                                                              | (1 << (fmt.man_bits - 1)))  # quiet NaN
        code &= ~(1 << (fmt.bits - 1)) if fmt.signed else (1 << fmt.bits) - 1
        return code | ((1 << (fmt.bits - 1)) if fmt.signed and math.copysign(1, x) < 0 else 0)
    neg = math.copysign(1, x) < 0
    mags = finite_magnitudes(fmt)
    smax, cmax = mags[-2]
    sign = (1 << (fmt.bits - 1)) if fmt.signed and neg else 0
    inf_code = cmax + 1
    nan_code = ((1 << fmt.bits) - 1) & ~((1 << (fmt.bits - 1)) if fmt.signed else 0)
    if fmt.infinities:
        nan_code = (((1 << fmt.exp_bits) - 1) << fmt.man_bits) | (1 << (fmt.man_bits - 1))
    if not fmt.signed and (neg or x == 0):
        return "error" if overflow == "error" else (nan_code if overflow == "nonfinite" else mags[0][1])
    if math.isinf(x):
        if overflow == "error":
            return "error"
        if overflow == "saturate":
            return cmax | sign
        return (inf_code if fmt.infinities else nan_code) | sign
    a = abs(Fraction(x))
    if a < mags[0][0]:
        return mags[0][1] | sign
    i = bisect.bisect_right([v for v, _ in mags], a) - 1
    lo, clo = mags[i]
    if a == lo or i == len(mags) - 1:
        j = i
    else:
        hi = mags[i + 1][0]
        mid = (lo + hi) / 2
        up = {"toward_zero": False, "ceil": not neg, "floor": neg, "nearest_even": a > mid or (a == mid and clo % 2 == 1),
              "nearest_away": a >= mid, "nearest_up": a > mid or (a == mid and not neg)}.get(rounding)
        if rounding == "stochastic":
            up = u < math.floor((a - lo) / (hi - lo) * 2**32)
        j = i + 1 if up else i
    if j >= len(mags) - 1:
        if overflow == "error":
            return "error"
        if overflow == "saturate":
            return cmax | sign
        keep = rounding == "toward_zero" or (rounding == "floor" and not neg) or (rounding == "ceil" and neg)
        return (cmax if keep else inf_code if fmt.infinities else nan_code) | sign
    return mags[j][1] | sign


def round_to_float32(q):
    """A Fraction rounded once to float32 (nearest, ties to even; beyond the range +-inf), as a float."""
    if q == 0:
        return 0.0
    neg, a = q < 0, abs(q)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    ls = max(e - 23, -149)
    scaled = a / Fraction(2) ** ls
    n = math.floor(scaled)
    rest = scaled - n
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and n % 2 == 1):
        n += 1
    v = Fraction(n) * Fraction(2) ** ls
    f = math.inf if v >= Fraction(2) ** 128 else float(v)
    return -f if neg else f


def mx_values(t):
    """An MXTensor's values as a nested list of Fractions (NaN as float NaN), from the written rule."""
    el, block = t.fmt.element, t.fmt.block
    codes = np.moveaxis(np.asarray(t.codes), t.axis, -1)
    scales = np.moveaxis(np.asarray(t.scales), t.axis, -1)
    flat_c = codes.reshape(-1, codes.shape[-1])
    flat_s = scales.reshape(-1, scales.shape[-1])
    rows = []
    for rc, rs in zip(flat_c, flat_s):
        row = []
        for k, c in enumerate(rc):
            s = int(rs[k // block])
            if isinstance(el, MinifloatFormat):
                v = decode_one(int(c), el)
            else:
                v = Fraction(int(np.uint8(c).view(np.int8)), 64)
            if s == 0xFF or not isinstance(v, Fraction):
                row.append(NAN)
            else:
                row.append(v * Fraction(2) ** (s - 127))
        rows.append(row)
    return rows


def gemm_exact(a, b):
    """The exact rule: the exact sum of every product, rounded once to float32; NaN if any block is NaN."""
    av, bv = mx_values(a), mx_values(b)  # a rows (M, K); b blocked along axis 0: rows are b's columns
    out = np.empty((len(av), len(bv)), np.float32)
    for i, ra in enumerate(av):
        for j, rb in enumerate(bv):
            if any(isinstance(x, float) for x in ra) or any(isinstance(y, float) for y in rb):
                out[i, j] = np.nan
            else:
                out[i, j] = round_to_float32(sum((x * y for x, y in zip(ra, rb)), Fraction(0)))
    return out


def element_rows(t):
    """``(elements, scales)``: per row (per column of a tensor blocked along axis 0), the element values
    (Fractions; NaN/Inf as floats) and the block scales (Fractions, None for the NaN scale)."""
    el = t.fmt.element
    codes = np.moveaxis(np.asarray(t.codes), t.axis, -1)
    scales = np.moveaxis(np.asarray(t.scales), t.axis, -1)
    codes, scales = codes.reshape(-1, codes.shape[-1]), scales.reshape(-1, scales.shape[-1])
    elements = [[decode_one(int(c), el) if isinstance(el, MinifloatFormat) else Fraction(int(np.uint8(c).view(np.int8)), 64)
                 for c in row] for row in codes]
    return elements, [[None if int(s) == 0xFF else Fraction(2) ** (int(s) - 127) for s in row] for row in scales]


def add_float32(x, y):
    """``fl32(x + y)`` of two float32 values held as Fractions or as float +-Inf / NaN, by IEEE-754: an exact sum
    rounded once by :func:`round_to_float32`; Inf plus a finite value is that Inf, Inf - Inf and NaN give NaN."""
    if isinstance(x, Fraction) and isinstance(y, Fraction):
        return as_exact(round_to_float32(x + y))
    return as_exact(float(x) + float(y))


def as_exact(f):
    """A float32 result as a Fraction when finite, else the float (+-Inf or NaN) itself."""
    return Fraction(f) if math.isfinite(f) else f


def gemm_float32(a, b):
    """The float32 rule: per block ``s = fl32(s + a_k * b_k)`` in k order, then ``acc = fl32(acc + fl32(s * X_a *
    X_b))`` in block order, each step rounded by :func:`round_to_float32` (beyond float32's range +-Inf, then
    IEEE-754: Inf - Inf is NaN); any NaN result is the quiet NaN 0x7fc00000."""
    ea, sa = element_rows(a)
    eb, sb = element_rows(b)
    block = a.fmt.block
    out = np.empty((len(ea), len(eb)), np.float32)
    for i in range(len(ea)):
        for j in range(len(eb)):
            acc, nan = Fraction(0), False
            for blk in range(len(sa[i])):
                xa, xb = sa[i][blk], sb[j][blk]
                part = list(zip(ea[i][blk * block:(blk + 1) * block], eb[j][blk * block:(blk + 1) * block]))
                if xa is None or xb is None or any(not isinstance(p, Fraction) or not isinstance(q, Fraction)
                                                   for p, q in part):
                    nan = True
                    break
                s = Fraction(0)
                for p, q in part:
                    s = Fraction(round_to_float32(s + p * q))
                acc = add_float32(acc, as_exact(round_to_float32(s * xa * xb)))
            acc = float(acc)
            out[i, j] = np.nan if nan or math.isnan(acc) else acc
    return out


def floor_log2(q):
    """``floor(log2(q))`` of a positive Fraction, exactly."""
    e = q.numerator.bit_length() - q.denominator.bit_length()
    while Fraction(2) ** e > q:
        e -= 1
    while Fraction(2) ** (e + 1) <= q:
        e += 1
    return e


def shared_exponent_one(amax, element, rule):
    """A block's shared exponent by the written scale rule, from its largest magnitude (a positive Fraction)."""
    top = Fraction(element.max)
    if rule == "floor":
        return floor_log2(amax) - element.emax
    if rule == "ceil_log2":
        e = floor_log2(amax)
        return (e if Fraction(2) ** e == amax else e + 1) - element.emax
    if rule == "ceil":
        e = floor_log2(amax / top)
        return e if Fraction(2) ** e >= amax / top else e + 1
    if rule == "rceil":
        a32 = round_to_float32(amax)
        d = math.inf if math.isinf(a32) else round_to_float32(Fraction(a32) / top)
        if math.isinf(d):
            return 1 << 20
        if d == 0:
            return -(1 << 20)
        d = Fraction(d)
        e = floor_log2(d)
        return e if Fraction(2) ** e == d else e + 1
    step = Fraction(2) ** (floor_log2(amax) - element.man_bits)  # even: round amax to man_bits, ties away
    r = math.floor(amax / step + Fraction(1, 2)) * step
    return floor_log2(r) - element.emax


def mx_quantize_block(values, element, rule="floor"):
    """``(scale code, element codes)`` of one block of floats by the written MX rule (round to nearest even)."""
    if any(not math.isfinite(v) for v in values):
        return 0xFF, [0] * len(values)
    amax = max(abs(Fraction(v)) for v in values)
    e = -127 if amax == 0 else min(127, max(-127, shared_exponent_one(amax, element, rule)))
    codes = []
    for v in values:
        q = Fraction(v) / Fraction(2) ** e
        if isinstance(element, MinifloatFormat):  # a zero keeps its sign: -0.0 gives the negative zero code
            codes.append(encode_one(float(v) if v == 0 else float(q), element, "nearest_even", "saturate"))
        else:
            s = q * 64
            n = math.floor(s)
            if s - n > Fraction(1, 2) or (s - n == Fraction(1, 2) and n % 2):
                n += 1
            codes.append(min(127, max(-128, n)) & 0xFF)
    return e + 127, codes


def nvfp4_quantize_row(values, block=16):
    """``(tensor scale, block scale codes, element codes)`` of a row of real values by the NVFP4 rule.

    Each value is first rounded to float32 (one :func:`round_to_float32`), and so is every float32 operation of
    the rule (``docs/formats.md``, section 14.3), from the exact Fraction result; a tensor scale that rounds to
    zero is ``2**-149``. The tensor scale is returned as a float.
    """
    xs = [float(v) if v == 0 else round_to_float32(Fraction(v)) for v in values]  # a zero keeps its sign
    if any(math.isinf(v) for v in xs):
        raise ValueError("a value rounds beyond float32's range; the NVFP4 rule refuses it")
    amax = max((abs(Fraction(v)) for v in xs), default=Fraction(0))
    t = Fraction(round_to_float32(amax / 2688)) if amax > 0 else Fraction(1)
    t = max(t, Fraction(1, 2**149))
    scales, codes = [], []
    for b in range(0, len(xs), block):
        part = xs[b:b + block]
        bmax = max(abs(Fraction(v)) for v in part)
        s = encode_one(round_to_float32(Fraction(round_to_float32(bmax / 6)) / t), E4M3, "nearest_even", "saturate")
        scales.append(s)
        div = Fraction(round_to_float32(decode_one(s, E4M3) * t))
        for v in part:
            q = 0.0 if div == 0 else (v if v == 0 else round_to_float32(Fraction(v) / div))
            codes.append(encode_one(q, E2M1, "nearest_even", "saturate"))
    return float(t), scales, codes


def pack_bit_stream(codes, width, group):
    """Bytes (ints) of ``width``-bit codes as one little-endian bit stream: code ``i`` in bits ``i * width`` ..
    ``i * width + width - 1`` of the stream, byte ``k`` holding bits ``8k .. 8k + 7``; padded with zero codes to
    a multiple of ``group`` codes."""
    codes = [int(c) for c in codes]
    codes += [0] * (-len(codes) % group)
    stream = 0
    for i, c in enumerate(codes):
        stream |= c << (i * width)
    return list(stream.to_bytes(len(codes) * width // 8, "little"))
