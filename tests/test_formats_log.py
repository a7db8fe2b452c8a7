import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from bitsim.formats import Counts, log
from bitsim.formats.log import LogFormat, LogRounding
from bitsim.formats.rng import Xorshift32
from bitsim.reference.formats import log_decode_one, log_encode_one
from strategies import float32s, seeds

DETERMINISTIC = [LogRounding.LINEAR, LogRounding.LOG, LogRounding.TRUNCATE]
WIDTHS = [2, 3, 4, 5, 6, 7]


def test_hand_checked_table():
    f = LogFormat()
    x = np.float32([0.3, 1.0, 1.45, 1.5, -3.0, 0.0, -0.0, 2.0**63, 2.0**64, 2.0**-63, 2.0**-64])
    linear = [0x7E, 0x00, 0x00, 0x01, 0x82, 0x40, 0xC0, 0x3F, 0x3F, 0x41, 0x40]
    logd = [0x7E, 0x00, 0x01, 0x01, 0x82, 0x40, 0xC0, 0x3F, 0x3F, 0x41, 0x40]
    trunc = [0x7E, 0x00, 0x00, 0x00, 0x81, 0x40, 0xC0, 0x3F, 0x3F, 0x41, 0x40]
    for rounding, expected in zip(DETERMINISTIC, [linear, logd, trunc]):
        assert log.encode(x, f.replace(rounding=rounding)).tolist() == expected, rounding
    assert log.LOG_SQRT2_THRESHOLD == 3474676  # (2^23 + M)^2 >= 2^47 first holds here


def test_sqrt2_threshold_is_exact():
    t = log.LOG_SQRT2_THRESHOLD
    assert (2**23 + t) ** 2 >= 2**47 > (2**23 + t - 1) ** 2


@pytest.mark.parametrize("w", WIDTHS)
@pytest.mark.parametrize("offset", [0, 5, -9])
def test_every_code_decodes_and_round_trips(w, offset):
    for rounding in DETERMINISTIC + [LogRounding.STOCHASTIC]:
        f = LogFormat(exp_bits=w, exp_offset=offset, rounding=rounding)
        codes = np.arange(2 ** (w + 1), dtype=np.uint8)
        values = log.decode(codes, f)
        assert [float(v) for v in values] == [log_decode_one(int(c), f) for c in codes]
        np.testing.assert_array_equal(log.encode(values, f, rng=1), codes)  # exact powers never round
        assert np.array_equal(np.signbit(values), codes >> w == 1)


def test_all_256_log8_codes_values():
    f = LogFormat()
    values = log.decode(np.arange(256, dtype=np.uint8), f)
    for c in range(256):
        field = c & 0x7F
        e = field - 128 if field >= 64 else field
        expected = 0.0 if field == 64 else 2.0**e
        assert abs(float(values[c])) == expected and (values[c] < 0 or np.signbit(values[c])) == (c >= 128)


@given(float32s, st.sampled_from(DETERMINISTIC), st.sampled_from(WIDTHS), st.integers(-20, 20))
def test_encode_equals_oracle(x, rounding, w, offset):
    f = LogFormat(exp_bits=w, exp_offset=offset, rounding=rounding)
    assert int(log.encode(np.float32(x), f)) == log_encode_one(x, f)


@given(st.lists(float32s, min_size=1, max_size=30), seeds)
def test_stochastic_equals_oracle(xs, seed):
    f = LogFormat(rounding="stochastic")
    u = Xorshift32(seed).uint32(len(xs))
    expected = [log_encode_one(x, f, int(d)) for x, d in zip(xs, u)]
    assert log.encode(np.float32(xs), f, rng=Xorshift32(seed)).tolist() == expected


def test_stochastic_probability_is_the_mantissa():
    x = np.full(100_000, 1.25, np.float32)  # M / 2^23 = 0.25
    up = log.decode(log.encode(x, LogFormat(rounding="stochastic"), rng=11)) == 2.0
    assert abs(up.mean() - 0.25) < 0.01


@given(float32s, st.sampled_from(DETERMINISTIC + [LogRounding.STOCHASTIC]), seeds)
def test_quantizer_is_idempotent(x, rounding, seed):
    f = LogFormat(rounding=rounding)
    once = log.decode(log.encode(np.float32(x), f, rng=seed), f)
    assert log.encode(once, f, rng=seed + 1) == log.encode(once, f, rng=seed + 2)
    np.testing.assert_array_equal(log.decode(log.encode(once, f, rng=seed)), once)


