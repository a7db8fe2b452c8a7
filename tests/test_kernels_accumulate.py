"""The narrow-accumulator GEMM (bitsim.kernels.accumulate) against its Python-int oracle and golden vectors."""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitsim.errors import InputError, InputTypeError
from bitsim.formats.modes import Counts
from bitsim.kernels.accumulate import accumulate_matmul, accumulator_range
from bitsim.reference import accumulate as oracle

GOLDEN = json.loads((Path(__file__).parent / "golden" / "accumulate.json").read_text())["cases"]


def run(a, b, width, edge):
    counts = Counts()
    out = accumulate_matmul(np.array(a, np.int64), np.array(b, np.int64), width, edge, counts)
    return out, counts


@pytest.mark.parametrize("case", GOLDEN, ids=lambda c: f"{c['edge']}{c['width']}")
def test_golden_vectors(case):
    out, counts = run(case["a"], case["b"], case["width"], case["edge"])
    assert out.tolist() == case["out"]
    assert (counts.wrapped if case["edge"] == "wrap" else counts.saturated) == case["events"]
    assert (counts.saturated if case["edge"] == "wrap" else counts.wrapped) == 0
    assert oracle.accumulate_matmul(case["a"], case["b"], case["width"], case["edge"]) == (case["out"], case["events"])


def test_worked_example_by_hand():
    # docs/formats.md section 11: 5 + 4 leaves a 4-bit accumulator, order matters only when saturating
    assert run([[5, 4, -6]], [[1, 1, 1]], 4, "wrap")[0].tolist() == [[3]]
    assert run([[5, 4, -6]], [[1, 1, 1]], 4, "saturate")[0].tolist() == [[1]]
    assert run([[-6, 4, 5]], [[1, 1, 1]], 4, "saturate")[0].tolist() == [[3]]


matrices = st.integers(1, 5).flatmap(lambda k: st.tuples(
    st.lists(st.lists(st.integers(-300, 300), min_size=k, max_size=k), min_size=1, max_size=4),
    st.lists(st.lists(st.integers(-300, 300), min_size=k, max_size=k), min_size=1, max_size=4)))


@given(matrices, st.integers(2, 24), st.sampled_from(["wrap", "saturate"]))
def test_equals_the_oracle(ab, width, edge):
    a, b = ab
    out, counts = run(a, b, width, edge)
    expected, events = oracle.accumulate_matmul(a, b, width, edge)
    assert out.tolist() == expected
    assert counts.total == events
    lo, hi = accumulator_range(width)
    assert out.min() >= lo and out.max() <= hi


@given(matrices, st.integers(2, 24))
def test_wrap_is_the_exact_sum_modulo_and_order_free(ab, width):
    a, b = ab
    out, _ = run(a, b, width, "wrap")
    exact = np.array(a, object) @ np.array(b, object).T
    lo = -(1 << (width - 1))
    assert out.tolist() == [[(int(v) - lo) % (1 << width) + lo for v in row] for row in exact]
    reversed_k = run([r[::-1] for r in a], [r[::-1] for r in b], width, "wrap")[0]
    assert np.array_equal(out, reversed_k)


def test_wide_enough_accumulators_are_exact():
    rng = np.random.default_rng(1)
    a, b = rng.integers(-128, 128, (7, 50)), rng.integers(-128, 128, (5, 50))
    for edge in ("wrap", "saturate"):
        out, counts = run(a, b, 32, edge)
        assert np.array_equal(out, a @ b.T) and counts.total == 0


def test_bad_arguments_are_clear_errors():
    a = np.ones((2, 3), np.int64)
    with pytest.raises(InputError, match="edge"):
        accumulate_matmul(a, a, 16, "clip")
    with pytest.raises(InputError, match="2..62"):
        accumulate_matmul(a, a, 63, "wrap")
    with pytest.raises(InputError, match="columns"):
        accumulate_matmul(a, np.ones((2, 4), np.int64), 16, "wrap")
    with pytest.raises(InputTypeError):
        accumulate_matmul(a.astype(np.float32), a, 16, "wrap")
    with pytest.raises(InputError, match="2\\*\\*61"):
        accumulate_matmul(a * 2**31, a * 2**31, 62, "wrap")


@pytest.mark.parametrize("a, b", [
    (np.array([[-2**63]], np.int64), np.array([[2]], np.int64)),        # |int64 min| does not fit int64
    (np.array([[2**64 - 1]], np.uint64), np.array([[3]], np.int64)),    # a uint64 code beyond int64
])
def test_the_product_bound_sees_the_extreme_codes(a, b):
    with pytest.raises(InputError, match="2\\*\\*61"):
        accumulate_matmul(a, b, 62, "saturate")
