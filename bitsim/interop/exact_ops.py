"""Level 2, ``exact`` semantics: integer codes, exact products and sums, thresholds as integer compares.

Every tensor is an :class:`~bitsim.interop.exact_tensor.Exact` (codes times an exact scale), so no op
rounds except where its definition rounds (Quant's rounding mode, Trunc). The rules, op by op, are in
``docs/qonnx.md`` ("Level 2"). An op with no exact rule here (``BatchNormalization``, and
the unusual forms listed there) is computed by the reference rule on its inputs rounded once to
float32, and its output is marked as rounded (None in the returned ``tensors``); so are the ops after it,
until a quantizer (:data:`QUANTIZERS`) takes its exact value again.
"""

import math
from collections import Counter
from fractions import Fraction

import numpy as np

from ..errors import InputError
from ..kernels.thresholds import threshold_counts
from . import float_ops
from .batches import LazyTensors
from .exact_tensor import (
    INT64_SAFE,
    Exact,
    NonFinite,
    NonFiniteError,
    add,
    add_exact,
    as_codes,
    common_scale,
    constant_of,
    exact_of_float,
    fractions,
    max_abs,
    multiply,
    reduce_scale,
    rescale,
    round_ratio,
    to_float32,
    widen,
)
from .integer_products import Operand, matmul_codes

INT64_MIN = np.iinfo(np.int64).min
MAX_GRID_BITS = 4096  # FloatQuant: the exact rule's codes span at most this many bits
MAX_INT_BITS = 4096  # Quant, Trunc: the exact rule's integer bit widths are 1..MAX_INT_BITS
EXACT_OPS = ("Quant", "IntQuant", "BipolarQuant", "FloatQuant", "Trunc", "MultiThreshold", "XnorPopcountMatMul",
             "MatMul", "Gemm", "Conv", "Add", "Sub", "Mul", "Div", "Relu", "Sign", "Identity", "Flatten", "Reshape",
             "Transpose", "Concat", "MaxPool", "GlobalAveragePool", "AveragePool")  # ops with an exact rule
QUANTIZERS = ("Quant", "IntQuant", "BipolarQuant", "MultiThreshold", "Trunc", "FloatQuant")  # exact again
COUNTED = ("Quant", "IntQuant")  # quantizers whose saturations and underflows run_exact counts


class NoExactRule(Exception):
    """This node, in this form, has no exact rule: compute it by the reference rule."""


def _frac_array(x):
    """The exact Fractions of an array's values."""
    return fractions(np.asarray(x))


def _lcm_den(values):
    """The least common multiple of the denominators of Fractions."""
    d = 1
    for v in values:
        d = math.lcm(d, v.denominator)
    return d


def constant_ints(x, what):
    """The integer values of a constant array (raises NoExactRule when one is not an integer)."""
    x = np.asarray(x)
    if not np.all(np.isfinite(x)) or not np.all(x == np.round(x)):
        raise NoExactRule(f"{what} is not an integer")
    return x


