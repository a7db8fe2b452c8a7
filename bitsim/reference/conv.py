"""Slow, obvious NumPy versions of the patch and pooling loops of :mod:`bitsim.nn.conv`.

:func:`bitsim.nn.conv.im2col`, :func:`~bitsim.nn.conv.col2im` and
:class:`~bitsim.nn.conv.MaxPool2d` run Numba loops; these compute the same arrays with
whole-array NumPy operations, adding in the same order, so the tests compare them bit for bit.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def im2col(x, kernel, stride, padding):
    """Rows ``(n, r, q)`` of ``xp[n, r*sh + u, q*sw + v, c]`` at column ``(u * KW + v) * C + c``."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0))) if ph or pw else x
    windows = sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]  # (N, OH, OW, C, KH, KW)
    oh, ow = windows.shape[1], windows.shape[2]
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, kh * kw * c), (oh, ow)


def col2im(cols, x_shape, kernel, stride, padding):
    """The adjoint of :func:`im2col`: each element is ``0 + `` its patch entries in ``(u, v)`` order."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, h, w, c = x_shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    patches = cols.reshape(n, oh, ow, kh, kw, c)
    xp = np.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=cols.dtype)
    for u in range(kh):
        for v in range(kw):
            xp[:, u:u + sh * (oh - 1) + 1:sh, v:v + sw * (ow - 1) + 1:sw, :] += patches[:, :, :, u, v, :]
    return xp[:, ph:ph + h, pw:pw + w, :]


def max_pool(x, kernel, stride):
    """``(y, argmax)``: the window maxima and the first maximum's index ``u * KW + v`` (NaN counts as largest)."""
    (kh, kw), (sh, sw) = kernel, stride
    windows = sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]  # (N, OH, OW, C, KH, KW)
    flat = windows.reshape(windows.shape[:4] + (kh * kw,))
    argmax = flat.argmax(axis=-1)
    return np.take_along_axis(flat, argmax[..., None], axis=-1)[..., 0], argmax


def max_pool_backward(grad, argmax, x_shape, kernel, stride):
    """Each output gradient added to its window's first maximum, windows in ``(u, v)`` order."""
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = argmax.shape[1:3]
    dx = np.zeros(x_shape, dtype=grad.dtype)
    for u in range(kh):
        for v in range(kw):
            dx[:, u:u + sh * (oh - 1) + 1:sh, v:v + sw * (ow - 1) + 1:sw, :] += np.where(argmax == u * kw + v, grad, 0)
    return dx
