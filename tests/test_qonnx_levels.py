"""QONNX import: level 1 equals QONNX's executor on every tensor; level 2 wherever the float execution is exact."""

import itertools
from fractions import Fraction

import numpy as np
import pytest
import qonnx_networks as nets
from hypothesis import given, settings
from hypothesis import strategies as st

from bitsim.errors import InputError
from bitsim.interop import qonnx
from bitsim.interop.differences import check_tensors, compare_levels, execute_qonnx, format_levels
from bitsim.interop.exact_tensor import ROUNDING_MODES, exact_values, nearest_float32, round_ratio
from bitsim.interop.golden_rows import golden_rows
from bitsim.interop.integer_products import matmul_codes, plan
from bitsim.reference.intmatmul import exact_matmul
from bitsim.reference.qonnx_exact import evaluate as exact_oracle

MODES = [m for m in ROUNDING_MODES if m != "HALF_EVEN"] + ["HALF_EVEN"]


def loaded(model, tmp_path, name="m"):
    return qonnx.load(nets.save(model, tmp_path / f"{name}.onnx"))


def assert_level1(graph, x):
    expected = execute_qonnx(graph, x)
    bad = [(c.name, c.mismatches, c.first) for c in check_tensors(expected, graph.run(x, "reference"))
           if c.status != "match"]
    assert not bad, bad
    return expected


def assert_level2_equal(graph, x, expected):
    bad = [(c.name, c.mismatches, c.first) for c in check_tensors(expected, graph.run(x, "exact"), values=True)
           if c.status != "match"]
    assert not bad, bad


TFC_CASES = [(w, a, signed, narrow, mode) for (w, a), signed, narrow, mode in
             itertools.product([(1, 1), (2, 2), (4, 4), (1, 4), (4, 2)], [True, False], [False, True], MODES)
             if (w > 1 or signed) and (a > 1 or signed)]
TFC_CASES = TFC_CASES[::3] + [(2, 2, True, False, m) for m in MODES]  # every mode, bits, sign and narrow


@pytest.mark.parametrize("w_bits,a_bits,signed,narrow,mode", TFC_CASES)
def test_tfc_both_levels(tmp_path, w_bits, a_bits, signed, narrow, mode):
    graph = loaded(nets.tfc(seed=w_bits * 10 + a_bits, w_bits=w_bits, a_bits=a_bits, signed=signed, narrow=narrow,
                            rounding=mode, batch=2, sizes=(784, 64, 64, 64, 10)), tmp_path)
    x = np.concatenate([nets.images(3, (2, 784)), np.zeros((2, 784), np.float32)])
    expected = assert_level1(graph, x)
    assert_level2_equal(graph, x, expected)


@pytest.mark.parametrize("build", [lambda: nets.cnv(1, 2, 2), lambda: nets.cnv(2, 1, 1),
                                   lambda: nets.cnv(3, 4, 2, rounding="HALF_UP"),
                                   lambda: nets.cnv_streamlined(4), lambda: nets.cnv_streamlined(5, layout="NHWC"),
                                   lambda: nets.tfc_streamlined(6), lambda: nets.tfc_streamlined(7, 2, 2)])
def test_cnv_and_streamlined_both_levels(tmp_path, build):
    model = build()
    graph = loaded(model, tmp_path)
    shape = graph.shapes[graph.inputs[0]]
    grid = 1 if graph.nodes[0].op_type != "Quant" else 256
    for seed in (1, 2):
        x = nets.images(seed, (2,) + tuple(shape[1:]), grid)
        expected = assert_level1(graph, x)
        assert_level2_equal(graph, x, expected)


