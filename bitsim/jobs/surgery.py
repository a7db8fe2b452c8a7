"""The Dynamic Network Surgery job: train, prune and retrain (:mod:`bitsim.methods.surgery`), export sparse
models (:mod:`bitsim.deploy.sparse`), check them against their oracles, report (``bitsim train surgery``,
:data:`TRAIN`)."""

import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..datasets import load_mnist
from ..deploy import sparse
from ..errors import CheckFailed
from ..methods.surgery import (LAYER_NAMES, PAPER, SurgeryConfig, compression, default_config, error, error_key,
                               evaluation_split, inputs, layer_rows, reference_error, train)
from ..nn.masked import masked_layers
from ..outputs import check_not_input
from .arguments import Command, add_run_arguments, config_options, nonnegative_int, positive_int
from .runs import open_run, save_json, save_plot


def plot_history(history, track, names, sizes, path, paper=None):
    """Write a PNG: density per layer (log scale) and test error over the iterations (needs matplotlib).

    Parameters
    ----------
    history, track
        What :func:`bitsim.methods.surgery.train` returns.
    names : list of str
        The prunable layers.
    sizes : list of int
        The parameters of each prunable layer; densities before the first row of ``track`` are 100%.
    path : str or Path
    paper : dict, optional
        The paper's numbers (:data:`bitsim.methods.surgery.PAPER`), drawn dotted.

    Returns
    -------
    Path or None
        The path written, or None without matplotlib.
    """
    def draw(axes):
        top, bottom = axes
        its = [h["iteration"] for h in history]
        first = int(track["iteration"][0]) if len(track["iteration"]) else its[-1]
        for j, (name, size) in enumerate(zip(names, sizes)):
            x = np.concatenate([[0, first], track["iteration"] + 1])
            y = np.concatenate([[1.0, 1.0], track["active"][:, j] / size])
            line, = top.step(x, 100 * y, where="post", label=name)
            if paper and name in paper.get("density", {}):
                top.axhline(100 * paper["density"][name], ls=":", lw=0.8, color=line.get_color())
        top.set_yscale("log")
        top.set_ylabel("density (%)")
        top.legend(fontsize=8, ncol=len(names))
        top.set_title("connections in use per layer (dotted: the paper's / released model's density)", fontsize=9)
        key = error_key(history)
        label = key.replace("_", " ").replace("val ", "validation ")
        errors = [100 * h[key] for h in history]
        bottom.plot(its, errors, marker=".", label=label)
        if paper:
            bottom.axhline(100 * paper["error"], ls=":", color="gray", label=f"paper {100 * paper['error']:.2f}%")
        bottom.set_ylim(0, max(3.0, min(10.0, 1.2 * max(errors[1:] or errors))))
        bottom.set_xlabel("iteration")
        bottom.set_ylabel(f"{label} (%)")
        bottom.legend(fontsize=8)
        for k in range(1, len(history)):
            if history[k]["stage"] != history[k - 1]["stage"]:
                for ax in (top, bottom):
                    ax.axvline(history[k - 1]["iteration"], color="k", lw=0.5, alpha=0.4)

    return save_plot(path, draw, dpi=110, nrows=2, ncols=1, figsize=(7, 6.4), sharex=True)


def format_layers(model, cfg):
    """Per-layer table: parameters, in use, density, and the paper's / released model's density.

    Parameters
    ----------
    model : bitsim.nn.Sequential
    cfg : SurgeryConfig

    Returns
    -------
    str
    """
    names = LAYER_NAMES[cfg.model]
    paper = PAPER[cfg.model]["density"]
    lines = [f"{'layer':6s} {'params':>9s} {'nonzero':>8s} {'density':>8s} {'paper':>7s} {'c':>5s}"]
    for row, c in zip(layer_rows(model, names), cfg.c):
        lines.append(f"{row['layer']:6s} {row['params']:9,d} {row['nonzero']:8,d} {100 * row['density']:7.2f}% "
                     f"{100 * paper[row['layer']]:6.2f}% {c:5g}")
    total, used, ratio = compression(model)
    lines.append(f"{'total':6s} {total:9,d} {used:8,d} {100 * used / total:7.2f}%  -> {ratio:.1f}x fewer parameters "
                 f"(paper {PAPER[cfg.model]['ratio']}x)")
    return "\n".join(lines)


