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

:func:`draws` gives the same numbers as ``rng.uint32`` (for Philox, by a parallel kernel that
computes every block of four outputs from its index).
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ..errors import InputError, InputTypeError
from .launch import launch
from .modes import as_int

MAX_UINT32 = 2**32 - 1
PARALLEL_MIN_WORK = 2**18  # 8 * draws below which the parallel Philox fill runs on the calling thread


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


# ---------------------------------------------------------------------------------------
# Philox-4x64-10 as NumPy computes it, in parallel

_PHILOX_M0 = np.uint64(0xD2E7470EE14C6C93)
_PHILOX_M1 = np.uint64(0xCA5A826395121157)
_PHILOX_W0 = np.uint64(0x9E3779B97F4A7C15)
_PHILOX_W1 = np.uint64(0xBB67AE8584CAA73B)


@intrinsic
def _mulhi(typingctx, a, b):
    """High 64 bits of the 128-bit product of two uint64."""
    sig = types.uint64(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        wide = ir.IntType(128)
        p = builder.mul(builder.zext(args[0], wide), builder.zext(args[1], wide))
        return builder.trunc(builder.lshr(p, ir.Constant(wide, 64)), ir.IntType(64))

    return sig, codegen


@numba.njit(cache=True, inline="always")
def _philox_block(c0, c1, c2, c3, k0, k1):
    for r in range(10):
        if r > 0:
            k0 += _PHILOX_W0
            k1 += _PHILOX_W1
        hi0 = _mulhi(_PHILOX_M0, c0)
        lo0 = _PHILOX_M0 * c0
        hi1 = _mulhi(_PHILOX_M1, c2)
        lo1 = _PHILOX_M1 * c2
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


@numba.njit(cache=True, parallel=True)
def _philox_fill(k0, k1, start, out):
    """out[i] = high 32 bits of raw output start + i of Philox(key=(k0, k1), counter=0)."""
    n = out.size
    first = start // 4
    last = (start + n - 1) // 4
    top = np.uint64(32)
    for b in numba.prange(first, last + 1):
        r0, r1, r2, r3 = _philox_block(np.uint64(b + 1), np.uint64(0), np.uint64(0), np.uint64(0), k0, k1)
        i = 4 * b - start
        if i >= 0 and i + 3 < n:
            out[i] = np.uint32(r0 >> top)
            out[i + 1] = np.uint32(r1 >> top)
            out[i + 2] = np.uint32(r2 >> top)
            out[i + 3] = np.uint32(r3 >> top)
        else:
            if 0 <= i < n:
                out[i] = np.uint32(r0 >> top)
            if 0 <= i + 1 < n:
                out[i + 1] = np.uint32(r1 >> top)
            if 0 <= i + 2 < n:
                out[i + 2] = np.uint32(r2 >> top)
            if 0 <= i + 3 < n:
                out[i + 3] = np.uint32(r3 >> top)


@numba.njit(cache=True)
def _philox_block_py(c, k0, k1):
    r = _philox_block(c, np.uint64(0), np.uint64(0), np.uint64(0), k0, k1)
    return np.array([r[0], r[1], r[2], r[3]], dtype=np.uint64)


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

    def position(self):
        """The number of draws made, or None when the NumPy state is not the plain one bitsim creates.

        Returns
        -------
        int or None
            ``drawn`` when the counter, key and buffer are exactly where :meth:`uint32` calls leave
            them (so that the next draws follow from their index alone, as :func:`draws` computes
            them), else None.
        """
        bits = self._bits
        if not isinstance(bits, np.random.Philox) or not 0 <= self.seed < 2**64:
            return None
        st = bits.state
        counter, key = st["state"]["counter"], st["state"]["key"]
        if st.get("has_uint32", 0) or int(key[0]) != self.seed or int(key[1]) or counter[1:].any():
            return None
        g = int(self.drawn)
        blocks = -(-g // 4)
        if int(counter[0]) != blocks or blocks >= 2**63:
            return None
        pos = int(st["buffer_pos"])
        if pos != (4 if g == 0 else g - 4 * (blocks - 1)):
            return None
        return g

    def _skip_to(self, end):
        """Set the NumPy state to where ``uint32`` calls leave it after ``end`` draws in all."""
        blocks = -(-end // 4)
        st = self._bits.state
        st["state"]["counter"] = np.array([blocks, 0, 0, 0], dtype=np.uint64)
        st["buffer"] = _philox_block_py(np.uint64(blocks), np.uint64(self.seed), np.uint64(0))
        st["buffer_pos"] = end - 4 * (blocks - 1)
        self._bits.state = st
        self.drawn = end

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


def draws(rng, n):
    """``n`` uint32 draws from a bitsim generator: the same numbers, and the same state after, as ``rng.uint32(n)``.

    For :class:`Philox` (draw ``i`` is the high half of raw output ``i`` of NumPy's Philox-4x64-10
    with key ``seed`` and counter 0, and NumPy computes block ``b`` of four outputs with counter
    ``b + 1``) the blocks are computed in parallel and the generator's NumPy state is then set to
    where ``rng.uint32(n)`` would have left it. Any other generator, or a Philox whose state is not
    the plain one (:meth:`Philox.position` is None), is simply asked for ``rng.uint32(n)``.

    Parameters
    ----------
    rng : Xorshift32, Philox or int
    n : int

    Returns
    -------
    numpy.ndarray of uint32, shape (n,)
    """
    rng = as_rng(rng)
    n = int(n)
    start = rng.position() if isinstance(rng, Philox) else None
    if start is None or n == 0:
        return rng.uint32(n)
    out = np.empty(n, np.uint32)
    launch(_philox_fill, 8 * n, np.uint64(rng.seed), np.uint64(0), start, out, min_work=PARALLEL_MIN_WORK)
    rng._skip_to(start + n)
    return out


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
