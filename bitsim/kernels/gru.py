"""The quantized GRU language model over independent streams, on the kernels of :mod:`bitsim.kernels.logfloat`
(``docs/formats.md``, section 9).

:func:`run_gru_lm` codes ``x_t`` and ``h_t`` (log codes, fixed point or float32) and multiplies them with
float32 weights by the rules of :mod:`bitsim.kernels.logfloat` (products by exponent addition for log
codes, float32 products otherwise, float32 sums in ascending ``k`` from ``+0.0``);
:func:`run_fixed_weights` takes fixed-point weights instead (integer products, exact sums, one rounding
to float32). Each stream runs in one jitted step loop; streams are independent, so the bits do not
depend on the number of threads. :mod:`bitsim.reference.gru` is the slow oracle.
"""

import math

import numba
import numpy as np

from ..errors import InputError, InputTypeError, RangeError
from ..formats.fixed import FixedFormat
from ..formats.log import LogFormat
from ..formats.modes import Counts, Underflow
from . import intmatmul
from .bits import bits_of_f32, exp_add, f32_from_bits
from .logfloat import (LOG_ROUNDING, SIGN_BIT, add_float_products, add_log_products, check_fixed_coder,
                       check_log_coder, column_bounds, encode_log, fixed_quantize_one, float_matmul, log_encode_one,
                       log_matmul, log_parts, log_value, quantize_fixed, raise_nonfinite)
from .requantize import ROUNDING_CODES

__all__ = ["run_gru_lm", "x_table", "run_fixed_weights", "MODE_FLOAT", "MODE_LOG", "MODE_FIXED"]

MODE_FLOAT, MODE_LOG, MODE_FIXED = 0, 1, 2


@numba.njit(cache=True)
def _code_vector(v, mode, rnd, bits, frac, scale, codes, values, events):
    """Code float32 ``v`` in float32 (copied) or fixed point (:func:`fixed_quantize_one`) into ``codes`` (the
    stored code) and ``values`` (its exact float32 value); log codes are :func:`_code_log_vector`'s."""
    if mode == MODE_FLOAT:
        for k in range(v.shape[0]):
            values[k] = v[k]
        return
    n = v.shape[0]
    sat = 0
    bad = 0
    inv = 1.0 / scale
    for k in range(n):
        c, ev = fixed_quantize_one(v[k], bits, frac, scale, rnd)
        sat += ev == 1
        bad += ev == 3
        codes[k] = c
        values[k] = np.float32(c * inv)
    events[1] += sat
    events[3] += bad
    events[0] += n - sat - bad


NO_TERM = np.int64(1) << 40  # the product term of a zero code: nothing to add


@numba.njit(cache=True)
def _code_log_vector(v, w, o, rnd, under_sat, codes, values, deltas, flips, events):
    """Log-code float32 ``v`` (:func:`log_encode_one`) into ``codes`` and ``values``, and keep each code's
    product term for :func:`_add_log_terms`: ``deltas[k] = e << 23`` (``NO_TERM`` for a zero code) and
    ``flips[k]`` (the sign bit). Returns ``(emin, emax)``, the range of the nonzero codes' exponents (empty:
    ``emin > emax``)."""
    half = np.int64(1) << (w - 1)
    mask = (half << 1) - 1
    lowest = o - half + 1
    highest = o + half - 1
    emin = NO_TERM
    emax = -NO_TERM
    sat = 0
    low = 0
    bad = 0
    for k in range(v.shape[0]):
        bits = bits_of_f32(v[k])
        biased = (bits >> 23) & 0xFF
        sign = bits >> 31
        e = biased - 127 + ((bits >> 22) & 1)
        if 0 < biased < 0xFF and rnd == 0 and lowest <= e <= highest:  # log_encode_one's common case
            codes[k] = (sign << w) | ((e - o) & mask)
            values[k] = f32_from_bits((sign << 31) | ((e + 127) << 23))
        else:
            c, ev = log_encode_one(v[k], w, o, rnd, under_sat)
            sat += ev == 1
            low += ev == 2
            bad += ev == 3
            codes[k] = c
            values[k] = log_value(c, w, o)
            neg, e, zero = log_parts(c, w, o)
            sign = neg
            if zero:
                deltas[k] = NO_TERM
                flips[k] = 0
                continue
        deltas[k] = e << 23
        flips[k] = SIGN_BIT if sign else 0
        emin = min(emin, e)
        emax = max(emax, e)
    events[1] += sat
    events[2] += low
    events[3] += bad
    events[0] += v.shape[0] - sat - low - bad
    return emin, emax


