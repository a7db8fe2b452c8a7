"""Float products for training whose bits do not depend on the thread count.

NumPy's BLAS (OpenBLAS here) splits a large float32 product over its threads in a way that changes
the order of the additions, so the same training run on 1 and 2 threads drifts apart in the last
bits, then in the weights. bitsim's trainers therefore run NumPy's BLAS on one thread
(:func:`one_blas_thread`) and spread their products over the cores themselves with :func:`matmul`:

* the product is cut into blocks of output rows (or of output columns, when there are more of
  them), and the number of blocks and their bounds depend on the operands' shapes alone
  (:func:`blocks`);
* each block is one single-threaded BLAS call;
* a pool of ``numba.get_num_threads()`` threads (``NUMBA_NUM_THREADS``, the setting of bitsim's Numba
  kernels too) runs the blocks, in any order.

Every output element therefore comes from the same BLAS call on the same operands whatever the
number of threads, and a run on one thread gives the bits of a run on eight. (Single-threaded
OpenBLAS sums each element over ``k`` in the same order whatever rows or columns a call is given, so
on it the blocks also equal one whole ``a @ b``, and trained bits equal those of a one-call run;
bitsim relies only on the fixed split.) bitsim's other parallel
work runs in Numba kernels, whose results never depend on the thread count either.
"""

import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from threadpoolctl import threadpool_limits

BLOCK_FLOPS = 1 << 24  # a block below ~17 MFLOP (~0.2 ms) costs more to hand to a thread than it saves
MIN_SPAN = 32  # rows (or columns) per block at least, so that each call still runs full BLAS tiles
MAX_BLOCKS = 8

_pool = None
_pool_size = 0
_pool_lock = threading.Lock()


def one_blas_thread(fn):
    """Decorate ``fn`` to run with NumPy's BLAS limited to one thread (restored afterwards).

    Examples
    --------
    >>> @one_blas_thread
    ... def train_step():
    ...     pass
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


def blocks(m, k, n):
    """How :func:`matmul` cuts an ``(m, k) @ (k, n)`` product: ``(axis, bounds)``.

    ``axis`` is 0 (blocks of output rows) or 1 (of output columns), whichever dimension is longer
    (rows on a tie); ``bounds`` are the block edges along it. The count is the largest power of two
    up to :data:`MAX_BLOCKS` that leaves every block at least :data:`BLOCK_FLOPS` of work and
    :data:`MIN_SPAN` rows or columns; edges are ``length * i // count``. A function of the shape alone.

    Examples
    --------
    >>> blocks(100, 784, 1024)
    (1, [0, 128, 256, 384, 512, 640, 768, 896, 1024])
    >>> blocks(64, 784, 600)
    (1, [0, 300, 600])
    >>> blocks(10, 10, 10)
    (0, [0, 10])
    """
    axis = 0 if m >= n else 1
    length = m if axis == 0 else n
    flops = 2 * m * n * k
    count = 1
    while (count * 2 <= MAX_BLOCKS and flops // (count * 2) >= BLOCK_FLOPS
           and length // (count * 2) >= MIN_SPAN):
        count *= 2
    return axis, [length * i // count for i in range(count + 1)]


def _executor():
    global _pool, _pool_size
    threads = numba.get_num_threads()
    if threads == 1:
        return None
    with _pool_lock:
        if _pool is None or _pool_size != threads:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(threads, thread_name_prefix="bitsim-blas"), threads
        return _pool


def matmul(a, b):
    """``a @ b`` for 2-D float arrays, spread over threads with bits independent of the thread count.

    Parameters
    ----------
    a : numpy.ndarray, shape (m, k)
    b : numpy.ndarray, shape (k, n)
        Float arrays of one dtype; views (transposes, slices) are fine.

    Returns
    -------
    numpy.ndarray, shape (m, n)
        C-contiguous. Each block of :func:`blocks` is ``a[rows] @ b`` or ``a @ b[:, cols]``, computed
        by NumPy; call it under :func:`one_blas_thread` so that each call runs on one BLAS thread.
        With one block this is exactly ``a @ b``.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul expects (m, k) @ (k, n), got {a.shape} @ {b.shape}")
    if a.dtype != b.dtype or a.dtype.kind != "f":
        raise TypeError(f"matmul expects two float arrays of one dtype, got {a.dtype} and {b.dtype}")
    (m, k), n = a.shape, b.shape[1]
    axis, bounds = blocks(m, k, n)
    if len(bounds) == 2:
        return a @ b
    out = np.empty((m, n), a.dtype)

    def run(i):
        lo, hi = bounds[i], bounds[i + 1]
        if axis == 0:
            np.matmul(a[lo:hi], b, out=out[lo:hi])
        else:
            out[:, lo:hi] = a @ b[:, lo:hi]

    pool = _executor()
    if pool is None:
        for i in range(len(bounds) - 1):
            run(i)
    else:
        for done in [pool.submit(run, i) for i in range(len(bounds) - 1)]:
            done.result()
    return out
