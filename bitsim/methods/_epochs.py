"""End-of-epoch bookkeeping and model loading shared by the trainers of the methods."""

import json

import numpy as np

from ..errors import DamagedFileError, InputError
from ..io import atomic_write_bytes, load_bundle, save_bundle


BN_STATS = ("running", "precise")
# options that runs did not record before they existed, with the values those runs used
LEGACY = {"bn_stats": "running", "calibration_size": 10_000, "translate": 0}


def check_bn_stats(bn_stats, calibration_size):
    """Raise ValueError unless ``bn_stats`` is one of :data:`BN_STATS` and ``calibration_size`` >= 1."""
    if bn_stats not in BN_STATS:
        raise InputError(f"unknown bn_stats {bn_stats!r}; choose one of {BN_STATS}")
    if calibration_size < 1:
        raise InputError(f"calibration_size must be >= 1, got {calibration_size}")


def check_translate(translate):
    """``translate`` (the largest random shift of a training image) as an int; ValueError unless an integer >= 0."""
    if isinstance(translate, (bool, np.bool_)) or not isinstance(translate, (int, np.integer)) or translate < 0:
        raise InputError(f"translate must be a whole number of pixels >= 0 (0: no shifts), got {translate!r}")
    return int(translate)


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
