"""Shared by the minifloat and MX tests: a generator that hands out one given uint32 draw."""

import numpy as np


class OneDraw:
    """A stand-in for a ``bitsim.formats.rng`` generator whose every draw is ``u``."""

    def __init__(self, u):
        self.u = u

    def uint32(self, n):
        return np.full(n, self.u, np.uint32)
