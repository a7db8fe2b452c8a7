import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitsim.formats import binary, ternary
from bitsim.reference.formats import pack_one
from strategies import bitorders, float32_arrays, lengths, pm1_arrays, seeds, ternary_arrays


def test_hand_checked_layout():
    # element i at bit i (little) or bit 63 - i (big); +1 -> 1, -1 -> 0
    assert binary.pack([1, -1, 1, 1]).tolist() == [0b1101]
    assert binary.pack([1, -1, 1, 1], "big").tolist() == [0b1011 << 60]
    assert binary.pack([-1] * 64 + [1]).tolist() == [0, 1]
    assert binary.pack([1] * 65).tolist() == [2**64 - 1, 1]  # padding bits of word 1 stay 0


@pytest.mark.parametrize("n", [0, 1, 2, 63, 64, 65, 127, 128, 129, 200])
@pytest.mark.parametrize("bitorder", ["little", "big"])
def test_round_trip_every_boundary_length(n, bitorder):
    values = np.where(np.random.default_rng(n).random((3, n)) < 0.5, 1, -1).astype(np.int8)
    words = binary.pack(values, bitorder)
    assert words.shape == (3, binary.n_words(n)) and words.dtype == np.uint64
    np.testing.assert_array_equal(binary.unpack(words, n, bitorder), values)
    binary.check_padding(words, n, bitorder)


@given(pm1_arrays(), bitorders)
def test_pack_matches_bit_by_bit_oracle(values, bitorder):
    words = binary.pack(values, bitorder)
    for row, packed in zip(values, words):
        assert [int(w) for w in packed] == pack_one(row.tolist(), 64, bitorder)


@given(pm1_arrays(), bitorders)
def test_round_trip_and_padding_zero(values, bitorder):
    n = values.shape[1]
    words = binary.pack(values, bitorder)
    np.testing.assert_array_equal(binary.unpack(words, n, bitorder), values)
    if words.size:
        assert not (words[:, -1] & ~binary.padding_mask(n, 64, bitorder)).any()


@given(st.data())
def test_xnor_dot_equals_integer_dot(data):
    n = data.draw(lengths)
    a = data.draw(pm1_arrays(n=n, max_rows=1))
    b = data.draw(pm1_arrays(n=n, max_rows=1))
    if len(a) and len(b):
        assert binary.dot(binary.pack(a[0]), binary.pack(b[0]), n) == int(a[0].astype(int) @ b[0])


@given(float32_arrays)
def test_sign_binarization_is_idempotent_and_packs(x):
    v = binary.binarize(x)
    assert set(np.unique(v)) <= {-1, 1}
    np.testing.assert_array_equal(binary.binarize(v), v)
    np.testing.assert_array_equal(binary.pack_signs(x), binary.pack(v))
    np.testing.assert_array_equal(v, np.where(x >= 0, 1, -1))


def test_sign_of_zero_is_plus_one():
    assert binary.binarize(np.float32([0.0, -0.0])).tolist() == [1, 1]


@given(pm1_arrays(), st.sampled_from([8, 16, 32, 64]))
def test_foreign_conventions_round_trip(values, word_bits):
    n = values.shape[1]
    words = binary.pack(values)
    np.testing.assert_array_equal(binary.from_lce(binary.to_lce(words, n), n), words)
    finn = binary.to_finn(words, n, word_bits)
    assert finn.dtype == np.dtype(f"u{word_bits // 8}")
    np.testing.assert_array_equal(binary.from_finn(finn, n), words)


def test_foreign_conventions_hand_checked():
    words = binary.pack([1, -1, 1, 1])
    assert binary.to_lce(words, 4).tolist() == [0b0010]  # LCE: element i at bit i, 1 means -1
    assert binary.to_lce(words, 4).dtype == np.int32
    assert binary.to_finn(words, 4, 8).tolist() == [0b10110000]  # FINN: element 0 at the MSB, 1 means +1
    assert binary.to_lce(binary.pack([-1] * 32), 32).tolist() == [-1]


