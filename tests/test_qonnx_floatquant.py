"""FloatQuant at both levels: level 1 equal to QONNX's executor on every tensor, level 2 equal to it where the
float steps are exact, the exact grid checked against bitsim's minifloat codes, differences reported."""

import numpy as np
import pytest
import qonnx_networks as nets

from bitsim.errors import InputError
from bitsim.formats.minifloat import MinifloatFormat, decode, encode
from bitsim.interop import qonnx
from bitsim.interop.differences import check_tensors, compare_levels, execute_qonnx

MODES = ["ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN"]


def float_quant_model(e, m, bias=None, max_val=None, scale=1.0, mode="ROUND", has_inf=0, has_nan=0, saturation=1,
                      shape=(4, 64), then_quant=False):
    """x -> FloatQuant(x) [-> Quant to 4 bits]; the defaults of QONNX for the bias and the bound."""
    b = nets.Builder(e * 16 + m)
    bias = 2 ** (e - 1) - 1 if bias is None else bias
    max_val = np.float32(np.finfo(np.float32).max) if max_val is None else max_val
    h = b.node("FloatQuant", ["x", b.const(scale), b.const(float(e)), b.const(float(m)), b.const(float(bias)),
                              b.const(max_val)], domain=nets.QONNX, rounding_mode=mode, has_inf=has_inf,
               has_nan=has_nan, has_subnormal=1, saturation=saturation)
    if then_quant:
        h = b.quant(h, 0.5, 4, signed=True, rounding="ROUND")
    return b.model("x", list(shape), h)


def loaded(model, tmp_path, name="fq"):
    return qonnx.load(nets.save(model, tmp_path / f"{name}.onnx"))


