"""The BinaryConnect / TernaryConnect job (:mod:`bitsim.methods.connect`): ``bitsim train connect`` trains,
checks QBP, counts multiplications, saves and reports; ``--plot`` draws earlier runs; ``--mults`` prints
the multiplication table (:data:`TRAIN`)."""

import os
from dataclasses import asdict
from pathlib import Path

from ..io import read_manifest
from ..methods.connect import (INFERENCE, OPTIMIZERS, PAPER_ERROR, WEIGHTS, ConnectConfig, error, kept_epoch,
                               mnist_splits, multiplication_rows, mults_summary, qbp_check, train)
from ..nn.mults import Mults
from .arguments import (Command, add_mnist_arguments, add_run_arguments, add_translate_argument, config_options,
                        positive_int)
from .runs import open_run, save_json, save_plot, training_time

PLOT_NAME = "connect_mnist.png"  # --plot writes OUT/connect_mnist.png when --out is not given


def format_mults(rows, title):
    """A table of :func:`~bitsim.methods.connect.multiplication_rows`: this network against the float one.

    Parameters
    ----------
    rows : list of dict
    title : str
        The first line.

    Returns
    -------
    str
    """
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


def plot_runs(run_dirs, path):
    """Test error against epochs for several runs (their checkpoints' history), beside the paper's numbers.

    Parameters
    ----------
    run_dirs : list of str or Path
        Directories of ``bitsim train connect`` runs.
    path : str or Path
        The PNG to write.

    Returns
    -------
    Path or None
        The path written, or None without matplotlib (the ``plot`` extra).
    """
    def draw(ax):
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

    return save_plot(path, draw, figsize=(6.4, 4))


# bitsim train connect

def _add_train_arguments(parser):
    d = ConnectConfig()
    parser.add_argument("--dataset", choices=["mnist"], default="mnist")
    parser.add_argument("--weights", choices=WEIGHTS, default=d.weights,
                        help="binary / ternary Connect layers, or the float baseline (default binary)")
    parser.add_argument("--qbp", action="store_true", help="quantized back-propagation (integer shifts)")
    parser.add_argument("--deterministic", action="store_true", help="deterministic weights instead of sampled")
    parser.add_argument("--hidden", type=positive_int, default=d.hidden,
                        help=f"units per hidden layer (default {d.hidden})")
    parser.add_argument("--layers", type=positive_int, default=d.layers, help=f"hidden layers (default {d.layers})")
    parser.add_argument("--epochs", type=positive_int, default=d.epochs, help=f"default {d.epochs}")
    parser.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=d.optimizer)
    parser.add_argument("--lr-start", type=float, default=d.lr_start)
    parser.add_argument("--lr-end", type=float, default=d.lr_end)
    parser.add_argument("--exp-bits", type=positive_int, default=d.exp_bits,
                        help=f"exponent bits of the log codes of x (default {d.exp_bits})")
    parser.add_argument("--exp-offset", type=int, default=d.exp_offset,
                        help=f"exponent window offset (default {d.exp_offset}: 2^-4..2^2 with 3 bits)")
    parser.add_argument("--underflow", choices=["stochastic", "flush", "saturate"], default=d.underflow)
    parser.add_argument("--err-bits", type=positive_int, default=d.err_bits,
                        help="bits of the fixed-point error term")
    parser.add_argument("--err-rounding", choices=["nearest_even", "stochastic"], default=d.err_rounding)
    parser.add_argument("--act-bits", type=positive_int, default=d.act_bits,
                        help="bits of the fixed-point activations")
    parser.add_argument("--rng", choices=["philox", "xorshift32"], default=d.rng,
                        help="generator of every random decision (xorshift32: hardware friendly)")
    parser.add_argument("--inference", choices=INFERENCE, default=d.inference,
                        help="weights for validation and the reported test error (the other is reported too)")
    add_translate_argument(parser, d)
    add_mnist_arguments(parser, d)
    parser.add_argument("--seed", type=int, default=d.seed)
    add_run_arguments(parser, "bitsim train connect", None, "default runs/connect-WEIGHTS")
    parser.add_argument("--plot", nargs="+", metavar="RUN_DIR",
                        help=f"do not train: plot the test error of these runs into OUT (default "
                             f"runs/connect-WEIGHTS/{PLOT_NAME})")
    parser.add_argument("--mults", action="store_true",
                        help="do not train: print the real multiplications per training step, layer by layer")


def _run_train(args):
    """Train, check QBP, count multiplications, save, report; ``--out`` follows the rule of
    :mod:`bitsim.outputs`. With ``--plot`` or ``--mults`` nothing is trained."""
    if args.plot:
        path = plot_runs(args.plot, args.out or Path(f"runs/connect-{args.weights}") / PLOT_NAME)
        print(f"wrote {path}" if path else "matplotlib is missing: pip install 'bitsim[plot]'")
        return
    # numba's OpenMP workers sleep between parallel regions instead of spinning: the step alternates
    # many short regions with serial work, and spinning workers starve it on a shared machine
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cfg = ConnectConfig(**config_options(args, ConnectConfig), stochastic=not args.deterministic)
    if args.mults:
        print(format_mults(multiplication_rows(cfg), f"{cfg.name}: real multiplications per training step "
                                                     f"(batch {cfg.batch_size}, {cfg.optimizer}):"))
        return
    out = open_run(args, "bitsim train connect", ("best", "checkpoint", "optimizer"),
                   ("history.json", "report.json", PLOT_NAME), args.out or f"runs/connect-{cfg.weights}")
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
    rep["training_seconds"] = sum(h["seconds"] for h in history)
    rep["eval_seconds"] = sum(h["eval_seconds"] for h in history)
    rep["epochs"] = len(history)
    lines.append(f"{training_time(history)} + {rep['eval_seconds'] / 60:.1f} min of evaluation")
    print("\n".join(lines))
    print(format_mults(rows, f"real multiplications per training step (batch {cfg.batch_size}):"))
    save_json(out / "report.json", rep)
    print(f"saved           {out / 'best.json'}, {out / 'history.json'}, {out / 'report.json'}")


TRAIN = Command(help="BinaryConnect / TernaryConnect with quantized back-propagation (integer shifts and sign-adds) "
                     "on MNIST",
                add_arguments=_add_train_arguments, run=_run_train)


__all__ = ["TRAIN", "format_mults", "plot_runs", "PLOT_NAME"]
