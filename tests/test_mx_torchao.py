"""torchao's MX scale modes reproduced by named bitsim scale rules, on vectors torchao wrote.

``tests/golden/torchao_mx.npz`` holds torchao 0.18's ``to_mx`` output (E8M0 scale codes and element codes)
for 54 blocks of 32 float32 values per element format and scale mode, written once by
``tests/golden/make_torchao_mx_golden.py`` in an environment with PyTorch (not a dependency of bitsim).
FLOOR, EVEN and RCEIL are bitsim's ``floor``, ``even`` and ``rceil``; torchao's CEIL is ``ceil_log2``
(``ceil(log2 amax) - emax_elem``), not ``ceil`` (the smallest scale at which nothing saturates). The one
difference is written in docs/formats.md: in a block whose scale code is 0 (``X = 2**-127``) torchao
divides by ``2**-126``, float32's smallest normal number (its FLOOR, CEIL and EVEN), or flushes every
element to zero (its RCEIL).
"""

from pathlib import Path

import numpy as np
import pytest

from bitsim.formats import minifloat, mx

VECTORS = np.load(Path(__file__).parent / "golden" / "torchao_mx.npz", allow_pickle=False)
FORMATS = {"e4m3": "mxfp8_e4m3", "e5m2": "mxfp8_e5m2", "e2m3": "mxfp6_e2m3", "e3m2": "mxfp6_e3m2",
           "e2m1": "mxfp4_e2m1"}
RULE_OF_MODE = {"floor": "floor", "ceil": "ceil_log2", "even": "even", "rceil": "rceil"}


def theirs(name, mode):
    return VECTORS[f"{name}_x"], VECTORS[f"{name}_{mode}_scales"], VECTORS[f"{name}_{mode}_codes"]


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("mode", RULE_OF_MODE)
def test_each_torchao_mode_is_a_named_bitsim_rule(name, mode):
    x, scales, codes = theirs(name, mode)
    t = mx.quantize(x, FORMATS[name], axis=1, scale_rule=RULE_OF_MODE[mode])
    assert np.array_equal(t.scales[:, 0], scales)
    normal = scales != 0
    assert normal.sum() >= 50
    assert np.array_equal(t.codes[normal], codes[normal])


AT_THE_BOTTOM = [(name, mode) for name in FORMATS for mode in RULE_OF_MODE
                 if ((VECTORS[f"{name}_{mode}_scales"] == 0) & (VECTORS[f"{name}_x"] != 0).any(axis=1)).any()]


def test_most_formats_and_modes_reach_the_smallest_scale():
    assert len(AT_THE_BOTTOM) >= 18  # all 20 but torchao CEIL on E2M3 and E2M1, whose scales stay above 2**-127


@pytest.mark.parametrize("name,mode", AT_THE_BOTTOM)
def test_torchao_at_the_smallest_scale(name, mode):
    """Where bitsim and torchao differ: blocks whose E8M0 scale is 2**-127 (and not all zero)."""
    x, scales, codes = theirs(name, mode)
    low = (scales == 0) & (x != 0).any(axis=1)
    element = mx.FORMATS[FORMATS[name]].element
    ours = mx.quantize(x[low], FORMATS[name], axis=1, scale_rule=RULE_OF_MODE[mode]).codes
    assert not np.array_equal(ours, codes[low])
    if mode == "rceil":
        assert (minifloat.decode(codes[low], element) == 0).all()
    else:
        by_2_126 = minifloat.encode(np.ldexp(x[low].astype(np.float64), 126), element, overflow="saturate")
        assert np.array_equal(by_2_126, codes[low])


def test_torchao_ceil_is_not_bitsims_ceil():
    x, scales, _ = theirs("e4m3", "ceil")
    assert not np.array_equal(mx.quantize(x, "mxfp8_e4m3", axis=1, scale_rule="ceil").scales[:, 0], scales)


def test_the_vectors_name_their_source():
    assert list(VECTORS["versions"]) == ["torch 2.13.0+cpu", "torchao 0.18.0"]
