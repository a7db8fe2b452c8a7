"""BinaryConnect / TernaryConnect with quantized back-propagation on MNIST (Lin, Courbariaux, Memisevic,
Bengio, "Neural Networks with Few Multiplications", ICLR 2016).

The network is the authors' MNIST MLP (their ``mnist.py``): 784 inputs, three hidden layers of 1024
units, each ``Connect -> BatchNorm -> ReLU``, and a ``Connect -> BatchNorm`` output of 10 scores
trained with the squared hinge loss (summed over classes, averaged over the batch); batches of 200;
the first 50,000 training images for training, the last 10,000 for validation; the epoch with the
best validation error is kept. The Connect layers are :class:`bitsim.nn.connect.ConnectDense`
(binary or ternary sampled weights, sign-add forward, and with ``qbp`` the integer quantized
back-propagation of ``docs/formats.md`` section 10); ``weights='float'`` builds the full-precision
baseline of the same shape with float32 :class:`~bitsim.nn.layers.Dense` layers and ordinary
back-propagation.

Differences from the authors' code, all deliberate (``docs/connect.md`` lists them): Adam with a
geometric learning-rate decay and the BNN code's per-layer "Glorot" learning-rate scale (the authors:
plain SGD from 0.3 to 0.01 over 1000 epochs), so that a run fits in 30 minutes on one core; latent
weights in [-1, 1] sampled to ±1 (the authors: ±W0 = ±sqrt(6 / (fan_in + fan_out)) / 2; the batch norm
that follows makes the scale irrelevant); inputs are the pixels divided by 256 (exact) and not centred,
and every training image is shifted by -1, 0 or 1 pixel in each direction, drawn anew each epoch
(``translate=1``; the authors trained on the images as they are); the activations entering a Connect
layer are held in 16-bit dynamic fixed point so that the forward product is exact integer arithmetic;
the error term of QBP is taken after the batch norm's backward (the authors' code takes it before,
ignoring the batch norm's Jacobian, as its comment notes); batch-norm statistics for inference are
recomputed after every epoch from the first ``calibration_size`` training images with the weights being
evaluated (``bn_stats='precise'``; ``'running'`` keeps the running averages of training, which follow
sampled weights and so fit neither the latent nor the deterministic ones). Test errors are reported with the latent float weights (the authors' rule for stochastic
BinaryConnect) and with the deterministic weights (sign, or ternary thresholds at ±0.5), each with its
own calibrated statistics.

Reproducibility: every random decision comes from a generator of :mod:`bitsim.formats.rng` chosen by
``rng`` (``philox`` or ``xorshift32``), re-keyed at the start of every epoch from ``seed`` and the
epoch (:func:`stream_key`): stream 0 shuffles, stream ``1 + 2 i`` samples the weights of Connect layer
``i``, stream ``2 + 2 i`` draws its QBP roundings and stream 15 the image shifts of ``translate``. A run
resumed from a checkpoint continues with exactly the bits an uninterrupted run would have used.
"""

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..datasets import random_shifts, translate
from ..errors import InputError
from ..formats.log import decode
from ..formats.rng import Philox, Xorshift32, make_rng
from ..io import atomic_write_bytes, read_manifest, save_png
from ..nn import SGD, Adam, BatchNorm, Dense, ExponentialDecay, ReLU, Sequential, SquaredHinge, glorot_lr_scale
from ..nn.connect import QBP, ConnectDense, Mults, count_multiplications, qbp_float_emulation, to_float32
from ..nn.blas import one_blas_thread
from .config import SIZE, RunConfig
from ._epochs import (LEGACY, add_precise_errors, calibrated, check_bn_stats, check_translate, end_of_epoch,
                      load_trained, resume_run, running_errors)
from .bnn import add_bn_stats_arguments, add_split_arguments, add_translate_argument, check_split, mnist_splits

