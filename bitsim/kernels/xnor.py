"""Popcount kernels for packed binary and ternary operands.

One module, although long (one cohesive thing): the popcount GEMMs, the binary convolution built on
them and the two packers that feed and follow them (:func:`pack_planes`, :func:`threshold_pack`) share
the packed layout, the operand checks and the threading rule, and :mod:`bitsim.reference.xnor` mirrors
them one to one.

Every operand uses the packed layout of :mod:`bitsim.formats.binary`: uint64 words, element
``i`` of the last axis at bit ``i % 64`` of word ``i // 64`` (bitorder 'little'), bit 1 = +1,
padding bits 0. With zero padding, the ±1 dot product of length ``n`` is
``n - 2 * popcount(a XOR b)`` with no correction.

Each public function validates its inputs, copies non-C-contiguous ones (and converts
``bitorder='big'`` words) to the kernels' layout, allocates the output and calls a private
jitted kernel that does no checking. The kernels are pure integer code: ``fastmath`` is not
used because it only changes floating-point operations, and every sum is an exact integer
sum, so results do not depend on the number of numba threads.

The slow, obvious versions of these functions are in :mod:`bitsim.reference.xnor`.

Performance: the GEMM-like kernels compute a 2x2 tile of (row, row) pairs per pass over the
words, parallel over row pairs (``numba.prange``). With AVX2 the inner loop is
``vpxor`` + a 7-instruction ``vpshufb`` popcount per pair and 4 words, so on Zen 3 it runs
near the vector-port limit (about 300 G bit-MAC/s per core at K = 4096; ``vpshufb`` issues
about once per cycle there). Cache blocking over N, other tile shapes, byte-wise
accumulation and pre-split nibble operands (hand-written LLVM IR) were measured and gave no
gain. Calls with little work run on the calling thread only (:data:`PARALLEL_MIN_WORK`).
"""

import operator

import numba
import numpy as np

from ..errors import InputError, InputTypeError
from ..formats.binary import WORD_BITS, n_words, padding_mask
from ..formats.launch import launch
from .bits import popcount
from .words import as_length, as_ternary_planes, as_words

__all__ = [
    "xnor_gemm",
    "xnor_gemv",
    "binary_conv2d",
    "conv2d_padding",
    "pack_planes",
    "bitplane_gemm",
    "bitplane_gemm_planes",
    "ternary_binary_gemm",
    "ternary_gemm",
    "threshold_pack",
]

INT32_MAX = 2**31 - 1

# Below this many inner-loop word operations (about 0.25 ms on one core) a kernel runs on the
# calling thread only: waking the other threads costs more than the work (microseconds when
# idle, milliseconds when the cores are shared with other processes).
PARALLEL_MIN_WORK = 2**20
PACK_MIN_WORK = 2**18  # accumulators of threshold_pack: about 0.08 ms on one core

# Inside the tile loops, rows of the left operand are "a0, a1", rows of the right operand
# "b0, b1", and s{r}{c} is the popcount accumulator of pair (a_r, b_c), so each word loaded
# serves two pairs. LLVM vectorizes the loop over words: 4 words per AVX2 register, ctpop
# lowered to the vpshufb nibble lookup + vpsadbw into 64-bit lanes (see bits.py).


# ---------------------------------------------------------------------------------------
# validation helpers


def _check_int32(bound, what):
    if bound > INT32_MAX:
        raise InputError(f"{what}: results up to {bound} do not fit the int32 output; split the reduction axis")


def _int32_length(n, what):
    """The reduction length ``n`` (:func:`bitsim.kernels.words.as_length`) of a product with int32 results."""
    n = as_length(n)
    _check_int32(n, what)
    return n


def _int32_out(kernel, shape, work, *args):
    """A new int32 array of ``shape`` filled by ``kernel(*args, out)`` (not called when empty); ``work`` per element."""
    out = np.empty(shape, dtype=np.int32)
    if out.size:
        launch(kernel, out.size * work, *args, out, min_work=PARALLEL_MIN_WORK)
    return out


# ---------------------------------------------------------------------------------------
# XNOR GEMM / GEMV


