"""Input checks of the format codecs: each pins a finding of "Golden files and models you can trust", item 6.

Every refused input raises a bitsim error (also the built-in class a user would catch) whose message
says what is wrong and how to fix it; every accepted input gives the exact result of the documented rule.
"""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitsim.errors import BitsimError, InputError, InputTypeError, RangeError
from bitsim.formats import Counts, binary, fixed, log, parse_format, rng, ternary
from bitsim.formats.fixed import FixedFormat
from bitsim.formats.log import LogFormat
from bitsim.formats.modes import Overflow, Rounding
from bitsim.formats.rng import Philox, Xorshift32, make_rng
from bitsim.reference.formats import overflow_int, round_fraction

Q78 = FixedFormat(16, 8)
INT64 = np.iinfo(np.int64)


def raises(kind, match):
    """``pytest.raises`` that also checks the error is one of bitsim's own."""
    assert issubclass(kind, BitsimError)
    return pytest.raises(kind, match=match)


def exact_code(x, fmt, u=None):
    """The documented rule on the exact rational ``x * 2**frac_bits``: round, then the overflow mode."""
    return overflow_int(round_fraction(Fraction(x) * Fraction(2) ** fmt.frac_bits, fmt.rounding, u),
                        fmt.bits, fmt.overflow)[0]


# 1. binary.dot ---------------------------------------------------------------------------------------------


def test_dot_still_computes_the_rule():
    a, b = [1, -1, 1, 1, -1], [1, 1, -1, 1, -1]
    assert binary.dot(binary.pack(a), binary.pack(b), 5) == int(np.dot(a, b)) == 1
    assert binary.dot(binary.pack(a, "big"), binary.pack(b, "big"), 5, "big") == 1
    empty = np.zeros(0, np.uint64)
    assert binary.dot(empty, empty, 0) == 0


@pytest.mark.parametrize("n, a_len, b_len, match", [
    (1000, 1, 1, "1000 values need a 1-D array of 16 uint64 words"),  # n beyond what the words hold
    (65, 1, 1, "65 values need a 1-D array of 2"),
    (3, 2, 2, "3 values need a 1-D array of 1"),                       # the word count, not the length
    (64, 1, 2, "a has shape \\(1,\\) and b \\(2,\\)"),                 # mismatched lengths
])
def test_dot_refuses_lengths_that_do_not_match(n, a_len, b_len, match):
    with raises(InputError, match):
        binary.dot(np.zeros(a_len, np.uint64), np.zeros(b_len, np.uint64), n)


def test_dot_refuses_bad_n_dtypes_shapes_and_padding():
    w = binary.pack([1, -1, 1])
    with raises(InputError, "n must be >= 0, got -1"):
        binary.dot(w, w, -1)
    for n in (3.0, 2.5, True, "3"):
        with raises(InputTypeError, "the length n must be an int"):
            binary.dot(w, w, n)
    with raises(InputTypeError, "b must be uint64 packed words, got int64; pack with"):
        binary.dot(w, w.astype(np.int64), 3)
    with raises(InputTypeError, "a must be uint64 packed words"):
        binary.dot([5], w, 3)
    with raises(InputError, "1-D array"):
        binary.dot(w[None], w[None], 3)
    with raises(InputError, "padding bits beyond length 3 are not zero"):
        binary.dot(w | np.uint64(1 << 40), w, 3)
    assert binary.dot(np.uint64(np.iinfo(np.uint64).max) * np.ones(1, np.uint64), w | ~w, 64) == 64


