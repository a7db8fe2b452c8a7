"""Write tests/golden/mx.json: minifloat codes, MX blocks and tensors, NVFP4, packing and MX GEMMs, from the oracles.

Run once when a rule is introduced or changed (``python tests/golden/make_mx_golden.py``, a few seconds);
tests/test_golden_mx.py recomputes every entry with the fast code. Expected values come from
:mod:`bitsim.reference.mx` (Python Fractions and ints, element by element), never from the fast code; the
inputs are written into the file (float64 values as exact hex strings). The stochastic cases also record
their uint32 draws, so the generator's stream is pinned as well.
"""

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np

from bitsim.formats import minifloat as mf
from bitsim.formats import mx
from bitsim.formats.rng import Philox
from bitsim.reference import mx as ref

SCALE_RULES = ("floor", "ceil", "rceil", "even", "ceil_log2")
MODES = ("nearest_even", "nearest_away", "nearest_up", "toward_zero", "floor", "ceil", "stochastic")
OVERFLOWS = ("saturate", "nonfinite", "error")
FIELDS = ("exp_bits", "man_bits", "bias", "subnormals", "infinities", "nans", "signed", "zero", "name")
# the six named formats, an IEEE-like ExMy, and a QONNX FloatQuant-style format without subnormals or Inf
ELEMENT_FORMATS = list(mf.FORMATS.values()) + [
    mf.parse_minifloat("e3m4"),
    mf.MinifloatFormat(4, 2, bias=5, subnormals=False, nans=True, name="e4m2_b5_nosub"),
]
STOCHASTIC_SEED = 22


def hex_of(v):
    """A float64 as exact hex text; NaN as 'nan' or '-nan' (float.hex drops a NaN's sign; float.fromhex reads both)."""
    v = float(v)
    return ("-nan" if math.copysign(1.0, v) < 0 else "nan") if math.isnan(v) else v.hex()


def fields_of(fmt):
    return {k: getattr(fmt, k) for k in FIELDS}


def element_points(fmt):
    """Chosen inputs: zeros, the smallest values and their ties, ties in the middle (to an even and to an odd
    code), the largest value, the tie beyond it, the next value, Inf and NaN, with both signs."""
    mags = [v for v, _ in ref.finite_magnitudes(fmt)]
    top, ext = mags[-2], mags[-1]
    small = mags[1] if fmt.zero else mags[0]
    mid = len(mags) // 2
    picks = [Fraction(0), small, small / 2, small * 3 / 4, small / 4, mags[mid], (mags[mid] + mags[mid + 1]) / 2,
             (mags[mid + 1] + mags[mid + 2]) / 2, mags[mid] + (mags[mid + 1] - mags[mid]) / 3,
             top, (top + ext) / 2, ext, ext * 2, (mags[-3] + top) / 2]
    pts = []
    for q in picks:
        f = float(q)
        pts += [f, math.nextafter(f, math.inf)] if q in (top, (top + ext) / 2) else [f]
    pts += [math.inf]
    out = pts + [-p for p in pts]
    if fmt.nans:
        out += [math.nan, -math.nan]
    return out


def element_cases():
    cases = []
    for fmt in ELEMENT_FORMATS:
        x = element_points(fmt)
        for mode in MODES:
            for overflow in OVERFLOWS:
                if overflow == "nonfinite" and not fmt.nans:
                    continue
                u = Philox(STOCHASTIC_SEED).uint32(len(x)).tolist() if mode == "stochastic" else [0] * len(x)
                codes = [ref.encode_one(v, fmt, mode, overflow, ui) for v, ui in zip(x, u)]
                case = {"kind": "element", "format": fields_of(fmt), "rounding": mode, "overflow": overflow,
                        "x": [hex_of(v) for v in x], "codes": codes}
                if mode == "stochastic":
                    case.update(seed=STOCHASTIC_SEED, u=u)
                cases.append(case)
    return cases


