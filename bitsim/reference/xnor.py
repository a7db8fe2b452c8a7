"""Slow, obvious versions of the kernels in :mod:`bitsim.kernels.xnor`.

Each one unpacks its operands to small integers (±1, 0/1, {-1, 0, +1} or the unsigned
inputs themselves) and uses numpy's int64 matmul, which is exact integer arithmetic (numpy
does not send integer matmuls to BLAS). The results are cast to the kernels' output dtypes
only after checking that they fit.
"""

import numpy as np

from ..errors import RangeError
from ..formats.binary import pack_bits, unpack
from ..formats.ternary import unpack_ternary


def _to(values, dtype):
    info = np.iinfo(dtype)
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise RangeError(f"result does not fit {np.dtype(dtype)}")
    return values.astype(dtype)


def xnor_gemm(a, b, n):
    """``A @ B.T`` of the ±1 matrices packed in ``a`` (M, W) and ``b`` (N, W); int32 (M, N)."""
    A = unpack(a, n).astype(np.int64)
    B = unpack(b, n).astype(np.int64)
    return _to(A @ B.T, np.int32)


def xnor_gemv(a, x, n):
    """``A @ x`` of the ±1 matrix packed in ``a`` (M, W) and the ±1 vector packed in ``x`` (W,); int32 (M,)."""
    return _to(unpack(a, n).astype(np.int64) @ unpack(x, n).astype(np.int64), np.int32)


def binary_conv2d(x, w, c, stride=(1, 1), pads=((0, 0), (0, 0))):
    """Cross-correlation of unpacked ±1 activations with ±1 weights, padding positions = 0.

    Parameters
    ----------
    x : uint64 (N, H, W, ceil(c / 64)) packed activations
    w : uint64 (O, KH, KW, ceil(c / 64)) packed weights
    c : int, number of channels
    stride : (int, int)
    pads : ((top, bottom), (left, right)), explicit zero padding

    Returns
    -------
    int32 (N, OH, OW, O)
    """
    X = unpack(x, c).astype(np.int64)
    W = unpack(w, c).astype(np.int64)
    (top, bottom), (left, right) = pads
    sh, sw = stride
    X = np.pad(X, ((0, 0), (top, bottom), (left, right), (0, 0)))  # zeros: padding contributes nothing
    nb, h, wd, _ = X.shape
    nout, kh, kw, _ = W.shape
    oh = (h - kh) // sh + 1
    ow = (wd - kw) // sw + 1
    out = np.zeros((nb, oh, ow, nout), dtype=np.int64)
    for u in range(kh):
        for v in range(kw):
            patch = X[:, u : u + sh * (oh - 1) + 1 : sh, v : v + sw * (ow - 1) + 1 : sw, :]
            out += patch @ W[:, u, v, :].T
    return _to(out, np.int32)


def pack_planes(x, bits):
    """Bit ``p`` of every ``x[i, k]``, packed along ``k``: uint64 (bits, M, ceil(K / 64))."""
    x = np.asarray(x).astype(np.int64)
    planes = [(x >> p) & 1 for p in range(bits)]
    return pack_bits(np.array(planes, dtype=bool).reshape((bits,) + x.shape))


def bitplane_gemm(x, w, n):
    """``x @ W.T`` for unsigned integers ``x`` (M, n) and the ±1 matrix packed in ``w`` (N, W); int64."""
    return np.asarray(x).astype(np.int64) @ unpack(w, n).astype(np.int64).T


def ternary_binary_gemm(ts, tm, b, n):
    """``T @ B.T`` for ternary planes ``(ts, tm)`` (M, W) and the ±1 matrix packed in ``b`` (N, W); int32."""
    T = unpack_ternary(ts, tm, n).astype(np.int64)
    return _to(T @ unpack(b, n).astype(np.int64).T, np.int32)


def ternary_gemm(sa, ma, sb, mb, n):
    """``A @ B.T`` for ternary planes ``(sa, ma)`` (M, W) and ``(sb, mb)`` (N, W); int32 (M, N)."""
    A = unpack_ternary(sa, ma, n).astype(np.int64)
    B = unpack_ternary(sb, mb, n).astype(np.int64)
    return _to(A @ B.T, np.int32)


def threshold_pack(acc, thresholds, flip=None):
    """Packed bits of ``acc >= thresholds`` (``acc <= thresholds`` where ``flip``), channels last."""
    acc = np.asarray(acc).astype(object)  # Python ints: no overflow, no casting question
    thresholds = np.asarray(thresholds).astype(object)
    flip = np.zeros(acc.shape[-1], dtype=bool) if flip is None else np.asarray(flip, dtype=bool)
    bits = np.where(flip, acc <= thresholds, acc >= thresholds).astype(bool)
    return pack_bits(bits)

