"""Slow, obvious oracles of :mod:`bitsim.kernels.logfloat` and of the quantized GRU language model of
:mod:`bitsim.kernels.gru`.

Everything is computed one scalar at a time with NumPy float32 scalars (each operation rounded to
float32), products by exponent addition through :func:`bitsim.formats.log.multiply_float32`, codes
through :func:`bitsim.formats.log.encode` and :func:`bitsim.formats.fixed.quantize`, and integer
sums through Python ints. No tabulation and no skipping: every product is added in the stated order.
"""

import math

import numpy as np

from ..errors import RangeError
from ..formats import fixed, log
from ..formats.log import LogFormat

F32 = np.float32


def log_matmul(codes, fmt, w, bias=None, counts=None):
    """``out[i, j] = (sum over k ascending of multiply_float32(w[j, k], codes[i, k])) + bias[j]``, from +0.0."""
    codes, w = np.asarray(codes), np.asarray(w, F32)
    bias = np.zeros(w.shape[0], F32) if bias is None else np.asarray(bias, F32)
    out = np.empty((codes.shape[0], w.shape[0]), F32)
    for i in range(codes.shape[0]):
        for j in range(w.shape[0]):
            acc = F32(0.0)
            for k in range(w.shape[1]):
                acc = F32(acc + log.multiply_float32(w[j, k], codes[i, k], fmt, counts)[()])
            out[i, j] = F32(acc + bias[j])
    return out


def float_matmul(x, w, bias=None):
    """``out[i, j] = (sum over k ascending of float32(w[j, k] * x[i, k])) + bias[j]``, from +0.0."""
    x, w = np.asarray(x, F32), np.asarray(w, F32)
    bias = np.zeros(w.shape[0], F32) if bias is None else np.asarray(bias, F32)
    out = np.empty((x.shape[0], w.shape[0]), F32)
    for i in range(x.shape[0]):
        for j in range(w.shape[0]):
            acc = F32(0.0)
            for k in range(w.shape[1]):
                acc = F32(acc + F32(w[j, k] * x[i, k]))
            out[i, j] = F32(acc + bias[j])
    return out


def sigmoid(a):
    """``float32(0.5 + 0.5 * tanh(0.5 * a))`` evaluated in float64."""
    return F32(0.5 + 0.5 * math.tanh(0.5 * float(a)))


def tanh(a):
    """``float32(tanh(a))`` evaluated in float64."""
    return F32(math.tanh(float(a)))


def code(v, act, counts=None):
    """``(codes, values)`` of a float32 vector: the stored code and its exact float32 value."""
    v = np.asarray(v, F32)
    if act is None:
        return v.copy(), v.copy()
    if isinstance(act, LogFormat):
        c = log.encode(v, act, counts=counts)
        return c, log.decode(c, act)
    c = fixed.quantize(v, act, counts=counts)
    return c, fixed.to_float(c, act, np.float32)


def product(w, c, value, act, counts=None):
    """One float32 product: ``multiply_float32(w, c)`` for a log code, else ``float32(w * value)``."""
    if isinstance(act, LogFormat):
        return F32(log.multiply_float32(F32(w), np.uint8(c), act, counts)[()])
    return F32(F32(w) * F32(value))


def dot(acc, w_row, coded, act, counts=None):
    """Continue the float32 sum ``acc`` with the products of ``w_row`` and a coded vector, k ascending."""
    c, v = coded
    for k in range(len(w_row)):
        acc = F32(acc + product(w_row[k], c[k], v[k], act, counts))
    return acc


def gru_lm(params, ids, starts, lengths, act=None, x_act=None, counts=None, final=None, state="coded"):
    """Oracle of :func:`bitsim.kernels.gru.run_gru_lm` (same parameters, same return value)."""
    x_act = act if x_act is None else x_act
    p = {k: (np.asarray(v, F32) if isinstance(v, np.ndarray) else v) for k, v in params.items()}
    wx, wh, b, wf, bf = p["Wx"], p["Wh"], p["b"], p["Wf"], p["bf"]
    h = wh.shape[1]
    zero = F32(0.0)
    pred = np.full(len(ids), -1, np.int64)
    for s in range(len(starts)):
        hq = code(np.zeros(h, F32), act, counts)
        hv = np.zeros(h, F32)  # the state read element-wise: the coded value, or float32
        for t in range(int(lengths[s])):
            pos = int(starts[s]) + t
            xq = code(p["E"][int(ids[pos])], x_act, counts)
            gate = [sigmoid(F32(dot(dot(zero, wx[j], xq, x_act, counts), wh[j], hq, act, counts) + b[j]))
                    for j in range(2 * h)]
            r, z = gate[:h], gate[h:]
            if p["reset"] == "before":
                gq = code(np.array([F32(hv[k] * r[k]) for k in range(h)], F32), act, counts)
                cand = [tanh(F32(dot(dot(zero, wx[2 * h + j], xq, x_act, counts), wh[2 * h + j], gq, act, counts)
                                 + b[2 * h + j])) for j in range(h)]
            else:
                cand = []
                for j in range(h):
                    xpart = F32(dot(zero, wx[2 * h + j], xq, x_act, counts) + b[2 * h + j])
                    u = F32(dot(zero, wh[2 * h + j], hq, act, counts) + p["b_hn"][j])
                    cand.append(tanh(F32(xpart + F32(r[j] * u))))
            new = np.array([F32(F32(z[j] * hv[j]) + F32(F32(F32(1.0) - z[j]) * cand[j])) for j in range(h)], F32)
            hq = code(new, act, counts)
            hv = hq[1] if state == "coded" else new
            scores = [F32(dot(zero, wf[j], hq, act, counts) + bf[j]) for j in range(len(bf))]
            pred[pos] = int(np.argmax(scores))
        if final is not None:
            final[s] = hv
    return pred