@numba.njit(cache=True)
def _global_bounds(lo, hi, special):
    """(lowest, highest) exponent field of a whole weight matrix; lowest is 0 when a row holds a zero or subnormal."""
    if lo.shape[0] == 0:
        return np.int64(255), np.int64(0)
    return (np.int64(0) if special.any() else lo.min()), hi.max()


@numba.njit(cache=True)
def _add_log_terms(acc, j0, j1, wbits_t, lo, hi, special, glo, ghi, codes, deltas, flips, emin, emax, w, o, events):
    """:func:`add_log_products` with the terms of :func:`_code_log_vector`: when every exponent field of
    the matrix stays in 1..254 for every code (checked once, from the matrix's bounds and the codes'
    exponent range), one vectorized loop; otherwise :func:`add_log_products`. Both give the rule's bits."""
    if glo + emin < 1 or ghi + emax > 254:
        add_log_products(acc, j0, j1, wbits_t, lo, hi, special, codes, w, o, events)
        return
    a = acc[j0:j1]
    for k in range(codes.shape[0]):
        delta = deltas[k]
        if delta == NO_TERM:
            continue
        flip = flips[k]
        col = wbits_t[k, j0:j1]
        for j in range(a.shape[0]):
            a[j] += exp_add(col[j], delta, flip)


@numba.njit(cache=True)
def _code(v, mode, w, o, rnd, under_sat, bits, frac, scale, codes, values, deltas, flips, events):
    """Code ``v`` in the mode; returns the exponent range of :func:`_code_log_vector` (log) or (0, 0)."""
    if mode == MODE_LOG:
        return _code_log_vector(v, w, o, rnd, under_sat, codes, values, deltas, flips, events)
    _code_vector(v, mode, rnd, bits, frac, scale, codes, values, events)
    return np.int64(0), np.int64(0)


@numba.njit(cache=True)
def _add_products(acc, j0, j1, mode, w_t, wbits_t, lo, hi, special, glo, ghi, codes, values, deltas, flips, erange,
                  w, o, events):
    if mode == MODE_LOG:
        _add_log_terms(acc, j0, j1, wbits_t, lo, hi, special, glo, ghi, codes, deltas, flips, erange[0], erange[1],
                       w, o, events)
    else:
        add_float_products(acc, j0, j1, w_t, values)


@numba.njit(cache=True)
def _first_largest(score):
    """The index of the first largest score (compared with ``>``: a NaN never wins, unless it comes first)."""
    best = 0
    top = score[0]
    for j in range(1, score.shape[0]):
        if score[j] > top:
            top = score[j]
            best = j
    return best


@numba.njit(cache=True)
def _sigmoid(a):
    return np.float32(0.5 + 0.5 * math.tanh(0.5 * np.float64(a)))


@numba.njit(cache=True)
def _tanh(a):
    return np.float32(math.tanh(np.float64(a)))


