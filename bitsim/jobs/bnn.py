"""The BNN job: train (:mod:`bitsim.methods.bnn`), compile to packed integers (:mod:`bitsim.deploy.packed`),
check bit for bit, report.

Commands: ``bitsim train bnn`` (:data:`TRAIN`) and ``bitsim demo`` (:data:`DEMO`) run :func:`pipeline`;
``bitsim eval`` (:data:`EVAL`) and ``bitsim summary`` (:data:`SUMMARY`) read a saved model.
"""

from dataclasses import asdict, fields

import numpy as np

from ..deploy import IntegerModel, check_exact, compile_model
from ..deploy.costs import summary_rows, weight_memory
from ..errors import CheckFailed, InputError
from ..io import load_bundle
from ..methods.bnn import (LR_SCALES, OPTIMIZERS, BNNConfig, error, float_forward, load_float_model, mnist_splits,
                           time_forward, train)
from .arguments import (Command, add_mnist_arguments, add_run_arguments, add_translate_argument, config_options,
                        positive_int)
from .runs import open_run, save_json, save_plot, training_time


def compile_and_check(model, x_check):
    """Compile a float BNN for 28x28 uint8 images and check it against the float model.

    Parameters
    ----------
    model : bitsim.nn.Sequential
    x_check : numpy.ndarray of uint8
        Images the check runs both models on.

    Returns
    -------
    compiled, check
        The :class:`~bitsim.deploy.IntegerModel` and :func:`~bitsim.deploy.check_exact`'s result.
    """
    compiled = compile_model(model, (28, 28))
    return compiled, check_exact(model, compiled, x_check)


def format_summary(rows):
    """The rows of :func:`~bitsim.deploy.costs.summary_rows` as a table with a total line.

    Parameters
    ----------
    rows : list of dict

    Returns
    -------
    str
    """
    keys = ("params", "bytes", "float32_bytes", "macs", "popcounts", "adds")
    head = (f"{'layer':28s} {'params':>10s} {'bytes':>10s} {'float32 B':>11s} {'ratio':>7s} {'MACs':>11s} "
            f"{'popcounts':>10s} {'int adds':>10s}")
    lines = [head]
    total = {k: sum(r[k] for r in rows) for k in keys}
    for r in rows + [{"layer": "total", **total}]:
        ratio = r["bytes"] / r["float32_bytes"] if r["float32_bytes"] else 0.0
        lines.append(f"{r['layer']:28s} {r['params']:10,d} {r['bytes']:10,d} {r['float32_bytes']:11,d} "
                     f"{ratio:7.4f} {r['macs']:11,d} {r['popcounts']:10,d} {r['adds']:10,d}")
    lines.append("(bytes: packed weights incl. padding bits; thresholds: int32 + flip bit vs 4 float32 batch-norm "
                 "values; MACs of the float network, and the 64-bit popcounts or 8-bit integer additions that "
                 "replace them, per image)")
    return "\n".join(lines)


def evaluate_compiled(compiled, x, y, batch_size=1000):
    """Error (fraction) of a compiled model on uint8 images ``x`` with labels ``y``.

    Parameters
    ----------
    compiled : IntegerModel
    x : numpy.ndarray of uint8
    y : numpy.ndarray
    batch_size : int

    Returns
    -------
    float
    """
    return float(np.mean(compiled.predict(x, batch_size) != y))


def report(model, compiled, test, time_it=True):
    """Accuracy of the float and integer models, the exactness check, speed and memory.

    Parameters
    ----------
    model : bitsim.nn.Sequential
        The float BNN.
    compiled : IntegerModel
        Its compiled form.
    test : tuple
        ``(images, labels)``.
    time_it : bool
        Also time both models (``float_seconds``, ``integer_seconds``).

    Returns
    -------
    dict
        ``float_test_error``, ``integer_test_error``, ``exact``, ``memory`` and, with ``time_it``, the times.
    """
    xs, ys = test
    exact = check_exact(model, compiled, xs)
    out = {"float_test_error": error(model, xs, ys), "integer_test_error": evaluate_compiled(compiled, xs, ys),
           "exact": exact, "memory": weight_memory(compiled)}
    if time_it:
        out["float_seconds"] = time_forward(float_forward(model), xs)
        out["integer_seconds"] = time_forward(compiled.forward, xs)
    return out


def require_exact(rep):
    """Raise unless :func:`report` found the integer model equal to the float model.

    Parameters
    ----------
    rep : dict

    Raises
    ------
    CheckFailed
        A stage or a prediction differs.
    """
    if not rep["exact"]["all_equal"]:
        raise CheckFailed("the integer model differs from the float model; see the rows above")


