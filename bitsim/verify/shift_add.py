"""The shift-add unit (``examples/hardware/shift_add.v``) as a testbench sees it: stimulus, bitsim's results, buses.

One transaction streams ``length`` pairs of a fixed-point activation and a log-coded weight (one per
clock) and sums the terms ``(-1)**sign * shift(x, e + acc_frac - x_frac)`` (the rule of
:func:`bitsim.kernels.shift.fixed_log_matmul`). The verification wrapper ``shift_add_bank.v`` runs the six
rounding modes of right shifts side by side; each transaction checks all six sums against
:func:`bitsim.kernels.rowwise.row_shift_add`.
"""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..formats.log import LogFormat, split
from ..kernels.requantize import ROUNDING_CODES
from ..kernels.rowwise import row_shift_add
from .corners import code_range, fixed_edges, log_codes, ties
from .scoreboard import Field
from .transactions import Batch, stream_batch, stream_cycles
from .words import pack_fields, unpack_fields

__all__ = ["ShiftAddUnit"]

ROUNDINGS = sorted(ROUNDING_CODES, key=ROUNDING_CODES.get)  # the order of shift_add.v's ROUNDING parameter


@dataclass(frozen=True)
class ShiftAddUnit:
    """The shift-add unit's configuration and its view of transactions.

    Parameters
    ----------
    x_bits : int
        Activation bits (``X_BITS``).
    exp_bits, exp_offset : int
        The log format of the weights (``EXP_BITS``, ``EXP_OFFSET``; :class:`bitsim.formats.log.LogFormat`).
    acc_frac : int
        Fractional bits of the sum minus those of the activations (``ACC_FRAC``).
    kmax : int
        Random transactions take 1..kmax pairs.
    """

    x_bits: int = 8
    exp_bits: int = 4
    exp_offset: int = -2
    acc_frac: int = 0
    kmax: int = 4
    name: ClassVar[str] = "shift_add"
    toplevel: ClassVar[str] = "shift_add_bank"
    sources: ClassVar[tuple] = ("shift_add.v", "shift_add_bank.v")
    bugs: ClassVar[dict] = {1: "the sign is applied before the shift: shift(-x), not -shift(x)",
                            2: "the zero code is not recognised",
                            3: "a tie of nearest_away rounds toward +inf (wrong for negative ties)",
                            4: "x is zero-extended into the shifter (sign-extension slip)"}

    @property
    def fmt(self):
        """The weights' :class:`~bitsim.formats.log.LogFormat`."""
        return LogFormat(exp_bits=self.exp_bits, exp_offset=self.exp_offset)

    def parameters(self, bug=0):
        """The wrapper's HDL parameters."""
        return {"X_BITS": self.x_bits, "EXP_BITS": self.exp_bits, "EXP_OFFSET": self.exp_offset,
                "ACC_FRAC": self.acc_frac, "BUG": bug}

    def fields(self):
        """The checked outputs: one 32-bit sum per rounding mode."""
        return [Field(f"acc.{r.value}", 32) for r in ROUNDINGS]

    def random(self, stream, count):
        """``count`` random transactions: lengths 1..kmax, activations uniform, codes uniform (zero codes too)."""
        lengths = stream.between(count, 1, self.kmax)
        x = stream.ints(count * self.kmax, self.x_bits).reshape(count, self.kmax)
        codes = stream.log_codes(count * self.kmax, self.fmt).reshape(count, self.kmax)
        keep = np.arange(self.kmax)[None, :] < lengths[:, None]
        zero = np.uint8(1 << (self.exp_bits - 1))  # +0, the padding of short rows
        return Batch({"length": lengths, "x": np.where(keep, x, 0), "code": np.where(keep, codes, zero)},
                     ["random"] * count)

    def directed(self):
        """Every code (both zero codes included) times the activation edges and the ties of its shift."""
        codes, names = log_codes(self.fmt)
        _, exponent, zero = split(codes, self.fmt)
        lo, hi = code_range(self.x_bits)
        cases = []
        for c, name, e, z in zip(codes, names, exponent, zero):
            values = set(fixed_edges(self.x_bits))
            t = int(e) + self.acc_frac
            if not z and t < 0:
                values |= {v for v in ties(-t) if lo <= v <= hi}
            for v in sorted(values):
                cases.append(([(v, int(c))], f"x {v} times code 0x{int(c):02x} ({name})"))
        big = int(codes[np.argmax(np.where(zero, -999, exponent))])
        neg_big = big | (1 << self.exp_bits)
        plus_zero, minus_zero = 1 << (self.exp_bits - 1), (1 << self.exp_bits) | (1 << (self.exp_bits - 1))
        k = self.kmax
        cases.append(([(lo, neg_big)] * k, f"{k} terms {lo} times the largest negative code"))
        cases.append(([(hi, big)] * k, f"{k} terms {hi} times the largest code"))
        cases.append(([(lo, plus_zero), (-1, minus_zero), (5, big)], "zero codes between terms"))
        return stream_batch([c[0] for c in cases], ("x", "code"), k, ["directed: " + c[1] for c in cases],
                            fills=(0, plus_zero))

    def expected(self, batch):
        """bitsim's sums for every transaction of ``batch``, one array per rounding mode."""
        dtype = {8: np.int8, 16: np.int16}.get(self.x_bits, np.int32)
        x = batch.operands["x"].astype(dtype)
        codes = batch.operands["code"].astype(np.uint8)
        return {f"acc.{r.value}": row_shift_add(x, 0, codes, self.fmt, acc_frac=self.acc_frac, rounding=r)
                for r in ROUNDINGS}

    def input_words(self, batch):
        """One integer per clock for ``in_bus = {last, first, in_valid, code, x}``."""
        t, k, first, last = stream_cycles(batch.operands["length"])
        ops = batch.operands
        return pack_fields([ops["x"][t, k], ops["code"][t, k].astype(np.int64), np.ones_like(t), first, last],
                           [self.x_bits, self.exp_bits + 1, 1, 1, 1])

    def idle_word(self):
        """The input word of an idle clock (in_valid 0)."""
        return 0

    def read_outputs(self, words):
        """Decode ``out_bus`` words (only those with out_valid) into one array per field."""
        values = unpack_fields(words, [1] + [32] * len(ROUNDINGS), [False] + [True] * len(ROUNDINGS))
        return {f"acc.{r.value}": v for r, v in zip(ROUNDINGS, values[1:])}
