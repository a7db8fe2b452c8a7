"""Dynamic Network Surgery (Guo, Yao, Chen, NIPS 2016) on MNIST: LeNet-300-100 and LeNet-5.

One command runs every stage, each with its own SGD solver (a fresh momentum and learning-rate schedule,
as a new Caffe solver run would have):

1. ``dense``: train the reference network (the Caffe LeNet recipe: SGD, momentum 0.9, weight decay
   5e-4, learning rate ``lr * (1 + 1e-4 t) ** -0.75``, batch 64, inputs ``pixel / 256``, Xavier
   initialization ``U(±sqrt(3 / fan_in))``, biases learn at twice the rate). It is saved as
   ``reference.{npz,json}``; ``reference=PATH`` skips the stage and starts from a saved one.
2. ``conv`` (LeNet-5 only) and ``fc``: surgery of the convolutional, then of the fully connected
   layers (:mod:`bitsim.nn.masked`): thresholds fixed at the start of the stage, mask updates with
   probability ``(1 + gamma t) ** -power`` until each layer's ``iter_stop``, the gradient reaching
   every weight so pruned connections can be spliced back. Layers not in the stage keep their masks.
3. ``retrain``: every mask fixed, training continues.

The error reported during training is the test error, or, with ``validation_size = v > 0``, the error
on the last ``v`` training images, which are then held out of training (for choosing ``c`` and the
schedule without looking at the test set; the history's key is then ``val_error``).

Iterations are counted from 0 within a stage (``t``) and over the whole run (``g``).

Reproducibility: every random decision comes from Philox generators keyed from ``seed``:
initial weights ``Philox(seed)``; the shuffle of epoch ``e`` (epochs of ``train_size // batch_size``
batches over the whole run, the last partial batch dropped) ``Philox(seed * 2**20 + 2 * e)``, one
uint32 per example, examples sorted by their draws (stable); the mask draws of prunable layer ``l``
(0-based, in model order) in stage ``s`` (0 dense, 1 conv, 2 fc, 3 retrain)
``Philox(seed * 2**20 + 2 * (8 * s + l) + 1)``, whose draw ``t`` decides iteration ``t`` of the stage;
with ``translate``, the image shifts of epoch ``e`` ``Philox(seed * 2**20 + 2**19 + e)``
(docs/formats.md, section 5). The keys are distinct for runs of fewer than 2**18 epochs.
Batch ``g`` is therefore a function of ``g`` alone, and a run resumed from any checkpoint continues with
exactly the bits an uninterrupted run would have used.
"""

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..datasets import load_mnist, random_shifts, translate
from ..errors import InputError
from ..formats.rng import Philox
from ..io import atomic_write_bytes, load_bundle, save_bundle
from ..nn import SGD, Flatten, MaxPool2d, ReLU, Sequential, SoftmaxCrossEntropy
from ..nn.init import uniform
from ..nn.masked import MaskedConv2d, MaskedDense, PruneRule, masked_layers
from ..nn.blas import one_blas_thread
from .config import SIZE, RunConfig
from .epochs import LEGACY, check_same_options, load_trained, translate_key

STAGES = ("dense", "conv", "fc", "retrain")
SCALE = np.float32(1 / 256)  # Caffe's MNIST input scale 0.00390625, exact in float32

LAYER_NAMES = {"lenet300": ("ip1", "ip2", "ip3"), "lenet5": ("conv1", "conv2", "ip1", "ip2")}

# Published numbers: the paper (Guo et al. 2016, Table 1 and 2) and the authors' released models.
PAPER = {
    "lenet300": {"reference_error": 0.0228, "error": 0.0199, "ratio": 56, "params": 266_610,
                 "released_nonzero": 4_988, "density": {"ip1": 0.018, "ip2": 0.018, "ip3": 0.055}},
    "lenet5": {"reference_error": 0.0091, "error": 0.0091, "ratio": 108, "params": 431_080,
               "released_nonzero": None, "density": {"conv1": 0.142, "conv2": 0.031, "ip1": 0.0073, "ip2": 0.043}},
}