def test_neighbours_of_dot_refuse_bad_lengths():
    w = binary.pack([1, -1, 1])
    with raises(InputTypeError, "must be an int"):
        binary.unpack(w, 3.0)
    with raises(InputError, "must be >= 0"):
        binary.unpack_bits(np.zeros(0, np.uint64), -1)
    with raises(InputError, "must be >= 0"):
        binary.n_words(-5)
    with raises(InputTypeError, "must be an int"):
        binary.padding_mask(2.5)
    with raises(InputTypeError, "word_bits must be an int"):
        binary.pack_bits([True], word_bits=8.0)
    with raises(InputError, "3 values need 1 words"):
        binary.check_padding(np.zeros(2, np.uint64), 3)
    with raises(InputTypeError, "unsigned packed words"):
        binary.check_padding(np.zeros(1, np.int64), 3)
    with raises(InputTypeError, "uint64 packed words"):
        binary.describe(np.int64(5), 3)


# 2. exact integer quantization -------------------------------------------------------------------------------


def test_int64_above_2_53_wraps_exactly():
    x = np.array([2**60 + 1, 2**62 + 3, INT64.max, INT64.min, -(2**55) - 7], dtype=np.int64)
    fmt = FixedFormat(8, 0, overflow="wrap")
    counts = Counts()
    got = fixed.quantize(x, fmt, counts=counts)
    assert got.tolist() == [exact_code(int(v), fmt) for v in x] == [1, 3, -1, 0, -7]
    assert counts.wrapped == 5


def test_uint64_beyond_int64_is_exact():
    x = np.array([2**64 - 1, 2**63, 2**63 + 2**40 + 5], dtype=np.uint64)
    for fmt in (FixedFormat(8, 0, overflow="wrap"), FixedFormat(12, -3, "nearest_away", "wrap"),
                FixedFormat(12, -3, "toward_zero", "wrap"), FixedFormat(6, 5, "floor", "wrap")):
        assert fixed.quantize(x, fmt).tolist() == [exact_code(int(v), fmt) for v in x]
    counts = Counts()
    assert fixed.quantize(x, "Q3.4", counts=counts).tolist() == [127] * 3 and counts.saturated == 3
    with raises(RangeError, "overflow"):
        fixed.quantize(x, FixedFormat(8, 0, overflow="error"))


big_ints = st.one_of(st.integers(INT64.min, INT64.max), st.integers(-(2**20), 2**20))
int_formats = st.builds(FixedFormat, bits=st.integers(2, 32), frac_bits=st.integers(-32, 62),
                        rounding=st.sampled_from(list(Rounding)),
                        overflow=st.sampled_from([Overflow.SATURATE, Overflow.WRAP]))


@given(st.lists(big_ints, min_size=1, max_size=12), int_formats, st.integers(1, 2**32 - 1))
def test_integer_inputs_follow_the_exact_rule(xs, fmt, seed):
    draws = Xorshift32(seed).uint32(len(xs))
    expected = [exact_code(x, fmt, int(u)) for x, u in zip(xs, draws)]
    gen = Xorshift32(seed)
    assert fixed.quantize(np.array(xs, dtype=np.int64), fmt, rng=gen).tolist() == expected
    if fmt.rounding is Rounding.STOCHASTIC:
        assert gen.state == int(draws[-1])  # one draw per element, as for floats


@given(st.lists(st.integers(-(2**53), 2**53), min_size=1, max_size=12), int_formats, st.integers(1, 2**32 - 1))
def test_integer_and_float_paths_agree_where_float64_is_exact(xs, fmt, seed):
    ints, floats = Xorshift32(seed), Xorshift32(seed)
    np.testing.assert_array_equal(fixed.quantize(np.array(xs, dtype=np.int64), fmt, rng=ints),
                                  fixed.quantize(np.array(xs, dtype=np.float64), fmt, rng=floats))
    assert ints.state == floats.state


