"""Level 1, ``reference`` semantics: each op computed as QONNX's executor computes it, bit for bit.

The QONNX custom ops follow their definitions in ``qonnx.custom_op.general``, float32 steps in the
same order (``docs/qonnx.md``, "Level 1"). Element-wise and data-movement standard ops are single
IEEE float32 operations in NumPy (as onnxruntime computes them). The standard ops whose float32 result
depends on an order of additions that ONNX leaves open (:data:`ORT_OPS`) are not computed here: the
graph runs them through onnxruntime, as QONNX's executor does (:mod:`bitsim.interop.ort_nodes`).
"""

import numpy as np

from ..errors import InputError

MAX_MANTISSA_BITS = 1024  # FloatQuant's bound sums one term per mantissa bit
ORT_OPS = ("MatMul", "Gemm", "Conv", "BatchNormalization", "AveragePool", "GlobalAveragePool", "MaxPool")


def rounding(mode):
    """The float rounding function of a QONNX rounding mode (applied in the array's own dtype)."""
    mode = mode.upper()
    if mode in ("ROUND", "HALF_EVEN"):
        return np.round  # ties to even
    if mode == "CEIL":
        return np.ceil
    if mode == "FLOOR":
        return np.floor
    if mode == "UP":
        return lambda y: np.sign(y) * np.ceil(np.abs(y))
    if mode == "DOWN":
        return np.fix
    if mode == "HALF_UP":
        return lambda y: np.sign(y) * np.floor(np.abs(y) + 0.5)
    if mode == "HALF_DOWN":
        return lambda y: np.sign(y) * np.ceil(np.abs(y) - 0.5)
    raise InputError(f"unknown rounding mode {mode!r}; QONNX's modes are ROUND, HALF_EVEN, CEIL, FLOOR, UP, DOWN, "
                     "HALF_UP, HALF_DOWN")


def int_range(signed, narrow, bits):
    """``(lowest, highest)`` code of a QONNX integer type; ``bits`` is the float array of the op's input."""
    if signed:
        high = 2 ** (bits - 1) - 1
        low = -(2 ** (bits - 1)) + 1 if narrow else -(2 ** (bits - 1))
    else:
        high = 2 ** bits - 2 if narrow else 2 ** bits - 1
        low = 0 * bits
    return low, high


def clamp(y, low, high):
    """``y`` limited to ``[low, high]``, the bounds cast to ``y``'s dtype (as QONNX does)."""
    y = np.where(y > high, np.asarray(high).astype(y.dtype), y)
    return np.where(y < low, np.asarray(low).astype(y.dtype), y)


def quant(x, scale, zero_point, bits, signed=1, narrow=0, rounding_mode="ROUND"):
    """``Quant``: ``(round(clamp(x / scale + zero_point)) - zero_point) * scale``, float32 steps in order.

    A signed 1-bit Quant maps ``x / scale + zero_point >= 0`` to +1 and the rest to -1 instead.
    """
    y = x / scale
    y = y + zero_point
    if signed and np.all(bits == 1):
        ones = np.ones(y.shape, dtype=y.dtype)
        y = np.where(y >= 0.0, ones, -ones)
    else:
        low, high = int_range(signed, narrow, bits)
        y = rounding(rounding_mode)(clamp(y, low, high))
    out = (y - zero_point) * scale
    return np.asarray(out).astype(np.float32)


def bipolar_quant(x, scale):
    """``BipolarQuant``: ``+scale`` where ``x >= 0``, else ``-scale``."""
    ones = np.ones(x.shape, dtype=x.dtype)
    return np.asarray(np.where(x >= 0.0, ones, -ones) * scale)


def float_quant_max(exp_bits, man_bits, bias):
    """``FloatQuant``'s largest magnitude before ``max_val``: ``(2 - 2**-man_bits) * 2**(2**exp_bits - 1 - bias)``,
    computed as QONNX computes it (the sum in float64, the power of two in the bias's dtype)."""
    if np.asarray(man_bits).size != 1 or not float(np.asarray(man_bits).reshape(-1)[0]) <= MAX_MANTISSA_BITS:
        raise InputError(f"FloatQuant: mantissa width {np.asarray(man_bits).tolist()!r}; give one number of at most "
                         f"{MAX_MANTISSA_BITS} bits")
    max_exponent = (2.0 ** exp_bits) - 1.0 - bias
    max_mantissa = np.sum(2.0 ** np.arange(0, -1.0 * man_bits - 1.0, -1.0))
    return max_mantissa * (2 ** max_exponent)


