"""The GRU: gradients (both forms), PyTorch's forward, the log-float kernels and the quantized conversion against
their oracles bit for bit, reproducible training with exact resume, and the table command."""

import json
import math
from pathlib import Path

import numba
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import float32_arrays, float32s
from test_nn import numgrad

from bitsim.cli import main
from bitsim.formats import Counts, FixedFormat, LogFormat, fixed, log
from bitsim.kernels import gru as kg
from bitsim.kernels import logfloat as lf
from bitsim.methods import loggru
from bitsim.nn.gru import GRU, Embedding, OneHot, from_torch
from bitsim.reference import gru as rg

F32 = np.float32


def reference_forward(g, x, h0):
    """The GRU equations of bitsim.nn.gru's docstring, written out in float64 NumPy."""
    h = g.hidden
    wx, wh, b = g.Wx.value, g.Wh.value, g.b.value
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    state, out = h0.copy(), []
    for t in range(x.shape[1]):
        ax = x[:, t] @ wx.T + b
        r = sig(ax[:, :h] + state @ wh[:h].T)
        z = sig(ax[:, h:2 * h] + state @ wh[h:2 * h].T)
        if g.reset == "before":
            n = np.tanh(ax[:, 2 * h:] + (state * r) @ wh[2 * h:].T)
        else:
            n = np.tanh(ax[:, 2 * h:] + r * (state @ wh[2 * h:].T + g.b_hn.value))
        state = z * state + (1 - z) * n
        out.append(state)
    return np.stack(out, axis=1)


def random_gru(reset, seed=0, n_in=3, hidden=4):
    g = GRU(n_in, hidden, reset=reset, init_rng=1, dtype=np.float64)
    rng = np.random.default_rng(seed)
    for p in g.params():
        p.value[...] = rng.standard_normal(p.value.shape) * 0.5
    return g, rng


@pytest.mark.parametrize("reset", ["before", "after"])
def test_gru_gradients_against_central_differences(reset):
    g, rng = random_gru(reset)
    x, h0 = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 4)) * 0.5
    weights = rng.standard_normal((2, 5, 4))

    def objective():
        return float(np.sum(g.forward(x, h0) * weights))

    g.forward(x, h0)
    dx = g.backward(weights)
    grads = {p.name: p.grad.copy() for p in g.params()}
    dh0 = g.grad_h0.copy()
    assert_allclose(dx, numgrad(objective, x), rtol=1e-5, atol=1e-8)
    assert_allclose(dh0, numgrad(objective, h0), rtol=1e-5, atol=1e-8)
    for p in g.params():
        assert_allclose(grads[p.name], numgrad(objective, p.value), rtol=1e-5, atol=1e-8, err_msg=p.name)


@pytest.mark.parametrize("reset", ["before", "after"])
def test_gru_forward_is_the_written_equations(reset):
    g, rng = random_gru(reset, seed=1)
    x, h0 = rng.standard_normal((3, 6, 3)), rng.standard_normal((3, 4)) * 0.5
    assert_allclose(g.forward(x, h0), reference_forward(g, x, h0), rtol=1e-12, atol=1e-12)
    assert_array_equal(g.h_last, g.forward(x, h0)[:, -1])


def test_embedding_gradient_sums_rows():
    e = Embedding(5, 2, init_rng=3, dtype=np.float64)
    ids = np.array([[0, 3, 3], [4, 0, 0]])
    grad = np.arange(12, dtype=np.float64).reshape(2, 3, 2)
    e.forward(ids)
    e.backward(grad)
    want = np.zeros((5, 2))
    np.add.at(want, ids.reshape(-1), grad.reshape(-1, 2))
    assert_array_equal(e.E.grad, want)


GRU_TORCH = Path(__file__).parent / "golden" / "gru_torch.json"


def golden_float32(entry):
    """A float32 array of tests/golden/gru_torch.json: its shape and its values as 8-hex-digit bit patterns."""
    words = np.array([int(w, 16) for w in entry["float32_bits"].split()], dtype=np.uint32)
    return words.view(F32).reshape(entry["shape"])


