"""Tests of bitsim.nn: gradients against central differences (float64), exact straight-through rules,
exact binary forward passes, optimizers against hand-written updates, state round trips, and a tiny
end-to-end BNN."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from bitsim import nn
from bitsim.formats import binary
from bitsim.formats.rng import bernoulli, make_rng

F64 = np.float64


def normal(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape)


def numgrad(f, x, eps=1e-6):
    """Central differences of the scalar ``f()`` w.r.t. every element of ``x`` (changed in place, restored)."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        up = f()
        x[idx] = old - eps
        down = f()
        x[idx] = old
        g[idx] = (up - down) / (2 * eps)
    return g


def check_gradients(layer, x, training=True, seed=0):
    """Compare ``layer.backward`` with central differences of ``sum(forward(x) * r)``: input and every parameter."""
    r = normal(seed, *layer.forward(x, training).shape)

    def objective():
        return float(np.sum(layer.forward(x, training) * r))

    layer.forward(x, training)
    dx = layer.backward(r)
    grads = {p.name: p.grad.copy() for p in layer.params()}
    assert_allclose(dx, numgrad(objective, x), rtol=1e-5, atol=1e-7)
    for p in layer.params():
        assert_allclose(grads[p.name], numgrad(objective, p.value), rtol=1e-5, atol=1e-7, err_msg=p.name)


def away_from(x, points, gap=1e-2):
    """Move values within ``gap`` of a kink so that central differences stay on one side."""
    x = x.copy()
    for pt in points:
        near = np.abs(x - pt) < gap
        x[near] = pt + 2 * gap
    return x


def conv_reference(x, w, stride, padding):
    """Direct loops: ``out[n, r, q, o] = sum_{u, v, c} xp[n, r*sh + u, q*sw + v, c] * w[o, u, v, c]``."""
    (sh, sw), (ph, pw) = stride, padding
    n, h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, oh, ow, o), dtype=np.result_type(x, w))
    for r in range(oh):
        for q in range(ow):
            for u in range(kh):
                for v in range(kw):
                    out[:, r, q, :] += xp[:, r * sh + u, q * sw + v, :] @ w[:, u, v, :].T
    return out


# ---------------------------------------------------------------------------------------------
# gradients of the float layers


def test_dense_gradients():
    layer = nn.Dense(5, 3, init_rng=1, dtype=F64)
    layer.b.value[:] = normal(2, 3)
    check_gradients(layer, normal(3, 4, 5))


def test_dense_without_bias_and_dtypes():
    layer = nn.Dense(5, 3, bias=False, init_rng=1)
    assert [p.name for p in layer.params()] == ["W"]
    assert layer.forward(normal(3, 4, 5)).dtype == np.float32
    assert layer.W.value.shape == (3, 5) and "W (3, 5) float32" in repr(layer)
    with pytest.raises(ValueError, match="Flatten"):
        layer.forward(np.zeros((2, 3, 5)))


CONV_CASES = [((3, 3), 1, 0), ((3, 2), 2, 1), ((2, 3), (2, 1), (1, 0)), ((1, 2), 1, (0, 1))]


@pytest.mark.parametrize("kernel, stride, padding", CONV_CASES)
def test_conv2d_forward_and_gradients(kernel, stride, padding):
    layer = nn.Conv2d(3, 4, kernel, stride, padding, init_rng=1, dtype=F64)
    layer.b.value[:] = normal(2, 4)
    x = normal(3, 2, 5, 6, 3)
    ref = conv_reference(x, layer.W.value, layer.stride, layer.padding) + layer.b.value
    assert_allclose(layer.forward(x), ref, rtol=1e-12, atol=1e-12)
    assert layer.output_shape(x.shape[1:]) == ref.shape[1:]
    check_gradients(layer, x)


@pytest.mark.parametrize("kernel, stride", [(2, None), (3, 2), ((2, 3), (1, 2))])
def test_maxpool_forward_and_gradients(kernel, stride):
    layer = nn.MaxPool2d(kernel, stride)
    x = normal(4, 2, 5, 7, 3)
    (kh, kw), (sh, sw) = layer.kernel, layer.stride
    out = layer.forward(x)
    assert out.shape[1:] == layer.output_shape(x.shape[1:])
    for r in range(out.shape[1]):
        for q in range(out.shape[2]):
            assert_array_equal(out[:, r, q], x[:, r * sh:r * sh + kh, q * sw:q * sw + kw].max(axis=(1, 2)))
    check_gradients(layer, x)


