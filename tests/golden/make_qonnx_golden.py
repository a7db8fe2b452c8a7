"""Write tests/golden/qonnx_quant.json: QONNX ``Quant`` on fixed inputs, at both levels, from independent oracles.

Run once from the repository root (``python tests/golden/make_qonnx_golden.py``; needs the onnx extra); the
JSON is committed. Level 1 comes from QONNX's own ``qonnx.custom_op.general.quant.quant`` (float32 bit
patterns); level 2, the exact integer code ``q`` of each input, from Python Fractions here, by the
definitions of the rounding modes, independently of bitsim: ``q = round_mode(clamp(x / scale + zero_point))``
(a signed 1-bit Quant: ``q = +1 if x / scale + zero_point >= 0 else -1``).
"""

import itertools
import json
from fractions import Fraction
from pathlib import Path

import numpy as np

MODES = ["ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN"]
XS = [-2.5, -1.5, -1.25, -0.75, -0.5, -0.25, -0.0, 0.0, 0.25, 0.37, 0.5, 0.75, 1.5, 2.5, 3.75, 100.0, -100.0,
      0.35, 0.49999997, 1.0000001, -0.49999997]
# (scale, bits, signed, narrow, zero point)
QUANTIZERS = [(0.5, 2, 1, 0, 0.0), (0.25, 4, 1, 1, 0.0), (1.0, 3, 0, 0, 0.0), (0.1, 8, 1, 0, 0.0),
              (1.0, 4, 0, 1, 2.0), (1.0, 1, 1, 0, 0.0), (0.3, 2, 0, 0, 1.0)]


def fraction_round(f, mode):
    """A Fraction rounded to an integer by a QONNX rounding mode."""
    floor = f.numerator // f.denominator
    frac = f - floor
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


def exact_code(v, scale, bits, signed, narrow, zero_point, mode):
    y = Fraction(v) / Fraction(float(np.float32(scale))) + Fraction(zero_point)
    if bits == 1 and signed:
        return 1 if y >= 0 else -1
    low = -(2 ** (bits - 1)) + narrow if signed else 0
    high = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1 - narrow
    return int(fraction_round(min(max(y, low), high), mode))


def main():
    from qonnx.custom_op.general.quant import quant

    x = np.array(XS, np.float32)
    cases = []
    for (scale, bits, signed, narrow, zero_point), mode in itertools.product(QUANTIZERS, MODES):
        level1 = quant(x, np.array(scale, np.float32), np.array(zero_point, np.float32), np.array(bits, np.float32),
                       signed, narrow, mode).astype(np.float32)
        cases.append({"scale": scale, "bits": bits, "signed": signed, "narrow": narrow, "zero_point": zero_point,
                      "mode": mode, "level1_bits": [int(b) for b in level1.view(np.uint32)],
                      "exact_codes": [exact_code(v, scale, bits, signed, narrow, zero_point, mode)
                                      for v in x.tolist()]})
    write_vectors("qonnx_quant.json", "QONNX Quant on the float32 values x: level 1 as float32 bit patterns "
                  "(QONNX's quant), level 2 as the exact integer codes q (Python Fractions); value = "
                  "(q - zero_point) * scale", x, cases)


def write_vectors(name, what, x, cases):
    """Write the cases of the inputs ``x`` (float32) as ``tests/golden/NAME``."""
    doc = {"what": what, "x_bits": [int(b) for b in x.view(np.uint32)], "cases": cases}
    path = Path(__file__).with_name(name)
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {path} ({len(cases)} quantizers x {len(x)} inputs)")


if __name__ == "__main__":
    main()