def test_reset_after_matches_torch():
    """torch.nn.GRU(5, 7, batch_first=True)'s forward, stored by tests/golden/make_gru_torch_golden.py: the same
    weights loaded through from_torch give the same output sequence and last state."""
    golden = json.loads(GRU_TORCH.read_text())
    weights = golden["weights"]
    g = from_torch(GRU(5, 7, reset="after"), *(golden_float32(weights[name]) for name in
                                               ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")))
    x, h0 = golden_float32(golden["x"]), golden_float32(golden["h0"])
    want, last = golden_float32(golden["output"]), golden_float32(golden["h_last"])
    assert x.shape == (3, 11, 5) and h0.shape == (3, 7) and want.shape == (3, 11, 7) and last.shape == (3, 7)
    assert_allclose(g.forward(x, h0), want, rtol=1e-5, atol=2e-6)
    assert_allclose(g.h_last, last, rtol=1e-5, atol=2e-6)


# ---------------------------------------------------------------------------------------
# kernels against the documented format functions and the oracles


def awkward_floats(seed, n=20000):
    rng = np.random.default_rng(seed)
    scaled = rng.standard_normal(n).astype(F32) * (F32(2.0) ** rng.integers(-140, 120, n).astype(F32))
    raw = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(F32)
    edges = np.array([0.0, -0.0, 1.5, -3.0, 2**-149, -(2**-140), 2**-126, 3.4e38, 1.4142135, 1.4142134], F32)
    x = np.concatenate([scaled, raw, edges])
    return x[np.isfinite(x)]


@pytest.mark.parametrize("fmt", [LogFormat(), LogFormat(rounding="log"), LogFormat(rounding="truncate"),
                                 LogFormat(exp_bits=3, exp_offset=-5), LogFormat(exp_bits=2, underflow="saturate")])
def test_jitted_log_encode_is_log_encode(fmt):
    x = awkward_floats(1)
    want_counts, got_counts = Counts(), Counts()
    assert_array_equal(lf.encode_log(x, fmt, got_counts), log.encode(x, fmt, counts=want_counts))
    assert got_counts == want_counts


@pytest.mark.parametrize("fmt", [FixedFormat(16, 15), FixedFormat(8, 5, rounding="floor"), FixedFormat(12, 3, "ceil"),
                                 FixedFormat(8, 7, "toward_zero"), FixedFormat(6, 2, "nearest_up"),
                                 FixedFormat(10, -2, "nearest_away")])
def test_jitted_fixed_quantize_is_fixed_quantize(fmt):
    x = awkward_floats(2)
    x = x[np.abs(x) < 1e30]
    want_counts, got_counts = Counts(), Counts()
    got = lf.quantize_fixed(x, fmt, got_counts)
    assert got.dtype == fmt.dtype
    assert_array_equal(got, fixed.quantize(x, fmt, counts=want_counts))
    assert got_counts == want_counts


@given(float32_arrays, st.sampled_from(["linear", "log", "truncate"]), st.integers(2, 7), st.integers(-40, 40))
def test_jitted_log_encode_property(x, rounding, exp_bits, offset):
    fmt = LogFormat(exp_bits=exp_bits, exp_offset=offset, rounding=rounding)
    want_counts, got_counts = Counts(), Counts()
    assert_array_equal(lf.encode_log(x, fmt, got_counts), log.encode(x, fmt, counts=want_counts))
    assert got_counts == want_counts


@given(float32_arrays, st.integers(2, 16), st.integers(-4, 18))
def test_jitted_fixed_quantize_property(x, bits, frac):
    fmt = FixedFormat(bits, frac)
    x = x[np.abs(x) < 1e30]
    want_counts, got_counts = Counts(), Counts()
    assert_array_equal(lf.quantize_fixed(x, fmt, got_counts), fixed.quantize(x, fmt, counts=want_counts))
    assert got_counts == want_counts


@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 9), st.integers(1, 12)), elements=float32s),
       hnp.arrays(np.uint8, st.tuples(st.integers(1, 3), st.just(1))))