@dataclass
class SurgeryConfig(RunConfig):
    """Options of a surgery run (the defaults of each model are in :data:`DEFAULTS`).

    ``c`` and ``iter_stop`` hold one value per prunable layer, in model order; ``iter_stop`` counts
    iterations of the layer's own stage.
    """

    LIMITS = {"dense_iters": (0, None), "conv_iters": (0, None), "fc_iters": (0, None), "retrain_iters": (0, None),
              "batch_size": SIZE, "translate": (0, None), "eval_every": (1, None), "checkpoint_every": (1, None),
              "seed": (0, None)}
    CHOICES = {"model": sorted(LAYER_NAMES)}

    model: str = "lenet5"
    dense_iters: int = 10_000
    conv_iters: int = 6_000
    fc_iters: int = 10_000
    retrain_iters: int = 6_000
    c: tuple = (1.3, 3.5, 6.0, 3.0)
    iter_stop: tuple = (5_000, 5_000, 8_000, 8_000)
    gamma: float = 1e-4
    power: float = 1.0
    lr: float = 0.01
    surgery_lr: float = 0.01
    retrain_lr: float = 0.001
    lr_gamma: float = 1e-4
    lr_power: float = 0.75
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    translate: int = 0
    train_size: int = 60_000
    test_size: int = 10_000
    validation_size: int = 0
    eval_every: int = 1_000
    checkpoint_every: int = 2_000
    seed: int = 1

    def check(self):
        self.c = tuple(float(v) for v in self.c)
        self.iter_stop = tuple(int(v) for v in self.iter_stop)
        n = len(LAYER_NAMES[self.model])
        if len(self.c) != n or len(self.iter_stop) != n:
            raise InputError(f"{self.model} has {n} prunable layers {LAYER_NAMES[self.model]}: give {n} values of "
                             f"c and of iter_stop, got {len(self.c)} and {len(self.iter_stop)}")
        if not 1 <= self.train_size <= 60_000 or not 1 <= self.test_size <= 10_000:
            raise InputError("train_size must be 1..60000 and test_size 1..10000 (the MNIST sets)")
        if not 0 <= self.validation_size < 60_000:
            raise InputError(f"validation_size must be 0..59999 (held out of the 60000 training images), "
                             f"got {self.validation_size}")
        if self.batch_size < 1 or self.batch_size > min(self.train_size, 60_000 - self.validation_size):
            raise InputError(f"batch_size must be 1..train_size, got {self.batch_size}")


DEFAULTS = {
    "lenet300": dict(model="lenet300", dense_iters=20_000, conv_iters=0, fc_iters=60_000, retrain_iters=30_000,
                     c=(6.8, 2.5, 0.0), iter_stop=(50_000, 50_000, 50_000), translate=1),
    "lenet5": dict(model="lenet5", dense_iters=10_000, conv_iters=6_000, fc_iters=10_000, retrain_iters=6_000,
                   c=(1.3, 3.5, 6.0, 3.0), iter_stop=(5_000, 5_000, 8_000, 8_000), eval_every=2_000),
}


def default_config(model, **changes):
    """The documented configuration of ``model`` with ``changes`` applied."""
    if model not in DEFAULTS:
        raise InputError(f"unknown model {model!r}; choose one of {sorted(DEFAULTS)}")
    return SurgeryConfig(**{**DEFAULTS[model], **changes})


class Inv:
    """Caffe's ``inv`` learning-rate policy: ``lr(t) = lr0 * (1 + gamma * t) ** -power``."""

    def __init__(self, lr0, gamma, power):
        self.lr0, self.gamma, self.power = float(lr0), float(gamma), float(power)

    def __call__(self, t):
        return self.lr0 * (1.0 + self.gamma * int(t)) ** -self.power

    def __repr__(self):
        return f"Inv({self.lr0:g}, gamma={self.gamma:g}, power={self.power:g})"