def format_report(rep):
    """The lines of :func:`report`'s dict: test errors, bit-exactness per stage, speed, weight memory.

    Parameters
    ----------
    rep : dict

    Returns
    -------
    str
    """
    lines = [f"test error      float32 model {100 * rep['float_test_error']:.2f}%   "
             f"integer model {100 * rep['integer_test_error']:.2f}%"]
    bad = [r for r in rep["exact"]["stages"] if not r["equal"]]
    verdict = "every stage equal" if rep["exact"]["all_equal"] else f"MISMATCH in {len(bad)} stage(s)"
    lines.append(f"bit-exactness   integer vs float on {len(rep['exact']['stages'])} stages: {verdict}; "
                 f"predictions equal: {rep['exact']['predictions_equal']}")
    for r in rep["exact"]["stages"]:
        status = "equal" if r["equal"] else f"{r['mismatches']} values differ"
        lines.append(f"    {r['stage']:14s} vs {r['layer']:18s} {status}")
    if "float_seconds" in rep:
        lines.append(f"speed           10,000 test images, batch 1000: float32 NumPy (weights binarized once) "
                     f"{rep['float_seconds']:.3f} s, "
                     f"integer kernels {rep['integer_seconds']:.3f} s "
                     f"({rep['float_seconds'] / rep['integer_seconds']:.2f}x)")
    m = rep["memory"]
    lines.append(f"weight memory   {m['packed_bytes']:,} bytes packed vs {m['float32_bytes']:,} float32 "
                 f"(1/{1 / m['ratio']:.1f})")
    return "\n".join(lines)


def pipeline(cfg, out_dir=None, progress=True, resume=False, log=print):
    """Train, compile, check and report: the whole BNN job.

    Parameters
    ----------
    cfg : BNNConfig
    out_dir, progress, resume
        As :func:`bitsim.methods.bnn.train` takes them.
    log : callable
        Receives the epoch lines, the summary table and the report, line by line.

    Returns
    -------
    model, compiled, history, rep
        The float model, the :class:`IntegerModel`, the training history and :func:`report`'s dict.
    """
    model, history = train(cfg, out_dir=out_dir, progress=progress, resume=resume, log=log)
    _, _, test = mnist_splits(cfg)
    compiled, _ = compile_and_check(model, test[0][:10])
    log("")
    log(format_summary(summary_rows(compiled)))
    log("")
    rep = report(model, compiled, test)
    log(format_report(rep))
    return model, compiled, history, rep


