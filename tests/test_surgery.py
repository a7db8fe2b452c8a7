import json

import numpy as np
import pytest
import scipy.sparse

from bitsim import nn
from bitsim.cli import main
from bitsim.datasets import load_mnist
from bitsim.deploy import sparse
from bitsim.formats.rng import Philox
from bitsim.methods import surgery as S
from bitsim.nn.masked import (MaskedConv2d, MaskedDense, PruneRule, apply_thresholds, masked_layers, moments,
                               thresholds)
from trainer_checks import record_translations


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def tiny(model="lenet300", **changes):
    n = len(S.LAYER_NAMES[model])
    options = dict(dense_iters=60, conv_iters=30, fc_iters=40, retrain_iters=20, iter_stop=(25,) * n,
                   c={"lenet300": (2.4, 2.4, 1.0), "lenet5": (1.0, 3.0, 4.0, 2.5)}[model],
                   train_size=3000, test_size=300, eval_every=25, checkpoint_every=10, seed=5, gamma=0.05,
                   translate=0)
    if model == "lenet5":
        options.update(dense_iters=30, conv_iters=12, fc_iters=12, retrain_iters=6, iter_stop=(10,) * n,
                       train_size=1000, test_size=100)
    options.update(changes)
    return S.default_config(model, **options)


@pytest.fixture(scope="module")
def trained(mnist):
    out = {}
    for model in ("lenet300", "lenet5"):
        out[model] = S.train(tiny(model), data=mnist, progress=False, log=lambda line: None)
    return out


def dense_layer(w, b):
    layer = MaskedDense(w.shape[1], w.shape[0])
    layer.W.value[...] = w
    layer.b.value[...] = b
    return layer


# -- the mask rule -----------------------------------------------------------------------------


def test_thresholds_follow_the_formula_on_known_weights():
    # nonzero |values| of W and b together: 2, 4, 4, 4, 5, 5, 7, 9 -> mean 5, population std 2; zeros ignored
    w = np.array([[2, -4, 4, 0], [-4, 5, 0, 5]], np.float32)
    layer = dense_layer(w, np.array([-7, 9], np.float32))
    assert moments([layer.weight(), layer.bias()]) == (5.0, 2.0)
    layer.start_surgery(PruneRule(c=0.5, gamma=0.0))
    assert layer.thresholds == pytest.approx((0.9 * 6, 1.1 * 6), rel=0, abs=1e-15)
    assert thresholds(5.0, 2.0, -3.0) == (0.0, 0.0)  # max(mu + c sigma, 0)
    updated, pruned, spliced = layer.surgery_step(0, Philox(1))
    # |W| <= 5.4 -> 0 (the six nonzero weights and the two zeros); |b| = 7, 9 > 6.6 stay
    assert updated and (pruned, spliced) == (8, 0)
    assert not layer.T.any() and layer.Tb.all()
    # between the thresholds the mask keeps its value
    layer.W.value[0, 0] = 6.0  # a < 6 <= b: stays pruned
    layer.b.value[0] = 6.0  # a < 6 <= b: stays in use
    assert layer.surgery_step(1, Philox(1))[1:] == (0, 0)
    assert not layer.T[0, 0] and layer.Tb[0]
    layer.W.value[0, 0], layer.b.value[0] = 6.61, 5.0  # above b: spliced; below a: pruned
    assert layer.surgery_step(2, Philox(1))[1:] == (1, 1)
    assert layer.T[0, 0] and not layer.Tb[0]
    # the comparisons: prune at |v| <= a, splice at |v| > b (the authors' code)
    new, pruned, spliced = apply_thresholds(np.array([True, False, False, True]), [1.0, -2.0, 2.5, 1.5], 1.0, 2.0)
    assert new.tolist() == [False, False, True, True] and (pruned, spliced) == (1, 1)


def test_float32_comparisons_equal_the_float64_rule():
    rng = np.random.default_rng(4)
    for a, b in ((0.1, 0.3), (0.9 * 0.0123456789, 1.1 * 0.0123456789), (0.0, 0.0), (2.0, 2.0)):
        near = [np.float32(t) for t in (a, b)]
        near += [np.nextafter(v, np.float32(np.inf)) for v in near] + [np.nextafter(v, np.float32(0)) for v in near]
        values = np.concatenate([near, -np.array(near), rng.standard_normal(500) * 0.3]).astype(np.float32)
        mask = rng.random(values.size) < 0.5
        mag = np.abs(values.astype(np.float64))
        expected = np.where(mag <= a, False, np.where(mag > b, True, mask))
        new, pruned, spliced = apply_thresholds(mask, values, a, b)
        assert np.array_equal(new, expected)
        assert (pruned, spliced) == (np.sum(mask & ~expected), np.sum(expected & ~mask))