@numba.njit(cache=True)
def _xnor_rows2(a0, a1, b, n, o0, o1):
    nb = b.shape[0]
    for j in range(0, nb - 1, 2):
        b0 = b[j]
        b1 = b[j + 1]
        s00 = s01 = s10 = s11 = np.uint64(0)
        for k in range(a0.shape[0]):
            x0 = a0[k]
            x1 = a1[k]
            y0 = b0[k]
            y1 = b1[k]
            s00 += popcount(x0 ^ y0)
            s01 += popcount(x0 ^ y1)
            s10 += popcount(x1 ^ y0)
            s11 += popcount(x1 ^ y1)
        o0[j] = n - 2 * np.int64(s00)
        o0[j + 1] = n - 2 * np.int64(s01)
        o1[j] = n - 2 * np.int64(s10)
        o1[j + 1] = n - 2 * np.int64(s11)
    if nb % 2:
        j = nb - 1
        b0 = b[j]
        s00 = s10 = np.uint64(0)
        for k in range(a0.shape[0]):
            s00 += popcount(a0[k] ^ b0[k])
            s10 += popcount(a1[k] ^ b0[k])
        o0[j] = n - 2 * np.int64(s00)
        o1[j] = n - 2 * np.int64(s10)


@numba.njit(cache=True)
def _xnor_row(a0, b, n, o0):
    for j in range(b.shape[0]):
        b0 = b[j]
        s = np.uint64(0)
        for k in range(a0.shape[0]):
            s += popcount(a0[k] ^ b0[k])
        o0[j] = n - 2 * np.int64(s)