def test_log_matmul_property(w, codes):
    """One product per output: the kernel's bits are multiply_float32's (exponent addition), whatever the path."""
    w = w[:, :1]
    got_counts, want_counts = Counts(), Counts()
    got = lf.log_matmul(codes, LogFormat(), w, None, got_counts)
    want = log.multiply_float32(w[None, :, 0], codes, LogFormat(), want_counts) + F32(0.0)
    assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert got_counts == want_counts


def edge_weights(rng, shape):
    """Weights whose exponent fields reach both ends, zeros and subnormals: every row takes the exact path somewhere."""
    w = (rng.standard_normal(shape) * 0.3).astype(F32)
    flat = w.reshape(-1)
    flat[::7] = F32(0.0)
    flat[1::11] = F32(-0.0)
    flat[2::13] = F32(3e-45)
    flat[3::17] = F32(3.0e38)
    flat[4::19] = F32(-1.5e-37)
    return w


@pytest.mark.parametrize("seed", range(3))
def test_log_matmul_is_exponent_addition_in_order(seed):
    rng = np.random.default_rng(seed)
    w = edge_weights(rng, (9, 13))
    w[:4] = (rng.standard_normal((4, 13)) * 0.3).astype(F32)  # rows on the vectorized path
    x = rng.standard_normal((4, 13)).astype(F32) * F32(2.0) ** rng.integers(-70, 70, (4, 13)).astype(F32)
    codes = log.encode(x, LogFormat())
    codes[0, :3] = [0x40, 0xC0, 0x3F]  # +0, -0, 2**63
    bias = rng.standard_normal(9).astype(F32)
    got_counts, want_counts = Counts(), Counts()
    got = lf.log_matmul(codes, LogFormat(), w, bias, got_counts)
    want = rg.log_matmul(codes, LogFormat(), w, bias, want_counts)
    assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert got_counts == want_counts and got_counts.flushed > 0 and got_counts.saturated > 0


EXHAUSTIVE_WEIGHTS = np.array([1.0, -1.0, 0.75, -0.3, 1.5e-3, -7.0, 3.1e4, 1.9999999, -(2.0**-100), 2.0**100,
                               0.0, -0.0, 3e-45, -1.2e-38, 2.0**-126, 3.0e38], F32)


def test_every_log8_code_times_float32_weights():
    """All 256 Log8 codes against normal weights (the vectorized column path) and edge weights (zeros,
    subnormals, fields pushed past 1..254: the per-element path): each product is multiply_float32's bits,
    and where the result is normal it is the float32 product w * 2**e."""
    fmt = LogFormat()
    codes = np.arange(256, dtype=np.uint8)[:, None]
    for n, n_fast in ((8, 256), (10, 2 * 54 + 2), (16, 2)):  # all fast; e in -26..27 and zeros; zeros
        w = EXHAUSTIVE_WEIGHTS[:n, None]
        lo, hi, special = lf.column_bounds(w.T)
        assert sum(lf._all_fast(lo, hi, special, codes[i], 7, 0) for i in range(256)) == n_fast
        got_counts, want_counts = Counts(), Counts()
        got = lf.log_matmul(codes, fmt, w, None, got_counts)
        want = log.multiply_float32(w[None, :, 0], codes, fmt, want_counts)
        assert_array_equal(got.view(np.uint32), (want + F32(0.0)).view(np.uint32))
        assert got_counts == want_counts
    assert got_counts.flushed > 0 and got_counts.saturated > 0
    exact = np.float64(EXHAUSTIVE_WEIGHTS)[None, :] * log.decode(codes[:, 0], fmt).astype(np.float64)[:, None]
    normal = (np.abs(exact) >= 2.0**-126) & (np.abs(exact) < 2.0**128) & (codes != 0x40) & (codes != 0xC0)
    normal &= np.abs(EXHAUSTIVE_WEIGHTS)[None, :] >= 2.0**-126
    assert normal.sum() > 2000
    assert_array_equal(got[normal], exact[normal].astype(F32))