def test_schedule_probability_draws_and_stop():
    rule = PruneRule(c=0.0, gamma=0.01, power=2.0, iter_stop=150)
    assert rule.probability(0) == 1.0
    assert rule.probability(100) == (1 + 0.01 * 100) ** -2.0 == 0.25
    assert rule.probability(149) == (1 + 1.49) ** -2.0
    assert rule.probability(150) == rule.probability(10**6) == 0.0
    layer = dense_layer(np.ones((3, 4), np.float32), np.ones(3, np.float32))
    layer.start_surgery(rule)
    rng, check = Philox(99), Philox(99).uint32(200).astype(np.uint64)
    updated = [layer.surgery_step(t, rng)[0] for t in range(200)]
    expected = [bool(check[t] < np.floor(rule.probability(t) * 2**32)) for t in range(200)]
    assert updated == expected  # one draw per iteration, the section 5 rule
    assert rng.drawn == 200 and not any(updated[150:]) and 40 < sum(updated) < 150
    # iteration t uses p(t), not a neighbour: pick a key whose draws decide p(t) and p(t + 1) differently
    limit = np.floor(np.array([rule.probability(t) for t in range(151)]) * 2**32)
    draws = {k: Philox(k).uint32(150).astype(np.uint64) for k in range(20)}
    key = next(k for k, u in draws.items() if np.any((u < limit[:150]) != (u < limit[1:])))
    rng = Philox(key)
    assert [layer.surgery_step(t, rng)[0] for t in range(150)] == (draws[key] < limit[:150]).tolist()


def test_splicing_restores_a_pruned_connection():
    # y = w0 * x0 + w1 * x1; the data need w0, which starts small and is pruned first
    layer = dense_layer(np.array([[0.01, 1.0]], np.float32), np.array([0.8], np.float32))
    layer.start_surgery(PruneRule(c=0.0, gamma=0.0))  # |v| = 0.01, 1.0, 0.8: a = 0.543, b = 0.664
    a, b = layer.thresholds
    assert layer.surgery_step(0, Philox(3)) == (True, 1, 0) and not layer.T[0, 0] and layer.T[0, 1]
    opt = nn.SGD(layer.params(), lr=0.1)
    x = np.array([[1.0, 0.0]], np.float32)
    restored_at = None
    for t in range(1, 20):
        y = layer.forward(x)
        if not layer.T[0, 0]:
            assert y[0, 0] == layer.bias()[0]  # the pruned weight takes no part in the forward pass
        layer.backward(y - 3.0)  # squared error towards 3
        assert layer.W.grad[0, 0] != 0  # ... but it still gets the gradient of W * T
        opt.step()
        _, pruned, spliced = layer.surgery_step(t, Philox(3))
        if spliced:
            restored_at = t
            break
    assert restored_at is not None and layer.T[0, 0] and abs(layer.W.value[0, 0]) > b > a


def test_masked_forward_equals_dense_forward_on_masked_weights_and_gradients_reach_every_weight():
    rng = np.random.default_rng(0)
    masked = MaskedConv2d(3, 4, 3, stride=2, padding=1, init_rng=1)
    masked.T = rng.random(masked.T.shape) < 0.3
    masked.Tb = np.array([True, False, True, False])
    masked.b.value[...] = [0.5, -0.5, 0.25, 1.0]
    plain = nn.Conv2d(3, 4, 3, stride=2, padding=1)
    plain.W.value[...], plain.b.value[...] = masked.weight(), masked.bias()
    x = rng.standard_normal((2, 7, 7, 3)).astype(np.float32)
    g = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    assert masked.forward(x).tobytes() == plain.forward(x).tobytes()
    assert masked.backward(g).tobytes() == plain.backward(g).tobytes()
    assert masked.W.grad.tobytes() == plain.W.grad.tobytes() and masked.b.grad.tobytes() == plain.b.grad.tobytes()
    assert np.all(masked.W.grad[~masked.T] != 0)  # pruned weights get their gradient too

    dense = MaskedDense(6, 5, init_rng=2)
    dense.T = rng.random(dense.T.shape) < 0.5
    ref = nn.Dense(6, 5)
    ref.W.value[...] = dense.weight()
    x = rng.standard_normal((3, 6)).astype(np.float32)
    g = rng.standard_normal((3, 5)).astype(np.float32)
    assert dense.forward(x).tobytes() == ref.forward(x).tobytes()
    assert dense.backward(g).tobytes() == ref.backward(g).tobytes()
    assert dense.W.grad.tobytes() == ref.W.grad.tobytes() and np.all(dense.W.grad[~dense.T] != 0)
    first = MaskedDense(6, 5, input_grad=False)
    first.forward(x)
    assert first.backward(g) is None and first.W.grad.shape == (5, 6)