@numba.njit(cache=True, fastmath=False)
def _run_stream(s, e, ids, starts, lengths, tx, wh_t, whbits_t, wh_lo, wh_hi, wh_special, b, b_hn, before, wf_t,
                wfbits_t, wf_lo, wf_hi, wf_special, bf, mode, w, o, rnd, under_sat, bits, frac, scale, coded_state,
                pred, final):
    hidden = wh_t.shape[0]
    h3 = wh_t.shape[1]
    vocab = wf_t.shape[1]
    one = np.float32(1.0)
    hval = np.zeros(hidden, np.float32)  # the value of the coded state, read by the products
    hcode = np.zeros(hidden, np.int64)
    hst = np.zeros(hidden, np.float32)  # the state read by the element-wise operations
    gval = np.zeros(hidden, np.float32)
    gcode = np.zeros(hidden, np.int64)
    hn = np.zeros(hidden, np.float32)
    newh = np.zeros(hidden, np.float32)
    acc = np.zeros(h3, np.float32)
    score = np.zeros(vocab, np.float32)
    hdelta = np.zeros(hidden, np.int64)
    hflip = np.zeros(hidden, np.int64)
    gdelta = np.zeros(hidden, np.int64)
    gflip = np.zeros(hidden, np.int64)
    wh_glo, wh_ghi = _global_bounds(wh_lo, wh_hi, wh_special)
    wf_glo, wf_ghi = _global_bounds(wf_lo, wf_hi, wf_special)
    hr = _code(hval, mode, w, o, rnd, under_sat, bits, frac, scale, hcode, hval, hdelta, hflip, e)
    for t in range(lengths[s]):
        p = starts[s] + t
        c = ids[p]
        for j in range(h3):
            acc[j] = tx[c, j]
        _add_products(acc, 0, 2 * hidden, mode, wh_t, whbits_t, wh_lo, wh_hi, wh_special, wh_glo, wh_ghi, hcode, hval,
                      hdelta, hflip, hr, w, o, e)
        for j in range(2 * hidden):
            acc[j] = _sigmoid(acc[j] + b[j])
        if before:
            for k in range(hidden):
                gval[k] = hst[k] * acc[k]
            gr = _code(gval, mode, w, o, rnd, under_sat, bits, frac, scale, gcode, gval, gdelta, gflip, e)
            _add_products(acc, 2 * hidden, h3, mode, wh_t, whbits_t, wh_lo, wh_hi, wh_special, wh_glo, wh_ghi, gcode,
                          gval, gdelta, gflip, gr, w, o, e)
            for j in range(hidden):
                acc[2 * hidden + j] = _tanh(acc[2 * hidden + j] + b[2 * hidden + j])
        else:
            for j in range(hidden):
                acc[2 * hidden + j] = 0
            _add_products(acc, 2 * hidden, h3, mode, wh_t, whbits_t, wh_lo, wh_hi, wh_special, wh_glo, wh_ghi, hcode,
                          hval, hdelta, hflip, hr, w, o, e)
            for j in range(hidden):
                hn[j] = acc[2 * hidden + j] + b_hn[j]
                acc[2 * hidden + j] = _tanh((tx[c, 2 * hidden + j] + b[2 * hidden + j]) + acc[j] * hn[j])
        for j in range(hidden):
            z = acc[hidden + j]
            newh[j] = z * hst[j] + (one - z) * acc[2 * hidden + j]
        hr = _code(newh, mode, w, o, rnd, under_sat, bits, frac, scale, hcode, hval, hdelta, hflip, e)
        hst[:] = hval if coded_state else newh
        score[:] = 0
        _add_products(score, 0, vocab, mode, wf_t, wfbits_t, wf_lo, wf_hi, wf_special, wf_glo, wf_ghi, hcode, hval,
                      hdelta, hflip, hr, w, o, e)
        for j in range(vocab):
            score[j] += bf[j]
        pred[p] = _first_largest(score)
    final[s] = hst


@numba.njit(cache=True, parallel=True, fastmath=False)
def _run(ids, starts, lengths, tx, wh_t, whbits_t, wh_lo, wh_hi, wh_special, b, b_hn, before,
         wf_t, wfbits_t, wf_lo, wf_hi, wf_special, bf, mode, w, o, rnd, under_sat, bits, frac, scale,
         coded_state, pred, final, events):
    ev = np.zeros((starts.shape[0], 4), np.int64)
    for s in numba.prange(starts.shape[0]):  # one stream per iteration: the bits do not depend on threads
        _run_stream(s, ev[s], ids, starts, lengths, tx, wh_t, whbits_t, wh_lo, wh_hi, wh_special, b, b_hn, before,
                    wf_t, wfbits_t, wf_lo, wf_hi, wf_special, bf, mode, w, o, rnd, under_sat, bits, frac, scale,
                    coded_state, pred, final)
    events += ev.sum(axis=0)