def test_float_rounding_is_exact_at_the_edges():
    # nearest_away of -0.49999999999999994: 1 + v rounds to 0.5, a false tie
    assert fixed.quantize(np.array([-0.49999999999999994]), FixedFormat(8, 0, "nearest_away")).tolist() == [0]
    # stochastic: frac of -2**-40 is 1 - 2**-40, threshold 2**32 - 1, so the draw 2**32 - 1 keeps -1
    fmt = FixedFormat(8, 0, "stochastic")

    class Fixed:
        def uint32(self, n):
            return np.full(n, 2**32 - 1, np.uint32)

    got = fixed.quantize(np.array([-(2.0**-40)]), fmt, rng=Fixed()).tolist()
    assert got == [exact_code(-(2.0**-40), fmt, 2**32 - 1)] == [-1]
    # a nonzero value whose scaled value underflows float64 keeps its sign for the directed modes
    x = np.array([5e-324, -5e-324])
    assert fixed.quantize(x, FixedFormat(8, -1, "ceil")).tolist() == [1, 0]
    assert fixed.quantize(x, FixedFormat(8, -1, "floor")).tolist() == [0, -1]
    if np.dtype(np.longdouble).itemsize > 8:
        with raises(InputTypeError, "convert them to float64"):
            fixed.quantize(np.longdouble(1), Q78)


# 3. ternarize -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [float("nan"), -0.5, -1, float("inf"), np.float32("nan")])
def test_ternarize_refuses_nan_negative_and_infinite_thresholds(threshold):
    with raises(InputError, "threshold must be a finite number >= 0"):
        ternary.ternarize([0.7, -0.7, 0.0], threshold)


def test_ternarize_threshold_zero_is_the_sign_and_types_are_checked():
    assert ternary.ternarize([0.7, -0.7, 0.0, -0.0], 0).tolist() == [1, -1, 0, 0]
    assert ternary.ternarize(np.array([3, -3, 1], np.int64), 1).tolist() == [1, -1, 0]
    with raises(InputTypeError, "threshold must be a real number"):
        ternary.ternarize([0.7], True)
    with raises(InputTypeError, "threshold must be a real number"):
        ternary.ternarize([0.7], [0.5, 0.5])
    with raises(InputTypeError, "real numeric array"):
        ternary.ternarize(np.array(["0.7"]))
    with raises(InputTypeError, "real numeric array"):
        ternary.ternarize_stochastic(np.array(["0.7"]), 1)


def test_ternarize_names_the_first_nan():
    with raises(InputError, "ternarize got nan at index \\(1, 0\\); remove NaN/Inf"):
        ternary.ternarize(np.array([[0.1, 0.2], [np.nan, 0.3]]))
    with raises(InputError, "ternarize_stochastic got nan at index \\(2,\\)"):
        ternary.ternarize_stochastic([0.1, 0.2, np.nan], 1)


# 4. integral parameters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("make, match", [
    (lambda: FixedFormat(16.5, 8), "fixed-point bits must be an int, got 16.5"),
    (lambda: FixedFormat(16.0, 8), "pass int\\(16.0\\)"),
    (lambda: FixedFormat(True, 0), "bits must be an int, got True"),
    (lambda: FixedFormat(16, 8.5), "frac_bits must be an int"),
    (lambda: FixedFormat(16, np.float64(8)), "frac_bits must be an int"),
    (lambda: LogFormat(exp_bits=6.5), "exp_bits must be an int"),
    (lambda: LogFormat(exp_offset=-1.5), "exp_offset must be an int"),
    (lambda: make_rng(seed=1.5), "philox seed must be an int, got 1.5"),
    (lambda: make_rng("xorshift32", 7.0), "xorshift32 seed must be an int"),
    (lambda: Philox(False), "philox seed must be an int"),
    (lambda: rng.as_rng(True), "rng must be a bitsim generator or an int seed"),
    (lambda: rng.as_rng(2.0), "rng must be a bitsim generator or an int seed"),
    (lambda: Philox(1).uint32(2.5), "number of draws must be an int"),
    (lambda: Xorshift32(1).uint32(np.float32(2)), "number of draws must be an int"),
    (lambda: fixed.requantize(np.array([5]), 1.5, Q78), "acc_frac_bits must be an int"),
])
def test_non_integers_are_refused(make, match):
    with raises(InputTypeError, match):
        make()


