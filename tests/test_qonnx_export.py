"""QONNX export of bitsim's BNN and Connect networks: qonnx's executor gives bitsim's outputs bit for bit.

Each round trip writes the .onnx file, reads it back through qonnx's cleanup, InferShapes and
InferDataTypes, and runs qonnx's executor on the whole MNIST test set (one batch of 10,000).
"""

import builtins
import json
from pathlib import Path

import numpy as np
import pytest

from bitsim.cli import main
from bitsim.datasets import load_mnist
from bitsim.deploy import IntegerModel, compile_model
from bitsim.deploy.packed import Affine, BitplaneDense, Threshold, XnorDense
from bitsim.errors import InputError, MissingExtra
from bitsim.formats import binary
from bitsim.formats.rng import Philox
from bitsim.interop import connect_export as static
from bitsim.interop.qonnx_export import (
    at_batch,
    connect_headroom,
    export_connect,
    export_integer_model,
    input_name,
    output_name,
    write_model,
)
from bitsim.jobs.qonnx_export import connect_exportable, qonnx_outputs
from bitsim.methods import bnn, connect
from bitsim.nn import layers as L
from bitsim.nn.binarized import BinaryConv2d, BinaryDense
from bitsim.nn.conv import MaxPool2d
from bitsim.nn.model import Sequential

GOLDEN = Path(__file__).parent / "golden" / "qonnx_export.json"
QUIET = dict(progress=False, log=lambda *a: None)


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def trained_bnn(mnist):
    cfg = bnn.BNNConfig(hidden=128, layers=2, epochs=1, train_size=3000, validation_size=0, seed=3)
    model, _ = bnn.train(cfg, data=mnist, **QUIET)
    return compile_model(model, (28, 28))


def trained_connect(mnist, weights, tmp_path=None):
    cfg = connect.ConnectConfig(weights=weights, hidden=96, layers=2, epochs=1, train_size=2000, validation_size=0,
                                calibration_size=2000, seed=5)
    model, _ = connect.train(cfg, out_dir=tmp_path, data=mnist, **QUIET)
    return model, cfg


