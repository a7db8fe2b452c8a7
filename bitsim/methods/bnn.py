"""Binarized Neural Networks (Hubara, Courbariaux, Soudry, El-Yaniv, Bengio, 2016) on MNIST.

The network follows the authors' Theano MNIST code: an MLP of ``layers`` hidden layers of ``hidden``
binary units, each ``BinaryDense -> BatchNorm -> Sign`` (straight-through estimator) with dropout,
and a ``BinaryDense -> BatchNorm`` output; squared hinge loss; Adam with the learning rate decayed
geometrically from ``lr_start`` to ``lr_end`` over the epochs; per-layer "Glorot" learning-rate scales
for the binary weights; latent weights clipped to [-1, 1]; the epoch with the best validation error
is kept. One deliberate difference: the first layer takes the raw pixel values 0..255 (not
``2x - 1``), so the deployed network's first layer is an exact bit-plane computation on 8-bit inputs;
the batch norm after it absorbs the scale. One addition the authors did not make: by default every
training image is shifted by -1, 0 or 1 pixel in each direction, drawn anew each epoch (``translate``;
``translate=0`` turns it off), which keeps the 40-epoch network from overfitting as much.
:mod:`bitsim.deploy.packed` compiles the trained network to packed integers; :mod:`bitsim.jobs.bnn` runs the
whole job (train, compile, check, report).

Reproducibility: every random decision is drawn from Philox generators whose keys are derived from
``seed`` (weights: ``seed``; epoch ``e``'s shuffle: ``seed * 2**20 + 2 * e``; epoch ``e``'s dropout
masks: ``seed * 2**20 + 2 * e + 1``; with ``translate``, epoch ``e``'s image shifts:
``seed * 2**20 + 2**19 + e``; all distinct for runs of fewer than 2**18 epochs), re-keyed at the
start of every epoch, so a run resumed from a checkpoint continues with exactly the bits an
uninterrupted run would have used.
"""

import time
from dataclasses import asdict, dataclass

import numpy as np

from ..datasets import translate
from ..formats.binary import binarize
from ..formats.rng import Philox
from ..nn import (Adam, BatchNorm, BinaryDense, Dropout, ExponentialDecay, Flatten, Sequential, ShiftAdaMax, Sign,
                  SquaredHinge, glorot_lr_scale)
from ..nn.blas import one_blas_thread
from .config import SIZE, RunConfig
from .epochs import (BN_STATS, LEGACY, add_precise_errors, begin_run, classifier_epoch, end_of_epoch, load_trained,
                     running_errors, translate_key)
from .mnist import check_split, mnist_splits

OPTIMIZERS = {"adam": Adam, "shift-adamax": ShiftAdaMax}
LR_SCALES = ("glorot", "none")


@dataclass
class BNNConfig(RunConfig):
    """Options of a BNN MNIST run (the defaults are the 30-minute reproduction of docs/bnn.md)."""

    LIMITS = {"hidden": SIZE, "layers": (1, 64), "epochs": (1, None), "batch_size": SIZE, "translate": (0, None),
              "calibration_size": (1, None), "seed": (0, None)}
    CHOICES = {"optimizer": sorted(OPTIMIZERS), "lr_scale": LR_SCALES, "bn_stats": BN_STATS}

    hidden: int = 1024
    layers: int = 3
    epochs: int = 40
    batch_size: int = 100
    lr_start: float = 3e-3
    lr_end: float = 3e-6
    optimizer: str = "adam"
    shift_bn: bool = False
    dropout_in: float = 0.1
    dropout_hidden: float = 0.2
    lr_scale: str = "glorot"
    translate: int = 1
    bn_stats: str = "running"
    calibration_size: int = 10_000
    train_size: int = 50_000
    validation_size: int = 10_000
    seed: int = 1

    def check(self):
        check_split(self.train_size, self.validation_size)


def epoch_key(seed, epoch, stream):
    """The Philox key of ``stream`` (0 shuffle, 1 dropout) in ``epoch``: ``seed * 2**20 + 2 * epoch + stream``."""
    return int(seed) * 2**20 + 2 * int(epoch) + int(stream)


def build_mlp(cfg, input_size=784, classes=10):
    """The BNN MLP of ``cfg``: binary layers with batch norm and sign, ending in batch-normed scores."""
    init = Philox(cfg.seed)
    widths = [input_size] + [cfg.hidden] * cfg.layers
    layers = [Flatten()]
    if cfg.dropout_in:
        layers.append(Dropout(cfg.dropout_in, 0))
    def scale(n_in, n_out):
        return glorot_lr_scale(n_in, n_out) if cfg.lr_scale == "glorot" else 1.0

    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [BinaryDense(n_in, n_out, init_rng=init, lr_scale=scale(n_in, n_out), input_grad=i > 0),
                   BatchNorm(n_out, shift=cfg.shift_bn), Sign()]
        if cfg.dropout_hidden:
            layers.append(Dropout(cfg.dropout_hidden, 0))
    layers += [BinaryDense(widths[-1], classes, init_rng=init, lr_scale=scale(widths[-1], classes)),
               BatchNorm(classes, shift=cfg.shift_bn)]
    return Sequential(layers)


