import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitsim.formats import Counts, fixed
from bitsim.formats.fixed import FixedFormat, parse_fixed
from bitsim.formats.modes import Overflow, Rounding
from bitsim.formats.rng import Xorshift32
from bitsim.reference.formats import fixed_quantize_one, rshift_round_one
from strategies import float32s, seeds

import apytypes as apy

DETERMINISTIC = [r for r in Rounding if r is not Rounding.STOCHASTIC]
APY_ROUNDING = {
    Rounding.FLOOR: "TO_NEG", Rounding.CEIL: "TO_POS", Rounding.TOWARD_ZERO: "TO_ZERO",
    Rounding.NEAREST_UP: "TIES_POS", Rounding.NEAREST_EVEN: "TIES_EVEN", Rounding.NEAREST_AWAY: "TIES_AWAY",
}
APY_OVERFLOW = {Overflow.SATURATE: "SAT", Overflow.WRAP: "WRAP"}
formats = st.builds(
    FixedFormat,
    bits=st.integers(2, 32),
    frac_bits=st.integers(-8, 40),
    rounding=st.sampled_from(DETERMINISTIC),
    overflow=st.sampled_from([Overflow.SATURATE, Overflow.WRAP]),
)


def apy_signed(a, bits):
    v = np.asarray(a.to_bits()).astype(object)
    return np.where(v >= 2 ** (bits - 1), v - 2**bits, v).astype(np.int64)


def apy_cast(a, fmt):
    return a.cast(int_bits=fmt.bits - fmt.frac_bits, frac_bits=fmt.frac_bits,
                  quantization=getattr(apy.QuantizationMode, APY_ROUNDING[fmt.rounding]),
                  overflow=getattr(apy.OverflowMode, APY_OVERFLOW[fmt.overflow]))


def test_hand_checked_rounding_table():
    # x * 2^0 for ties and near-ties; each column a mode
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -1.25, 1.75])
    table = {
        Rounding.FLOOR: [-3, -2, -1, 0, 1, 2, -2, 1],
        Rounding.CEIL: [-2, -1, 0, 1, 2, 3, -1, 2],
        Rounding.TOWARD_ZERO: [-2, -1, 0, 0, 1, 2, -1, 1],
        Rounding.NEAREST_UP: [-2, -1, 0, 1, 2, 3, -1, 2],
        Rounding.NEAREST_EVEN: [-2, -2, 0, 0, 2, 2, -1, 2],
        Rounding.NEAREST_AWAY: [-3, -2, -1, 1, 2, 3, -1, 2],
    }
    for rounding, expected in table.items():
        assert fixed.quantize(x, FixedFormat(8, 0, rounding)).tolist() == expected, rounding
        ints = (x * 4).astype(np.int64)  # the same values as integers with two fractional bits
        assert fixed.rshift_round(ints, 2, rounding).tolist() == expected, rounding


def test_overflow_table():
    f = FixedFormat(8, 4)
    x = np.array([7.9375, 8.0, -8.0, -8.0625, 100.0])
    counts = Counts()
    assert fixed.quantize(x, f, counts=counts).tolist() == [127, 127, -128, -128, 127]
    assert counts.saturated == 3
    counts = Counts()
    assert fixed.quantize(x, f.replace(overflow="wrap"), counts=counts).tolist() == [127, -128, -128, 127, 64]
    assert counts.wrapped == 3
    with pytest.raises(OverflowError, match="overflow Q3.4"):
        fixed.quantize(x, f.replace(overflow="error"))


@given(st.lists(float32s, min_size=1, max_size=20), formats)
def test_quantize_equals_apytypes(xs, fmt):
    x = np.array(xs, dtype=np.float32)
    exact = apy.APyFixedArray.from_float(x.astype(np.float64), int_bits=140, frac_bits=160)
    np.testing.assert_array_equal(fixed.quantize(x, fmt).astype(np.int64), apy_signed(apy_cast(exact, fmt), fmt.bits))


@given(st.lists(float32s, min_size=1, max_size=20), formats)
def test_quantize_equals_fraction_oracle(xs, fmt):
    got = fixed.quantize(np.float32(xs), fmt)
    assert got.tolist() == [fixed_quantize_one(x, fmt) for x in np.float32(xs)]
    assert got.dtype == fmt.dtype


@pytest.mark.parametrize("frac_bits", [0, 3, 7])
@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("overflow", [Overflow.SATURATE, Overflow.WRAP])
def test_every_8bit_code_round_trips(frac_bits, rounding, overflow):
    f = FixedFormat(8, frac_bits, rounding, overflow)
    codes = np.arange(-128, 128, dtype=np.int8)
    values = fixed.to_float(codes, f)
    assert values.tolist() == [c * 2.0**-frac_bits for c in range(-128, 128)]
    counts = Counts()
    np.testing.assert_array_equal(fixed.quantize(values, f, rng=1, counts=counts), codes)
    assert counts.total == 0