@pytest.mark.parametrize("make, match", [
    (lambda: FixedFormat(33, 0), "bits must be 2..32"),
    (lambda: FixedFormat(8, 63), "frac_bits must be -32..62"),
    (lambda: make_rng(seed=-1), "philox seed must be in 0..2\\*\\*64-1"),
    (lambda: Philox(2**64), "philox seed must be in 0..2\\*\\*64-1"),
    (lambda: make_rng("xorshift32", 2**32), "xorshift32 seed must be in 1..2\\*\\*32-1"),
    (lambda: Philox(1).uint32(-1), "number of draws must be >= 0"),
    (lambda: make_rng(["philox"], 1), "unknown generator"),
])
def test_out_of_range_integers_are_refused(make, match):
    with raises(InputError, match):
        make()


def test_numpy_integers_still_work():
    assert FixedFormat(np.int16(16), np.uint8(8)) == Q78 and FixedFormat(np.int64(8), np.int8(-3)).frac_bits == -3
    assert LogFormat(exp_bits=np.int32(3), exp_offset=np.int64(-1)) == LogFormat(3, -1)
    np.testing.assert_array_equal(make_rng("philox", np.uint64(2**64 - 1)).uint32(np.int64(3)),
                                  Philox(2**64 - 1).uint32(3))
    np.testing.assert_array_equal(make_rng("xorshift32", np.uint32(7)).uint32(np.uint8(2)), Xorshift32(7).uint32(2))
    np.testing.assert_array_equal(rng.as_rng(np.int32(5)).uint32(2), Philox(5).uint32(2))


# 5. to_float range ------------------------------------------------------------------------------------------


def test_to_float_refuses_codes_outside_the_range():
    with raises(RangeError, "code 100000 at index \\(\\) is outside Q7.8's range -32768..32767"):
        fixed.to_float(100000, Q78)
    with raises(RangeError, "code -129 at index \\(1, 0\\) is outside Q3.4's range -128..127"):
        fixed.to_float(np.array([[0, 1], [-129, 200]]), FixedFormat(8, 4))
    with raises(RangeError, "code 128 at index \\(0,\\)"):
        fixed.to_float(np.array([128], np.uint64), FixedFormat(8, 4))
    assert fixed.to_float(np.array([-32768, 32767]), Q78).tolist() == [-128.0, 32767 / 256]


def test_multiply_and_saturate_check_their_codes():
    f = FixedFormat(8, 4)
    with raises(RangeError, "multiply \\(a\\): code 2147483648 at index \\(0,\\) is outside Q3.4's range"):
        fixed.multiply(np.array([2**31]), f, np.array([2**31]), f, f)
    with raises(InputTypeError, "multiply expects integers, got dtype float64"):
        fixed.multiply(np.array([1.5]), f, np.array([1]), f, f)
    with raises(InputTypeError, "saturate expects integers"):
        fixed.saturate(np.array([300.7]), f)
    with raises(RangeError, "exceeds int64's range"):
        fixed.saturate(np.array([2**63], np.uint64), f)
    with raises(RangeError, "exceeds int64's range"):
        fixed.rshift_round(np.array([2**64 - 1], np.uint64), 3)
    with raises(RangeError, "exceeds int64's range"):
        fixed.requantize(np.array([2**63], np.uint64), 4, f)


# 6. formats given by name -----------------------------------------------------------------------------------


def test_fixed_functions_take_format_names():
    x = np.array([1.5, -3.25, 200.0])
    np.testing.assert_array_equal(fixed.quantize(x, "Q7.8"), fixed.quantize(x, Q78))
    np.testing.assert_array_equal(fixed.quantize(x, "fix16:8"), fixed.quantize(x, Q78))
    codes = fixed.quantize(x, Q78)
    np.testing.assert_array_equal(fixed.to_float(codes, "Q7.8"), fixed.to_float(codes, Q78))
    np.testing.assert_array_equal(fixed.requantize(codes, 8, "Q3.4"), fixed.requantize(codes, 8, FixedFormat(8, 4)))
    np.testing.assert_array_equal(fixed.multiply(codes, "Q7.8", codes, "Q7.8", "fix32:16"),
                                  fixed.multiply(codes, Q78, codes, Q78, FixedFormat(32, 16)))
    np.testing.assert_array_equal(fixed.saturate(np.array([300]), "Q3.4"), [127])
    assert fixed.as_fixed("q7.8") == Q78 == parse_format("Q7.8")