def same_bits(a, b):
    a, b = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def cleaned(path):
    """The file at ``path`` after qonnx's cleanup, InferShapes and InferDataTypes (each must pass)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    return cleanup_model(ModelWrapper(str(path))).transform(InferShapes()).transform(InferDataTypes())


def datatypes(wrapped, op_type):
    return {str(wrapped.get_tensor_datatype(n.output[0])) for n in wrapped.graph.node if n.op_type == op_type}


@pytest.mark.parametrize("weights, activations", [("quant", "multithreshold"), ("annotated", "multithreshold"),
                                                  ("quant", "bias-sign")])
def test_trained_bnn_round_trip_on_the_whole_test_set(trained_bnn, mnist, tmp_path, weights, activations):
    path = write_model(export_integer_model(trained_bnn, weights, activations=activations), tmp_path / "bnn.onnx")
    wrapped = cleaned(path)
    ops = [n.op_type for n in wrapped.graph.node]
    signs = activations == "bias-sign"
    assert ops.count("MultiThreshold") == (0 if signs else 2) and ops.count("MatMul") == 3
    assert ops.count("BipolarQuant") == (3 if weights == "quant" else 0) + (2 if signs else 0)
    assert str(wrapped.get_tensor_datatype(input_name(wrapped.model))) == "UINT8"
    assert datatypes(wrapped, "BipolarQuant" if signs else "MultiThreshold") == {"BIPOLAR"}
    assert datatypes(wrapped, "MatMul") == {"INT32"}
    if weights == "annotated":
        assert {str(wrapped.get_tensor_datatype(n.input[1])) for n in wrapped.graph.node
                if n.op_type == "MatMul"} == {"BIPOLAR"}
    x = mnist["x_test"]
    assert same_bits(qonnx_outputs(path, x), trained_bnn.forward(x))


@pytest.mark.parametrize("weights", ["binary", "ternary"])
def test_trained_connect_round_trip_on_the_whole_test_set(mnist, tmp_path, weights):
    model, cfg = trained_connect(mnist, weights)
    item = connect_exportable(model, cfg, "quant", 1, mnist)
    path = write_model(item.build(), tmp_path / "connect.onnx")
    wrapped = cleaned(path)
    weight_type = {"binary": "BIPOLAR", "ternary": "INT2"}[weights]
    quants = [n for n in wrapped.graph.node if n.op_type in ("Quant", "BipolarQuant")]
    assert {str(wrapped.get_tensor_datatype(n.output[0])) for n in quants if wrapped.get_initializer(n.input[0])
            is not None} == {weight_type}
    x = mnist["x_test"]
    expected = item.reference(x)
    assert same_bits(qonnx_outputs(path, x), expected)
    # the static formats are those every test batch of 1000 picks, so bitsim's own deterministic
    # evaluation (dynamic fixed point) gives the same bits
    frac = static.static_frac_bits(model, mnist["x_train"][:cfg.calibration_size])
    own = []
    for i in range(0, len(x), 1000):
        assert static.dynamic_frac_bits(model, frac, x[i:i + 1000]) == frac
        own.append(model.forward(static.pixels(x[i:i + 1000]), training=False))
    assert same_bits(np.concatenate(own), expected)
    assert max(connect_headroom(model, frac, x)) < 1


def tiny_bnn():
    """The hand-made BNN of the worked example (tests/golden/qonnx_export.json)."""
    g = json.loads(GOLDEN.read_text())
    m = g["model"]
    w1, w2 = np.array(m["w1"]), np.array(m["w2"])
    stages = [BitplaneDense(binary.pack(w1), 4), Threshold(np.array(m["thresholds"]), np.array(m["flip"])),
              XnorDense(binary.pack(w2), 3), Affine(*(np.float32(m[k]) for k in ("mean", "scale", "gain", "beta")))]
    return IntegerModel(stages, (4,)), g


def test_worked_example_matches_golden_vectors(tmp_path):
    from qonnx.core.onnx_exec import execute_onnx

    model, g = tiny_bnn()
    proto = export_integer_model(model)
    wrapped = at_batch(proto, len(g["rows"]))
    x = np.array([r["input"] for r in g["rows"]], np.float32)
    ctx = execute_onnx(wrapped, {input_name(proto): x}, return_full_exec_context=True)
    weights = [ctx[n.output[0]] for n in wrapped.graph.node if n.op_type == "BipolarQuant"]
    assert np.array_equal(weights[0], g["exported"]["MatMul_0_weights"])
    assert np.array_equal(weights[1], g["exported"]["MatMul_1_weights"])
    thresholds = wrapped.get_initializer(next(n for n in wrapped.graph.node if n.op_type == "MultiThreshold").input[1])
    assert np.array_equal(thresholds, g["exported"]["MultiThreshold_0_thresholds"])
    for name in ("MatMul_0_out0", "MultiThreshold_0_out0", "MatMul_1_out0"):
        assert np.array_equal(ctx[name], [r[name] for r in g["rows"]]), name
    bits = [[int(h, 16) for h in r["scores_bits"]] for r in g["rows"]]
    assert np.array_equal(ctx[output_name(proto)].view(np.uint32), bits)
    assert np.array_equal(model.forward(x.astype(np.uint8)).view(np.uint32), bits)


def test_export_is_deterministic(tmp_path):
    model, _ = tiny_bnn()
    first = write_model(export_integer_model(model), tmp_path / "a.onnx").read_bytes()
    assert write_model(export_integer_model(model), tmp_path / "b.onnx").read_bytes() == first


def test_flipped_constant_and_extreme_channels():
    """Random batch norms (negative and zero gains) give flipped, always-on and never-on channels."""
    from qonnx.core.onnx_exec import execute_onnx

    g = Philox(11)
    model = Sequential([L.Flatten(), BinaryDense(64, 70, init_rng=g), L.BatchNorm(70), L.Sign(),
                        BinaryDense(70, 90, init_rng=g), L.BatchNorm(90), L.HardTanh(), L.Sign(),
                        BinaryDense(90, 10, init_rng=g), L.BatchNorm(10)])
    rng = np.random.default_rng(4)
    for layer in model.layers:
        if isinstance(layer, L.BatchNorm):
            c = layer.n_features
            layer.running_mean[:] = rng.normal(0, 200 if c == 70 else 5, c)
            layer.running_var[:] = rng.uniform(0.5, 60, c)
            layer.gamma.value[:] = rng.normal(0, 1, c)
            layer.gamma.value[: c // 8] = 0
            layer.beta.value[:] = rng.normal(0, 1, c)
    compiled = compile_model(model, (8, 8))
    flips = [s.flip for s in compiled.stages if isinstance(s, Threshold)]
    assert all(f.any() and (~f).any() for f in flips)
    x = np.concatenate([rng.integers(0, 256, (500, 64)), np.zeros((1, 64)), np.full((1, 64), 255)]).astype(np.uint8)
    proto = export_integer_model(compiled)
    out = execute_onnx(at_batch(proto, len(x)), {input_name(proto): x.astype(np.float32)})[output_name(proto)]
    assert same_bits(out, compiled.forward(x))


def test_exact_level_of_the_importer_on_an_exported_bnn(trained_bnn, mnist, tmp_path):
    """bitsim's QONNX importer: every integer tensor equal at the exact level, every tensor at the reference level."""
    from qonnx.core.onnx_exec import execute_onnx

    from bitsim.interop.qonnx import load

    proto = export_integer_model(trained_bnn, batch=1000)
    path = write_model(proto, tmp_path / "bnn.onnx")
    x = mnist["x_test"][:1000].reshape(1000, -1).astype(np.float32)
    graph = load(path)
    qonnx = execute_onnx(at_batch(proto, 1000), {input_name(proto): x}, return_full_exec_context=True)
    exact = graph.run(x, semantics="exact")
    integer = [n.output[0] for n in proto.graph.node if n.op_type in ("MatMul", "MultiThreshold")]
    for name in integer:
        assert same_bits(exact[name], qonnx[name]), name
    reference = graph.run(x, semantics="reference")
    assert same_bits(reference[output_name(proto)], trained_bnn.forward(mnist["x_test"][:1000]))


