"""Row-wise kernels (bitsim.kernels.rowwise) against the slow oracle, the GEMM kernels and committed vectors."""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bitsim.errors import InputError, InputTypeError
from bitsim.formats import Counts
from bitsim.formats.fixed import FixedFormat
from bitsim.formats.log import LogFormat
from bitsim.kernels.intmatmul import matmul
from bitsim.kernels.requantize import requantize
from bitsim.kernels.rowwise import mac_requantize, row_dot, row_shift_add, wrap_int
from bitsim.kernels.shift import fixed_log_matmul
from bitsim.reference import rowwise as oracle

GOLDEN = json.loads((Path(__file__).parent / "golden" / "rowwise.json").read_text())
ROUNDINGS = ["floor", "ceil", "toward_zero", "nearest_up", "nearest_even", "nearest_away"]


@st.composite
def operand_pairs(draw, dtype):
    shape = (draw(st.integers(0, 6)), draw(st.integers(0, 5)))
    return (draw(hnp.arrays(dtype, shape)), draw(hnp.arrays(dtype, shape)))


@given(operand_pairs(np.int16), st.data())
def test_mac_requantize_equals_the_oracle(pair, data):
    a, b = pair
    shift = data.draw(hnp.arrays(np.int64, a.shape[0], elements=st.integers(0, 40)))
    fmt = FixedFormat(data.draw(st.sampled_from([8, 16])), 0, rounding=data.draw(st.sampled_from(ROUNDINGS)),
                      overflow=data.draw(st.sampled_from(["saturate", "wrap"])))
    acc, q = mac_requantize(a, b, shift, fmt)
    want_acc, want_q = oracle.mac_requantize(a, b, shift, fmt)
    assert acc.tolist() == want_acc and q.tolist() == want_q


@given(operand_pairs(np.int8))
def test_row_dot_is_the_diagonal_of_matmul(pair):
    a, b = pair
    f = FixedFormat(8, 0)
    want = np.diag(matmul(a, f, b, f, acc_dtype=np.int64)) if a.shape[1] else np.zeros(a.shape[0], np.int64)
    np.testing.assert_array_equal(row_dot(a, b), want)


@given(st.data())
def test_row_shift_add_equals_the_oracle_and_the_gemm(data):
    fmt = LogFormat(exp_bits=data.draw(st.integers(2, 5)), exp_offset=data.draw(st.integers(-6, 2)))
    rows, k = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 6))
    x = data.draw(hnp.arrays(np.int8, (rows, k)))
    codes = data.draw(hnp.arrays(np.uint8, (rows, k), elements=st.integers(0, (1 << fmt.bits) - 1)))
    rounding, acc_frac = data.draw(st.sampled_from(ROUNDINGS)), data.draw(st.integers(-2, 4))
    got = row_shift_add(x, 0, codes, fmt, acc_frac=acc_frac, rounding=rounding)
    assert got.tolist() == oracle.row_shift_add(x, 0, codes, fmt, acc_frac=acc_frac, rounding=rounding)
    for t in range(rows):  # a second oracle: the GEMM kernel on one row
        gemm = fixed_log_matmul(x[t:t + 1], 0, codes[t:t + 1], fmt, acc_frac=acc_frac, rounding=rounding)
        assert got[t] == gemm[0, 0]


def test_row_shift_add_saturates_int32_counted():
    fmt = LogFormat(exp_bits=7)
    x = np.full((1, 4), 2**31 - 1, np.int32)
    codes = np.zeros((1, 4), np.uint8)  # +2^0
    counts = Counts()
    assert row_shift_add(x, 0, codes, fmt, counts=counts).tolist() == [2**31 - 1] and counts.saturated == 1
    assert row_shift_add(x, 0, codes, fmt, acc_dtype=np.int64).tolist() == [4 * (2**31 - 1)]


def test_wrap_int_is_the_wrap_overflow_rule():
    values = np.array([2**31, -(2**31) - 1, 2**34, 5, -5])
    assert wrap_int(values, 32).tolist() == [-(2**31), 2**31 - 1, 0, 5, -5]
    from bitsim.formats.fixed import quantize_int
    np.testing.assert_array_equal(wrap_int(values, 32), quantize_int(values, FixedFormat(32, 0, overflow="wrap")))