def test_non_power_of_two_scales_report_differences(tmp_path):
    graph = loaded(nets.tfc(seed=3, pow2=False, sizes=(784, 64, 64, 64, 10)), tmp_path)
    x = nets.images(4, (3, 784))
    assert_level1(graph, x)
    rows = {r.name: r for r in compare_levels(graph, x)}
    assert rows["global_in"].equal and rows["Quant_0_out0"].exact
    differing = [r for r in rows.values() if not r.equal]
    assert differing, "a non-power-of-two network whose exact level equals the float one everywhere"
    matmul = rows["MatMul_0_out0"]
    assert matmul.exact and not matmul.equal and 0 < matmul.max_abs_diff < 1e-3
    assert rows["BatchNormalization_0_out0"].exact is False  # no exact rule: computed by the float rule
    assert all(r.codes_flipped is not None for r in rows.values() if r.op_type == "Quant")


def fraction_round(f, mode):
    """Oracle: a Fraction rounded to an integer by a QONNX mode, by definition."""
    fl = f.numerator // f.denominator
    frac = f - fl
    if mode == "FLOOR":
        return fl
    if mode == "CEIL":
        return fl + (frac > 0)
    if mode in ("ROUND", "HALF_EVEN"):
        return fl + (frac > Fraction(1, 2) or (frac == Fraction(1, 2) and fl % 2 == 1))
    mag = abs(f)
    sign = -1 if f < 0 else 1
    m = mag.numerator // mag.denominator
    rest = mag - m
    up = {"UP": rest > 0, "DOWN": False, "HALF_UP": rest >= Fraction(1, 2), "HALF_DOWN": rest > Fraction(1, 2)}[mode]
    return sign * (m + up)


@given(st.lists(st.integers(-2000, 2000), min_size=1, max_size=20), st.integers(1, 12), st.sampled_from(MODES))
def test_round_ratio_equals_fraction_oracle(nums, den, mode):
    got = round_ratio(np.array(nums, np.int64), np.int64(den), mode)
    assert [int(v) for v in got] == [fraction_round(Fraction(n, den), mode) for n in nums]


def events_oracle(x, scale, zero_point, bits, signed, narrow, mode):
    """Oracle: ``(saturated, underflows)`` of a Quant by its definition, in Fractions."""
    low, high = (-(2 ** (bits - 1)) + narrow, 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1 - narrow)
    s, z = Fraction(float(scale)), Fraction(float(zero_point))
    saturated = underflows = 0
    for v in np.asarray(x, np.float64).reshape(-1).tolist():
        r = fraction_round(Fraction(v) / s + z, mode)
        saturated += not low <= r <= high
        underflows += v != 0 and min(max(r, low), high) == z
    return saturated, underflows


@given(seed=st.integers(0, 2 ** 32 - 1), bits=st.integers(2, 6), signed=st.booleans(), narrow=st.booleans(),
       mode=st.sampled_from(MODES), scale=st.sampled_from([0.25, 0.1, 1.5]), zero_point=st.sampled_from([0.0, 1.0]))
@settings(max_examples=30, deadline=None)
def test_quant_events_equal_fraction_oracle(tmp_path_factory, seed, bits, signed, narrow, mode, scale, zero_point):
    """docs/qonnx.md, "Level 2": each Quant's saturations (the rounded value beyond the code range) and
    underflows (a nonzero input whose output is 0), over a weight and an activation quantizer."""
    rng = np.random.default_rng(seed)
    w = (rng.normal(0, 2, (6, 3)) * 8).round().astype(np.float32) / 8
    w[0, 0] = 0.0
    b = nets.Builder(0)
    a = b.quant("x", scale, bits, signed=signed, narrow=narrow, rounding=mode, zero_point=zero_point)
    wq = b.quant(b.const(w), 0.25, 3, signed=True, rounding="FLOOR")
    model = b.model("x", [4, 6], b.node("MatMul", [a, wq]))
    graph = qonnx.load(nets.save(model, tmp_path_factory.mktemp("ev") / "m.onnx"))
    x = rng.normal(0, 3, (8, 6)).astype(np.float32)
    x[0, :3] = 0.0
    events = {}
    graph.run_exact(x, names=graph.outputs, events=events)
    act, weight = (graph.nodes[i].name for i in (0, 1))
    assert (events[act]["saturated"], events[act]["underflows"]) == \
        events_oracle(x, scale, zero_point, bits, signed, narrow, mode)
    assert (events[weight]["saturated"], events[weight]["underflows"]) == events_oracle(w, 0.25, 0.0, 3, 1, 0, "FLOOR")