def plot_history(history, path, paper_error=0.0096):
    """Write a PNG of train / validation / test error per epoch (needs matplotlib: the ``plot`` extra).

    Parameters
    ----------
    history : list of dict
        The epochs of :func:`bitsim.methods.bnn.train`.
    path : str or Path
    paper_error : float
        The paper's test error, drawn as a line.

    Returns
    -------
    Path or None
        The path written, or None without matplotlib.
    """
    def draw(ax):
        epochs = [h["epoch"] for h in history]
        for key, label in (("train_error", "train"), ("val_error", "validation"), ("test_error", "test")):
            if all(h.get(key) is not None for h in history):
                ax.plot(epochs, [100 * h[key] for h in history], label=label, marker="o", markersize=3)
        ax.axhline(100 * paper_error, color="grey", linestyle="--",
                   label=f"paper {100 * paper_error:.2f}% (1000 epochs)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("error (%)")
        ax.set_yscale("log")
        ax.set_title("BNN on MNIST (bitsim)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()

    return save_plot(path, draw, figsize=(6.4, 4))


# bitsim train bnn

def _add_train_arguments(parser):
    """The defaults are the 30-minute reproduction of docs/bnn.md."""
    d = BNNConfig()
    parser.add_argument("--dataset", choices=["mnist"], default="mnist")
    parser.add_argument("--hidden", type=positive_int, default=d.hidden,
                        help=f"units per hidden layer (default {d.hidden})")
    parser.add_argument("--layers", type=positive_int, default=d.layers, help=f"hidden layers (default {d.layers})")
    parser.add_argument("--epochs", type=positive_int, default=d.epochs)
    parser.add_argument("--batch-size", type=positive_int, default=d.batch_size)
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
    add_mnist_arguments(parser, d)
    parser.add_argument("--seed", type=int, default=d.seed)
    add_run_arguments(parser, "bitsim train bnn", "runs/bnn", "checkpoints, models, plot")


def _run_train(args):
    """Train, compile, check, save, report; ``--out`` follows the rule of :mod:`bitsim.outputs`."""
    cfg = BNNConfig(**config_options(args, BNNConfig))
    out = open_run(args, "bitsim train bnn", ("best", "checkpoint", "optimizer", "integer"),
                   ("history.json", "training.png", "report.json"))
    print(f"training {cfg}")
    model, compiled, history, rep = pipeline(cfg, out, progress=not args.no_progress, resume=args.resume)
    compiled.save(out / "integer")
    plot = plot_history(history, out / "training.png")
    print(training_time(history))
    print(f"saved           {out / 'best.json'} (float), {out / 'integer.json'} (integer)"
          + (f", {plot}" if plot else "; install the plot extra for training.png"))
    save_json(out / "report.json", {
        "config": asdict(cfg), "float_test_error": rep["float_test_error"],
        "integer_test_error": rep["integer_test_error"], "all_equal": rep["exact"]["all_equal"],
        "float_seconds": rep["float_seconds"], "integer_seconds": rep["integer_seconds"],
        "memory": rep["memory"], "training_seconds": sum(h["seconds"] for h in history), "epochs": len(history)})
    require_exact(rep)


TRAIN = Command(help="Binarized Neural Network MLP on MNIST: train, compile to packed integers, check, report",
                add_arguments=_add_train_arguments, run=_run_train)


# bitsim demo

def _add_demo_arguments(parser):
    parser.add_argument("--hidden", type=positive_int, default=256, help="hidden units per layer (default 256)")
    parser.add_argument("--epochs", type=positive_int, default=3, help="epochs (default 3)")
    parser.add_argument("--train-size", type=positive_int, default=20_000, help="training images (default 20000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _run_demo(args):
    """The BNN job on a small network, without saving anything."""
    cfg = BNNConfig(hidden=args.hidden, layers=2, epochs=args.epochs, train_size=args.train_size,
                    validation_size=5000, seed=args.seed, lr_end=3e-4, dropout_in=0.1, dropout_hidden=0.2,
                    translate=0)
    print(f"bitsim demo: train a binarized MLP (784-{cfg.hidden}-{cfg.hidden}-10) on {cfg.train_size:,} bundled "
          f"MNIST images for {cfg.epochs} epochs, compile it to packed integers, check it bit for bit, time it.")
    print("(the full reproduction is `bitsim train bnn`; see docs/bnn.md)")
    require_exact(pipeline(cfg, progress=not args.no_progress)[3])


DEMO = Command(help="run bitsim's main job on the bundled data",
               description="Train a small BNN on the bundled MNIST, compile it to packed integers, check that it "
                           "equals the float model bit for bit, and report accuracy, speed and memory (a few minutes).",
               add_arguments=_add_demo_arguments, run=_run_demo)


# bitsim eval, bitsim summary

def _is_bnn_config(config):
    return isinstance(config, dict) and "hidden" in config and set(config) <= {f.name for f in fields(BNNConfig)}


def load_any(path):
    """The integer model of a file ``bitsim train bnn`` wrote: ``integer.json``, or ``best.json`` compiled.

    Parameters
    ----------
    path : str or Path
        An integer model, or a float BNN (compiled and checked on 10 test images).

    Returns
    -------
    compiled, model
        The :class:`IntegerModel` and the float model (None when ``path`` is an integer model).

    Raises
    ------
    InputError
        ``path`` is neither.
    """
    _, meta = load_bundle(path)
    meta = meta if isinstance(meta, dict) else {}
    if "stages" in meta:
        return IntegerModel.load(path), None
    if not _is_bnn_config(meta.get("config")):
        raise InputError(f"{path} is neither an integer model nor a float BNN; give the integer.json or best.json "
                         "that `bitsim train bnn` writes")
    model, _ = load_float_model(path)
    _, _, test = mnist_splits(BNNConfig())
    return compile_and_check(model, test[0][:10])[0], model


def _add_eval_arguments(parser):
    parser.add_argument("model", help="a model .json (integer.json or best.json from bitsim train)")
    parser.add_argument("--batch-size", type=positive_int, default=1000, help="images per batch (default 1000)")


def _run_eval(args):
    """The integer model's test error; for a float BNN, the whole report too."""
    compiled, model = load_any(args.model)
    _, _, (xs, ys) = mnist_splits(BNNConfig())
    err = evaluate_compiled(compiled, xs, ys, args.batch_size)
    print(f"integer model   test error {100 * err:.2f}% on {len(xs):,} MNIST test images")
    if model is not None:
        print(format_report(report(model, compiled, (xs, ys), time_it=False)))


EVAL = Command(help="test error of a saved model on MNIST",
               description="Evaluate a saved model (integer or float BNN) on the MNIST test set.",
               add_arguments=_add_eval_arguments, run=_run_eval)


def _add_summary_arguments(parser):
    parser.add_argument("model", help="a model .json")


def _run_summary(args):
    """The table of :func:`format_summary`."""
    compiled, _ = load_any(args.model)
    print(format_summary(summary_rows(compiled)))


SUMMARY = Command(help="per-layer parameters, storage and popcounts of a saved model",
                  description="Per layer: parameters, stored bytes vs float32, MACs and the popcounts that replace "
                              "them.",
                  add_arguments=_add_summary_arguments, run=_run_summary)


__all__ = ["TRAIN", "DEMO", "EVAL", "SUMMARY", "pipeline", "compile_and_check", "report", "require_exact",
           "format_report", "format_summary", "evaluate_compiled", "plot_history", "load_any"]