def test_maxpool_ties_go_to_the_first_maximum():
    layer = nn.MaxPool2d(2)
    layer.forward(np.ones((1, 2, 2, 1)))
    assert_array_equal(layer.backward(np.full((1, 1, 1, 1), 5.0))[0, :, :, 0], [[5, 0], [0, 0]])


def test_flatten_relu_hardtanh_gradients():
    check_gradients(nn.Flatten(), normal(5, 2, 3, 4, 2))
    check_gradients(nn.ReLU(), away_from(normal(6, 4, 5), [0.0]))
    check_gradients(nn.HardTanh(), away_from(2 * normal(7, 4, 5), [-1.0, 1.0]))


@pytest.mark.parametrize("shape", [(6, 4), (3, 2, 3, 4)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients(shape, training):
    layer = nn.BatchNorm(4, dtype=F64)
    layer.gamma.value[:] = 1 + 0.5 * normal(8, 4)
    layer.beta.value[:] = normal(9, 4)
    layer.running_mean[:], layer.running_var[:] = normal(10, 4), 1 + normal(11, 4) ** 2
    check_gradients(layer, 2 * normal(12, *shape) + 1, training)


def test_batchnorm_statistics():
    layer = nn.BatchNorm(3, dtype=F64)
    assert (layer.momentum, layer.eps) == (0.1, 1e-4)
    assert not layer.gamma.decay and not layer.beta.decay
    x = 3 * normal(13, 2, 4, 5, 3) + 2
    mu, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    assert_allclose(layer.forward(x), (x - mu) / np.sqrt(var + 1e-4), atol=1e-12)
    assert_allclose(layer.running_mean, 0.1 * mu, rtol=1e-14)
    assert_allclose(layer.running_var, 0.9 + 0.1 * var, rtol=1e-14)
    expected = (x - layer.running_mean) / np.sqrt(layer.running_var + 1e-4)
    assert_allclose(layer.forward(x, training=False), expected, atol=1e-12)


@pytest.mark.parametrize("shift", [False, True])
@pytest.mark.parametrize("shape", [(50, 4), (6, 3, 5, 4)])
def test_population_statistics_are_one_batch_of_all_rows(shape, shift):
    x = np.random.default_rng(5).integers(-300, 300, shape).astype(np.float32)  # integers: exact float64 sums
    layer = nn.BatchNorm(4, shift=shift)
    layer.set_population([x[:1], x[1:4], x[4:]])
    rows = x.reshape(-1, 4).astype(F64)
    mean = np.float32(rows.mean(axis=0))
    c = (x.reshape(-1, 4) - mean).astype(np.float32)
    product = c * (nn.ap2(c) if shift else c)
    assert_array_equal(layer.running_mean, mean)
    assert_array_equal(layer.running_var, np.float32(product.astype(F64).sum(axis=0) / len(rows)))
    one = nn.BatchNorm(4, momentum=1.0, shift=shift)
    one.forward(x)  # momentum 1: the running statistics become this batch's
    assert_array_equal(one.running_mean, layer.running_mean)
    assert_allclose(one.running_var, layer.running_var, rtol=1e-6)
    for empty in ([], [x[:0]]):
        with pytest.raises(ValueError, match="at least one input row"):
            layer.set_population(empty)
    with pytest.raises(ValueError, match=r"expects \(N, 4\)"):
        layer.set_population([x[..., :3]])


def test_population_statistics_worked_example():
    # docs/formats.md, section 7, "Where mean and running_var come from"
    for shift, var in ((False, 5.0), (True, 6.5)):
        layer = nn.BatchNorm(1, shift=shift)
        layer.set_population([np.float32([[3], [-1]]), np.float32([[5], [1]])])
        assert (layer.running_mean[0], layer.running_var[0]) == (2.0, var)


def test_calibrate_uses_inference_mode_layer_by_layer_and_changes_only_statistics():
    init = make_rng("philox", 7)
    model = nn.Sequential([
        nn.Dropout(0.5, 1), nn.BinaryDense(12, 9, init_rng=init), nn.BatchNorm(9), nn.Sign(),
        nn.BinaryDense(9, 5, init_rng=init), nn.BatchNorm(5), nn.ReLU(),
    ])
    x = np.random.default_rng(8).integers(0, 256, (70, 12)).astype(np.float32)
    for _ in range(3):
        model.forward(x[:10])  # running averages of a few training batches
    before = model.state()
    model.calibrate(x, batch_size=16)
    after = model.state()
    changed = {key for key in before if before[key].tobytes() != after[key].tobytes()}
    assert changed == {"2.running_mean", "2.running_var", "5.running_mean", "5.running_var"}
    # the oracle: no dropout, first batch norm from all 70 rows, then the second from its outputs
    w1, w2 = (binary.binarize(model.layers[i].W.value).astype(F64).T for i in (1, 4))

    def population(h):
        mean = np.float32(h.mean(axis=0))
        c = np.float32(h) - mean
        return mean, np.float32((c * c).astype(F64).mean(axis=0))

    h = x.astype(F64) @ w1
    assert_array_equal(np.stack([model.layers[2].running_mean, model.layers[2].running_var]), population(h))
    h2 = np.where(model.layers[2].forward(np.float32(h), training=False) >= 0, 1.0, -1.0) @ w2
    assert_array_equal(np.stack([model.layers[5].running_mean, model.layers[5].running_var]), population(h2))
    model.calibrate(x, batch_size=1000)  # exact sums: the chunking does not matter
    assert all(model.state()[key].tobytes() == after[key].tobytes() for key in after)
    with pytest.raises(ValueError, match="at least one example"):
        model.calibrate(x[:0])
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        model.calibrate(x, batch_size=0)


def test_ap2_rule():
    x = np.float32([0.3, 1.4, 1.45, -3.0, 0.7, 0.0, 2.0**-64, 5.0, 2.0**70])
    assert_array_equal(nn.ap2(x), np.float32([0.25, 1, 2, -4, 0.5, 0, 0, 4, 2.0**63]))
    assert nn.ap2(np.float64([1.45])).dtype == np.float64


def shift_bn_surrogate(x, gamma, beta, eps, offsets):
    """Shift batch norm with each AP2(z) replaced by z + (frozen AP2(z0) - z0): same value at the point,
    derivative 1, so its exact derivative is the straight-through gradient."""
    axes = tuple(range(x.ndim - 1))
    c = x - x.mean(axis=axes)
    var = (c * (c + offsets["c"])).mean(axis=axes)
    inv = 1 / np.sqrt(var + eps)
    return (gamma + offsets["gamma"]) * (c * (inv + offsets["inv"])) + beta


@pytest.mark.parametrize("shape", [(8, 3), (2, 3, 2, 3)])
def test_shift_batchnorm_forward_and_straight_through_backward(shape):
    layer = nn.BatchNorm(3, shift=True, dtype=F64)
    layer.gamma.value[:] = [0.3, -1.45, 2.6]
    layer.beta.value[:] = normal(14, 3)
    x = 2 * normal(15, *shape) + 0.5
    axes = tuple(range(x.ndim - 1))
    c = x - x.mean(axis=axes)
    inv = 1 / np.sqrt((c * nn.ap2(c)).mean(axis=axes) + layer.eps)
    y = layer.forward(x)
    assert_array_equal(y, nn.ap2(layer.gamma.value) * (c * nn.ap2(inv)) + layer.beta.value)
    assert_array_equal(nn.ap2(layer.gamma.value), [0.25, -2.0, 2.0])

    offsets = {"c": nn.ap2(c) - c, "inv": nn.ap2(inv) - inv, "gamma": nn.ap2(layer.gamma.value) - layer.gamma.value}
    gamma, beta = layer.gamma.value.copy(), layer.beta.value.copy()
    r = normal(16, *shape)
    layer.forward(x)
    dx = layer.backward(r)
    assert_allclose(shift_bn_surrogate(x, gamma, beta, layer.eps, offsets), y, rtol=1e-12, atol=1e-12)
    assert_allclose(dx, numgrad(lambda: np.sum(shift_bn_surrogate(x, gamma, beta, layer.eps, offsets) * r), x),
                    rtol=1e-5, atol=1e-7)
    assert_allclose(layer.gamma.grad, numgrad(lambda: np.sum(shift_bn_surrogate(x, gamma, beta, layer.eps, offsets) * r), gamma),
                    rtol=1e-5, atol=1e-7)
    assert_allclose(layer.beta.grad, r.sum(axis=axes), rtol=1e-12)


def test_sequential_gradients_through_a_small_cnn():
    init = make_rng("philox", 3)
    model = nn.Sequential([
        nn.Conv2d(2, 3, 3, padding=1, init_rng=init, dtype=F64), nn.BatchNorm(3, dtype=F64), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Dense(12, 4, init_rng=init, dtype=F64),
    ])
    x = normal(17, 3, 4, 4, 2)
    r = normal(18, 3, 4)

    def objective():
        return float(np.sum(model.forward(x) * r))

    model.forward(x)
    dx = model.backward(r)
    grads = [p.grad.copy() for p in model.params()]
    assert_allclose(dx, numgrad(objective, x), rtol=1e-5, atol=1e-7)
    for p, g in zip(model.params(), grads):
        assert_allclose(g, numgrad(objective, p.value), rtol=1e-5, atol=1e-7, err_msg=p.name)


# ---------------------------------------------------------------------------------------------
# losses


@pytest.mark.parametrize("loss", [nn.SoftmaxCrossEntropy(), nn.SquaredHinge(), nn.SquaredHinge(mean="all")])
def test_loss_gradients(loss):
    scores, labels = normal(19, 5, 4), np.array([0, 3, 1, 1, 2])
    value, grad = loss(scores, labels)
    assert isinstance(value, float)
    assert_allclose(grad, numgrad(lambda: loss(scores, labels)[0], scores), rtol=1e-6, atol=1e-9)


def test_loss_values_by_hand():
    scores, labels = np.array([[0.5, -2.0, 1.5], [0.0, 0.0, 3.0]]), np.array([0, 2])
    # row 0: t = (+1, -1, -1): 0.5**2 + 0 + 2.5**2 = 6.5; row 1: t = (-1, -1, +1): 1 + 1 + 0 = 2
    assert nn.SquaredHinge()(scores, labels)[0] == pytest.approx((6.5 + 2) / 2)
    assert nn.SquaredHinge(mean="all")(scores, labels)[0] == pytest.approx((6.5 + 2) / 6)
    assert nn.SoftmaxCrossEntropy()(np.zeros((3, 2)), np.array([0, 1, 0]))[0] == pytest.approx(np.log(2))
    assert nn.accuracy(np.array([[1.0, 1.0], [0.0, 2.0], [3.0, 0.0]]), np.array([1, 1, 1])) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="labels"):
        nn.SquaredHinge()(scores, np.array([0, 3]))


# ---------------------------------------------------------------------------------------------
# sign and binary layers: straight-through rules and exact forward passes


def test_sign_forward_and_straight_through():
    x = np.array([-1.5, -1.0, -0.0, 0.0, 0.3, 1.0, 1.0001])
    g = np.arange(1.0, 8.0)
    layer = nn.Sign()
    assert_array_equal(layer.forward(x), [-1, -1, 1, 1, 1, 1, 1])
    assert_array_equal(layer.backward(g), g * (np.abs(x) <= 1))
    assert nn.Sign().forward(np.array([3, -2])).dtype == np.float32


def test_binary_dense_straight_through_rules():
    layer = nn.BinaryDense(6, 4, bias=True, init_rng=2, dtype=F64)
    x, g = normal(20, 5, 6), normal(21, 5, 4)
    y = layer.forward(x)
    wb = layer.binary_weights()
    assert wb.dtype == np.int8 and set(np.unique(wb)) <= {-1, 1}
    assert_array_equal(wb, binary.binarize(layer.W.value))
    assert_array_equal(y, x @ wb.T.astype(F64))
    dx = layer.backward(g)
    assert_array_equal(dx, g @ wb.astype(F64))
    assert_array_equal(layer.W.grad, g.T @ x)
    assert_array_equal(layer.b.grad, g.sum(axis=0))


def test_a_first_layer_without_input_gradient_stops_the_backward_pass():
    x, g = normal(22, 5, 6), normal(23, 5, 3)
    full = nn.Sequential([nn.Flatten(), nn.BinaryDense(6, 3, init_rng=4, dtype=F64)])
    first = nn.Sequential([nn.Flatten(), nn.BinaryDense(6, 3, init_rng=4, dtype=F64, input_grad=False)])
    assert full.forward(x).tobytes() == first.forward(x).tobytes()
    assert full.backward(g) is not None
    assert first.backward(g) is None  # Flatten's backward is skipped, not handed None
    assert_array_equal(first.layers[1].W.grad, full.layers[1].W.grad)
    inner = nn.Sequential([nn.Dense(6, 6, dtype=F64), nn.BinaryDense(6, 3, init_rng=4, dtype=F64, input_grad=False)])
    inner.forward(normal(24, 5, 6))
    with pytest.raises(ValueError, match="computes no input gradient.*input_grad=True"):
        inner.backward(g)  # the Dense layer would otherwise keep a stale gradient


def test_binary_dense_forward_is_exact_on_integers():
    layer = nn.BinaryDense(784, 33, init_rng=3)
    pixels = np.random.default_rng(22).integers(0, 256, size=(7, 784), dtype=np.uint8)
    pixels[0] = 255
    expected = pixels.astype(np.int64) @ layer.binary_weights().astype(np.int64).T
    y = layer.forward(pixels)
    assert y.dtype == np.float32
    assert_array_equal(y, expected)
    signs = binary.binarize(normal(23, 7, 784)).astype(np.float32)
    assert_array_equal(layer.forward(signs), signs.astype(np.int64) @ layer.binary_weights().astype(np.int64).T)


def test_binary_dense_refuses_inexact_integer_sums():
    layer = nn.BinaryDense(70_000, 1)
    with pytest.raises(ValueError, match="exact"):
        layer.forward(np.full((1, 70_000), 255, dtype=np.uint8))
    nn.BinaryDense(70_000, 1, dtype=F64).forward(np.full((1, 70_000), 255, dtype=np.uint8))


@pytest.mark.parametrize("kernel, stride, padding", CONV_CASES)
def test_binary_conv_exact_forward_and_backward(kernel, stride, padding):
    layer = nn.BinaryConv2d(5, 4, kernel, stride, padding, init_rng=4)
    acts = binary.binarize(normal(24, 2, 6, 7, 5))
    pixels = np.random.default_rng(25).integers(0, 256, size=(2, 6, 7, 5), dtype=np.uint8)
    for x in (acts, pixels):
        y = layer.forward(x)
        wb = layer.binary_weights()
        assert wb.shape == (4,) + layer.kernel + (5,)
        assert_array_equal(y, conv_reference(x.astype(np.int64), wb.astype(np.int64), layer.stride, layer.padding))
    # backward equals a float convolution whose weights are the binarized ones; W receives dL/dWb
    float_conv = nn.Conv2d(5, 4, kernel, stride, padding, bias=False, dtype=F64)
    float_conv.W.value[...] = wb
    binary64 = nn.BinaryConv2d(5, 4, kernel, stride, padding, init_rng=4, dtype=F64)
    x, g = normal(26, 2, 6, 7, 5), normal(27, *y.shape)
    assert_array_equal(binary64.forward(x), float_conv.forward(x))
    assert_array_equal(binary64.backward(g), float_conv.backward(g))
    assert_array_equal(binary64.W.grad, float_conv.W.grad)


def test_latent_weights_stay_clipped():
    layer = nn.BinaryDense(8, 5, init_rng=5)
    for opt in (nn.SGD(layer.params(), lr=10.0), nn.Adam(layer.params(), lr=0.7)):
        for seed in range(3):
            layer.forward(normal(seed, 4, 8))
            layer.backward(100 * normal(seed + 10, 4, 5).astype(np.float32))
            opt.step()
            assert layer.W.value.min() >= -1 and layer.W.value.max() <= 1
    assert np.isin(layer.W.value, [-1, 1]).any()


def test_stochastic_binarization_is_reproducible():
    x = normal(28, 3, 2, 5, 4).astype(np.float32)

    def run(seed, training=True):
        layer = nn.BinaryConv2d(4, 6, 2, stochastic=True, rng=make_rng("philox", seed), init_rng=6)
        layer.forward(x, training)
        return layer

    a, b, c = run(5), run(5), run(6)
    assert_array_equal(a.binary_weights(), b.binary_weights())
    assert not np.array_equal(a.binary_weights(), c.binary_weights())
    assert_array_equal(a.binary_weights(), binary.binarize_stochastic(a.W.value, make_rng("philox", 5)))
    assert_array_equal(run(5, training=False).binary_weights(), binary.binarize(a.W.value))
    with pytest.raises(ValueError, match="generator"):
        nn.BinaryDense(3, 2, stochastic=True)


def test_dropout():
    x = normal(29, 6, 50).astype(np.float32)
    a, b, c = (nn.Dropout(0.25, make_rng("xorshift32", s)) for s in (7, 7, 8))
    ya, yb, yc = a.forward(x), b.forward(x), c.forward(x)
    assert_array_equal(ya, yb)
    assert not np.array_equal(ya, yc)
    keep = bernoulli(np.full(x.shape, 0.75), make_rng("xorshift32", 7))
    assert_array_equal(ya, x * (keep.astype(np.float32) / np.float32(0.75)))
    g = normal(30, 6, 50).astype(np.float32)
    assert_array_equal(a.backward(g), g * (keep.astype(np.float32) / np.float32(0.75)))
    assert_array_equal(a.forward(x, training=False), x)
    assert_array_equal(nn.Dropout(0.0, 1).forward(x), x)


# ---------------------------------------------------------------------------------------------
# optimizers and schedules


def two_params(lr_scale=1.0):
    w = nn.Param(np.array([0.5, -1.0, 2.0]), "W", lr_scale=lr_scale)
    b = nn.Param(np.array([0.1, -0.2]), "b", decay=False)
    return w, b


GRADS = [(np.array([0.2, -0.4, 1.0]), np.array([0.3, 0.05])), (np.array([-0.1, 0.3, 0.5]), np.array([-0.6, 0.2]))]


def run_steps(opt, params):
    for gw, gb in GRADS:
        params[0].grad, params[1].grad = gw, gb
        opt.step()
    return [p.value for p in params]


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_matches_hand_update(nesterov):
    params = two_params(lr_scale=0.5)
    w, b = (p.value.copy() for p in params)
    got = run_steps(nn.SGD(params, lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=0.01), params)
    vw, vb = np.zeros(3), np.zeros(2)
    for gw, gb in GRADS:
        gw = gw + 0.01 * w  # b has decay=False
        vw, vb = 0.9 * vw + gw, 0.9 * vb + gb
        w = w - 0.05 * (gw + 0.9 * vw if nesterov else vw)
        b = b - 0.1 * (gb + 0.9 * vb if nesterov else vb)
    assert_allclose(got[0], w, rtol=1e-14)
    assert_allclose(got[1], b, rtol=1e-14)


def test_adam_and_adamax_match_hand_updates():
    params = two_params()
    w = params[0].value.copy()
    got = run_steps(nn.Adam(params, lr=0.01), params)[0]
    m, v = np.zeros(3), np.zeros(3)
    for t, (g, _) in enumerate(GRADS, 1):
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g**2
        w = w - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    assert_allclose(got, w, rtol=1e-14)

    params = two_params(lr_scale=3.0)
    w = params[0].value.copy()
    got = run_steps(nn.AdaMax(params, lr=0.01), params)[0]
    m, u = np.zeros(3), np.zeros(3)
    for t, (g, _) in enumerate(GRADS, 1):
        m, u = 0.9 * m + 0.1 * g, np.maximum(0.999 * u, np.abs(g))
        w = w - (0.03 / (1 - 0.9**t)) * m / (u + 1e-8)
    assert_allclose(got, w, rtol=1e-14)


def test_shift_adamax_uses_powers_of_two():
    params = two_params(lr_scale=1.7)
    opt = nn.ShiftAdaMax(params)
    assert (opt.lr, opt.b1, opt.b2) == (2.0**-10, 0.875, 1 - 2.0**-10)
    w = params[0].value.copy()
    m, u = np.zeros(3), np.zeros(3)
    for t, (g, gb) in enumerate(GRADS, 1):
        params[0].grad, params[1].grad = g, gb
        opt.step()
        m, u = 0.875 * m + 0.125 * g, np.maximum((1 - 2.0**-10) * u, np.abs(g))
        step = nn.ap2(np.float64(2.0**-10 * 1.7 / (1 - 0.875**t)))
        w = w - m * step / nn.ap2(u + 1e-8)
        assert_array_equal(params[0].value, w)
    # from a zero parameter the subtraction is exact, exposing the update itself: m times a power of two
    params[0].value[:] = 0
    params[0].grad = GRADS[0][0]
    opt.step()
    ratio = -params[0].value / opt.slots[0]["m"]
    assert_array_equal(np.log2(ratio) % 1, 0)
    step = nn.ap2(np.float64(2.0**-10 * 1.7 / (1 - 0.875**3)))
    assert_array_equal(ratio, step / nn.ap2(opt.slots[0]["u"] + 1e-8))


def test_schedules():
    decay = nn.ExponentialDecay(3e-3, 3e-7, n_steps=10, every=4)
    assert decay(0) == decay(3) == 3e-3
    assert decay(40) == decay(10**6) == 3e-7
    factor = (3e-7 / 3e-3) ** (1 / 10)
    assert_allclose([decay(4 * k) for k in range(10)], [3e-3 * factor**k for k in range(10)], rtol=1e-12)
    step = nn.StepDecay(0.1, 0.5, every=10)
    assert (step(9), step(10), step(25)) == (0.1, 0.05, 0.025)
    assert nn.Constant(0.2)(1000) == 0.2
    p = nn.Param(np.zeros(2), "W")
    opt = nn.SGD([p], lr=nn.StepDecay(1.0, 0.5, every=1))
    for expected in (-1.0, -1.5, -1.75):
        p.grad = np.ones(2)
        opt.step()
        assert_array_equal(p.value, expected)
    assert opt.lr == 0.125


# ---------------------------------------------------------------------------------------------
# model: state, summary, batching, end to end


def small_bnn(seed=1, stochastic=False, shift=False, dropout=False):
    init = make_rng("philox", seed)
    sc = nn.glorot_lr_scale
    layers = [nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(0.2, make_rng("philox", seed + 100)))
    layers += [
        nn.BinaryDense(784, 64, stochastic, make_rng("philox", seed + 1), lr_scale=sc(784, 64), init_rng=init),
        nn.BatchNorm(64, shift=shift), nn.Sign(),
        nn.BinaryDense(64, 64, stochastic, make_rng("philox", seed + 2), lr_scale=sc(64, 64), init_rng=init),
        nn.BatchNorm(64, shift=shift), nn.Sign(),
        nn.BinaryDense(64, 10, stochastic, make_rng("philox", seed + 3), lr_scale=sc(64, 10), init_rng=init),
        nn.BatchNorm(10, shift=shift),
    ]
    return nn.Sequential(layers)


@pytest.fixture(scope="module")
def mnist():
    from bitsim.datasets import load_mnist

    data = load_mnist()
    return data["x_train"][:2000], data["y_train"][:2000], data["x_test"][:1000], data["y_test"][:1000]


@pytest.mark.parametrize("optimizer, shift", [(nn.Adam, False), (nn.ShiftAdaMax, True)])
def test_bnn_mlp_trains_on_mnist(mnist, optimizer, shift):
    x, y, xt, yt = mnist
    model = small_bnn(shift=shift)
    loss = nn.SquaredHinge()
    opt = optimizer(model.params(), lr=nn.ExponentialDecay(3e-3, 3e-4, n_steps=4, every=20))
    history = model.fit(x, y, loss, opt, epochs=4, batch_size=100, rng=make_rng("philox", 9), validation=(xt, yt))
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]
    assert history[-1]["val_accuracy"] > 0.6
    assert opt.t == 80


