"""bitsim sweep with the minifloat and MX formats and with the convolutional LeNet-5: each against a slow oracle
(bitsim.reference), their memory by hand, and the spec errors they bring."""

import csv
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from bitsim.cli import main
from bitsim.datasets import load_mnist
from bitsim.errors import DamagedFileError, InputError
from bitsim.formats import minifloat, mx
from bitsim.formats.modes import Counts
from bitsim.reference import accumulate as ref_accumulate
from bitsim.reference import conv as ref_conv
from bitsim.reference import mx as ref_mx
from bitsim.sweep import run_sweep
from bitsim.sweep.formats import FORMATS, MINIFLOATS, canonical
from bitsim.sweep.network import Layer, Network, integer_scores, load_network, run_float64
from bitsim.sweep.spec import costs, expand, load_spec, parse_spec
from sweep_models import lenet5_model, spec_text

quiet = dict(progress=False, log=lambda line: None)


@pytest.fixture(scope="module")
def lenet5(tmp_path_factory):
    return lenet5_model(tmp_path_factory.mktemp("lenet5"))


@pytest.mark.parametrize("kind", MINIFLOATS)
@pytest.mark.parametrize("rounding", ["nearest_even", "toward_zero", "floor"])
def test_minifloat_codes_match_the_slow_oracle(kind, rounding):
    fmt = minifloat.parse_minifloat(kind)
    rng = np.random.default_rng(len(kind) + len(rounding))
    reference = rng.normal(size=50) * 3.7
    x = np.concatenate([reference, rng.normal(size=50) * 1e-3, [0.0, -0.0, 50.0, -1e-30, np.max(reference)]])
    q = FORMATS["minifloat"].quantizer({"type": kind, "rounding": rounding}, reference)
    got = q.codes(x, Counts())
    top = Fraction(float(np.max(np.abs(reference))))
    shift = 0  # the smallest power of two that brings max |reference| into range, by Fractions
    while top > Fraction(fmt.max) * Fraction(2) ** shift:
        shift += 1
    while top <= Fraction(fmt.max) * Fraction(2) ** (shift - 1):
        shift -= 1
    unit = Fraction(fmt.min_positive)
    for value, code in zip(x, got):
        oracle = ref_mx.decode_one(ref_mx.encode_one(float(Fraction(float(value)) / Fraction(2) ** shift), fmt,
                                                     rounding, "saturate"), fmt)
        assert Fraction(int(code)) == oracle / unit, (value, code, oracle)
    assert Fraction(q.scale) == unit * Fraction(2) ** shift


