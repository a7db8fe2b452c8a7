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
:mod:`bitsim.deploy.bnn` compiles the trained network to packed integers, checks it and reports.

Reproducibility: every random decision is drawn from Philox generators whose keys are derived from
``seed`` (weights: ``seed``; epoch ``e``'s shuffle: ``seed * 2**20 + 2 * e``; epoch ``e``'s dropout
masks: ``seed * 2**20 + 2 * e + 1``; with ``translate``, epoch ``e``'s image shifts:
``seed * 2**20 + 2**19 + e``; all distinct for runs of fewer than 2**18 epochs), re-keyed at the
start of every epoch, so a run resumed from a checkpoint continues with exactly the bits an
uninterrupted run would have used.
"""

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..datasets import load_mnist, random_shifts, translate
from ..errors import InputError
from ..formats.binary import binarize
from ..formats.rng import Philox
from ..io import save_png
from ..nn import (Adam, BatchNorm, BinaryDense, Dropout, ExponentialDecay, Flatten, Sequential, ShiftAdaMax, Sign,
                  SquaredHinge, glorot_lr_scale)
from ..nn.blas import one_blas_thread
from .config import SIZE, RunConfig
from ._epochs import (BN_STATS, LEGACY, add_precise_errors, check_bn_stats, check_translate, end_of_epoch,
                      load_trained, resume_run, running_errors, translate_key)

OPTIMIZERS = {"adam": Adam, "shift-adamax": ShiftAdaMax}
LR_SCALES = ("glorot", "none")


@dataclass
class BNNConfig(RunConfig):
    """Options of a BNN MNIST run (the defaults are the README's 30-minute reproduction)."""

    LIMITS = {"hidden": SIZE, "layers": (1, 64), "epochs": (1, None), "batch_size": SIZE, "seed": (0, None)}

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
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {self.optimizer!r}; choose one of {sorted(OPTIMIZERS)}")
        if self.lr_scale not in LR_SCALES:
            raise InputError(f"unknown lr_scale {self.lr_scale!r}; choose one of {LR_SCALES}")
        check_bn_stats(self.bn_stats, self.calibration_size)
        check_split(self.train_size, self.validation_size)
        self.translate = check_translate(self.translate)
        if self.hidden < 1 or self.layers < 1 or self.epochs < 1 or self.batch_size < 1:
            raise InputError("hidden, layers, epochs and batch_size must be positive")



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


def check_split(train_size, validation_size):
    """Raise ValueError unless the sizes fit MNIST's training images as :func:`mnist_splits` cuts them."""
    if not 0 <= validation_size <= 10_000:
        raise InputError(f"validation_size must be 0..10000 (the last 10,000 training images), got {validation_size}")
    most = 60_000 if validation_size == 0 else 50_000
    if not 1 <= train_size <= most:
        raise InputError(f"train_size must be 1..{most} with validation_size {validation_size} (MNIST's classic "
                         f"split: 50,000 train + 10,000 validation; validation_size 0 frees all 60,000)")


def mnist_splits(cfg, data=None):
    """``(x_train, y_train), (x_val, y_val), (x_test, y_test)`` as uint8 images and labels.

    Training images are the first ``cfg.train_size``, validation images the ``cfg.validation_size`` from
    index 50,000 on (empty when it is 0).
    """
    data = load_mnist() if data is None else data
    x, y = data["x_train"], data["y_train"]
    train = (x[:cfg.train_size], y[:cfg.train_size])
    val = (x[50_000:50_000 + cfg.validation_size], y[50_000:50_000 + cfg.validation_size])
    return train, val, (data["x_test"], data["y_test"])


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
    out_dir : str or Path, optional
        Where to write ``checkpoint.{npz,json}`` after every epoch, ``best.{npz,json}`` (the model with
        the lowest validation error, or the last epoch's without validation) and ``history.json``.
    data : dict, optional
        MNIST arrays as :func:`bitsim.datasets.load_mnist` returns them (loaded when omitted).
    progress : bool
        Show a tqdm progress bar per epoch (only when writing to a terminal).
    resume : bool
        Continue from ``out_dir/checkpoint`` when it exists.
    stop_after : int, optional
        Return after this many epochs of this call (a later call with ``resume=True`` continues).
    log : callable
        Receives one line per epoch.

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
    from tqdm.auto import tqdm

    (xt, yt), (xv, yv), (xs, ys) = mnist_splits(cfg, data)
    model = build_mlp(cfg)
    steps = -(-len(xt) // cfg.batch_size)
    schedule = ExponentialDecay(cfg.lr_start, cfg.lr_end, cfg.epochs, every=steps)
    opt = OPTIMIZERS[cfg.optimizer](model.params(), lr=schedule)
    loss = SquaredHinge()
    history, best, start = [], None, 0
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and resume and (out / "checkpoint.json").exists():
        history, best, start = resume_run(model, opt, out, "val_error", log=log, config=asdict(cfg), legacy=LEGACY)
    stop = cfg.epochs if stop_after is None else min(cfg.epochs, start + int(stop_after))
    for epoch in range(start, stop):
        shuffle = Philox(epoch_key(cfg.seed, epoch, 0))
        dropout = Philox(epoch_key(cfg.seed, epoch, 1))
        for layer in model.layers:
            if isinstance(layer, Dropout):
                layer.rng = dropout
        t0 = time.perf_counter()
        order = np.argsort(shuffle.uint32(len(xt)), kind="stable")
        dy, dx = random_shifts(Philox(translate_key(cfg.seed, epoch)), len(xt), cfg.translate)
        total, wrong = 0.0, 0
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, unit="batch",
                   disable=None if progress else True)  # None: no bar when the output is not a terminal
        for b in bar:
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x = translate(xt[idx], dy[idx], dx[idx]) if cfg.translate else xt[idx]
            scores = model.forward(x, training=True)
            value, grad = loss(scores, yt[idx])
            model.backward(grad)
            opt.step()
            total += value * len(idx)
            wrong += int(np.sum(scores.argmax(1) != yt[idx]))
            if b % 20 == 0:
                bar.set_postfix(loss=f"{total / ((b + 1) * cfg.batch_size):.4f}",
                                err=f"{100 * wrong / ((b + 1) * cfg.batch_size):.2f}%")
        seconds = time.perf_counter() - t0
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


def plot_history(history, path, paper_error=0.0096):
    """Write a PNG of train / validation / test error per epoch (needs matplotlib: the ``plot`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for key, label in (("train_error", "train"), ("val_error", "validation"), ("test_error", "test")):
        if all(h.get(key) is not None for h in history):
            ax.plot(epochs, [100 * h[key] for h in history], label=label, marker="o", markersize=3)
    ax.axhline(100 * paper_error, color="grey", linestyle="--", label=f"paper {100 * paper_error:.2f}% (1000 epochs)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("error (%)")
    ax.set_yscale("log")
    ax.set_title("BNN on MNIST (bitsim)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_png(fig, path)


def add_split_arguments(parser, defaults):
    """``--train-size`` and ``--validation-size`` (see :func:`mnist_splits`), defaulting to ``defaults``."""
    parser.add_argument("--train-size", type=int, default=defaults.train_size,
                        help=f"training images, the first of the 60,000 (default {defaults.train_size})")
    parser.add_argument("--validation-size", type=int, default=defaults.validation_size,
                        help=f"validation images from index 50,000 on; the kept epoch has the lowest validation "
                             f"error. 0: no validation, train on up to all 60,000 (--train-size 60000) and keep "
                             f"the last epoch (default {defaults.validation_size})")


def add_translate_argument(parser, defaults):
    """``--translate N``, defaulting to ``defaults.translate``."""
    parser.add_argument("--translate", type=int, default=defaults.translate, metavar="N",
                        help="shift every training image by a random whole number of pixels, up to N in each "
                             "direction, drawn anew each epoch (docs/formats.md section 5); evaluation and "
                             f"batch-norm calibration use the images as they are (default {defaults.translate})")


def add_bn_stats_arguments(parser, defaults):
    """``--bn-stats`` and ``--calibration-size``, defaulting to ``defaults``."""
    parser.add_argument("--bn-stats", choices=BN_STATS, default=defaults.bn_stats,
                        help="batch-norm statistics of the evaluated and kept models: 'running' averages kept "
                             "during training, or 'precise': recomputed after every epoch over the first "
                             f"--calibration-size training images with the epoch's weights (default "
                             f"{defaults.bn_stats})")
    parser.add_argument("--calibration-size", type=int, default=defaults.calibration_size,
                        help=f"the first this many training images (all of them if fewer) calibrate --bn-stats "
                             f"precise (default {defaults.calibration_size})")


CLI_HELP = "Binarized Neural Network MLP on MNIST: train, compile to packed integers, check, report"


def add_train_arguments(parser):
    """Options of ``bitsim train bnn``; the defaults are the README's 30-minute reproduction.

    ``parser`` is a :class:`bitsim.cli.Parser`, which knows the types ``"positive_int"`` and ``"nonnegative_int"``.
    """
    d = BNNConfig()
    parser.add_argument("--dataset", choices=["mnist"], default="mnist")
    parser.add_argument("--hidden", type="positive_int", default=d.hidden,
                        help=f"units per hidden layer (default {d.hidden})")
    parser.add_argument("--layers", type="positive_int", default=d.layers, help=f"hidden layers (default {d.layers})")
    parser.add_argument("--epochs", type="positive_int", default=d.epochs)
    parser.add_argument("--batch-size", type="positive_int", default=d.batch_size)
    parser.add_argument("--lr-start", type=float, default=d.lr_start)
    parser.add_argument("--lr-end", type=float, default=d.lr_end)
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=d.optimizer)
    parser.add_argument("--shift-bn", action="store_true", help="shift-based batch normalization")
    parser.add_argument("--dropout-in", type=float, default=d.dropout_in)
    parser.add_argument("--dropout-hidden", type=float, default=d.dropout_hidden)
    add_translate_argument(parser, d)
    parser.add_argument("--lr-scale", choices=LR_SCALES, default=d.lr_scale,
                        help="per-layer learning-rate scale of the binary weights: 'glorot' = "
                             "1/sqrt(1.5/(fan_in+fan_out)) as in the BNN code, or 'none'")
    add_bn_stats_arguments(parser, d)
    add_split_arguments(parser, d)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--out", default="runs/bnn", help="output directory (checkpoints, models, plot); it must be "
                                                          "empty or absent unless --resume or --overwrite is given")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier `bitsim train bnn` run in OUT (only its files are deleted)")
    parser.add_argument("--no-progress", action="store_true")


__all__ = ["BNNConfig", "build_mlp", "train", "load_float_model", "float_forward", "plot_history", "time_forward",
           "error", "check_split", "mnist_splits"]
