"""Write tests/golden/rowwise.json: the MAC unit's and the shift-add unit's results, by the slow oracle.

Run once when the rules are introduced (``python tests/golden/make_rowwise_golden.py``); afterwards
tests/test_kernels_rowwise.py recomputes every entry with bitsim's kernels. The expected values come from
:mod:`bitsim.reference.rowwise` (Python ints and Fractions), never from the fast kernels, and the inputs
are written into the file.
"""

import json
from pathlib import Path

import numpy as np

from bitsim.formats.fixed import FixedFormat
from bitsim.formats.log import LogFormat
from bitsim.formats.modes import Overflow, Rounding
from bitsim.reference import rowwise

ROUNDINGS = ["floor", "ceil", "toward_zero", "nearest_up", "nearest_even", "nearest_away"]


def mac_cases(rng):
    cases = []
    for width, out_bits in ((8, 8), (16, 16)):
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        a = rng.integers(lo, hi + 1, size=(24, 4))
        b = rng.integers(lo, hi + 1, size=(24, 4))
        a[0], b[0] = [lo, lo, lo, 0], [lo, lo, lo, 0]    # the most negative codes: products of +2**(2w-2)
        a[1], b[1] = [-5, 0, 0, 0], [1, 0, 0, 0]         # the worked example of docs/hardware.md
        a[2], b[2] = [3, 0, 0, 0], [-1, 0, 0, 0]
        a[3], b[3] = [100, 100, 0, 0], [100, 2, 0, 0]
        shift = rng.integers(0, 2 * width + 4, size=24)
        shift[:4] = [0, 1, 1, 4]
        for rounding in ROUNDINGS:
            for overflow in ("saturate", "wrap"):
                fmt = FixedFormat(out_bits, 0, rounding=rounding, overflow=overflow)
                acc, q = rowwise.mac_requantize(a, b, shift, fmt)
                cases.append({"width": width, "out_bits": out_bits, "rounding": rounding, "overflow": overflow,
                              "a": a.tolist(), "b": b.tolist(), "shift": shift.tolist(), "acc": acc, "q": q})
    return cases


def shift_add_cases(rng):
    cases = []
    fmt = LogFormat(exp_bits=4, exp_offset=-2)
    x = rng.integers(-128, 128, size=(40, 4))
    codes = rng.integers(0, 32, size=(40, 4))
    x[0], codes[0] = [-128, -128, 5, -5], [0x18, 0x08, 0x1F, 0x1F]  # zero codes, -2^-3: a tie at 5 / 8
    x[1], codes[1] = [3, 5, 0, 0], [0x1F, 0x11, 0x08, 0x08]
    for rounding in ROUNDINGS:
        for acc_frac in (0, 3):
            out = rowwise.row_shift_add(x, 0, codes.astype(np.uint8), fmt, acc_frac=acc_frac, rounding=rounding)
            cases.append({"exp_bits": 4, "exp_offset": -2, "acc_frac": acc_frac, "rounding": rounding,
                          "x": x.tolist(), "codes": codes.tolist(), "out": out})
    return cases


def main():
    rng = np.random.default_rng(20261204)
    out = {"mac": mac_cases(rng), "shift_add": shift_add_cases(rng)}
    assert Rounding("floor") and Overflow("wrap")
    path = Path(__file__).parent / "rowwise.json"
    path.write_text(json.dumps(out, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {path}: {len(out['mac'])} MAC cases, {len(out['shift_add'])} shift-add cases")


if __name__ == "__main__":
    main()