def blocks():
    rng = np.random.default_rng(2026)
    out = [
        # the worked block of docs/formats.md section 14.2, and its variant that saturates under floor
        ("mxfp4_e2m1", [0.3, 1.7, -5.0, 12.0]), ("mxfp4_e2m1", [0.3, 1.7, -5.0, 13.0]),
        ("mxfp8_e4m3", [0.3, 1.7, -5.0, 12.0]),
        # amax exactly at a power of two and just above the element's largest value
        ("mxfp4_e2m1", [6.0, -0.25]), ("mxfp4_e2m1", [6.5, 1.0]), ("mxfp8_e4m3", [448.0, 1.0]),
        ("mxfp8_e4m3", [449.0, -1.0]), ("mxfp6_e2m3", [7.75, 0.1]), ("mxfp6_e3m2", [30.0, -0.2]),
        ("mxfp8_e5m2", [57344.0, 61439.0]), ("mxint8", [1.0, -0.5, 0.0078125]), ("mxint8", [1.99, -2.0]),
        # EVEN takes the larger scale where amax rounds up into the next binade
        ("mxfp4_e2m1", [7.5, 0.5]), ("mxfp8_e4m3", [0.99999, 0.1]),
        # RCEIL differs from CEIL where fl32(amax) / max_elem lands on a power of two
        ("mxfp8_e4m3", [448 * (1 + 2.0 ** -30), 1.0]),
        # all zero (both signs), NaN, Inf, and exponents beyond E8M0's range (both ends)
        ("mxfp8_e4m3", [0.0, -0.0]), ("mxfp8_e4m3", [1.0, math.nan]), ("mxfp4_e2m1", [-math.inf, 1.0]),
        ("mxfp8_e5m2", [1e-300, 2e-300]), ("mxfp4_e2m1", [2.0 ** -140, -(2.0 ** -141)]),
        ("mxfp4_e2m1", [1e300, -1e299]), ("mxfp8_e4m3", [2.0 ** 130, 1.0]),
    ]
    for name in mx.FORMATS:
        for _ in range(3):
            x = rng.standard_normal(32) * 2.0 ** rng.integers(-10, 10)
            out.append((name, x.astype(np.float32).astype(float).tolist()))
    return out