# -- training runs ------------------------------------------------------------------------------


def test_runs_prune_splice_and_track(trained):
    for name, (model, history, track) in trained.items():
        cfg = tiny(name)
        layers = masked_layers(model)
        assert track["spliced"].sum() > 0 and track["pruned"].sum() > 0  # splicing happens in real training
        assert [h["stage"] for h in history][-1] == "retrain" and 0 <= history[-1]["test_error"] < 1
        prunable = [i for i, n in enumerate(S.LAYER_NAMES[name])]
        assert track["active"][-1].tolist() == [m.active() for m in layers]
        # masks change only while a stage prunes the layer and before its iter_stop
        stop = cfg.iter_stop[0]
        rows_fc = [r for r, g in enumerate(track["iteration"])]
        assert len(rows_fc) == cfg.conv_iters * (name == "lenet5") + cfg.fc_iters + cfg.retrain_iters
        assert not track["updated"][-cfg.retrain_iters:].any()
        for l in prunable:
            changes = track["pruned"][:, l] + track["spliced"][:, l]
            assert changes[track["updated"][:, l] == 0].sum() == 0
        fc_start = cfg.conv_iters if name == "lenet5" else 0
        assert not track["updated"][fc_start + stop:fc_start + cfg.fc_iters].any()
        # the updates are the documented draws: Philox(mask_key(seed, stage, layer)), draw t for iteration t
        for s, stage, iters, prune in S.stage_plan(cfg):
            start = {"conv": 0, "fc": fc_start}.get(stage)
            for l in prune:
                rule = PruneRule(cfg.c[l], cfg.gamma, cfg.power, cfg.iter_stop[l])
                draws = Philox(S.mask_key(cfg.seed, s, l)).uint32(iters).astype(np.uint64)
                expected = [bool(draws[t] < np.floor(rule.probability(t) * 2**32)) for t in range(iters)]
                assert track["updated"][start:start + iters, l].tolist() == expected, (name, stage, l)
                assert 0 < sum(expected[:rule.iter_stop]) < rule.iter_stop  # p(t) < 1: some draws say no
            for l in set(range(len(layers))) - set(prune):
                if start is not None:
                    assert not track["updated"][start:start + iters, l].any()
        total, used, ratio = S.compression(model)
        assert total == {"lenet300": 266_610, "lenet5": 431_080}[name] and ratio == total / used > 1
    empty = S.build_model("lenet300")
    for layer in masked_layers(empty):
        layer.T[...], layer.Tb[...] = False, False
    assert S.compression(empty) == (266_610, 0, float("inf"))


def test_same_seed_same_bits_and_exact_resume(mnist, tmp_path):
    quiet = dict(data=mnist, progress=False, log=lambda line: None)
    cfg = tiny(checkpoint_every=11)
    whole, whole_history, track = S.train(cfg, out_dir=tmp_path / "a", **quiet)
    again, _, _ = S.train(cfg, **quiet)
    S.train(cfg, out_dir=tmp_path / "b", stop_after=83, **quiet)  # stops inside the fc stage
    S.train(cfg, out_dir=tmp_path / "b", stop_after=5, resume=True, **quiet)
    resumed, history, track2 = S.train(cfg, out_dir=tmp_path / "b", resume=True, **quiet)
    for other in (again, resumed):
        for key, value in whole.state().items():
            assert other.state()[key].tobytes() == value.tobytes(), key
    for key in track:
        assert np.array_equal(track[key], track2[key]), key
    assert history[-1]["iteration"] == cfg.dense_iters + cfg.fc_iters + cfg.retrain_iters
    assert history == whole_history  # the same evaluations, under the same keys
    # a different seed changes the bits
    other, _, _ = S.train(tiny(seed=6), **quiet)
    assert other.state()["0.W"].tobytes() != whole.state()["0.W"].tobytes()
    # the saved reference starts a run without the dense stage
    fc_only, hist, _ = S.train(cfg, reference=tmp_path / "a" / "reference", **quiet)
    assert hist == whole_history  # the reference's evaluations, then the same later ones
    for key, value in whole.state().items():  # the same bits as the run that trained the reference
        assert fc_only.state()[key].tobytes() == value.tobytes(), key


