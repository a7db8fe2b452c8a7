"""Weight initialisation from explicit bitsim generators.

Every initialiser draws one uint32 ``u`` per element, in row-major order, from a generator of
:mod:`bitsim.formats.rng` (``make_rng('philox', seed)`` or ``make_rng('xorshift32', seed)``), and
maps it to the open interval (0, 1) as ``(u + 0.5) / 2**32`` in float64 before scaling and the
final cast. So the same generator and seed give the same weights on every machine.
"""

import math

import numpy as np

from bitsim.formats.rng import as_rng, make_rng


def generator(rng):
    """Return a bitsim generator: ``rng`` itself, Philox with key ``rng`` for an int, or Philox(0) for None.

    Layers built with ``init_rng=None`` all start from Philox key 0, so two layers of the same shape
    get the same weights; pass one shared generator to every layer of a model instead.
    """
    if rng is None:
        return make_rng("philox", 0)
    return as_rng(rng)


def uniform(shape, low, high, rng, dtype=np.float32):
    """Uniform values in (low, high): ``low + (high - low) * (u + 0.5) / 2**32`` for one uint32 draw ``u`` each.

    Parameters
    ----------
    shape : tuple of int
    low, high : float
    rng : generator, int or None
        See :func:`generator`.
    dtype : numpy dtype
    """
    shape = tuple(int(s) for s in shape)
    u = generator(rng).uint32(math.prod(shape)).astype(np.float64)
    unit = (u + 0.5) / 2.0**32
    return (low + (high - low) * unit).reshape(shape).astype(dtype)


def glorot_uniform(shape, fan_in, fan_out, rng, dtype=np.float32):
    """Glorot (Xavier) uniform: :func:`uniform` on ``±sqrt(6 / (fan_in + fan_out))``."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, -limit, limit, rng, dtype)


def glorot_lr_scale(fan_in, fan_out):
    """The BNN code's "Glorot" per-layer learning-rate scale: ``1 / sqrt(1.5 / (fan_in + fan_out))``.

    Pass it as ``lr_scale`` to a binary layer to reproduce Courbariaux et al.'s ``W_LR_scale = "Glorot"``.
    """
    return 1.0 / math.sqrt(1.5 / (fan_in + fan_out))
