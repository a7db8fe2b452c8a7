"""Brevitas's stock MX quantizers against bitsim's written rules, on vectors Brevitas wrote.

``tests/golden/brevitas_mx.npz`` holds Brevitas 0.13.4's ``MXFloat8e4m3Act``, an E5M2 variant of it and
``MXInt8Act`` (scales and dequantized values) for 54 blocks of 32 float32 values each, written once by
``tests/golden/make_brevitas_mx_golden.py`` in an environment with PyTorch (not a dependency of bitsim).
docs/formats.md section 14.2 states what this shows:

* E4M3 and E5M2: bitsim's ``floor`` (not ``ceil``), scale and values, except (a) blocks whose largest
  magnitude is below 1e-10, where Brevitas's scale is the float32 ``1e-10 / 2**emax_elem``, not a power of
  two, and (b) some largest magnitudes one float32 step below a power of two, where Brevitas's float32
  ``log2`` rounds up to that power and the scale is twice the rule's;
* MXINT8: ``2**(floor(log2 amax) - 7)`` per integer step, half of OCP's ``floor`` scale, with the integers
  rounded to nearest even and clipped to -128..127, so the block's top binade saturates.
"""

from pathlib import Path

import numpy as np
import pytest

from bitsim.formats import mx

VECTORS = np.load(Path(__file__).parent / "golden" / "brevitas_mx.npz", allow_pickle=False)
FLOATS = {"e4m3": ("mxfp8_e4m3", 8), "e5m2": ("mxfp8_e5m2", 15)}
TINY = 1e-10


def theirs(name):
    x, scales, values = (VECTORS[f"{name}_{part}"] for part in ("x", "scales", "values"))
    return x, scales.astype(np.float64), values


def just_below_a_power_of_two(amax):
    """True where ``amax`` is one float32 step below a power of two."""
    a = np.asarray(amax, np.float32)
    up = np.nextafter(a, np.float32(np.inf)).astype(np.float64)
    return (a > 0) & (np.frexp(up)[0] == 0.5)


@pytest.mark.parametrize("name", FLOATS)
def test_brevitas_float_mx_is_bitsims_floor(name):
    fmt, emax = FLOATS[name]
    x, scales, values = theirs(name)
    t = mx.quantize(x, fmt, axis=1, scale_rule="floor")
    ours = np.ldexp(1.0, t.scales[:, 0].astype(np.int64) - 127)
    amax = np.abs(x).max(axis=1)
    tiny = amax < TINY
    differ = ~tiny & (ours != scales)
    same = ~tiny & ~differ
    assert same.sum() == 46
    assert np.array_equal(t.dequantize()[same], values[same])
    # (a) the clamp: a scale that is not a power of two
    assert tiny.sum() >= 4
    assert np.array_equal(scales[tiny], np.full(tiny.sum(), np.float64(np.float32(TINY) / np.float32(2.0 ** emax))))
    assert all(np.frexp(s)[0] != 0.5 for s in scales[tiny])
    # (b) float32's log2 rounding up, one float32 step below a power of two: twice the rule's scale
    assert 1 <= differ.sum() <= 3
    assert just_below_a_power_of_two(amax[differ]).all()
    assert np.array_equal(scales[differ], 2 * ours[differ])


def test_brevitas_mxint8_scale_and_saturation():
    x, scales, values = theirs("int8")
    amax = np.abs(x).max(axis=1).astype(np.float64)
    step = np.ldexp(1.0, np.frexp(amax)[1] - 1 - 7)  # 2**(floor(log2 amax) - 7)
    differ = (amax >= TINY) & (scales != step)  # float32's log2 rounding up, as above
    assert 1 <= differ.sum() <= 2
    assert just_below_a_power_of_two(amax[differ]).all()
    assert np.array_equal(scales[differ], 2 * step[differ])
    normal = (amax >= TINY) & ~differ
    step = step[normal]
    assert np.array_equal(scales[normal], step)
    ints = np.clip(np.rint(x[normal] / step[:, None]), -128, 127)
    assert np.array_equal(values[normal], ints * step[:, None])
    assert (np.abs(np.rint(x[normal] / step[:, None])) > 127).any()  # the top binade saturates
    ocp = mx.quantize(x[normal], "mxint8", axis=1, scale_rule="floor")
    ocp_step = np.ldexp(1.0, ocp.scales[:, 0].astype(np.int64) - 127 - 6)  # element c * 2**-6
    assert np.array_equal(ocp_step, 2 * step)  # OCP's floor scale is twice Brevitas's


def test_the_vectors_name_their_source():
    assert list(VECTORS["versions"]) == ["torch 2.13.0+cpu", "brevitas 0.13.4"]
