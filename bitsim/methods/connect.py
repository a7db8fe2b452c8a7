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

import time
from dataclasses import asdict, dataclass

import numpy as np

from ..datasets import translate
from ..errors import InputError
from ..formats.log import decode
from ..formats.rng import Philox, Xorshift32, make_rng
from ..nn import SGD, Adam, BatchNorm, Dense, ExponentialDecay, ReLU, Sequential, SquaredHinge, glorot_lr_scale
from ..formats.dynamic_fixed import to_float32
from ..nn.connect import ConnectDense
from ..nn.mults import count_multiplications
from ..nn.qbp import QBP, qbp_float_emulation
from ..nn.blas import one_blas_thread
from .config import SIZE, RunConfig
from .epochs import (BN_STATS, LEGACY, add_precise_errors, begin_run, calibrated, classifier_epoch, end_of_epoch,
                     load_trained, running_errors)
from .mnist import check_split, mnist_splits

WEIGHTS = ("binary", "ternary", "float")
OPTIMIZERS = {"adam": Adam, "sgd": SGD}
INFERENCE = ("latent", "deterministic")
PAPER_ERROR = {"float": 0.0133, "binary": 0.0129, "ternary": 0.0115}  # authors' README, MNIST
MAX_LAYERS = 6  # streams 1 .. 2 * MAX_LAYERS of an epoch sample and round
TRANSLATE_STREAM = 15
assert 2 * MAX_LAYERS < TRANSLATE_STREAM < 16, "every stream of an epoch needs its own key"


@dataclass
class ConnectConfig(RunConfig):
    """Options of a run (the defaults are the 30-minute BinaryConnect + QBP reproduction of docs/connect.md)."""

    LIMITS = {"hidden": SIZE, "layers": (1, MAX_LAYERS), "epochs": (1, None), "batch_size": SIZE,
              "translate": (0, None), "calibration_size": (1, None), "seed": (0, None)}
    CHOICES = {"weights": WEIGHTS, "optimizer": sorted(OPTIMIZERS), "rng": ("philox", "xorshift32"),
               "inference": INFERENCE, "bn_stats": BN_STATS}

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
    exp_bits: int = QBP.exp_bits  # the QBP arithmetic's defaults (bitsim.nn.qbp.QBP)
    exp_offset: int = QBP.exp_offset
    underflow: str = QBP.underflow
    err_bits: int = QBP.err_bits
    err_rounding: str = QBP.err_rounding
    act_bits: int = QBP.act_bits
    rng: str = "philox"
    inference: str = "latent"
    translate: int = 1
    bn_stats: str = "precise"
    calibration_size: int = 10_000
    train_size: int = 50_000
    validation_size: int = 10_000
    seed: int = 1

    def check(self):
        if self.qbp and self.weights == "float":
            raise InputError("quantized back-propagation needs binary or ternary weights (--weights binary|ternary)")
        check_split(self.train_size, self.validation_size)
        if self.seed < 1:
            raise InputError("seed must be >= 1 (xorshift32 cannot start from 0)")
        if self.qbp:
            self.qbp_format()

    def qbp_format(self):
        """The :class:`~bitsim.nn.qbp.QBP` arithmetic of this run (None without QBP)."""
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
    data : dict, optional
        MNIST arrays as :func:`bitsim.datasets.load_mnist` returns them.
    out_dir, progress, resume, stop_after, log
        The run options of :mod:`bitsim.methods.epochs`; the best epoch has the lowest validation error.

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
    (xt, yt), (xv, yv), (xs, ys) = mnist_splits(cfg, data)
    model = build_model(cfg)
    steps = -(-len(xt) // cfg.batch_size)
    opt, schedule = make_optimizer(cfg, model, steps)
    loss = SquaredHinge()
    out, history, best, epochs = begin_run(model, opt, out_dir, resume, cfg.epochs, stop_after, log=log,
                                           config=asdict(cfg), legacy=LEGACY)
    connect = cfg.weights != "float"
    for epoch in epochs:
        rekey(model, cfg, epoch)
        generators = (generator(cfg, epoch, 0), generator(cfg, epoch, TRANSLATE_STREAM))
        total, wrong, seconds = classifier_epoch(model, opt, loss, cfg, epoch, (xt, yt), generators, progress,
                                                 translate, inputs)
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


__all__ = ["ConnectConfig", "build_model", "train", "load_model", "qbp_check", "multiplication_rows", "mults_summary",
           "kept_epoch", "mnist_splits", "error", "stream_key", "generator"]
