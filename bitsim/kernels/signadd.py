"""Sign-add GEMM: integer activations times packed binary or ternary weights, no multiplier.

``out[m, n] = sum_k w[n, k] * x[m, k]`` for weights ``w`` in {-1, +1} (packed binary, section 1
of ``docs/formats.md``) or {-1, 0, +1} (ternary ``(signs, mask)`` planes, section 2), and integer
activations ``x`` (int8, int16 or int32 codes, e.g. fixed point). Each term is ``+x``, ``-x`` or
nothing, chosen by the weight bits; the sum over K is the exact integer sum, so it does not
depend on the order of the additions, the tiling or the number of threads. The result is
returned in int32 when ``K * max|x|`` proves that no sum can leave int32, else in int64.

Because every sum is exact, the result equals the float32 product ``x @ w.T`` of the same
values whenever every partial sum is an integer below ``2**24`` in magnitude (and the float64
product below ``2**53``), whatever order a BLAS adds in.

Implementation (not part of the rule): the weight bits are read four at a time (one nibble of
a packed word). For each group ``j`` of four activations ``x[m, 4j .. 4j+3]`` and each of the
16 nibble values ``p`` the kernel first builds, for a tile of ``LANES`` rows of ``x``:

* the subset sums ``S[j, p] = sum of x[m, 4j + i] over the set bits i of p`` (15 additions),
* for binary weights the signed sums ``T[j, p] = S[j, p] - S[j, 15 ^ p]``, i.e. ``+x`` where
  the bit is 1 and ``-x`` where it is 0.

Then each output needs one table row per group instead of four terms: binary
``acc += T[j, nibble(signs)]``; ternary ``acc += S[j, nibble(signs)] - S[j, nibble(mask ^
signs)]``. Activations past K are zero and padding bits are zero, so the padded positions add 0.
The lanes (rows of ``x``) are the vector axis: one nibble drives ``LANES`` additions.
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..errors import InputError, RangeError
from ..formats.binary import n_words
from ..formats.launch import launch
from .operands import FIXED_DTYPES, as_acc_dtype, as_codes
from .words import as_length, as_ternary_planes, as_words

__all__ = ["signadd_gemm", "signadd_bound"]

INT32_MAX = 2**31 - 1
PARALLEL_MIN_WORK = 2**20  # work below which a kernel runs on the calling thread (as the popcount kernels)
LANES = 16  # rows of x per tile: two 256-bit vectors of int32; a K=1024 table is 256 KiB
NIBBLES = 16


@numba.njit(cache=True, inline="always")
def _build(x, r0, rows, groups, k, binary, tab):
    """Fill tab[j, p, :] (int32 or int64) with the subset sums (or signed sums) of group j."""
    v = np.zeros((4, LANES), tab.dtype)
    for j in range(groups):
        for i in range(4):
            c = 4 * j + i
            for lane in range(LANES):
                v[i, lane] = x[r0 + lane, c] if (lane < rows and c < k) else 0
        t = tab[j]
        for lane in range(LANES):
            t[0, lane] = 0
        for p in range(1, NIBBLES):
            low = p & -p
            i = 0 if low == 1 else (1 if low == 2 else (2 if low == 4 else 3))
            prev = t[p ^ low]
            cur = t[p]
            vi = v[i]
            for lane in range(LANES):
                cur[lane] = prev[lane] + vi[lane]
        if binary:
            # T[p] = S[p] - S[15 ^ p]; computed in place pairwise (p, 15 ^ p)
            for p in range(8):
                a = t[p]
                b = t[15 ^ p]
                for lane in range(LANES):
                    sa = a[lane]
                    sb = b[lane]
                    a[lane] = sa - sb
                    b[lane] = sb - sa


def _row_codegen(subtract):
    def codegen(context, builder, signature, args):
        tab_v, pos_v, neg_v, groups_v, out_v = args
        tab = context.make_array(signature.args[0])(context, builder, tab_v)
        pos = context.make_array(signature.args[1])(context, builder, pos_v)
        neg = context.make_array(signature.args[2])(context, builder, neg_v)
        out = context.make_array(signature.args[4])(context, builder, out_v)
        i64 = ir.IntType(64)
        elem = context.get_value_type(signature.args[0].dtype)
        vec = ir.VectorType(elem, LANES)
        ptr = vec.as_pointer()
        width = elem.width // 8
        acc = cgutils.alloca_once_value(builder, ir.Constant(vec, None))

        def row(plane, j):
            p = builder.zext(builder.load(builder.gep(plane.data, [j])), i64)
            off = builder.mul(builder.add(builder.mul(j, ir.Constant(i64, NIBBLES)), p), ir.Constant(i64, LANES))
            return builder.load(builder.bitcast(builder.gep(tab.data, [off]), ptr), align=width)

        with cgutils.for_range(builder, groups_v) as loop:
            value = row(pos, loop.index)
            if subtract:
                value = builder.sub(value, row(neg, loop.index))
            builder.store(builder.add(builder.load(acc), value), acc)
        builder.store(builder.load(acc), builder.bitcast(out.data, ptr), align=width)
        return context.get_dummy_value()

    return codegen


@intrinsic
def _binary_row(typingctx, tab, pos, neg, groups, out):
    """out[:LANES] = sum over j < groups of tab[(16 j + pos[j]) * LANES : ... + LANES] (vector IR)."""
    return types.void(tab, pos, neg, types.intp, out), _row_codegen(False)


@intrinsic
def _ternary_row(typingctx, tab, pos, neg, groups, out):
    """out[:LANES] = sum over j < groups of the row of pos[j] minus the row of neg[j] (vector IR)."""
    return types.void(tab, pos, neg, types.intp, out), _row_codegen(True)


def _make_kernel(acc_type):
    @numba.njit(cache=True, parallel=True)
    def kernel(x, k, pos, neg, binary, out):
        m = x.shape[0]
        n_out = pos.shape[0]
        groups = (k + 3) // 4
        tiles = (m + LANES - 1) // LANES
        for t in numba.prange(tiles):
            r0 = t * LANES
            rows = min(LANES, m - r0)
            tab3 = np.empty((groups, NIBBLES, LANES), acc_type)
            _build(x, r0, rows, groups, k, binary, tab3)
            tab = tab3.reshape(-1)
            acc = np.empty(LANES, acc_type)
            for n in range(n_out):
                if binary:
                    _binary_row(tab, pos[n], pos[n], groups, acc)
                else:
                    _ternary_row(tab, pos[n], neg[n], groups, acc)
                for lane in range(rows):
                    out[r0 + lane, n] = acc[lane]

    return kernel


@numba.njit(cache=True, parallel=True)
def _nibbles(signs, mask, binary, groups, pos, neg):
    for n in numba.prange(signs.shape[0]):
        for j in range(groups):
            s = (j & 15) << 2
            ws = signs[n, j >> 4]
            pos[n, j] = (ws >> s) & 15
            if not binary:
                neg[n, j] = ((mask[n, j >> 4] ^ ws) >> s) & 15


_kernel32 = _make_kernel(np.int32)
_kernel64 = _make_kernel(np.int64)


def signadd_bound(x, k):
    """Largest possible ``|out|``: ``K * max|x|`` (every term a signed copy of one activation)."""
    x = np.asarray(x)
    return int(k) * (int(np.abs(x.astype(np.int64)).max()) if x.size else 0)


def _activations(x, k):
    shape = f"activations of shape (M, {k})"
    x = as_codes(x, "signadd_gemm", FIXED_DTYPES, "int8, int16 or int32 activation codes",
                 "quantize with bitsim.formats.fixed.quantize(...) (integer pixels: x.astype(np.int16))", shape)
    if x.shape[1] != k:
        raise InputError(f"signadd_gemm: expected {shape}, got shape {x.shape}")
    return x


def signadd_gemm(x, signs, n, mask=None, bitorder="little", acc_dtype=None):
    """Exact ``x @ w.T`` for packed ±1 weights (``mask=None``) or ternary ``(signs, mask)`` weights.

    Parameters
    ----------
    x : numpy.ndarray of int8, int16 or int32, shape (M, n)
        Integer activations (fixed-point codes; the result has the same fractional bits).
    signs : numpy.ndarray of uint64, shape (N, ceil(n / 64))
        Binary weights packed along K (bit 1 = +1, padding 0), one row per output; or the
        signs plane of ternary weights.
    n : int
        K, the unpacked length of a weight row.
    mask : numpy.ndarray of uint64, optional
        Ternary mask plane (bit 1 = nonzero), same shape as ``signs``; canonical planes only
        (no sign bit outside the mask).
    bitorder : {'little', 'big'}
    acc_dtype : {None, numpy.int32, numpy.int64}
        None picks int32 when ``n * max|x| <= 2**31 - 1``, else int64. Asking for int32
        when the bound does not prove it safe raises.

    Returns
    -------
    numpy.ndarray, shape (M, N)
        The exact sums ``sum_k w[n, k] * x[m, k]``.

    Examples
    --------
    >>> from bitsim.formats.binary import pack
    >>> x = np.array([[3, -5, 7]], dtype=np.int16)
    >>> signadd_gemm(x, pack([[1, -1, 1], [-1, -1, 1]]), 3)        # [3+5+7, -3+5+7]
    array([[15,  9]], dtype=int32)
    """
    n = as_length(n)
    x = _activations(x, n)
    if mask is None:
        signs = as_words(signs, "signadd_gemm weights", n, 2, bitorder)
        mask = signs
        binary = True
    else:
        signs, mask = as_ternary_planes(signs, mask, "signadd_gemm weights", n, bitorder)
        binary = False
    bound = signadd_bound(x, n)
    if acc_dtype is None:
        acc_dtype = np.int32 if bound <= INT32_MAX else np.int64
    acc_dtype = as_acc_dtype(acc_dtype)
    if acc_dtype == np.int32 and bound > INT32_MAX:
        raise RangeError(
            f"signadd_gemm: sums up to {bound} do not fit int32; use acc_dtype=numpy.int64 or smaller activations"
        )
    out = np.zeros((x.shape[0], signs.shape[0]), dtype=acc_dtype)
    if out.size == 0 or n == 0:
        return out
    kernel = _kernel32 if acc_dtype == np.int32 else _kernel64
    work = x.shape[0] * signs.shape[0] * n_words(n) * 16
    groups = (n + 3) // 4
    pos = np.empty((signs.shape[0], groups), np.uint8)
    neg = np.empty((signs.shape[0], groups) if not binary else (1, 1), np.uint8)
    launch(_nibbles, signs.shape[0] * groups, signs.view(np.int64), mask.view(np.int64), binary, groups, pos, neg,
           min_work=PARALLEL_MIN_WORK)
    launch(kernel, work, x, n, pos, neg, binary, out, min_work=PARALLEL_MIN_WORK)
    return out
