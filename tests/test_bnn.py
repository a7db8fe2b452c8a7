import numpy as np
import pytest

from bitsim.datasets import load_mnist
from bitsim.deploy import IntegerModel, compile_model
from bitsim.jobs import bnn as job
from bitsim.methods import bnn
from trainer_checks import record_translations, train_both_statistics


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def tiny(**changes):
    options = dict(hidden=64, layers=2, epochs=3, train_size=1500, validation_size=500, seed=3)
    options.update(changes)
    return bnn.BNNConfig(**options)


def test_train_compile_and_exactness_on_real_images(mnist, tmp_path):
    model, history = bnn.train(tiny(), out_dir=tmp_path, data=mnist, progress=False, log=lambda line: None)
    assert len(history) == 3 and history[-1]["train_loss"] < history[0]["train_loss"]
    assert min(h["val_error"] for h in history) < 0.5
    (_, _), (_, _), (xs, ys) = bnn.mnist_splits(tiny(), mnist)
    compiled, exact = job.compile_and_check(model, xs[:2000])
    assert exact["all_equal"], exact
    rep = job.report(model, compiled, (xs[:2000], ys[:2000]), time_it=False)
    assert rep["integer_test_error"] == rep["float_test_error"]
    compiled.save(tmp_path / "int")
    loaded = IntegerModel.load(tmp_path / "int")
    np.testing.assert_array_equal(loaded.predict(xs[:500]), compiled.predict(xs[:500]))
    assert (tmp_path / "best.json").exists() and (tmp_path / "history.json").exists()
    rebuilt, meta = bnn.load_float_model(tmp_path / "best")
    assert meta["config"]["hidden"] == 64
    np.testing.assert_array_equal(rebuilt.forward(xs[:50], training=False), model.forward(xs[:50], training=False))


def test_same_seed_same_bits_and_exact_resume(mnist, tmp_path):
    quiet = dict(data=mnist, progress=False, log=lambda line: None)
    whole, _ = bnn.train(tiny(), out_dir=tmp_path / "a", **quiet)
    again, _ = bnn.train(tiny(), **quiet)
    bnn.train(tiny(), out_dir=tmp_path / "b", stop_after=2, **quiet)
    resumed, history = bnn.train(tiny(), out_dir=tmp_path / "b", resume=True, **quiet)
    assert len(history) == 3
    for other in (again, resumed):
        for key, value in whole.state().items():
            assert other.state()[key].tobytes() == value.tobytes(), key


def test_without_validation_the_last_epoch_is_kept_and_resumes(mnist, tmp_path):
    quiet = dict(data=mnist, progress=False, log=lambda line: None)
    cfg = tiny(validation_size=0)
    model, history = bnn.train(cfg, out_dir=tmp_path / "a", **quiet)
    assert [h["val_error"] for h in history] == [None] * 3
    last, meta = bnn.load_float_model(tmp_path / "a" / "checkpoint")
    best, best_meta = bnn.load_float_model(tmp_path / "a" / "best")
    assert best_meta["epoch"] == 3
    for key, value in model.state().items():
        assert best.state()[key].tobytes() == value.tobytes() == last.state()[key].tobytes(), key
    bnn.train(cfg, out_dir=tmp_path / "b", stop_after=1, **quiet)
    resumed, _ = bnn.train(cfg, out_dir=tmp_path / "b", resume=True, **quiet)
    for key, value in model.state().items():
        assert resumed.state()[key].tobytes() == value.tobytes(), key


