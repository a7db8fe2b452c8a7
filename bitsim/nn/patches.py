"""Numba loops behind :func:`bitsim.nn.conv.im2col`, :func:`~bitsim.nn.conv.col2im` and max pooling.

Each loop writes the array that its NumPy counterpart in :mod:`bitsim.reference.conv` computes, bit for
bit: the copies are copies, and the two loops that add (``col2im`` and the pooling backward) add each
element's terms in the same ``(u, v)`` window order, starting from 0. Every output element is written by
one thread, so the bits do not depend on the thread count. Padding is read as zeros in place, without a
padded copy.
"""

import numba


@numba.njit(cache=True, parallel=True)
def im2col(x, kh, kw, sh, sw, ph, pw, oh, ow, cols):
    """Write the patches of NHWC ``x`` (padding read as zeros) into ``cols`` (N*OH*OW, KH*KW*C), channels fastest."""
    # flat offsets, no array views in the loops: a window row (u fixed) is kw * c consecutive values
    n, h, w, c = x.shape
    src, dst = x.reshape(-1), cols.reshape(-1)
    span, width = kw * c, kh * kw * c
    for t in numba.prange(n * oh):
        i, r = t // oh, t % oh
        for q in range(ow):
            o = (t * ow + q) * width
            z0 = q * sw - pw
            for u in range(kh):
                y = r * sh + u - ph
                d = o + u * span
                if y < 0 or y >= h:
                    for m in range(span):
                        dst[d + m] = 0
                elif z0 >= 0 and z0 + kw <= w:
                    s0 = ((i * h + y) * w + z0) * c
                    for m in range(span):
                        dst[d + m] = src[s0 + m]
                else:
                    for v in range(kw):
                        z = z0 + v
                        s0 = ((i * h + y) * w + z) * c
                        for ch in range(c):
                            dst[d + v * c + ch] = src[s0 + ch] if 0 <= z < w else 0


@numba.njit(cache=True, parallel=True)
def col2im(cols, kh, kw, sh, sw, ph, pw, oh, ow, out):
    """Add the patch entries of ``cols`` into the zeroed NHWC ``out``, in ``(u, v)`` window order; padding dropped."""
    n, h, w, c = out.shape
    for i in numba.prange(n):
        for u in range(kh):
            for v in range(kw):
                base = (u * kw + v) * c
                for r in range(oh):
                    y = r * sh + u - ph
                    if y < 0 or y >= h:
                        continue
                    for q in range(ow):
                        z = q * sw + v - pw
                        if z < 0 or z >= w:
                            continue
                        src = cols[(i * oh + r) * ow + q]
                        dst = out[i, y, z]
                        for ch in range(c):
                            dst[ch] += src[base + ch]


@numba.njit(cache=True, parallel=True)
def max_pool(x, kh, kw, sh, sw, y, arg):
    """``y`` the window maxima, ``arg`` the first maximum's ``u * kw + v`` (a NaN wins, as in ``argmax``)."""
    n, oh, ow, c = y.shape
    for t in numba.prange(n * oh):
        i, r = t // oh, t % oh
        for q in range(ow):
            best, where = y[i, r, q], arg[i, r, q]
            first = x[i, r * sh, q * sw]
            for ch in range(c):
                best[ch] = first[ch]
                where[ch] = 0
            for j in range(1, kh * kw):
                src = x[i, r * sh + j // kw, q * sw + j % kw]
                for ch in range(c):
                    b, val = best[ch], src[ch]
                    if b == b and (val > b or val != val):
                        best[ch] = val
                        where[ch] = j


@numba.njit(cache=True, parallel=True)
def max_pool_backward(grad, arg, kh, kw, sh, sw, dx):
    """Add each output gradient into the zeroed ``dx`` at its window's first maximum ``arg``, in window order."""
    n, oh, ow, c = grad.shape
    for i in numba.prange(n):
        for u in range(kh):
            for v in range(kw):
                j = u * kw + v
                for r in range(oh):
                    for q in range(ow):
                        for ch in range(c):
                            if arg[i, r, q, ch] == j:
                                dx[i, r * sh + u, q * sw + v, ch] += grad[i, r, q, ch]