def _streams(ids, starts, lengths):
    """``ids``, ``starts`` and ``lengths`` as C-contiguous int64 arrays; raises if a stream runs past the text."""
    ids = np.ascontiguousarray(ids, np.int64)
    starts, lengths = np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(lengths, np.int64)
    if len(starts) and (int((starts + lengths).max()) > len(ids) - 1 or int(starts.min()) < 0):
        raise InputError("a stream runs past the text: need 0 <= starts and starts + lengths <= len(ids) - 1")
    return ids, starts, lengths


def _coded_state(state):
    if state not in ("float32", "coded"):
        raise InputError(f"state must be 'float32' (coded only where a matrix product reads it) or 'coded' "
                         f"(stored coded), got {state!r}")
    return state == "coded"


def _mode_args(act):
    """(mode, w, o, rnd, under_sat, bits, frac, scale) of an activation code: None (float32), LogFormat, FixedFormat."""
    if act is None:
        return MODE_FLOAT, 7, 0, 0, False, 16, 0, 1.0
    if isinstance(act, LogFormat):
        check_log_coder(act)
        under_sat = act.underflow is Underflow.SATURATE
        return MODE_LOG, act.exp_bits, act.exp_offset, LOG_ROUNDING[act.rounding], under_sat, 16, 0, 1.0
    check_fixed_coder(act)
    return MODE_FIXED, 7, 0, ROUNDING_CODES[act.rounding], False, act.bits, act.frac_bits, 2.0**act.frac_bits


def run_gru_lm(params, ids, starts, lengths, act=None, x_act=None, counts=None, final=None, state="coded"):
    """Run the GRU language model over independent streams with coded ``x_t`` and ``h_t``; return predictions.

    Per step of a stream, with ``c`` the current character (``docs/formats.md``, section 9):

    1. ``x = code(E[c])``; the x-part of every gate row, ``sum_k Wx[j, k] * x[k]`` from ``+0.0``, is
       the same for every step with character ``c`` and is tabulated once per character (``tx``; the
       same float32 additions in the same order).
    2. Rows r and z: continue each sum with ``Wh[j, k] * h[k]`` (``h`` the coded state), then add
       ``b[j]``; ``r, z = sigmoid(.)``.
    3. ``reset='before'``: ``g = code(h * r)`` (float32 product, then coded); row n continues with
       ``Wh_n[j, k] * g[k]``, adds ``b_n[j]``: ``n = tanh(.)``. ``reset='after'``:
       ``u = (sum_k Wh_n[j, k] * h[k] from +0.0) + b_hn[j]`` and ``n = tanh((xpart + b_n[j]) + r[j] * u)``.
    4. ``h' = code(z * h + (1 - z) * n)`` (float32 element-wise, coded).
    5. Scores ``sum_k Wf[j, k] * h'[k] from +0.0, + bf[j]``; the prediction is the first index of the
       largest score.

    ``sigmoid(a) = float32(0.5 + 0.5 * tanh(0.5 * a))`` and ``tanh`` are evaluated in float64 with the C
    library's ``tanh`` and rounded to float32. Products follow the module's rules: exponent addition
    for log codes, float32 products of exactly decoded values otherwise.

    Parameters
    ----------
    params : dict
        float32 arrays ``E (V, D)``, ``Wx (3H, D)``, ``Wh (3H, H)``, ``b (3H,)``, ``b_hn (H,)`` or None
        (``reset='before'``), ``Wf (V, H)``, ``bf (V,)``; and ``reset``.
    ids : numpy.ndarray of int
        The text as character ids.
    starts, lengths : numpy.ndarray of int64
        Stream ``s`` predicts positions ``starts[s] .. starts[s] + lengths[s] - 1``, starting from ``h = 0``.
    act : None, LogFormat or FixedFormat
        The code of ``h_t`` (and of ``h * r``); None is float32.
    x_act : None, LogFormat or FixedFormat
        The code of ``x_t``; defaults to ``act``. It must be of the same kind as ``act``.
    counts : Counts, optional
        Receives saturated and flushed codes and products.
    final : numpy.ndarray of float32, shape (streams, H), optional
        Receives each stream's last state.
    state : {'coded', 'float32'}
        'coded' (default): the state is stored coded, and the element-wise operations of the next step
        (``h * r``, ``z * h``) read the exact value of its code. 'float32': the state stays float32 for
        the element-wise operations and is coded only where a matrix product reads it.

    Returns
    -------
    numpy.ndarray of int64
        ``pred[p]`` for every position covered by a stream (others are -1).
    """
    x_act = act if x_act is None else x_act
    if type(x_act) is not type(act):
        raise InputError("x_act and act must both be None, both LogFormat or both FixedFormat")
    margs = _mode_args(act)
    ids, starts, lengths = _streams(ids, starts, lengths)
    tx, row_events = x_table(params["E"], params["Wx"], x_act)
    pred = np.full(len(ids), -1, np.int64)
    events = np.zeros(4, np.int64)
    if counts is not None:  # x is coded at every step: count each character's events once per occurrence
        covered = np.zeros(len(ids) + 1, np.int64)
        np.add.at(covered, starts, 1)
        np.add.at(covered, starts + lengths, -1)
        seen = np.bincount(ids[np.cumsum(covered)[:-1] > 0], minlength=len(tx))
        events += (seen[:, None] * row_events).sum(axis=0)
    wh_t = np.ascontiguousarray(np.asarray(params["Wh"], np.float32).T)
    wf_t = np.ascontiguousarray(np.asarray(params["Wf"], np.float32).T)
    hidden = wh_t.shape[0]
    before = params["reset"] == "before"
    b_hn = np.zeros(hidden, np.float32) if before else np.asarray(params["b_hn"], np.float32)
    last = np.empty((len(starts), hidden), np.float32) if final is None else final
    _run(ids, starts, lengths, tx, wh_t, wh_t.view(np.int32), *column_bounds(wh_t),
         np.asarray(params["b"], np.float32), b_hn, before, wf_t, wf_t.view(np.int32), *column_bounds(wf_t),
         np.asarray(params["bf"], np.float32), *margs, _coded_state(state), pred, last, events)
    raise_nonfinite(int(events[3]), act if act is not None else LogFormat())
    if counts is not None:
        counts.saturated += int(events[1])
        counts.flushed += int(events[2])
    return pred