def error(model, x, y, batch_size=1000):
    """Classification error (fraction) of the float model in inference mode."""
    wrong = 0
    for i in range(0, len(x), batch_size):
        wrong += int(np.sum(model.forward(x[i:i + batch_size], training=False).argmax(1) != y[i:i + batch_size]))
    return wrong / len(x)


@one_blas_thread
def train(cfg, out_dir=None, data=None, progress=True, resume=False, stop_after=None, log=print):
    """Train a BNN on MNIST.

    Parameters
    ----------
    cfg : BNNConfig
    data : dict, optional
        MNIST arrays as :func:`bitsim.datasets.load_mnist` returns them (loaded when omitted).
    out_dir, progress, resume, stop_after, log
        The run options of :mod:`bitsim.methods.epochs`; the best epoch has the lowest validation
        error (without validation, every epoch is the best so far).

    Returns
    -------
    model : Sequential
        The model of the epoch with the best validation error; with ``cfg.validation_size == 0``, the
        last epoch's. With ``cfg.bn_stats == 'precise'`` its batch norms hold the statistics
        calibrated on the first ``cfg.calibration_size`` training images (all of them if fewer).
    history : list of dict
        Per epoch: train loss and error, validation (None without validation) and test error, learning
        rate, seconds. With ``'precise'``, the errors are those of the calibrated statistics and
        ``val_error_running`` and ``test_error_running`` those of the running averages.
    """
    (xt, yt), (xv, yv), (xs, ys) = mnist_splits(cfg, data)
    model = build_mlp(cfg)
    steps = -(-len(xt) // cfg.batch_size)
    schedule = ExponentialDecay(cfg.lr_start, cfg.lr_end, cfg.epochs, every=steps)
    opt = OPTIMIZERS[cfg.optimizer](model.params(), lr=schedule)
    loss = SquaredHinge()
    out, history, best, epochs = begin_run(model, opt, out_dir, resume, cfg.epochs, stop_after, log=log,
                                           config=asdict(cfg), legacy=LEGACY)
    for epoch in epochs:
        dropout = Philox(epoch_key(cfg.seed, epoch, 1))
        for layer in model.layers:
            if isinstance(layer, Dropout):
                layer.rng = dropout
        generators = (Philox(epoch_key(cfg.seed, epoch, 0)), Philox(translate_key(cfg.seed, epoch)))
        total, wrong, seconds = classifier_epoch(model, opt, loss, cfg, epoch, (xt, yt), generators, progress,
                                                 translate)
        row = {"epoch": epoch + 1, "train_loss": total / len(xt), "train_error": wrong / len(xt),
               "val_error": error(model, xv, yv) if len(xv) else None, "test_error": error(model, xs, ys),
               "lr": schedule((epoch + 1) * steps - 1), "seconds": seconds}
        kept = None
        if cfg.bn_stats == "precise":
            kept = add_precise_errors(row, model, xt[:cfg.calibration_size],
                                      lambda: (error(model, xv, yv) if len(xv) else None, error(model, xs, ys)))
        history.append(row)
        val = f"val {100 * row['val_error']:.2f}%  " if len(xv) else ""
        running = f"  ({running_errors(row)})" if kept is not None else ""
        log(f"epoch {epoch + 1:3d}  loss {row['train_loss']:.4f}  train {100 * row['train_error']:.2f}%  "
            f"{val}test {100 * row['test_error']:.2f}%{running}  {seconds:.1f}s")
        best = end_of_epoch(model, opt, out, {"config": asdict(cfg)}, history, best, row["val_error"], kept)
    model.load_state(best[1])
    return model, history


def load_float_model(path):
    """Rebuild a float BNN saved by :func:`train` (its JSON manifest holds the configuration)."""
    return load_trained(path, build_mlp, BNNConfig, "bitsim train bnn")


def float_forward(model):
    """The float32 NumPy inference of ``model`` with its ±1 weights binarized once, as a function of x.

    The speed baseline for the integer model: plain float32 matrix products, batch norm in inference
    form and sign, without the per-call binarization the training layers do.
    """
    ops = []
    for layer in model.layers:
        if isinstance(layer, BinaryDense):
            ops.append(("matmul", np.ascontiguousarray(binarize(layer.W.value).astype(np.float32).T)))
        elif isinstance(layer, BatchNorm):
            inv = (1 / np.sqrt(layer.running_var + layer.eps)).astype(np.float32)
            ops.append(("bn", (layer.running_mean, inv, layer.gamma.value, layer.beta.value)))
        elif isinstance(layer, Sign):
            ops.append(("sign", None))

    def forward(x):
        h = x.reshape(len(x), -1).astype(np.float32)
        for kind, arg in ops:
            if kind == "matmul":
                h = h @ arg
            elif kind == "bn":
                mean, inv, gamma, beta = arg
                h = gamma * ((h - mean) * inv) + beta
            else:
                h = np.where(h >= 0, np.float32(1), np.float32(-1))
        return h

    return forward


def time_forward(fn, x, batch_size=1000, repeats=3):
    """Best wall time over ``repeats`` of running ``fn`` on ``x`` in batches (after one warm-up batch)."""
    fn(x[:batch_size])
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(0, len(x), batch_size):
            fn(x[i:i + batch_size])
        best = min(best, time.perf_counter() - t0)
    return best


__all__ = ["BNNConfig", "build_mlp", "train", "load_float_model", "float_forward", "time_forward", "error",
           "check_split", "mnist_splits"]