def test_bad_format_arguments_say_what_to_give():
    with raises(InputTypeError, "expected a FixedFormat or a name such as 'Q7.8', got LogFormat"):
        fixed.quantize([1.0], LogFormat())
    with raises(InputTypeError, "got int"):
        fixed.to_float([1], 16)
    with raises(InputError, "cannot parse fixed-point format 'Q7'"):
        fixed.quantize([1.0], "Q7")
    with raises(InputTypeError, "expected a LogFormat or a name such as 'log8'"):
        log.encode([1.0], Q78)
    np.testing.assert_array_equal(log.encode([0.3], "log8"), log.encode([0.3], LogFormat()))
    np.testing.assert_array_equal(log.decode(np.uint8([0x7E]), "log8"), [0.25])


# 7. finite values beyond float32 / float64 are finite --------------------------------------------------------


def test_log_encode_counts_huge_finite_float64_as_saturated():
    counts = Counts()
    codes = log.encode(np.array([1e300, -1e300, 3e38 * 2]), LogFormat(), counts=counts)
    assert codes.tolist() == [0x3F, 0xBF, 0x3F] and counts.saturated == 3
    with raises(RangeError, "3 value\\(s\\) above 2\\^63"):
        log.encode(np.array([1e300, -1e300, 3e38 * 2]), LogFormat(overflow="error", nonfinite="saturate"))
    with raises(InputError, "infinity at index \\(1,\\)"):
        log.encode(np.array([1e300, np.inf]), LogFormat())


def test_log_encode_counts_tiny_nonzero_float64_as_underflow():
    counts = Counts()
    assert log.encode(np.array([1e-300, -1e-300, 0.0]), LogFormat(), counts=counts).tolist() == [0x40, 0xC0, 0x40]
    assert counts.flushed == 2
    counts = Counts()
    low = LogFormat(exp_bits=7, exp_offset=-86, underflow="saturate")  # exponents -149..-23
    codes = log.encode(np.array([1e-300]), low, counts=counts)
    assert log.decode(codes, low).tolist() == [2.0**-149] and counts.saturated == 1
    with raises(RangeError, "nonzero value\\(s\\) below"):
        log.encode(np.array([1e-300]), LogFormat(underflow="error"))


def test_fixed_quantize_treats_huge_finite_values_as_finite():
    x = np.array([1e308, -1e308, 1.0])
    counts = Counts()
    assert fixed.quantize(x, Q78, counts=counts).tolist() == [32767, -32768, 256] and counts.saturated == 2
    counts = Counts()
    assert fixed.quantize(x, FixedFormat(16, 8, overflow="wrap"), counts=counts).tolist() == [0, 0, 256]
    assert counts.wrapped == 2
    with raises(RangeError, "2 value\\(s\\) overflow Q7.8"):
        fixed.quantize(x, FixedFormat(16, 8, overflow="error"))
    inf = FixedFormat(8, 2, "stochastic", nonfinite="saturate")
    assert fixed.quantize(np.array([np.inf, -np.inf, 1e308]), inf, rng=1).tolist() == [127, -128, 127]


def test_multiply_float32_names_values_beyond_float32():
    with raises(RangeError, "1e\\+300 at index \\(1,\\) is beyond float32's range"):
        log.multiply_float32(np.array([1.0, 1e300]), np.uint8([0, 0]))
    with raises(InputError, "non-finite value at index \\(0,\\)"):
        log.multiply_float32(np.array([np.inf]), np.uint8([0]))
