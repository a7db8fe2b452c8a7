"""Write tests/golden/formats.json: the bit layouts of every format, pinned.

Run once when a format is introduced (``python tests/golden/make_format_golden.py``); afterwards
the tests recompute every entry and a change of layout fails them. The inputs are written into
the file, so the vectors do not depend on any random generator.
"""

import json
from pathlib import Path

import numpy as np

from bitsim.datasets import random_shifts, translate
from bitsim.formats import binary, fixed, log, ternary
from bitsim.formats.fixed import FixedFormat
from bitsim.formats.log import LogFormat, LogRounding
from bitsim.formats.modes import Overflow, Rounding
from bitsim.formats.rng import Philox, Xorshift32

LENGTHS = [1, 5, 63, 64, 65, 130]
SPECIAL_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.3, 1.5, 1.4142135, 1.4142137, 3.0, -0.75, 2.0**63, 2.0**64, 2.0**-63,
                  2.0**-64, 1e-40, 2.0**-149, 3.4e38, -1e-30, 1e30, 0.09375, 7.9375, 8.0, -8.03125]
FIXED_FORMATS = ["Q3.4", "Q7.8", "fix32:16", "fix4:-2"]
SHIFT_INPUTS = [-(2**63), -(2**31), -1000, -7, -6, -5, -2, -1, 0, 1, 2, 5, 6, 7, 1000, 2**31 - 1, 2**63 - 1]


def words_hex(words):
    return [f"{int(w):0{words.dtype.itemsize * 2}x}" for w in np.asarray(words).view(f"u{words.dtype.itemsize}")]


def rows(image):
    """An image as text, rows separated by ' / ' (as docs/formats.md writes them)."""
    return " / ".join(" ".join(str(int(v)) for v in row) for row in image)


def main():
    rng = np.random.default_rng(20261123)
    out = {"binary": [], "ternary": [], "log": [], "fixed": [], "rshift": [], "rng": {}, "translate": []}
    for n in LENGTHS:
        values = np.where(rng.random(n) < 0.5, 1, -1).astype(np.int8)
        words = binary.pack(values)
        out["binary"].append({
            "values": "".join("+" if v > 0 else "-" for v in values),
            "little": words_hex(words),
            "big": words_hex(binary.pack(values, "big")),
            "lce_int32": words_hex(binary.to_lce(words, n)),
            "finn_32": words_hex(binary.to_finn(words, n, 32)),
        })
        t = rng.integers(-1, 2, n).astype(np.int8)
        signs, mask = ternary.pack_ternary(t)
        out["ternary"].append({"values": "".join("+0-"[1 - v] for v in t),
                               "signs": words_hex(signs), "mask": words_hex(mask)})
    x = np.float32(SPECIAL_FLOATS + list(rng.standard_normal(24) * 10.0 ** rng.integers(-12, 12, 24)))
    bits = [f"{int(b):08x}" for b in x.view(np.uint32)]
    for exp_bits in (7, 3):
        for rounding in LogRounding:
            fmt = LogFormat(exp_bits=exp_bits, rounding=rounding, nonfinite="saturate")
            codes = log.encode(x, fmt, rng=Xorshift32(7))
            out["log"].append({"exp_bits": exp_bits, "rounding": rounding.value, "xorshift32_seed": 7,
                               "float32_bits": bits, "codes": [f"{int(c):02x}" for c in codes]})
    y = np.concatenate([np.float32(SPECIAL_FLOATS[:16]), np.float32(rng.standard_normal(16) * 6)])
    for spec in FIXED_FORMATS:
        for rounding in Rounding:
            for overflow in (Overflow.SATURATE, Overflow.WRAP):
                fmt = fixed.parse_fixed(spec, rounding=rounding, overflow=overflow)
                codes = fixed.quantize(y, fmt, rng=Philox(3))
                out["fixed"].append({"format": spec, "rounding": rounding.value, "overflow": overflow.value,
                                     "philox_seed": 3, "float32_bits": [f"{int(b):08x}" for b in y.view(np.uint32)],
                                     "codes": [int(c) for c in codes]})
    for rounding in Rounding:
        for s in (0, 1, 2, 3, 31, 32, 33, 62):
            r = fixed.rshift_round(np.array(SHIFT_INPUTS, dtype=np.int64), s, rounding, rng=Xorshift32(s + 1))
            out["rshift"].append({"shift": s, "rounding": rounding.value, "xorshift32_seed": s + 1,
                                  "inputs": SHIFT_INPUTS, "outputs": [int(v) for v in r]})
    out["rng"] = {"xorshift32_seed_1": Xorshift32(1).uint32(8).tolist(),
                  "philox_key_0": Philox(0).uint32(8).tolist()}
    image = (np.arange(25, dtype=np.uint8) + 1).reshape(1, 5, 5)
    for name, make in (("xorshift32", Xorshift32), ("philox", Philox)):
        for max_shift in (1, 2, 3):
            dy, dx = random_shifts(make(5), 6, max_shift)
            moved = [rows(translate(image, [a], [b])[0]) for a, b in zip(dy, dx)]
            out["translate"].append({"generator": name, "seed": 5, "max_shift": max_shift, "dy": dy.tolist(),
                                     "dx": dx.tolist(), "image": rows(image[0]), "translated": moved})
    path = Path(__file__).with_name("formats.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