def test_every_log8_code_decodes_and_recodes_in_the_kernel():
    fmt = LogFormat()
    codes = np.arange(256, dtype=np.uint8)
    values = np.array([lf.log_value(np.int64(c), fmt.exp_bits, fmt.exp_offset) for c in codes], F32)
    assert_array_equal(values.view(np.uint32), log.decode(codes, fmt).view(np.uint32))
    assert_array_equal(lf.encode_log(values, fmt), codes)  # idempotent: a decoded code codes to itself
    # just below and at the rounding threshold of every power of two in the window (linear: mantissa MSB)
    normal = values[(values != 0)]
    for x in (normal * F32(1.5), normal * F32(1.4999999)):
        assert_array_equal(lf.encode_log(x, fmt), log.encode(x, fmt))


@pytest.mark.parametrize("fmt", [FixedFormat(8, 7), FixedFormat(8, 6), FixedFormat(8, 5)])
def test_every_fix8_code_in_the_kernel(fmt):
    """All 256 codes: decoded and re-coded unchanged; every midpoint between neighbours rounds to the even
    code; values past either end saturate, counted."""
    codes = np.arange(-128, 128)
    values = fixed.to_float(codes, fmt, np.float32)
    assert_array_equal(lf.quantize_fixed(values, fmt), codes)
    mids = ((values[:-1].astype(np.float64) + values[1:]) / 2).astype(F32)
    got = lf.quantize_fixed(mids, fmt)
    assert_array_equal(got, np.where(codes[:-1] % 2 == 0, codes[:-1], codes[1:]))
    counts = Counts()
    edge = np.array([values[-1] + F32(2.0**-fmt.frac_bits), F32(1e6), values[0] - F32(2.0**-fmt.frac_bits)], F32)
    assert lf.quantize_fixed(edge, fmt, counts).tolist() == [127, 127, -128] and counts.saturated == 3


def test_every_fix8_product_is_an_integer_product():
    """The integer kernel of the fixed-point-weight path: all 256 x 256 products of Fix8 codes, exact."""
    codes = np.arange(-128, 128)
    w_t = np.ascontiguousarray(codes[None, :].astype(np.int32))
    got = np.zeros((256, 256), np.int64)
    for i, a in enumerate(codes):
        kg._int_products(got[i], 0, 256, w_t, np.array([a], np.int64))
    assert_array_equal(got, codes[:, None] * codes[None, :])
    acc = np.zeros(3, np.int64)  # sums of products in int64, exact past 2**31
    big = np.full((200000, 3), 127, np.int32)
    kg._int_products(acc, 0, 3, big, np.full(200000, -128, np.int64))
    assert acc.tolist() == [200000 * 127 * -128] * 3  # below -2**31


def test_float_matmul_order_and_no_fused_multiply_add():
    rng = np.random.default_rng(4)
    x, w, b = (rng.standard_normal(s).astype(F32) for s in ((5, 37), (23, 37), (23,)))
    assert_array_equal(lf.float_matmul(x, w, b).view(np.uint32), rg.float_matmul(x, w, b).view(np.uint32))
    # a fused multiply-add would keep the low bits of (1 + 2**-12)**2 and return 2**-24 instead of 0
    a = F32(1 + 2**-12)
    assert lf.float_matmul(np.array([[a, 1]], F32), np.array([[a, -(1 + 2**-11)]], F32))[0, 0] == 0


def tiny_params(reset, seed, vocab=6, embed=3, hidden=5, scale=1.0):
    rng = np.random.default_rng(seed)
    n = lambda *s: (rng.standard_normal(s) * scale).astype(F32)  # noqa: E731
    return {"E": n(vocab, embed), "Wx": n(3 * hidden, embed), "Wh": n(3 * hidden, hidden), "b": n(3 * hidden),
            "b_hn": n(hidden) if reset == "after" else None, "Wf": n(vocab, hidden), "bf": n(vocab), "reset": reset}