WEIGHTS = ("binary", "ternary", "float")
OPTIMIZERS = {"adam": Adam, "sgd": SGD}
INFERENCE = ("latent", "deterministic")
PAPER_ERROR = {"float": 0.0133, "binary": 0.0129, "ternary": 0.0115}  # authors' README, MNIST
MAX_LAYERS = 6  # streams 1 .. 2 * MAX_LAYERS of an epoch sample and round
TRANSLATE_STREAM = 15
assert 2 * MAX_LAYERS < TRANSLATE_STREAM < 16, "every stream of an epoch needs its own key"
PLOT_PATH = "docs/img/connect_mnist.png"


@dataclass
class ConnectConfig(RunConfig):
    """Options of a run (the defaults are the README's 30-minute BinaryConnect + QBP reproduction)."""

    LIMITS = {"hidden": SIZE, "layers": (1, 64), "epochs": (1, None), "batch_size": SIZE, "seed": (0, None)}

    weights: str = "binary"
    qbp: bool = False
    stochastic: bool = True
    hidden: int = 1024
    layers: int = 3
    epochs: int = 30
    batch_size: int = 200
    optimizer: str = "adam"
    lr_start: float = 3e-3
    lr_end: float = 1e-5
    exp_bits: int = 3
    exp_offset: int = -1
    underflow: str = "stochastic"
    err_bits: int = 16
    err_rounding: str = "nearest_even"
    act_bits: int = 16
    rng: str = "philox"
    inference: str = "latent"
    translate: int = 1
    bn_stats: str = "precise"
    calibration_size: int = 10_000
    train_size: int = 50_000
    validation_size: int = 10_000
    seed: int = 1

    def check(self):
        if self.weights not in WEIGHTS:
            raise InputError(f"unknown weights {self.weights!r}; choose one of {WEIGHTS}")
        if self.qbp and self.weights == "float":
            raise InputError("quantized back-propagation needs binary or ternary weights (--weights binary|ternary)")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {self.optimizer!r}; choose one of {sorted(OPTIMIZERS)}")
        if self.inference not in INFERENCE:
            raise InputError(f"inference must be one of {INFERENCE}, got {self.inference!r}")
        if self.rng not in ("philox", "xorshift32"):
            raise InputError(f"rng must be 'philox' or 'xorshift32', got {self.rng!r}")
        check_bn_stats(self.bn_stats, self.calibration_size)
        check_split(self.train_size, self.validation_size)
        self.translate = check_translate(self.translate)
        if self.hidden < 1 or not 1 <= self.layers <= MAX_LAYERS or self.epochs < 1 or self.batch_size < 1:
            raise InputError(f"hidden, epochs and batch_size must be positive and layers 1..{MAX_LAYERS}")
        if self.seed < 1:
            raise InputError("seed must be >= 1 (xorshift32 cannot start from 0)")
        if self.qbp:
            self.qbp_format()

    def qbp_format(self):
        """The :class:`~bitsim.nn.connect.QBP` arithmetic of this run (None without QBP)."""
        if not self.qbp:
            return None
        return QBP(exp_bits=self.exp_bits, exp_offset=self.exp_offset, underflow=self.underflow,
                   err_bits=self.err_bits, err_rounding=self.err_rounding, act_bits=self.act_bits)

    @property
    def name(self):
        if self.weights == "float":
            return "full precision"
        return f"{'Binary' if self.weights == 'binary' else 'Ternary'}Connect{' + QBP' if self.qbp else ''}"



def stream_key(seed, epoch, stream):
    """The key of ``stream`` in ``epoch``: ``seed * 2**24 + 16 * epoch + stream`` (streams 0..15)."""
    return int(seed) * 2**24 + 16 * int(epoch) + int(stream)


def generator(cfg, epoch, stream):
    """The generator of ``stream`` in ``epoch``: Philox with key :func:`stream_key`, or xorshift32 seeded
    with ``1 + key mod (2**32 - 1)``."""
    key = stream_key(cfg.seed, epoch, stream)
    if cfg.rng == "xorshift32":
        return Xorshift32(1 + key % (2**32 - 1))
    return Philox(key)