def test_unsupported_models_are_refused(mnist):
    g = Philox(2)
    conv = Sequential([BinaryConv2d(1, 8, 3, init_rng=g), MaxPool2d(2), L.BatchNorm(8), L.Sign(), L.Flatten(),
                       BinaryDense(13 * 13 * 8, 10, init_rng=g), L.BatchNorm(10)])
    with pytest.raises(InputError, match="BitplaneConv"):
        export_integer_model(compile_model(conv, (28, 28, 1)))
    float_net = connect.build_model(connect.ConnectConfig(weights="float", hidden=8, layers=1))
    with pytest.raises(InputError, match="float"):
        export_connect(float_net, [15, 12])
    with pytest.raises(InputError, match="weights must be one of"):
        export_integer_model(tiny_bnn()[0], weights="packed")
    with pytest.raises(InputError, match="activations must be one of"):
        export_integer_model(tiny_bnn()[0], activations="relu")


def test_command_writes_checks_and_refuses(trained_bnn, mnist, tmp_path, capsys):
    trained_bnn.save(tmp_path / "integer")
    out = tmp_path / "bnn.onnx"
    assert main(["qonnx", "export", str(tmp_path / "integer.json"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "outputs identical to bitsim, bit for bit" in text and "10,000" in text
    assert main(["qonnx", "export", str(tmp_path / "integer.json"), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["qonnx", "export", str(tmp_path / "integer.json"), "--out", str(out), "--overwrite",
                 "--weights", "annotated", "--no-check"]) == 0
    foreign = tmp_path / "theirs.onnx"
    foreign.write_bytes(b"not bitsim's")
    assert main(["qonnx", "export", str(tmp_path / "integer.json"), "--out", str(foreign), "--overwrite"]) == 2
    assert "not an ONNX file bitsim exported" in capsys.readouterr().err
    assert foreign.read_bytes() == b"not bitsim's"


def test_command_exports_a_saved_ternary_connect_run(mnist, tmp_path, capsys):
    trained_connect(mnist, "ternary", tmp_path / "run")
    out = tmp_path / "ternary.onnx"
    assert main(["qonnx", "export", str(tmp_path / "run" / "best.json"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ternary Connect" in text and "outputs identical to bitsim, bit for bit" in text


def test_missing_extra_names_the_pip_command(trained_bnn, tmp_path, monkeypatch, capsys):
    trained_bnn.save(tmp_path / "integer")
    real_import = builtins.__import__

    def no_qonnx(name, *args, **kwargs):
        if name == "qonnx" or name.startswith("qonnx."):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_qonnx)
    from bitsim.interop.qonnx_export import require_onnx

    with pytest.raises(MissingExtra, match=r'pip install -e "\.\[onnx\]"'):
        require_onnx()
    assert main(["qonnx", "export", str(tmp_path / "integer.json"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert 'pip install -e ".[onnx]"' in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