def _xavier(layer, rng):
    fan_in = math.prod(layer.W.value.shape[1:])
    limit = math.sqrt(3.0 / fan_in)
    layer.W.value[...] = uniform(layer.W.value.shape, -limit, limit, rng, layer.dtype)
    layer.b.lr_scale = 2.0


def build_model(name, seed=1):
    """LeNet-300-100 (``'lenet300'``) or Caffe's LeNet-5 (``'lenet5'``) of masked layers.

    LeNet-300-100 takes ``(N, 784)`` inputs: 784-300-100-10 with ReLU. LeNet-5 takes ``(N, 28, 28, 1)``:
    conv 20 5x5, max pool 2, conv 50 5x5, max pool 2, fc 500, ReLU, fc 10 (no ReLU after the
    convolutions, as in Caffe's example). Weights are ``U(±sqrt(3 / fan_in))`` drawn from
    ``Philox(seed)`` layer by layer, biases 0.
    """
    init = Philox(seed)
    if name == "lenet300":
        layers = [MaskedDense(784, 300, input_grad=False), ReLU(), MaskedDense(300, 100), ReLU(), MaskedDense(100, 10)]
    elif name == "lenet5":
        layers = [MaskedConv2d(1, 20, 5, input_grad=False), MaxPool2d(2), MaskedConv2d(20, 50, 5), MaxPool2d(2),
                  Flatten(), MaskedDense(800, 500), ReLU(), MaskedDense(500, 10)]
    else:
        raise InputError(f"unknown model {name!r}; choose one of {sorted(LAYER_NAMES)}")
    model = Sequential(layers)
    for layer, label in zip(masked_layers(model), LAYER_NAMES[name]):
        _xavier(layer, init)
        layer.name = label
    return model


def inputs(model_name, x):
    """uint8 images ``(N, 28, 28)`` as the model's float32 input: ``pixel / 256``, flat or NHWC."""
    x = np.asarray(x)
    if x.dtype != np.uint8 or x.shape[1:] != (28, 28):
        raise InputError(f"expected uint8 MNIST images (N, 28, 28), got {x.dtype} {x.shape}")
    shape = (len(x), 784) if model_name == "lenet300" else (len(x), 28, 28, 1)
    return x.reshape(shape).astype(np.float32) * SCALE


def error(model, model_name, x, y, batch_size=1000):
    """Classification error (fraction) of ``model`` on uint8 images ``x``."""
    wrong = 0
    for i in range(0, len(x), batch_size):
        scores = model.forward(inputs(model_name, x[i:i + batch_size]), training=False)
        wrong += int(np.sum(scores.argmax(1) != y[i:i + batch_size]))
    return wrong / len(x)


def shuffle_key(seed, epoch):
    """Philox key of the shuffle of ``epoch``: ``seed * 2**20 + 2 * epoch``."""
    return int(seed) * 2**20 + 2 * int(epoch)


def mask_key(seed, stage, layer):
    """Philox key of the mask draws of prunable ``layer`` in ``stage``: ``seed * 2**20 + 2 * (8 * stage + layer) + 1``."""
    return int(seed) * 2**20 + 2 * (8 * int(stage) + int(layer)) + 1


class _Batches:
    """Batch ``g`` of the whole run: examples ``[(g % n) * B, (g % n + 1) * B)`` of epoch ``g // n``'s order,
    each shifted by up to ``max_shift`` pixels (:func:`bitsim.datasets.random_shifts`) when it is > 0."""

    def __init__(self, seed, images, batch_size, max_shift=0):
        self.seed, self.images, self.batch_size, self.max_shift = seed, images, batch_size, max_shift
        self.per_epoch = len(images) // batch_size
        self._epoch, self._order, self._shifts = None, None, None

    def __call__(self, g):
        """``(indices, images)`` of batch ``g``."""
        epoch, k = divmod(int(g), self.per_epoch)
        if epoch != self._epoch:
            n = len(self.images)
            self._order = np.argsort(Philox(shuffle_key(self.seed, epoch)).uint32(n), kind="stable")
            self._shifts = random_shifts(Philox(translate_key(self.seed, epoch)), n, self.max_shift)
            self._epoch = epoch
        idx = self._order[k * self.batch_size:(k + 1) * self.batch_size]
        if not self.max_shift:
            return idx, self.images[idx]
        return idx, translate(self.images[idx], self._shifts[0][idx], self._shifts[1][idx])