@given(st.lists(float32s, min_size=1, max_size=20), formats, seeds)
def test_quantize_is_idempotent(xs, fmt, seed):
    once = fixed.to_float(fixed.quantize(np.float32(xs), fmt), fmt)
    np.testing.assert_array_equal(fixed.quantize(once, fmt), fixed.quantize(np.float32(xs), fmt))
    sr = fmt.replace(rounding="stochastic")
    np.testing.assert_array_equal(fixed.quantize(once, sr, rng=seed), fixed.quantize(np.float32(xs), fmt))


@given(st.lists(st.floats(-100, 100, width=32), min_size=1, max_size=30), seeds)
def test_stochastic_rule(xs, seed):
    f = FixedFormat(16, 6, "stochastic")
    u = Xorshift32(seed).uint32(len(xs))
    expected = [fixed_quantize_one(x, f, int(d)) for x, d in zip(np.float32(xs), u)]
    assert fixed.quantize(np.float32(xs), f, rng=Xorshift32(seed)).tolist() == expected


def test_stochastic_is_unbiased():
    x = np.full(100_000, 0.3)
    mean = fixed.to_float(fixed.quantize(x, FixedFormat(8, 2, "stochastic"), rng=5), FixedFormat(8, 2)).mean()
    assert abs(mean - 0.3) < 0.003


EDGES = [np.iinfo(np.int64).min, np.iinfo(np.int64).min + 1, -(2**31), -(2**31) + 1, -2, -1, 0, 1, 2,
         2**31 - 1, np.iinfo(np.int64).max - 1, np.iinfo(np.int64).max]


@pytest.mark.parametrize("rounding", list(Rounding))
def test_rshift_every_amount_at_the_edges(rounding):
    x = np.array(EDGES, dtype=np.int64)
    for s in range(fixed.MAX_SHIFT + 1):
        gen = Xorshift32(s + 1)
        u = Xorshift32(s + 1).uint32(len(EDGES))
        got = fixed.rshift_round(x, s, rounding, rng=gen)
        expected = [rshift_round_one(v, s, rounding, int(d)) for v, d in zip(EDGES, u)]
        assert got.tolist() == expected, (rounding, s)


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=20), st.integers(0, 62),
       st.sampled_from(DETERMINISTIC))
def test_rshift_equals_oracle(xs, s, rounding):
    got = fixed.rshift_round(np.array(xs, dtype=np.int64), s, rounding)
    assert got.tolist() == [rshift_round_one(v, s, rounding) for v in xs]


@given(st.lists(st.integers(-(2**15), 2**15 - 1), min_size=1, max_size=20), formats)
def test_multiply_equals_apytypes(codes, out_fmt):
    a_fmt, b_fmt = FixedFormat(16, 7), FixedFormat(16, 11)
    a = np.array(codes, dtype=np.int16)
    b = a[::-1].copy()
    got = fixed.multiply(a, a_fmt, b, b_fmt, out_fmt)
    pa = apy.APyFixedArray(a.astype(np.int64), int_bits=9, frac_bits=7)
    pb = apy.APyFixedArray(b.astype(np.int64), int_bits=5, frac_bits=11)
    np.testing.assert_array_equal(got.astype(np.int64), apy_signed(apy_cast(pa * pb, out_fmt), out_fmt.bits))


def test_requantize_left_shift_overflow_counted():
    f = FixedFormat(8, 4)
    counts = Counts()
    got = fixed.requantize(np.array([1, 7, 8, -8, -9, 2**40]), 0, f, counts=counts)
    assert got.tolist() == [16, 112, 127, -128, -128, 127] and counts.saturated == 3


def test_parse_and_errors():
    assert parse_fixed("Q3.4") == FixedFormat(8, 4) and parse_fixed("fix16:8") == FixedFormat(16, 8)
    assert FixedFormat(16, 8).dtype == np.int16 and FixedFormat(17, 8).dtype == np.int32
    with pytest.raises(ValueError, match="cannot parse"):
        parse_fixed("Q3")
    with pytest.raises(ValueError, match="bits must be 2..32"):
        FixedFormat(33, 0)
    with pytest.raises(ValueError, match="NaN at index \\(1,\\)"):
        fixed.quantize(np.array([1.0, np.nan]), FixedFormat(8, 4))
    with pytest.raises(ValueError, match="nonfinite='saturate'"):
        fixed.quantize(np.array([np.inf]), FixedFormat(8, 4))
    assert fixed.quantize(np.array([np.inf, -np.inf]), FixedFormat(8, 4, nonfinite="saturate")).tolist() == [127, -128]
    with pytest.raises(ValueError, match="needs a generator"):
        fixed.quantize([0.5], FixedFormat(8, 4, "stochastic"))
    with pytest.raises(ValueError, match="shift must be"):
        fixed.rshift_round(np.array([1]), 63)
    with pytest.raises(TypeError, match="quantize first"):
        fixed.to_float(np.array([0.5]), FixedFormat(8, 4))
    with pytest.raises(ValueError, match="unknown Rounding"):
        FixedFormat(8, 4, "banker")