def connect_layers(model):
    """The Connect layers of a model, in order."""
    return [layer for layer in model.layers if isinstance(layer, ConnectDense)]


def build_model(cfg, input_size=784, classes=10):
    """The MLP of ``cfg``: Connect (or float Dense) layers with batch norm and ReLU, batch-normed scores."""
    init = make_rng(cfg.rng, cfg.seed)
    widths = [input_size] + [cfg.hidden] * cfg.layers + [classes]
    qbp = cfg.qbp_format()
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        if cfg.weights == "float":
            layers.append(Dense(n_in, n_out, bias=False, init_rng=init))
        else:
            layers.append(ConnectDense(n_in, n_out, cfg.weights, cfg.stochastic, generator(cfg, 0, 1 + 2 * i),
                                       qbp=qbp, qbp_rng=generator(cfg, 0, 2 + 2 * i), input_grad=i > 0,
                                       inference=cfg.inference, lr_scale=glorot_lr_scale(n_in, n_out),
                                       init_rng=init))
        layers.append(BatchNorm(n_out))
        if i < len(widths) - 2:
            layers.append(ReLU())
    return Sequential(layers)


def rekey(model, cfg, epoch):
    """Give every Connect layer its generators for ``epoch``."""
    for i, layer in enumerate(connect_layers(model)):
        if layer.rng is not None:
            layer.rng = generator(cfg, epoch, 1 + 2 * i)
        if layer.qbp_rng is not None:
            layer.qbp_rng = generator(cfg, epoch, 2 + 2 * i)


def inputs(images):
    """uint8 images as float32 vectors of ``pixel / 256`` (exact)."""
    x = np.asarray(images)
    return np.ldexp(x.reshape(len(x), -1).astype(np.float32), np.int32(-8), dtype=np.float32)


@one_blas_thread
def error(model, x, y, inference=None, batch_size=1000, calibration=None):
    """Classification error (fraction) in inference mode.

    ``inference`` sets the Connect layers' weights; with ``calibration`` (input images), the batch
    norms first take their statistics from those images with these weights
    (:meth:`bitsim.nn.Sequential.calibrate`), and the model's state is restored afterwards.
    """
    def count():
        wrong = 0
        for i in range(0, len(x), batch_size):
            scores = model.forward(inputs(x[i:i + batch_size]), training=False)
            wrong += int(np.sum(scores.argmax(1) != y[i:i + batch_size]))
        return wrong

    layers = connect_layers(model)
    saved = [layer.inference for layer in layers]
    try:
        for layer in layers:
            layer.inference = inference or layer.inference
        wrong = count() if calibration is None else calibrated(model, inputs(calibration), count)[0]
    finally:
        for layer, mode in zip(layers, saved):
            layer.inference = mode
    return wrong / len(x)


def make_optimizer(cfg, model, steps):
    schedule = ExponentialDecay(cfg.lr_start, cfg.lr_end, cfg.epochs, every=steps)
    return OPTIMIZERS[cfg.optimizer](model.params(), lr=schedule), schedule


def _counts(model):
    total = {"saturated": 0, "flushed": 0}
    for layer in connect_layers(model):
        total["saturated"] += layer.counts.saturated
        total["flushed"] += layer.counts.flushed
        layer.counts.saturated = layer.counts.flushed = layer.counts.wrapped = 0
    return total