def test_quant_events_worked_example(tmp_path):
    """docs/qonnx.md, "Quantizer events": signed 3 bits of 0.25 on [0.9, -1.2, 0.1, 0.0]."""
    b = nets.Builder(0)
    graph = loaded(b.model("x", [1, 4], b.quant("x", 0.25, 3, signed=True)), tmp_path)
    x = np.array([[0.9, -1.2, 0.1, 0.0]], np.float32)
    events = {}
    graph.run_exact(x, events=events)
    assert events == {graph.nodes[0].name: {"saturated": 2, "underflows": 1}}
    rows = compare_levels(graph, x)  # the report of `bitsim qonnx check`
    assert rows[1].events == {"saturated": 2, "underflows": 1} and rows[0].events is None
    assert f"EQUAL      {graph.outputs[0]} (Quant, exact; 2 saturated, 1 underflows)" in format_levels(rows)


def test_round_ratio_mode_table():
    """Hand-checked: -2.5, -1.5, -0.5, 0.5, 1.5, 2.5 and 0.25 by every mode."""
    values = np.array([-5, -3, -1, 1, 3, 5, 1]), np.array([2, 2, 2, 2, 2, 2, 4])
    table = {"ROUND": [-2, -2, 0, 0, 2, 2, 0], "CEIL": [-2, -1, 0, 1, 2, 3, 1], "FLOOR": [-3, -2, -1, 0, 1, 2, 0],
             "UP": [-3, -2, -1, 1, 2, 3, 1], "DOWN": [-2, -1, 0, 0, 1, 2, 0], "HALF_UP": [-3, -2, -1, 1, 2, 3, 0],
             "HALF_DOWN": [-2, -1, 0, 0, 1, 2, 0]}
    for mode, expected in table.items():
        assert [int(v) for v in round_ratio(*values, mode)] == expected, mode


def test_product_route_proves_the_float_bound_or_takes_the_integer_kernel():
    assert plan(255, 1, 784) == "float32"  # 784 * 255 < 2**24: exact in float32 in any order
    assert plan(255, 127, 4096) == "int16"  # 4096 * 255 * 127 > 2**24: the bound fails
    assert plan(1 << 20, 1 << 20, 64) == "int64"
    assert plan(1, 1, 10, bipolar=True) == "xnor"
    rng = np.random.default_rng(0)
    a = rng.integers(-255, 256, (5, 4096))
    b = rng.integers(-127, 128, (3, 4096))
    acc, route = matmul_codes(a, b)
    assert route == "int16"
    assert acc.tolist() == exact_matmul(a, b).tolist()
    with pytest.raises(ValueError, match="not provably exact"):
        matmul_codes(a, b, route="float32")
    small = rng.integers(-255, 256, (4, 700)), rng.integers(-1, 2, (6, 700))
    acc, route = matmul_codes(*small)  # 700 * 255 * 1 < 2**24
    assert route == "float32" and acc.tolist() == exact_matmul(*small).tolist()
    pixels = rng.integers(0, 256, (4, 700)), rng.integers(-3, 4, (6, 700))
    acc, route = matmul_codes(*pixels)
    assert route == "u8" and acc.tolist() == exact_matmul(*pixels).tolist()
    pm = np.where(rng.random((4, 130)) < 0.5, -1, 1), np.where(rng.random((6, 130)) < 0.5, -1, 1)
    acc, route = matmul_codes(*pm)
    assert route == "xnor" and acc.tolist() == exact_matmul(*pm).tolist()


# random small graphs of supported ops against QONNX's executor

OPS = st.sampled_from(["Quant", "BipolarQuant", "Add", "Mul", "Sub", "Relu", "Sign", "MatMul", "MultiThreshold",
                       "Div", "Identity", "Transpose2"])