def test_mac_requantize_is_requantize_per_row():
    a = np.array([[-5], [37], [-37]], np.int8)
    b = np.ones((3, 1), np.int8)
    fmt = FixedFormat(8, 0, rounding="nearest_up")
    _, q = mac_requantize(a, b, np.array([1, 3, 3]), fmt)
    assert q.tolist() == [int(requantize(np.array([-5]), 1, fmt)[0])] + requantize(np.array([37, -37]), 3, fmt).tolist()


def test_refuses_bad_operands():
    with pytest.raises(InputError, match="same shape"):
        row_dot(np.zeros((2, 3), np.int8), np.zeros((2, 4), np.int8))
    with pytest.raises(InputTypeError):
        row_dot(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.int8))
    with pytest.raises(InputError, match="shifts"):
        mac_requantize(np.zeros((1, 1), np.int8), np.zeros((1, 1), np.int8), np.array([63]), FixedFormat(8, 0))
    with pytest.raises(InputError, match="frac_bits 0"):
        mac_requantize(np.zeros((1, 1), np.int8), np.zeros((1, 1), np.int8), np.array([1]), FixedFormat(8, 2))
    with pytest.raises(InputError, match="stochastic"):
        row_shift_add(np.zeros((1, 1), np.int8), 0, np.zeros((1, 1), np.uint8), LogFormat(), rounding="stochastic")
    with pytest.raises(InputError, match="does not fit"):
        row_shift_add(np.zeros((1, 1), np.int8), 0, np.full((1, 1), 255, np.uint8), LogFormat(exp_bits=3))


@pytest.mark.parametrize("case", GOLDEN["mac"], ids=lambda c: f"int{c['width']}-{c['rounding']}-{c['overflow']}")
def test_mac_golden_vectors(case):
    dtype = np.int8 if case["width"] == 8 else np.int16
    fmt = FixedFormat(case["out_bits"], 0, rounding=case["rounding"], overflow=case["overflow"])
    acc, q = mac_requantize(np.array(case["a"], dtype), np.array(case["b"], dtype), np.array(case["shift"]), fmt)
    assert acc.tolist() == case["acc"] and q.tolist() == case["q"]


@pytest.mark.parametrize("case", GOLDEN["shift_add"], ids=lambda c: f"{c['rounding']}-acc_frac{c['acc_frac']}")
def test_shift_add_golden_vectors(case):
    fmt = LogFormat(exp_bits=case["exp_bits"], exp_offset=case["exp_offset"])
    out = row_shift_add(np.array(case["x"], np.int8), 0, np.array(case["codes"], np.uint8), fmt,
                        acc_frac=case["acc_frac"], rounding=case["rounding"])
    assert out.tolist() == case["out"]


def test_the_worked_examples_of_the_docs():
    # docs/hardware.md, "The MAC unit": acc = -5 * 1 = -5, shift 1: -2.5
    fmt = {r: FixedFormat(8, 0, rounding=r) for r in ROUNDINGS}
    got = {r: int(mac_requantize(np.array([[-5]], np.int8), np.array([[1]], np.int8), np.array([1]), f)[1][0])
           for r, f in fmt.items()}
    assert got == {"floor": -3, "ceil": -2, "toward_zero": -2, "nearest_up": -2, "nearest_even": -2,
                   "nearest_away": -3}
    # two products of -128 * -128 and one of 127 * 127 make 2**15 + 16129 = 48897;
    # shift 8, nearest_even: 191.0039 -> 191
    acc, q = mac_requantize(np.array([[-128, -128, 127]], np.int8), np.array([[-128, -128, 127]], np.int8),
                            np.array([8]), FixedFormat(8, 0, rounding="nearest_even", overflow="wrap"))
    assert acc.tolist() == [48897] and q.tolist() == [-65]  # 191 wraps to 191 - 256
    # docs/hardware.md, "The shift-add unit": x = -5 times code 0x11 of LogFormat(4, -2): sign 1, field 1, -2^-1;
    # -5 / 2 = -2.5 is rounded first, then negated
    sa = LogFormat(exp_bits=4, exp_offset=-2)
    out = {r: int(row_shift_add(np.array([[-5]], np.int8), 0, np.array([[0x11]], np.uint8), sa, rounding=r)[0])
           for r in ROUNDINGS}
    assert out == {"floor": 3, "ceil": 2, "toward_zero": 2, "nearest_up": 2, "nearest_even": 2, "nearest_away": 3}