@one_blas_thread
def train(cfg, out_dir=None, data=None, progress=True, resume=False, stop_after=None, log=print):
    """Train the MLP of ``cfg`` on MNIST.

    Parameters
    ----------
    cfg : ConnectConfig
    out_dir : str or Path, optional
        Where to write ``checkpoint.{npz,json}`` and ``optimizer.{npz,json}`` after every epoch,
        ``best.{npz,json}`` (the lowest validation error) and ``history.json``.
    data : dict, optional
        MNIST arrays as :func:`bitsim.datasets.load_mnist` returns them.
    progress : bool
        A tqdm bar per epoch (only on a terminal).
    resume : bool
        Continue from ``out_dir/checkpoint`` when it exists.
    stop_after : int, optional
        Return after this many epochs of this call.
    log : callable
        Receives one line per epoch.

    Returns
    -------
    model : Sequential
        The model of the epoch with the best validation error. With ``cfg.bn_stats == 'precise'``
        its batch norms hold the statistics of ``cfg.inference`` weights on the first
        ``cfg.calibration_size`` training images (all of them if fewer); to evaluate the other
        weights, pass ``calibration`` to :func:`error`.
    history : list of dict
        Per epoch: train loss and error (of the training forward passes), validation and test error
        (with ``cfg.inference`` weights), the test error with deterministic weights, learning rate,
        seconds of training and of evaluation, and the values the quantizers saturated or flushed.
        With ``'precise'``, every error is that of statistics calibrated for its weights, and
        ``val_error_running`` and ``test_error_running`` are those of the running averages.
    """
    from tqdm.auto import tqdm

    (xt, yt), (xv, yv), (xs, ys) = mnist_splits(cfg, data)
    model = build_model(cfg)
    steps = -(-len(xt) // cfg.batch_size)
    opt, schedule = make_optimizer(cfg, model, steps)
    loss = SquaredHinge()
    history, best, start = [], None, 0
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and resume and (out / "checkpoint.json").exists():
        history, best, start = resume_run(model, opt, out, "val_error", log=log, config=asdict(cfg), legacy=LEGACY)
    stop = cfg.epochs if stop_after is None else min(cfg.epochs, start + int(stop_after))
    connect = cfg.weights != "float"
    for epoch in range(start, stop):
        rekey(model, cfg, epoch)
        t0 = time.perf_counter()
        order = np.argsort(generator(cfg, epoch, 0).uint32(len(xt)), kind="stable")
        dy, dx = random_shifts(generator(cfg, epoch, TRANSLATE_STREAM), len(xt), cfg.translate)
        total, wrong = 0.0, 0
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, unit="batch",
                   disable=None if progress else True)
        for b in bar:
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x = translate(xt[idx], dy[idx], dx[idx]) if cfg.translate else xt[idx]
            scores = model.forward(inputs(x), training=True)
            value, grad = loss(scores, yt[idx])
            model.backward(grad)
            opt.step()
            total += value * len(idx)
            wrong += int(np.sum(scores.argmax(1) != yt[idx]))
            if b % 20 == 0:
                seen = min((b + 1) * cfg.batch_size, len(xt))
                bar.set_postfix(loss=f"{total / seen:.4f}", err=f"{100 * wrong / seen:.2f}%")
        seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        row = {"epoch": epoch + 1, "train_loss": total / len(xt), "train_error": wrong / len(xt),
               "val_error": error(model, xv, yv) if len(xv) else None, "test_error": error(model, xs, ys)}
        kept, calibration = None, None
        if cfg.bn_stats == "precise":
            calibration = xt[:cfg.calibration_size]
            kept = add_precise_errors(row, model, inputs(calibration),
                                      lambda: (error(model, xv, yv) if len(xv) else None, error(model, xs, ys)))
        if connect:
            row["test_error_deterministic"] = (row["test_error"] if cfg.inference == "deterministic"
                                               else error(model, xs, ys, "deterministic", calibration=calibration))
            row.update(_counts(model))
        row.update({"lr": schedule((epoch + 1) * steps - 1), "seconds": seconds,
                    "eval_seconds": time.perf_counter() - t1})
        history.append(row)
        log(f"epoch {epoch + 1:3d}  loss {row['train_loss']:.4f}  train {100 * row['train_error']:.2f}%  "
            + (f"val {100 * row['val_error']:.2f}%  " if len(xv) else "") + f"test {100 * row['test_error']:.2f}%"
            + (f" (deterministic {100 * row['test_error_deterministic']:.2f}%)" if connect else "")
            + (f"  [{running_errors(row)}]" if kept is not None else "")
            + f"  {seconds:.1f}s "
            f"(+{row['eval_seconds']:.1f}s evaluation)")
        best = end_of_epoch(model, opt, out, {"config": asdict(cfg)}, history, best, row["val_error"], kept)
    model.load_state(best[1])
    return model, history


