"""bitsim.verify without a simulator: words, stimulus, corner cases, the scoreboard and the units' buses."""

import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitsim.errors import CheckFailed, InputError
from bitsim.formats.log import LogFormat
from bitsim.verify import (BinaryDenseUnit, Field, MacUnit, Scoreboard, ShiftAddUnit, Stream, join_words, pack_fields,
                           split_word, to_signed, to_unsigned, unpack_fields)
from bitsim.verify import corners
from bitsim.verify.settings import ENV, RunSettings
from bitsim.verify.transactions import stream_cycles


def run_python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT))


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_plain_import_does_not_need_cocotb():
    done = run_python("import sys; import bitsim.verify; assert 'cocotb' not in sys.modules and "
                      "'cocotb_tools' not in sys.modules; print('ok')")
    assert done.stdout.strip() == "ok", done.stderr


def test_missing_cocotb_raises_missing_extra():
    done = run_python(
        "import sys\nsys.modules['cocotb'] = None\nsys.modules['cocotb_tools'] = None\n"
        "from bitsim.errors import MissingExtra\n"
        "try:\n    import bitsim.verify.bench\nexcept MissingExtra as e:\n    print('bench:', e)\n"
        "from bitsim.verify.runner import run_unit\nfrom bitsim.verify import MacUnit\n"
        "try:\n    run_unit(MacUnit(), 'x', '.', '.')\nexcept MissingExtra as e:\n    print('runner:', e)\n")
    assert 'bench:' in done.stdout and 'runner:' in done.stdout, done.stderr
    assert done.stdout.count('pip install -e ".[hw]"') == 2


# ---------------------------------------------------------------------------------------------------
# words

@given(st.lists(st.tuples(st.integers(-128, 127), st.integers(0, 1), st.integers(-2**31, 2**31 - 1)),
                min_size=1, max_size=20))
def test_fields_round_trip(rows):
    a, flag, wide = (np.array(c) for c in zip(*rows))
    words = pack_fields([a, flag, wide], [8, 1, 32])
    assert all(0 <= w < 2**41 for w in words)
    back = unpack_fields(words, [8, 1, 32], [True, False, True])
    assert back[0].tolist() == a.tolist() and back[1].tolist() == flag.tolist() and back[2].tolist() == wide.tolist()


def test_field_layout_is_lsb_first():
    assert [hex(w) for w in pack_fields([[3, -1], [1, 0]], [8, 1])] == ["0x103", "0xff"]
    assert to_unsigned(np.array([-1, -128]), 8).tolist() == [255, 128]
    assert to_signed(np.array([255, 127], np.uint64), 8).tolist() == [-1, 127]
    words = np.array([1, 2**63, 5], np.uint64)
    assert split_word(join_words(words), 64, 3).tolist() == words.tolist()
    with pytest.raises(InputError):
        unpack_fields([2**9], [8])


# ---------------------------------------------------------------------------------------------------
# stimulus

def test_stream_replays_from_its_seed():
    one, two = Stream(7), Stream(7)
    assert one.ints(50, 8).tolist() == two.ints(50, 8).tolist()
    assert one.log_codes(20, LogFormat()).tolist() == two.log_codes(20, LogFormat()).tolist()
    assert Stream(8).ints(50, 8).tolist() != Stream(7).ints(50, 8).tolist()


def test_below_is_the_documented_rule():
    # docs/formats.md, section 5: xorshift32 seeded 1 draws 270369, 67634689, 2647435461, 307599695;
    # floor(u * 5 / 2**32) is 0, 0, 3, 0
    assert Stream(1, "xorshift32").below(4, 5).tolist() == [0, 0, 3, 0]
    ints = Stream(3).ints(4000, 4)
    assert ints.min() == -8 and ints.max() == 7


def test_packed_rows_have_zero_padding():
    words = Stream(2).packed(5, 70)
    assert words.shape == (5, 2) and not (words[:, 1] >> np.uint64(6)).any()