def test_summary_counts_by_hand(mnist):
    model = bnn.build_mlp(tiny())
    compiled = compile_model(model, (28, 28))
    rows = job.summary_rows(compiled)
    first = rows[0]
    # 784 inputs need 13 words; 64 outputs x 13 words x 8 bytes; the u8 kernel adds or subtracts every pixel
    assert (first["params"], first["bytes"], first["float32_bytes"]) == (784 * 64, 64 * 13 * 8, 784 * 64 * 4)
    assert (first["adds"], first["popcounts"]) == (784 * 64, 0)
    compiled.stages[0].gemm = "bitplane"  # 8 planes x 13 words popcounts per output
    assert (job.summary_rows(compiled)[0]["popcounts"], job.summary_rows(compiled)[0]["adds"]) == (64 * 13 * 8, 0)
    assert rows[2]["bytes"] == 64 * 1 * 8 and rows[2]["popcounts"] == 64
    memory = job.weight_memory(compiled)
    assert memory["packed_bytes"] == 64 * 13 * 8 + 64 * 8 + 10 * 8


def test_precise_statistics_leave_training_alone_and_keep_calibrated_models(mnist, tmp_path):
    cfg = tiny(bn_stats="precise", calibration_size=700)
    model, precise = train_both_statistics(bnn.train, tiny(), cfg, mnist, tmp_path)
    kept, meta = bnn.load_float_model(tmp_path / "precise" / "best")
    assert meta["epoch"] == 1 + min(range(3), key=lambda i: precise[i]["val_error"])
    (xt, _), (xv, yv), _ = bnn.mnist_splits(cfg, mnist)
    assert bnn.error(kept, xv, yv) == precise[meta["epoch"] - 1]["val_error"]
    before = kept.state()
    kept.calibrate(xt[:700])  # the kept statistics are those of the kept weights on the first 700 images
    for key, value in kept.state().items():
        assert value.tobytes() == before[key].tobytes() == model.state()[key].tobytes(), key
    quiet = dict(data=mnist, progress=False, log=lambda line: None)
    bnn.train(cfg, out_dir=tmp_path / "resumed", stop_after=2, **quiet)
    resumed, history = bnn.train(cfg, out_dir=tmp_path / "resumed", resume=True, **quiet)
    assert len(history) == len(precise) == 3
    assert history == [dict(h, seconds=r["seconds"]) for h, r in zip(precise, history)]
    for key, value in model.state().items():
        assert resumed.state()[key].tobytes() == value.tobytes(), key
    with pytest.raises(ValueError, match=r"other options \(bn_stats: 'precise' -> 'running'; calibration_size: 700"):
        bnn.train(tiny(), out_dir=tmp_path / "resumed", resume=True, **quiet)


def test_calibrated_evaluation_restores_the_training_state_even_on_errors(mnist):
    from bitsim.methods.epochs import calibrated

    model = bnn.build_mlp(tiny())
    x = mnist["x_train"][:300]
    model.forward(x[:100])
    before = model.state()

    def fail():
        assert model.state()["3.running_mean"].tobytes() != before["3.running_mean"].tobytes()
        raise KeyError("evaluation failed")

    with pytest.raises(KeyError, match="evaluation failed"):
        calibrated(model, x, fail)
    assert all(value.tobytes() == before[key].tobytes() for key, value in model.state().items())
    result, kept = calibrated(model, x, lambda: 7)
    assert result == 7 and kept["3.running_mean"].tobytes() != before["3.running_mean"].tobytes()
    assert all(value.tobytes() == before[key].tobytes() for key, value in model.state().items())


