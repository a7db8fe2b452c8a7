"""The fixed-point MAC unit (``examples/hardware/mac.v``) as a testbench sees it: stimulus, bitsim's results, buses.

One transaction streams ``length`` operand pairs (one per clock), accumulates their products in a
wrapping 32-bit register and requantizes by a right shift (``docs/hardware.md``, "The MAC unit"). The
verification wrapper ``mac_bank.v`` runs every rounding mode and both overflow modes side by side, so each
transaction checks the accumulator and twelve requantized results against
:func:`bitsim.kernels.rowwise.mac_requantize`.
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..formats.fixed import FixedFormat
from ..formats.modes import Overflow, Rounding
from ..kernels.requantize import ROUNDING_CODES
from ..kernels.rowwise import mac_requantize
from .corners import code_range, fixed_edges, pairs_summing_to, requantize_edges, ties
from .scoreboard import Field
from .transactions import Batch, stream_batch, stream_cycles
from .words import pack_fields, unpack_fields

__all__ = ["MacUnit", "VARIANTS"]

ROUNDINGS = sorted(ROUNDING_CODES, key=ROUNDING_CODES.get)  # the order of mac.v's ROUNDING parameter
VARIANTS = [(r, o) for r in ROUNDINGS for o in (Overflow.SATURATE, Overflow.WRAP)]  # mac_bank.v's order
MAX_SHIFT = 31  # the 5-bit shift port


def variant_name(rounding, overflow):
    """The field of one requantized result, e.g. ``q.nearest_even.saturate``."""
    return f"q.{rounding.value}.{overflow.value}"


@dataclass(frozen=True)
class MacUnit:
    """The MAC unit's configuration and its view of transactions.

    Parameters
    ----------
    width : int
        Operand bits, 8 or 16 (``WIDTH``).
    out_bits : int
        Bits of the requantized result (``OUT_BITS``).
    kmax : int
        Random transactions take 1..kmax operand pairs.
    kmax_directed : int
        The longest directed transaction (sums built from many products).
    """

    width: int = 8
    out_bits: int = 8
    kmax: int = 4
    kmax_directed: int = 16
    name: ClassVar[str] = "mac"
    toplevel: ClassVar[str] = "mac_bank"
    sources: ClassVar[tuple] = ("mac.v", "mac_bank.v")
    bugs: ClassVar[dict] = {1: "a tie of nearest_even rounds up whatever the parity of q",
                            2: "saturation misses the negative end (values below the range wrap)",
                            3: "the product is zero-extended into the accumulator (sign-extension slip)",
                            4: "the shift is logical (>>), not arithmetic (>>>)"}

    def parameters(self, bug=0):
        """The wrapper's HDL parameters."""
        return {"WIDTH": self.width, "OUT_BITS": self.out_bits, "BUG": bug}

    def fields(self):
        """The checked outputs: the 32-bit accumulator and one requantized result per variant."""
        return [Field("acc", 32)] + [Field(variant_name(r, o), self.out_bits) for r, o in VARIANTS]

    def random(self, stream, count):
        """``count`` random transactions: lengths 1..kmax, operands uniform over their codes, shifts 0..31.

        Three shifts in four are drawn from ``0 .. min(2 * width + 3, 31)``, where the result depends on the
        discarded bits; the fourth from the whole port, 0..31.
        """
        lengths = stream.between(count, 1, self.kmax)
        a = stream.ints(count * self.kmax, self.width).reshape(count, self.kmax)
        b = stream.ints(count * self.kmax, self.width).reshape(count, self.kmax)
        keep = np.arange(self.kmax)[None, :] < lengths[:, None]
        near = stream.below(count, min(2 * self.width + 4, MAX_SHIFT + 1))
        wide = stream.below(count, MAX_SHIFT + 1)
        shift = np.where(stream.below(count, 4) == 0, wide, near)
        return Batch({"length": lengths, "a": np.where(keep, a, 0), "b": np.where(keep, b, 0), "shift": shift},
                     ["random"] * count)

    def directed(self):
        """Directed transactions: every shift 0..31 with ties and saturation edges, extreme operands, wrap."""
        cases = []
        lo, hi = code_range(self.width)
        for s in range(MAX_SHIFT + 1):
            for target in ties(s) + [v + d for v in ties(s, 1) for d in (-1, 1)] + requantize_edges(s, self.out_bits):
                pairs = pairs_summing_to(target, self.width, self.kmax_directed)
                if pairs is not None:
                    cases.append((pairs, s, f"shift {s}, acc {target}"))
        for x in fixed_edges(self.width):
            for y in (lo, -1, hi):
                cases.append(([(x, y)], 3, f"one product {x} * {y}"))
        cases.append(([(lo, lo)] * self.kmax_directed, 0, f"{self.kmax_directed} products {lo} * {lo}"))
        cases.append(([(lo, hi)] * self.kmax_directed, 0, f"{self.kmax_directed} products {lo} * {hi}"))
        cases.append(([(lo, lo)] * 2 + [(-1, 1)], 1, f"2 products {lo} * {lo}, then -1"))
        return stream_batch([c[0] for c in cases], ("a", "b"), self.kmax_directed,
                            ["directed: " + c[2] for c in cases], shift=np.array([c[1] for c in cases]))

    def expected(self, batch):
        """bitsim's results for every transaction of ``batch``, one array per field."""
        dtype = np.int8 if self.width == 8 else np.int16
        a = batch.operands["a"].astype(dtype)
        b = batch.operands["b"].astype(dtype)
        out = {}
        for r, o in VARIANTS:
            fmt = FixedFormat(self.out_bits, 0, rounding=r, overflow=o)
            acc, q = mac_requantize(a, b, batch.operands["shift"], fmt)
            out[variant_name(r, o)] = q
        out["acc"] = acc
        return out

    def input_words(self, batch):
        """One integer per clock for ``in_bus = {shift, last, first, in_valid, b, a}``."""
        t, k, first, last = stream_cycles(batch.operands["length"])
        ops = batch.operands
        return pack_fields([ops["a"][t, k], ops["b"][t, k], np.ones_like(t), first, last, ops["shift"][t]],
                           [self.width, self.width, 1, 1, 1, 5])

    def idle_word(self):
        """The input word of an idle clock (in_valid 0)."""
        return 0

    def read_outputs(self, words):
        """Decode ``out_bus`` words (only those with out_valid) into one array per field."""
        widths = [1, 32] + [self.out_bits] * len(VARIANTS)
        names = ["valid", "acc"] + [variant_name(r, o) for r, o in VARIANTS]
        values = unpack_fields(words, widths, [False] + [True] * (len(widths) - 1))
        return dict(zip(names[1:], values[1:]))