@st.composite
def small_graphs(draw):
    seed = draw(st.integers(0, 2 ** 16))
    ops = draw(st.lists(OPS, min_size=1, max_size=5))
    b = nets.Builder(seed)
    rng = b.rng
    h, width = "x", 6
    for op in ops:
        if op == "Quant":
            bits = draw(st.integers(1, 6))
            signed = draw(st.booleans()) or bits == 1
            scale = draw(st.sampled_from([0.25, 0.5, 1.0, 0.3, 0.1]))
            zero_point = 0.0 if signed else float(draw(st.integers(-1, 1)))
            h = b.quant(h, scale, bits, signed=signed, narrow=draw(st.booleans()) and bits > 1,
                        rounding=draw(st.sampled_from(MODES)), zero_point=zero_point)
        elif op == "BipolarQuant":
            h = b.quant(h, draw(st.sampled_from([0.5, 1.0, 0.7])), 1)
        elif op in ("Add", "Mul", "Sub", "Div"):
            c = np.round(rng.normal(0, 2, (1, width)) * 4) / 4 + (op == "Div") * 5
            h = b.node(op, [h, b.const(c)])
        elif op == "MatMul":
            n = int(draw(st.integers(2, 8)))
            h = b.node("MatMul", [h, b.const(np.round(rng.normal(0, 2, (width, n))))])
            width = n
        elif op == "MultiThreshold":
            t = np.sort(np.round(rng.normal(0, 3, (width, 3)) * 2) / 2, axis=1)
            h = b.node("MultiThreshold", [h, b.const(t)], domain=nets.QONNX, out_dtype="UINT2",
                       out_scale=draw(st.sampled_from([1.0, 0.5, 2.0])), out_bias=draw(st.sampled_from([0.0, -1.0])))
        elif op == "Transpose2":
            h = b.node("Transpose", [h], perm=[0, 1])
        else:
            h = b.node(op, [h])
    return b.model("x", [3, 6], h)


@given(small_graphs(), st.integers(0, 1000))
def test_random_graphs_level1_equals_qonnx(tmp_path_factory, model, seed):
    graph = qonnx.load(nets.save(model, tmp_path_factory.mktemp("g") / "m.onnx"))
    x = (np.random.default_rng(seed).normal(0, 3, (3, 6)) * 8).round().astype(np.float32) / 8
    expected = assert_level1(graph, x)
    if not all(np.isfinite(v).all() for v in expected.values()):  # e.g. a division by a zero constant
        with pytest.raises(InputError, match="needs finite values"):
            graph.run_exact(x)
        return
    # the exact level against the slow Fraction oracle, on every tensor it computed by exact rules
    values, tensors = graph.run_exact(x)
    nodes = [(n.op_type, n.inputs, n.outputs, n.attrs) for n in graph.nodes]
    oracle = exact_oracle(nodes, graph.initializers, {graph.inputs[0]: x})
    for name, e in tensors.items():
        if e is not None:
            assert exact_values(e).tolist() == oracle[name].tolist(), name
            assert values[name].tolist() == [[float(nearest_float32(v)) for v in row] for row in oracle[name]], name


SPATIAL = st.sampled_from(["Quant", "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization",
                           "Relu", "Concat", "Add", "Trunc", "MultiThreshold"])