# -- sparse export ------------------------------------------------------------------------------


def test_sparse_export_round_trips_exactly(trained, mnist, tmp_path):
    for name, (model, _, _) in trained.items():
        shape = (784,) if name == "lenet300" else (28, 28, 1)
        exported = sparse.from_model(model, shape)
        exported.save(tmp_path / name)
        loaded = sparse.load(tmp_path / name)
        assert set(loaded.arrays) == set(exported.arrays)
        for key, value in exported.arrays.items():
            assert loaded.arrays[key].dtype == value.dtype and loaded.arrays[key].tobytes() == value.tobytes(), key
        for i, layer in zip(loaded.weight_ops(), masked_layers(model)):
            w = layer.weight().reshape(layer.W.value.shape[0], -1)
            ref = scipy.sparse.csr_matrix(np.where(layer.T.reshape(w.shape), w, 0))
            got = loaded.csr(i)
            assert got.nnz == layer.T.sum() == ref.nnz
            assert np.array_equal(got.indptr, ref.indptr) and np.array_equal(got.indices, ref.indices)
            assert got.data.tobytes() == ref.data.tobytes()
            assert loaded.arrays[f"{i}.indices"].dtype == np.uint16 and loaded.arrays[f"{i}.indptr"].dtype == np.uint32
        rebuilt = loaded.to_model()
        for a, b in zip(masked_layers(model), masked_layers(rebuilt)):
            assert a.weight().tobytes() == b.weight().tobytes() and a.bias().tobytes() == b.bias().tobytes()
            assert np.array_equal(a.T, b.T) and np.array_equal(a.Tb, b.Tb) and a.name == b.name
        x = S.inputs(name, mnist["x_test"][:200])
        assert model.forward(x, training=False).tobytes() == rebuilt.forward(x, training=False).tobytes()
        s = loaded.storage()
        assert (s["params"], s["nonzero"]) == S.compression(model)[:2]
        assert s["ratio"] == S.compression(model)[2]
    with open(tmp_path / "lenet300.json") as f:
        manifest = json.load(f)
    assert manifest["kind"] == "bitsim.deploy.SparseModel"
    with np.load(tmp_path / "lenet300.npz", allow_pickle=False) as npz:  # plain arrays, no pickled objects
        assert all(npz[key].dtype != object for key in npz.files)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(  # atomic writes leave no temporary files
        f"{name}.{ext}" for name in trained for ext in ("json", "npz"))


def test_storage_counts_by_hand(tmp_path):
    layer = dense_layer(np.array([[0, 1.5, 0], [-2, 0, 0.25]], np.float32), np.array([0.5, 0], np.float32))
    layer.T = layer.W.value != 0
    layer.name = "fc"
    exported = sparse.from_model(nn.Sequential([layer]), (3,))
    assert exported.arrays["0.data"].tolist() == [1.5, -2, 0.25]
    assert exported.arrays["0.indices"].tolist() == [1, 0, 2] and exported.arrays["0.indptr"].tolist() == [0, 1, 3]
    s = exported.storage()
    # 3 values x 4 B + 3 indices x 2 B + 3 row pointers x 4 B + 2 biases x 4 B
    assert (s["params"], s["nonzero"], s["bytes"], s["float32_bytes"]) == (8, 4, 12 + 6 + 12 + 8, 32)
    assert s["ratio"] == 2.0


