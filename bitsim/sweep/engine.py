"""Run a sweep's points: in this process (serial), or on ``dask.distributed`` (a cluster started here, or an
existing one at a scheduler address).

Either way every finished point reaches :func:`run_points`'s ``on_record`` in this process, which writes its
file; a worker that dies loses only the points it was computing, which the scheduler runs again elsewhere
(after ``distributed.scheduler.allowed-failures`` deaths a point is recorded as failed). The engine knows
nothing of what a point computes.
"""

import logging
import os
import time

from ..errors import InputError, MissingExtra

__all__ = ["THREAD_VARIABLES", "MALLOC_VARIABLE", "run_points", "local_workers", "start_local_cluster", "one_thread"]

# dask's nanny sets this in its workers (distributed.nanny.pre-spawn-environ) and in the process that starts
# them; it stops glibc from reusing freed memory for numpy's large temporaries, which makes a point twice as slow
MALLOC_VARIABLE = "MALLOC_TRIM_THRESHOLD_"
USER_MALLOC = os.environ.get(MALLOC_VARIABLE)  # read before any nanny of this process has written it

# one thread per worker process: the sweep's parallelism is its points
THREAD_VARIABLES = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                    "NUMBA_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def local_workers():
    """The default number of worker processes: one per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class _Progress:
    """A tqdm bar of the points done, with the points running and failed; rate and time left are tqdm's."""

    def __init__(self, total, enabled):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, unit="point", desc="sweep", disable=None if enabled else True,
                        dynamic_ncols=True)
        self.failed = 0

    def update(self, record, running):
        self.failed += record["status"] != "done"
        self.bar.set_postfix(running=running, failed=self.failed, refresh=False)
        self.bar.update(1)

    def close(self):
        self.bar.close()


def _dask():
    try:
        import distributed
    except ImportError:
        raise MissingExtra("the sweep's distributed engine needs dask.distributed: pip install -e \".[sweep]\"") \
            from None
    return distributed


def start_local_cluster(workers):
    """A ``LocalCluster`` of ``workers`` processes, one thread each, no dashboard, with glibc's own memory trimming
    (the user's ``MALLOC_TRIM_THRESHOLD_`` if set, not the nanny's).

    The worker's environment is set after its process started, when Numba may already be imported (the
    process imports the main module of this one): a ``NUMBA_NUM_THREADS`` that differs from the value Numba
    read then makes its next compilation fail once its threads run. So it is left out; every task sets
    Numba's threads itself (:func:`one_thread`)."""
    import dask

    distributed = _dask()
    env = {k: v for k, v in THREAD_VARIABLES.items() if k != "NUMBA_NUM_THREADS"}
    with dask.config.set({f"distributed.nanny.pre-spawn-environ.{MALLOC_VARIABLE}": USER_MALLOC}):
        if USER_MALLOC is None:
            os.environ.pop(MALLOC_VARIABLE, None)  # an earlier cluster of this process put it there
        return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=logging.ERROR, env=env)


def one_thread(evaluate, context, config):
    """``evaluate(context, config)`` with Numba's parallel kernels on the calling thread alone (a worker's
    parallelism is its points; ``numba.set_num_threads`` holds for the calling thread)."""
    import numba

    numba.set_num_threads(1)
    return evaluate(context, config)


def _killed_record(config, err):
    from .spec import point_id
    from ..errors import one_line

    return {"bitsim_sweep_point": 1, "id": point_id(config), "config": config, "status": "failed", "result": None,
            "error": one_line(err), "seconds": 0.0, "worker": None}


def run_points(evaluate, context, configs, on_record, workers=None, scheduler=None, progress=True):
    """Evaluate ``evaluate(context, config)`` for every config and hand each record to ``on_record``.

    Parameters
    ----------
    evaluate : callable
        Importable by the workers (a module-level function); returns a record dict with ``status``.
    context : object
        Passed to every call; sent once to each worker (``Client.scatter(..., broadcast=True)``).
    configs : list
    on_record : callable
        Called in this process with each record, in the order they finish.
    workers : int, optional
        ``0``: serial, in this process. ``N``: a ``LocalCluster`` of N worker processes, one thread each
        (default: one per core). Ignored with ``scheduler``.
    scheduler : str, optional
        ``tcp://HOST:PORT`` of a running ``dask scheduler``.
    progress : bool

    Returns
    -------
    dict
        ``engine`` (a description), ``workers``, ``seconds`` (wall time, with starting and stopping a local
        cluster), ``points_seconds`` (from the first point handed out to the last result).
    """
    bar = _Progress(len(configs), progress)
    started = time.perf_counter()
    try:
        if scheduler is None and workers == 0:
            for config in configs:
                record = evaluate(context, config)
                on_record(record)
                bar.update(record, running=1)
            seconds = time.perf_counter() - started
            return {"engine": "serial", "workers": 0, "seconds": seconds, "points_seconds": seconds}
        return _run_dask(evaluate, context, configs, on_record, workers, scheduler, bar, started)
    finally:
        bar.close()


def _run_dask(evaluate, context, configs, on_record, workers, scheduler, bar, started):
    distributed = _dask()
    cluster = None
    if scheduler is None:
        n = local_workers() if workers is None else int(workers)
        if n < 1:
            raise InputError(f"--workers must be >= 0, got {workers}")
        cluster = start_local_cluster(n)
        client = distributed.Client(cluster)
        engine = f"LocalCluster, {n} worker process(es)"
    else:
        try:
            client = distributed.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as err:
            raise InputError(f"cannot reach the dask scheduler at {scheduler}: {err}; start one with "
                             "`dask scheduler` and workers with `dask worker ADDRESS`") from None
        engine = f"dask scheduler {scheduler}"
    try:
        threads = sum(client.nthreads().values())
        if threads == 0:
            client.wait_for_workers(1, timeout=60)
        shared = client.scatter(context, broadcast=True)
        first = time.perf_counter()
        futures = {}
        for config in configs:
            from .spec import point_id

            key = f"bitsim-sweep-point-{point_id(config)}"
            futures[client.submit(one_thread, evaluate, shared, config, key=key, pure=False, retries=0)] = config
        pending, checked = len(futures), 0.0
        for future in distributed.as_completed(futures):
            try:
                record = future.result()
            except Exception as err:  # noqa: BLE001 - e.g. KilledWorker after repeated worker deaths
                record = _killed_record(futures[future], err)
            future.release()
            on_record(record)
            pending -= 1
            now = time.perf_counter()
            if now - checked > 1.0:
                threads, checked = sum(client.nthreads().values()), now
            bar.update(record, running=min(pending, threads))
        workers_seen = len(client.nthreads())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        last = time.perf_counter()
    return {"engine": engine, "workers": workers_seen, "seconds": time.perf_counter() - started,
            "points_seconds": last - first}
