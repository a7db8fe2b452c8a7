"""Shift-add GEMM: log-coded (sign, exponent) operands times fixed-point codes, no multiplier.

The arithmetic rule, shared by :func:`fixed_log_matmul` and its mirror :func:`log_fixed_matmul`:

* a fixed-point code ``x`` with ``x_frac`` fractional bits meets a log code with sign ``s``
  and exponent ``e`` (:func:`bitsim.formats.log.split`); with ``acc_frac`` fractional bits
  in the accumulator, the shift is ``t = e + acc_frac - x_frac``;
* the term is ``(-1)**s * shift(x, t)``: ``shift(x, t) = x << t`` when ``t >= 0`` (exact);
  when ``t < 0`` it is ``x / 2**-t`` rounded by the rounding mode's rule of
  :func:`bitsim.formats.fixed.rshift_round` (FLOOR: the arithmetic shift ``x >> -t`` of a
  barrel shifter). The sign is applied **after** the shift: ``-floor(q) != floor(-q)``;
* a zero log code (either sign) contributes 0;
* the sum over K is exact (int64); ``acc_dtype=int32`` saturates it to int32, counted in
  ``Counts.saturated`` (a wrapping 32-bit hardware accumulator gives the same answer
  whenever the exact sum fits).

Implementation (not part of the rule): the fast kernel vectorizes over the rows of the
fixed-point operand, so that one log code gives one shift amount for a whole vector, and
computes ``(-1)**s * round(x * 2**t)`` as ``(y + b) >> s'`` with ``y = x << c`` or its
bitwise complement ``~y = -y - 1`` (negative codes), a per-code bias ``b`` and shift
``s' = c - t``: for FLOOR ``b = 0`` / ``2**s'``, NEAREST_UP ``b = 2**(s'-1)`` / same, CEIL
``b = 2**s' - 1`` / ``1`` (positive / negative code), since ``-floor(z / 2**s') ==
floor((~z + 2**s') / 2**s')``. Lanes are int16 or int32 when the largest ``|x|`` and
shifts prove that no lane and no partial sum over a K-block can overflow (block sums are
added in int64), else int64. The other deterministic modes (TOWARD_ZERO, NEAREST_EVEN,
NEAREST_AWAY) run an exact int64 per-term kernel. The inner tile (8 vectors of lanes, one
broadcast bias and shift amount per code, accumulators in registers) is written in generic
LLVM vector IR (:func:`_shift_tile`): an arithmetic shift by a uniform amount
(``vpsraw``/``vpsrad`` on x86), no multiplier. Slow oracles live in
:mod:`bitsim.reference.shift`.
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ..errors import InputError, InputTypeError, RangeError
from ..formats.log import LogFormat, split
from ..formats.launch import launch
from ..formats.modes import Rounding, parse_enum
from .operands import FIXED_DTYPES, as_acc_dtype, as_codes, check_k
from .requantize import ROUNDING_CODES, rshift_round, saturate_int32

__all__ = ["fixed_log_matmul", "log_fixed_matmul", "shift_bound"]

INT64_MAX = 2**63 - 1
PARALLEL_MIN_WORK = 2**18  # work below which a kernel runs on the calling thread
BIAS_MODES = (Rounding.FLOOR, Rounding.CEIL, Rounding.NEAREST_UP)
MB = 128  # fixed-point rows per block: a multiple of every lane type's tile width (128 int16 lanes)
V = 8  # 256-bit vectors per tile, accumulated in registers
KB = 64  # K-block: the rows of y and ~y a tile reads (2 * KB * MB int16 = 32 KiB) stay near L1
NB = 64  # log rows per output tile (NB * MB int64 = 64 KiB, in L2)
BLOCK_MIN = 8  # shorter safe K-blocks move the kernel to wider lanes
LANES = ((np.int16, 16), (np.int32, 32), (np.int64, 64))


# ---------------------------------------------------------------------------------------
# fast kernel: lanes over the fixed-point rows
#
# xx[t] holds, for the fixed-point rows t*MB .. t*MB+MB-1 (zero padded): y^T (K rows of MB
# lanes), then (~y)^T (K rows), then one row of zeros. Row j + roff[c] of xx[t] (or the zero
# row when roff[c] < 0) is the lane vector that a log code c reads at column j.


@intrinsic
def _shift_tile(typingctx, block, codes, roff, bias, shift, k0, k1, zrow, l0, acc):
    """acc[:V*L] = sum over j in [k0, k1) of (block[row, l0 : l0 + V*L] + bias[c]) >> shift[c].

    ``c = codes[j]``, ``row = j + roff[c]``, or ``zrow`` when ``roff[c] < 0``; L lanes per
    256-bit vector. Written in generic LLVM vector IR so that the V accumulators stay in
    registers across k (a uniform shift per code: vpsraw/vpsrad on x86).
    """
    sig = types.void(block, codes, roff, bias, shift, types.intp, types.intp, types.intp, types.intp, acc)

    def codegen(context, builder, signature, args):
        blk_v, codes_v, roff_v, bias_v, shift_v, k0_v, k1_v, zrow_v, l0_v, acc_v = args
        arrays = [context.make_array(t)(context, builder, v) for t, v in zip(signature.args, args) if
                  isinstance(t, types.Array)]
        blk, cr, ro, bi, sh, out = arrays
        i32, i64 = ir.IntType(32), ir.IntType(64)
        lane_t = context.get_value_type(signature.args[0].dtype)
        width = lane_t.width // 8
        lanes = 32 // width
        vec = ir.VectorType(lane_t, lanes)
        zeros = ir.Constant(ir.VectorType(i32, lanes), None)

        def splat(value):
            one = builder.insert_element(ir.Constant(vec, None), value, ir.Constant(i32, 0))
            return builder.shuffle_vector(one, one, zeros)

        ld = builder.extract_value(blk.strides, 0)
        base = builder.add(builder.ptrtoint(blk.data, i64), builder.mul(l0_v, ir.Constant(i64, width)))
        accs = [cgutils.alloca_once_value(builder, ir.Constant(vec, None)) for _ in range(V)]
        with cgutils.for_range(builder, builder.sub(k1_v, k0_v)) as loop:
            j = builder.add(k0_v, loop.index)
            c = builder.zext(builder.load(builder.gep(cr.data, [j])), i64)
            off = builder.load(builder.gep(ro.data, [c]))
            row = builder.select(builder.icmp_signed(">=", off, ir.Constant(i64, 0)), builder.add(j, off), zrow_v)
            b = splat(builder.load(builder.gep(bi.data, [c])))
            s = splat(builder.load(builder.gep(sh.data, [c])))
            at = builder.add(base, builder.mul(row, ld))
            for v in range(V):
                y = builder.load(builder.inttoptr(builder.add(at, ir.Constant(i64, 32 * v)), vec.as_pointer()),
                                 align=width)
                builder.store(builder.add(builder.load(accs[v]), builder.ashr(builder.add(y, b), s)), accs[v])
        dst = builder.ptrtoint(out.data, i64)
        for v in range(V):
            builder.store(builder.load(accs[v]), builder.inttoptr(builder.add(dst, ir.Constant(i64, 32 * v)),
                                                                  vec.as_pointer()), align=width)
        return context.get_dummy_value()

    return sig, codegen


def _make_lanes(lane):
    w = V * 32 // np.dtype(lane).itemsize  # lanes per tile

    @numba.njit(cache=True, parallel=True)
    def kernel(xx, codes, roff, bias, shift, kb, mf, out, transpose):
        k = codes.shape[1]
        nl = codes.shape[0]
        for t in numba.prange(xx.shape[0]):
            m0 = t * MB
            valid = min(MB, mf - m0)
            block = xx[t]
            acc = np.empty(w, lane)
            tile = np.empty((NB, MB), np.int64)
            for n0 in range(0, nl, NB):
                n1 = min(n0 + NB, nl)
                tile[:] = 0
                for k0 in range(0, k, kb):
                    k1 = min(k0 + kb, k)
                    for n in range(n0, n1):
                        tr = tile[n - n0]
                        for l0 in range(0, MB, w):
                            _shift_tile(block, codes[n], roff, bias, shift, k0, k1, 2 * k, l0, acc)
                            for i in range(w):
                                tr[l0 + i] += acc[i]
                if transpose:
                    for i in range(valid):
                        orow = out[m0 + i]
                        for n in range(n0, n1):
                            orow[n] = tile[n - n0, i]
                else:
                    for n in range(n0, n1):
                        out[n, m0 : m0 + valid] = tile[n - n0, :valid]

    return kernel


_lanes16 = _make_lanes(np.int16)
_lanes32 = _make_lanes(np.int32)
_lanes64 = _make_lanes(np.int64)
_KERNELS = {np.int16: _lanes16, np.int32: _lanes32, np.int64: _lanes64}


@numba.njit(cache=True, parallel=True)
def _pack(x, c, xx):
    """Fill the blocks of xx (see above) from x (M, K): y = x << c."""
    m, k = x.shape
    for t in numba.prange(xx.shape[0]):
        block = xx[t]
        for i in range(t * MB, min(t * MB + MB, m)):
            r = x[i]
            lane = i - t * MB
            for j in range(k):
                v = np.int64(r[j]) << c
                block[j, lane] = v
                block[k + j, lane] = ~v


# ---------------------------------------------------------------------------------------
# exact per-term kernel (every deterministic mode; int64 lanes)


@numba.njit(cache=True)
def _round_shift(x, t, mode):
    """round(x * 2**t) for int64 x: exact left shift, or the rshift_round rule of ``mode``."""
    if t >= 0:
        return x << t
    return rshift_round(x, min(-t, 63), mode)


@numba.njit(cache=True, parallel=True)
def _exact(x, codes, neg, amount, zero, mode, out, transpose):
    mf, k = x.shape
    nl = codes.shape[0]
    for n in numba.prange(nl):
        cr = codes[n]
        for i in range(mf):
            xr = x[i]
            s = np.int64(0)
            for j in range(k):
                c = cr[j]
                if zero[c]:
                    continue
                v = _round_shift(np.int64(xr[j]), amount[c], mode)
                s += -v if neg[c] else v
            if transpose:
                out[i, n] = s
            else:
                out[n, i] = s


# ---------------------------------------------------------------------------------------
# wrappers


def _fixed_codes(x, name):
    return as_codes(x, name, FIXED_DTYPES, "int8, int16 or int32 fixed-point codes",
                    "quantize with bitsim.formats.fixed.quantize(...)")


def _log_codes(codes, fmt, name):
    if not isinstance(fmt, LogFormat):
        raise InputTypeError(f"{name} format must be a bitsim.formats.log.LogFormat, got {type(fmt).__name__}")
    codes = as_codes(codes, name, (np.uint8,), "uint8 log codes", "encode with bitsim.formats.log.encode(x, fmt)",
                     "a 2-D array of log codes (rows, K)")
    if codes.size and int(codes.max()) >> fmt.bits:
        raise InputError(
            f"{name}: code {int(codes.max())} does not fit the {fmt.bits}-bit {fmt.name} code; "
            "encode with the same LogFormat"
        )
    return codes


def _frac(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputTypeError(f"{name} must be an integer number of fractional bits, got {value!r}")
    return int(value)


def shift_bound(x_dtype, k, t_max):
    """Largest possible ``|sum|`` of K terms of codes of ``x_dtype`` shifted by at most ``t_max``.

    A term is at most ``2**(bits - 1) * 2**max(t_max, 0)`` in magnitude (``bits`` of the
    container), so the sum is at most ``k`` times that.
    """
    bits = np.dtype(x_dtype).itemsize * 8
    return k * (1 << (bits - 1 + max(t_max, 0)))


def _core(fixed, fixed_frac, codes, fmt, acc_frac, rounding, name, transpose):
    """Exact int64 sums, shaped (log rows, fixed rows), or the transpose."""
    k = fixed.shape[1]
    nl, mf = codes.shape[0], fixed.shape[0]
    out = np.zeros((mf, nl) if transpose else (nl, mf), dtype=np.int64)
    if out.size == 0 or k == 0:
        return out
    sign, exponent, zero = split(np.arange(1 << fmt.bits, dtype=np.uint8), fmt)
    amount = exponent.astype(np.int64) + acc_frac - fixed_frac
    present = np.bincount(codes.reshape(-1), minlength=1 << fmt.bits) > 0
    live = present & ~zero
    t_max = int(amount[live].max()) if live.any() else 0
    if shift_bound(fixed.dtype, k, t_max) > INT64_MAX:
        raise RangeError(
            f"{name}: a {fixed.dtype} code shifted left by {t_max} bits, summed over K={k}, can overflow int64; "
            f"lower acc_frac (now {acc_frac}) or use a LogFormat with a smaller exp_offset/exp_bits so that "
            f"(container bits - 1) + (emax + acc_frac - x_frac) + log2(K) < 63"
        )
    fixed = fixed.astype(np.int32, copy=False)  # holds every container; one compiled kernel each
    mode = ROUNDING_CODES[rounding]
    c = max(t_max, 0)
    exact = rounding not in BIAS_MODES
    if not exact:
        x_max = launch(_max_abs, fixed.size, fixed, min_work=PARALLEL_MIN_WORK)
        y_bits = max(int(x_max) << c, 1).bit_length() + 1  # |y| <= 2**(y_bits - 1)
        exact = y_bits > 60  # no lane type holds y + b
    if exact:
        zero_flags = (zero | ~present).astype(np.uint8)
        launch(_exact, out.size * k, fixed, codes, sign.astype(np.uint8), amount, zero_flags, mode, out, transpose,
               min_work=PARALLEL_MIN_WORK)
        return out
    clip = y_bits + 1  # shifts beyond this give the same result as this one (and must be < the lane width)
    s = np.where(live, np.clip(c - amount, 0, clip), 0)
    half = np.where(s > 0, np.left_shift(1, np.maximum(s - 1, 0), dtype=np.int64), 0)
    full = np.left_shift(1, s, dtype=np.int64)
    b = {Rounding.FLOOR: np.zeros_like(s), Rounding.CEIL: full - 1, Rounding.NEAREST_UP: half}[rounding]
    negative = sign.astype(bool)
    b = np.where(live, np.where(negative, full - b, b), 0)
    y_max = (1 << (y_bits - 1)) + 1  # bounds |y| and |~y|
    reach = int((y_max + b[live]).max()) if live.any() else y_max  # bounds |y + b| in a lane
    term = int((((y_max + b) >> s) + 1)[live].max()) if live.any() else 1  # bounds |(y + b) >> s|
    for lane, bits in LANES:
        kb = min(k, KB, ((1 << (bits - 1)) - 1) // term)
        if clip < bits and reach < 1 << (bits - 1) and (kb >= BLOCK_MIN or kb == k):
            break
    roff = np.where(live, np.where(negative, k, 0), -1).astype(np.int64)
    xx = np.zeros(((mf + MB - 1) // MB, 2 * k + 1, MB), dtype=lane)
    launch(_pack, fixed.size, fixed, c, xx, min_work=PARALLEL_MIN_WORK)
    launch(_KERNELS[lane], out.size * k, xx, codes, roff, b.astype(lane), s.astype(lane), kb, mf, out, transpose,
           min_work=PARALLEL_MIN_WORK, tasks=True)
    return out


@numba.njit(cache=True, parallel=True)
def _max_abs(x):
    m = x.shape[0]
    big = np.zeros(m, np.int64)
    for i in numba.prange(m):
        r = x[i]
        v = np.int64(0)
        for j in range(r.shape[0]):
            v = max(v, abs(np.int64(r[j])))
        big[i] = v
    return big.max() if m else 0


def _finish(sums, acc_dtype, counts):
    if acc_dtype == np.int64:
        return sums
    return saturate_int32(sums, counts)


def _options(acc_frac, default, rounding, acc_dtype):
    acc_frac = default if acc_frac is None else _frac(acc_frac, "acc_frac")
    rounding = parse_enum(Rounding, rounding)
    if rounding is Rounding.STOCHASTIC:
        raise InputError(
            "stochastic rounding of shifted terms is not supported; choose 'floor' (a barrel shifter), "
            "'nearest_up' (add half, then shift) or another deterministic mode"
        )
    return acc_frac, rounding, as_acc_dtype(acc_dtype)


def fixed_log_matmul(x, x_frac, w, w_fmt, *, acc_frac=None, rounding="floor", acc_dtype=np.int32, counts=None):
    """Shift-add product of fixed-point activations and log-coded weights, ``X @ W.T``.

    ``out[m, n] = sum_k (-1)**s[n, k] * shift(x[m, k], e[n, k] + acc_frac - x_frac)`` where
    ``(s, e)`` are the sign and exponent of ``w[n, k]`` (:func:`bitsim.formats.log.split`):

    * ``shift(x, t) = x << t`` for ``t >= 0`` (exact), else ``x * 2**t`` rounded by
      ``rounding`` with the rule of :func:`bitsim.formats.fixed.rshift_round` on the exact
      quotient (FLOOR is the arithmetic right shift ``x >> -t``; NEAREST_UP adds half an LSB
      first; shifts beyond the code width give the mode's limit, e.g. 0 or -1 for FLOOR);
    * the weight's sign is applied after shifting and rounding: the term is
      ``-shift(x, t)``, not ``shift(-x, t)``;
    * zero codes (either sign) contribute 0;
    * the sum over K is exact in int64; ``acc_dtype=int32`` saturates it (counted in
      ``counts.saturated``; a wrapping 32-bit accumulator agrees whenever the sum fits).

    Parameters
    ----------
    x : numpy.ndarray of int8, int16 or int32, shape (M, K)
        Fixed-point codes with ``x_frac`` fractional bits.
    x_frac : int
    w : numpy.ndarray of uint8, shape (N, K)
        Log codes of ``w_fmt``, one row per output column (a weight matrix (out, in)).
    w_fmt : LogFormat
    acc_frac : int, optional
        Fractional bits of the accumulator; default ``x_frac``.
    rounding : Rounding or str
        Rounding of right shifts: 'floor' (default), 'nearest_up' and 'ceil' run the fast
        kernel; 'toward_zero', 'nearest_even', 'nearest_away' an exact per-term kernel.
        'stochastic' is rejected.
    acc_dtype : {numpy.int32, numpy.int64}
    counts : Counts, optional
        Receives int32 saturations.

    Returns
    -------
    numpy.ndarray of ``acc_dtype``, shape (M, N), with ``acc_frac`` fractional bits.

    Raises
    ------
    TypeError
        Wrong dtypes, non-integer bit counts, or a format that is not a LogFormat.
    ValueError
        Wrong shapes, codes that do not fit ``w_fmt``, stochastic rounding.
    OverflowError
        When a left shift could overflow int64: checked up front from the container of ``x``
        and the largest shift among the nonzero codes present, ``K * 2**(bits(x.dtype) - 1 +
        max(t_max, 0)) <= 2**63 - 1``. Choosing formats with ``(bits(x.dtype) - 1) +
        (w_fmt.emax + acc_frac - x_frac) + log2(K) < 63`` guarantees it for any codes.

    Examples
    --------
    >>> from bitsim.formats.log import encode
    >>> w = encode(np.array([[0.5, -0.25]], dtype=np.float32))     # 2**-1, -2**-2
    >>> x = np.array([[3, 5]], dtype=np.int8)                      # x_frac = 0
    >>> fixed_log_matmul(x, 0, w, LogFormat())                     # (3 >> 1) - (5 >> 2)
    array([[0]], dtype=int32)
    >>> fixed_log_matmul(x, 0, w, LogFormat(), acc_frac=2)         # 3*2 - 5*1
    array([[1]], dtype=int32)
    """
    x_frac = _frac(x_frac, "x_frac")
    acc_frac, rounding, acc_dtype = _options(acc_frac, x_frac, rounding, acc_dtype)
    x = _fixed_codes(x, "fixed_log_matmul: x")
    w = _log_codes(w, w_fmt, "fixed_log_matmul: w")
    check_k("fixed_log_matmul", x, w)
    sums = _core(x, x_frac, w, w_fmt, acc_frac, rounding, "fixed_log_matmul", True)
    return _finish(sums, acc_dtype, counts)


def log_fixed_matmul(a, a_fmt, w, w_frac, *, acc_frac=None, rounding="floor", acc_dtype=np.int32, counts=None):
    """Shift-add product of log-coded activations and fixed-point weights, ``A @ W.T``.

    The mirror of :func:`fixed_log_matmul` (e.g. the weight gradient ``dW = delta^T x_log``
    of quantized back-propagation, with ``a = x_log^T`` and ``w = delta^T``):
    ``out[m, n] = sum_k (-1)**s[m, k] * shift(w[n, k], e[m, k] + acc_frac - w_frac)`` with
    ``(s, e)`` the sign and exponent of ``a[m, k]``, and every rule of
    :func:`fixed_log_matmul` (rounding of right shifts, sign after shifting, zero codes,
    exact int64 sum, int32 saturation counted, int64 overflow check).

    Parameters
    ----------
    a : numpy.ndarray of uint8, shape (M, K)
        Log codes of ``a_fmt``.
    a_fmt : LogFormat
    w : numpy.ndarray of int8, int16 or int32, shape (N, K)
        Fixed-point codes with ``w_frac`` fractional bits.
    w_frac : int
    acc_frac : int, optional
        Default ``w_frac``.
    rounding, acc_dtype, counts
        As in :func:`fixed_log_matmul`.

    Returns
    -------
    numpy.ndarray of ``acc_dtype``, shape (M, N)

    Examples
    --------
    >>> from bitsim.formats.log import encode
    >>> a = encode(np.array([[0.5, -0.25]], dtype=np.float32))
    >>> log_fixed_matmul(a, LogFormat(), np.array([[3, 5]], dtype=np.int8), 0, acc_frac=2)
    array([[1]], dtype=int32)
    """
    w_frac = _frac(w_frac, "w_frac")
    acc_frac, rounding, acc_dtype = _options(acc_frac, w_frac, rounding, acc_dtype)
    a = _log_codes(a, a_fmt, "log_fixed_matmul: a")
    w = _fixed_codes(w, "log_fixed_matmul: w")
    check_k("log_fixed_matmul", a, w, ("a", "w"), "")
    sums = _core(w, w_frac, a, a_fmt, acc_frac, rounding, "log_fixed_matmul", False)
    return _finish(sums, acc_dtype, counts)
