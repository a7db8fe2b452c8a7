"""Input shape checks and convolution windows shared by the layers of :mod:`bitsim.nn`."""

from ..errors import InputError


def check_2d(x, n, layer):
    """Raise unless ``x`` is a batch of ``n``-vectors, shape ``(N, n)``.

    Parameters
    ----------
    x : numpy.ndarray
    n : int
        Features per example.
    layer : object
        The layer (or its name) for the message.
    """
    if x.ndim != 2 or x.shape[1] != n:
        raise InputError(f"{layer} expects input of shape (N, {n}), got {x.shape}; add Flatten() before it")


def check_nhwc(x, c, layer):
    """Raise unless ``x`` is a batch of NHWC images with ``c`` channels (any number when ``c`` is None).

    Parameters
    ----------
    x : numpy.ndarray
    c : int or None
        Channels per pixel; None takes any number.
    layer : object
        The layer (or its name) for the message.
    """
    if x.ndim != 4 or (c is not None and x.shape[3] != c):
        want = f"(N, H, W, {c})" if c is not None else "(N, H, W, C)"
        raise InputError(f"{layer} expects NHWC input of shape {want}, got {x.shape}")


def pair(value, what, least=1):
    """``(height, width)`` from an int or a pair, each at least ``least``.

    Parameters
    ----------
    value : int or (int, int)
    what : str
        The name of the value, for the message.
    least : int

    Returns
    -------
    (int, int)
    """
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise InputError(f"{what} must be an int or a pair (height, width), got {value!r}")
        pair = int(value[0]), int(value[1])
    else:
        pair = int(value), int(value)
    if min(pair) < least:
        raise InputError(f"{what} must be at least {least} in both directions, got {value!r}")
    return pair


def window(kernel, stride, padding):
    """The ``(kernel, stride, padding)`` pairs of a convolution window (kernel and stride >= 1, padding >= 0).

    Parameters
    ----------
    kernel, stride, padding : int or (int, int)

    Returns
    -------
    ((int, int), (int, int), (int, int))
    """
    return pair(kernel, "kernel"), pair(stride, "stride"), pair(padding, "padding", least=0)