ACTIVATIONS = {
    "float32": (None, None),
    "log8": (LogFormat(), LogFormat()),
    "log4": (LogFormat(exp_bits=3, exp_offset=-6), LogFormat(exp_bits=3, exp_offset=-4)),
    "log5-log-rounding": (LogFormat(exp_bits=4, exp_offset=-7, rounding="log"),
                          LogFormat(exp_bits=4, exp_offset=-5, rounding="log")),
    "fix16": (FixedFormat(16, 15), FixedFormat(16, 13)),
    "fix8": (FixedFormat(8, 7), FixedFormat(8, 5)),
    "fix4-floor": (FixedFormat(4, 3, "floor"), FixedFormat(4, 1, "floor")),
}


@pytest.mark.parametrize("state", ["float32", "coded"])
@pytest.mark.parametrize("reset", ["before", "after"])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_quantized_gru_lm_equals_oracle(reset, name, state):
    act, x_act = ACTIVATIONS[name]
    params = tiny_params(reset, seed=len(name))
    ids = np.random.default_rng(5).integers(0, 6, 30)
    starts, lengths = np.array([0, 10, 20]), np.array([10, 10, 9])
    got_final, want_final = np.zeros((3, 5), F32), np.zeros((3, 5), F32)
    got_counts, want_counts = Counts(), Counts()
    got = kg.run_gru_lm(params, ids, starts, lengths, act, x_act, got_counts, got_final, state)
    want = rg.gru_lm(params, ids, starts, lengths, act, x_act, want_counts, want_final, state)
    assert_array_equal(got, want)
    assert_array_equal(got_final.view(np.uint32), want_final.view(np.uint32))
    assert got_counts == want_counts
    assert (got[:29] >= 0).all() and got[29] == -1


@pytest.mark.parametrize("reset", ["before", "after"])
def test_quantized_gru_lm_with_edge_weights_equals_oracle(reset):
    """Zero, subnormal and huge weights in Wh and Wf send the log products to the per-element path."""
    params = tiny_params(reset, seed=11)
    rng = np.random.default_rng(12)
    params["Wh"] = edge_weights(rng, params["Wh"].shape)
    params["Wf"] = edge_weights(rng, params["Wf"].shape)
    params["Wh"][params["Wh"] == F32(3.0e38)] = F32(2.0**120)  # keeps the float32 sums finite
    params["Wf"][params["Wf"] == F32(3.0e38)] = F32(2.0**120)
    ids = np.random.default_rng(13).integers(0, 6, 24)
    starts, lengths = np.array([0, 12]), np.array([12, 11])
    got_counts, want_counts = Counts(), Counts()
    got = kg.run_gru_lm(params, ids, starts, lengths, LogFormat(), LogFormat(), got_counts)
    want = rg.gru_lm(params, ids, starts, lengths, LogFormat(), LogFormat(), want_counts)
    assert_array_equal(got, want)
    assert got_counts == want_counts and got_counts.flushed > 0


@pytest.mark.parametrize("state", ["float32", "coded"])
@pytest.mark.parametrize("reset", ["before", "after"])
@pytest.mark.parametrize("bits", [16, 8, 4])
def test_fixed_weights_gru_lm_equals_integer_oracle(reset, bits, state):
    params = tiny_params(reset, seed=bits, scale=0.8)
    act, x_act = loggru.activation_formats(params, "fixed", bits)
    codes, fmts = loggru.coded_weights(params, "fixed", bits)
    ids = np.random.default_rng(6).integers(0, 6, 40)
    starts, lengths = np.array([0, 20]), np.array([20, 19])
    got_final, want_final = np.zeros((2, 5), F32), np.zeros((2, 5), F32)
    got_counts, want_counts = Counts(), Counts()
    got = kg.run_fixed_weights(codes, fmts, reset, ids, starts, lengths, act, x_act, got_counts, got_final, state)
    want = rg.gru_lm_fixed_weights(codes, fmts, reset, ids, starts, lengths, act, x_act, want_counts, want_final,
                                   state)
    assert_array_equal(got, want)
    assert_array_equal(got_final.view(np.uint32), want_final.view(np.uint32))
    assert got_counts == want_counts