# ---------------------------------------------------------------------------------------------------
# corner cases

@pytest.mark.parametrize("shift", range(1, 12))
def test_ties_are_ties(shift):
    for v in corners.ties(shift):
        assert Fraction(v, 2**shift) - Fraction(v, 2**shift).__floor__() == Fraction(1, 2)


@pytest.mark.parametrize("target", [0, 1, -1, 126, 127, -16129, 16384 * 3 + 5, -(2**17)])
def test_pairs_sum_to_their_target(target):
    pairs = corners.pairs_summing_to(target, 8, 40)
    assert sum(a * b for a, b in pairs) == target and all(-128 <= a <= 127 and -128 <= b <= 127 for a, b in pairs)
    assert corners.pairs_summing_to(2**40, 8, 16) is None


def test_every_log_code_with_both_zeros():
    codes, names = corners.log_codes(LogFormat(exp_bits=4, exp_offset=-2))
    assert len(codes) == 32 and names[0x08] == "+0" and names[0x18] == "-0" and names[0x11] == "-2^-1"


def test_binary_rows_touch_the_padding_edge():
    rows = corners.binary_rows(130)
    assert rows["lone +1 at element 129"][129] == 1 and (rows["lone +1 at element 129"][:129] == -1).all()
    assert {"all +1", "all -1", "alternating", "lone +1 at element 64"} <= set(rows)


def test_requantize_edges_straddle_the_range():
    edges = corners.requantize_edges(3, 8)
    assert 127 * 8 in edges and 128 * 8 in edges and -128 * 8 in edges and -129 * 8 in edges


# ---------------------------------------------------------------------------------------------------
# scoreboard

def board():
    sb = Scoreboard("adder", [Field("sum", 8), Field("bit", 1, "pm1")], seed=9, replay="replay --until {transaction}")
    sb.expect({"sum": np.array([3, -2, 100]), "bit": np.array([1, 0, 1])},
              {"length": np.array([1, 2, 1]), "a": np.array([[1, 0], [-1, -1], [50, 0]]),
               "w": np.array([1, 2, 3], np.uint64)})
    return sb


def test_scoreboard_passes_matching_results():
    sb = board()
    assert sb.observe({"sum": np.array([3]), "bit": np.array([1])}) == []
    sb.observe({"sum": np.array([-2, 100]), "bit": np.array([0, 1])})
    assert sb.passed and sb.checked == 3 and "PASS: adder: 3 transactions checked, 0 mismatched" in sb.report()
    sb.raise_if_failed()


def test_scoreboard_names_the_transaction_and_bits():
    sb = board()
    found = sb.observe({"sum": np.array([3, -2, 96]), "bit": np.array([1, 1, 1])})
    assert [m.transaction for m in found] == [1, 2] and sb.mismatched == 2
    bit = found[0].fields[0]
    assert bit == {"field": "bit", "expected": "0x0", "actual": "0x1", "expected_value": "-1", "actual_value": "+1",
                   "bits": [0]}
    total = found[1].fields[0]
    assert total["expected"] == "0x64" and total["actual"] == "0x60" and total["bits"] == [2]
    assert found[0].operands == {"length": 2, "a": [-1, -1], "w": "0x0000000000000002"}
    text = sb.report()
    assert "transaction 2 (random), seed 9 (philox)" in text and "replay --until 2" in text and "FAIL" in text
    with pytest.raises(CheckFailed, match="2 mismatched"):
        sb.raise_if_failed()


def test_scoreboard_refuses_results_nobody_asked_for():
    with pytest.raises(InputError, match="nobody asked for"):
        board().observe({"sum": np.zeros(4), "bit": np.zeros(4)})
    sb = board()
    sb.observe({"sum": np.array([3]), "bit": np.array([1])})
    assert not sb.passed and "2 never observed" in sb.report()



