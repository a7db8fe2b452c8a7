"""The epoch plumbing shared by the trainers of the methods: starting or resuming a run, one epoch of
shuffled mini-batches, end-of-epoch bookkeeping, batch-norm calibration and model loading.

The epoch trainers (``train`` of :mod:`~bitsim.methods.bnn`, :mod:`~bitsim.methods.connect` and
:mod:`~bitsim.methods.loggru`) take the same run options:

``out_dir`` : str or Path, optional
    The run directory: ``checkpoint.{npz,json}``, ``optimizer.{npz,json}`` and ``history.json`` are
    written after every epoch, ``best.{npz,json}`` after the best epoch so far (:func:`end_of_epoch`).
    None writes nothing.
``progress`` : bool
    A tqdm bar per epoch (only on a terminal).
``resume`` : bool
    Continue from ``out_dir/checkpoint`` when it exists (:func:`begin_run`).
``stop_after`` : int, optional
    Return after this many epochs of this call (a later call with ``resume=True`` continues).
``log`` : callable
    Receives one line per epoch.
"""

import json
import time
from pathlib import Path

import numpy as np

from ..datasets import random_shifts
from ..errors import DamagedFileError, InputError
from ..io import atomic_write_bytes, load_bundle, save_bundle


BN_STATS = ("running", "precise")
# options that runs did not record before they existed, with the values those runs used
LEGACY = {"bn_stats": "running", "calibration_size": 10_000, "translate": 0}


def translate_key(seed, epoch):
    """Philox key of epoch ``epoch``'s image shifts (BNN and surgery trainers): ``seed * 2**20 + 2**19 + epoch``."""
    return int(seed) * 2**20 + 2**19 + int(epoch)


def add_precise_errors(row, model, x, evaluate):
    """Put the errors of statistics calibrated on ``x`` into an epoch's ``row``; return the calibrated state.

    ``evaluate`` returns ``(validation error, test error)``; the row's earlier ``val_error`` and
    ``test_error`` (those of the running averages) move to ``val_error_running`` and
    ``test_error_running``. See :func:`calibrated`.
    """
    (val, test), kept = calibrated(model, x, evaluate)
    row.update(val_error_running=row["val_error"], test_error_running=row["test_error"], val_error=val, test_error=test)
    return kept


def running_errors(row):
    """``'running statistics: val V%, test T%'`` for an epoch row of :func:`add_precise_errors`."""
    val = "" if row["val_error_running"] is None else f"val {100 * row['val_error_running']:.2f}%, "
    return f"running statistics: {val}test {100 * row['test_error_running']:.2f}%"


def calibrated(model, x, evaluate, batch_size=1000):
    """Evaluate ``model`` with batch-norm statistics calibrated on ``x``, then restore its state.

    Parameters
    ----------
    model : bitsim.nn.Sequential
    x : numpy.ndarray
        Calibration inputs (:meth:`bitsim.nn.Sequential.calibrate`), e.g. the first training images.
    evaluate : callable
        Called with no arguments while the calibrated statistics are in place.

    Returns
    -------
    result, state
        What ``evaluate`` returned and the calibrated state (to keep as the trained model). The
        model itself goes back to its training state, so the running averages go on as if this had
        not happened and a resumed run keeps the same bits.
    """
    training_state = model.state()
    try:
        model.calibrate(x, batch_size)
        return evaluate(), model.state()
    finally:
        model.load_state(training_state)


def check_same_options(saved, config, out, legacy=None):
    """Raise ValueError naming every option of ``config`` that differs from the ``saved`` one of run ``out``.

    Values are compared as JSON stores them (tuples as lists); options missing from ``saved`` take
    their ``legacy`` value, and options unknown to both are not compared.
    """
    before = {**(legacy or {}), **saved}
    now = json.loads(json.dumps(config))
    changed = [f"{key}: {before[key]!r} -> {value!r}" for key, value in now.items()
               if key in before and before[key] != value]
    if changed:
        raise InputError(f"{out} was started with other options ({'; '.join(changed)}); resume with the "
                         f"options saved in {out / 'checkpoint.json'}, or train into a new directory")


