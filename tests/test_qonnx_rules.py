"""QONNX Quant's and FloatQuant's rules pinned by committed vectors (tests/golden/qonnx_quant.json and
qonnx_floatquant.json, from independent oracles)."""

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from bitsim.interop import float_ops
from bitsim.interop.exact_ops import float_quant, quant
from bitsim.interop.exact_tensor import exact_of_float, exact_values, to_float32

GOLDEN = json.loads((Path(__file__).parent / "golden" / "qonnx_quant.json").read_text())
X = np.array(GOLDEN["x_bits"], np.uint32).view(np.float32)


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda c: f"{c['bits']}b-s{c['signed']}n{c['narrow']}"
                                                               f"z{c['zero_point']}-{c['scale']}-{c['mode']}")
def test_quant_both_levels_against_committed_vectors(case):
    f32 = np.float32
    args = (np.array(case["scale"], f32), np.array(case["zero_point"], f32), np.array(case["bits"], f32))
    level1 = float_ops.quant(X, *args, signed=case["signed"], narrow=case["narrow"], rounding_mode=case["mode"])
    assert level1.view(np.uint32).tolist() == case["level1_bits"]
    exact = quant(exact_of_float(X), *args, case["signed"], case["narrow"], case["mode"])
    z = int(case["zero_point"])
    assert (np.asarray(exact.codes) + z).tolist() == case["exact_codes"]  # codes are q - zero_point
    values = [(q - z) * float(np.float32(case["scale"])) for q in case["exact_codes"]]
    assert to_float32(exact).tolist() == np.array(values, np.float64).astype(np.float32).tolist()


def test_the_two_worked_examples_of_the_docs():
    """docs/qonnx.md, section 3: the float32 division and HALF_UP's float32 addition cross a boundary."""
    by = {(c["scale"], c["bits"], c["mode"]): c for c in GOLDEN["cases"]}
    i = GOLDEN["x_bits"].index(int(np.array(0.35, np.float32).view(np.uint32)))
    case = by[(0.1, 8, "ROUND")]
    assert case["exact_codes"][i] == 3
    assert np.array(case["level1_bits"][i], np.uint32).view(np.float32) == np.float32(0.4)
    j = GOLDEN["x_bits"].index(int(np.array(0.49999997, np.float32).view(np.uint32)))
    case = by[(1.0, 3, "HALF_UP")]
    assert case["exact_codes"][j] == 0
    assert np.array(case["level1_bits"][j], np.uint32).view(np.float32) == np.float32(1.0)


FQ = json.loads((Path(__file__).parent / "golden" / "qonnx_floatquant.json").read_text())
FQ_X = np.array(FQ["x_bits"], np.uint32).view(np.float32)


@pytest.mark.parametrize("case", FQ["cases"], ids=lambda c: f"e{c['exp_bits']}m{c['man_bits']}b{c['bias']}-"
                                                           f"{c['scale']}-{c['mode']}")
def test_float_quant_both_levels_against_committed_vectors(case):
    f32 = np.float32
    args = [np.array(case[k], f32) for k in ("scale", "exp_bits", "man_bits", "bias", "max_val")]
    level1 = float_ops.float_quant(FQ_X, *args, rounding_mode=case["mode"])
    assert level1.view(np.uint32).tolist() == case["level1_bits"]
    exact = float_quant(exact_of_float(FQ_X), *args, case["mode"], 1)
    assert [str(v) for v in exact_values(exact).tolist()] == case["exact"]


def test_float_quant_worked_example():
    """docs/qonnx.md, section 3: E4M3 with scale 0.1 on 0.2875 (a float32 tie that the exact value is not), and E5M2
    FLOOR on 1023.99994 (float32's log2 is 10.0: QONNX floors on the coarser grid)."""
    by = {(c["exp_bits"], c["man_bits"], c["bias"], c["scale"], c["mode"]): c for c in FQ["cases"]}
    i = FQ["x_bits"].index(int(np.array(0.2875, np.float32).view(np.uint32)))
    case = by[(4, 3, 7, 0.1, "ROUND")]
    assert np.array(case["level1_bits"][i], np.uint32).view(np.float32) == np.float32(3.0) * np.float32(0.1)
    assert Fraction(case["exact"][i]) == Fraction(11, 4) * Fraction(float(np.float32(0.1)))
    j = FQ["x_bits"].index(int(np.array(1023.99994, np.float32).view(np.uint32)))
    case = by[(5, 2, 15, 1.0, "FLOOR")]
    assert np.array(case["level1_bits"][j], np.uint32).view(np.float32) == 768.0  # step 256 in [1024, 2048)
    assert Fraction(case["exact"][j]) == 896  # step 128 in [512, 1024)