def test_scoreboard_describes_at_most_keep_mismatches_and_counts_them_all():
    sb = Scoreboard("adder", [Field("sum", 8)], seed=1, keep=3)
    sb.expect({"sum": np.zeros(10, np.int64)}, {"a": np.zeros(10, np.int64)})
    found = sb.observe({"sum": np.ones(6, np.int64)})  # more mismatches in one batch than are kept
    assert [m.transaction for m in found] == [0, 1, 2]
    assert sb.observe({"sum": np.ones(4, np.int64)}) == []
    assert len(sb.mismatches) == 3 and sb.mismatched == 10
    assert "... 7 more mismatching transactions" in sb.report()

# ---------------------------------------------------------------------------------------------------
# the units' buses and models, without a simulator: a perfect design is its own expected values

def test_stream_cycles():
    t, k, first, last = stream_cycles(np.array([2, 1, 3]))
    assert t.tolist() == [0, 0, 1, 2, 2, 2] and k.tolist() == [0, 1, 0, 0, 1, 2]
    assert first.tolist() == [1, 0, 1, 1, 0, 0] and last.tolist() == [0, 1, 1, 0, 0, 1]


@pytest.mark.parametrize("unit", [MacUnit(), MacUnit(16, 16), ShiftAddUnit()], ids=["mac8", "mac16", "shift_add"])
def test_stream_unit_round_trip_and_a_flipped_bit(unit):
    batch = unit.directed() + unit.random(Stream(4), 300)
    expected = unit.expected(batch)
    fields = unit.fields()
    words = pack_fields([np.ones(len(batch), np.int64)] + [expected[f.name] for f in fields],
                        [1] + [f.bits for f in fields])
    sb = Scoreboard(unit.name, fields, seed=4)
    sb.expect(expected, batch.operands, batch.labels)
    assert sb.observe(unit.read_outputs(words)) == [] and sb.passed
    bad = list(words)
    bad[100] ^= 1 << 5  # bit 4 of the first field after out_valid
    sb = Scoreboard(unit.name, fields, seed=4)
    sb.expect(expected, batch.operands, batch.labels)
    found = sb.observe(unit.read_outputs(bad))
    assert [m.transaction for m in found] == [100] and found[0].fields[0]["bits"] == [4]
    cycles = unit.input_words(batch)
    assert len(cycles) == int(batch.operands["length"].sum())


def test_mac_directed_cases_cover_every_shift_and_the_edges():
    unit = MacUnit()
    batch = unit.directed()
    assert set(batch.operands["shift"].tolist()) >= set(range(18))
    q = unit.expected(batch)["q.nearest_even.saturate"]
    assert q.min() == -128 and q.max() == 127
    assert MacUnit(16, 16).expected(MacUnit(16, 16).directed())["acc"].min() == -(2**31)  # the accumulator wraps


def test_shift_add_directed_cases_cover_every_code():
    batch = ShiftAddUnit().directed()
    assert set(batch.operands["code"][:, 0].tolist()) == set(range(32))


def test_binary_dense_expected_and_readback():
    unit = BinaryDenseUnit()
    layers = unit.directed_layers() + unit.random_layers(Stream(3), 200)
    batch, expected = unit.batch(layers), unit.expected(layers)
    assert len(batch) == len(expected["acc"]) == 2 * 9 * 70 + 3 * 70
    assert expected["acc"][0] == 130 and expected["acc"][1] == -130  # all +1 row against all +1 / all -1 weights
    acc = expected["acc"][:70]
    bits = expected["bit"][:70]
    accs_word = join_words(to_unsigned(acc, 32), 32)
    bits_word = sum(int(b) << o for o, b in enumerate(bits))
    got_acc, got_bits = unit.read_row(accs_word, bits_word)
    assert got_acc.tolist() == acc.tolist() and got_bits.tolist() == bits.tolist()


@pytest.mark.parametrize("text", ["{not json", '{"unknown_key": 1}', "[1, 2]"])
def test_damaged_run_settings_are_a_clear_error(text):
    with pytest.raises(InputError, match=ENV):
        RunSettings.from_env({ENV: text})
