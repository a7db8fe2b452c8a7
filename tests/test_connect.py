"""BinaryConnect / TernaryConnect with quantized back-propagation: kernels, rules, exactness, counts, training."""

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bitsim import nn
from bitsim.formats import binary, fixed, log, ternary
from bitsim.formats.dynamic_fixed import dynamic_fixed
from bitsim.formats.log import LogFormat
from bitsim.formats.rng import draws, make_rng
from bitsim.kernels.sampling import sample_weights
from bitsim.kernels.signadd import signadd_gemm
from bitsim.methods import connect as method
from bitsim.nn import connect as C
from bitsim.nn.mults import count_multiplications
from bitsim.nn.qbp import QBP, qbp_float_emulation, qbp_log_codes, qbp_weight_grad

from strategies import float32s, lengths, pm1_arrays, seeds, ternary_arrays
from trainer_checks import record_translations, train_both_statistics

GENERATORS = ["philox", "xorshift32"]


# ---------------------------------------------------------------------------------------
# sign-add kernel


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (17, 5, 3), (33, 130, 70), (5, 64, 65), (40, 200, 1)])
def test_signadd_equals_integer_and_float32_products(m, k, n):
    rng = np.random.default_rng(m * 1000 + k + n)
    w = rng.choice([-1, 1], (n, k))
    t = rng.choice([-1, 0, 1], (n, k))
    x = rng.integers(-2**15, 2**15, (m, k)).astype(np.int16)
    np.testing.assert_array_equal(signadd_gemm(x, binary.pack(w), k), x.astype(np.int64) @ w.T)
    signs, mask = ternary.pack_ternary(t)
    np.testing.assert_array_equal(signadd_gemm(x, signs, k, mask=mask), x.astype(np.int64) @ t.T)
    # partial sums below 2**24: the float32 product of the same values is the same, in any order
    small = rng.integers(-2**8, 2**8, (m, k)).astype(np.int16)
    f32 = small.astype(np.float32) @ w.T.astype(np.float32)
    got = signadd_gemm(small, binary.pack(w), k)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got.astype(np.float32), f32)


def test_signadd_wide_sums_and_errors():
    x = np.full((3, 70000), 2**15 - 1, np.int16)  # 70000 * 32767 > 2**31: int64 accumulation
    w = np.ones((2, 70000), np.int8)
    out = signadd_gemm(x, binary.pack(w), 70000)
    assert out.dtype == np.int64 and out[0, 0] == 70000 * (2**15 - 1)
    with pytest.raises(OverflowError, match="int64"):
        signadd_gemm(x, binary.pack(w), 70000, acc_dtype=np.int32)
    with pytest.raises(TypeError, match="fixed.quantize"):
        signadd_gemm(np.ones((2, 3), np.float32), binary.pack(np.ones((1, 3))), 3)
    signs, mask = ternary.pack_ternary([[1, 0, -1]])
    with pytest.raises(ValueError, match="non-canonical"):
        signadd_gemm(np.ones((1, 3), np.int8), signs | np.uint64(2), 3, mask=mask)


# ---------------------------------------------------------------------------------------
# random draws and weight sampling


@pytest.mark.parametrize("name", GENERATORS)
def test_draws_are_the_generators_own(name):
    a, b = make_rng(name, 77), make_rng(name, 77)
    for size in (1, 2, 3, 10, 0, 5, 4, 4, 1001, 7):
        np.testing.assert_array_equal(draws(a, size), b.uint32(size))
    np.testing.assert_array_equal(a.uint32(9), b.uint32(9))  # the state after is the same too


@pytest.mark.parametrize("name", GENERATORS)
def test_sampling_follows_the_formats_rules_and_packs_both_ways(name):
    w = np.random.default_rng(5).uniform(-1.1, 1.1, (70, 130)).astype(np.float32)
    w[0, :4] = [-1, 1, 0, -0.0]
    sb = sample_weights(w, "binary", True, make_rng(name, 9))
    np.testing.assert_array_equal(sb.values(), binary.binarize_stochastic(w, make_rng(name, 9)))
    np.testing.assert_array_equal(sb.signs, binary.pack(sb.values()))
    np.testing.assert_array_equal(sb.signs_t, binary.pack(sb.values().T))
    st = sample_weights(w, "ternary", True, make_rng(name, 9))
    np.testing.assert_array_equal(st.values(), ternary.ternarize_stochastic(w, make_rng(name, 9)))
    for planes, values in (((st.signs, st.mask), st.values()), ((st.signs_t, st.mask_t), st.values().T)):
        for got, want in zip(planes, ternary.pack_ternary(values)):
            np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(sample_weights(w, "binary", False).values(), binary.binarize(w))
    np.testing.assert_array_equal(sample_weights(w, "ternary", False).values(), ternary.ternarize(w, 0.5))
    again = sample_weights(w, "ternary", True, make_rng(name, 9))
    np.testing.assert_array_equal(again.signs, st.signs)
    other = sample_weights(w, "ternary", True, make_rng(name, 10))
    assert not np.array_equal(other.values(), st.values())


