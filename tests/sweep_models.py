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


def spec_text(kind, model_file, size=200, weight=None, activation=None, accumulator=None, extra=""):
    """A spec naming ``model_file``; the defaults give 5 x 2 x (2 x 2) = 40 points."""
    weight = weight or ('[{format = "binary"}, {format = "ternary"}, {format = "fixed", bits = [4, 8]}, '
                        '{format = "log", exp_bits = 3}]')
    activation = activation or '{format = "fixed", bits = [4, 8]}'
    accumulator = accumulator or 'bits = [12, 24]\nedge = ["wrap", "saturate"]'
    return textwrap.dedent(f"""\
        [model]
        kind = "{kind}"
        file = "{model_file}"

        [data]
        size = {size}
        calibration = 100

        [[space.layers]]
        names = "*"
        weight = {weight}
        activation = {activation}

        [accumulator]
        """) + accumulator + "\n" + extra
