"""bitsim sweep on a real cluster: a `dask scheduler` and two `dask worker` processes on 127.0.0.1, one of them
killed in the middle of the sweep; every point ends up done exactly once, with the serial path's summary."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bitsim.sweep import run_sweep
from bitsim.sweep.engine import THREAD_VARIABLES
from sweep_models import spec_text, train_models

ROOT = Path(__file__).resolve().parents[1]
DASK = [sys.executable, "-m", "distributed.cli.dask_scheduler"], [sys.executable, "-m", "distributed.cli.dask_worker"]


def wait_for(predicate, seconds, what):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def cluster(tmp_path):
    """``(address, [worker processes])`` of a scheduler and two single-thread workers, stopped afterwards."""
    env = {**os.environ, **THREAD_VARIABLES, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    info = tmp_path / "scheduler.json"
    logs = open(tmp_path / "cluster.log", "w")
    scheduler = subprocess.Popen(DASK[0] + ["--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                            "--scheduler-file", str(info)], env=env, cwd=ROOT, stdout=logs,
                                 stderr=subprocess.STDOUT)
    procs = [scheduler]
    try:
        wait_for(lambda: info.is_file() and info.stat().st_size > 0, 60, "the scheduler")
        address = json.loads(info.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen(DASK[1] + [address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                                     "--host", "127.0.0.1"], env=env, cwd=ROOT, stdout=logs,
                                          stderr=subprocess.STDOUT))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, procs[1:]
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        logs.close()


def test_a_killed_worker_costs_only_its_unfinished_points(cluster, tmp_path):
    address, workers = cluster
    models = train_models(tmp_path / "models")
    spec = tmp_path / "c.toml"
    spec.write_text(spec_text("connect", models["connect"], size=1000))
    serial = run_sweep(spec, tmp_path / "serial", workers=0, progress=False, log=lambda line: None)
    out, result, errors = tmp_path / "cluster", {}, []

    def sweep():
        try:
            result.update(run_sweep(spec, out, scheduler=address, progress=False, log=lambda line: None))
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    thread = threading.Thread(target=sweep)
    thread.start()
    points = out / "points"
    wait_for(lambda: points.is_dir() and len(list(points.glob("*.json"))) >= 6, 120, "the first points")
    workers[0].kill()  # SIGKILL: the worker's running and queued points are lost with it
    done_at_kill = len(list(points.glob("*.json")))
    thread.join(timeout=300)
    assert not errors, errors
    assert workers[0].wait() == -signal.SIGKILL and workers[1].poll() is None
    assert done_at_kill < serial["points"], "the kill came after the sweep had finished"
    assert result["ran"] == serial["points"] and result["failed"] == 0
    assert sorted(p.name for p in points.iterdir()) == sorted(p.name for p in (tmp_path / "serial" / "points").iterdir())
    assert (out / "summary.csv").read_bytes() == (tmp_path / "serial" / "summary.csv").read_bytes()
    # resume on the surviving worker: nothing left to run
    again = run_sweep(spec, out, scheduler=address, resume=True, progress=False, log=lambda line: None)
    assert again["ran"] == 0 and again["skipped"] == serial["points"]