def test_training_is_bit_reproducible(mnist):
    x, y = mnist[0][:300], mnist[1][:300]

    def train():
        model = small_bnn(seed=4, stochastic=True, dropout=True)
        opt = nn.Adam(model.params(), lr=0.003)
        model.fit(x, y, nn.SquaredHinge(), opt, epochs=2, batch_size=50, rng=make_rng("xorshift32", 11))
        return model.state()

    a, b = train(), train()
    assert a.keys() == b.keys()
    for key in a:
        assert_array_equal(a[key], b[key], err_msg=key)


def test_state_round_trip(tmp_path, mnist):
    x, y = mnist[0][:200], mnist[1][:200]
    model = small_bnn(seed=1)
    model.fit(x, y, nn.SquaredHinge(), nn.Adam(model.params()), epochs=1, batch_size=50)
    state = model.state()
    assert {"1.W", "2.gamma", "2.beta", "2.running_mean", "2.running_var"} <= set(state)
    assert all(isinstance(v, np.ndarray) for v in state.values())

    other = small_bnn(seed=2)
    other.load_state(state)
    for key, value in other.state().items():
        assert_array_equal(value, state[key]) and value.dtype == state[key].dtype
    assert_array_equal(other.forward(x[:20], training=False), model.forward(x[:20], training=False))

    path = tmp_path / "bnn.npz"
    model.save(path)
    third = small_bnn(seed=3)
    third.load(path)
    for key, value in third.state().items():
        assert_array_equal(value, state[key])

    with pytest.raises(ValueError, match="expected keys"):
        other.load_state({k: v for k, v in state.items() if k != "2.beta"})
    with pytest.raises(ValueError, match="exactly"):
        other.load_state({**state, "1.W": state["1.W"].astype(F64) + 1e-12})