def kept_epoch(history):
    """Index of the kept epoch: the lowest validation error (the first of ties), or the last without validation."""
    if history[-1]["val_error"] is None:
        return len(history) - 1
    return min(range(len(history)), key=lambda i: history[i]["val_error"])


def load_model(path):
    """Rebuild a model saved by :func:`train` (its JSON manifest holds the configuration).

    With ``bn_stats='precise'`` the saved statistics fit the configuration's ``inference`` weights;
    evaluate the other weights with ``error(..., calibration=training_images)``.
    """
    return load_trained(path, build_model, ConnectConfig, "bitsim train connect")


def qbp_check(model, cfg, x, y):
    """One QBP training step on ``(x, y)`` (no update), checked layer by layer.

    For every Connect layer: the integer weight gradient against a float64 computation on the same
    quantized values (must be equal), and against the float-emulated version (float32 ``g``,
    ``dW = g^T x_q`` in float32) within the bound, per element,
    ``sum_m |x_q[m, k]| * (2**-f_g + 2**-24 * (M + 2) * |g[m, n]|) + 2**-24 * |dW[n, k]|``: one LSB of the
    fixed-point error term (half for rounding to nearest; a whole one covers stochastic rounding and
    saturation), float32 rounding of any summation order of the M products (exact: powers of two times
    float32), and the final conversion of the integer sum to float32.

    Returns
    -------
    list of dict
        Per layer: ``exact`` (bool), ``max_diff`` and ``max_bound`` against the emulation, ``within``.
    """
    if not cfg.qbp:
        raise InputError("qbp_check needs a model trained with qbp")
    saved = model.state()  # the training-mode forward moves the batch norms' running averages
    rekey(model, cfg, 2**19)  # streams no epoch of a run uses
    layers = connect_layers(model)
    scores = model.forward(inputs(x), training=True)
    model.backward(SquaredHinge()(scores, y)[1])
    model.load_state(saved)
    qbp = cfg.qbp_format()
    rows = []
    for i, layer in enumerate(layers):
        last = layer.last
        xq = decode(last["x_codes"], qbp.log_format).astype(np.float64)
        g_fx = last["g_codes"].astype(np.float64) * 2.0 ** -last["g_frac"]
        exact = g_fx.T @ xq
        equal = bool(np.array_equal(last["dw"].astype(np.float64) * 2.0 ** -last["dw_frac"], exact))
        emulated = qbp_float_emulation(last["x_codes"], qbp, last["g"]).astype(np.float64)
        got = to_float32(last["dw"], last["dw_frac"]).astype(np.float64)
        m = xq.shape[0]
        bound = (2.0 ** -last["g_frac"] + 2.0**-24 * (m + 2) * np.abs(last["g"].astype(np.float64))).T @ np.abs(xq)
        bound += 2.0**-24 * np.abs(exact)
        diff = np.abs(got - emulated)
        rows.append({"layer": i, "shape": list(layer.W.value.shape), "exact": equal,
                     "max_diff": float(diff.max()), "max_bound": float(bound.max()),
                     "max_abs": float(np.abs(exact).max()), "within": bool((diff <= bound).all()),
                     "err_frac_bits": int(last["g_frac"])})
    return rows


def multiplication_rows(cfg):
    """Per-layer multiplication counts of one training step of ``cfg``'s model and its float counterpart."""
    model = build_model(cfg)
    opt, _ = make_optimizer(cfg, model, 1)
    return count_multiplications(model, (784,), cfg.batch_size, SquaredHinge(), opt)