def test_results_do_not_depend_on_thread_count():
    params = tiny_params("before", seed=9, vocab=8, embed=4, hidden=16, scale=0.5)
    ids = np.random.default_rng(7).integers(0, 8, 400)
    starts, lengths = loggru.stream_bounds(len(ids) - 1, 7)
    runs = []
    threads = numba.get_num_threads()
    try:
        for n in sorted({1, threads}):
            numba.set_num_threads(n)
            runs.append(kg.run_gru_lm(params, ids, starts, lengths, LogFormat()))
    finally:
        numba.set_num_threads(threads)
    assert all((r == runs[0]).all() for r in runs)


def test_worked_example_of_the_docs():
    """docs/formats.md section 9: one product, one coded state and one float32 sum, by hand."""
    w = np.array([[0.75, -0.3]], F32)
    h = np.array([[0.3, -0.8]], F32)
    codes = log.encode(h, LogFormat())
    assert codes.tolist() == [[0x7E, 0x80]]  # 0.3 -> +2^-2, -0.8 -> -2^0 (mantissa MSB set: rounds up)
    assert np.float32(0.75).view(np.uint32) == 0x3F400000
    p0 = log.multiply_float32(w[0, 0], codes[0, 0])  # field 126 - 2 = 124: 0x3e400000 = 0.1875
    assert p0.view(np.uint32) == 0x3E400000 and p0 == F32(0.1875)
    p1 = log.multiply_float32(w[0, 1], codes[0, 1])  # -0.3 * -1 = +0.3 (sign bits XOR)
    assert p1 == F32(0.3)
    total = lf.log_matmul(codes, LogFormat(), w, np.array([0.5], F32))[0, 0]
    assert total == F32(F32(F32(0.0) + p0) + p1) + F32(0.5) == F32(0.9875)
    assert fixed.quantize(np.float32(0.3), FixedFormat(8, 7)) == 38  # 0.3 * 128 = 38.4 -> 38: 0.296875


# ---------------------------------------------------------------------------------------
# training, resume, memory and the table command

TINY = dict(embed=4, hidden=8, epochs=2, batch_size=4, seq_len=16, train_chars=3000, val_chars=1000, eval_streams=4,
            seed=3)


@pytest.fixture(scope="module")
def corpus():
    return loggru.load_shakespeare()


def test_training_is_reproducible_and_resumes_exactly(corpus, tmp_path):
    quiet = dict(text=corpus, progress=False, log=lambda line: None)
    cfg = loggru.GRUConfig(**TINY)
    whole, history = loggru.train(cfg, out_dir=tmp_path / "a", **quiet)
    assert history[-1]["train_loss"] < history[0]["train_loss"] < math.log(84)
    again, _ = loggru.train(cfg, **quiet)
    loggru.train(cfg, out_dir=tmp_path / "b", stop_after=1, **quiet)
    resumed, history_b = loggru.train(cfg, out_dir=tmp_path / "b", resume=True, **quiet)
    assert len(history_b) == 2
    for other in (again, resumed):
        for key, value in whole.state().items():
            assert other.state()[key].tobytes() == value.tobytes(), key
    loaded, meta = loggru.CharGRU.load(tmp_path / "a" / "best")
    assert meta["config"]["hidden"] == 8 and loaded.reset == "before"
    assert (tmp_path / "a" / "history.json").exists()


def test_memory_accounting_by_hand():
    p = tiny_params("before", 0, vocab=84, embed=32, hidden=64)
    n_params = 84 * 32 + 192 * 32 + 192 * 64 + 192 + 84 * 64 + 84
    assert loggru.memory(p, "FP32")["total"] == 4 * (n_params + 32 + 64)
    fix16 = loggru.memory(p, "Fix16")
    assert fix16["parameters"] == 2 * 84 * 32 + 4 * (n_params - 84 * 32) and fix16["state"] == 2 * 96
    assert loggru.memory(p, "Log8", "coded")["total"] == n_params + 96
    assert loggru.memory(p, "Fix16", "coded")["total"] == 2 * (n_params + 96)
    assert loggru.memory(p, "Fix8", "coded")["total"] == n_params + 96
    # the paper's accounting: x_t and h_t at the code's width
    assert [loggru.memory(p, m)["paper"] for m in loggru.MODES] == [4 * 96, 96, 2 * 96, 96]