def test_optimizer_state_round_trip():
    params = two_params()
    opt = nn.Adam(params, lr=0.01)
    run_steps(opt, params)
    copy = [nn.Param(p.value.copy(), p.name) for p in params]
    opt2 = nn.Adam(copy, lr=0.01)
    opt2.load_state(opt.state())
    for o, ps in ((opt, params), (opt2, copy)):
        ps[0].grad, ps[1].grad = GRADS[0]
        o.step()
    assert_array_equal(params[0].value, copy[0].value)


def test_summary_rows():
    init = make_rng("philox", 1)
    model = nn.Sequential([
        nn.BinaryConv2d(1, 8, 3, padding=1, init_rng=init), nn.BatchNorm(8), nn.Sign(), nn.MaxPool2d(2),
        nn.Flatten(), nn.BinaryDense(8 * 14 * 14, 10, init_rng=init), nn.Dense(10, 10, init_rng=init),
    ])
    rows = model.summary((28, 28, 1))
    assert [r["name"] for r in rows] == ["BinaryConv2d", "BatchNorm", "Sign", "MaxPool2d", "Flatten", "BinaryDense", "Dense"]
    assert [r["output_shape"] for r in rows] == [(28, 28, 8), (28, 28, 8), (28, 28, 8), (14, 14, 8), (1568,), (10,), (10,)]
    assert [r["params"] for r in rows] == [72, 16, 0, 0, 0, 15680, 110]
    assert [r["bits"] for r in rows] == [1, 32, None, None, None, 1, 32]
    assert [r["storage_bits"] for r in rows] == [72, 512, 0, 0, 0, 15680, 3520]
    assert model.forward(np.zeros((2, 28, 28, 1), np.uint8)).shape == (2, 10)


def test_batches_and_evaluate(mnist):
    x, y = mnist[0][:101], mnist[1][:101]
    order = nn.batch_order(101, make_rng("philox", 3))
    assert_array_equal(order, np.argsort(make_rng("philox", 3).uint32(101), kind="stable"))
    assert sorted(order.tolist()) == list(range(101))
    got = np.concatenate([yb for _, yb in nn.batches(x, y, 10, make_rng("philox", 3))])
    assert_array_equal(got, y[order])
    assert sum(len(xb) for xb, _ in nn.batches(x, y, 10, drop_last=True)) == 100

    model = small_bnn()
    loss = nn.SoftmaxCrossEntropy()
    full = loss(model.forward(x, training=False), y)[0]
    value, acc = model.evaluate(x, y, loss, batch_size=7)
    assert value == pytest.approx(full, rel=1e-6)
    assert acc == nn.accuracy(model.predict(x, batch_size=13), y)
