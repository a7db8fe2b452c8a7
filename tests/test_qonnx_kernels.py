"""The integer pieces of the QONNX exact level against slow oracles: threshold counts, rounding to float32."""

from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from bitsim.interop.exact_tensor import (
    Exact,
    exact_of_float,
    round_to_float32,
    to_float32,
)
from bitsim.kernels.thresholds import threshold_counts
from bitsim.reference.thresholds import threshold_counts as threshold_counts_oracle


@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 4), st.booleans(), st.integers(-3, 3),
       st.integers(-5, 5), st.integers(0, 2 ** 16))
def test_threshold_counts_equal_the_oracle(rows, channels, steps, shared, step, offset, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-20, 21, (rows, channels)).astype(np.int16)
    t = rng.integers(-20, 21, (1 if shared else channels, steps)).astype(np.int64)
    got = threshold_counts(x, t, step, offset)
    assert got.tolist() == threshold_counts_oracle(x, t.tolist(), step, offset)


def float32_by_bisection(f):
    """Oracle: the float32 nearest a Fraction, ties to even, by bisection over the ordered bit patterns."""
    if f == 0:
        return np.float32(0)
    sign = -1 if f < 0 else 1
    f = abs(f)
    lo, hi = 0, 0x7F800000  # +0 .. +inf as bit patterns, ordered like their values
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if Fraction(float(np.array(mid, np.uint32).view(np.float32))) <= f:
            lo = mid
        else:
            hi = mid
    below = Fraction(float(np.array(lo, np.uint32).view(np.float32)))
    above = Fraction(float(np.array(hi, np.uint32).view(np.float32))) if hi < 0x7F800000 else None
    if above is None or f - below < above - f or (f - below == above - f and lo % 2 == 0):
        pick = lo
    else:
        pick = hi
    return np.float32(sign * np.array(pick, np.uint32).view(np.float32))


CODES = st.one_of(st.integers(-(2 ** 70), 2 ** 70), st.integers(-(2 ** 30), 2 ** 30),
                  st.integers(0, 2 ** 25).map(lambda m: 2 * m + 1))  # odd codes: ties of a 2**-k scale
SCALES = st.one_of(st.fractions(min_value=Fraction(1, 10 ** 6), max_value=10 ** 6, max_denominator=10 ** 9),
                   st.integers(-40, 10).map(lambda k: Fraction(2) ** k),
                   st.floats(1e-6, 1e6).map(lambda v: Fraction(float(np.float32(v)))))


@given(st.lists(CODES, min_size=1, max_size=8), SCALES)
def test_round_to_float32_equals_bisection(codes, scale):
    arr = np.array(codes, dtype=object)
    got = round_to_float32(arr, np.array(scale, dtype=object))
    assert got.view(np.uint32).tolist() == [float32_by_bisection(c * scale).view(np.uint32).item() for c in codes]


def test_round_to_float32_at_midpoints():
    """Values exactly at, and one 2**-60 around, the midpoints between float32 neighbours."""
    one_plus = Fraction(1) + Fraction(1, 2 ** 24)  # midpoint between 1 and 1 + 2**-23: a tie, rounds to 1
    for f in (one_plus, one_plus + Fraction(1, 2 ** 60), one_plus - Fraction(1, 2 ** 60),
              Fraction(3) + Fraction(3, 2 ** 23)):
        scale = Fraction(1, f.denominator)
        e = Exact(np.array([f.numerator], dtype=object), np.array(scale, dtype=object))
        assert to_float32(e)[0] == float32_by_bisection(f)


@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=10))
def test_exact_of_float_round_trips(values):
    x = np.array(values, np.float32)
    e = exact_of_float(x)
    assert to_float32(e).view(np.uint32).tolist() == (x + np.float32(0)).view(np.uint32).tolist()  # -0.0 -> 0.0