def test_one_hot_input_is_exact_in_every_code(corpus, tmp_path):
    ids = np.array([[0, 3, 83], [5, 5, 1]])
    x = OneHot(84).forward(ids)
    assert x.shape == (2, 3, 84) and x.dtype == F32 and x.sum() == 6 and x[0, 2, 83] == 1 and x[1, 1, 5] == 1
    with pytest.raises(ValueError, match="0..83"):
        OneHot(84).forward(np.array([84]))
    model = loggru.CharGRU(84, hidden=8, seed=4, input="onehot")
    assert model.state().keys() == {"gru.Wx", "gru.Wh", "gru.b", "fc.W", "fc.b"} and model.gru.Wx.value.shape == (24, 84)
    model.save(tmp_path / "m", {"vocab": "".join(loggru.char_vocab(corpus))})
    loaded, _ = loggru.CharGRU.load(tmp_path / "m")
    assert loaded.input == "onehot" and loaded.emb.table.shape == (84, 84)
    p = loggru.plain_params(loaded)
    for kind, bits in (("log", 8), ("log", 4), ("fixed", 16), ("fixed", 8)):
        x_act = loggru.activation_formats(p, kind, bits)[1]
        tx, events = kg.x_table(p["E"], p["Wx"], x_act)
        assert_array_equal(tx.view(np.uint32), np.ascontiguousarray(p["Wx"].T).view(np.uint32))  # a column lookup
        assert events.sum() == 0
    # memory: no table is stored; x_t is 84 codes
    rows = {r["name"]: r for r in loggru.memory(p, "Log8")["rows"]}
    assert "E" not in rows and rows["x_t"]["values"] == 84 and rows["x_t"]["bytes"] == 84
    with pytest.raises(ValueError, match="onehot"):
        loggru.GRUConfig(input="bytes")


def test_format_rules():
    assert [loggru.int_bits(v) for v in (0.0, 0.99, 1.0, 1.99, 2.0, 5.0)] == [0, 0, 1, 1, 2, 3]
    p = {"E": np.array([[0.5, -1.7]], F32)}
    act, x_act = loggru.activation_formats(p, "fixed", 8)
    assert (act.bits, act.frac_bits, x_act.frac_bits) == (8, 7, 6)
    act, x_act = loggru.activation_formats(p, "log", 4)
    assert (act.emin, act.emax, x_act.emax) == (-6, 0, 1)  # 1.7 rounds up to 2^1
    assert loggru.activation_formats(p, "log", 8) == (LogFormat(), LogFormat())


def test_table_command_on_a_tiny_model(corpus, tmp_path, capsys):
    model = loggru.CharGRU(84, 4, 8, "after", seed=2)
    model.save(tmp_path / "m", {"vocab": "".join(loggru.char_vocab(corpus))})
    status = main(["gru", "table", str(tmp_path / "m.json"), "--chars", "600", "--streams", "3", "--repeats", "1",
                   "--quiet", "--out", str(tmp_path / "t")])
    assert status == 0
    out = capsys.readouterr().out
    for text in ("paper  run time ratio", "next-character accuracy", "agreement with FP32", "memory ratio",
                 "coded weights", "fix16", "log3"):
        assert text in out, text
    rep = json.loads((tmp_path / "t" / "table.json").read_text())
    rows = {(r["mode"], r["weights"]): r for r in rep["rows"]}
    assert rows[("FP32", "float32")]["agreement"] == 1.0 and rep["positions"] == 599
    assert rows[("Fix16", "coded")]["memory_ratio"] == 0.5
    assert len(rep["sweep"]) == 6 + 13
    assert rows[("Fix16", "float32")]["paper_memory_ratio"] == 0.5 and "paper's (x_t, h_t)" in out


def test_table_command_without_a_model_says_how_to_make_one(tmp_path, capsys):
    status = main(["gru", "table", str(tmp_path / "none" / "best.json"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and "no trained model" in err and "bitsim train gru --out" in err
