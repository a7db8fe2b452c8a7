"""Slow, obvious multi-threshold counts in Python integers: the oracle of :mod:`bitsim.kernels.thresholds`."""

import numpy as np

__all__ = ["threshold_counts"]


def threshold_counts(x, thresholds, step=1, offset=0):
    """``step * #{j : x[i, c] >= t[c or 0, j]} + offset`` for every code, as a list of lists of Python ints."""
    rows = []
    for row in np.asarray(x).tolist():
        out = []
        for c, v in enumerate(row):
            t = thresholds[c if len(thresholds) > 1 else 0]
            out.append(step * sum(1 for tj in t if v >= tj) + offset)
        rows.append(out)
    return rows
