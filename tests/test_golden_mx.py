"""Every written minifloat and MX rule pinned by tests/golden/mx.json (expected values from the Fraction oracles).

The file is written by tests/golden/make_mx_golden.py; here the fast code recomputes each entry.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from bitsim.errors import InputError, RangeError
from bitsim.formats import minifloat as mf
from bitsim.formats import mx, nvfp4
from bitsim.formats import subbyte_packing as sp
from bitsim.formats.rng import Philox
from bitsim.golden.mx import export_mx
from bitsim.kernels import mx as kmx
from mx_support import OneDraw

GOLDEN = Path(__file__).parent / "golden" / "mx.json"
CASES = json.loads(GOLDEN.read_text())["cases"]
MODES = ("nearest_even", "nearest_away", "nearest_up", "toward_zero", "floor", "ceil", "stochastic")


def of_kind(kind):
    return [c for c in CASES if c["kind"] == kind]


def floats(hexes):
    return np.array([float.fromhex(h) for h in hexes])


def test_the_file_covers_every_rule():
    elements = {(c["format"]["name"], c["rounding"], c["overflow"]) for c in of_kind("element")}
    for fmt in mf.FORMATS.values():
        for mode in MODES:
            for overflow in ("saturate", "nonfinite", "error") if fmt.nans else ("saturate", "error"):
                assert (fmt.name, mode, overflow) in elements
    blocks = {(c["format"], c["rule"]) for c in of_kind("block")}
    assert blocks == {(f, r) for f in mx.FORMATS for r in ("floor", "ceil", "rceil", "even", "ceil_log2")}
    scales = {c["scale"] for c in of_kind("block")}
    assert {0x00, 0xFF, 254} <= scales  # all-zero / below E8M0's range, NaN or Inf, clipped above
    assert {t["rule"] for t in of_kind("tensor")} == {"floor", "ceil", "rceil", "even", "ceil_log2"}
    assert {c["bits"] for c in of_kind("packing")} == {4, 6} and len(of_kind("nvfp4")) >= 3
    assert {c["format"] for c in of_kind("gemm")} == set(mx.FORMATS)
    assert sum(c["exact"] != c["float32"] for c in of_kind("gemm")) >= 3  # the two rules differ (k and block order)
    assert [["inf"]] in [c["float32"] for c in of_kind("gemm")]  # float32 overflow: +Inf, and Inf - Inf = NaN
    assert {"exact": [["0x0.0p+0"]], "float32": [["nan"]]} in [{r: c[r] for r in ("exact", "float32")}
                                                              for c in of_kind("gemm")]
    nv = of_kind("nvfp4")
    assert any(c["tensor_scale"] == (2.0 ** -149).hex() for c in nv)  # the tensor scale that rounds to zero
    assert any((floats(c["x"]).astype(np.float32) != floats(c["x"])).any() for c in nv)  # float64 values


@pytest.mark.parametrize("case", of_kind("element"),
                         ids=lambda c: f"{c['format']['name']}-{c['rounding']}-{c['overflow']}")
def test_element_codes(case):
    fmt = mf.MinifloatFormat(**case["format"])
    x, expected = floats(case["x"]), case["codes"]
    stochastic = case["rounding"] == "stochastic"
    if stochastic:
        assert Philox(case["seed"]).uint32(x.size).tolist() == case["u"]
    if "error" in expected:
        with pytest.raises(RangeError):
            mf.encode(x, fmt, case["rounding"], case["overflow"], rng=case.get("seed"))
        for i, (v, want) in enumerate(zip(x, expected)):
            rng = OneDraw(case["u"][i]) if stochastic else None
            if want == "error":
                with pytest.raises(RangeError):
                    mf.encode(np.array([v]), fmt, case["rounding"], case["overflow"], rng=rng)
            else:
                assert int(mf.encode(np.array([v]), fmt, case["rounding"], case["overflow"], rng=rng)[0]) == want
    else:
        assert mf.encode(x, fmt, case["rounding"], case["overflow"], rng=case.get("seed")).tolist() == expected


@pytest.mark.parametrize("rule", [r.value for r in mx.ScaleRule])
def test_mx_blocks(rule):
    for case in of_kind("block"):
        if case["rule"] == rule:
            t = mx.quantize(floats(case["x"]), case["format"], scale_rule=rule)
            assert (t.scales.tolist(), t.codes.tolist()) == ([case["scale"]], case["codes"]), case


def test_mx_tensors_along_an_axis():
    for case in of_kind("tensor"):
        x = floats(case["x"]).reshape(case["shape"])
        t = mx.quantize(x, case["format"], axis=case["axis"], block=case["block"], scale_rule=case["rule"])
        assert t.codes.tolist() == case["codes"] and t.scales.tolist() == case["scales"], case["format"]


def test_nvfp4():
    for case in of_kind("nvfp4"):
        x = floats(case["x"])
        for given in (x, x.astype(np.float32)):  # float64 values are rounded to float32 first
            t = nvfp4.quantize(given)
            assert float(t.tensor_scale) == float.fromhex(case["tensor_scale"])
            assert t.scales.tolist() == case["scales"] and t.codes.tolist() == case["codes"]


def test_packing():
    for case in of_kind("packing"):
        codes = np.array(case["codes"], np.uint8)
        pack, unpack = (sp.pack_fp4, sp.unpack_fp4) if case["bits"] == 4 else (sp.pack_fp6, sp.unpack_fp6)
        packed = pack(codes)
        assert packed.tolist() == case["bytes"]
        assert unpack(packed, codes.size).tolist() == case["codes"]


def bits32(a):
    return np.asarray(a, np.float32).view(np.uint32).tolist()


@pytest.mark.parametrize("case", of_kind("gemm"), ids=lambda c: c["format"])
def test_mx_gemm_both_accumulation_rules(case):
    fmt = mx.FORMATS[case["format"]]
    a = mx.MXTensor(np.array(case["a_codes"], np.uint8), np.array(case["a_scales"], np.uint8), fmt, 1)
    b = mx.MXTensor(np.array(case["b_codes"], np.uint8), np.array(case["b_scales"], np.uint8), fmt, 0)
    for rule in ("exact", "float32"):
        expected = bits32(floats([h for row in case[rule] for h in row]).reshape(len(case[rule]), -1))
        assert bits32(kmx.gemm(a, b, rule)) == expected, rule
        if rule == "exact":
            assert bits32(kmx.gemm(a, b, rule, route="integer")) == expected
        row = mx.MXTensor(a.codes[0], a.scales[0], fmt, 0)
        col = mx.MXTensor(np.ascontiguousarray(b.codes[:, 0]), np.ascontiguousarray(b.scales[:, 0]), fmt, 0)
        assert bits32(kmx.dot(row, col, rule)) == expected[0][0]


def test_export_refuses_codes_wider_than_the_element(tmp_path):
    """A code the element cannot hold is refused at export, never written as a golden file that verify calls
    damaged."""
    t = mx.quantize(np.linspace(-6, 6, 64).reshape(2, 32), "mxfp4_e2m1", axis=1)
    t.codes[0, 0] = 0xFF
    with pytest.raises(InputError, match="code 0xff at index \\(0, 0\\) is wider than the 4-bit mxfp4_e2m1"):
        export_mx({"w": t}, tmp_path / "golden")
    assert not (tmp_path / "golden").exists()
    t.codes[0, 0] = 0x0F
    export_mx({"w": t}, tmp_path / "golden")
    t8 = mx.quantize(np.linspace(-2, 1.9, 32), "mxint8")
    t8.codes[0] = 0xFF  # every byte is an int8 code
    export_mx({"w": t8}, tmp_path / "golden8")