def test_quantized_sparse_inference_is_exact(trained, mnist, tmp_path):
    for name, (model, _, _) in trained.items():
        shape = (784,) if name == "lenet300" else (28, 28, 1)
        exported = sparse.from_model(model, shape)
        n = 20 if name == "lenet300" else 2
        for fmt in ("ternary", "log8", "fixed8", "fixed4"):
            q = sparse.quantize(exported, fmt, mnist["x_train"][:300], act_bits=8)
            q.save(tmp_path / f"{name}-{fmt}")
            q = sparse.load(tmp_path / f"{name}-{fmt}")
            check = sparse.check_oracle(q, mnist["x_test"][:n])
            assert check["equal"], (name, fmt, check)
            check = sparse.check_float(q, mnist["x_test"][:10 * n], batch_size=7)
            assert check["equal"] and check["images"] == 10 * n, (name, fmt, check)
            assert q.storage()["nonzero"] <= exported.storage()["nonzero"]
            if fmt == "ternary":
                signs = [v for i in q.weight_ops() for v in q.values(i)]
                assert set(signs) <= {-1, 1}
                assert q.storage()["bytes"] < exported.storage()["bytes"]
        pred = sparse.quantize(exported, "fixed8", mnist["x_train"][:300]).predict(mnist["x_test"][:300])
        float_pred = model.forward(S.inputs(name, mnist["x_test"][:300]), training=False).argmax(1)
        assert np.mean(pred == float_pred) > 0.8  # the 8-bit integer model follows the float one


def test_oracles_catch_a_wrong_integer_score(trained, mnist, monkeypatch):
    model = trained["lenet300"][0]
    q = sparse.quantize(sparse.from_model(model, (784,)), "log8", mnist["x_train"][:300])
    x = mnist["x_test"][:6]
    exact = q.forward_int(x)
    assert exact.dtype == np.int64 and np.array_equal(exact, sparse.float_forward(q, x))
    assert [int(v) for v in exact[4]] == sparse.oracle_forward(q, x[4])
    wrong = exact.copy()
    wrong[4, 7] += 1
    monkeypatch.setattr(q, "forward_int", lambda images, counts=None: wrong[:len(images)])
    assert sparse.check_float(q, x)["mismatched_images"] == [4]
    assert sparse.check_oracle(q, x)["mismatched_images"] == [4]


def test_integer_model_uses_the_integer_kernel_route(trained, mnist, monkeypatch):
    from bitsim.kernels import intmatmul as kfixed

    routes = []
    real = kfixed.matmul

    def spy(*args, **kwargs):
        routes.append(kwargs.get("route"))
        return real(*args, **kwargs)

    monkeypatch.setattr(kfixed, "matmul", spy)
    q = sparse.quantize(sparse.from_model(trained["lenet300"][0], (784,)), "fixed8", mnist["x_train"][:50])
    q.forward_int(mnist["x_test"][:3])
    assert routes and set(routes) == {"integer"} and "route='integer'" in q.kernel_name()


def test_fixed_point_codes_hold_the_largest_survivor():
    values = np.array([0.3, -0.99, 0.5], np.float64)
    codes, fields = sparse._quantize_layer(values, "fixed8")
    assert fields["w_frac"] == 7 and codes.tolist() == [38, -127, 64]
    codes, fields = sparse._quantize_layer(np.array([0.999]), "fixed8")  # 0.999 * 128 rounds to 128
    assert fields["w_frac"] == 6 and codes.tolist() == [64]
    codes, fields = sparse._quantize_layer(np.array([1.99]), "fixed8")  # 1.99 * 64 = 127.4
    assert fields["w_frac"] == 6 and codes.tolist() == [127]
    codes, fields = sparse._quantize_layer(np.array([1.995]), "fixed8")  # 1.995 * 64 = 127.7 rounds to 128
    assert fields["w_frac"] == 5 and codes.tolist() == [64]


def test_cli_runs_the_pipeline(tmp_path, capsys):
    out = tmp_path / "run"
    status = main(["train", "surgery", "--model", "lenet300", "--dense-iters", "30", "--fc-iters", "30",
                   "--retrain-iters", "10", "--iter-stop", "20,20,20", "--c", "2.4,2.4,1", "--train-size", "2000",
                   "--test-size", "200",
                   "--eval-every", "20", "--check-images", "5", "--formats", "ternary,log8", "--out", str(out),
                   "--no-progress"])
    text = capsys.readouterr().out
    assert status == 0, text
    assert "round trip exact: True" in text and "== Python-int oracle on 5" in text
    assert "integer == float64 CSR oracle on 10,000 images" in text
    report = json.loads((out / "report.json").read_text())
    assert report["params"] == 266_610 and [r["format"] for r in report["exports"]] == ["float32", "ternary", "log8"]
    assert (out / "sparse.json").exists() and (out / "sparse-log8.json").exists()


