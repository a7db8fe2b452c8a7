"""bitsim sweep on an imported QONNX network: its quantizers as the knobs; each point equal to the network built
directly with those quantizers; the same summary bytes serially and on two workers; the spec's errors."""

import csv
import json

import numpy as np
import pytest

import qonnx_networks
from bitsim.datasets import load_mnist
from bitsim.errors import DamagedFileError
from bitsim.interop import qonnx
from bitsim.sweep import run_sweep
from bitsim.sweep.qonnx_net import QonnxContext, canonical_quant, load_qonnx, modified_model, qonnx_costs
from bitsim.sweep.spec import parse_spec
from sweep_models import sweep_cli, qonnx_spec_text, qonnx_tfc

quiet = dict(progress=False, log=lambda line: None)
SIZES = (784, 32, 32, 10)
WEIGHTS, ACTIVATIONS = ["Quant_0", "Quant_1", "Quant_2"], ["Quant_4", "Quant_5"]


@pytest.fixture(scope="module")
def tfc(tmp_path_factory):
    return qonnx_tfc(tmp_path_factory.mktemp("qonnx"), sizes=SIZES)


def rows(out):
    with open(out / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def direct_predictions(directory, size, events=None, **kwargs):
    """The predictions of the TFC built directly by ``qonnx_networks.tfc`` with other quantizer arguments (the same
    seed draws the same weights and batch norms whatever the widths), on the first ``size`` MNIST test images;
    ``events`` is filled as ``Graph.run_exact`` fills it."""
    path = qonnx_tfc(directory, sizes=SIZES, name="direct.onnx", **kwargs)
    graph = qonnx.load(path)
    x = load_mnist()["x_test"][:size].reshape(size, 784)
    if events is not None:
        graph.run_exact(x, names=graph.outputs, events=events)
    return graph.run(x, semantics="exact", names=graph.outputs)[graph.outputs[0]].argmax(1)


@pytest.mark.parametrize("quantizers, direct", [
    ({n: {"bits": 4} for n in WEIGHTS}, {"w_bits": 4}),
    ({n: {"bits": 3} for n in ACTIVATIONS}, {"a_bits": 3}),
    ({n: {"bits": 1} for n in WEIGHTS}, {"w_bits": 1}),  # Quant -> 1-bit signed: BipolarQuant's rule
    ({n: {"narrow": True} for n in WEIGHTS + ACTIVATIONS}, {"narrow": True}),
    ({n: {"rounding": "FLOOR"} for n in WEIGHTS + ACTIVATIONS + ["Quant_3"]}, {"rounding": "FLOOR"}),
])
def test_each_point_is_the_network_built_with_those_quantizers(tfc, tmp_path, quantizers, direct):
    network = load_qonnx(tfc)
    x, labels = load_mnist()["x_test"][:100].reshape(100, 784), load_mnist()["y_test"][:100]
    context = QonnxContext.build(network, x, labels)
    assert np.array_equal(context.float_predictions, direct_predictions(tmp_path, 100))
    config = {"quantizers": {n: canonical_quant(c) for n, c in quantizers.items()}}
    result = context.result(config)
    events = {}
    expected = direct_predictions(tmp_path, 100, events, **direct)
    assert result["test_error"] == np.mean(expected != labels)
    assert result["agreement"] == np.mean(expected == context.float_predictions) < 1
    quants = [c for c in events.values() if c is not None]
    assert len(quants) == len(events) and result["accumulator_events"] is None
    assert result["saturated"] == sum(c["saturated"] for c in quants) > 0
    assert result["underflows"] == sum(c["underflows"] for c in quants) > 0


def test_bipolar_weights_become_a_quant_of_the_chosen_width(tmp_path):
    """A TFC with BipolarQuant weights, given 2-bit signed weights with its own scale, is the 2-bit TFC."""
    model = qonnx_networks.tfc(seed=0, batch=50, sizes=SIZES, w_bits=1)
    path = qonnx_networks.save(model, tmp_path / "bipolar.onnx")
    network = load_qonnx(path)
    bipolar = [q.name for q in network.quantizers if q.op == "BipolarQuant"]
    assert len(bipolar) == 3 and all(q.bits == 1 and q.weight for q in network.quantizers if q.op == "BipolarQuant")
    x = qonnx_networks.images(1, (100, 784))
    config = {n: canonical_quant({"bits": 2}) for n in bipolar}
    graph = QonnxContext(network, x, np.zeros(100), np.zeros(100)).graph_of({"quantizers": config})
    two = qonnx.load(qonnx_networks.save(qonnx_networks.tfc(seed=0, batch=50, sizes=SIZES, w_bits=2),
                                         tmp_path / "two.onnx"))
    got = graph.run(x, semantics="exact", names=graph.outputs)[graph.outputs[0]]
    assert np.array_equal(got, two.run(x, semantics="exact", names=two.outputs)[two.outputs[0]])
    assert qonnx_costs(network, config)["weight_bytes"] == (784 * 32 + 32 * 32 + 32 * 10) * 2 // 8


def test_range_keeps_the_top_of_the_range_with_a_power_of_two_scale(tfc):
    network = load_qonnx(tfc)
    model = modified_model(network, {"Quant_0": canonical_quant({"bits": 5, "scale": "range"}),
                                     "Quant_3": canonical_quant({"bits": 4, "signed": True, "scale": "range"})})
    inits = {t.name: t for t in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    from onnx import numpy_helper

    def value(node, i):
        return float(numpy_helper.to_array(inits[nodes[node].input[i]]))

    # Quant_0: signed 2 bits, scale 2**-2 (1 magnitude bit) -> 5 bits (4 magnitude bits): 2**-2 * 2**(1 - 4)
    assert value("Quant_0", 1) == 2.0**-5 and value("Quant_0", 3) == 5.0
    # Quant_3: unsigned 8 bits of 2**-8 (8 magnitude bits) -> signed 4 bits (3): 2**-8 * 2**5
    assert value("Quant_3", 1) == 2.0**-3 and [a.i for a in nodes["Quant_3"].attribute if a.name == "signed"] == [1]
    assert network.graph.initializers[network.graph.nodes[1].inputs[1]] == np.float32(2.0**-2)  # the original kept


def test_serial_and_two_workers_give_the_same_summary_bytes(tfc, tmp_path):
    (tmp_path / "q.toml").write_text(qonnx_spec_text(tfc, size=100))
    serial = run_sweep(tmp_path / "q.toml", tmp_path / "serial", workers=0, **quiet)
    assert serial["points"] == 9 and serial["failed"] == 0
    two = run_sweep(tmp_path / "q.toml", tmp_path / "two", workers=2, **quiet)
    assert two["workers"] == 2 and two["failed"] == 0
    for name in ("summary.csv", "pareto.csv"):
        assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    table = rows(tmp_path / "serial")
    assert [r["Quant_0.quant"] for r in table[::3]] == ["1b/range", "2b/range", "4b/range"]
    assert [r["Quant_4.quant"] for r in table[:3]] == ["2b/HALF_UP", "4b/HALF_UP", "-"]
    assert "Quant_2.quant" not in table[0] and "accumulator_bits" not in table[0]
    assert all(r["accumulator_events"] == "" and int(r["saturated"]) > 0 and int(r["underflows"]) > 0 for r in table)
    # 1-bit weights in the first two layers make their products multiplier-free: only the last layer's 32 x 10
    # need a multiplier; at 2 bits every layer's products do
    assert table[0]["multiplications"] == "320" and table[3]["multiplications"] == str(784 * 32 + 32 * 32 + 320)
    assert int(table[3]["weight_bytes"]) == (784 * 32 + 32 * 32 + 32 * 10) * 2 // 8
    assert int(table[5]["activation_bytes"]) == 784 + 32 * 2 // 8 * 2
    unchanged = json.loads(next((tmp_path / "serial" / "points").glob(f"{table[5]['point']}.json")).read_text())
    assert unchanged["config"]["quantizers"]["Quant_4"] == {"scale": "keep"}
    assert float(table[5]["agreement"]) == 1.0  # Quant_0, Quant_1 at their own 2 bits: the graph unchanged


@pytest.mark.parametrize("edit, message", [
    (('names = ["Quant_4", "Quant_5"]', 'names = ["Quant_4", "Quant_9"]'), "has no node 'Quant_9'"),
    (('names = ["Quant_4", "Quant_5"]', 'names = ["Quant_4", "MatMul_0"]'), "'MatMul_0' is a MatMul, not a quantizer"),
    (("bits = [2, 4]", "bits = [2, 40]"), "an integer in \\[1, 32\\]"),
    (("bits = [2, 4]", "bits = [0, 4]"), "an integer in \\[1, 32\\]"),
    (('rounding = "HALF_UP"', 'rounding = "STOCHASTIC"'), "one of \\['ROUND'"),
    (('{bits = [2, 4], rounding = "HALF_UP"}', '{bits = 1, signed = false, narrow = true}'), "one code 0"),
    (('scale = "range"', 'scale = "max"'), "one of \\['keep', 'range'\\]"),
    (('names = ["Quant_4", "Quant_5"]', 'names = ["Quant_4", "Quant_0"]'), "named by more than one group"),
    (("size = 100", "size = 110"), "a multiple of the batch"),
    (("[data]", "[accumulator]\nbits = 16\n[data]"), "no such field"),
    (('{bits = [2, 4], rounding = "HALF_UP"}', '{bits = [2, 4], rounding = "HALF_UP", frac = 3}'), "no such field"),
    (("[data]", "[constraints]\nmax_weight_bytes = 100\n[data]"), "no point of the space fits"),
])
def test_bad_qonnx_specs_are_clear_errors_before_any_work(tfc, tmp_path, capsys, edit, message):
    text = qonnx_spec_text(tfc, size=100)
    assert edit[0] in text
    (tmp_path / "bad.toml").write_text(text.replace(*edit))
    status, err = sweep_cli(tmp_path / "bad.toml", tmp_path / "out", capsys)
    assert status == 2 and "Traceback" not in err
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "out").exists()


def test_inputs_file_needs_its_labels():
    text = qonnx_spec_text("m.onnx").replace("[data]", '[data]\ninputs = "x.npy"')
    with pytest.raises(DamagedFileError, match="needs its labels"):
        parse_spec(text)
    assert parse_spec(text.replace('inputs = "x.npy"', 'inputs = "x.npy"\nlabels = "y.npy"'))["data"] == \
        {"size": 100, "inputs": "x.npy", "labels": "y.npy"}


def test_an_inputs_file_with_labels_is_the_evaluation_data(tfc, tmp_path):
    mnist = load_mnist()
    np.save(tmp_path / "x.npy", mnist["x_test"][200:300].reshape(100, 784))
    np.save(tmp_path / "y.npy", mnist["y_test"][200:300].astype(np.int64))
    text = qonnx_spec_text(tfc, size=100).replace("[data]", '[data]\ninputs = "x.npy"\nlabels = "y.npy"')
    (tmp_path / "f.toml").write_text(text)
    run_sweep(tmp_path / "f.toml", tmp_path / "out", workers=0, **quiet)
    table = rows(tmp_path / "out")
    graph = qonnx.load(tfc)
    base = graph.run(mnist["x_test"][200:300].reshape(100, 784), semantics="exact", names=graph.outputs)
    assert float(table[5]["test_error"]) == np.mean(base[graph.outputs[0]].argmax(1) != mnist["y_test"][200:300])


def test_the_documented_spec_is_valid():
    """docs/sweeps/qonnx_tfc.toml passes every check and has the points its comment states."""
    from pathlib import Path

    from bitsim.sweep.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[1] / "docs" / "sweeps" / "qonnx_tfc.toml")
    assert [len(choices) for _, choices in spec["space"]["groups"]] == [4, 16]