@given(float32s)
def test_decoded_is_a_neighbouring_power(x):
    assume(x != 0 and 2.0**-63 <= abs(x) < 2.0**63)
    v = abs(float(log.decode(log.encode(np.float32(x)))))
    assert v / 2 <= abs(x) <= v * 2 and np.log2(v) % 1 == 0


def test_subnormals_range_and_counts():
    with pytest.raises(ValueError, match="leave float32"):
        LogFormat(exp_offset=-100)  # exponents -163..-37
    g = LogFormat(exp_bits=6, exp_offset=-118)  # exponents -149..-87 reach the subnormals
    sub = np.float32([2.0**-149, 3 * 2.0**-149, 2.0**-130])
    assert log.decode(log.encode(sub, g), g).tolist() == [2.0**-149, 2.0**-147, 2.0**-130]
    counts = Counts()
    x = np.float32([1e30, -1e30, 1e-30, 1.0])
    codes = log.encode(x, LogFormat(), counts=counts)
    assert (counts.saturated, counts.flushed) == (2, 1)
    assert codes.tolist() == [0x3F, 0xBF, 0x40, 0x00]
    sat = LogFormat(underflow="saturate")
    assert log.encode(np.float32(-1e-30), sat) == 0xC1


def test_nonfinite_and_errors():
    with pytest.raises(ValueError, match="NaN at index"):
        log.encode(np.float32([1, np.nan]))
    with pytest.raises(ValueError, match="nonfinite='saturate'"):
        log.encode(np.float32([np.inf]))
    assert log.encode(np.float32([np.inf, -np.inf]), LogFormat(nonfinite="saturate")).tolist() == [0x3F, 0xBF]
    with pytest.raises(OverflowError, match="above 2\\^63"):
        log.encode(np.float32([1e30]), LogFormat(overflow="error"))
    with pytest.raises(ArithmeticError, match="below 2\\^-63"):
        log.encode(np.float32([1e-30]), LogFormat(underflow="error"))
    with pytest.raises(ValueError, match="cannot wrap"):
        LogFormat(overflow="wrap")
    with pytest.raises(ValueError, match="does not fit"):
        log.decode(np.uint8([0x10]), LogFormat(exp_bits=3))
    with pytest.raises(ValueError, match="unknown LogRounding"):
        LogFormat(rounding="nearest")
    with pytest.raises(TypeError, match="encode with"):
        log.decode(np.float32([1.0]))


@given(float32s, st.integers(-63, 63))
@example(4.6364901428071e-30, -53)  # the float32 product rounds to 0, the exact one is below the normal range
@example(float((2 - 2**-23) * 2.0**-100), -27)  # the float32 product rounds up to the smallest normal
def test_exponent_add_multiply_equals_float32_product(x, e):
    code = log.encode(np.float32(2.0**e) * (-1) ** (e % 2))
    expected = np.float32(x) * log.decode(code)
    counts = Counts()
    got = log.multiply_float32(np.float32(x), code, counts=counts)
    tiny, big = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)
    exact = float(np.float32(x)) * 2.0**e  # exact: Python floats, compared without rounding to float32
    normal_in = x == 0 or abs(x) >= tiny
    normal_out = exact == 0 or tiny <= abs(exact) <= big
    if normal_in and normal_out:
        assert got.view(np.uint32) == expected.view(np.uint32)
        assert counts.total == 0
    else:
        assert counts.total == 1


def test_exponent_add_edges():
    f = LogFormat()
    counts = Counts()
    x = np.float32([3.0, 3.0, 1e-45, 0.0, -2.0, 2.0**100])
    codes = log.encode(np.float32([2.0**60, 2.0**-60, 1.0, -4.0, 0.0, 2.0**60]), f)
    got = log.multiply_float32(x, codes, f, counts)
    assert got[0] == 3 * 2.0**60 and got[1] == np.float32(3 * 2.0**-60)
    assert got[2] == 0 and got[3] == 0 and np.signbit(got[3]) and got[4] == 0 and np.signbit(got[4])
    assert got[5] == np.finfo(np.float32).max
    assert (counts.flushed, counts.saturated) == (1, 1)
