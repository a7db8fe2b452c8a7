"""Hypothesis strategies shared by the tests."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

float32s = st.floats(width=32, allow_nan=False, allow_infinity=False)
float32_arrays = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=70), elements=float32s)
lengths = st.one_of(st.sampled_from([0, 1, 63, 64, 65, 127, 128, 129]), st.integers(0, 300))
bitorders = st.sampled_from(["little", "big"])
seeds = st.integers(1, 2**32 - 1)


@st.composite
def pm1_arrays(draw, n=None, max_rows=4):
    """Arrays of -1/+1 int8 with shape (rows, n)."""
    n = draw(lengths) if n is None else n
    rows = draw(st.integers(0, max_rows))
    bits = draw(hnp.arrays(np.bool_, (rows, n)))
    return np.where(bits, 1, -1).astype(np.int8)


@st.composite
def ternary_arrays(draw, n=None, max_rows=4):
    """Arrays of -1/0/+1 int8 with shape (rows, n)."""
    n = draw(lengths) if n is None else n
    rows = draw(st.integers(0, max_rows))
    return draw(hnp.arrays(np.int8, (rows, n), elements=st.sampled_from([-1, 0, 1])))