def test_bad_inputs_say_what_to_do():
    with pytest.raises(ValueError, match="binarize first"):
        binary.pack([1, 0, -1])
    with pytest.raises(ValueError, match="NaN/Inf"):
        binary.binarize(np.float32([1, np.nan]))
    with pytest.raises(TypeError, match="expected uint64 packed words"):
        binary.unpack(np.zeros(1, np.int32), 3)
    with pytest.raises(ValueError, match="need 2 words"):
        binary.unpack(np.zeros(1, np.uint64), 65)
    with pytest.raises(ValueError, match="padding bits beyond length 3"):
        binary.check_padding(np.array([0b1000], np.uint64), 3)
    with pytest.raises(ValueError, match="bitorder"):
        binary.pack([1], "middle")


@given(st.lists(st.floats(-2, 2, width=32), min_size=1, max_size=50), seeds)
def test_stochastic_binarization_rule(x, seed):
    from bitsim.formats.rng import Xorshift32

    got = binary.binarize_stochastic(np.float32(x), Xorshift32(seed))
    u = Xorshift32(seed).uint32(len(x)).astype(np.uint64)
    p = np.clip((np.float64(np.float32(x)) + 1) / 2, 0, 1)
    expected = np.where(u < np.floor(p * 2**32).astype(np.uint64), 1, -1)
    np.testing.assert_array_equal(got, expected)


def test_stochastic_binarization_frequency():
    x = np.full(200_000, 0.5, np.float32)  # P(+1) = 0.75
    frac = (binary.binarize_stochastic(x, 7) > 0).mean()
    assert abs(frac - 0.75) < 0.005


@given(ternary_arrays(), bitorders)
def test_ternary_round_trip_and_canonical(values, bitorder):
    n = values.shape[1]
    signs, mask = ternary.pack_ternary(values, bitorder)
    assert not (signs & ~mask).any()
    np.testing.assert_array_equal(ternary.unpack_ternary(signs, mask, n, bitorder), values)
    np.testing.assert_array_equal(mask, binary.pack_bits(values != 0, 64, bitorder))


def test_ternary_hand_checked_and_errors():
    signs, mask = ternary.pack_ternary([1, 0, -1, 1])
    assert (signs.tolist(), mask.tolist()) == ([0b1001], [0b1101])
    with pytest.raises(ValueError, match="non-canonical"):
        ternary.unpack_ternary(np.array([0b10], np.uint64), np.array([0b01], np.uint64), 2)
    with pytest.raises(ValueError, match="ternarize"):
        ternary.pack_ternary([2])


def test_ternarize_rules():
    assert ternary.ternarize(np.float32([-0.7, -0.5, 0.0, 0.5, 0.51])).tolist() == [-1, 0, 0, 0, 1]
    x = np.full(100_000, -0.3)
    t = ternary.ternarize_stochastic(x, 3)
    assert set(np.unique(t)) <= {-1, 0}
    assert abs((t == -1).mean() - 0.3) < 0.01


@pytest.mark.parametrize("bitorder", ["little", "big"])
def test_every_8bit_word_unpacks_by_definition_and_repacks(bitorder):
    words = np.arange(256, dtype=np.uint8)[:, None]
    bits = binary.unpack_bits(words, 8, bitorder)
    for w in range(256):
        expected = [(w >> (i if bitorder == "little" else 7 - i)) & 1 for i in range(8)]
        assert bits[w].tolist() == [bool(b) for b in expected]
    np.testing.assert_array_equal(binary.pack_bits(bits, 8, bitorder), words)
    values = np.where(bits, 1, -1)
    for n in (1, 5, 8):
        lce = binary.to_lce(binary.pack(values[:, :n]), n)
        np.testing.assert_array_equal(binary.from_lce(lce, n), binary.pack(values[:, :n]))