# ---------------------------------------------------------------------------------------
# fixed-point weights: exact Python-int sums, one rounding to float32


def to_float32(acc, frac_bits):
    """``float32(acc * 2**-frac_bits)`` of a Python int (exact in float64 below 2**53)."""
    if abs(int(acc)) >= 2**53:
        raise RangeError("accumulator beyond 2**53")
    return F32(math.ldexp(float(int(acc)), -int(frac_bits)))


def int_dot(w_row, q):
    """Exact ``sum_k w[k] * q[k]`` of integer codes, as a Python int."""
    return sum(int(a) * int(b) for a, b in zip(w_row, q))


def gru_lm_fixed_weights(codes, fmts, reset, ids, starts, lengths, act, x_act=None, counts=None, final=None,
                         state="coded"):
    """Oracle of :func:`bitsim.kernels.gru.run_fixed_weights` (same parameters, same return value)."""
    x_act = act if x_act is None else x_act
    wx, wh, b, wf, bf = (np.asarray(codes[k]) for k in ("Wx", "Wh", "b", "Wf", "bf"))
    h = wh.shape[1]
    fh, fx = act.frac_bits, x_act.frac_bits
    fwx, fwh, fb = fmts["Wx"].frac_bits, fmts["Wh"].frac_bits, fmts["b"].frac_bits
    big = max(fx + fwx, fh + fwh, fb)
    fo = max(fh + fmts["Wf"].frac_bits, fmts["bf"].frac_bits)
    pred = np.full(len(ids), -1, np.int64)
    for s in range(len(starts)):
        hq = [0] * h
        hv = np.zeros(h, F32)
        for t in range(int(lengths[s])):
            pos = int(starts[s]) + t
            xq = codes["E"][int(ids[pos])]

            def pre(j, vec):
                return ((int_dot(wx[j], xq) << (big - fx - fwx)) + (int_dot(wh[j], vec) << (big - fh - fwh))
                        + (int(b[j]) << (big - fb)))

            gate = [sigmoid(to_float32(pre(j, hq), big)) for j in range(2 * h)]
            r, z = gate[:h], gate[h:]
            if reset == "before":
                gq = fixed.quantize(np.array([F32(hv[k] * r[k]) for k in range(h)], F32), act, counts=counts)
                cand = [tanh(to_float32(pre(2 * h + j, gq), big)) for j in range(h)]
            else:
                fbn = fmts["b_hn"].frac_bits
                top = max(fh + fwh, fbn)
                cand = []
                for j in range(h):
                    xn = to_float32((int_dot(wx[2 * h + j], xq) << (big - fx - fwx))
                                    + (int(b[2 * h + j]) << (big - fb)), big)
                    u = to_float32((int_dot(wh[2 * h + j], hq) << (top - fh - fwh))
                                   + (int(codes["b_hn"][j]) << (top - fbn)), top)
                    cand.append(tanh(F32(xn + F32(r[j] * u))))
            new = np.array([F32(F32(z[j] * hv[j]) + F32(F32(F32(1.0) - z[j]) * cand[j])) for j in range(h)], F32)
            hq = fixed.quantize(new, act, counts=counts)
            hv = fixed.to_float(hq, act, np.float32) if state == "coded" else new
            scores = [to_float32((int_dot(wf[j], hq) << (fo - fh - fmts["Wf"].frac_bits))
                                 + (int(bf[j]) << (fo - fmts["bf"].frac_bits)), fo) for j in range(len(bf))]
            pred[pos] = int(np.argmax(scores))
        if final is not None:
            final[s] = hv
    return pred


__all__ = ["log_matmul", "float_matmul", "sigmoid", "tanh", "code", "product", "dot", "gru_lm", "to_float32",
           "int_dot", "gru_lm_fixed_weights"]