@numba.njit(cache=True, parallel=True)
def _xnor_gemm(a, b, n, out):
    m = a.shape[0]
    if a.shape[1] == 1:  # one word per row: a single loop over the columns, no row views
        for i in numba.prange(m):
            x = a[i, 0]
            for j in range(b.shape[0]):
                out[i, j] = n - 2 * np.int64(popcount(x ^ b[j, 0]))
        return
    for t in numba.prange((m + 1) // 2):
        i = 2 * t
        if i + 1 < m:
            _xnor_rows2(a[i], a[i + 1], b, n, out[i], out[i + 1])
        else:
            _xnor_row(a[i], b, n, out[i])


@numba.njit(cache=True, parallel=True)
def _xnor_gemv(a, x, n, out):
    m, w = a.shape
    for t in numba.prange((m + 3) // 4):
        i = 4 * t
        if i + 3 < m:
            a0 = a[i]
            a1 = a[i + 1]
            a2 = a[i + 2]
            a3 = a[i + 3]
            s0 = s1 = s2 = s3 = np.uint64(0)
            for k in range(w):
                y = x[k]
                s0 += popcount(a0[k] ^ y)
                s1 += popcount(a1[k] ^ y)
                s2 += popcount(a2[k] ^ y)
                s3 += popcount(a3[k] ^ y)
            out[i] = n - 2 * np.int64(s0)
            out[i + 1] = n - 2 * np.int64(s1)
            out[i + 2] = n - 2 * np.int64(s2)
            out[i + 3] = n - 2 * np.int64(s3)
        else:
            for r in range(i, m):
                s = np.uint64(0)
                for k in range(w):
                    s += popcount(a[r, k] ^ x[k])
                out[r] = n - 2 * np.int64(s)


def xnor_gemm(a, b, n, bitorder="little"):
    """±1 matrix product of packed operands: ``A @ B.T`` with ``A``, ``B`` in {-1, +1}.

    ``out[i, j] = n - 2 * popcount(a[i] XOR b[j])``, the dot product of row ``i`` of ``A``
    and row ``j`` of ``B``, both of length ``n``.

    Parameters
    ----------
    a : numpy.ndarray of uint64, shape (M, ceil(n / 64))
        Packed rows of ``A`` (:func:`bitsim.formats.binary.pack`), padding bits 0.
    b : numpy.ndarray of uint64, shape (N, ceil(n / 64))
        Packed rows of ``B`` (so ``B`` is given transposed, like a weight matrix (out, in)).
    n : int
        Number of ±1 values per row (the reduction length K).
    bitorder : {'little', 'big'}
        Layout of the given words; 'big' is converted to 'little' with a copy.

    Returns
    -------
    numpy.ndarray of int32, shape (M, N)

    Raises
    ------
    TypeError
        If an operand is not uint64 or ``n`` is not an integer.
    ValueError
        If a shape does not match ``n`` or a padding bit is set.

    Notes
    -----
    Non-C-contiguous operands are accepted and copied. The result is exact and independent
    of the number of numba threads.

    Examples
    --------
    >>> from bitsim.formats.binary import pack
    >>> xnor_gemm(pack([[1, -1, 1]]), pack([[1, 1, 1], [-1, 1, -1]]), 3)
    array([[ 1, -3]], dtype=int32)
    """
    n = _int32_length(n, "xnor_gemm")
    a = as_words(a, "xnor_gemm: a", n, 2, bitorder)
    b = as_words(b, "xnor_gemm: b", n, 2, bitorder)
    return _int32_out(_xnor_gemm, (a.shape[0], b.shape[0]), a.shape[1], a, b, n)


def xnor_gemv(a, x, n, bitorder="little"):
    """±1 matrix-vector product of packed operands: ``out[i] = n - 2 * popcount(a[i] XOR x)``.

    Parameters
    ----------
    a : numpy.ndarray of uint64, shape (M, ceil(n / 64))
    x : numpy.ndarray of uint64, shape (ceil(n / 64),)
    n : int
        Number of ±1 values per row.
    bitorder : {'little', 'big'}

    Returns
    -------
    numpy.ndarray of int32, shape (M,)

    Notes
    -----
    Same checks and copying rules as :func:`xnor_gemm`.
    """
    n = _int32_length(n, "xnor_gemv")
    a = as_words(a, "xnor_gemv: a", n, 2, bitorder)
    x = as_words(x, "xnor_gemv: x", n, 1, bitorder)
    return _int32_out(_xnor_gemv, a.shape[0], a.shape[1], a, x, n)


# ---------------------------------------------------------------------------------------
# binary convolution


@numba.njit(cache=True, parallel=True)
def _im2col(x, kh, kw, sh, sw, top, left, oh, ow, plus_one, cols):
    # cols[(b*oh + r)*ow + q, (u*kw + v)*cw : ... + cw] = x[b, r*sh - top + u, q*sw - left + v, :],
    # or the all-(+1) words `plus_one` where that tap falls in the padding.
    nb, h, w, cw = x.shape
    for t in numba.prange(nb * oh):
        b = t // oh
        r = t % oh
        for q in range(ow):
            row = cols[t * ow + q]
            for u in range(kh):
                y = r * sh - top + u
                for v in range(kw):
                    z = q * sw - left + v
                    base = (u * kw + v) * cw
                    if 0 <= y < h and 0 <= z < w:
                        for k in range(cw):
                            row[base + k] = x[b, y, z, k]
                    else:
                        for k in range(cw):
                            row[base + k] = plus_one[k]


@numba.njit(cache=True)
def _padding_correction(w, c, h, wd, sh, sw, top, left, oh, ow):
    # corr[r, q, o] = sum over the taps of output (r, q) that fall in the padding of the
    # dot product of those +1 inputs with w[o, tap], i.e. 2 * popcount(w[o, tap]) - c.
    nout, kh, kw, cw = w.shape
    corr = np.zeros((oh, ow, nout), dtype=np.int32)
    for r in range(oh):
        for q in range(ow):
            for u in range(kh):
                y = r * sh - top + u
                for v in range(kw):
                    z = q * sw - left + v
                    if not (0 <= y < h and 0 <= z < wd):
                        for o in range(nout):
                            s = 0
                            for k in range(cw):
                                s += popcount(w[o, u, v, k])
                            corr[r, q, o] += 2 * s - c
    return corr


@numba.njit(cache=True, parallel=True)
def _subtract_correction(out, corr):
    # out: (N, OH, OW, O), corr: (OH, OW, O)
    nb, oh, ow, nout = out.shape
    for t in numba.prange(nb * oh):
        b = t // oh
        r = t % oh
        for q in range(ow):
            for o in range(nout):
                out[b, r, q, o] -= corr[r, q, o]


def _pair(value, what):
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise InputError(f"{what} must be an int or a pair (height, width), got {value!r}")
        return operator.index(value[0]), operator.index(value[1])
    value = operator.index(value)
    return value, value


def conv2d_padding(padding, in_size, kernel_size, stride):
    """Resolve a padding spec to ``((top, bottom), (left, right))`` and the output size.

    Parameters
    ----------
    padding : int, (int, int), 'valid' or 'same'
        An int or ``(ph, pw)`` pads both sides of each axis equally. 'valid' is 0. 'same'
        follows TensorFlow: the output size is ``ceil(in / stride)`` and the total padding
        ``max((out - 1) * stride + k - in, 0)`` is split with the extra row/column at the
        bottom/right.
    in_size, kernel_size, stride : (int, int)

    Returns
    -------
    pads : ((int, int), (int, int))
    out_size : (int, int)
    """
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0), (0, 0))
        elif padding == "same":
            pads = []
            for size, k, s in zip(in_size, kernel_size, stride):
                total = max((-(-size // s) - 1) * s + k - size, 0)
                pads.append((total // 2, total - total // 2))
            pads = tuple(pads)
        else:
            raise InputError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    else:
        ph, pw = _pair(padding, "padding")
        if ph < 0 or pw < 0:
            raise InputError(f"padding must be >= 0, got {padding!r}")
        pads = ((ph, ph), (pw, pw))
    out_size = []
    for size, k, s, (lo, hi) in zip(in_size, kernel_size, stride, pads):
        if size + lo + hi < k:
            raise InputError(
                f"kernel size {tuple(kernel_size)} is larger than the padded input "
                f"{tuple(sz + p0 + p1 for sz, (p0, p1) in zip(in_size, pads))}; pad more or use a smaller kernel"
            )
        out_size.append((size + lo + hi - k) // s + 1)
    return pads, tuple(out_size)


def binary_conv2d(x, w, c, stride=1, padding=0, bitorder="little"):
    """2-D convolution of packed ±1 activations with packed ±1 weights (NHWC, exact int32).

    Computes the cross-correlation used by deep-learning frameworks,
    ``out[b, r, q, o] = sum_{u, v, ch} X[b, r*sh + u - top, q*sw + v - left, ch] * W[o, u, v, ch]``,
    where ``X`` and ``W`` are the ±1 values and **positions in the padding hold 0**, so they
    contribute nothing.

    Parameters
    ----------
    x : numpy.ndarray of uint64, shape (N, H, W, ceil(c / 64))
        Activations, channels packed along the last axis (:func:`bitsim.formats.binary.pack`).
    w : numpy.ndarray of uint64, shape (O, KH, KW, ceil(c / 64))
        Weights, input channels packed along the last axis.
    c : int
        Number of input channels.
    stride : int or (int, int)
    padding : int, (int, int), 'valid' or 'same'
        See :func:`conv2d_padding` ('same' splits odd padding with the extra at the end).
    bitorder : {'little', 'big'}

    Returns
    -------
    numpy.ndarray of int32, shape (N, OH, OW, O)

    Notes
    -----
    Zero padding is not representable in ±1, so the kernel computes the convolution with
    padding positions set to **+1** (as Larq Compute Engine does), by an XNOR GEMM over
    packed im2col patches of length ``KH * KW * c``, and then subtracts, for every output
    position, the exact contribution of its padding taps: the sum over those taps of
    ``sum_ch W[o, u, v, ch] = 2 * popcount(w[o, u, v]) - c``. That correction depends only on
    the output position and the weights, not on the batch item.

    Non-C-contiguous operands are accepted and copied.
    """
    c = as_length(c, "c")
    x = as_words(x, "binary_conv2d: x", c, 4, bitorder)
    w = as_words(w, "binary_conv2d: w", c, 4, bitorder)
    sh, sw = _pair(stride, "stride")
    if sh < 1 or sw < 1:
        raise InputError(f"stride must be >= 1, got {stride!r}")
    nb, h, wd, cw = x.shape
    nout, kh, kw, _ = w.shape
    if kh < 1 or kw < 1:
        raise InputError(f"binary_conv2d: kernel size must be at least 1x1, got w shape {w.shape}")
    ((top, bottom), (left, right)), (oh, ow) = conv2d_padding(padding, (h, wd), (kh, kw), (sh, sw))
    taps = kh * kw * c
    _check_int32(taps, "binary_conv2d")
    out = np.empty((nb, oh, ow, nout), dtype=np.int32)
    if out.size == 0:
        return out
    plus_one = np.full(cw, np.uint64(2**64 - 1), dtype=np.uint64)
    if cw:
        plus_one[-1] = padding_mask(c)
    cols = np.empty((nb * oh * ow, kh * kw * cw), dtype=np.uint64)
    launch(_im2col, cols.size, x, kh, kw, sh, sw, top, left, oh, ow, plus_one, cols, min_work=PARALLEL_MIN_WORK)
    launch(_xnor_gemm, out.size * cols.shape[1], cols, w.reshape(nout, kh * kw * cw), taps, out.reshape(-1, nout),
           min_work=PARALLEL_MIN_WORK)
    if top or bottom or left or right:
        corr = _padding_correction(w, c, h, wd, sh, sw, top, left, oh, ow)
        launch(_subtract_correction, out.size, out, corr, min_work=PARALLEL_MIN_WORK)
    return out


# ---------------------------------------------------------------------------------------
# bit-plane GEMM: unsigned integers against ±1 weights


@numba.njit(cache=True, parallel=True)
def _pack_planes(x, bits, out):
    # out[p, i, k // 64] bit k % 64 = bit p of x[i, k]
    m, kk = x.shape
    for i in numba.prange(m):
        for p in range(bits):
            for word in range(out.shape[2]):
                acc = np.uint64(0)
                for t in range(min(WORD_BITS, kk - word * WORD_BITS)):
                    bit = (np.uint64(x[i, word * WORD_BITS + t]) >> np.uint64(p)) & np.uint64(1)
                    acc |= bit << np.uint64(t)
                out[p, i, word] = acc


@numba.njit(cache=True, inline="always")
def _tile_pair(t, n):
    # rows (or columns) 2t and 2t + 1 of a 2-wide tile; an odd last one pairs with itself (computed twice, harmlessly)
    i0 = 2 * t
    return i0, min(i0 + 1, n - 1)


@numba.njit(cache=True)
def _row_sum(planes, i):
    # sum_k x[i, k] = sum_p 2**p * popcount(plane p of row i)
    s = np.int64(0)
    for p in range(planes.shape[0]):
        c = np.uint64(0)
        for k in range(planes.shape[2]):
            c += popcount(planes[p, i, k])
        s += np.int64(c) << p
    return s


@numba.njit(cache=True, parallel=True)
def _bitplane_gemm(planes, w, out):
    # out[i, j] = sum_p 2**p * (2 * popcount(x_p[i] & w[j]) - popcount(x_p[i]))
    #           = 2 * sum_p 2**p * popcount(x_p[i] & w[j]) - sum_k x[i, k]
    bits, m, nw = planes.shape
    nb = w.shape[0]
    for t in numba.prange((m + 1) // 2):
        i0, i1 = _tile_pair(t, m)
        r0 = _row_sum(planes, i0)
        r1 = _row_sum(planes, i1)
        for u in range((nb + 1) // 2):
            j0, j1 = _tile_pair(u, nb)
            w0, w1 = w[j0], w[j1]
            t00 = t01 = t10 = t11 = np.int64(0)
            for p in range(bits):
                x0, x1 = planes[p, i0], planes[p, i1]
                s00 = s01 = s10 = s11 = np.uint64(0)
                for k in range(nw):
                    s00 += popcount(x0[k] & w0[k])
                    s01 += popcount(x0[k] & w1[k])
                    s10 += popcount(x1[k] & w0[k])
                    s11 += popcount(x1[k] & w1[k])
                t00 += np.int64(s00) << p
                t01 += np.int64(s01) << p
                t10 += np.int64(s10) << p
                t11 += np.int64(s11) << p
            out[i0, j0] = 2 * t00 - r0
            out[i0, j1] = 2 * t01 - r0
            out[i1, j0] = 2 * t10 - r1
            out[i1, j1] = 2 * t11 - r1


def _check_unsigned(x, bits, what):
    x = np.asarray(x)
    if x.dtype not in (np.uint8, np.uint16):
        raise InputTypeError(f"{what}: expected uint8 or uint16 inputs, got {x.dtype}; quantize to unsigned integers first")
    bits = operator.index(bits)
    if not 1 <= bits <= x.dtype.itemsize * 8:
        raise InputError(f"{what}: bits must be in 1..{x.dtype.itemsize * 8} for {x.dtype} inputs, got {bits}")
    if x.ndim != 2:
        raise InputError(f"{what}: expected a 2-D array (M, K), got shape {x.shape}")
    if bits < x.dtype.itemsize * 8 and x.size and int(x.max()) >> bits:
        raise InputError(f"{what}: inputs must be < 2**{bits}, got max {int(x.max())}; raise bits or clip the inputs")
    return np.ascontiguousarray(x), bits


def pack_planes(x, bits=8):
    """Split unsigned integers into bit planes and pack each plane along the last axis.

    Parameters
    ----------
    x : numpy.ndarray of uint8 or uint16, shape (M, K)
        Every value must be below ``2**bits``.
    bits : int
        Number of planes (at most the dtype's width).

    Returns
    -------
    numpy.ndarray of uint64, shape (bits, M, ceil(K / 64))
        ``planes[p, i]`` packs bit ``p`` of ``x[i, :]`` (bit 1 where that bit is set), in the
        packed binary layout (bitorder 'little', padding bits 0).
    """
    x, bits = _check_unsigned(x, bits, "pack_planes")
    out = np.empty((bits, x.shape[0], n_words(x.shape[1])), dtype=np.uint64)
    if out.size:
        launch(_pack_planes, x.size * bits, x, bits, out, min_work=PARALLEL_MIN_WORK)
    return out


def bitplane_gemm_planes(planes, w, n, bitorder="little"):
    """Integer product of pre-packed bit planes with packed ±1 weights (see :func:`bitplane_gemm`).

    Parameters
    ----------
    planes : numpy.ndarray of uint64, shape (bits, M, ceil(n / 64))
        Output of :func:`pack_planes`.
    w : numpy.ndarray of uint64, shape (N, ceil(n / 64))
        Packed ±1 weights.
    n : int
        Reduction length K.
    bitorder : {'little', 'big'}
        Layout of both ``planes`` and ``w``.

    Returns
    -------
    numpy.ndarray of int32, or int64 when ``(2**bits - 1) * n`` exceeds the int32 range; shape (M, N)
    """
    n = as_length(n)
    planes = as_words(planes, "bitplane_gemm: planes", n, 3, bitorder)
    w = as_words(w, "bitplane_gemm: w", n, 2, bitorder)
    bound = (2 ** planes.shape[0] - 1) * n
    if bound > 2**63 - 1:
        raise InputError(f"bitplane_gemm: results up to {bound} do not fit int64; use fewer planes or split n")
    dtype = np.int32 if bound <= INT32_MAX else np.int64
    out = np.empty((planes.shape[1], w.shape[0]), dtype=dtype)
    if out.size:
        launch(_bitplane_gemm, out.size * planes.shape[0] * planes.shape[2], planes, w, out,
               min_work=PARALLEL_MIN_WORK)
    return out


def bitplane_gemm(x, w, n, bits=8, bitorder="little"):
    """Exact integer product ``x @ W.T`` of unsigned inputs with ±1 weights, plane by plane.

    With ``x = sum_p 2**p * x_p`` (``x_p`` the 0/1 bit planes) and a 0/1 vector against ±1
    weights equal to ``2 * popcount(x_p & w) - popcount(x_p)``,
    ``out[i, j] = sum_p 2**p * (2 * popcount(x_p[i] & w[j]) - popcount(x_p[i]))``.

    Parameters
    ----------
    x : numpy.ndarray of uint8 or uint16, shape (M, n)
        Unsigned inputs, each below ``2**bits``.
    w : numpy.ndarray of uint64, shape (N, ceil(n / 64))
        Packed ±1 weights (:func:`bitsim.formats.binary.pack`).
    n : int
        Reduction length; must equal ``x.shape[1]``.
    bits : int
        Number of planes; 1..8 for uint8, 1..16 for uint16.
    bitorder : {'little', 'big'}
        Layout of ``w``.

    Returns
    -------
    numpy.ndarray of int32, or int64 when ``(2**bits - 1) * n`` exceeds the int32 range; shape (M, N)

    See Also
    --------
    pack_planes, bitplane_gemm_planes : pre-pack the inputs once and reuse them.
    """
    n = as_length(n)
    x, bits = _check_unsigned(x, bits, "bitplane_gemm")
    if x.shape[1] != n:
        raise InputError(f"bitplane_gemm: x has {x.shape[1]} columns but n = {n}")
    return bitplane_gemm_planes(pack_planes(x, bits), w, n, bitorder)


# ---------------------------------------------------------------------------------------
# ternary GEMMs


@numba.njit(cache=True, parallel=True)
def _ternary_binary_gemm(ts, tm, b, out):
    # out[i, j] = popcount(m_i) - 2 * popcount(m_i & (s_i ^ b_j))
    m, nw = ts.shape
    nb = b.shape[0]
    for t in numba.prange((m + 1) // 2):
        i0, i1 = _tile_pair(t, m)
        s0, s1, m0, m1 = ts[i0], ts[i1], tm[i0], tm[i1]
        c0 = c1 = np.uint64(0)
        for k in range(nw):
            c0 += popcount(m0[k])
            c1 += popcount(m1[k])
        for u in range((nb + 1) // 2):
            j0, j1 = _tile_pair(u, nb)
            b0, b1 = b[j0], b[j1]
            d00 = d01 = d10 = d11 = np.uint64(0)
            for k in range(nw):
                d00 += popcount(m0[k] & (s0[k] ^ b0[k]))
                d01 += popcount(m0[k] & (s0[k] ^ b1[k]))
                d10 += popcount(m1[k] & (s1[k] ^ b0[k]))
                d11 += popcount(m1[k] & (s1[k] ^ b1[k]))
            out[i0, j0] = np.int64(c0) - 2 * np.int64(d00)
            out[i0, j1] = np.int64(c0) - 2 * np.int64(d01)
            out[i1, j0] = np.int64(c1) - 2 * np.int64(d10)
            out[i1, j1] = np.int64(c1) - 2 * np.int64(d11)


@numba.njit(cache=True, parallel=True)
def _ternary_gemm(sa, ma, sb, mb, out):
    # with m = ma_i & mb_j: out[i, j] = popcount(m) - 2 * popcount(m & (sa_i ^ sb_j))
    m, nw = sa.shape
    nb = sb.shape[0]
    for t in numba.prange((m + 1) // 2):
        i0, i1 = _tile_pair(t, m)
        s0, s1, m0, m1 = sa[i0], sa[i1], ma[i0], ma[i1]
        for j in range(nb):
            y = sb[j]
            n_ = mb[j]
            c0 = c1 = d0 = d1 = np.uint64(0)
            for k in range(nw):
                both0 = m0[k] & n_[k]
                both1 = m1[k] & n_[k]
                c0 += popcount(both0)
                c1 += popcount(both1)
                d0 += popcount(both0 & (s0[k] ^ y[k]))
                d1 += popcount(both1 & (s1[k] ^ y[k]))
            out[i0, j] = np.int64(c0) - 2 * np.int64(d0)
            out[i1, j] = np.int64(c1) - 2 * np.int64(d1)


def ternary_binary_gemm(ts, tm, b, n, bitorder="little"):
    """Product of ternary rows with packed ±1 rows: ``T @ B.T``, T in {-1, 0, +1}, B in {-1, +1}.

    ``out[i, j] = popcount(tm[i]) - 2 * popcount(tm[i] & (ts[i] XOR b[j]))``.

    Parameters
    ----------
    ts, tm : numpy.ndarray of uint64, shape (M, ceil(n / 64))
        Signs and mask planes of the ternary operand (:func:`bitsim.formats.ternary.pack_ternary`);
        sign bits must be a subset of the mask bits.
    b : numpy.ndarray of uint64, shape (N, ceil(n / 64))
        Packed ±1 rows.
    n : int
        Values per row (the reduction length K).
    bitorder : {'little', 'big'}
        Layout of ``ts``, ``tm`` and ``b``.

    Returns
    -------
    numpy.ndarray of int32, shape (M, N)
    """
    n = _int32_length(n, "ternary_binary_gemm")
    ts, tm = as_ternary_planes(ts, tm, "ternary_binary_gemm: t", n, bitorder)
    b = as_words(b, "ternary_binary_gemm: b", n, 2, bitorder)
    return _int32_out(_ternary_binary_gemm, (ts.shape[0], b.shape[0]), ts.shape[1], ts, tm, b)


def ternary_gemm(sa, ma, sb, mb, n, bitorder="little"):
    """Product of two ternary matrices given as packed planes: ``A @ B.T`` with values in {-1, 0, +1}.

    With ``m = ma[i] & mb[j]``: ``out[i, j] = popcount(m) - 2 * popcount(m & (sa[i] XOR sb[j]))``.

    Parameters
    ----------
    sa, ma : numpy.ndarray of uint64, shape (M, ceil(n / 64))
        Signs and mask planes of ``A``.
    sb, mb : numpy.ndarray of uint64, shape (N, ceil(n / 64))
        Signs and mask planes of ``B``.
    n : int
        Values per row (the reduction length K).
    bitorder : {'little', 'big'}
        Layout of all four planes.

    Returns
    -------
    numpy.ndarray of int32, shape (M, N)
    """
    n = _int32_length(n, "ternary_gemm")
    sa, ma = as_ternary_planes(sa, ma, "ternary_gemm: a", n, bitorder)
    sb, mb = as_ternary_planes(sb, mb, "ternary_gemm: b", n, bitorder)
    return _int32_out(_ternary_gemm, (sa.shape[0], sb.shape[0]), 2 * sa.shape[1], sa, ma, sb, mb)


# ---------------------------------------------------------------------------------------
# thresholds -> packed signs


@numba.njit(cache=True, parallel=True)
def _threshold_pack(acc, low, high, out):
    # bit = low[ch] <= acc <= high[ch]; branch-free so that LLVM vectorizes the 64 compares
    m, c = acc.shape
    for i in numba.prange(m):
        row = acc[i]
        for word in range(out.shape[1]):
            first = word * WORD_BITS
            bits = np.uint64(0)
            for t in range(min(WORD_BITS, c - first)):
                v = np.int64(row[first + t])
                inside = (v >= low[first + t]) & (v <= high[first + t])
                bits |= np.uint64(inside) << np.uint64(t)
            out[i, word] = bits


def threshold_pack(acc, thresholds, flip=None):
    """Compare integer accumulators with per-channel thresholds and pack the signs.

    This is what batch normalization followed by sign() folds into at deployment:
    bit = 1 (+1) where ``acc >= thresholds``, or, for channels where ``flip`` is True (negative
    batch-norm scale), where ``acc <= thresholds``.

    Parameters
    ----------
    acc : numpy.ndarray of int32 or int64, shape (..., C)
        Accumulators with channels along the last axis (e.g. the output of :func:`binary_conv2d`).
    thresholds : numpy.ndarray of integers, shape (C,)
        Integer thresholds; round real thresholds first (``ceil(t)`` for ``acc >= t``,
        ``floor(t)`` for ``acc <= t``).
    flip : numpy.ndarray of bool, shape (C,), optional
        Channels compared with ``<=`` instead of ``>=``.

    Returns
    -------
    numpy.ndarray of uint64, shape (..., ceil(C / 64))
        Packed binary layout (bitorder 'little', padding bits 0).
    """
    acc = np.asarray(acc)
    if acc.dtype not in (np.int32, np.int64):
        raise InputTypeError(f"threshold_pack: expected int32 or int64 accumulators, got {acc.dtype}")
    if acc.ndim == 0:
        raise InputError("threshold_pack: expected accumulators of shape (..., C), got a scalar")
    c = acc.shape[-1]
    thresholds = np.asarray(thresholds)
    if thresholds.dtype.kind not in "iu":
        raise InputTypeError(
            f"threshold_pack: expected integer thresholds, got {thresholds.dtype}; "
            "round them first: np.ceil(t) for acc >= t, np.floor(t) for flipped channels (acc <= t)"
        )
    if thresholds.shape != (c,):
        raise InputError(f"threshold_pack: expected {c} thresholds (one per channel), got shape {thresholds.shape}")
    if thresholds.dtype == np.uint64 and thresholds.size and int(thresholds.max()) > 2**63 - 1:
        raise InputError("threshold_pack: thresholds above 2**63 - 1 are not supported")
    if flip is None:
        flip = np.zeros(c, dtype=bool)
    flip = np.asarray(flip)
    if flip.dtype != bool or flip.shape != (c,):
        raise InputError(f"threshold_pack: flip must be a bool array of shape ({c},), got {flip.dtype} {flip.shape}")
    rows = int(np.prod(acc.shape[:-1], dtype=np.int64))
    flat = np.ascontiguousarray(acc.reshape(rows, c))
    out = np.zeros((rows, n_words(c)), dtype=np.uint64)
    if out.size:
        # acc >= t is t <= acc <= INT64_MAX; the flipped acc <= t is INT64_MIN <= acc <= t
        thresholds = thresholds.astype(np.int64)
        low = np.where(flip, np.iinfo(np.int64).min, thresholds)
        high = np.where(flip, thresholds, np.iinfo(np.int64).max)
        launch(_threshold_pack, flat.size, flat, low, high, out, min_work=PACK_MIN_WORK)
    return out.reshape(acc.shape[:-1] + (n_words(c),))