def oracle_tensor(x, choice):
    """An MX tensor (rows, cols) blocked along axis 1, block by block with the slow reference."""
    fmt = mx.as_mx(choice["type"], choice["block"])
    block = fmt.block
    codes = np.zeros(x.shape, np.uint8)
    scales = np.zeros((x.shape[0], -(-x.shape[1] // block)), np.uint8)
    for i, row in enumerate(x):
        for b in range(scales.shape[1]):
            scale, elements = ref_mx.mx_quantize_block([float(v) for v in row[b * block:(b + 1) * block]],
                                                       fmt.element, choice["scale_rule"])
            scales[i, b] = scale
            codes[i, b * block:(b + 1) * block] = elements
    return mx.MXTensor(codes, scales, fmt, 1)


def tiny_network(rng, sizes=(40, 6, 3)):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        post = [("relu",)] if i < len(sizes) - 2 else []
        layers.append(Layer(f"fc{i + 1}", rng.normal(size=(n_out, n_in)) * 0.3, rng.normal(size=n_out) * 0.1, post))
    return Network("connect", layers, "0" * 64)


def mx_choice(kind, block, rule="floor"):
    return canonical({"format": "mx", "type": kind, "block": block, "scale_rule": rule})


@pytest.mark.parametrize("rule", ["exact", "float32"])
@pytest.mark.parametrize("scale_rule", ["floor", "ceil"])
def test_mx_layers_match_the_slow_oracle(rule, scale_rule):
    rng = np.random.default_rng(11)
    net = tiny_network(rng, (48, 6, 3))
    # the first and last of fc1's three blocks cancel: +B, small, -B; float32 accumulation loses the small block
    w = net.layers[0].weight
    w[:, :16] *= 2.0**40
    w[:, 32:] = -w[:, :16]
    images = rng.integers(0, 256, size=(5, 48), dtype=np.uint8)
    images[:, 32:] = images[:, :16]
    layers = {"fc1": {"weight": mx_choice("mxfp4_e2m1", 16, scale_rule),
                      "activation": mx_choice("mxfp8_e4m3", 16, scale_rule)},
              "fc2": {"weight": mx_choice("mxint8", 4, scale_rule),
                      "activation": mx_choice("mxfp6_e3m2", 4, scale_rule)}}
    scores, counts = integer_scores(net, layers, {"mx": rule}, [None, None], images)
    gemm = ref_mx.gemm_exact if rule == "exact" else ref_mx.gemm_float32
    x = net.inputs(images)
    for layer in net.layers:
        w = oracle_tensor(layer.weight, layers[layer.name]["weight"])
        a = oracle_tensor(x, layers[layer.name]["activation"])
        y = gemm(a, mx.MXTensor(w.codes.T, w.scales.T, w.fmt, 0)).astype(np.float64) + layer.bias
        x = np.maximum(y, 0.0) if layer.post else y
    assert np.array_equal(scores, x)
    assert counts["accumulator"] == 0 and counts["underflows"] > 0  # E2M1 flushes small weights


def test_mx_memory_counts_the_e8m0_scales():
    net = tiny_network(np.random.default_rng(1))
    fixed8 = canonical({"format": "fixed", "bits": 8})
    layers = {"fc1": {"weight": mx_choice("mxfp4_e2m1", 16), "activation": mx_choice("mxfp8_e4m3", 16)},
              "fc2": {"weight": fixed8, "activation": fixed8}}
    # fc1: 6 x 40 four-bit elements = 120 B, 6 rows x 3 blocks of scales; one image's 40 inputs: 40 B + 3 scales
    # fc2: 3 x 6 bytes of weights, 6 bytes of inputs; products: fc2 only is 6 x 3, plus 6 + 3 rescales
    assert costs(net, layers) == {"weight_bytes": 120 + 18 + 18, "activation_bytes": 43 + 6,
                                  "multiplications": 6 * 40 + 6 + 18 + 3}


MX8 = '{format = "mx", type = "mxfp8_e4m3"}'


@pytest.mark.parametrize("weight, activation, extra, message", [
    ('{format = "mx", type = "mxfp3"}', MX8, "", "mxfp8_e4m3"),
    ('{format = "mx", type = "mxfp8_e4m3", block = 0}', MX8, "", r"an integer in \[1, 4096\]"),
    (MX8, '{format = "fixed", bits = 8}', "", "multiplies only with an MX format"),
    ('{format = "mx", type = "mxint8", block = 16}', MX8, "", "same block size"),
    (MX8, MX8, 'mx = "bfloat16"', "exact"),
    ('{format = "minifloat", type = "e4m4"}', '{format = "fixed", bits = 8}', "", "e4m3"),
])
def test_bad_mx_and_minifloat_specs_are_clear_errors(weight, activation, extra, message):
    with pytest.raises(DamagedFileError, match=message):
        parse_spec(spec_text("connect", "m.json", weight=weight, activation=activation,
                             accumulator="bits = 16\n" + extra))


def test_mixed_groups_keep_the_pairs_that_go_together(lenet5, tmp_path):
    text = spec_text("surgery", lenet5, weight=f'[{{format = "fixed", bits = 8}}, {MX8}]',
                     activation=f'[{{format = "fixed", bits = 8}}, {MX8}]',
                     accumulator='bits = [16, 24]\nmx = ["exact", "float32"]').replace(
        'names = "*"', 'names = ["ip1", "ip2"]') + textwrap_group("conv1", "conv2")
    (tmp_path / "s.toml").write_text(text)
    net = load_network("surgery", lenet5)
    configs = expand(load_spec(tmp_path / "s.toml"), net, net.sha256, {})
    # (fixed, fixed) with 2 widths; (mx, mx) has no integer layer among ip1, ip2 but conv1 and conv2 are: 2 x 2
    assert len(configs) == 2 + 2 * 2
    assert [sorted(c["accumulator"]) for c in configs] == [["bits", "edge"]] * 2 + [["bits", "edge", "mx"]] * 4
    (tmp_path / "bad.toml").write_text(text.replace('names = ["ip1", "ip2"]', 'names = ["ip1", "conv2"]').replace(
        'names = ["conv1", "conv2"]', 'names = ["conv1", "ip2"]'))
    with pytest.raises(InputError, match="'conv2' is a convolution; the MX formats are for dense layers"):
        expand(load_spec(tmp_path / "bad.toml"), net, net.sha256, {})


def textwrap_group(*names):
    return f'\n[[space.layers]]\nnames = {list(names)!r}\nweight = {{format = "fixed", bits = 8}}\n' \
           'activation = {format = "fixed", bits = 8}\n'.replace("'", '"')


def test_a_point_whose_layers_are_all_mx_has_no_integer_accumulator():
    text = spec_text("connect", "m.json", weight=MX8, activation=MX8, accumulator='bits = [16, 24]\nmx = "float32"')
    spec = parse_spec(text)
    net = tiny_network(np.random.default_rng(2))
    configs = expand(spec, net, net.sha256, {})
    assert [c["accumulator"] for c in configs] == [{"mx": "float32"}]


def test_an_unknown_model_kind_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "g.toml").write_text(spec_text("lstm", "model.json"))
    assert main(["sweep", str(tmp_path / "g.toml"), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "'lstm' is none of ['connect', 'surgery', 'qonnx', 'gru']" in err
    assert "LeNet-5" in err and "QONNX" in err and "the GRU language model" in err
    assert not (tmp_path / "out").exists()


def test_lenet5_float64_layers_are_the_trained_model(lenet5):
    data = load_mnist()
    net = load_network("surgery", lenet5)
    assert net.names == ["conv1", "conv2", "ip1", "ip2"] and net.variant == "lenet5"
    assert [layer.products for layer in net.layers] == [24 * 24 * 25 * 20, 8 * 8 * 500 * 50, 800 * 500, 500 * 10]
    images = data["x_test"][:200]
    seen, scores = run_float64(net, images)
    assert np.array_equal(scores.argmax(1), net.predict_float(images))
    assert [s.shape[1:] for s in seen] == [(28, 28, 1), (12, 12, 20), (800,), (500,)]
    calib, _ = run_float64(net, data["x_train"][:100])
    wide = canonical({"format": "fixed", "bits": 16})
    layers = {n: {"weight": wide, "activation": wide} for n in net.names}
    wide_scores, counts = integer_scores(net, layers, {"bits": 48, "edge": "saturate"}, calib, images)
    assert counts["accumulator"] == 0 and np.mean(wide_scores.argmax(1) == scores.argmax(1)) >= 0.98


def test_convolution_matches_the_slow_oracle():
    """A 6x6x2 input, a 3x3 convolution to 3 channels, 2x2 max pool, flatten, dense: integer codes through the
    reference im2col, accumulator and pool."""
    rng = np.random.default_rng(5)
    conv = {"in_shape": (6, 6, 2), "kernel": (3, 3), "stride": (1, 1), "padding": (0, 0), "out_hw": (4, 4)}
    net = Network("surgery", [Layer("conv1", rng.normal(size=(3, 18)), rng.normal(size=3) * 0.1,
                                    [("pool", (2, 2)), ("flatten",)], conv),
                              Layer("ip1", rng.normal(size=(4, 12)), np.zeros(4), [])], "0" * 64)
    images = rng.integers(0, 256, size=(3, 6, 6, 2), dtype=np.uint8)
    calib, _ = run_float64(net, images)
    layers = {"conv1": {"weight": canonical({"format": "fixed", "bits": 6}),
                        "activation": canonical({"format": "fixed", "bits": 5})},
              "ip1": {"weight": canonical({"format": "ternary"}),
                      "activation": canonical({"format": "fixed", "bits": 4})}}
    acc = {"bits": 8, "edge": "saturate"}
    scores, counts = integer_scores(net, layers, acc, calib, images)
    x, events = net.inputs(images), 0
    for layer, ref in zip(net.layers, calib):
        wq = FORMATS[layers[layer.name]["weight"]["format"]].quantizer(layers[layer.name]["weight"], layer.weight)
        aq = FORMATS[layers[layer.name]["activation"]["format"]].quantizer(layers[layer.name]["activation"], ref)
        codes = aq.codes(x, Counts())
        if layer.conv:
            codes = ref_conv.im2col(codes, (3, 3), (1, 1), (0, 0))[0]
        sums, n = ref_accumulate.accumulate_matmul(codes, wq.codes(layer.weight, Counts()), 8, "saturate")
        events += n
        sums = np.array(sums, np.float64)
        y = sums * (aq.scale * wq.scale) + layer.bias
        if layer.conv:
            y = ref_conv.max_pool(y.reshape(3, 4, 4, 3), (2, 2), (2, 2))[0].reshape(3, -1)
        x = y
    assert np.array_equal(scores, x) and counts["accumulator"] == events > 0


def test_a_lenet5_sweep_with_mx_and_minifloat_layers_on_two_workers(lenet5, tmp_path):
    text = spec_text("surgery", lenet5, size=20,
                     weight='[{format = "fixed", bits = 8}, {format = "minifloat", type = "e2m3"}, ' + MX8 + ']',
                     activation='[{format = "fixed", bits = 8}, ' + MX8 + ']',
                     accumulator='bits = 24\nmx = ["exact", "float32"]').replace('names = "*"', 'names = ["ip1"]')
    text += textwrap_group("conv1", "conv2", "ip2")
    (tmp_path / "s.toml").write_text(text)
    result = run_sweep(tmp_path / "s.toml", tmp_path / "out", workers=0, **quiet)
    assert result["points"] == 1 + 1 + 2 and result["failed"] == 0  # (fixed8|e2m3, fixed8), and (mx, mx) x 2 rules
    with open(tmp_path / "out" / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["ip1.weight"] for r in rows] == ["fixed8/auto/nearest_even", "e2m3/nearest_even"] + \
        ["mxfp8_e4m3/32/floor/nearest_even"] * 2
    assert [r["mx_accumulation"] for r in rows] == ["", "", "exact", "float32"]
    assert [r["accumulator_bits"] for r in rows] == ["24"] * 4
    assert int(rows[-1]["weight_bytes"]) == 20 * 25 + 50 * 500 + 500 * 800 + 500 * 25 + 10 * 500
    two = run_sweep(tmp_path / "s.toml", tmp_path / "two", workers=2, **quiet)
    assert two["workers"] == 2 and two["failed"] == 0
    assert (tmp_path / "two" / "summary.csv").read_bytes() == (tmp_path / "out" / "summary.csv").read_bytes()


@pytest.mark.parametrize("name, points", [("connect", 176), ("lenet300", 165), ("lenet5", 128)])
def test_the_documented_specs_are_valid(lenet5, name, points):
    """docs/sweeps/*.toml: each passes every check, and expands to the points its comment states on a network of
    its model's shape (LeNet-5's own; a Connect MLP 784-256-256-256-10 and LeNet-300-100 of random weights)."""
    spec = load_spec(Path(__file__).resolve().parents[1] / "docs" / "sweeps" / f"{name}.toml")
    if name == "lenet5":
        net = load_network("surgery", lenet5)
    else:
        sizes = (784, 256, 256, 256, 10) if name == "connect" else (784, 300, 100, 10)
        net = tiny_network(np.random.default_rng(0), sizes)
        prefix = "fc" if name == "connect" else "ip"
        for i, layer in enumerate(net.layers):
            layer.name = f"{prefix}{i + 1}"
    assert len(expand(spec, net, net.sha256, {})) == points