# bitsim train surgery

def _floats(text):
    return tuple(float(v) for v in text.split(","))


def _ints(text):
    return tuple(int(v) for v in text.split(","))


def _add_train_arguments(parser):
    """Omitted options take the model's documented defaults."""
    parser.add_argument("--model", choices=sorted(LAYER_NAMES), default="lenet5")
    parser.add_argument("--dense-iters", type=nonnegative_int, help="reference training iterations (default per "
                                                                     "model)")
    parser.add_argument("--conv-iters", type=nonnegative_int, help="surgery iterations of the convolutional layers")
    parser.add_argument("--fc-iters", type=nonnegative_int, help="surgery iterations of the fully connected layers")
    parser.add_argument("--retrain-iters", type=nonnegative_int, help="iterations with every mask fixed")
    parser.add_argument("--c", type=_floats, help="threshold offset per prunable layer, comma separated")
    parser.add_argument("--iter-stop", type=_ints, help="last mask-update iteration per layer, comma separated")
    parser.add_argument("--gamma", type=float, help="mask-update probability (1 + gamma t)^-power (default 1e-4)")
    parser.add_argument("--power", type=float, help="(default 1)")
    parser.add_argument("--lr", type=float, help="base learning rate of the dense stage (default 0.01)")
    parser.add_argument("--surgery-lr", type=float, help="base learning rate of the surgery stages")
    parser.add_argument("--retrain-lr", type=float, help="base learning rate of the retraining stage (default 0.001)")
    parser.add_argument("--batch-size", type=positive_int)
    parser.add_argument("--translate", type=nonnegative_int, metavar="N",
                        help="shift every training image by a random whole number of pixels, up to N in each "
                             "direction, drawn anew each epoch (docs/formats.md section 5; default per model)")
    parser.add_argument("--train-size", type=positive_int, help="training images (default all 60000)")
    parser.add_argument("--test-size", type=positive_int,
                        help="test images evaluated during training (default 10000; the final report always uses "
                             "all 10000)")
    parser.add_argument("--validation-size", type=nonnegative_int,
                        help="hold out the last N training images and report their error during training instead "
                             "of the test error (for choosing c without the test set; default 0)")
    parser.add_argument("--eval-every", type=positive_int, help="iterations between test-error evaluations")
    parser.add_argument("--checkpoint-every", type=positive_int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--reference", help="start from this reference model (reference.json of an earlier run)")
    parser.add_argument("--formats", default="ternary,log8,fixed8",
                        help="quantized sparse exports to build and check (comma separated; 'none' for none)")
    parser.add_argument("--act-bits", type=positive_int, default=8,
                        help="activation bits of the integer models (default 8)")
    parser.add_argument("--check-images", type=positive_int,
                        help="test images checked against the Python-integer oracle (default 200 for lenet300, "
                             "30 for lenet5)")
    add_run_arguments(parser, "bitsim train surgery", None, "default runs/surgery-MODEL")


def _run_train(args):
    """Train, prune, retrain; export sparse models; check them (CheckFailed when an export differs from its
    oracle or from the float model); report. ``--out`` follows the rule of :mod:`bitsim.outputs`."""
    cfg = default_config(**config_options(args, SurgeryConfig))
    formats = [] if args.formats == "none" else [f.strip() for f in args.formats.split(",") if f.strip()]
    for f in formats:
        sparse.check_format(f)
    out = Path(args.out or f"runs/surgery-{cfg.model}")
    if args.overwrite and args.reference and out.is_dir():
        check_not_input(out, [Path(args.reference).with_suffix(suffix) for suffix in (".json", ".npz")])
    out = open_run(args, "bitsim train surgery",
                   ("checkpoint", "optimizer", "track", "reference", "final", "sparse", "sparse-*"),
                   ("history.json", "surgery.png", "report.json"), out)
    print(f"training {cfg}")
    started = time.perf_counter()
    data = load_mnist()
    model, history, track = train(cfg, out_dir=out, data=data, progress=not args.no_progress, resume=args.resume,
                                  reference=args.reference)
    seconds = time.perf_counter() - started
    if cfg.validation_size:  # choosing settings: the test set stays unseen
        key, what = "val_error", f"validation error (last {cfg.validation_size:,} training images)"
        xs, ys = evaluation_split(cfg, data)[1]
    else:
        key, what = "test_error", "test error"
        xs, ys = data["x_test"], data["y_test"]
    test_error = error(model, cfg.model, xs, ys)
    names = LAYER_NAMES[cfg.model]
    print()
    print(format_layers(model, cfg))
    print(f"{what:15s} {100 * test_error:.2f}% (paper's test error {100 * PAPER[cfg.model]['error']:.2f}%; "
          f"reference before surgery: {reference_error(history)})")

    shape = (784,) if cfg.model == "lenet300" else (28, 28, 1)
    exported = sparse.from_model(model, shape)
    exported.save(out / "sparse")
    loaded = sparse.load(out / "sparse")
    rebuilt = loaded.to_model()
    same = all(np.array_equal(a.weight(), b.weight()) and np.array_equal(a.bias(), b.bias())
               for a, b in zip(masked_layers(model), masked_layers(rebuilt)))
    probe = inputs(cfg.model, xs[:1000])
    same_out = np.array_equal(model.forward(probe, training=False), rebuilt.forward(probe, training=False))
    print(f"sparse export   {out / 'sparse.json'}: round trip exact: {same and same_out}")
    rows = [{"format": "float32", **exported.storage(), key: test_error, "exact": same and same_out}]
    calib = data["x_train"][:2000]
    n_check = args.check_images or (200 if cfg.model == "lenet300" else 30)
    for f in formats:
        q = sparse.quantize(exported, f, calib, act_bits=args.act_bits)
        q.save(out / f"sparse-{f}")
        q = sparse.load(out / f"sparse-{f}")
        err = float(np.mean(q.predict(xs) != ys))
        check = sparse.check_oracle(q, xs[:n_check])
        check_all = sparse.check_float(q, xs)
        rows.append({"format": f, **q.storage(), key: err, "exact": check["equal"] and check_all["equal"],
                     "checked": n_check, "float_checked": len(xs), "kernel": q.kernel_name()})
    print(sparse.format_storage(rows))
    for r in rows[1:]:
        print(f"kernel          {r['format']}: {r['kernel']}")
    plot = plot_history(history, track, names, [m.size() for m in masked_layers(model)], out / "surgery.png",
                        PAPER[cfg.model])
    total, used, ratio = compression(model)
    report = {"config": asdict(cfg), key: test_error, "params": total, "nonzero": used,
              "ratio": ratio if math.isfinite(ratio) else None,
              "layers": layer_rows(model, names), "exports": rows, "seconds": seconds,
              "reference_error": reference_error(history, raw=True), "paper": PAPER[cfg.model]}
    save_json(out / "report.json", report)
    print(f"wall time       {seconds / 60:.1f} min (this command)")
    print(f"saved           {out / 'final.json'}, {out / 'sparse.json'}, {out / 'report.json'}"
          + (f", {plot}" if plot else "; install the plot extra for surgery.png"))
    if not all(r["exact"] for r in rows):
        raise CheckFailed("an export did not match: see the table above")


TRAIN = Command(help="Dynamic Network Surgery (pruning and splicing) of LeNet-300-100 or LeNet-5 on MNIST, sparse "
                     "export",
                add_arguments=_add_train_arguments, run=_run_train)


__all__ = ["TRAIN", "plot_history", "format_layers"]
