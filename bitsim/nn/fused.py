"""One-pass Numba loops for the element-wise work done on every weight at every training step.

Each loop performs exactly the float32 operations, in the same order, as the NumPy expression it
replaces (quoted above it), so the results are bit-identical to it: ``fastmath=False`` keeps LLVM from
contracting a multiply and an add into a fused multiply-add or reordering anything. The loops are
element-wise (no reductions), so they give the same bits for any number of threads.

The loops take 1-D arrays; callers pass ``a.reshape(-1)`` views of C-contiguous arrays. (Unpacking
several ``.ravel()`` results in one tuple assignment inside a ``parallel=True`` function makes numba
0.68 work on copies, silently dropping the writes.)
"""

import math

import numba
import numpy as np


@numba.njit(cache=True, parallel=True, fastmath=False)
def sign_pm1(w, out):
    """``out = where(w >= 0, 1, -1)``; returns the number of NaNs met (they give -1)."""
    nans = 0
    for i in numba.prange(w.size):
        x = w[i]
        out[i] = 1.0 if x >= 0 else -1.0
        nans += x != x
    return nans


@numba.njit(cache=True, parallel=True, fastmath=False)
def adam(p, g, m, v, b1, omb1, b2, omb2, c1, c2, lr, eps, lo, hi, clip):
    """Adam, as ``m = b1*m + omb1*g; v = b2*v + (omb2*g)*g; p -= lr*(m/c1) / (sqrt(v/c2) + eps)``, then clip."""
    for i in numba.prange(p.size):
        gi = g[i]
        mi = b1 * m[i] + omb1 * gi
        vi = b2 * v[i] + (omb2 * gi) * gi
        m[i] = mi
        v[i] = vi
        q = p[i] - lr * (mi / c1) / (math.sqrt(vi / c2) + eps)
        p[i] = min(max(q, lo), hi) if clip else q


@numba.njit(cache=True, parallel=True, fastmath=False)
def adamax(p, g, m, u, b1, omb1, b2, step, eps, lo, hi, clip):
    """AdaMax, as ``m = b1*m + omb1*g; u = max(b2*u, |g|); p -= step*m / (u + eps)``, then clip."""
    for i in numba.prange(p.size):
        gi = g[i]
        mi = b1 * m[i] + omb1 * gi
        ui = max(b2 * u[i], abs(gi))
        m[i] = mi
        u[i] = ui
        q = p[i] - step * mi / (ui + eps)
        p[i] = min(max(q, lo), hi) if clip else q


def flat(*arrays):
    """1-D views of C-contiguous arrays, for the loops above."""
    return tuple(a.reshape(-1) for a in arrays)


def fusable(*arrays):
    """True when every array is C-contiguous float32 or float64 of one dtype (what the loops take)."""
    dtype = arrays[0].dtype
    return dtype in (np.float32, np.float64) and all(a.dtype == dtype and a.flags.c_contiguous for a in arrays)