def x_table(emb, wx, x_act):
    """Code every embedding row and tabulate its x-parts: ``tx[c, j] = sum over k ascending of Wx[j, k] * x_c[k]``
    from ``+0.0`` (no bias), and the events (none, saturated, flushed, non-finite) of each row.

    Returns
    -------
    tx : numpy.ndarray of float32, shape (V, 3H)
    events : numpy.ndarray of int64, shape (V, 4)
    """
    emb = np.ascontiguousarray(emb, np.float32)
    wx = np.asarray(wx, np.float32)
    zero = np.zeros(wx.shape[0], np.float32)
    tx = np.empty((emb.shape[0], wx.shape[0]), np.float32)
    events = np.zeros((emb.shape[0], 4), np.int64)
    for c in range(emb.shape[0]):
        n = Counts()
        row = emb[c:c + 1]
        if isinstance(x_act, LogFormat):
            tx[c] = log_matmul(encode_log(row, x_act, n), x_act, wx, zero, n)[0]
        else:
            if isinstance(x_act, FixedFormat):
                row = (quantize_fixed(row, x_act, n).astype(np.float64) * 2.0**-x_act.frac_bits).astype(np.float32)
            tx[c] = float_matmul(row, wx, zero)[0]
        events[c] = (0, n.saturated, n.flushed, 0)
    return tx, events


# ---------------------------------------------------------------------------------------
# fixed-point weights: integer products, exact sums, one rounding to float32


@numba.njit(cache=True)
def _int_products(acc, j0, j1, w_t, q):
    """acc[j] += sum_k w[j, k] * q[k] exactly (int64), j in [j0, j1)."""
    a = acc[j0:j1]
    for k in range(q.shape[0]):
        v = np.int64(q[k])
        if v == 0:
            continue
        col = w_t[k, j0:j1]
        for j in range(a.shape[0]):
            a[j] += np.int64(col[j]) * v


@numba.njit(cache=True)
def _int_to_f32(acc, scale):
    """float32(acc * scale) with ``scale`` a power of two: exact in float64 below 2**53, then one rounding."""
    return np.float32(np.float64(acc) * scale)