def test_bad_config():
    with pytest.raises(ValueError, match="unknown bn_stats"):
        bnn.BNNConfig(bn_stats="exact")
    with pytest.raises(ValueError, match="calibration_size"):
        bnn.BNNConfig(calibration_size=0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        bnn.BNNConfig(optimizer="sgd9")
    with pytest.raises(ValueError, match="train_size must be 1..50000"):
        bnn.BNNConfig(train_size=60_000)
    with pytest.raises(ValueError, match="validation_size must be 0..10000"):
        bnn.BNNConfig(validation_size=-1)
    assert bnn.BNNConfig(train_size=60_000, validation_size=0).train_size == 60_000
    train, val, _ = bnn.mnist_splits(bnn.BNNConfig(train_size=60_000, validation_size=0),
                                     {"x_train": np.zeros((60_000, 1)), "y_train": np.zeros(60_000),
                                      "x_test": None, "y_test": None})
    assert len(train[0]) == 60_000 and len(val[0]) == 0


def test_float_baseline_equals_the_model_bit_for_bit(mnist):
    model = bnn.build_mlp(tiny(hidden=96))
    x = mnist["x_test"][:300]
    fast = bnn.float_forward(model)(x)
    np.testing.assert_array_equal(fast.view(np.uint32), model.forward(x, training=False).view(np.uint32))


def test_training_bits_do_not_depend_on_the_thread_count(mnist):
    # BLAS threads as a user may have set them (training pins its products to one) and Numba threads
    import numba
    from threadpoolctl import threadpool_info, threadpool_limits

    if not any(i["user_api"] == "blas" for i in threadpool_info()):
        pytest.skip("numpy's BLAS is not visible to threadpoolctl")
    cfg = bnn.BNNConfig(hidden=256, layers=2, epochs=1, train_size=3000, validation_size=500, seed=3)
    before, most, states = numba.get_num_threads(), numba.config.NUMBA_NUM_THREADS, []
    for threads in (1, 2):
        numba.set_num_threads(min(threads, most))
        try:
            with threadpool_limits(limits=threads, user_api="blas"):
                model, _ = bnn.train(cfg, data=mnist, progress=False, log=lambda *a: None)
        finally:
            numba.set_num_threads(before)
        states.append(model.state())
    for key, value in states[0].items():
        assert states[1][key].tobytes() == value.tobytes(), key


def test_translations_feed_the_written_shifts_and_resume_exactly(mnist, tmp_path, monkeypatch):
    from bitsim.datasets import random_shifts
    from bitsim.formats.rng import Philox

    cfg = tiny(translate=2, epochs=2)
    (xt, _), _, _ = bnn.mnist_splits(cfg, mnist)
    fed = record_translations(monkeypatch, bnn)
    quiet = dict(data=mnist, progress=False, log=lambda line: None)
    whole, _ = bnn.train(cfg, out_dir=tmp_path / "a", **quiet)
    steps = len(xt) // cfg.batch_size
    assert len(fed) == 2 * steps
    for epoch in range(2):  # every image once per epoch, in the epoch's order, with the epoch's shifts
        order = np.argsort(Philox(bnn.epoch_key(cfg.seed, epoch, 0)).uint32(len(xt)), kind="stable")
        dy, dx = random_shifts(Philox(bnn.translate_key(cfg.seed, epoch)), len(xt), 2)
        got = fed[epoch * steps:(epoch + 1) * steps]
        np.testing.assert_array_equal(np.concatenate([f[0] for f in got]), xt[order])
        np.testing.assert_array_equal(np.concatenate([f[1] for f in got]), dy[order])
        np.testing.assert_array_equal(np.concatenate([f[2] for f in got]), dx[order])
    assert bnn.translate_key(3, 4) == 3 * 2**20 + 2**19 + 4
    calls = len(fed)
    plain, _ = bnn.train(tiny(epochs=2, translate=0), **quiet)
    assert len(fed) == calls  # no shifts: the images go in as they are
    assert any(plain.state()[k].tobytes() != v.tobytes() for k, v in whole.state().items())
    bnn.train(cfg, out_dir=tmp_path / "b", stop_after=1, **quiet)
    resumed, _ = bnn.train(cfg, out_dir=tmp_path / "b", resume=True, **quiet)
    for key, value in whole.state().items():
        assert resumed.state()[key].tobytes() == value.tobytes(), key
    with pytest.raises(ValueError, match="translate: 2 -> 1"):
        bnn.train(tiny(translate=1, epochs=2), out_dir=tmp_path / "b", resume=True, **quiet)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="translate must be a whole number"):
            tiny(translate=bad)