def oracle_quantize(x, name, axis, block, rule="floor"):
    """Element codes and scale codes of an array by :func:`bitsim.reference.mx.mx_quantize_block`, block by block."""
    el = mx.FORMATS[name].element
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    codes = np.zeros(x.shape, np.int64)
    scales = np.zeros(x.shape[:-1] + (-(-x.shape[-1] // block),), np.int64)
    for idx in np.ndindex(*x.shape[:-1]):
        for b in range(scales.shape[-1]):
            s, c = ref.mx_quantize_block(x[idx][b * block:(b + 1) * block].tolist(), el, rule)
            scales[idx + (b,)] = s
            codes[idx][b * block:b * block + len(c)] = c
    return np.moveaxis(codes, -1, axis).astype(np.uint8), np.moveaxis(scales, -1, axis).astype(np.uint8)


def tensor_cases():
    rng = np.random.default_rng(11)
    cases = []
    for name, shape, axis, block, rule in (("mxfp8_e4m3", (7, 3), 0, 3, "floor"), ("mxfp4_e2m1", (2, 9), 1, 4, "ceil"),
                                           ("mxfp6_e3m2", (2, 3, 5), 1, 2, "rceil"),
                                           ("mxint8", (3, 40), -1, 32, "even"),
                                           ("mxfp6_e2m3", (4, 8), 1, 8, "ceil_log2")):
        x = rng.standard_normal(shape) * 2.0 ** rng.integers(-5, 5, shape)
        codes, scales = oracle_quantize(x, name, axis, block, rule)
        cases.append({"kind": "tensor", "format": name, "axis": axis, "block": block, "rule": rule,
                      "shape": list(shape), "x": [hex_of(v) for v in x.ravel()], "codes": codes.tolist(),
                      "scales": scales.tolist()})
    return cases


def nvfp4_cases():
    rng = np.random.default_rng(12)
    rows = [rng.standard_normal(40), rng.standard_normal(16) * 1e-3, np.zeros(16)]
    rows[1][3:] = 0.0
    rows[1][4] = -0.0
    r = rng.standard_normal(35)
    r[16:32] *= 2.0 ** -30  # a block whose scale rounds to E4M3 zero relative to the tensor scale
    rows.append(r)
    rows = [row.astype(np.float32).astype(float) for row in rows]
    # the tensor scale rounds to zero and becomes 2**-149 (the worked example of section 14.3), and a tensor
    # of subnormals with a second block
    rows += [np.array([1e-44] + [0.0] * 15), np.array([2e-42, -1e-44, 3e-45, 0.0] * 8)]
    rows.append(float64_row())
    cases = []
    for row in rows:
        t, scales, codes = ref.nvfp4_quantize_row(row.tolist())
        cases.append({"kind": "nvfp4", "x": [hex_of(v) for v in row], "tensor_scale": hex_of(t),
                      "scales": scales, "codes": codes})
    return cases


def float64_row():
    """A float64 row whose tensor scale differs by one float32 ulp if its float64 amax were divided by 2688
    instead of the float32-rounded one: the rule rounds every input to float32 first."""
    rng = np.random.default_rng(14)
    while True:
        row = rng.standard_normal(16) * 10
        amax = max(abs(Fraction(v)) for v in row.tolist())
        first = ref.round_to_float32(Fraction(ref.round_to_float32(amax)) / 2688)
        if ref.round_to_float32(amax / 2688) != first and any(float(np.float32(v)) != v for v in row):
            return row


def packing_cases():
    rng = np.random.default_rng(13)
    cases = []
    for width, group, count in ((4, 2, 1), (4, 2, 7), (4, 2, 16), (6, 4, 1), (6, 4, 7), (6, 4, 64)):
        codes = rng.integers(0, 1 << width, count).tolist()
        if count == 64:
            codes = list(range(64))
        cases.append({"kind": "packing", "bits": width, "codes": codes,
                      "bytes": ref.pack_bit_stream(codes, width, group)})
    return cases


def gemms():
    rng = np.random.default_rng(7)
    out = []
    for name in mx.FORMATS:
        a = rng.standard_normal((3, 40)) * 2.0 ** rng.integers(-4, 4, (3, 40))
        b = rng.standard_normal((40, 2))
        a[2, 5] = math.nan if name == "mxfp8_e5m2" else a[2, 5]  # a NaN block makes its row NaN
        out.append((name, a, b))
    big = np.ones((1, 64))
    big[0, 32:] = 2.0 ** -120
    out.append(("mxfp8_e4m3", big * 3.0, np.full((64, 1), 2.0 ** 100)))  # blocks 2**440 apart
    cancel = np.zeros((1, 32))
    cancel[0, :3] = [256.0, 2.0 ** -9, -256.0]
    col = np.zeros((32, 1))
    col[:3, 0] = [256.0, 2.0 ** -9, 256.0]
    out.append(("mxfp8_e4m3", cancel, col))  # in k order fl32(2**16 + 2**-18) - 2**16 = 0; exactly 2**-18
    blocks = np.zeros((1, 96))
    blocks[0, :32], blocks[0, 32], blocks[0, 64] = 2.0 ** 19, 1.0, 1.0
    out.append(("mxfp8_e4m3", blocks, np.ones((96, 1))))  # in block order 2**24 + 1 + 1 = 2**24; exactly 2**24 + 2
    huge = 448.0 * 2.0 ** 127  # E4M3 0x7e at scale 2**127 (code 0xfe)
    out.append(("mxfp8_e4m3", np.full((1, 32), huge), np.full((32, 1), huge)))  # beyond float32: +Inf, both rules
    signs = np.full((1, 64), huge)
    signs[0, 32:] = -huge
    out.append(("mxfp8_e4m3", signs, np.full((64, 1), huge)))  # exact 0; float32 +Inf + -Inf = NaN
    return out


def gemm_cases():
    cases = []
    for name, a, b in gemms():
        ca, sa = oracle_quantize(a, name, 1, 32)
        cb, sb = oracle_quantize(b, name, 0, 32)
        ta, tb = mx.MXTensor(ca, sa, mx.FORMATS[name], 1), mx.MXTensor(cb, sb, mx.FORMATS[name], 0)
        case = {"kind": "gemm", "format": name, "a_codes": ca.tolist(), "a_scales": sa.tolist(),
                "b_codes": cb.tolist(), "b_scales": sb.tolist()}
        for rule, fn in (("exact", ref.gemm_exact), ("float32", ref.gemm_float32)):
            case[rule] = [[hex_of(v) for v in row] for row in fn(ta, tb)]
        cases.append(case)
    return cases


def main():
    cases = element_cases()
    for name, values in blocks():
        el = mx.FORMATS[name].element
        for rule in SCALE_RULES:
            scale, codes = ref.mx_quantize_block(values, el, rule)
            cases.append({"kind": "block", "format": name, "rule": rule, "x": [hex_of(v) for v in values],
                          "scale": scale, "codes": codes})
    cases += tensor_cases() + nvfp4_cases() + packing_cases() + gemm_cases()
    doc = {"about": "Minifloat codes under every rounding and overflow mode (docs/formats.md section 13), MX blocks "
                    "under every scale rule, MX tensors along an axis, NVFP4, FP4/FP6 packing and MX GEMMs under "
                    "both accumulation rules (section 14); expected values by bitsim.reference.mx; written by "
                    "tests/golden/make_mx_golden.py", "cases": cases}
    path = Path(__file__).with_name("mx.json")
    text = json.dumps(doc, separators=(",", ":")).replace('{"kind"', '\n{"kind"') + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    kinds = {}
    for c in cases:
        kinds[c["kind"]] = kinds.get(c["kind"], 0) + 1
    print(f"wrote {len(cases)} cases to {path}: {kinds}")


if __name__ == "__main__":
    main()
