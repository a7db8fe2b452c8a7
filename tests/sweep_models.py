"""Tiny trained models and spec files for the sweep tests (a few seconds of training on MNIST)."""

import textwrap
from dataclasses import asdict

from bitsim.datasets import load_mnist
from bitsim.methods import connect, surgery


def train_models(directory):
    """Train a 2x32 BinaryConnect MLP and a LeNet-300-100 briefly; return their model files."""
    data = load_mnist()
    quiet = dict(data=data, progress=False, log=lambda line: None)
    cfg = connect.ConnectConfig(weights="binary", hidden=32, layers=2, epochs=1, batch_size=100, train_size=600,
                                validation_size=200, calibration_size=300, seed=3)
    connect.train(cfg, out_dir=directory / "connect", **quiet)
    cfg = surgery.default_config("lenet300", dense_iters=60, fc_iters=40, retrain_iters=20, iter_stop=(25,) * 3,
                                 c=(2.4, 2.4, 1.0), train_size=3000, test_size=300, eval_every=50,
                                 checkpoint_every=1000, seed=5, gamma=0.05, translate=0)
    surgery.train(cfg, out_dir=directory / "lenet", **quiet)
    return {"connect": directory / "connect" / "best.json", "surgery": directory / "lenet" / "final.json"}


def lenet5_model(directory, seed=7):
    """An untrained LeNet-5 of ``bitsim train surgery`` (its initial weights, a third of each layer pruned), saved
    as the trainer saves ``final.json``: enough to check the integer path against the float model."""
    import numpy as np

    cfg = surgery.default_config("lenet5", seed=seed)
    model = surgery.build_model("lenet5", seed)
    from bitsim.nn.masked import masked_layers

    for layer in masked_layers(model):
        w = layer.W.value
        layer.T[...] = (np.abs(w) > np.quantile(np.abs(w), 1 / 3)).astype(layer.T.dtype)
    model.save(directory / "final", {"config": asdict(cfg), "history": []})
    return directory / "final.json"


def sweep_cli(spec, out, capsys):
    """``bitsim sweep SPEC --out OUT --workers 0 --no-progress``: its exit status and its standard error."""
    from bitsim.cli import main

    status = main(["sweep", str(spec), "--out", str(out), "--workers", "0", "--no-progress"])
    return status, capsys.readouterr().err


def _head(kind, model_file, data):
    """The ``[model]`` and ``[data]`` tables of a spec."""
    return f'[model]\nkind = "{kind}"\nfile = "{model_file}"\n\n[data]\n' + "".join(f"{line}\n" for line in data) + "\n"


def spec_text(kind, model_file, size=200, weight=None, activation=None, accumulator=None, extra=""):
    """A spec naming ``model_file``; the defaults give 5 x 2 x (2 x 2) = 40 points."""
    weight = weight or ('[{format = "binary"}, {format = "ternary"}, {format = "fixed", bits = [4, 8]}, '
                        '{format = "log", exp_bits = 3}]')
    activation = activation or '{format = "fixed", bits = [4, 8]}'
    accumulator = accumulator or 'bits = [12, 24]\nedge = ["wrap", "saturate"]'
    return _head(kind, model_file, [f"size = {size}", "calibration = 100"]) + textwrap.dedent(f"""\
        [[space.layers]]
        names = "*"
        weight = {weight}
        activation = {activation}

        [accumulator]
        """) + accumulator + "\n" + extra


def qonnx_tfc(directory, seed=0, batch=50, sizes=(784, 32, 32, 10), name="tfc.onnx", **quantizers):
    """A TFC-style QONNX MLP of ``tests/qonnx_networks.py`` (random weights; 2-bit weights and activations, an 8-bit
    input Quant, batch norms) that reads MNIST pixels 0..255 as QONNX models do (``docs/qonnx.md``): a first
    ``Mul`` by 2**-8 puts the pixels on its input quantizer's grid. ``quantizers``: other arguments of
    ``qonnx_networks.tfc`` (``w_bits``, ``a_bits``, ``narrow``, ``rounding``; the same seed draws the same weights
    and batch norms whatever they are). Saved as ``directory/name``."""
    import numpy as np
    from onnx import helper, numpy_helper

    import qonnx_networks

    model = qonnx_networks.tfc(seed=seed, batch=batch, sizes=sizes, **quantizers)
    graph = model.graph
    first = graph.input[0].name
    graph.input[0].name = "pixels"
    graph.initializer.append(numpy_helper.from_array(np.array(2.0**-8, np.float32), "pixel_scale"))
    graph.node.insert(0, helper.make_node("Mul", ["pixels", "pixel_scale"], [first]))
    return qonnx_networks.save(qonnx_networks.with_shapes(model), directory / name)


def qonnx_spec_text(model_file, size=100, quantizers=None, extra=""):
    """A QONNX sweep spec naming ``model_file``; by default (on :func:`qonnx_tfc`, whose weight quantizers are
    ``Quant_0`` .. ``Quant_2`` and the hidden activations' ``Quant_4``, ``Quant_5``) the first two layers' weights at
    1, 2 or 4 bits, and the hidden activations at 2 or 4 bits or unchanged: 3 x 3 = 9 points."""
    quantizers = quantizers or textwrap.dedent("""\
        [[space.quantizers]]
        names = ["Quant_0", "Quant_1"]
        quant = {bits = [1, 2, 4], scale = "range"}

        [[space.quantizers]]
        names = ["Quant_4", "Quant_5"]
        quant = [{bits = [2, 4], rounding = "HALF_UP"}, {}]
        """)
    return _head("qonnx", model_file, [f"size = {size}"]) + quantizers + extra


def gru_model(directory):
    """A tiny GRU language model (embedding 4, 8 units) trained for 2 epochs on 3,000 characters of Shakespeare."""
    from bitsim.methods import loggru

    cfg = loggru.GRUConfig(embed=4, hidden=8, epochs=2, batch_size=4, seq_len=16, train_chars=3000, val_chars=1000,
                           eval_streams=4, seed=3)
    loggru.train(cfg, out_dir=directory, progress=False, log=lambda line: None)
    return directory / "best.json"


def gru_spec_text(model_file, chars=2000, weight=None, activation=None, extra=""):
    """A GRU sweep spec; by default float32, log (4 and 8 bits) and fixed (8 and 16 bits) weights times log and
    fixed activations of the same widths: 5 x 4 = 20 pairs, less the 2 x 2 of fixed weights with log codes."""
    weight = weight or ('[{format = "float32"}, {format = "log", exp_bits = [3, 7]}, '
                        '{format = "fixed", bits = [8, 16]}]')
    activation = activation or '[{format = "log", exp_bits = [3, 7]}, {format = "fixed", bits = [8, 16]}]'
    return _head("gru", model_file, [f"chars = {chars}", "streams = 4"]) + \
        f"[space]\nweight = {weight}\nactivation = {activation}\n" + extra