@st.composite
def small_conv_graphs(draw):
    """Random 4-D graphs (N, C, H, W), ending in Flatten, Reshape, Transpose and a Gemm or MatMul."""
    seed = draw(st.integers(0, 2 ** 16))
    b = nets.Builder(seed)
    rng = b.rng
    h, c, size = "x", 2, 6
    for op in draw(st.lists(SPATIAL, min_size=1, max_size=4)):
        if op == "Quant":
            bits = draw(st.integers(2, 5))
            h = b.quant(h, draw(st.sampled_from([0.25, 0.5, 0.3])), bits, signed=draw(st.booleans()),
                        narrow=draw(st.booleans()), rounding=draw(st.sampled_from(MODES)))
        elif op == "Conv":
            group = draw(st.sampled_from([1, c]))
            out = c * draw(st.integers(1, 2))
            k = draw(st.sampled_from([1, 3]))
            pad = draw(st.integers(0, k // 2))
            stride = draw(st.integers(1, 2))
            if (size + 2 * pad - k) // stride + 1 < 1:
                continue
            w = b.quant(b.const(rng.normal(0, 1, (out, c // group, k, k))), 0.5, 3, rounding="ROUND")
            inputs = [h, w] + ([b.const(rng.normal(0, 1, out))] if draw(st.booleans()) else [])
            h = b.node("Conv", inputs, kernel_shape=[k, k], pads=[pad] * 4, strides=[stride] * 2, group=group)
            c, size = out, (size + 2 * pad - k) // stride + 1
        elif op in ("MaxPool", "AveragePool"):
            if size < 2:
                continue
            h = b.node(op, [h], kernel_shape=[2, 2], strides=[2, 2])
            size //= 2
        elif op == "GlobalAveragePool":
            h = b.node(op, [h])
            size = 1
        elif op == "BatchNormalization":
            h = b.node(op, [h, b.const(rng.uniform(0.5, 2, c)), b.const(rng.normal(0, 1, c)),
                            b.const(rng.normal(0, 1, c)), b.const(rng.uniform(0.5, 4, c))], epsilon=1e-5)
        elif op == "Concat":
            h = b.node("Concat", [h, b.node("Relu", [h])], axis=1)  # QONNX's renaming mishandles [x, x]
            c *= 2
        elif op == "Add":
            h = b.node("Add", [h, b.const(np.round(rng.normal(0, 2, (1, c, 1, 1)) * 4) / 4)])
        elif op == "Trunc":
            h = b.node("Trunc", [h, b.const(0.25), b.const(0.0), b.const(8.0), b.const(float(draw(st.integers(2, 6))))],
                       domain=nets.QONNX, rounding_mode=draw(st.sampled_from(["FLOOR", "ROUND", "CEIL"])))
        elif op == "MultiThreshold":
            t = np.sort(np.round(rng.normal(0, 2, (c, 3)) * 4) / 4, axis=1)
            h = b.node("MultiThreshold", [h, b.const(t)], domain=nets.QONNX, out_dtype="UINT2")
        else:
            h = b.node(op, [h])
    h = b.node("Flatten", [h], axis=1)
    features = c * size * size
    h = b.node("Reshape", [h, b.ints([3, features])])
    h = b.node("Transpose", [b.node("Transpose", [h], perm=[1, 0])], perm=[1, 0])
    if draw(st.booleans()):
        h = b.node("Gemm", [h, b.const(rng.normal(0, 1, (4, features))), b.const(rng.normal(0, 1, 4))], transB=1,
                   alpha=draw(st.sampled_from([1.0, 0.5])))
    else:
        h = b.node("MatMul", [h, b.quant(b.const(rng.normal(0, 1, (features, 4))), 0.25, 2)])
    return b.model("x", [3, 2, 6, 6], h)


@given(small_conv_graphs(), st.integers(0, 1000))
def test_random_conv_graphs_level1_equals_qonnx(tmp_path_factory, model, seed):
    graph = qonnx.load(nets.save(model, tmp_path_factory.mktemp("g") / "m.onnx"))
    x = (np.random.default_rng(seed).normal(0, 2, (3, 2, 6, 6)) * 8).round().astype(np.float32) / 8
    assert_level1(graph, x)
    graph.run(x, "exact")



@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("mode", ["FLOOR", "ROUND", "CEIL", "HALF_UP"])
def test_trunc_levels_agree_on_power_of_two_scales(tmp_path, version, mode):
    b = nets.Builder(version)
    h = b.quant("x", 0.25, 8, signed=True, rounding="ROUND")
    if version == 1:
        h = b.node("Trunc", [h, b.const(0.25), b.const(0.0), b.const(8.0), b.const(5.0)], domain=nets.QONNX,
                   rounding_mode=mode)
    else:
        h = b.node("Trunc", [h, b.const(0.25), b.const(0.0), b.const(8.0), b.const(2.0), b.const(4.0)],
                   domain=nets.QONNX, rounding_mode=mode, signed=1, narrow=0)
    model = b.model("x", [4, 16], h)
    if version == 2:
        model.opset_import[1].version = 2
    graph = loaded(model, tmp_path)
    x = (np.random.default_rng(version).normal(0, 20, (4, 16)) * 4).round().astype(np.float32) / 4
    expected = assert_level1(graph, x)
    assert_level2_equal(graph, x, expected)
    _, tensors = graph.run_exact(x)
    assert tensors[graph.outputs[0]] is not None  # computed by the exact rule, not rounded


@pytest.mark.parametrize("bits", [5000.0, 2.0 ** 40])
def test_quant_wider_than_the_exact_rule_runs_by_the_reference_rule(tmp_path, bits):
    """docs/qonnx.md, "Level 2": a Quant of more than 4096 bits has no exact rule (its bounds would be integers
    of that many bits); it runs by the level-1 rule and its output is marked rounded."""
    b = nets.Builder(0)
    graph = loaded(b.model("x", [2, 8], b.quant("x", 0.25, bits, signed=True)), tmp_path)
    x = np.random.default_rng(4).normal(0, 30, (2, 8)).astype(np.float32)
    expected = assert_level1(graph, x)
    assert_level2_equal(graph, x, expected)
    _, tensors = graph.run_exact(x)
    assert tensors[graph.outputs[0]] is None


def test_a_flipped_code_is_counted_and_followed_downstream(tmp_path):
    """docs/qonnx.md, section 3: 0.35 / 0.1 is 3.4999999 exactly but 3.5 in float32, so ROUND gives 3 and 4."""
    b = nets.Builder(0)
    q = b.quant("x", 0.1, 8, signed=True)
    y = b.node("MatMul", [q, b.const(np.ones((4, 2)))])
    graph = loaded(b.model("x", [1, 4], y), tmp_path)
    x = np.array([[0.35, 0.25, 1.0, -0.5]], np.float32)
    rows = {r.name: r for r in compare_levels(graph, x)}
    quant = rows[graph.nodes[0].outputs[0]]
    assert quant.exact and quant.codes_flipped == 1 and quant.max_abs_diff == pytest.approx(0.1)
    out = rows[graph.outputs[0]]
    assert out.exact and out.differing == 2 and out.codes_flipped is None
    _, tensors = graph.run_exact(x)
    assert np.asarray(tensors[graph.nodes[0].outputs[0]].codes).tolist() == [[3, 2, 10, -5]]  # exact codes


# non-finite constants: MultiThreshold's rule for +-inf thresholds; every other use refused by name


def edited(model, name, edit):
    """``model`` with the initializer ``name`` replaced by ``edit(its array)``."""
    from onnx import numpy_helper

    init = next(i for i in model.graph.initializer if i.name == name)
    init.CopyFrom(numpy_helper.from_array(edit(numpy_helper.to_array(init).copy()), name))
    return model


def thresholds_of(model):
    return [node.input[1] for node in model.graph.node if node.op_type == "MultiThreshold"]


def set_infinite(t):
    t[0, :] = np.inf  # never met
    t[1, :] = -np.inf  # always met
    t[2, 0] = -np.inf
    t[2, -1] = np.inf
    return t


@pytest.mark.parametrize("a_bits,binary_input", [(1, True), (2, False)])
def test_infinite_thresholds_follow_the_rule_at_the_exact_level(tmp_path, a_bits, binary_input):
    """docs/qonnx.md, section 3: a threshold ``+inf`` is never met, ``-inf`` always; both the compiled plan
    (``graph.run``) and the general path (``graph.run_exact``) agree with level 1 and the Fraction oracle."""
    model = nets.tfc_streamlined(5, w_bits=1 if a_bits == 1 else 2, a_bits=a_bits, batch=2, sizes=(64, 16, 16, 10),
                                 binary_input=binary_input)
    for name in thresholds_of(model)[1 if binary_input else 0:]:
        model = edited(model, name, set_infinite)
    graph = loaded(model, tmp_path)
    assert graph.compile_exact() is not None  # graph.run below takes the compiled plan, run_exact the general path
    x = np.random.default_rng(1).integers(0, 256, (4, 64)).astype(np.float32)
    expected = assert_level1(graph, x)
    assert_level2_equal(graph, x, expected)
    values, tensors = graph.run_exact(x)
    nodes = [(n.op_type, n.inputs, n.outputs, n.attrs) for n in graph.nodes]
    oracle = exact_oracle(nodes, graph.initializers, {graph.inputs[0]: x})
    first = graph.nodes[1 if binary_input else 0].outputs[0]
    hidden = next(n.outputs[0] for n in graph.nodes if n.op_type == "MultiThreshold" and n.inputs[0] == first)
    codes = np.asarray(tensors[hidden].codes)
    steps = 2 ** a_bits - 1
    low, high = (-1, 1) if a_bits == 1 else (0, steps)
    assert (codes[:, 0] == low).all() and (codes[:, 1] == high).all()  # +inf never met, -inf always
    for name, e in tensors.items():
        assert e is not None, name
        assert exact_values(e).tolist() == oracle[name].tolist(), name
        assert np.array_equal(values[name], expected[name]), name
    rows = {row[0]: row for row in golden_rows(graph, x, "exact")}  # golden vectors keep the thresholds as floats
    t = next(n.inputs[1] for n in graph.nodes if n.outputs[0] == hidden)
    assert rows[t][2] is None and np.array_equal(rows[t][1], graph.initializers[t])


def test_non_finite_values_elsewhere_are_refused_naming_tensor_and_node(tmp_path):
    graph = loaded(nets.tfc_streamlined(5, batch=2, sizes=(64, 16, 10)), tmp_path)
    x = np.random.default_rng(1).integers(0, 256, (2, 64)).astype(np.float32)
    bad = x.copy()
    bad[1, 3] = np.nan
    with pytest.raises(InputError, match=f"input '{graph.inputs[0]}' holds inf or NaN"):
        graph.run_exact(bad)
    graph = loaded(nets.tfc_streamlined(5, batch=2, sizes=(64, 16, 10)), tmp_path)  # nothing computed yet
    matmul = next(n for n in graph.nodes if n.op_type == "MatMul")
    weight = matmul.inputs[1]
    graph.initializers[weight] = np.where(graph.initializers[weight] > 0, np.inf, graph.initializers[weight])
    graph.run(x, "reference")
    for run in (lambda: graph.run(x, "exact"), lambda: graph.run_exact(x)):
        with pytest.raises(InputError, match=f"constant '{weight}', an input of node '{matmul.name}' \\(MatMul\\)"):
            run()


def reshape_net(target, allowzero, batch=2):
    """Quant, then a Reshape of (batch, 1, 4, 4) to ``target`` with ``allowzero``, then a 2-bit Quant."""
    b = nets.Builder(3)
    h = b.quant("x", np.float32(1 / 8), 8, signed=False)
    h = b.node("Reshape", [h, b.ints(target)], allowzero=allowzero)
    h = b.quant(h, np.float32(0.5), 2)
    model = b.model("x", [batch, 1, 4, 4], h)
    for opset in model.opset_import:
        if opset.domain == "":
            opset.version = 14  # Reshape's allowzero
    return model


@pytest.mark.parametrize("target", [[2, 16], [2, -1], [0, 16]])
def test_reshape_with_allowzero_follows_onnx(tmp_path, target):
    """With allowzero=1 a 0 in the shape is a size (PyTorch's exporter writes allowzero=1); without, it keeps
    the axis. Both levels equal QONNX's executor where the result holds values."""
    x = nets.images(4, (2, 1, 4, 4), grid=8)
    for allowzero in (0, 1):
        if allowzero and 0 in target:  # a size-0 axis: 32 values cannot fill it, a clear error
            with pytest.raises(InputError, match="Reshape"):
                loaded(reshape_net(target, allowzero), tmp_path, f"z{allowzero}").run(x, "reference")
            continue
        graph = loaded(reshape_net(target, allowzero), tmp_path, f"z{allowzero}")
        assert_level2_equal(graph, x, assert_level1(graph, x))
