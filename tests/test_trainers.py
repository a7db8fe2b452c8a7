"""What every method's trainer promises: NumPy's BLAS on one thread, so the bits do not depend on the machine."""

import pytest


def test_every_trainer_runs_blas_on_one_thread(monkeypatch):
    """Each method's ``train`` limits NumPy's BLAS to one thread (bitsim.nn.blas): seen from inside the run."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from bitsim.methods import bnn, connect, loggru, surgery

    if not any(i["user_api"] == "blas" for i in threadpool_info()):
        pytest.skip("numpy's BLAS is not visible to threadpoolctl")

    class Seen(Exception):
        pass

    def spy(*args, **kwargs):
        raise Seen([i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"])

    runs = [(bnn, "mnist_splits", lambda: bnn.train(bnn.BNNConfig(), progress=False)),
            (connect, "mnist_splits", lambda: connect.train(connect.ConnectConfig(), progress=False)),
            (loggru, "shakespeare", lambda: loggru.train(loggru.GRUConfig(), progress=False)),
            (surgery, "evaluation_split", lambda: surgery.train(surgery.default_config("lenet300"), data={},
                                                                progress=False))]
    for module, first_call, run in runs:
        monkeypatch.setattr(module, first_call, spy)
        with threadpool_limits(limits=2, user_api="blas"):
            with pytest.raises(Seen) as seen:
                run()
        assert seen.value.args[0] and set(seen.value.args[0]) == {1}, module.__name__