def format_mults(rows, title):
    """A table of :func:`multiplication_rows`: this network against the standard float network."""
    head = f"{'layer':34s} {'forward':>12s} {'backward':>12s} {'update':>12s} {'float fwd':>12s} {'float bwd':>12s}"
    lines = [title, head]
    total, ftotal = Mults(), Mults()
    for r in rows:
        lines.append(f"{r['layer'][:34]:34s} {r['forward'].total:12,d} {r['backward'].total:12,d} "
                     f"{r['update'].total:12,d} {r['float_forward'].total:12,d} {r['float_backward'].total:12,d}")
        total = total + r["forward"] + r["backward"] + r["update"]
        ftotal = ftotal + r["float_forward"] + r["float_backward"] + r["float_update"]
    lines.append(f"per training step: {total.total:,d} multiplications (+ {total.sqrt:,d} square roots) against "
                 f"{ftotal.total:,d} (+ {ftotal.sqrt:,d}) for the float network: {ftotal.total / total.total:.0f}x fewer")
    return "\n".join(lines)


def mults_summary(rows):
    """Totals by kind: matrix products, batch norm, loss, optimizer, for this network and the float one."""
    out = {}
    for key in ("", "float_"):
        parts = {"products": 0, "batch_norm": 0, "loss": 0, "optimizer": 0}
        for r in rows:
            step = (r[key + "forward"] + r[key + "backward"]).total
            if "BatchNorm" in r["layer"]:
                parts["batch_norm"] += step
            elif r["layer"].startswith("loss"):
                parts["loss"] += step
            else:
                parts["products"] += step
            parts["optimizer"] += r[key + "update"].total
        parts["total"] = sum(parts.values())
        out["float" if key else "this"] = parts
    return out