def float_quant(x, scale, exp_bits, man_bits, bias, max_val, rounding_mode="ROUND", has_inf=0, has_nan=0,
                saturation=1):
    """``FloatQuant``: ``x / scale`` rounded to a minifloat grid of ``man_bits`` fraction bits, clamped, times
    ``scale``, NumPy steps in QONNX's order and dtypes (``has_subnormal`` does not enter: subnormals always).

    Steps: ``y = x / scale``; ``e = max(floor(log2(|y| + tiny)) - man_bits, 1 - bias - man_bits)``;
    ``q = 2**e * round(y / 2**e)``; clamp to ``+-min(float_quant_max, max_val)``; without ``saturation``, what
    lay beyond becomes +-inf (``has_inf``) or NaN (``has_nan``, which also takes infinities); ``q * scale`` as
    float32.
    """
    with np.errstate(all="ignore"):
        y = x / scale
        eps = np.finfo(y.dtype).tiny
        lowest = 1.0 - bias - man_bits
        e = np.exp2(np.maximum(np.floor(np.log2(np.abs(y) + eps)) - man_bits, lowest))
        q = e * rounding(rounding_mode)(y / e)
        top = np.minimum(float_quant_max(exp_bits, man_bits, bias), max_val)
        infinite, above, below = np.isinf(q), q > top, q < -top
        q = np.clip(q, -top, top)
        if not saturation:
            if has_inf:
                q[above] = np.inf
                q[below] = -np.inf
            elif has_nan:
                q[above | below] = np.nan
                q[infinite] = np.nan
            else:
                raise InputError("FloatQuant with saturation=0 needs has_inf or has_nan (what values beyond the "
                                 "largest become); set one of them, or saturation=1")
        return np.asarray(q * scale).astype(np.float32)


def trunc(x, scale, zero_point, in_bits, out_bits, rounding_mode="FLOOR"):
    """``Trunc`` (QONNX opset 1): drop ``in_bits - out_bits`` low bits of the rounded code."""
    y = np.round(x / scale + zero_point)
    y = y / 2.0 ** (in_bits - out_bits)
    y = rounding(rounding_mode)(y)
    return (y - zero_point) * scale


def trunc_v2(x, scale, zero_point, in_bits, out_scale, out_bits, signed=1, narrow=0, rounding_mode="FLOOR"):
    """``Trunc`` (QONNX opset 2): rescale to ``out_scale`` (rounded to a power of two), clamp, round."""
    y = np.round(x / scale + zero_point)
    step = 2 ** np.round(np.log2(out_scale / scale))
    y = y / step
    low, high = int_range(signed, narrow, out_bits)
    y = rounding(rounding_mode)(clamp(y, low, high))
    return (y - zero_point / step) * out_scale


def channel_axis(v, data_layout):
    """The channel axis of ``MultiThreshold``'s input: from ``data_layout``, else by rank (NC, NWC, NCHW)."""
    if not data_layout and v.ndim < 5:
        data_layout = {2: "NC", 3: "NWC", 4: "NCHW"}.get(v.ndim)
    if data_layout and "C" in data_layout:
        return data_layout.index("C")
    return 1


def threshold_counts(v, thresholds, axis):
    """How many thresholds of its channel each element is greater than or equal to (as ``v``'s dtype)."""
    moved = np.moveaxis(v, axis, -1)
    if thresholds.shape[0] not in (1, moved.shape[-1]):
        raise InputError(f"MultiThreshold: thresholds of shape {thresholds.shape} for {moved.shape[-1]} channels; "
                         "give one row per channel or a single row")
    count = np.count_nonzero(moved[..., None] >= thresholds, axis=-1).astype(v.dtype)
    return np.moveaxis(count, -1, axis)