def stage_plan(cfg):
    """``[(stage index, name, iterations, prunable layer indices)]`` of the run, skipping empty stages."""
    names = LAYER_NAMES[cfg.model]
    conv = [i for i, n in enumerate(names) if n.startswith("conv")]
    fc = [i for i, n in enumerate(names) if not n.startswith("conv")]
    plan = [(0, "dense", cfg.dense_iters, []), (1, "conv", cfg.conv_iters if conv else 0, conv),
            (2, "fc", cfg.fc_iters, fc), (3, "retrain", cfg.retrain_iters, [])]
    return [p for p in plan if p[2] > 0]


def _optimizer(cfg, model, stage):
    lr = {"dense": cfg.lr, "conv": cfg.surgery_lr, "fc": cfg.surgery_lr, "retrain": cfg.retrain_lr}[stage]
    return SGD(model.params(), Inv(lr, cfg.lr_gamma, cfg.lr_power), momentum=cfg.momentum,
               weight_decay=cfg.weight_decay)


def layer_rows(model, names):
    """Per prunable layer: name, parameters (weights and biases), connections in use, density."""
    return [{"layer": n, "params": m.size(), "nonzero": m.active(), "density": m.density()}
            for n, m in zip(names, masked_layers(model))]


def compression(model):
    """``(all parameters, parameters in use, ratio)`` over the prunable layers (weights and biases).

    The ratio is ``inf`` when every connection is pruned.
    """
    layers = masked_layers(model)
    total, used = sum(m.size() for m in layers), sum(m.active() for m in layers)
    return total, used, total / used if used else math.inf


def _track_arrays(n, layers):
    return {"updated": np.zeros((n, layers), bool), "pruned": np.zeros((n, layers), np.int32),
            "spliced": np.zeros((n, layers), np.int32), "active": np.zeros((n, layers), np.int32),
            "iteration": np.zeros(n, np.int64)}


def evaluation_split(cfg, data):
    """``((x_train, y_train), (x_eval, y_eval), key)``: the images trained on, those evaluated during training,
    and the history's key for their error ('test_error', or 'val_error' with ``cfg.validation_size``)."""
    if not cfg.validation_size:
        return ((data["x_train"][:cfg.train_size], data["y_train"][:cfg.train_size]),
                (data["x_test"][:cfg.test_size], data["y_test"][:cfg.test_size]), "test_error")
    n = len(data["x_train"]) - cfg.validation_size
    used = min(cfg.train_size, n)
    return ((data["x_train"][:used], data["y_train"][:used]),
            (data["x_train"][n:], data["y_train"][n:]), "val_error")


def error_key(history):
    """'val_error' or 'test_error': what a history's rows hold."""
    return "val_error" if history and "val_error" in history[0] else "test_error"


