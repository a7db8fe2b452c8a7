"""Float training on one BLAS thread, so that its bits do not depend on the machine's thread count.

NumPy's BLAS (OpenBLAS here) splits a large float32 product over its threads in a way that changes
the order of the additions, so the same training run on 1 and 2 threads drifts apart in the last
bits, then in the weights. bitsim's trainers therefore run NumPy's BLAS on one thread
(:func:`one_blas_thread`); their other parallel work runs in Numba kernels, whose results never
depend on the thread count.
"""

import functools

from threadpoolctl import threadpool_limits


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
