"""Exact integer matrix products of the ``exact`` semantics, and the proof that picks their route.

``acc[i, j] = sum_k a[i, k] * b[j, k]`` is an exact integer whatever the route; :func:`plan` picks
the fastest route whose exactness it can prove from the operands' largest magnitudes:

``xnor``     both operands hold only -1 and +1: packed XNOR-popcount (:func:`bitsim.kernels.xnor_gemm`)
``u8``       ``a`` holds 0..255 and ``b`` int8 codes: :func:`bitsim.kernels.u8.u8s8_matmul` (exact; its own
             proof picks its AVX2 route or an exact fallback)
``float32``  ``K * max|a| * max|b| < 2**24``: every partial sum of a float32 product of the codes is an
             integer of magnitude below ``2**24``, so the float32 BLAS product is exact in any order
``int16``    both operands fit int16 codes: :func:`bitsim.kernels.intmatmul.matmul`, exact int64 sums
``int64``    ``K * max|a| * max|b| < 2**63``: NumPy's integer product (no BLAS, no overflow)
``python``   otherwise: Python integers (:func:`bitsim.reference.intmatmul.exact_matmul`)

:class:`Operand` holds the facts the plan needs (and the packed words) of an operand; a constant
operand (a weight matrix) keeps its Operand across runs.
"""

import numpy as np

from ..formats.binary import pack
from ..formats.fixed import FixedFormat
from ..kernels import xnor_gemm
from ..kernels.intmatmul import matmul as fixed_matmul
from ..kernels.u8 import u8s8_matmul
from ..reference.intmatmul import exact_matmul
from .exact_tensor import as_codes

FLOAT32_EXACT = 1 << 24
INT64_EXACT = 1 << 63
ROUTES = ("xnor", "u8", "float32", "int16", "int64", "python")


def is_bipolar(a):
    """True when every element is -1 or +1."""
    a = np.asarray(a)
    return a.size > 0 and a.dtype != object and bool(np.all(np.abs(a) == 1))


class Operand:
    """One operand of a product, as rows of length K: its codes, largest magnitude, sign range, packing.

    Parameters
    ----------
    rows : numpy.ndarray of integers, shape (rows, K)
    bounds : (int, int), optional
        The smallest and largest code, when known (else computed).
    """

    def __init__(self, rows, bounds=None):
        self.rows = rows if rows.dtype == object else np.ascontiguousarray(rows)
        if bounds is None:
            bounds = (int(rows.min()), int(rows.max())) if rows.size else (0, 0)
        self.low, high = bounds
        self.largest = max(abs(self.low), abs(high))
        self.bipolar = (self.low, high) == (-1, 1) and rows.dtype != object and not np.any(rows == 0)
        self.cache = {}

    def packed(self):
        """The rows packed as -1/+1 bits (:func:`bitsim.formats.binary.pack`), made once."""
        if "packed" not in self.cache:
            self.cache["packed"] = pack(self.rows)
        return self.cache["packed"]

    def as_dtype(self, dtype):
        """The rows as ``dtype``, converted once."""
        if dtype not in self.cache:
            self.cache[dtype] = self.rows.astype(dtype)
        return self.cache[dtype]


def plan(max_a, max_b, k, bipolar=False, allow_float=True, u8=False):
    """The route of an exact product ``A @ B.T`` with reduction length ``k``.

    Parameters
    ----------
    max_a, max_b : int
        The largest code magnitudes of the operands.
    k : int
    bipolar : bool
        Both operands hold only -1 and +1.
    allow_float : bool
        Whether the float32 route may be taken (it is taken only when the bound holds).
    u8 : bool
        ``a`` holds only 0..255 and ``b`` only -128..127.

    Returns
    -------
    str
        One of :data:`ROUTES`.
    """
    if bipolar:
        return "xnor"
    if u8:
        return "u8"
    bound = int(k) * int(max_a) * int(max_b)
    if allow_float and bound < FLOAT32_EXACT:
        return "float32"
    if max_a < (1 << 15) and max_b < (1 << 15):
        return "int16"
    if bound < INT64_EXACT:
        return "int64"
    return "python"


def matmul_codes(a, b, route=None):
    """``A @ B.T`` of integer codes, exactly.

    Parameters
    ----------
    a : numpy.ndarray of integers, shape (M, K), or Operand
    b : numpy.ndarray of integers, shape (N, K), or Operand
    route : str, optional
        Force a route of :data:`ROUTES` (it must be provably exact); by default :func:`plan`'s.

    Returns
    -------
    acc : numpy.ndarray of int32 or int64 (or object), shape (M, N)
    route : str
    """
    a = a if isinstance(a, Operand) else Operand(np.asarray(a))
    b = b if isinstance(b, Operand) else Operand(np.asarray(b))
    k = a.rows.shape[1]
    u8 = a.low >= 0 and a.largest <= 255 and b.low >= -128 and b.largest <= 128 and \
        max(b.largest, -b.low) <= 127 and a.rows.dtype != object
    chosen = plan(a.largest, b.largest, k, a.bipolar and b.bipolar, u8=u8)
    route = route or chosen
    if route == "xnor":
        if not (a.bipolar and b.bipolar):
            raise ValueError("the xnor route needs operands of -1 and +1 only")
        return xnor_gemm(a.packed(), b.packed(), k), route
    if route == "u8":
        if not u8:
            raise ValueError("the u8 route needs a in 0..255 and b in -127..127")
        return as_codes(u8s8_matmul(a.as_dtype(np.uint8), b.as_dtype(np.int8))), route
    if route == "float32":
        if k * a.largest * b.largest >= FLOAT32_EXACT:
            raise ValueError(f"a float32 product is not provably exact here (K * max|a| * max|b| = "
                             f"{k * a.largest * b.largest} >= 2**24)")
        return (a.as_dtype(np.float32) @ b.as_dtype(np.float32).T).astype(np.int64), route
    if route == "int16":
        dtype = np.int8 if max(a.largest, b.largest) < 128 else np.int16
        fmt = FixedFormat(8 * np.dtype(dtype).itemsize, 0)
        acc = fixed_matmul(a.as_dtype(dtype), fmt, b.as_dtype(dtype), fmt, acc_dtype=np.int64)
        return acc.astype(np.int64), route
    if route == "int64":
        return a.as_dtype(np.int64) @ b.as_dtype(np.int64).T, route
    return as_codes(exact_matmul(a.rows, b.rows)), "python"


__all__ = ["ROUTES", "FLOAT32_EXACT", "Operand", "plan", "matmul_codes", "is_bipolar"]