@pytest.mark.parametrize("name", GENERATORS)
def test_sampling_frequencies(name):
    n = 100_000
    w = np.full((10, n // 10), 0.5, np.float32)
    plus = np.mean(sample_weights(w, "binary", True, make_rng(name, 3)).values() == 1)
    assert abs(plus - 0.75) < 5 * math.sqrt(0.75 * 0.25 / n)  # P(+1) = (W + 1) / 2
    w[:] = -0.3
    t = sample_weights(w, "ternary", True, make_rng(name, 3)).values()
    assert set(np.unique(t)) == {-1, 0}
    assert abs(np.mean(t == -1) - 0.3) < 5 * math.sqrt(0.3 * 0.7 / n)  # P(sign W) = |W|
    w[:] = 1.0
    assert (sample_weights(w, "ternary", True, make_rng(name, 3)).values() == 1).all()


# ---------------------------------------------------------------------------------------
# quantizers of QBP


def test_dynamic_fixed_rule():
    v = np.float32([0.75, -0.3, 0.1])
    codes, f = dynamic_fixed(v, 8)
    assert f == 7  # max 0.75 < 2**0: 7 fractional bits in 8 bits
    np.testing.assert_array_equal(codes, [96, -38, 13])  # 0.75*128, -38.4, 12.8
    assert dynamic_fixed(np.float32([4.0]), 16)[1] == 12  # 4 = 2**2 needs E = 3
    ties, _ = dynamic_fixed(np.float32([0.5, 1.5, 2.5, -0.5, -2.5]), 8, frac_bits=0)
    np.testing.assert_array_equal(ties, [0, 2, 2, 0, -2])  # nearest even
    counts = nn.connect.Counts()
    codes, f = dynamic_fixed(np.float32([0.9999999, -0.5]), 4, counts=counts)
    assert f == 3 and codes.tolist() == [7, -4] and counts.saturated == 1  # 0.9999999 * 8 rounds to 8: saturates
    g = np.random.default_rng(0).standard_normal((20, 30)).astype(np.float32)
    for rounding, rng in (("nearest_even", None), ("stochastic", 4)):
        codes, f = dynamic_fixed(g, 12, rounding, rng)
        np.testing.assert_array_equal(codes, fixed.quantize(g, fixed.FixedFormat(12, f, rounding=rounding), rng=rng))


@pytest.mark.parametrize("name", GENERATORS)
def test_log_codes_rule(name):
    q = QBP()  # 3-bit exponents, window -4..2
    fmt = q.log_format
    assert (fmt.emin, fmt.emax) == (-4, 2)
    x = (np.random.default_rng(1).standard_normal((40, 50)) * 2).astype(np.float32)
    x[0, :5] = [0, -0.0, 1e-3, 100.0, -5.0]
    inside = np.abs(x) >= 2.0**fmt.emin
    codes = qbp_log_codes(x, q, make_rng(name, 7))
    ref = log.encode(x, LogFormat(3, -1, rounding="stochastic"), rng=make_rng(name, 7))
    np.testing.assert_array_equal(codes[inside], ref[inside])  # the formats' stochastic log rounding
    assert codes[0, 0] == 0x4 and codes[0, 1] == 0xC  # signed zeros
    assert codes[0, 3] == 0x3  # 100 saturates to 2**2
    for mode in ("flush", "saturate"):
        got = qbp_log_codes(x, QBP(underflow=mode), make_rng(name, 7))
        want = log.encode(x, LogFormat(3, -1, rounding="stochastic", underflow=mode), rng=make_rng(name, 7))
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", GENERATORS)
def test_log_codes_bernoulli_boundaries_are_strict(name):
    # "yes iff u < threshold": a value whose threshold equals its draw rounds down, one more ulp rounds up
    q = QBP()
    u = make_rng(name, 5).uint32(5000).astype(np.int64)
    i = int(np.flatnonzero((u >= 2**23) & (u < 2**24 - 1))[0])
    below = np.zeros(i + 1, np.float32)
    below[i] = u[i] * 2.0**-36  # E = -13 = emin - 9: threshold (2**23 + M) << 0 = u[i]
    assert qbp_log_codes(below, q, make_rng(name, 5))[i] == 0x4  # u == threshold: zero (flushed)
    below[i] = (u[i] + 1) * 2.0**-36
    assert qbp_log_codes(below, q, make_rng(name, 5))[i] == 0x5  # u < threshold: 2**emin
    j = int(np.flatnonzero((u >> 9) < 2**23 - 1)[0])
    inside = np.zeros(j + 1, np.float32)
    inside[j] = (2**23 + (u[j] >> 9)) * 2.0**-24  # E = -1, M = u >> 9: stays at 2**-1
    assert qbp_log_codes(inside, q, make_rng(name, 5))[j] == 0x0
    inside[j] = (2**23 + (u[j] >> 9) + 1) * 2.0**-24  # M = (u >> 9) + 1: up to 2**0
    assert qbp_log_codes(inside, q, make_rng(name, 5))[j] == 0x1


def test_log_rounding_frequencies():
    n = 100_000
    q = QBP()
    x = np.full(n, 1.25 * 2.0**-2, np.float32)  # p_up = 1.25 - 1
    e = log.split(qbp_log_codes(x, q, make_rng("philox", 2)), q.log_format)[1]
    assert set(np.unique(e)) == {-2, -1} and abs(np.mean(e == -1) - 0.25) < 5 * math.sqrt(0.25 * 0.75 / n)
    x[:] = 2.0**-7  # below the window: 2**-4 with probability 2**-7 / 2**-4 = 1/8, else 0
    sign, e, zero = log.split(qbp_log_codes(x, q, make_rng("philox", 2)), q.log_format)
    assert set(np.unique(e[~zero])) == {-4}
    assert abs(np.mean(~zero) - 0.125) < 5 * math.sqrt(0.125 * 0.875 / n)
    xq = log.decode(qbp_log_codes(np.full(n, 0.3, np.float32), q, make_rng("philox", 2)), q.log_format)
    assert abs(xq.mean() - 0.3) < 5 * 0.1 / math.sqrt(n)  # unbiased: E[x_q] = x


# ---------------------------------------------------------------------------------------
# layers: exactness of the forward product and of QBP


def layer_pair(kind, qbp=QBP(), **kw):
    return C.ConnectDense(50, 20, kind, True, make_rng("philox", 1), qbp=qbp, qbp_rng=make_rng("xorshift32", 2),
                          init_rng=3, **kw)


@pytest.mark.parametrize("kind", ["binary", "ternary"])
def test_forward_is_the_exact_float32_product(kind):
    layer = layer_pair(kind)
    x = np.random.default_rng(4).uniform(0, 3, (30, 50)).astype(np.float32)
    y = layer.forward(x)
    codes, f = dynamic_fixed(x, 16)
    xf = np.ldexp(codes.astype(np.float32), -f)
    wq = layer._sample.values().astype(np.float32)
    np.testing.assert_array_equal(y, xf @ wq.T)  # sums of integers below 2**24: exact in float32
    again = layer_pair(kind)
    np.testing.assert_array_equal(again.forward(x), y)  # same generator seeds, same sample


@pytest.mark.parametrize("kind", ["binary", "ternary"])
def test_qbp_integer_gradients_are_exact(kind):
    layer = layer_pair(kind, bias=True)
    rng = np.random.default_rng(6)
    x = np.maximum(rng.standard_normal((64, 50)), 0).astype(np.float32)
    layer.forward(x)
    g = (rng.standard_normal((64, 20)) * 1e-3).astype(np.float32)
    dx = layer.backward(g)
    last, fmt = layer.last, layer.qbp.log_format
    xq = log.decode(last["x_codes"], fmt).astype(np.float64)
    g_fx = last["g_codes"].astype(np.float64) * 2.0 ** -last["g_frac"]
    # the integer sums equal float64 on the same quantized values, exactly
    np.testing.assert_array_equal(last["dw"] * 2.0 ** -last["dw_frac"], g_fx.T @ xq)
    wq = layer._sample.values().astype(np.float64)
    np.testing.assert_array_equal(last["dx"] * 2.0 ** -last["g_frac"], g_fx @ wq)
    np.testing.assert_array_equal(dx, (g_fx @ wq).astype(np.float32))
    np.testing.assert_array_equal(layer.W.grad, (g_fx.T @ xq).astype(np.float32))
    np.testing.assert_array_equal(layer.b.grad, g_fx.sum(axis=0).astype(np.float32))  # db by additions
    # the codes of x are the stochastic log rounding of the fixed-point x the forward used
    codes, f = dynamic_fixed(x, 16)
    again = qbp_log_codes(np.ldexp(codes.astype(np.float32), -f), layer.qbp, make_rng("xorshift32", 2))
    np.testing.assert_array_equal(last["x_codes"], again)
    # against the float-emulated version (float32 g, dW = g^T x_q in float32): the stated bound
    emulated = qbp_float_emulation(last["x_codes"], layer.qbp, g).astype(np.float64)
    bound = (2.0 ** -last["g_frac"] + 2.0**-24 * 66 * np.abs(g.astype(np.float64))).T @ np.abs(xq)
    bound += 2.0**-24 * np.abs(g_fx.T @ xq)
    assert (np.abs(layer.W.grad - emulated) <= bound).all()
    assert np.abs(layer.W.grad - emulated).max() <= 2.0**-14 * np.abs(emulated).max()


def test_without_qbp_the_backward_is_float():
    layer = layer_pair("binary", qbp=None)
    x = np.random.default_rng(7).uniform(0, 1, (10, 50)).astype(np.float32)
    layer.forward(x)
    g = np.random.default_rng(8).standard_normal((10, 20)).astype(np.float32)
    dx = layer.backward(g)
    codes, f = dynamic_fixed(x, 16)
    np.testing.assert_allclose(layer.W.grad, g.T @ np.ldexp(codes.astype(np.float32), -f), rtol=1e-5)
    np.testing.assert_allclose(dx, g @ layer._sample.values().astype(np.float32), rtol=1e-5)


def test_first_layer_returns_no_input_gradient_and_inference_modes():
    layer = layer_pair("ternary", input_grad=False)
    x = np.random.default_rng(9).uniform(0, 1, (8, 50)).astype(np.float32)
    layer.forward(x)
    assert layer.backward(np.ones((8, 20), np.float32)) is None and "dx" in layer.last
    layer.W.value[:] = 0.7
    layer.inference = "deterministic"
    det = layer.forward(x, training=False)
    np.testing.assert_array_equal(det, np.repeat(det[:, :1], 20, axis=1))  # every weight +1
    layer.inference = "latent"
    codes, f = dynamic_fixed(x, 16)
    np.testing.assert_allclose(layer.forward(x, training=False), np.ldexp(codes.astype(np.float32), -f) @
                               layer.W.value.T, rtol=1e-6)


def test_convolution_by_im2col_is_exact():
    layer = C.ConnectConv2d(3, 4, 3, padding=1, weights="ternary", rng=make_rng("philox", 1), qbp=QBP(),
                            qbp_rng=make_rng("philox", 2), init_rng=3)
    rng = np.random.default_rng(10)
    x = rng.uniform(0, 2, (2, 5, 5, 3)).astype(np.float32)
    y = layer.forward(x)
    codes, f = dynamic_fixed(x, 16)
    ref = nn.Conv2d(3, 4, 3, padding=1, bias=False, dtype=np.float64)
    ref.W.value[:] = layer._sample.values().reshape(4, 3, 3, 3)
    np.testing.assert_array_equal(y, ref.forward(np.ldexp(codes.astype(np.float64), -f)).astype(np.float32))
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(g)
    last = layer.last
    g_fx = last["g_codes"].astype(np.float64) * 2.0 ** -last["g_frac"]
    ref.backward(g_fx.reshape(y.shape))
    np.testing.assert_array_equal(dx, ref.backward(g_fx.reshape(y.shape)).astype(np.float32))
    xq = log.decode(last["x_codes"], layer.qbp.log_format).astype(np.float64)
    np.testing.assert_array_equal(last["dw"] * 2.0 ** -last["dw_frac"], g_fx.T @ xq)


# ---------------------------------------------------------------------------------------
# multiplication counts


def test_multiplication_counts_by_hand():
    q = QBP()
    model = nn.Sequential([C.ConnectDense(6, 4, "binary", True, 1, qbp=q, qbp_rng=2, input_grad=False),
                           nn.BatchNorm(4), nn.ReLU(),
                           C.ConnectDense(4, 3, "ternary", True, 1, qbp=q, qbp_rng=2), nn.BatchNorm(3)])
    rows = count_multiplications(model, (6,), 5, nn.SquaredHinge(), nn.Adam(model.params()))
    first, bn, relu, second, bn3, loss = rows
    # Connect + QBP: no multiplication forward or backward; the float layer: 5*6*4 = 120 forward,
    # 120 for dW and none for dx in the first layer, 2 * 5*4*3 in the second
    assert first["forward"].total == first["backward"].total == 0
    assert (first["float_forward"].total, first["float_backward"].total) == (120, 120)
    assert (second["float_forward"].total, second["float_backward"].total) == (60, 120)
    # Adam per weight: 6 products, 3 quotients, 1 square root
    assert (first["update"].mul, first["update"].div, first["update"].sqrt) == (6 * 24, 3 * 24, 24)
    # batch norm of 4 features over 5 examples (20 values): forward c*c, c*scale, gain*xhat = 60, running
    # averages 4 * 4 = 16; mean and var / 5: 8, 1/sqrt: 4; backward 5 * 20 + 3 * 4 products, 20 + 4 quotients
    assert (bn["forward"].mul, bn["forward"].div, bn["forward"].sqrt) == (76, 12, 4)
    assert (bn["backward"].mul, bn["backward"].div) == (112, 24)
    assert bn["update"].total == 9 * 8 and relu["forward"].total == relu["backward"].total == 0
    # squared hinge on 5 x 3 scores: margin**2 (15), the sum / 5 and the gradient / 5 (16)
    assert (loss["forward"].mul, loss["forward"].div) == (15, 16)
    # a batch of 8: divisions by 8 are shifts
    rows8 = count_multiplications(model, (6,), 8, nn.SquaredHinge(), nn.SGD(model.params(), 0.1))
    assert rows8[1]["forward"].div == 4 and rows8[1]["backward"].div == 0 and rows8[-1]["forward"].div == 0
    assert rows8[0]["update"].total == 24  # SGD: lr * g
    # without QBP a Connect layer still multiplies in dW = g^T x (8*6*4), never in the forward or dx
    plain = nn.Sequential([C.ConnectDense(6, 4, "binary", True, 1, input_grad=False), nn.BatchNorm(4), nn.ReLU(),
                           C.ConnectDense(4, 3, "ternary", True, 1), nn.BatchNorm(3)])
    rows = count_multiplications(plain, (6,), 8)
    assert (rows[0]["forward"].total, rows[0]["backward"].total) == (0, 8 * 6 * 4)
    assert (rows[3]["forward"].total, rows[3]["backward"].total) == (0, 8 * 4 * 3)


# ---------------------------------------------------------------------------------------
# training


def tiny(**changes):
    options = dict(weights="ternary", qbp=True, hidden=32, layers=2, epochs=2, batch_size=100, train_size=600,
                   validation_size=200, seed=3)
    options.update(changes)
    return method.ConnectConfig(**options)


@pytest.fixture(scope="module")
def mnist():
    from bitsim.datasets import load_mnist

    data = load_mnist()
    return dict(data, x_test=data["x_test"][:300], y_test=data["y_test"][:300])


@pytest.mark.parametrize("rng", GENERATORS)
def test_training_smoke_and_exact_resume(mnist, tmp_path, rng):
    data = mnist
    quiet = dict(data=data, progress=False, log=lambda line: None)
    cfg = tiny(rng=rng)
    model, history = method.train(cfg, out_dir=tmp_path / "a", **quiet)
    assert len(history) == 2 and history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_error"] < 0.6 and history[-1]["saturated"] >= 0
    method.train(cfg, out_dir=tmp_path / "b", stop_after=1, **quiet)
    resumed, _ = method.train(cfg, out_dir=tmp_path / "b", resume=True, **quiet)
    for key, value in model.state().items():
        assert resumed.state()[key].tobytes() == value.tobytes(), key
    before = {key: value.tobytes() for key, value in model.state().items()}
    check = method.qbp_check(model, cfg, data["x_train"][:100], data["y_train"][:100])
    assert all(r["exact"] and r["within"] for r in check)
    assert {key: value.tobytes() for key, value in model.state().items()} == before  # the check changes nothing
    rebuilt, meta = method.load_model(tmp_path / "a" / "best")
    assert meta["config"]["rng"] == rng


def test_without_validation_the_last_epoch_is_kept_and_resumes(mnist, tmp_path):
    quiet = dict(data=mnist, progress=False, log=lambda line: None)
    cfg = tiny(validation_size=0, epochs=3)
    model, history = method.train(cfg, out_dir=tmp_path / "a", **quiet)
    assert [h["val_error"] for h in history] == [None] * 3 and method.kept_epoch(history) == 2
    last, _ = method.load_model(tmp_path / "a" / "checkpoint")
    best, meta = method.load_model(tmp_path / "a" / "best")
    assert meta["epoch"] == 3
    for key, value in model.state().items():
        assert best.state()[key].tobytes() == value.tobytes(), key
        if "running_" not in key:  # the checkpoint keeps the running averages, the kept model calibrated ones
            assert last.state()[key].tobytes() == value.tobytes(), key
    method.train(cfg, out_dir=tmp_path / "b", stop_after=1, **quiet)
    resumed, _ = method.train(cfg, out_dir=tmp_path / "b", resume=True, **quiet)
    for key, value in model.state().items():
        assert resumed.state()[key].tobytes() == value.tobytes(), key
    assert method.kept_epoch([{"val_error": 0.2}, {"val_error": 0.1}, {"val_error": 0.1}]) == 1


def test_precise_statistics_leave_training_alone_and_match_each_weight_mode(mnist, tmp_path):
    cfg = tiny(bn_stats="precise", calibration_size=250)
    model, precise = train_both_statistics(method.train, tiny(bn_stats="running"), cfg, mnist, tmp_path)
    (xt, _), (xv, yv), (xs, ys) = method.mnist_splits(cfg, mnist)
    kept = method.kept_epoch(precise)
    assert method.error(model, xv, yv) == precise[kept]["val_error"]
    before = model.state()
    model.calibrate(method.inputs(xt[:250]))  # the kept statistics are the latent weights' on 250 images
    assert all(value.tobytes() == before[key].tobytes() for key, value in model.state().items())
    for layer in method.connect_layers(model):
        layer.inference = "deterministic"
    model.calibrate(method.inputs(xt[:250]))
    wrong = np.sum(model.forward(method.inputs(xs), training=False).argmax(1) != ys)
    model.load_state(before)
    for layer in method.connect_layers(model):
        layer.inference = "latent"
    assert precise[kept]["test_error_deterministic"] == wrong / len(xs)
    assert method.error(model, xs, ys, "deterministic", calibration=xt[:250]) == wrong / len(xs)
    assert all(value.tobytes() == before[key].tobytes() for key, value in model.state().items())


@pytest.mark.parametrize("bn_stats", ["running", "precise"])
def test_deterministic_inference_runs_report_their_own_test_error(mnist, bn_stats):
    cfg = tiny(epochs=1, inference="deterministic", bn_stats=bn_stats, calibration_size=250)
    model, history = method.train(cfg, data=mnist, progress=False, log=lambda line: None)
    (xt, _), _, (xs, ys) = method.mnist_splits(cfg, mnist)
    calibration = xt[:250] if bn_stats == "precise" else None
    assert history[0]["test_error_deterministic"] == history[0]["test_error"] == method.error(model, xs, ys)
    assert method.error(model, xs, ys, "deterministic", calibration=calibration) == history[0]["test_error"]


def test_same_bits_on_every_run_and_thread_count(mnist):
    import numba

    most = numba.config.NUMBA_NUM_THREADS
    states = []
    for threads in (most, 1, most):
        numba.set_num_threads(threads)
        try:
            model, _ = method.train(tiny(epochs=1, rng="xorshift32"), data=mnist, progress=False, log=lambda line: None)
        finally:
            numba.set_num_threads(most)
        states.append(model.state())
    for state in states[1:]:
        assert state.keys() == states[0].keys()
        for key, value in state.items():
            assert value.tobytes() == states[0][key].tobytes(), key


def test_generator_keys_follow_the_written_rule():
    # docs/formats.md, section 10: key = seed * 2**24 + 16 * epoch + stream; xorshift32 seeded 1 + key mod (2**32 - 1)
    assert method.stream_key(3, 2, 5) == 3 * 2**24 + 37
    for rng in GENERATORS:
        cfg = tiny(rng=rng)
        model = method.build_model(cfg)
        method.rekey(model, cfg, 4)
        first = method.connect_layers(model)[1]
        key = cfg.seed * 2**24 + 16 * 4
        seed = key + 3 if rng == "philox" else 1 + (key + 3) % (2**32 - 1)
        np.testing.assert_array_equal(first.rng.uint32(6), make_rng(rng, seed).uint32(6))  # stream 1 + 2 * 1
        seed = key + 4 if rng == "philox" else 1 + (key + 4) % (2**32 - 1)
        np.testing.assert_array_equal(first.qbp_rng.uint32(6), make_rng(rng, seed).uint32(6))  # stream 2 + 2 * 1


def test_config_errors():
    with pytest.raises(ValueError, match="unknown bn_stats"):
        method.ConnectConfig(bn_stats="exact")
    with pytest.raises(ValueError, match="calibration_size"):
        method.ConnectConfig(calibration_size=0)
    with pytest.raises(ValueError, match="binary or ternary"):
        method.ConnectConfig(weights="float", qbp=True)
    with pytest.raises(ValueError, match="exp_bits"):
        method.ConnectConfig(qbp=True, exp_bits=9)
    with pytest.raises(ValueError, match="underflow"):
        QBP(underflow="round")
    with pytest.raises(ValueError, match="train_size must be 1..50000"):
        method.ConnectConfig(train_size=60_000)
    assert method.ConnectConfig(train_size=60_000, validation_size=0).train_size == 60_000


def test_cli_trains_checks_and_counts(tmp_path, capsys):
    from bitsim.cli import main

    out = tmp_path / "run"
    main(["train", "connect", "--weights", "ternary", "--qbp", "--hidden", "32", "--layers", "1", "--epochs", "2",
          "--train-size", "400", "--out", str(out), "--no-progress", "--rng", "xorshift32"])
    text = capsys.readouterr().out
    assert "integer dW == float64 on the same quantized values: every layer" in text
    assert "float-emulated dW within the bound: True" in text
    report = json.loads((out / "report.json").read_text())
    assert report["epochs"] == 2 and all(r["exact"] and r["within"] for r in report["qbp_check"])
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and "test_error_deterministic" in history[0]
    # the matrix products of a QBP network need no multiplication: what is left is batch norm, loss, optimizer
    parts = report["multiplications"]["this"]
    assert parts["products"] == 0 and parts["optimizer"] > 0 and parts["batch_norm"] > 0
    batch = method.ConnectConfig().batch_size
    assert report["multiplications"]["float"]["products"] == batch * (2 * 784 * 32 + 3 * 32 * 10)
    main(["train", "connect", "--weights", "binary", "--qbp", "--hidden", "32", "--layers", "1", "--batch-size", "8",
          "--optimizer", "sgd", "--mults"])
    table = capsys.readouterr().out
    # batch 8, 784-32-10 with SGD: float products 8*784*32 (forward) + 8*784*32 (dW, no dx for the first layer)
    # + 8*32*10 * 3; the Connect layers none; SGD one product per weight
    rows = {line.split()[0]: [int(v.replace(",", "")) for v in line.split()[-5:]]
            for line in table.splitlines() if line[:1].isdigit()}
    assert rows["0"] == [0, 0, 784 * 32, 8 * 784 * 32, 8 * 784 * 32]
    assert rows["3"] == [0, 0, 32 * 10, 8 * 32 * 10, 2 * 8 * 32 * 10]
    assert "15x fewer" in table
    import matplotlib  # noqa: F401  (a test dependency: the --plot command must run, never skip)
    png = tmp_path / "plot.png"
    main(["train", "connect", "--plot", str(out), "--out", str(png)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_worked_examples_of_the_written_rules():
    """The worked examples of docs/formats.md, section 10, bit for bit."""
    w = np.float32([[0.5, -0.25, 0.0]])
    b = sample_weights(w, "binary", True, make_rng("xorshift32", 1))
    assert b.values().tolist() == [[1, 1, -1]] and b.signs.tolist() == [[3]]
    t = sample_weights(w, "ternary", True, make_rng("xorshift32", 1))
    assert t.values().tolist() == [[1, -1, 0]] and t.signs.tolist() == [[1]] and t.mask.tolist() == [[3]]
    q = QBP()
    codes = qbp_log_codes(np.float32([0.3, -0.3, 0.01, 0.0, 5.0]), q, make_rng("xorshift32", 1))
    assert codes.tolist() == [0x0, 0x8, 0x4, 0x4, 0x3]
    np.testing.assert_array_equal(log.decode(codes, q.log_format), [0.5, -0.5, 0, 0, 4])
    dw, frac = qbp_weight_grad(np.uint8([[0x0], [0xD]]), q, np.int16([[3], [-5]]), 0)
    assert (dw.tolist(), frac) == ([[29]], 4)  # (3 << 3) - (-5 << 0): 1.8125 = 3 * 0.5 + (-5) * (-0.0625)
    assert sample_weights(np.float32([[3, -5, 7]]), "binary", False).signs.tolist() == [[0b101]]
    assert signadd_gemm(np.int16([[3, -5, 7]]), np.uint64([[0b101]]), 3).tolist() == [[15]]


# ---------------------------------------------------------------------------------------
# properties: equivalence with the oracles


@given(st.data(), lengths, st.integers(1, 20))
def test_signadd_property_equals_integer_oracle(data, k, m):
    w = data.draw(pm1_arrays(n=k, max_rows=70))
    t = data.draw(ternary_arrays(n=k, max_rows=70))
    x = data.draw(hnp.arrays(np.int16, (m, k)))
    oracle = x.astype(object) @ w.T.astype(object) if w.size else np.zeros((m, w.shape[0]), object)
    np.testing.assert_array_equal(signadd_gemm(x, binary.pack(w), k).astype(object), oracle)
    signs, mask = ternary.pack_ternary(t)
    oracle = x.astype(object) @ t.T.astype(object) if t.size else np.zeros((m, t.shape[0]), object)
    np.testing.assert_array_equal(signadd_gemm(x, signs, k, mask=mask).astype(object), oracle)


@given(st.data(), st.integers(1, 40), st.integers(1, 30), st.integers(1, 12), st.integers(2, 4),
       st.integers(-3, 2), st.sampled_from([8, 12, 16]))
def test_qbp_weight_grad_property_equals_python_ints(data, m, k, n, exp_bits, offset, err_bits):
    q = QBP(exp_bits=exp_bits, exp_offset=offset, err_bits=err_bits)
    fmt = q.log_format
    x = data.draw(hnp.arrays(np.float32, (m, k), elements=float32s))
    codes = qbp_log_codes(x, q, data.draw(seeds))
    lo, hi = -2 ** (err_bits - 1), 2 ** (err_bits - 1) - 1
    g = data.draw(hnp.arrays(np.int8 if err_bits <= 8 else np.int16, (m, n), elements=st.integers(lo, hi)))
    dw, frac = qbp_weight_grad(codes, q, g, 5)
    assert frac == 5 - fmt.emin
    sign, e, zero = log.split(codes, fmt)
    # Python ints: g << (e - emin), negated for a negative x_q, nothing for zero
    want = [[sum(0 if zero[r, c] else (-1) ** int(sign[r, c]) * (int(g[r, j]) << int(e[r, c] - fmt.emin))
                 for r in range(m)) for c in range(k)] for j in range(n)]
    assert dw.tolist() == want


@pytest.mark.parametrize("rng", GENERATORS)
def test_translations_use_stream_15_and_resume_exactly(mnist, tmp_path, monkeypatch, rng):
    from bitsim.datasets import random_shifts

    cfg = tiny(translate=1, rng=rng)
    fed = record_translations(monkeypatch, method)
    quiet = dict(data=mnist, progress=False, log=lambda line: None)
    whole, _ = method.train(cfg, out_dir=tmp_path / "a", **quiet)
    (xt, _), _, _ = method.mnist_splits(cfg, mnist)
    steps = len(xt) // cfg.batch_size
    assert len(fed) == 2 * steps
    for epoch in range(2):
        order = np.argsort(method.generator(cfg, epoch, 0).uint32(len(xt)), kind="stable")
        dy, dx = random_shifts(method.generator(cfg, epoch, 15), len(xt), 1)
        got = fed[epoch * steps:(epoch + 1) * steps]
        np.testing.assert_array_equal(np.concatenate([g[0] for g in got]), xt[order])
        np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), dy[order])
        np.testing.assert_array_equal(np.concatenate([g[2] for g in got]), dx[order])
    method.train(cfg, out_dir=tmp_path / "b", stop_after=1, **quiet)
    resumed, _ = method.train(cfg, out_dir=tmp_path / "b", resume=True, **quiet)
    for key, value in whole.state().items():
        assert resumed.state()[key].tobytes() == value.tobytes(), key
    with pytest.raises(ValueError, match="translate: 1 -> 0"):
        method.train(tiny(translate=0, rng=rng), out_dir=tmp_path / "b", resume=True, **quiet)
    fed.clear()
    method.train(tiny(translate=0, rng=rng, epochs=1), **quiet)
    assert fed == []  # no shifts: the images go in as they are
    with pytest.raises(ValueError, match="translate must be a whole number"):
        tiny(translate=-2)