@one_blas_thread
def train(cfg, out_dir=None, data=None, progress=True, resume=False, stop_after=None, reference=None, log=print):
    """Run every stage of :func:`stage_plan`: dense training, surgery, retraining.

    Parameters
    ----------
    cfg : SurgeryConfig
    out_dir : str or Path, optional
        Writes ``checkpoint``, ``optimizer`` and ``track`` bundles every ``cfg.checkpoint_every``
        iterations and at the end of every stage, ``reference`` after the dense stage, ``final`` at the
        end, and ``history.json``.
    data : dict, optional
        MNIST as :func:`bitsim.datasets.load_mnist` returns it.
    progress : bool
        A tqdm bar per stage (only on a terminal).
    resume : bool
        Continue from ``out_dir/checkpoint`` when it exists.
    stop_after : int, optional
        Return after this many iterations of this call (``resume=True`` continues).
    reference : str or Path, optional
        A model saved by a previous run (``reference.json``) to start from instead of the dense stage.
    log : callable

    Returns
    -------
    model : Sequential
    history : list of dict
        One row per evaluation: global iteration, stage, test error (validation error with
        ``cfg.validation_size``), per-layer density, lr, mean loss.
    track : dict of numpy.ndarray
        Per surgery and retraining iteration (rows) and prunable layer (columns): ``updated`` (the
        masks were updated), ``pruned``, ``spliced`` (connections switched off / restored by the
        update) and ``active`` (connections in use after it); ``iteration`` holds ``g``.
    """
    from tqdm.auto import tqdm

    data = load_mnist() if data is None else data
    (xt, yt), (xs, ys), error_name = evaluation_split(cfg, data)
    names = LAYER_NAMES[cfg.model]
    model = build_model(cfg.model, cfg.seed)
    layers = masked_layers(model)
    rules = [PruneRule(c, cfg.gamma, cfg.power, stop) for c, stop in zip(cfg.c, cfg.iter_stop)]
    plan = stage_plan(cfg)
    g = 0
    if reference is not None:
        meta = model.load(reference)
        if meta.get("config", {}).get("model") != cfg.model:
            raise InputError(f"{reference} is not a {cfg.model} model")
        plan = [p for p in plan if p[1] != "dense"]
        g = int(meta.get("g", 0))  # batches continue as in a run that trained this reference
    g0 = g + sum(p[2] for p in plan if p[1] == "dense")  # the first row of track is iteration g0
    track = _track_arrays(sum(p[2] for p in plan if p[1] != "dense"), len(layers))
    history, start_stage, start_t, opt_state, window = [], 0, 0, None, (0.0, 0)
    if reference is not None:
        history = list(meta.get("history", []))  # the reference's own evaluations, as in one whole run
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and resume and (out / "checkpoint.json").exists():
        meta = model.load(out / "checkpoint")
        check_same_options(meta.get("config", {}), asdict(cfg), out, LEGACY)
        history, g, start_stage, start_t = meta["history"], meta["g"], meta["stage"], meta["t"]
        window = tuple(meta.get("loss_window", (0.0, 0)))
        opt_state = load_bundle(out / "optimizer", "bitsim.nn.Optimizer")[0]
        if (out / "track.json").exists():
            saved = load_bundle(out / "track", "bitsim.methods.surgery.track")[0]
            for key in track:
                track[key][:len(saved[key])] = saved[key]
        log(f"resumed from {out / 'checkpoint'} at iteration {g} (stage {STAGES[start_stage]}, step {start_t})")
    batches = _Batches(cfg.seed, xt, cfg.batch_size, cfg.translate)
    loss = SoftmaxCrossEntropy()
    budget = None if stop_after is None else int(stop_after)

    def save(stage, t):
        # loss_window: the loss sum and count since the last evaluation, so its mean continues over a resume
        meta = {"config": asdict(cfg), "g": g, "stage": stage, "t": t, "history": history,
                "loss_window": [float(total), int(count)]}
        model.save(out / "checkpoint", meta)
        save_bundle(out / "optimizer", opt.state(), "bitsim.nn.Optimizer")
        rows = max(0, g - g0)
        save_bundle(out / "track", {k: v[:rows] for k, v in track.items()}, "bitsim.methods.surgery.track")
        atomic_write_bytes(out / "history.json", (json.dumps(history, indent=1) + "\n").encode())

    def evaluate(stage, lr, mean_loss):
        row = {"iteration": g, "stage": stage, error_name: error(model, cfg.model, xs, ys), "lr": lr,
               "train_loss": mean_loss, "density": {n: m.density() for n, m in zip(names, layers)}}
        ratio = compression(model)[2]
        row["ratio"] = ratio if math.isfinite(ratio) else None  # JSON has no inf
        history.append(row)
        dens = "  ".join(f"{n} {100 * d:.2f}%" for n, d in row["density"].items())
        log(f"iter {g:6d}  {stage:7s}  loss {mean_loss:.4f}  {error_name[:-6]} {100 * row[error_name]:.2f}%  "
            f"{ratio:.1f}x  {dens}")

    for s, stage, iters, prune in plan:
        if s < start_stage:
            continue
        t0 = start_t if s == start_stage else 0
        if t0 >= iters:
            continue
        opt = _optimizer(cfg, model, stage)
        if opt_state is not None and s == start_stage:
            opt.load_state(opt_state)
        rngs = {}
        for l in prune:
            rngs[l] = Philox(mask_key(cfg.seed, s, l))
            if t0:
                rngs[l].uint32(t0)  # the draws of the iterations already done
                layers[l].resume_surgery(rules[l])
            else:
                layers[l].start_surgery(rules[l])
        if prune and t0 == 0:
            thr = "  ".join(f"{names[l]} a={layers[l].thresholds[0]:.4g} b={layers[l].thresholds[1]:.4g}"
                            for l in prune)
            log(f"stage {stage}: thresholds {thr}")
        bar = tqdm(range(t0, iters), desc=stage, leave=False, unit="it", disable=None if progress else True,
                   initial=t0, total=iters)
        total, count = window if s == start_stage else (0.0, 0)
        started = time.perf_counter()
        for t in bar:
            if budget is not None and budget <= 0:
                if out is not None:
                    save(s, t)
                return model, history, track
            row = g - g0
            for l in prune:
                updated, pruned, spliced = layers[l].surgery_step(t, rngs[l])
                if row >= 0:
                    track["updated"][row, l], track["pruned"][row, l], track["spliced"][row, l] = updated, pruned, spliced
            idx, images = batches(g)
            value, _ = model.train_step(inputs(cfg.model, images), yt[idx], loss, opt)
            total, count = total + value, count + 1
            if row >= 0:
                track["active"][row] = [m.active() for m in layers]
                track["iteration"][row] = g
            g += 1
            if budget is not None:
                budget -= 1
            if t % 50 == 0:
                bar.set_postfix(loss=f"{total / count:.4f}", ratio=f"{compression(model)[2]:.1f}x")
            if g % cfg.eval_every == 0 or t == iters - 1:
                evaluate(stage, opt.schedule(t), total / count)
                total, count = 0.0, 0
            if out is not None and (g % cfg.checkpoint_every == 0 or t == iters - 1):
                save(s, t + 1)
        bar.close()
        for l in prune:
            layers[l].end_surgery()
        log(f"stage {stage} done: {iters - t0} iterations in {time.perf_counter() - started:.0f} s")
        if stage == "dense" and out is not None:
            model.save(out / "reference", {"config": asdict(cfg), "history": history, "g": g})
    if out is not None:
        model.save(out / "final", {"config": asdict(cfg), "history": history})
    return model, history, track


def load_model(path):
    """Rebuild a surgery model saved by :func:`train` (``final.json``, ``reference.json``, ``checkpoint.json``)."""
    model, meta = load_trained(path, lambda cfg: build_model(cfg.model, cfg.seed), SurgeryConfig,
                               "bitsim train surgery")
    return model, SurgeryConfig.from_dict(meta["config"]), meta


def reference_error(history, raw=False):
    """The dense reference's last error (test, or validation with ``validation_size``): a string like '0.91%'
    (None or 'n/a' without a dense stage)."""
    dense = [h for h in history if h["stage"] == "dense"]
    if not dense:
        return None if raw else "n/a"
    value = dense[-1][error_key(history)]
    return value if raw else f"{100 * value:.2f}%"


__all__ = ["SurgeryConfig", "DEFAULTS", "PAPER", "LAYER_NAMES", "default_config", "build_model", "inputs", "error",
           "train", "load_model", "stage_plan", "compression", "layer_rows", "Inv", "shuffle_key", "mask_key",
           "translate_key", "reference_error", "evaluation_split", "error_key"]