def scale_along(e, axis):
    """The scale of ``e`` as one value per index of ``axis`` (raises NoExactRule if it varies elsewhere)."""
    s = e.scale_full()
    moved = np.moveaxis(s, axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    if any(len(set(flat[:, j].tolist())) != 1 for j in range(flat.shape[1])):
        raise NoExactRule("the scale varies along more than one axis")
    return flat[0]


# ------------------------------------------------------------------------------------------------
# QONNX custom ops


def padded(a, ndim):
    """``a`` with leading axes of length 1 up to ``ndim`` axes."""
    return a.reshape((1,) * (ndim - a.ndim) + a.shape) if a.ndim <= ndim else a


def scaled(x, s, z):
    """``x / s + z`` exactly, as integer numerators over positive integer denominators ``(num, den)``."""
    xs = x.scale_full()
    ratio = xs / padded(s, xs.ndim)
    ratio, z = np.broadcast_arrays(ratio, padded(z, ratio.ndim))
    den = np.vectorize(lambda r, v: _lcm_den([r, v]), otypes=[object])(ratio, z)
    num = add(multiply(x.codes, as_codes(ratio * den)), as_codes(z * den))
    return num, as_codes(den)


def clamp_ratio(num, den, low, high):
    """``num / den`` limited to the integers ``[low, high]`` (still over ``den``)."""
    num = np.where(num > multiply(den, high), multiply(den, high), num)
    return np.where(num < multiply(den, low), multiply(den, low), num)


def shifted_back(q, z, s):
    """The exact tensor ``(q - z) * s`` for integer codes ``q``: codes ``q * zd - zn``, scale ``s / zd``."""
    zd = np.vectorize(lambda v: v.denominator, otypes=[object])(z) if z.size else z
    zn = np.vectorize(lambda v: v.numerator, otypes=[object])(z) if z.size else z
    codes = add(multiply(q, as_codes(zd)), multiply(as_codes(zn), np.int64(-1)))
    out_scale = np.broadcast_arrays(s, zd)[0] / zd
    return Exact(as_codes(codes), reduce_scale(out_scale))


def _one_int(value, what):
    """The one integer a constant holds (raises NoExactRule when it is not one integer)."""
    value = constant_ints(value, what)
    if value.size != 1:
        raise NoExactRule(f"{what} per element")
    return int(value.reshape(-1)[0])


def _bit_width(value, what):
    """The integer bit width a constant holds (raises NoExactRule outside 1..MAX_INT_BITS)."""
    b = _one_int(value, what)
    if not 1 <= b <= MAX_INT_BITS:
        raise NoExactRule(f"{what} {b} outside 1..{MAX_INT_BITS}")
    return b


def _positive_scale(scale):
    """The exact Fractions of a scale (raises NoExactRule when one is not positive)."""
    s = _frac_array(scale)
    if any(v <= 0 for v in s.reshape(-1).tolist()):
        raise NoExactRule("a scale that is not positive")
    return s


def quant(x, scale, zero_point, bits, signed, narrow, mode, events=None):
    """``Quant`` on an exact input: codes ``q = round(clamp(x / scale + zero_point))`` exactly.

    With ``events`` (a :class:`collections.Counter`), adds its ``saturated`` values (``round(x / scale +
    zero_point)`` outside the code range) and ``underflows`` (nonzero values whose output is 0).
    """
    b = _bit_width(bits, "Quant's bit width")
    s, z = _positive_scale(scale), _frac_array(zero_point)
    num, den = scaled(x, s, z)
    if signed and b == 1:
        q = np.where(np.asarray(num >= 0), 1, -1).astype(np.int64)
    else:
        low, high = (int(v) for v in float_ops.int_range(bool(signed), bool(narrow), b))
        if events is None:
            q = round_ratio(clamp_ratio(num, den, low, high), den, mode)
        else:  # the same q: every mode is monotone and keeps integers, so the clamp may come after rounding
            r = round_ratio(num, den, mode)
            if max(-low, high) >= INT64_SAFE:
                r = widen(r)
            above, below = r > high, r < low
            events["saturated"] += int(np.count_nonzero(above | below))
            q = as_codes(np.where(above, high, np.where(below, low, r)))
    out = shifted_back(q, z, s)
    if events is not None:
        nonzero = (np.asarray(x.codes) != 0) & (x.scale_full() != 0)
        nonzero, zero = np.broadcast_arrays(nonzero, np.asarray(out.codes) == 0)
        events["underflows"] += int(np.count_nonzero(nonzero & zero))
    return out


def floor_log2(num, den):
    """``floor(log2(|num| / den))`` per element, exactly (0 where ``num`` is 0); ``den > 0``."""
    mag, den = np.broadcast_arrays(np.abs(np.asarray(num)), np.asarray(den))
    if mag.dtype != object and den.dtype != object and max(max_abs(mag), max_abs(den)) < 1 << 53:
        mag, den = mag.astype(np.float64), den.astype(np.float64)  # exact: integers below 2**53
        e = np.frexp(mag)[1].astype(np.int64) - np.frexp(den)[1]
        e = np.where(np.ldexp(mag, -e) < den, e - 1, e)  # a power-of-two scaling, exact
        return np.where(mag == 0, 0, e)
    out = np.zeros(mag.shape, np.int64)
    for i, (n, d) in enumerate(zip(mag.reshape(-1).tolist(), den.reshape(-1).tolist())):
        if n:
            e = int(n).bit_length() - int(d).bit_length()
            out.flat[i] = e - 1 if (n << max(-e, 0)) < (d << max(e, 0)) else e
    return out


def shifted_left(a, k):
    """``a * 2**k`` element-wise for integer ``a`` and ``k >= 0``, exactly."""
    k = np.asarray(k)
    if a.dtype != object and max_abs(a) < INT64_SAFE >> int(k.max(initial=0)):
        return np.left_shift(a.astype(np.int64), k)
    return np.left_shift(widen(a), widen(k))


def float_quant(x, scale, exp_bits, man_bits, bias, max_val, mode, saturation):
    """``FloatQuant`` on an exact input (``docs/qonnx.md``, "Level 2"): ``y = x / scale`` exactly; the grid step
    ``2**u`` of its binade, ``u = max(floor(log2|y|) - man_bits, 1 - bias - man_bits)``; ``q = round(y / 2**u)``
    by the rounding mode; ``q * 2**u`` clamped to ``+-M`` (``M`` the reference rule's bound,
    :func:`bitsim.interop.float_ops.float_quant_max` and ``max_val``); times ``scale``."""
    e, m, b = (_one_int(v, what) for v, what in ((exp_bits, "FloatQuant's exponent width"),
                                                (man_bits, "FloatQuant's mantissa width"),
                                                (bias, "FloatQuant's exponent bias")))
    if np.asarray(max_val).size != 1:
        raise NoExactRule("a maximum value per element")
    s = _positive_scale(scale)
    with np.errstate(all="ignore"):
        top = np.minimum(_float_quant_max_of(exp_bits, man_bits, bias), max_val)
    top = float(np.asarray(top).reshape(-1)[0])
    if np.isnan(top) or top < 0:
        raise NoExactRule("a maximum value that is NaN or negative")
    lowest = 1 - b - m
    if abs(lowest) > MAX_GRID_BITS or not 0 <= m <= MAX_GRID_BITS:
        raise NoExactRule(f"a FloatQuant grid of more than {MAX_GRID_BITS} bits")
    num, den = scaled(x, s, _frac_array(np.zeros((), np.float32)))
    u = np.maximum(floor_log2(num, den) - m, lowest)
    num, den = np.broadcast_arrays(num, den)
    q = round_ratio(shifted_left(num, np.maximum(-u, 0)), shifted_left(den, np.maximum(u, 0)), mode)
    codes = shifted_left(as_codes(q), u - lowest)  # in units of 2**lowest
    g = Fraction(2) ** lowest
    if np.isfinite(top):
        t = Fraction(top)
        if t.denominator > g.denominator:  # a bound finer than the grid: a finer common scale
            codes, g = shifted_left(codes, np.int64((t.denominator // g.denominator).bit_length() - 1)), \
                Fraction(1, t.denominator)
        limit = int(t / g)  # t is a multiple of g
        above, below = codes > limit, codes < -limit
        if not saturation and np.any(above | below):
            raise InputError(f"FloatQuant without saturation sends {int(np.count_nonzero(above | below))} value(s) "
                             f"beyond +-{top!r} to inf or NaN, which the exact level (finite values only) cannot "
                             "hold; run this input at the reference level (semantics='reference')")
        codes = np.where(above, limit, np.where(below, -limit, codes))
    return Exact(as_codes(codes), reduce_scale(s * g))


def _float_quant_max_of(exp_bits, man_bits, bias):
    """The reference rule's largest FloatQuant magnitude for these constants."""
    return float_ops.float_quant_max(np.asarray(exp_bits), np.asarray(man_bits), np.asarray(bias))


def trunc(x, args, version, signed, narrow, mode):
    """``Trunc``: ``y = round_half_even(x / s + z)`` exactly, then ``y / 2**t`` rounded by the mode (opset 1), or
    ``y / t`` for the power of two ``t`` of the reference rule, clamped to ``out_bits``, rounded (opset 2)."""
    s, z = _positive_scale(args[0]), _frac_array(args[1])
    num, den = scaled(x, s, z)
    y = round_ratio(num, den, "ROUND")
    if version < 2:
        t = _one_int(args[2], "Trunc's input bit width") - _one_int(args[3], "Trunc's output bit width")
        step = Fraction(2) ** t
        q = round_ratio(multiply(y, step.denominator), np.int64(step.numerator), mode) if abs(t) < 62 else None
        if q is None:
            raise NoExactRule("a shift of 62 bits or more")
        return shifted_back(q, z, s)
    out_scale = _frac_array(args[3])
    if any(v <= 0 for v in out_scale.reshape(-1).tolist()):
        raise NoExactRule("an output scale that is not positive")
    with np.errstate(all="ignore"):
        t = 2 ** np.round(np.log2(np.asarray(args[3]) / np.asarray(args[0])))  # the reference rule's power of two
    step = _frac_array(t)
    if step.size != 1 or not np.isfinite(t).all() or step.reshape(-1)[0] == 0:
        raise NoExactRule("a truncation step per element")
    step = step.reshape(-1)[0]
    low, high = (int(v) for v in float_ops.int_range(bool(signed), bool(narrow), _bit_width(args[4], "Trunc's bits")))
    num, den = multiply(y, step.denominator), np.int64(step.numerator)
    q = round_ratio(clamp_ratio(num, den, low, high), den, mode)
    return shifted_back(q, np.asarray(z / step, dtype=object), out_scale)


def bipolar_quant(x, scale):
    """``BipolarQuant``: codes ``+1 if code >= 0 else -1`` (positive input scale), scale ``scale``."""
    if not x.positive():
        raise NoExactRule("a scale that is not positive")
    q = np.where(np.asarray(x.codes >= 0), 1, -1).astype(np.int64)
    return Exact(q, reduce_scale(_frac_array(scale)))


def integer_thresholds(t, scale, channels):
    """``ceil(t / scale)`` per threshold and channel, so that ``code * scale >= t`` exactly when
    ``code >= ceil(t / scale)``; None for +inf (never met), the int64 minimum for -inf (always met)."""
    t = np.asarray(t)
    if t.ndim != 2 or t.shape[0] not in (1, channels):
        raise InputError(f"MultiThreshold: thresholds of shape {t.shape} for {channels} channels; give one row "
                         "per channel or a single row")
    rows = max(t.shape[0], max(1, len(scale)))
    tint = np.empty((rows, t.shape[1]), dtype=object)
    for c in range(rows):
        s = scale[c % len(scale)]
        for j in range(t.shape[1]):
            value = float(t[c % t.shape[0], j])
            if np.isnan(value):
                raise NoExactRule("a NaN threshold")
            tint[c, j] = (None if value > 0 else INT64_MIN) if np.isinf(value) else -((-Fraction(value)) // s)
    return tint


def multithreshold(v, thresholds, out_scale, out_bias, data_layout):
    """``MultiThreshold``: count of thresholds met, by integer compares of the codes."""
    if not v.positive():
        raise NoExactRule("a scale that is not positive")
    axis = float_ops.channel_axis(v.codes, data_layout) % v.codes.ndim
    scale = scale_along(v, axis)
    channels = v.codes.shape[axis]
    key = ("thresholds", tuple(scale.tolist()))
    if key not in thresholds.cache:
        thresholds.cache[key] = integer_thresholds(to_float32(thresholds), scale, channels)
    tint = thresholds.cache[key]
    biggest = max_abs(v.codes) + 1
    wide = biggest >= INT64_SAFE  # codes beyond int64: compared as Python ints
    clipped = np.vectorize(lambda q: biggest if q is None else max(-biggest, min(biggest, q)),
                           otypes=[object if wide else np.int64])(tint)
    codes = np.asarray(v.codes)
    a, b = Fraction(float(np.float32(out_scale))), Fraction(float(np.float32(out_bias)))
    g = common_scale([np.array(a, dtype=object), np.array(b, dtype=object)]).reshape(()).item()
    step, offset = int(a / g), int(b / g)
    bounds = sorted((offset, step * clipped.shape[1] + offset))
    moved = np.moveaxis(codes, axis, -1)
    if wide:
        met = np.count_nonzero(np.asarray(moved, dtype=object)[..., None] >= clipped, axis=-1)
        result = Exact(as_codes(np.moveaxis(add(multiply(met, step), offset), -1, axis)), np.array(g, dtype=object))
        result.cache["bounds"] = tuple(bounds)
        return result
    if codes.dtype == object:
        moved = moved.astype(np.int64)
    flat = moved.reshape(-1, moved.shape[-1])
    if bounds[0] >= -128 and bounds[1] <= 127:
        out_dtype = np.int8
    elif bounds[0] >= -(1 << 31) and bounds[1] < 1 << 31:
        out_dtype = np.int32
    else:
        out_dtype = None
    if out_dtype is not None:
        count = threshold_counts(flat, clipped.astype(np.int64), step, offset, out_dtype)
    else:
        count = add(multiply(threshold_counts(flat, clipped.astype(np.int64)), step), offset)
    out = np.moveaxis(count.reshape(moved.shape), -1, axis)
    result = Exact(as_codes(out), np.array(g, dtype=object))
    result.cache["bounds"] = tuple(bounds)
    return result


def xnor_popcount(a, b):
    """``XnorPopcountMatMul`` of {0, 1} codes: ``(bipolar(a) @ bipolar(b) + K) / 2`` with the XNOR route."""
    if a.scalar_scale() != 1 or b.scalar_scale() != 1 or b.codes.ndim != 2:
        raise NoExactRule("operands that are not {0, 1} tensors")
    k = a.codes.shape[-1]
    lead = a.codes.shape[:-1]
    acc, _ = matmul_codes(2 * np.asarray(a.codes, np.int64).reshape(-1, k) - 1,
                          (2 * np.asarray(b.codes, np.int64) - 1).T.copy())
    return Exact(as_codes(add(acc, np.int64(k)).reshape(lead + (b.codes.shape[1],))),
                 np.array(Fraction(1, 2), dtype=object))


# ------------------------------------------------------------------------------------------------
# products


def matmul(a, b):
    """``MatMul`` of a (..., K) tensor by a (K, N) tensor: exact integer accumulators."""
    if b.codes.ndim != 2 or a.codes.ndim < 1:
        raise NoExactRule("a product that is not (..., K) x (K, N)")
    k = b.codes.shape[0]
    sa = a.scale_full()
    if sa.shape[-1] != 1:
        raise NoExactRule("a scale that varies along the reduced axis")
    sb = b.scale_full()
    if sb.shape[0] != 1:
        raise NoExactRule("a scale that varies along the reduced axis")
    lead = a.codes.shape[:-1]
    acc, _ = matmul_codes(Operand(np.asarray(a.codes).reshape(-1, k), a.cache.get("bounds")),
                          operand(b, lambda c: np.asarray(c).T))
    acc = acc.reshape(lead + (b.codes.shape[1],))
    return Exact(acc, reduce_scale(sa * sb.reshape((1,) * (sa.ndim - 1) + sb.shape[-1:])))


def operand(e, rows):
    """The :class:`Operand` of ``rows(e.codes)``, kept with ``e`` (a constant keeps it across runs)."""
    if "operand" not in e.cache:
        e.cache["operand"] = Operand(rows(e.codes))
    return e.cache["operand"]


def _transposed(e):
    """The 2-D exact tensor ``e`` transposed, its scale with it."""
    return Exact(np.asarray(e.codes).T, e.scale_full().T)


def gemm(a, b, c, alpha, beta, trans_a, trans_b):
    """``Gemm``: ``alpha * A @ B + beta * C`` exactly, after the transposes asked for."""
    a = _transposed(a) if trans_a else a
    b = _transposed(b) if trans_b else b
    if a.codes.ndim != 2:
        raise NoExactRule("Gemm of a tensor that is not 2-D")
    out = matmul(a, b)
    out = Exact(out.codes, reduce_scale(out.scale_full() * Fraction(float(np.float32(alpha)))))
    if c is not None:
        c = Exact(c.codes, c.scale_full() * Fraction(float(np.float32(beta))))
        out = add_exact(out, c)
    return out


def conv(x, w, bias, attrs):
    """2-D ``Conv`` (groups, pads, strides, dilations) as an integer im2col product per group."""
    if x.codes.ndim != 4 or attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
        raise NoExactRule("a convolution that is not 2-D with explicit pads")
    if x.scalar_scale() is None:
        raise NoExactRule("an input scale that varies")
    n, _, h, wd = x.codes.shape
    o, cg, kh, kw = w.codes.shape
    group = attrs.get("group", 1)
    sh, sw = attrs.get("strides", [1, 1])
    dh, dw = attrs.get("dilations", [1, 1])
    pt, pl, pb, pr = attrs.get("pads", [0, 0, 0, 0])
    codes = np.asarray(x.codes, dtype=np.int64)
    padded = np.pad(codes, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    rows = np.arange(oh)[:, None] * sh + np.arange(kh)[None, :] * dh  # (oh, kh)
    cols = np.arange(ow)[:, None] * sw + np.arange(kw)[None, :] * dw  # (ow, kw)
    # patches[n, c, oh, ow, kh, kw]
    patches = padded[:, :, rows[:, None, :, None], cols[None, :, None, :]]
    sw_ = w.scale_full()
    if sw_.shape[1:] != (1, 1, 1):
        raise NoExactRule("a weight scale that varies inside a filter")
    out = np.empty((n, o, oh, ow), dtype=np.int64)
    og = o // group
    wcodes = np.asarray(w.codes, dtype=np.int64)
    for g in range(group):
        p = patches[:, g * cg:(g + 1) * cg].transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, cg * kh * kw)
        key = f"operand{g}"
        if key not in w.cache:
            w.cache[key] = Operand(np.ascontiguousarray(wcodes[g * og:(g + 1) * og].reshape(og, cg * kh * kw)))
        acc, _ = matmul_codes(np.ascontiguousarray(p), w.cache[key])
        out[:, g * og:(g + 1) * og] = acc.reshape(n, oh, ow, og).transpose(0, 3, 1, 2)
    result = Exact(out, reduce_scale(x.scalar_scale() * np.broadcast_to(sw_, (o, 1, 1, 1)).reshape(1, o, 1, 1)))
    if bias is not None:
        bias_scale = np.broadcast_to(bias.scale_full(), bias.codes.shape).reshape(1, o, 1, 1)
        result = add_exact(result, Exact(np.asarray(bias.codes).reshape(1, o, 1, 1), reduce_scale(bias_scale)))
    return result


# ------------------------------------------------------------------------------------------------
# element-wise and data movement


def multiply_exact(a, b):
    """``Mul``: codes multiplied, scales multiplied."""
    return Exact(multiply(a.codes, b.codes), reduce_scale(a.scale_full() * b.scale_full()))


def divide_exact(a, b, constant):
    """``Div`` by a constant: the scale divided by its float32 values, codes kept."""
    if not constant:
        raise NoExactRule("a division by a tensor that is not constant")
    values = to_float32(b)
    if np.any(values == 0):
        raise NoExactRule("a division by zero")
    fb = reduce_scale(fractions(values))
    fb = fb.reshape((1,) * (a.codes.ndim - fb.ndim) + fb.shape) if fb.ndim <= a.codes.ndim else fb
    scale = a.scale_full() / fb
    return Exact(np.broadcast_to(a.codes, np.broadcast_shapes(a.codes.shape, scale.shape)).copy(),
                 reduce_scale(scale))


def relu(x):
    """``Relu`` on the codes (positive scales)."""
    if not x.positive():
        raise NoExactRule("a scale that is not positive")
    return Exact(np.where(np.asarray(x.codes < 0), 0, x.codes).astype(x.codes.dtype), x.scale)


def sign(x):
    """``Sign`` of the codes (positive scales), scale 1."""
    if not x.positive():
        raise NoExactRule("a scale that is not positive")
    return Exact(np.sign(np.asarray(x.codes, dtype=np.int64)), np.array(Fraction(1), dtype=object))


def _same_scale(x):
    """The one scale of ``x`` (raises NoExactRule when it varies over the tensor)."""
    s = x.scalar_scale()
    if s is None:
        raise NoExactRule("a scale that varies over the tensor")
    return np.array(s, dtype=object)


def maxpool(x, attrs):
    """2-D ``MaxPool`` (floor mode, no dilation) on the codes; the scale may vary per channel only."""
    if x.codes.ndim != 4 or not x.positive() or attrs.get("ceil_mode", 0) or \
            any(d != 1 for d in attrs.get("dilations", [1, 1])) or \
            attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
        raise NoExactRule("a max pool other than 2-D, floor mode, no dilation")
    scale_along(x, 1)
    kh, kw = attrs["kernel_shape"]
    sh, sw = attrs.get("strides", [1, 1])
    pt, pl, pb, pr = attrs.get("pads", [0, 0, 0, 0])
    codes = np.pad(np.asarray(x.codes, np.int64), ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=INT64_MIN)
    h, w = codes.shape[2:]
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.full(codes.shape[:2] + (oh, ow), INT64_MIN, dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            out = np.maximum(out, codes[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw])
    return Exact(out, x.scale)


def global_average_pool(x):
    """``GlobalAveragePool``: codes summed exactly, scale divided by the window size."""
    if x.codes.ndim < 3:
        raise NoExactRule("a tensor without spatial axes")
    scale_along(x, 1)
    axes = tuple(range(2, x.codes.ndim))
    count = int(np.prod(x.codes.shape[2:]))
    total = widen(x.codes).sum(axis=axes, keepdims=True) if max_abs(x.codes) * count >= 1 << 62 else \
        np.asarray(x.codes, np.int64).sum(axis=axes, keepdims=True)
    return Exact(as_codes(total), reduce_scale(x.scale_full() / count))


def average_pool(x, attrs):
    """2-D ``AveragePool`` without padding: codes summed exactly, scale divided by the window size."""
    if x.codes.ndim != 4 or any(attrs.get("pads", [0, 0, 0, 0])) or attrs.get("ceil_mode", 0) or \
            attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
        raise NoExactRule("an average pool with padding or ceil mode")
    scale_along(x, 1)
    kh, kw = attrs["kernel_shape"]
    sh, sw = attrs.get("strides", [1, 1])
    codes = np.asarray(x.codes, np.int64)
    h, w = codes.shape[2:]
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    total = np.zeros(codes.shape[:2] + (oh, ow), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            total += codes[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
    return Exact(total, reduce_scale(x.scale_full() / (kh * kw)))


def concat(tensors, axis):
    """``Concat`` of tensors over a common scale."""
    g = reduce_scale(common_scale([t.scale_full() for t in tensors]))
    if g.size != 1:
        raise NoExactRule("scales that differ along the joined axis")
    return Exact(as_codes(np.concatenate([widen(rescale(t, g)) if any(np.asarray(rescale(t, g)).dtype == object
                                                                       for t in tensors) else rescale(t, g)
                                          for t in tensors], axis=axis)), g)


def run_exact_node(node, args, constant, events=None):
    """The exact output of ``node`` from exact inputs ``args`` (raises NoExactRule when there is none).

    A :class:`~bitsim.interop.exact_tensor.NonFinite` constant is taken only as ``MultiThreshold``'s
    thresholds; an op of :data:`EXACT_OPS` given one anywhere else refuses it, naming it and the node.
    A ``Quant`` adds its saturations and underflows to ``events`` (a Counter) when one is given.
    """
    op, at = node.op_type, node.attrs
    for i, a in enumerate(args):
        if isinstance(a, NonFinite) and not (op == "MultiThreshold" and i == 1):
            if op not in EXACT_OPS:
                raise NoExactRule(f"{op} has no exact rule")
            a.refuse(node)
    x = args[0] if args else None
    if op in ("Quant", "IntQuant"):
        s, z, b = (to_float32(a) for a in args[1:4])
        return quant(x, s, z, b, at.get("signed", 1), at.get("narrow", 0), at.get("rounding_mode", "ROUND"), events)
    if op == "BipolarQuant":
        return bipolar_quant(x, to_float32(args[1]))
    if op == "FloatQuant":
        return float_quant(x, *(to_float32(a) for a in args[1:6]), at.get("rounding_mode", "ROUND"),
                           at.get("saturation", 1))
    if op == "Trunc":
        return trunc(x, [to_float32(a) for a in args[1:]], node.version, at.get("signed", 1), at.get("narrow", 0),
                     at.get("rounding_mode", "FLOOR"))
    if op == "MultiThreshold":
        return multithreshold(x, args[1], at.get("out_scale", 1.0), at.get("out_bias", 0.0),
                              at.get("data_layout", ""))
    if op == "XnorPopcountMatMul":
        return xnor_popcount(*args)
    if op == "MatMul":
        return matmul(*args)
    if op == "Gemm":
        return gemm(args[0], args[1], args[2] if len(args) > 2 else None, at.get("alpha", 1.0),
                    at.get("beta", 1.0), at.get("transA", 0), at.get("transB", 0))
    if op == "Conv":
        return conv(args[0], args[1], args[2] if len(args) > 2 else None, at)
    if op == "Add":
        return add_exact(*args)
    if op == "Sub":
        return add_exact(args[0], args[1], sign=-1)
    if op == "Mul":
        return multiply_exact(*args)
    if op == "Div":
        return divide_exact(args[0], args[1], constant[1])
    if op == "Relu":
        return relu(x)
    if op == "Sign":
        return sign(x)
    if op == "Identity":
        return x
    if op == "Flatten":
        return Exact(float_ops.flatten(np.asarray(x.codes), at.get("axis", 1)), _same_scale(x))
    if op == "Reshape":
        shape = to_float32(args[1]).astype(np.int64)
        return Exact(float_ops.reshape(np.asarray(x.codes), shape, at.get("allowzero", 0)), _same_scale(x))
    if op == "Transpose":
        perm = at.get("perm")
        return Exact(np.transpose(x.codes, perm), reduce_scale(np.transpose(x.scale_full(), perm)))
    if op == "Concat":
        return concat(args, at["axis"])
    if op == "MaxPool":
        if len(node.outputs) > 1:
            raise NoExactRule("MaxPool's indices")
        return maxpool(x, at)
    if op == "GlobalAveragePool":
        return global_average_pool(x)
    if op == "AveragePool":
        return average_pool(x, at)
    raise NoExactRule(f"{op} has no exact rule")


def constants(graph):
    """The exact tensors that do not depend on the inputs (constants, and nodes of constants alone), computed
    once per graph; and those among them that an op without an exact rule rounded.

    The ``Quant`` nodes among them leave their events in ``graph.cache["constant_events"]`` (node name ->
    Counter, or None for a node computed by the reference rule).
    """
    if "exact_constants" not in graph.cache:
        batched = graph.batched()
        consts = {name: constant_of(value, name) for name, value in graph.initializers.items()}
        rounded = set()
        events = {}
        for node in graph.nodes:
            if any(name in batched for name in node.outputs):
                continue
            names = [name for name in node.inputs if name]
            counter = Counter() if node.op_type in COUNTED else None
            try:
                outs = [run_exact_node(node, [consts[n] for n in names], [True] * len(names), counter)]
            except NoExactRule:
                floats_in = [graph.initializers[n] if n in graph.initializers else to_float32(consts[n])
                             for n in names]
                outs = fallback_outputs(graph, node, floats_in)
                rounded.update(node.outputs)
                counter = None
            except NonFiniteError:
                raise  # names the tensor and the node already
            except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError) as err:
                raise InputError(f"node {node.name!r} ({node.op_type}) cannot run on its operands: "
                                 f"{str(err)[:200]}") from None
            consts.update(zip(node.outputs, outs))
            if node.op_type in COUNTED:
                events[node.name] = counter
        graph.cache["exact_constants"] = consts, rounded
        graph.cache["constant_events"] = events
    return graph.cache["exact_constants"]


def fallback_outputs(graph, node, floats_in):
    """The exact tensors of ``node``'s outputs computed by the reference rule from ``floats_in``."""
    outs = graph.run_node_checked(node, floats_in)
    return [exact_of_float(np.asarray(v), f"the output {name!r} of node {node.name!r} ({node.op_type}), computed "
                                          "by the reference rule (no exact rule),")
            for name, v in zip(node.outputs, outs)]


def run_exact(graph, inputs, names, codes=True, events=None):
    """Run ``graph`` at the exact level and give ``names`` (see :meth:`bitsim.interop.graph.Graph.run_exact`);
    without ``codes``, the exact tensors are not joined over the batches (the second result is empty).

    With ``events`` (a dict), every ``Quant`` node's saturations and underflows over the constants and the
    whole run are put in it: node name -> Counter, or None for a node computed by the reference rule.
    """
    ready, chunks = graph.prepare(inputs)
    consts, const_rounded = constants(graph)
    if events is not None:
        events.clear()
        for name, counter in graph.cache["constant_events"].items():
            events[name] = None if counter is None else Counter(counter)
    value_parts, exact_parts = [], []
    for c in range(chunks):
        context = dict(consts)
        for name, x in ready.items():
            context[name] = exact_of_float(x[c * (len(x) // chunks):(c + 1) * (len(x) // chunks)], f"input {name!r}")
        rounded = set(const_rounded)
        for node in graph.nodes:
            if node.outputs[0] in consts:
                continue
            ins = [name for name in node.inputs if name]
            args = [context[name] for name in ins]
            constant = [name in consts for name in ins]
            counter = None
            if events is not None and node.op_type in COUNTED:
                counter = events.setdefault(node.name, Counter())
            try:
                if any(name in rounded for name in ins) and node.op_type not in QUANTIZERS:
                    raise NoExactRule("an input was rounded")
                outs = [run_exact_node(node, args, constant, counter)]
            except NoExactRule:
                floats_in = [graph.initializers[n] if n in graph.initializers else to_float32(context[n])
                             for n in ins]
                outs = fallback_outputs(graph, node, floats_in)
                rounded.update(node.outputs)
                if counter is not None:
                    events[node.name] = None
            except NonFiniteError:
                raise  # names the tensor and the node already
            except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError) as err:
                raise InputError(f"node {node.name!r} ({node.op_type}) cannot run on its operands: "
                                 f"{str(err)[:200]}") from None
            for name, value in zip(node.outputs, outs):
                context[name] = value
        value_parts.append({name: context[name] for name in names})
        exact_parts.append({name: None if name in rounded else context[name] for name in names})
    batched = graph.batched()
    values = LazyTensors(value_parts, names, batched, to_float32)
    tensors = {}
    for name in names if codes else ():
        parts = [p[name] for p in exact_parts] if name in batched else [exact_parts[0][name]]
        tensors[name] = None if any(p is None for p in parts) else join_exact(parts)
    return values, tensors


def join_exact(parts):
    """Exact tensors of several batches joined along their first axis (their scales must agree)."""
    if len(parts) == 1:
        return parts[0]
    if all(np.array_equal(p.scale_full(), parts[0].scale_full()) for p in parts) and \
            parts[0].scale_full().shape[:1] in ((), (1,)):
        codes = [np.asarray(p.codes) for p in parts]
    else:
        g = reduce_scale(common_scale([p.scale_full() for p in parts]))
        if g.size != 1 and any(p.scale_full().shape[0] != 1 for p in parts):
            return None
        codes, parts = [rescale(p, g) for p in parts], [Exact(parts[0].codes, g)]
    if any(c.dtype == object for c in codes):
        codes = [widen(c) for c in codes]
    return Exact(as_codes(np.concatenate(codes)), parts[0].scale)


__all__ = ["run_exact", "run_exact_node", "NoExactRule"]
