"""How bitsim calls its parallel Numba kernels: on the calling thread alone when the work is small.

It lives at the bottom of the kernel code (formats) because the parallel Philox draws of
:mod:`bitsim.formats.rng` and the dynamic fixed point of :mod:`bitsim.formats.dynamic_fixed` use it
as well as :mod:`bitsim.kernels` and :mod:`bitsim.nn`; imports only point down.
"""

import os

import numba

# After each parallel kernel OpenMP's idle threads spin for GOMP_SPINCOUNT iterations before they sleep
# (300,000 by default: about 10 ms on a 2-core AMD EPYC), taking the cores from whatever runs
# next; a NumPy float64 matmul right after an MX operand pass ran 1.4x slower. 20,000 iterations keep
# the threads awake across back-to-back kernels. A value the user set wins; it must be set before the
# first parallel kernel runs (OpenMP reads it once).
os.environ.setdefault("GOMP_SPINCOUNT", "20000")


def launch(kernel, work, *args, min_work, tasks=False):
    """Call a parallel kernel, on the calling thread alone when ``work`` is below ``min_work``.

    Waking the other threads costs microseconds on an idle machine and milliseconds when the cores
    are shared with other processes, more than small calls take. ``tasks``: the kernel's parallel
    loop runs few, long iterations; hand them out one at a time, so that a thread slowed by other
    processes does not hold up the others. Results never depend on the thread count: every kernel
    computes each output element on one thread in a fixed order.

    Parameters
    ----------
    kernel : numba dispatcher
        A ``parallel=True`` jitted function.
    work : int
        A measure of the call's work (inner-loop operations or elements), compared with ``min_work``.
    *args
        The kernel's arguments.
    min_work : int
        The least work worth the other threads.
    tasks : bool
        Hand out the parallel loop's iterations one at a time (chunk size 1).

    Returns
    -------
    object
        What the kernel returns.
    """
    threads = numba.get_num_threads()
    if work >= min_work or threads == 1:
        with numba.parallel_chunksize(1 if tasks else 0):
            return kernel(*args)
    numba.set_num_threads(1)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(threads)
