"""A short tour of bitsim's number formats, printed with the bits showing."""

import numpy as np

from .explain import explain
from .formats import binary, fixed, log, minifloat, mx, ternary
from .formats.modes import Counts
from .formats.rng import Xorshift32, bernoulli


def _section(out, title):
    out("")
    out(title)
    out("-" * len(title))


def tour(out=print):
    """Print the tour through ``out`` (a callable taking one line)."""
    out("bitsim tour: every format below is a written rule in docs/formats.md")

    _section(out, "1. Packed binary: +1 -> bit 1, -1 -> bit 0, element i at bit i % 64 of word i // 64")
    a = np.array([1, -1, 1, 1, -1, -1, 1, -1, 1], dtype=np.int8)
    b = np.array([1, 1, -1, 1, -1, 1, 1, -1, -1], dtype=np.int8)
    wa, wb = binary.pack(a), binary.pack(b)
    out(f"a = {a.tolist()} -> 0x{int(wa[0]):016x}")
    out(f"b = {b.tolist()} -> 0x{int(wb[0]):016x}")
    x = int(wa[0] ^ wb[0])
    out(f"a XOR b = 0b{x:09b}, popcount {x.bit_count()}, n - 2 * popcount = {len(a)} - {2 * x.bit_count()} "
        f"= {binary.dot(wa, wb, len(a))} = a . b = {int(a.astype(int) @ b)}")
    out("padding bits are 0 in both operands, so they XOR to 0 and the formula needs no correction")

    _section(out, "2. Ternary: two planes, mask (nonzero) and signs (+1), 2 bits per value")
    t = np.array([1, 0, -1, 1, 0], dtype=np.int8)
    s, m = ternary.pack_ternary(t)
    out(f"t = {t.tolist()}: mask 0b{int(m[0]):05b}, signs 0b{int(s[0]):05b} (bit i is element i, read right to left)")

    _section(out, "3. Log code (log8): sign + 7-bit exponent from the float32 fields")
    out(explain("log8", 0.3))
    w = np.float32([0.75, -3.0, 0.0])
    codes = log.encode(w)
    xs = np.float32([1.5, 1.5, 1.5])
    out(f"weights {w.tolist()} -> codes {[f'0x{int(c):02x}' for c in codes]} -> {log.decode(codes).tolist()}")
    out(f"x * w by adding exponents to the float32 exponent field: {log.multiply_float32(xs, codes).tolist()}")

    _section(out, "4. Fixed point: Q3.4 with nearest-even rounding and counted saturation")
    out(explain("Q3.4", 3.14159))
    f = fixed.FixedFormat(8, 4)
    counts = Counts()
    q = fixed.quantize(np.array([1.5, 2.25, 7.0, -9.0]), f, counts=counts)
    prod = fixed.multiply(q[:2], f, q[:2], f, f, counts=counts)
    out(f"[1.5, 2.25, 7.0, -9.0] -> codes {q.tolist()}; 1.5^2 and 2.25^2 in Q3.4 -> {fixed.to_float(prod, f).tolist()}")
    out(f"saturations counted: {counts.saturated} (7.0 fits, -9.0 does not; 2.25^2 = 5.0625 fits)")

    _section(out, "5. Reproducible random bits: xorshift32 (13, 17, 5), decide u < floor(p * 2^32)")
    gen = Xorshift32(2024)
    draws = Xorshift32(2024).uint32(4)
    out(f"seed 2024 -> first draws {[hex(int(d)) for d in draws]}")
    out(f"binarize [0.9, -0.9, 0.0, 0.5] stochastically: P(+1) = {[0.95, 0.05, 0.5, 0.75]} -> "
        f"{np.where(bernoulli([0.95, 0.05, 0.5, 0.75], gen), 1, -1).tolist()}")
    _section(out, "6. Minifloats: FP8 E4M3 (no Inf, one NaN per sign) beside E5M2 (IEEE-like) and FP4 E2M1")
    out(explain("e4m3", 0.3))
    x = np.array([0.3, 1000.0, -0.001])
    for name in ("e4m3", "e5m2", "e2m1"):
        fmt = minifloat.FORMATS[name]
        counts = Counts()
        codes = minifloat.encode(x, fmt, counts=counts)
        out(f"{name}: {x.tolist()} -> codes {[f'0x{int(c):02x}' for c in codes]} -> "
            f"{minifloat.decode(codes, fmt).tolist()}, saturated {counts.saturated}")

    _section(out, "7. MX block formats: 32 elements share one power-of-two scale, an E8M0 code")
    out(explain("mxfp4_e2m1", [0.3, 1.7, -5.0, 12.0]))
    out("")
    out("Next: bitsim explain FORMAT VALUE shows any value; docs/formats.md states every rule.")