def test_validation_mode_holds_out_training_images_and_never_reads_the_test_set(mnist, tmp_path, capsys):
    cfg = S.default_config("lenet300", validation_size=500, train_size=59_800)
    (xt, yt), (xv, yv), key = S.evaluation_split(cfg, mnist)
    assert key == "val_error" and len(xt) == 59_500 and len(xv) == 500
    assert np.array_equal(xv, mnist["x_train"][-500:]) and np.array_equal(xt, mnist["x_train"][:59_500])
    assert S.evaluation_split(S.default_config("lenet300"), mnist)[2] == "test_error"
    poisoned = dict(mnist, x_test=None, y_test=None)  # any use of the test set fails
    small = S.default_config("lenet300", dense_iters=20, fc_iters=20, retrain_iters=0, iter_stop=(10, 10, 10),
                             train_size=1000, validation_size=300, eval_every=10)
    _, history, _ = S.train(small, out_dir=tmp_path, data=poisoned, progress=False, log=lambda line: None)
    assert S.error_key(history) == "val_error" and all("test_error" not in h for h in history)
    assert S.reference_error(history) == f"{100 * history[1]['val_error']:.2f}%"
    with pytest.raises(ValueError, match="validation_size"):
        S.default_config("lenet300", validation_size=60_000)


def test_bad_options():
    with pytest.raises(ValueError, match="3 prunable layers"):
        S.default_config("lenet300", c=(1.0, 2.0))
    with pytest.raises(ValueError, match="unknown model"):
        S.default_config("alexnet")
    with pytest.raises(ValueError, match="fixedN"):
        sparse.check_format("fixed32")
    layer = MaskedDense(2, 2)
    with pytest.raises(RuntimeError, match="start_surgery"):
        layer.surgery_step(0, Philox(1))
    with pytest.raises(ValueError, match="nothing to prune"):
        dense_layer(np.zeros((2, 2), np.float32), np.zeros(2, np.float32)).start_surgery(PruneRule(1.0))


def test_translations_follow_the_written_keys_and_resume_exactly(mnist, tmp_path, monkeypatch):
    from bitsim.datasets import random_shifts

    cfg = tiny(translate=1, checkpoint_every=11)
    fed = record_translations(monkeypatch, S)
    quiet = dict(data=mnist, progress=False, log=lambda line: None)
    whole, _, _ = S.train(cfg, out_dir=tmp_path / "a", **quiet)
    per_epoch = cfg.train_size // cfg.batch_size
    total = cfg.dense_iters + cfg.fc_iters + cfg.retrain_iters
    assert len(fed) == total > per_epoch  # every batch, across an epoch boundary
    for epoch in range(2):
        order = np.argsort(Philox(S.shuffle_key(cfg.seed, epoch)).uint32(cfg.train_size), kind="stable")
        dy, dx = random_shifts(Philox(S.translate_key(cfg.seed, epoch)), cfg.train_size, 1)
        got = fed[epoch * per_epoch:min((epoch + 1) * per_epoch, total)]
        used = order[:len(got) * cfg.batch_size]
        np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), dy[used])
        np.testing.assert_array_equal(np.concatenate([g[2] for g in got]), dx[used])
    S.train(cfg, out_dir=tmp_path / "b", stop_after=70, **quiet)  # stops in the second epoch
    resumed, _, _ = S.train(cfg, out_dir=tmp_path / "b", resume=True, **quiet)
    plain, _, _ = S.train(tiny(checkpoint_every=11), **quiet)
    for key, value in whole.state().items():
        assert resumed.state()[key].tobytes() == value.tobytes(), key
    assert plain.state()["0.W"].tobytes() != whole.state()["0.W"].tobytes()
    assert len(fed) == total + 70 + (total - 70)  # the run without shifts translated nothing
    assert S.translate_key(3, 4) == 3 * 2**20 + 2**19 + 4
    with pytest.raises(ValueError, match="translate must be a whole number"):
        tiny(translate=-1)


def test_resume_refuses_other_options(mnist, tmp_path):
    quiet = dict(data=mnist, progress=False, log=lambda line: None)
    S.train(tiny(), out_dir=tmp_path, stop_after=30, **quiet)
    with pytest.raises(ValueError, match=r"c: \[2.4, 2.4, 1.0\] -> \[2.0, 2.4, 1.0\]; translate: 0 -> 1"):
        S.train(tiny(translate=1, c=(2.0, 2.4, 1.0)), out_dir=tmp_path, resume=True, **quiet)
    _, history, _ = S.train(tiny(), out_dir=tmp_path, resume=True, **quiet)  # the same options continue
    assert history[-1]["iteration"] == 60 + 40 + 20