def probe_inputs(seed, shape=(4, 64), scale=1.0):
    """Values across the binades of small formats: zeros, subnormals, ties, near the top, beyond it."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 4, shape) * 2.0 ** rng.integers(-8, 8, shape)
    flat = x.reshape(-1)
    flat[:12] = [0.0, -0.0, 1.0, 1.5, 1.25, 0.375, 1e-3, -1e-3, 480.0, -1e6, 2.0 ** -9, 3.0 * 2.0 ** -10]
    return (x * scale).astype(np.float32)


def level1_mismatches(graph, x):
    expected = execute_qonnx(graph, x)
    return expected, [(c.name, c.mismatches, c.first) for c in check_tensors(expected, graph.run(x, "reference"))
                      if c.status != "match"]


def level2_mismatches(graph, x, expected):
    return [(c.name, c.mismatches, c.first) for c in check_tensors(expected, graph.run(x, "exact"), values=True)
            if c.status != "match"]


@pytest.mark.parametrize("e,m,bias,max_val,mode", [
    (4, 3, None, None, "ROUND"), (4, 3, None, 448.0, "HALF_UP"), (5, 2, None, 57344.0, "FLOOR"),
    (2, 1, None, None, "CEIL"), (3, 2, 3, None, "UP"), (2, 3, None, 6.0, "DOWN"), (4, 3, 8, 240.0, "HALF_DOWN"),
    (5, 2, 15, None, "HALF_EVEN"), (3, 0, None, None, "ROUND"), (1, 2, None, None, "FLOOR"),
])
def test_float_quant_both_levels_against_qonnx(tmp_path, e, m, bias, max_val, mode):
    graph = loaded(float_quant_model(e, m, bias, max_val, mode=mode, then_quant=True), tmp_path)
    for seed in (1, 2):
        x = probe_inputs(seed)
        expected, bad = level1_mismatches(graph, x)
        assert not bad, bad
        assert not level2_mismatches(graph, x, expected)  # power-of-two scale, few mantissa bits: float is exact
        _, tensors = graph.run_exact(x)
        assert tensors[graph.nodes[0].outputs[0]] is not None  # by the exact rule, not rounded


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # QONNX's inf / inf
@pytest.mark.parametrize("has_inf,has_nan", [(1, 0), (0, 1), (1, 1)])
def test_float_quant_without_saturation_level1(tmp_path, has_inf, has_nan):
    graph = loaded(float_quant_model(4, 3, None, 240.0, has_inf=has_inf, has_nan=has_nan, saturation=0), tmp_path)
    x = probe_inputs(3)
    x[0, :4] = [np.inf, -np.inf, np.nan, 1e5]
    expected, bad = level1_mismatches(graph, x)
    assert not bad, bad
    out = graph.run(x, "reference")[graph.outputs[0]]
    assert np.isnan(out[0, 2]) and (np.isinf(out[0, 3]) if has_inf else np.isnan(out[0, 3]))
    # nothing beyond the bound: the exact rule applies; beyond it the exact level refuses, naming the level
    inside = np.clip(probe_inputs(4), -200, 200)
    expected, _ = level1_mismatches(graph, inside)
    assert not level2_mismatches(graph, inside, expected)
    with pytest.raises(InputError, match="inf or NaN, which the exact level"):
        graph.run(np.full_like(x, 1e5), "exact")


@pytest.mark.parametrize("e,m", [(4, 3), (5, 2), (3, 2), (2, 1), (2, 3), (5, 10), (8, 7)])
@pytest.mark.parametrize("mode", ["ROUND", "FLOOR", "CEIL", "DOWN", "HALF_UP"])
def test_exact_rule_equals_minifloat_codes(tmp_path, e, m, mode):
    """The exact level's grid and rounding are the minifloat format's with subnormals and no special codes:
    ``decode(encode(x))`` of :mod:`bitsim.formats.minifloat` (saturating), an independent implementation."""
    graph = loaded(float_quant_model(e, m, mode=mode), tmp_path, f"g{e}{m}{mode}")
    fmt = MinifloatFormat(e, m, subnormals=True, infinities=False, nans=False)
    x = probe_inputs(e + m).astype(np.float64)
    x = np.clip(x, -fmt.max * 1.5, fmt.max * 1.5).astype(np.float32)
    rounding = {"ROUND": "nearest_even", "FLOOR": "floor", "CEIL": "ceil", "DOWN": "toward_zero",
                "HALF_UP": "nearest_away"}[mode]
    expected = decode(encode(x.astype(np.float64), fmt, rounding=rounding, overflow="saturate"), fmt)
    got = graph.run(x, "exact")[graph.outputs[0]]
    assert np.array_equal(got.astype(np.float64), expected)


def test_non_power_of_two_scale_reports_differences(tmp_path):
    """x / 0.1 rounds in float32 before the grid; the exact level divides exactly, and reports the codes that flip."""
    graph = loaded(float_quant_model(4, 3, scale=0.1, then_quant=False, shape=(1, 4)), tmp_path)
    x = np.array([[0.2875, 0.25, 1.0, -0.5]], np.float32)  # 0.2875 / 0.1 = 2.8749999 exactly, 2.875 in float32
    expected, bad = level1_mismatches(graph, x)
    assert not bad, bad
    rows = {r.name: r for r in compare_levels(graph, x)}
    out = rows[graph.outputs[0]]
    assert out.exact and not out.equal and out.codes_flipped == 1
    # E4M3 has steps of 0.25 in [2, 4): 2.8749999 rounds down to 2.75; the float32 tie 2.875 goes to even, 3.0
    assert graph.run(x, "exact")[graph.outputs[0]][0, 0] == np.float32(2.75 * float(np.float32(0.1)))
    assert expected[graph.outputs[0]][0, 0] == np.float32(3.0) * np.float32(0.1)


def test_float_quant_refusals(tmp_path):
    with pytest.raises(InputError, match="saturation=0 needs has_inf"):
        loaded(float_quant_model(4, 3, saturation=0), tmp_path)
    with pytest.raises(InputError, match="rounding_mode"):
        loaded(float_quant_model(4, 3, mode="STOCHASTIC"), tmp_path, "r")


def test_the_float32_binade_of_qonnx_differs_with_a_directed_mode(tmp_path):
    """log2(1023.99994) is 10.0 in float32: QONNX floors on the grid of [1024, 2048) (step 128), the exact level
    on that of [512, 1024) (step 64)."""
    graph = loaded(float_quant_model(5, 3, mode="FLOOR", shape=(1, 2)), tmp_path)
    x = np.array([[np.float32(1024) * np.float32(1 - 2 ** -24), 1000.0]], np.float32)
    expected, bad = level1_mismatches(graph, x)
    assert not bad, bad
    assert expected[graph.outputs[0]].tolist() == [[896.0, 960.0]]
    assert graph.run(x, "exact")[graph.outputs[0]].tolist() == [[960.0, 960.0]]
    row = {r.name: r for r in compare_levels(graph, x)}[graph.outputs[0]]
    assert row.exact and row.differing == 1 and row.max_abs_diff == 64.0 and row.codes_flipped == 1


def test_a_tiny_scale_on_zero_inputs(tmp_path):
    """x / 1e-30 exactly is a ratio of integers beyond int64, even when every code of x is 0."""
    graph = loaded(float_quant_model(4, 3, scale=1e-30, then_quant=True, shape=(1, 8)), tmp_path)
    for x in (np.zeros((1, 8), np.float32), np.full((1, 8), 3e-30, np.float32)):
        expected, bad = level1_mismatches(graph, x)
        assert not bad, bad
        assert not level2_mismatches(graph, x, expected)