def multithreshold(v, thresholds, out_scale=1.0, out_bias=0.0, data_layout=""):
    """``MultiThreshold``: ``out_scale * count + out_bias`` in float32 (``out_scale`` and ``out_bias`` are
    the float32 attribute values)."""
    count = threshold_counts(v, thresholds, channel_axis(v, data_layout))
    return out_scale * count + out_bias


def xnor_popcount_matmul(a, b):
    """``XnorPopcountMatMul`` of {0, 1} operands: ``(bipolar(a) @ bipolar(b) + K) / 2``."""
    k = a.shape[-1]
    out = np.matmul(2.0 * a - 1.0, 2.0 * b - 1.0)
    return (out + k) * 0.5


def flatten(x, axis=1):
    """ONNX ``Flatten``: ``x`` as a 2-D array, the axes before ``axis`` joined into the first."""
    axis = axis % x.ndim if x.ndim else 0
    return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)


def reshape(x, shape, allowzero=0):
    """ONNX ``Reshape``: a 0 in ``shape`` keeps that axis (unless ``allowzero``)."""
    shape = [int(s) for s in np.asarray(shape).reshape(-1)]
    if not allowzero:
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def transpose(x, perm=None):
    """ONNX ``Transpose``."""
    return np.transpose(x, perm)


def relu(x):
    """ONNX ``Relu`` as onnxruntime computes it: ``-0.0`` and NaN pass through."""
    return np.where(x < 0, np.zeros((), x.dtype), x)


NUMPY_OPS = {
    "Add": lambda a, b: np.add(a, b),
    "Sub": lambda a, b: np.subtract(a, b),
    "Mul": lambda a, b: np.multiply(a, b),
    "Div": lambda a, b: np.divide(a, b),
    "Relu": relu,
    "Sign": np.sign,
    "Identity": lambda x: x,
}


def run_node(node, args):
    """The outputs of a node that NumPy computes, from its input arrays ``args`` (NumPy's warnings on inf and
    NaN silenced: the values are QONNX's, warnings or not)."""
    with np.errstate(all="ignore"):
        return _numpy_node(node, args)


def _numpy_node(node, args):
    """The outputs of a node that NumPy computes (:func:`run_node` without the warnings silenced)."""
    op, at = node.op_type, node.attrs
    if op in ("Quant", "IntQuant"):
        return quant(*args, signed=at.get("signed", 1), narrow=at.get("narrow", 0),
                     rounding_mode=at.get("rounding_mode", "ROUND"))
    if op == "BipolarQuant":
        return bipolar_quant(*args)
    if op == "FloatQuant":
        return float_quant(*args, rounding_mode=at.get("rounding_mode", "ROUND"), has_inf=at.get("has_inf", 0),
                           has_nan=at.get("has_nan", 0), saturation=at.get("saturation", 1))
    if op == "Trunc":
        if node.version >= 2:
            return trunc_v2(*args, signed=at.get("signed", 1), narrow=at.get("narrow", 0),
                            rounding_mode=at.get("rounding_mode", "FLOOR"))
        return trunc(*args, rounding_mode=at.get("rounding_mode", "FLOOR"))
    if op == "MultiThreshold":
        return multithreshold(args[0], args[1], at.get("out_scale", 1.0), at.get("out_bias", 0.0),
                              at.get("data_layout", ""))
    if op == "XnorPopcountMatMul":
        return xnor_popcount_matmul(*args)
    if op == "Flatten":
        return flatten(args[0], at.get("axis", 1))
    if op == "Reshape":
        return reshape(args[0], args[1], at.get("allowzero", 0))
    if op == "Transpose":
        return transpose(args[0], at.get("perm"))
    if op == "Concat":
        return np.concatenate(args, axis=at["axis"])
    return NUMPY_OPS[op](*args)


__all__ = ["ORT_OPS", "NUMPY_OPS", "rounding", "int_range", "quant", "bipolar_quant", "float_quant", "float_quant_max",
           "trunc", "trunc_v2",
           "multithreshold", "threshold_counts", "channel_axis", "xnor_popcount_matmul", "run_node"]