def plot_runs(run_dirs, path):
    """Test error against epochs for several runs (their ``history.json``), beside the paper's numbers.

    Needs matplotlib (the ``plot`` extra); returns the path written, or None without matplotlib.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4))
    colors = {"float": "C0", "binary": "C1", "ternary": "C2"}
    top, low, widths = 0.0, 0.8, set()
    for d in run_dirs:
        d = Path(d)
        saved = read_manifest(d / "checkpoint", "bitsim.nn.Sequential")["meta"]
        cfg, history = ConnectConfig.from_dict(saved["config"]), saved["history"]
        widths.add("-".join(map(str, [784] + [cfg.hidden] * cfg.layers + [10])))
        color = colors[cfg.weights]
        errors = [100 * h["test_error"] for h in history]
        top = max(top, *errors[1:]) if len(errors) > 1 else max(top, *errors)
        low = min(low, 0.95 * min(errors))
        ax.plot([h["epoch"] for h in history], errors, color=color, marker="o", markersize=2.5,
                label=f"{cfg.name}, bitsim")
        kept = kept_epoch(history)
        ax.plot([history[kept]["epoch"]], [errors[kept]], color=color, marker="*", markersize=11, linestyle="none",
                label=f"{cfg.name}, kept ({'best validation' if cfg.validation_size else 'last epoch'}): "
                      f"{errors[kept]:.2f}%")
        ax.axhline(100 * PAPER_ERROR[cfg.weights], color=color, linestyle="--", linewidth=1,
                   label=f"{cfg.name}, paper (1000 epochs): {100 * PAPER_ERROR[cfg.weights]:.2f}%")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")
    ax.set_ylim(low, max(2.0, min(top * 1.05, 5.0)))
    ax.set_title(f"MNIST, MLP {', '.join(sorted(widths))}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_png(fig, path)


CLI_HELP = "BinaryConnect / TernaryConnect with quantized back-propagation (integer shifts and sign-adds) on MNIST"


def add_train_arguments(parser):
    """Options of ``bitsim train connect``.

    ``parser`` is a :class:`bitsim.cli.Parser`, which knows the types ``"positive_int"`` and ``"nonnegative_int"``.
    """
    d = ConnectConfig()
    parser.add_argument("--dataset", choices=["mnist"], default="mnist")
    parser.add_argument("--weights", choices=WEIGHTS, default=d.weights,
                        help="binary / ternary Connect layers, or the float baseline (default binary)")
    parser.add_argument("--qbp", action="store_true", help="quantized back-propagation (integer shifts)")
    parser.add_argument("--deterministic", action="store_true", help="deterministic weights instead of sampled")
    parser.add_argument("--hidden", type="positive_int", default=d.hidden,
                        help=f"units per hidden layer (default {d.hidden})")
    parser.add_argument("--layers", type="positive_int", default=d.layers, help=f"hidden layers (default {d.layers})")
    parser.add_argument("--epochs", type="positive_int", default=d.epochs, help=f"default {d.epochs}")
    parser.add_argument("--batch-size", type="positive_int", default=d.batch_size)
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=d.optimizer)
    parser.add_argument("--lr-start", type=float, default=d.lr_start)
    parser.add_argument("--lr-end", type=float, default=d.lr_end)
    parser.add_argument("--exp-bits", type="positive_int", default=d.exp_bits,
                        help=f"exponent bits of the log codes of x (default {d.exp_bits})")
    parser.add_argument("--exp-offset", type=int, default=d.exp_offset,
                        help=f"exponent window offset (default {d.exp_offset}: 2^-4..2^2 with 3 bits)")
    parser.add_argument("--underflow", choices=["stochastic", "flush", "saturate"], default=d.underflow)
    parser.add_argument("--err-bits", type="positive_int", default=d.err_bits,
                        help="bits of the fixed-point error term")
    parser.add_argument("--err-rounding", choices=["nearest_even", "stochastic"], default=d.err_rounding)
    parser.add_argument("--act-bits", type="positive_int", default=d.act_bits,
                        help="bits of the fixed-point activations")
    parser.add_argument("--rng", choices=["philox", "xorshift32"], default=d.rng,
                        help="generator of every random decision (xorshift32: hardware friendly)")
    parser.add_argument("--inference", choices=INFERENCE, default=d.inference,
                        help="weights for validation and the reported test error (the other is reported too)")
    add_translate_argument(parser, d)
    add_bn_stats_arguments(parser, d)
    add_split_arguments(parser, d)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--out", default=None, help="output directory (default runs/connect-WEIGHTS); it must be "
                                                    "empty or absent unless --resume or --overwrite is given")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier `bitsim train connect` run in OUT (only its files are deleted)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--plot", nargs="+", metavar="RUN_DIR",
                        help=f"do not train: plot the test error of these runs into OUT (default {PLOT_PATH})")
    parser.add_argument("--mults", action="store_true",
                        help="do not train: print the real multiplications per training step, layer by layer")


def train_cli(args):
    """``bitsim train connect``: train, check QBP, count multiplications, save, report.

    ``--out`` follows the rule of :mod:`bitsim.outputs`: a non-empty directory needs ``--resume`` or ``--overwrite``.
    """
    from ..outputs import prepare_run_dir

    if args.plot:
        path = plot_runs(args.plot, args.out or PLOT_PATH)
        print(f"wrote {path}" if path else "matplotlib is missing: pip install 'bitsim[plot]'")
        return
    # numba's OpenMP workers sleep between parallel regions instead of spinning: the step alternates
    # many short regions with serial work, and spinning workers starve it on a shared machine
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cfg = ConnectConfig(weights=args.weights, qbp=args.qbp, stochastic=not args.deterministic, hidden=args.hidden,
                        layers=args.layers, epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                        lr_start=args.lr_start, lr_end=args.lr_end, exp_bits=args.exp_bits,
                        exp_offset=args.exp_offset, underflow=args.underflow, err_bits=args.err_bits,
                        err_rounding=args.err_rounding, act_bits=args.act_bits, rng=args.rng,
                        inference=args.inference, translate=args.translate, bn_stats=args.bn_stats,
                        calibration_size=args.calibration_size, train_size=args.train_size,
                        validation_size=args.validation_size, seed=args.seed)
    if args.mults:
        print(format_mults(multiplication_rows(cfg), f"{cfg.name}: real multiplications per training step "
                                                     f"(batch {cfg.batch_size}, {cfg.optimizer}):"))
        return
    owned = [f"{name}.{ext}" for name in ("best", "checkpoint", "optimizer") for ext in ("json", "npz")]
    out = prepare_run_dir(args.out or f"runs/connect-{cfg.weights}", "bitsim train connect",
                          owned + ["history.json", "report.json"], resume=args.resume, overwrite=args.overwrite)
    print(f"training {cfg.name}: {cfg}")
    model, history = train(cfg, out_dir=out, progress=not args.no_progress, resume=args.resume)
    (xt, yt), (xv, yv), (xs, ys) = mnist_splits(cfg)
    best = kept_epoch(history)
    rep = {"config": asdict(cfg), "best_epoch": best + 1, "val_error": history[best]["val_error"],
           "test_error": history[best]["test_error"], "paper_test_error": PAPER_ERROR[cfg.weights]}
    why = f"validation {100 * rep['val_error']:.2f}%" if len(xv) else "no validation: the last epoch"
    lines = [f"kept epoch      {best + 1} of {len(history)} ({why})",
             f"test error      {100 * rep['test_error']:.2f}% with {cfg.inference} weights "
             f"(paper: {100 * PAPER_ERROR[cfg.weights]:.2f}%)"]
    if cfg.weights != "float":
        other = "deterministic" if cfg.inference == "latent" else "latent"
        calibration = xt[:cfg.calibration_size] if cfg.bn_stats == "precise" else None
        rep[f"test_error_{other}"] = error(model, xs, ys, other, calibration=calibration)
        lines.append(f"                {100 * rep[f'test_error_{other}']:.2f}% with {other} weights")
    if cfg.qbp:
        check = qbp_check(model, cfg, xt[:cfg.batch_size], yt[:cfg.batch_size])
        rep["qbp_check"] = check
        ok = all(r["exact"] for r in check)
        lines.append(f"QBP check       integer dW == float64 on the same quantized values: "
                     f"{'every layer' if ok else 'MISMATCH'}; float-emulated dW within the bound: "
                     f"{all(r['within'] for r in check)} (largest difference "
                     f"{max(r['max_diff'] for r in check):.3g}, bound {max(r['max_bound'] for r in check):.3g})")
        sat = sum(h.get("saturated", 0) for h in history)
        flushed = sum(h.get("flushed", 0) for h in history)
        lines.append(f"quantizers      {sat:,d} saturated and {flushed:,d} flushed values over the run")
    rows = multiplication_rows(cfg)
    rep["multiplications"] = mults_summary(rows)
    total = sum(h["seconds"] for h in history)
    rep["training_seconds"] = total
    rep["eval_seconds"] = sum(h["eval_seconds"] for h in history)
    rep["epochs"] = len(history)
    lines.append(f"training time   {total / 60:.1f} min over {len(history)} epochs ({total / len(history):.1f} s/epoch)"
                 f" + {rep['eval_seconds'] / 60:.1f} min of evaluation")
    print("\n".join(lines))
    print(format_mults(rows, f"real multiplications per training step (batch {cfg.batch_size}):"))
    atomic_write_bytes(out / "report.json", (json.dumps(rep, indent=1) + "\n").encode())
    print(f"saved           {out / 'best.json'}, {out / 'history.json'}, {out / 'report.json'}")


__all__ = ["ConnectConfig", "build_model", "train", "load_model", "qbp_check", "multiplication_rows",
           "format_mults", "mults_summary", "plot_runs", "mnist_splits", "error", "stream_key", "generator"]
