"""Random operands for testbenches, drawn from bitsim's named generators so that a seed replays a run.

Every value comes from uint32 draws of :func:`bitsim.formats.rng.make_rng` (``philox`` or
``xorshift32``), consumed in the order the methods are called: the same generator, seed and calls
give the same operands on every machine. A value uniform over ``0 .. bound - 1`` is
``(u * bound) >> 32`` for one draw ``u`` (exact in integers, the rule of ``docs/formats.md``,
section 5, "Random translations").
"""

import numpy as np

from ..errors import InputError
from ..formats.binary import pack
from ..formats.log import LogFormat
from ..formats.rng import make_rng

__all__ = ["Stream"]


class Stream:
    """A source of random operands on a named bitsim generator.

    Parameters
    ----------
    seed : int
        The generator's seed (philox 0..2**64-1, xorshift32 1..2**32-1).
    generator : {'philox', 'xorshift32'}

    Examples
    --------
    >>> Stream(5).ints(4, 8)
    array([ 59,  23, -75, -15])
    """

    def __init__(self, seed, generator="philox"):
        self.rng = make_rng(generator, seed)
        self.seed, self.generator = seed, generator

    def below(self, n, bound):
        """``n`` integers uniform over ``0 .. bound - 1`` (int64), ``bound`` in 1..2**32."""
        if not 1 <= int(bound) <= 2**32:
            raise InputError(f"bound must be in 1..2**32, got {bound}")
        u = self.rng.uint32(n).astype(np.uint64)
        return ((u * np.uint64(bound)) >> np.uint64(32)).astype(np.int64)

    def ints(self, n, bits):
        """``n`` two's-complement integers of ``bits`` bits (2..32), uniform over the whole range."""
        if not 1 <= int(bits) <= 32:
            raise InputError(f"bits must be in 1..32, got {bits}")
        u = self.rng.uint32(n).astype(np.int64) >> (32 - int(bits))
        return u - (1 << (int(bits) - 1))

    def between(self, n, lo, hi):
        """``n`` integers uniform over ``lo .. hi`` (inclusive)."""
        return self.below(n, int(hi) - int(lo) + 1) + int(lo)

    def log_codes(self, n, fmt=LogFormat()):
        """``n`` log codes of ``fmt`` (uint8), uniform over all ``2**fmt.bits`` codes, the two zero codes included."""
        return self.below(n, 1 << fmt.bits).astype(np.uint8)

    def packed(self, rows, n):
        """``rows`` random ±1 rows of length ``n``, packed (uint64, bitorder 'little', padding bits 0)."""
        signs = np.where(self.below(rows * n, 2) == 1, 1, -1).reshape(rows, n)
        return pack(signs.astype(np.int8))

    def __repr__(self):
        return f"Stream(seed={self.seed}, generator={self.generator!r})"