def resume_run(model, opt, out, score_key, kind="bitsim.nn.Sequential", log=print, config=None, legacy=None):
    """Restore a run from the files :func:`end_of_epoch` wrote to ``out``.

    Loads the checkpoint into ``model`` and the optimizer state into ``opt``.

    Parameters
    ----------
    config : dict, optional
        The options of this call (``asdict(cfg)``). When given, they must equal those saved in the
        checkpoint's ``config``: a run continued with other options would mix two runs.
    legacy : dict, optional
        Values of options that checkpoints written before the option existed did not record.

    Returns
    -------
    history, best, start
        The epochs so far, ``(score, state)`` of the best one (its ``score_key`` entry is the
        score; when the last epoch's score is None, as :func:`end_of_epoch` keeps it, the last epoch
        is the best, scored None), and the index of the next epoch.
    """
    state, saved = load_bundle(out / "checkpoint", kind)
    if config is not None:
        check_same_options(saved.get("config", {}), config, out, legacy)
    model.load_state(state)
    history = saved["history"]
    opt.load_state(load_bundle(out / "optimizer", "bitsim.nn.Optimizer")[0])
    score = None if history[-1][score_key] is None else min(h[score_key] for h in history)
    best = (score, load_bundle(out / "best", kind)[0])
    log(f"resumed from {out / 'checkpoint'} after epoch {len(history)}")
    return history, best, len(history)


def begin_run(model, opt, out_dir, resume, epochs, stop_after=None, score_key="val_error", **options):
    """Where a trainer starts: a new run, or the run in ``out_dir`` resumed (:func:`resume_run`).

    Parameters
    ----------
    model, opt
        The new model and optimizer; a resumed run loads its states into them.
    out_dir : str or Path or None
        The run directory (None: nothing is written or resumed).
    resume : bool
        Continue from ``out_dir/checkpoint`` when it exists.
    epochs : int
        The epochs of the whole run.
    stop_after : int, optional
        Train at most this many epochs in this call.
    score_key : str
        The history's entry whose lowest value marks the best epoch.
    **options
        ``kind``, ``log``, ``config`` and ``legacy`` of :func:`resume_run`.

    Returns
    -------
    out, history, best, epochs
        ``out_dir`` as a Path (or None), the epochs so far, ``(score, state)`` of the best one (None
        before the first) and the range of epoch indices this call trains.
    """
    out = Path(out_dir) if out_dir is not None else None
    history, best, start = [], None, 0
    if out is not None and resume and (out / "checkpoint.json").exists():
        history, best, start = resume_run(model, opt, out, score_key, **options)
    stop = epochs if stop_after is None else min(epochs, start + int(stop_after))
    return out, history, best, range(start, stop)


