"""Recompute every committed golden vector of tests/golden/formats.json: a layout change fails here."""

import json
from pathlib import Path

import numpy as np
import pytest

from bitsim.datasets import random_shifts, translate
from bitsim.formats import binary, fixed, log, ternary
from bitsim.formats.fixed import parse_fixed
from bitsim.formats.log import LogFormat
from bitsim.formats.rng import Philox, Xorshift32

GOLDEN = json.loads((Path(__file__).parent / "golden" / "formats.json").read_text())


def hexes(words):
    return [f"{int(w):0{words.dtype.itemsize * 2}x}" for w in np.asarray(words).view(f"u{words.dtype.itemsize}")]


def floats(bits):
    return np.array([int(b, 16) for b in bits], dtype=np.uint32).view(np.float32)


@pytest.mark.parametrize("case", GOLDEN["binary"], ids=lambda c: f"n{len(c['values'])}")
def test_binary_layout(case):
    values = np.array([1 if c == "+" else -1 for c in case["values"]], dtype=np.int8)
    n = len(values)
    words = binary.pack(values)
    assert hexes(words) == case["little"]
    assert hexes(binary.pack(values, "big")) == case["big"]
    assert hexes(binary.to_lce(words, n)) == case["lce_int32"]
    assert hexes(binary.to_finn(words, n, 32)) == case["finn_32"]
    stored = np.array([int(w, 16) for w in case["little"]], dtype=np.uint64)
    np.testing.assert_array_equal(binary.unpack(stored, n), values)


@pytest.mark.parametrize("case", GOLDEN["ternary"], ids=lambda c: f"n{len(c['values'])}")
def test_ternary_layout(case):
    values = np.array(["+0-".index(c) for c in case["values"]], dtype=np.int8)
    values = 1 - values
    signs, mask = ternary.pack_ternary(values)
    assert (hexes(signs), hexes(mask)) == (case["signs"], case["mask"])


@pytest.mark.parametrize("case", GOLDEN["log"], ids=lambda c: f"w{c['exp_bits']}-{c['rounding']}")
def test_log_codes(case):
    fmt = LogFormat(exp_bits=case["exp_bits"], rounding=case["rounding"], nonfinite="saturate")
    codes = log.encode(floats(case["float32_bits"]), fmt, rng=Xorshift32(case["xorshift32_seed"]))
    assert [f"{int(c):02x}" for c in codes] == case["codes"]


@pytest.mark.parametrize("case", GOLDEN["fixed"], ids=lambda c: f"{c['format']}-{c['rounding']}-{c['overflow']}")
def test_fixed_codes(case):
    fmt = parse_fixed(case["format"], rounding=case["rounding"], overflow=case["overflow"])
    codes = fixed.quantize(floats(case["float32_bits"]), fmt, rng=Philox(case["philox_seed"]))
    assert codes.tolist() == case["codes"]


@pytest.mark.parametrize("case", GOLDEN["rshift"], ids=lambda c: f"{c['rounding']}-s{c['shift']}")
def test_rshift(case):
    x = np.array(case["inputs"], dtype=np.int64)
    got = fixed.rshift_round(x, case["shift"], case["rounding"], rng=Xorshift32(case["xorshift32_seed"]))
    assert got.tolist() == case["outputs"]


def test_generators():
    assert Xorshift32(1).uint32(8).tolist() == GOLDEN["rng"]["xorshift32_seed_1"]
    assert Philox(0).uint32(8).tolist() == GOLDEN["rng"]["philox_key_0"]


def parse_rows(text):
    """An image written as rows of numbers separated by ' / '."""
    return np.array([[int(v) for v in row.split()] for row in text.split(" / ")], dtype=np.uint8)


@pytest.mark.parametrize("case", GOLDEN["translate"], ids=lambda c: f"{c['generator']}-n{c['max_shift']}")
def test_image_translation_vectors_follow_the_written_rule(case):
    # independently of bitsim.datasets: raw draws, the integer formula, pixel by pixel
    make = {"xorshift32": Xorshift32, "philox": Philox}[case["generator"]]
    n, big = len(case["dy"]), case["max_shift"]
    shifts = [int(u) * (2 * big + 1) // 2**32 - big for u in make(case["seed"]).uint32(2 * n)]
    assert (shifts[0::2], shifts[1::2]) == (case["dy"], case["dx"])
    image = parse_rows(case["image"])
    size = len(image)
    for a, b, moved in zip(case["dy"], case["dx"], case["translated"]):
        want = [[int(image[r - a, c - b]) if 0 <= r - a < size and 0 <= c - b < size else 0 for c in range(size)]
                for r in range(size)]
        assert parse_rows(moved).tolist() == want


@pytest.mark.parametrize("case", GOLDEN["translate"], ids=lambda c: f"{c['generator']}-n{c['max_shift']}")
def test_image_translations(case):
    make = {"xorshift32": Xorshift32, "philox": Philox}[case["generator"]]
    dy, dx = random_shifts(make(case["seed"]), len(case["dy"]), case["max_shift"])
    assert (dy.tolist(), dx.tolist()) == (case["dy"], case["dx"])
    image = parse_rows(case["image"])[None]
    for a, b, moved in zip(dy, dx, case["translated"]):
        np.testing.assert_array_equal(translate(image, [a], [b])[0], parse_rows(moved))
