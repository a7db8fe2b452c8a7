"""Slow oracle of :mod:`bitsim.kernels.byte_codes`: whole numbers 0..255 as uint8 codes, element by element."""

import math

import numpy as np


def uint8_codes(x):
    """``x`` as uint8 codes when every element is a whole number 0..255 (by Python floats), else None."""
    x = np.asarray(x)
    values = x.reshape(-1).tolist()
    if not all(math.isfinite(v) and 0 <= v <= 255 and v == int(v) for v in values):
        return None
    return np.array([int(v) for v in values], dtype=np.uint8).reshape(x.shape)


__all__ = ["uint8_codes"]