def classifier_epoch(model, opt, loss, cfg, epoch, train, generators, progress, shift, inputs=None):
    """Train an image classifier for one epoch of shuffled mini-batches (the BNN and Connect trainers).

    Parameters
    ----------
    model : bitsim.nn.Sequential
    opt : bitsim.nn optimizer
    loss : callable
        ``loss(scores, labels)`` returns the batch's mean loss and the gradient of the scores.
    cfg : configuration
        Gives ``batch_size``, ``epochs`` and ``translate``, the largest random shift of an image.
    epoch : int
        The epoch's index, from 0.
    train : tuple
        ``(images, labels)``.
    generators : tuple
        ``(order, shifts)``: the generator of the epoch's order (one uint32 per image, sorted stably) and
        the one of its image shifts (:func:`bitsim.datasets.random_shifts`).
    progress : bool
        A tqdm bar (only on a terminal).
    shift : callable
        ``shift(images, dy, dx)``, :func:`bitsim.datasets.translate`: moves the images of a batch when
        ``cfg.translate`` is not 0.
    inputs : callable, optional
        Turns a batch of images into the model's input (default: the images as they are).

    Returns
    -------
    total, wrong, seconds
        The loss summed over the images, the images classified wrongly and the epoch's wall time.
    """
    from tqdm.auto import tqdm

    x, y = train
    t0 = time.perf_counter()
    order = np.argsort(generators[0].uint32(len(x)), kind="stable")
    dy, dx = random_shifts(generators[1], len(x), cfg.translate)
    total, wrong = 0.0, 0
    bar = tqdm(range(-(-len(x) // cfg.batch_size)), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
               unit="batch", disable=None if progress else True)  # None: no bar when the output is not a terminal
    for b in bar:
        idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
        images = shift(x[idx], dy[idx], dx[idx]) if cfg.translate else x[idx]
        scores = model.forward(images if inputs is None else inputs(images), training=True)
        value, grad = loss(scores, y[idx])
        model.backward(grad)
        opt.step()
        total += value * len(idx)
        wrong += int(np.sum(scores.argmax(1) != y[idx]))
        if b % 20 == 0:
            seen = min((b + 1) * cfg.batch_size, len(x))
            bar.set_postfix(loss=f"{total / seen:.4f}", err=f"{100 * wrong / seen:.2f}%")
    return total, wrong, time.perf_counter() - t0


def end_of_epoch(model, opt, out, meta, history, best, score, kept=None):
    """Keep the state with the lowest ``score`` so far and write this epoch's files to ``out``.

    Parameters
    ----------
    model : bitsim.nn.Sequential or a model with ``state`` and ``save``
    opt : bitsim.nn optimizer
    out : pathlib.Path or None
        Run directory; ``None`` writes nothing.
    meta : dict
        Manifest entries saved with the model (e.g. ``{"config": ...}``).
    history : list of dict
        One row per epoch so far; the last row is this epoch's and has an ``"epoch"`` entry.
    best : tuple or None
        ``(score, state)`` of the best epoch so far.
    score : float or None
        This epoch's selection score (validation error or loss; lower is better). None (no
        validation) keeps every epoch in turn, so the last one is the best.
    kept : dict, optional
        The state of a :class:`bitsim.nn.Sequential` to keep as this epoch's model when it is the
        best (default ``model.state()``), e.g. the state with calibrated batch-norm statistics, while
        ``checkpoint`` keeps the training state.

    Returns
    -------
    tuple
        The new ``(score, state)`` of the best epoch. With ``out``, ``best`` (when this epoch is
        the best), ``checkpoint``, ``optimizer`` and ``history.json`` are written atomically.
    """
    if best is None or score is None or score < best[0]:
        best = (score, model.state() if kept is None else kept)
        if out is not None:
            about = {**meta, "epoch": history[-1]["epoch"], "history": history}
            if kept is None:
                model.save(out / "best", about)
            else:
                save_bundle(out / "best", kept, "bitsim.nn.Sequential", about)
    if out is not None:
        model.save(out / "checkpoint", {**meta, "history": history})
        save_bundle(out / "optimizer", opt.state(), "bitsim.nn.Optimizer")
        atomic_write_bytes(out / "history.json", (json.dumps(history, indent=1) + "\n").encode())
    return best


def load_trained(path, build, config_cls, command):
    """Rebuild a ``Sequential`` saved by a trainer, whose manifest holds its configuration.

    Parameters
    ----------
    path : str or Path
        The saved model (``best`` or ``checkpoint``, with or without ``.json``).
    build : callable
        Builds the model from a configuration.
    config_cls : type
        The configuration dataclass (with ``from_dict``).
    command : str
        The command that writes such files, named in the error message.

    Returns
    -------
    model, meta
    """
    state, meta = load_bundle(path, "bitsim.nn.Sequential")
    if "config" not in meta:
        raise InputError(f"{path} has no configuration in its manifest; was it written by {command}?")
    try:
        cfg = config_cls.from_dict(meta["config"])
    except InputError as err:
        raise DamagedFileError(path, f"its saved configuration is not valid: {err}") from None
    model = build(cfg)
    model.load_state(state)
    return model, meta
