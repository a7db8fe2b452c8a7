"""Slow, obvious oracle of :mod:`bitsim.kernels.accumulate`: a narrow accumulator in Python ints.

Each output adds its products in ascending ``k``; after each addition the accumulator wraps
(``((s + 2**(w-1)) mod 2**w) - 2**(w-1)``) or clamps to ``[-2**(w-1), 2**(w-1) - 1]``; an addition whose exact
result lay outside that range is one event.
"""

import numpy as np

__all__ = ["accumulate_matmul"]


def accumulate_matmul(a, b, width, edge):
    """``(out, events)`` of ``a @ b.T`` through a ``width``-bit accumulator with ``edge`` 'wrap' or 'saturate'.

    Parameters
    ----------
    a, b : array_like of int, shapes (M, K) and (N, K)
    width : int
    edge : str

    Returns
    -------
    out : list of list of int
    events : int
    """
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    a = [[int(v) for v in row] for row in np.asarray(a).tolist()]
    b = [[int(v) for v in row] for row in np.asarray(b).tolist()]
    out, events = [], 0
    for row in a:
        line = []
        for col in b:
            acc = 0
            for x, w in zip(row, col):
                s = acc + x * w
                if edge == "wrap":
                    acc = (s - lo) % (1 << width) + lo
                else:
                    acc = min(max(s, lo), hi)
                events += acc != s
            line.append(acc)
        out.append(line)
    return out, events
