"""Reproducible random bits for stochastic rounding and binarization.

Every stochastic decision in bitsim is one Bernoulli draw made by a single rule:
draw one 32-bit unsigned integer ``u`` from a generator and decide *yes* iff
``u < floor(p * 2**32)``. A hardware design that implements the same generator
and the same comparison makes the same decisions, in the same (row-major) order.

Two generators are provided:

``xorshift32``
    Marsaglia's xorshift32 with shifts (13, 17, 5). The state is one 32-bit
    word, initialised to the seed (which must be in 1 .. 2**32 - 1). Each draw
    updates ``x ^= x << 13; x ^= x >> 17; x ^= x << 5`` (mod 2**32) and returns the
    new ``x``. Three shifts and three XORs: the generator of choice for hardware.
``philox``
    NumPy's counter-based Philox-4x64 with ``key=seed`` and counter 0; draw ``i`` is
    the high 32 bits of its ``i``-th raw 64-bit output. The default for software runs.
"""

import numba
import numpy as np

from ..errors import InputError, InputTypeError
from .modes import as_int

MAX_UINT32 = 2**32 - 1


def draw_count(n):
    """Return ``n`` as the number of draws to make, refusing non-integers and negative numbers."""
    n = as_int(n, "the number of draws")
    if n < 0:
        raise InputError(f"the number of draws must be >= 0, got {n}")
    return n


@numba.njit(cache=True)
def _xorshift32_fill(state, out):
    x = np.uint32(state)
    for i in range(out.size):
        x ^= np.uint32(x << np.uint32(13))
        x ^= np.uint32(x >> np.uint32(17))
        x ^= np.uint32(x << np.uint32(5))
        out[i] = x
    return x


class Xorshift32:
    """Marsaglia xorshift32 (13, 17, 5): one 32-bit state word, hardware friendly.

    Parameters
    ----------
    seed : int
        Initial state, in 1 .. 2**32 - 1 (zero is a fixed point of the generator).

    Examples
    --------
    >>> Xorshift32(1).uint32(3)
    array([   270369,  67634689, 2647435461], dtype=uint32)
    """

    name = "xorshift32"

    def __init__(self, seed):
        seed = as_int(seed, "xorshift32 seed")
        if not 1 <= seed <= MAX_UINT32:
            raise InputError(f"xorshift32 seed must be in 1..2**32-1, got {seed}; zero never changes state")
        self.seed = seed
        self.state = seed

    def uint32(self, n):
        """Return the next ``n`` draws as a uint32 array and advance the state."""
        out = np.empty(draw_count(n), dtype=np.uint32)
        self.state = int(_xorshift32_fill(np.uint32(self.state), out))
        return out

    def __repr__(self):
        return f"Xorshift32(seed={self.seed}, state=0x{self.state:08x})"


class Philox:
    """NumPy's counter-based Philox-4x64 generator; each draw is the high half of one raw output.

    Parameters
    ----------
    seed : int
        The Philox key, 0 .. 2**64 - 1. The counter starts at 0.
    """

    name = "philox"

    def __init__(self, seed):
        seed = as_int(seed, "philox seed")
        if not 0 <= seed < 2**64:
            raise InputError(f"philox seed must be in 0..2**64-1, got {seed}")
        self.seed = seed
        self._bits = np.random.Philox(key=seed, counter=0)
        self.drawn = 0

    def uint32(self, n):
        """Return the next ``n`` draws as a uint32 array and advance the counter."""
        n = draw_count(n)
        raw = self._bits.random_raw(n)
        self.drawn += n
        return (np.asarray(raw, dtype=np.uint64) >> np.uint64(32)).astype(np.uint32)

    def __repr__(self):
        return f"Philox(seed={self.seed}, drawn={self.drawn})"


GENERATORS = {"philox": Philox, "xorshift32": Xorshift32}


def make_rng(name="philox", seed=1):
    """Return a generator from ``GENERATORS`` by name.

    Parameters
    ----------
    name : {'philox', 'xorshift32'}
    seed : int
        An int or NumPy integer (floats and bools are refused): 0..2**64-1 for philox, 1..2**32-1 for xorshift32.
    """
    if not isinstance(name, str) or name not in GENERATORS:
        raise InputError(f"unknown generator {name!r}; choose one of {sorted(GENERATORS)}")
    return GENERATORS[name](seed)


def as_rng(rng):
    """Accept a generator instance or an int seed (meaning Philox with that key)."""
    if rng is None:
        raise InputError("a stochastic mode needs a generator: pass rng=bitsim.formats.rng.make_rng('philox', seed)")
    if isinstance(rng, (bool, np.bool_)):
        raise InputTypeError(f"rng must be a bitsim generator or an int seed, got {rng!r}; "
                             "pass e.g. bitsim.formats.rng.make_rng('philox', seed)")
    if isinstance(rng, (int, np.integer)):
        return Philox(int(rng))
    if not hasattr(rng, "uint32"):
        raise InputTypeError(f"rng must be a bitsim generator or an int seed, got {type(rng).__name__}; "
                             "pass e.g. bitsim.formats.rng.make_rng('philox', seed)")
    return rng


def threshold32(p):
    """Return ``floor(p * 2**32)`` as uint64 for probabilities ``p`` in [0, 1] (exact in float64)."""
    p = np.asarray(p, dtype=np.float64)
    if np.isnan(p).any():
        raise InputError("probability is NaN; check the values being rounded or binarized")
    p = np.clip(p, 0.0, 1.0)
    return np.floor(np.ldexp(p, 32)).astype(np.uint64)


def bernoulli(p, rng):
    """Draw one decision per element of ``p``: True iff ``u < floor(p * 2**32)``.

    Parameters
    ----------
    p : array_like of float
        Probabilities; values are clipped to [0, 1] (``p = 1`` is always True, ``p = 0`` never).
        float64 holds ``p * 2**32`` exactly for every float32 or float64 ``p``.
    rng : Xorshift32, Philox or int
        The generator; draws are consumed in row-major order of ``p``.

    Returns
    -------
    numpy.ndarray of bool, shaped like ``p``
    """
    rng = as_rng(rng)
    t = threshold32(p)
    u = rng.uint32(t.size).astype(np.uint64).reshape(t.shape)
    return u < t
