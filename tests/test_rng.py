import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitsim.formats.rng import GENERATORS, Philox, Xorshift32, bernoulli, make_rng, threshold32
from strategies import seeds


def xorshift32_python(seed, n):
    x, out = seed, []
    for _ in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out.append(x)
    return out


@given(seeds, st.integers(0, 300))
def test_xorshift32_equals_python_definition(seed, n):
    assert Xorshift32(seed).uint32(n).tolist() == xorshift32_python(seed, n)


@given(seeds, st.lists(st.integers(0, 40), max_size=5))
def test_draws_split_anywhere_give_the_same_stream(seed, sizes):
    for make in (Xorshift32, Philox):
        gen = make(seed)
        pieces = np.concatenate([gen.uint32(k) for k in sizes] + [np.zeros(0, np.uint32)])
        np.testing.assert_array_equal(pieces, make(seed).uint32(sum(sizes)))


def philox4x64_python(key, n):
    """Philox-4x64-10 (Salmon et al. 2011) as NumPy runs it: the counter is incremented before each block."""
    mask = 2**64 - 1
    out, ctr = [], [0, 0, 0, 0]
    while len(out) < n:
        ctr[0] += 1
        x, k = list(ctr), [key & mask, key >> 64]
        for r in range(10):
            if r:
                k = [(k[0] + 0x9E3779B97F4A7C15) & mask, (k[1] + 0xBB67AE8584CAA73B) & mask]
            p0, p1 = 0xD2E7470EE14C6C93 * x[0], 0xCA5A826395121157 * x[2]
            x = [(p1 >> 64) ^ x[1] ^ k[0], p1 & mask, (p0 >> 64) ^ x[3] ^ k[1], p0 & mask]
        out += x
    return [v >> 32 for v in out[:n]]


@given(st.integers(0, 2**64 - 1))
def test_philox_equals_python_definition(key):
    assert Philox(key).uint32(9).tolist() == philox4x64_python(key, 9)


def test_pinned_xorshift_stream():
    assert Xorshift32(1).uint32(3).tolist() == [270369, 67634689, 2647435461]


def test_bernoulli_rule_edges():
    assert threshold32([0.0, 0.5, 1.0, 2.0, -1.0]).tolist() == [0, 2**31, 2**32, 2**32, 0]
    assert bernoulli(np.ones(100), 5).all() and not bernoulli(np.zeros(100), 5).any()


def test_errors():
    with pytest.raises(ValueError, match="zero never changes state"):
        Xorshift32(0)
    with pytest.raises(ValueError, match="choose one of"):
        make_rng("mersenne", 1)
    with pytest.raises(ValueError, match="needs a generator"):
        bernoulli([0.5], None)
    with pytest.raises(ValueError, match="NaN"):
        bernoulli([np.nan], 1)
    assert set(GENERATORS) == {"philox", "xorshift32"}