@numba.njit(cache=True, fastmath=False)
def _run_int_stream(s, e, ids, starts, lengths, tx, sx, wh_t, sh, bias, sb, b_hn, sbn, top_n, before, wf_t, sf, bf, sbf,
                    fo, big, bits, frac, scale, rnd, coded_state, pred, final):
    hidden = wh_t.shape[0]
    h3 = wh_t.shape[1]
    vocab = wf_t.shape[1]
    one = np.float32(1.0)
    inv_big = 2.0 ** -big
    inv_top = 2.0 ** -top_n
    inv_fo = 2.0 ** -fo
    hq = np.zeros(hidden, np.int64)
    hv = np.zeros(hidden, np.float32)
    hst = np.zeros(hidden, np.float32)
    gq = np.zeros(hidden, np.int64)
    gv = np.zeros(hidden, np.float32)
    newh = np.zeros(hidden, np.float32)
    acc = np.zeros(h3, np.int64)
    gate = np.zeros(h3, np.float32)
    score = np.zeros(vocab, np.int64)
    scored = np.zeros(vocab, np.float32)
    for t in range(lengths[s]):
        p = starts[s] + t
        c = ids[p]
        acc[:] = 0
        _int_products(acc, 0, 2 * hidden, wh_t, hq)
        for j in range(2 * hidden):
            total = (tx[c, j] << sx) + (acc[j] << sh) + (bias[j] << sb)
            gate[j] = _sigmoid(_int_to_f32(total, inv_big))
        if before:
            for k in range(hidden):
                gv[k] = hst[k] * gate[k]
            _code_vector(gv, MODE_FIXED, rnd, bits, frac, scale, gq, gv, e)
            _int_products(acc, 2 * hidden, h3, wh_t, gq)
            for j in range(hidden):
                jj = 2 * hidden + j
                total = (tx[c, jj] << sx) + (acc[jj] << sh) + (bias[jj] << sb)
                gate[jj] = _tanh(_int_to_f32(total, inv_big))
        else:
            _int_products(acc, 2 * hidden, h3, wh_t, hq)
            for j in range(hidden):
                jj = 2 * hidden + j
                xn = _int_to_f32((tx[c, jj] << sx) + (bias[jj] << sb), inv_big)
                u = _int_to_f32((acc[jj] << (top_n - (big - sh))) + (b_hn[j] << sbn), inv_top)
                gate[jj] = _tanh(xn + gate[j] * u)
        for j in range(hidden):
            z = gate[hidden + j]
            newh[j] = z * hst[j] + (one - z) * gate[2 * hidden + j]
        _code_vector(newh, MODE_FIXED, rnd, bits, frac, scale, hq, hv, e)
        hst[:] = hv if coded_state else newh
        score[:] = 0
        _int_products(score, 0, vocab, wf_t, hq)
        for j in range(vocab):
            scored[j] = _int_to_f32((score[j] << sf) + (bf[j] << sbf), inv_fo)
        pred[p] = _first_largest(scored)
    final[s] = hst


@numba.njit(cache=True, parallel=True, fastmath=False)
def _run_int(ids, starts, lengths, tx, sx, wh_t, sh, bias, sb, b_hn, sbn, top_n, before, wf_t, sf, bf, sbf, fo,
             big, bits, frac, scale, rnd, coded_state, pred, final, events):
    ev = np.zeros((starts.shape[0], 4), np.int64)
    for s in numba.prange(starts.shape[0]):  # one stream per iteration: the bits do not depend on threads
        _run_int_stream(s, ev[s], ids, starts, lengths, tx, sx, wh_t, sh, bias, sb, b_hn, sbn, top_n, before, wf_t, sf,
                        bf, sbf, fo, big, bits, frac, scale, rnd, coded_state, pred, final)
    events += ev.sum(axis=0)


