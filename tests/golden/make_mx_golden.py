"""Write tests/golden/mx.json: MX blocks under every scale rule and MX GEMMs under both accumulation rules.

Run once when the rules are introduced (``python tests/golden/make_mx_golden.py``); afterwards
tests/test_formats_mx.py and tests/test_kernels_mx.py recompute every entry with the fast code. Expected
values come from :mod:`bitsim.reference.mx` (Python Fractions), never from the fast code; the inputs are
written into the file (float64 values as exact hex strings).
"""

import json
from pathlib import Path

import numpy as np

from bitsim.formats import mx
from bitsim.reference import mx as ref

RULES = ("floor", "ceil", "rceil", "even")


def blocks():
    rng = np.random.default_rng(2026)
    out = [
        # the worked block of docs/formats.md section 14.2
        ("mxfp4_e2m1", [0.3, 1.7, -5.0, 12.0]),
        ("mxfp8_e4m3", [0.3, 1.7, -5.0, 12.0]),
        # amax exactly at a power of two and just above the element's largest value
        ("mxfp4_e2m1", [6.0, -0.25]), ("mxfp4_e2m1", [6.5, 1.0]), ("mxfp8_e4m3", [448.0, 1.0]),
        ("mxfp8_e4m3", [449.0, -1.0]), ("mxfp6_e2m3", [7.75, 0.1]), ("mxfp6_e3m2", [30.0, -0.2]),
        ("mxint8", [1.0, -0.5, 0.0078125]), ("mxint8", [1.99, -2.0]),
        # all zero, NaN, Inf, and scales beyond E8M0's range
        ("mxfp8_e4m3", [0.0, -0.0]), ("mxfp8_e4m3", [1.0, float("nan")]), ("mxfp4_e2m1", [float("-inf"), 1.0]),
        ("mxfp8_e5m2", [1e-300, 2e-300]), ("mxfp4_e2m1", [1e300, -1e299]),
    ]
    for name in mx.FORMATS:
        for _ in range(3):
            x = rng.standard_normal(32) * 2.0 ** rng.integers(-10, 10)
            out.append((name, x.astype(np.float32).astype(float).tolist()))
    return out


def gemms():
    rng = np.random.default_rng(7)
    out = []
    for name in mx.FORMATS:
        a = rng.standard_normal((3, 40)) * 2.0 ** rng.integers(-4, 4, (3, 40))
        b = rng.standard_normal((40, 2))
        out.append((name, a, b))
    big = np.ones((1, 64))
    big[0, 32:] = 2.0**-120
    out.append(("mxfp8_e4m3", big * 3.0, np.full((64, 1), 2.0**100)))  # blocks 2**440 apart: float32 loses one
    return out


def main():
    cases = []
    for name, values in blocks():
        el = mx.FORMATS[name].element
        for rule in RULES:
            scale, codes = ref.mx_quantize_block(values, el, rule)
            cases.append({"kind": "block", "format": name, "rule": rule, "x": [float(v).hex() for v in values],
                          "scale": scale, "codes": codes})
    for name, a, b in gemms():
        ta, tb = mx.quantize(a, name, axis=1), mx.quantize(b, name, axis=0)
        case = {"kind": "gemm", "format": name, "a_codes": ta.codes.tolist(), "a_scales": ta.scales.tolist(),
                "b_codes": tb.codes.tolist(), "b_scales": tb.scales.tolist()}
        for rule, fn in (("exact", ref.gemm_exact), ("float32", ref.gemm_float32)):
            case[rule] = [[float(v).hex() for v in row] for row in fn(ta, tb)]
        cases.append(case)
    doc = {"about": "MX blocks (docs/formats.md section 14) under every scale rule, and MX GEMMs under both "
                    "accumulation rules; expected values by bitsim.reference.mx", "cases": cases}
    path = Path(__file__).with_name("mx.json")
    path.write_text(json.dumps(doc, indent=0) + "\n")
    print(f"wrote {len(cases)} cases to {path}")


if __name__ == "__main__":
    main()
