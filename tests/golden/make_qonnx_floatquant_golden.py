"""Write tests/golden/qonnx_floatquant.json: QONNX ``FloatQuant`` on fixed inputs, at both levels, from
independent oracles.

Run once from the repository root (``python tests/golden/make_qonnx_floatquant_golden.py``; needs the onnx
extra); the JSON is committed. Level 1 comes from QONNX's own
``qonnx.custom_op.general.floatquant.float_quant`` (float32 bit patterns); level 2, the exact value of each
output, from Python Fractions here, by the definition, independently of bitsim: ``y = x / scale``; ``E =
floor(log2 |y|)``; ``u = max(E - m, 1 - bias - m)``; ``q = round_mode(y / 2**u)``; ``v = q * 2**u`` clamped
to ``+-M``, ``M = min((2 - 2**-m) * 2**(2**e - 1 - bias), max_val)``; ``v * scale``.
"""

import itertools
from fractions import Fraction

import numpy as np
from make_qonnx_golden import MODES, fraction_round, write_vectors

XS = [0.0, -0.0, 0.2875, 1.0, 1.0625, 1.1875, 2.875, -2.875, 3.375, 0.001, -0.001, 0.013671875, 1e-6, 100.0,
      -250.0, 447.99997, 480.0, 1e6, -1e6, 1023.99994, 0.37, -3.3]
F32_MAX = float(np.finfo(np.float32).max)
# (exponent bits, mantissa bits, bias, max_val)
FORMATS = [(4, 3, 7, 448.0), (5, 2, 15, 57344.0), (2, 1, 1, 6.0), (3, 2, 3, F32_MAX), (4, 3, 8, 240.0)]
SCALES = [1.0, 0.5, 0.1]


def floor_log2(f):
    """floor(log2(f)) of a positive Fraction."""
    e = f.numerator.bit_length() - f.denominator.bit_length()
    return e - 1 if Fraction(2) ** e > f else e


def exact_value(x, scale, e, m, bias, max_val, mode):
    s = Fraction(float(np.float32(scale)))
    y = Fraction(x) / s
    lowest = 1 - bias - m
    u = lowest if y == 0 else max(floor_log2(abs(y)) - m, lowest)
    v = fraction_round(y / Fraction(2) ** u, mode) * Fraction(2) ** u
    top = min((2 - Fraction(1, 2 ** m)) * Fraction(2) ** (2 ** e - 1 - bias), Fraction(float(np.float32(max_val))))
    return min(max(v, -top), top) * s


def main():
    from qonnx.custom_op.general.floatquant import float_quant

    x = np.array(XS, np.float32)
    cases = []
    f32 = np.float32
    for (e, m, bias, max_val), scale, mode in itertools.product(FORMATS, SCALES, MODES):
        level1 = np.asarray(float_quant(x, np.array(scale, f32), np.array(e, f32), np.array(m, f32),
                                        np.array(bias, f32), True, np.array(max_val, f32), rounding_mode=mode))
        cases.append({"exp_bits": e, "man_bits": m, "bias": bias, "max_val": max_val, "scale": scale, "mode": mode,
                      "level1_bits": [int(b) for b in level1.astype(np.float32).view(np.uint32)],
                      "exact": [str(exact_value(v, scale, e, m, bias, max_val, mode)) for v in x.tolist()]})
    write_vectors("qonnx_floatquant.json", "QONNX FloatQuant (saturating) on the float32 values x: level 1 as "
                  "float32 bit patterns (QONNX's float_quant), level 2 as exact values (Python Fractions, "
                  "'numerator/denominator')", x, cases)


if __name__ == "__main__":
    main()