def run_fixed_weights(codes, fmts, reset, ids, starts, lengths, act, x_act=None, counts=None, final=None,
                      state="coded"):
    """The GRU language model with fixed-point weights and activations: integer products, exact sums.

    The rules of :func:`run_gru_lm`, except for the products and sums: every sum of products is the exact
    integer ``sum_k w[j, k] * q[k]`` of the codes (int64; the x-parts of all characters come from
    :func:`bitsim.kernels.intmatmul.matmul`), the pieces of a pre-activation (x-part, h-part and bias) are
    aligned to the largest of their fractional bit counts ``F`` by exact left shifts and added as
    integers, and the total is rounded once to float32: ``float32(acc * 2**-F)``, exact in float64 (the
    formats are checked to keep ``|acc|`` below ``2**52``) and then rounded to nearest even. The
    element-wise work (gates, ``h * r``, the update) is float32 as in :func:`run_gru_lm`. With
    ``reset='after'``, ``xpart + b_n`` and ``Wh_n h + b_hn`` are each rounded to float32 before
    ``(xpart + b_n) + r * u``. The streams run in the same jitted step loop structure as :func:`run_gru_lm`.

    Parameters
    ----------
    codes, fmts : dict
        Fixed-point codes and formats of ``E`` (in ``x_act``'s format), ``Wx``, ``Wh``, ``b``, ``b_hn``
        (``reset='after'``), ``Wf``, ``bf``.
    reset : {'before', 'after'}
    ids, starts, lengths, act, x_act, counts, final, state
        As in :func:`run_gru_lm`; ``act`` and ``x_act`` are FixedFormats.

    Returns
    -------
    numpy.ndarray of int64
    """
    x_act = act if x_act is None else x_act
    if not isinstance(act, FixedFormat) or not isinstance(x_act, FixedFormat):
        raise InputTypeError("run_fixed_weights takes fixed-point activation formats (FixedFormat)")
    check_fixed_coder(act)
    if fmts["E"] != x_act:
        raise InputError("the embedding must be coded in the format of x_t")
    ids, starts, lengths = _streams(ids, starts, lengths)
    hidden = codes["Wh"].shape[1]
    fh, fx = act.frac_bits, x_act.frac_bits
    fwx, fwh, fb = fmts["Wx"].frac_bits, fmts["Wh"].frac_bits, fmts["b"].frac_bits
    big = max(fx + fwx, fh + fwh, fb)
    fwf, fbf = fmts["Wf"].frac_bits, fmts["bf"].frac_bits
    fo = max(fh + fwf, fbf)
    before = reset == "before"
    fbn = fh + fwh if before else fmts["b_hn"].frac_bits
    top_n = max(fh + fwh, fbn)
    b_hn = np.zeros(hidden, np.int64) if before else np.asarray(codes["b_hn"], np.int64)
    # the x-part of every character: exact int64 sums from the integer GEMM kernel
    tx = intmatmul.matmul(np.ascontiguousarray(codes["E"]), x_act, np.ascontiguousarray(codes["Wx"]), fmts["Wx"],
                       acc_dtype=np.int64)
    wh_t = np.ascontiguousarray(np.asarray(codes["Wh"], np.int32).T)
    wf_t = np.ascontiguousarray(np.asarray(codes["Wf"], np.int32).T)
    n_in = codes["Wx"].shape[1]
    bound = lambda q, w, k: k * (1 << (q.bits - 1)) * (1 << (w.bits - 1))  # noqa: E731  (largest |sum|)
    for value, shift in ((bound(x_act, fmts["Wx"], n_in), big - fx - fwx),
                         (bound(act, fmts["Wh"], hidden), big - fh - fwh),
                         (1 << (fmts["b"].bits - 1), big - fb), (bound(act, fmts["Wf"], hidden), fo - fh - fwf)):
        if value.bit_length() + shift > 52:
            raise RangeError("these formats give accumulators beyond 2**52 once aligned; use fewer fractional bits")
    pred = np.full(len(ids), -1, np.int64)
    last = np.empty((len(starts), hidden), np.float32) if final is None else final
    events = np.zeros(4, np.int64)
    _run_int(ids, starts, lengths, tx, big - fx - fwx, wh_t, big - fh - fwh, np.asarray(codes["b"], np.int64),
             big - fb, b_hn, top_n - fbn, top_n, before, wf_t, fo - fh - fwf, np.asarray(codes["bf"], np.int64),
             fo - fbf, fo, big, act.bits, act.frac_bits, 2.0**act.frac_bits, ROUNDING_CODES[act.rounding],
             _coded_state(state), pred, last, events)
    if counts is not None:
        counts.saturated += int(events[1])
    return pred
