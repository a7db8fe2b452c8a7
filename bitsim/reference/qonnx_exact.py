"""Slow, obvious exact evaluation of small QONNX graphs in Python Fractions: the oracle of the ``exact`` level.

Every value is a :class:`fractions.Fraction`, every tensor a nested list; each op is its definition
(``docs/qonnx.md``, "Level 2") with no rounding except the op's own rounding mode. It covers the ops of
2-D graphs: ``Quant``, ``BipolarQuant``, ``MultiThreshold`` (2-D, channels on axis 1), ``MatMul``,
``Add``, ``Sub``, ``Mul``, ``Div``, ``Relu``, ``Sign``, ``Identity`` and ``Transpose``.
"""

import math
from fractions import Fraction

import numpy as np

__all__ = ["evaluate", "round_fraction"]


def round_fraction(f, mode):
    """A Fraction rounded to an integer by a QONNX rounding mode."""
    floor = f.numerator // f.denominator
    frac = f - floor
    mode = mode.upper()
    if mode == "FLOOR":
        return floor
    if mode == "CEIL":
        return floor + (frac > 0)
    if mode in ("ROUND", "HALF_EVEN"):
        return floor + (frac > Fraction(1, 2) or (frac == Fraction(1, 2) and floor % 2 == 1))
    mag = abs(f)
    whole = mag.numerator // mag.denominator
    rest = mag - whole
    up = {"UP": rest > 0, "DOWN": False, "HALF_UP": rest >= Fraction(1, 2), "HALF_DOWN": rest > Fraction(1, 2)}[mode]
    return (-1 if f < 0 else 1) * (whole + up)


def to_fractions(a):
    """A NumPy array as an object array of exact Fractions; inf and NaN stay Python floats (so a threshold
    ``+inf`` is never met and ``-inf`` always, by Python's comparisons of a Fraction with a float)."""
    a = np.asarray(a)
    out = np.empty(a.shape, dtype=object)
    for idx in np.ndindex(a.shape):
        v = float(a[idx]) if a.dtype.kind == "f" else int(a[idx])
        out[idx] = Fraction(v) if math.isfinite(v) else v
    return out


def _elementwise(fn, *arrays):
    """``fn`` applied element by element to broadcast object arrays."""
    arrays = np.broadcast_arrays(*arrays)
    out = np.empty(arrays[0].shape, dtype=object)
    for idx in np.ndindex(out.shape):
        out[idx] = fn(*(a[idx] for a in arrays))
    return out


def quant(x, s, z, bits, signed, narrow, mode):
    """``Quant``: ``(round_mode(clamp(x / s + z)) - z) * s`` per element, in Fractions."""
    b = int(np.asarray(bits).reshape(-1)[0])
    if signed:
        low, high = -(2 ** (b - 1)) + (1 if narrow else 0), 2 ** (b - 1) - 1
    else:
        low, high = 0, 2 ** b - 1 - (1 if narrow else 0)

    def one(v, sv, zv):
        y = v / sv + zv
        if signed and b == 1:
            q = 1 if y >= 0 else -1
        else:
            q = round_fraction(min(max(y, Fraction(low)), Fraction(high)), mode)
        return (q - zv) * sv

    return _elementwise(one, x, s, z)


def multithreshold(v, t, out_scale, out_bias):
    """2-D ``MultiThreshold`` (channels on axis 1): ``out_scale * (thresholds met) + out_bias``."""
    out = np.empty(v.shape, dtype=object)
    for i, c in np.ndindex(v.shape):
        row = t[c if t.shape[0] > 1 else 0]
        count = sum(1 for tj in row if v[i, c] >= tj)
        out[i, c] = Fraction(float(out_scale)) * count + Fraction(float(out_bias))
    return out


def matmul(a, b):
    """``a @ b`` of 2-D object arrays, summed exactly."""
    out = np.empty((a.shape[0], b.shape[1]), dtype=object)
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            out[i, j] = sum((a[i, k] * b[k, j] for k in range(a.shape[1])), Fraction(0))
    return out


def evaluate(nodes, initializers, inputs):
    """Every tensor of a graph, exactly.

    Parameters
    ----------
    nodes : list of (op_type, input names, output names, attributes dict)
        In topological order.
    initializers, inputs : dict of str to numpy.ndarray

    Returns
    -------
    dict of str to numpy.ndarray of Fraction
    """
    values = {name: to_fractions(a) for name, a in {**initializers, **inputs}.items()}
    for op, ins, outs, at in nodes:
        args = [values[name] for name in ins if name]
        if op in ("Quant", "IntQuant"):
            r = quant(*args, at.get("signed", 1), at.get("narrow", 0), at.get("rounding_mode", "ROUND"))
        elif op == "BipolarQuant":
            r = _elementwise(lambda v, s: s if v >= 0 else -s, *args)
        elif op == "MultiThreshold":
            r = multithreshold(args[0], args[1], np.float32(at.get("out_scale", 1.0)),
                               np.float32(at.get("out_bias", 0.0)))
        elif op == "MatMul":
            r = matmul(*args)
        elif op in ("Add", "Sub", "Mul", "Div"):
            fn = {"Add": lambda p, q: p + q, "Sub": lambda p, q: p - q, "Mul": lambda p, q: p * q,
                  "Div": lambda p, q: p / q}[op]
            r = _elementwise(fn, *args)
        elif op == "Relu":
            r = _elementwise(lambda v: max(v, Fraction(0)), args[0])
        elif op == "Sign":
            r = _elementwise(lambda v: Fraction((v > 0) - (v < 0)), args[0])
        elif op == "Identity":
            r = args[0]
        elif op == "Transpose":
            r = np.transpose(args[0], at.get("perm"))
        else:
            raise ValueError(f"the exact oracle does not cover {op}")
        values[outs[0]] = r
    return values
