"""Slow, obvious per-channel affine maps in Python integers: the oracle of :mod:`bitsim.kernels.affine`."""

import numpy as np

__all__ = ["affine_codes"]


def affine_codes(x, factor, offset):
    """``x[i][c] * factor[c] + offset[c]`` for every code, as a list of lists of Python ints."""
    f, o = [int(v) for v in np.asarray(factor).tolist()], [int(v) for v in np.asarray(offset).tolist()]
    return [[int(v) * f[c] + o[c] for c, v in enumerate(row)] for row in np.asarray(x).tolist()]
