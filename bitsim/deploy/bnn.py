"""The whole BNN job: train (:mod:`bitsim.methods.bnn`), compile to packed integers, check, report.

``bitsim train bnn`` and ``bitsim demo`` run :func:`pipeline`; ``bitsim eval`` and ``bitsim summary`` use
:func:`report` and :func:`summary_rows` on saved models.
"""

import json
from dataclasses import asdict

import numpy as np

from ..errors import CheckFailed
from ..io import atomic_write_bytes
from ..methods.bnn import (CLI_HELP, BNNConfig, add_train_arguments, error, float_forward, mnist_splits,
                           plot_history, time_forward, train)
from .binary import check_exact, compile_model


def compile_and_check(model, x_check):
    """Compile ``model`` for 28x28 uint8 images and check it against the float model on ``x_check``."""
    compiled = compile_model(model, (28, 28))
    return compiled, check_exact(model, compiled, x_check)


def summary_rows(compiled):
    """Per stage with weights: parameters, stored bytes against float32, MACs and what replaces them.

    Counts are per input example. An XNOR layer does one popcount of a 64-bit word per 64 MACs.
    The 8-bit first layer either adds or subtracts each pixel (``gemm='u8'``: a ±1 weight makes
    every MAC an integer addition) or does ``bits`` popcounts per word (``gemm='bitplane'``).
    Thresholds are one int32 and one flip bit per channel.
    """
    rows = []
    for stage in compiled.stages:
        if hasattr(stage, "w"):
            n, outputs, words = _reduction(stage), int(stage.w.shape[0]), int(stage.w.shape[-1])
            where = " per position" if stage.w.ndim == 4 or hasattr(stage, "kernel") else ""
            adds = n * outputs if getattr(stage, "gemm", None) == "u8" and stage.bits == 8 else 0
            popcounts = 0 if adds else outputs * words * getattr(stage, "bits", 1)
            rows.append({"layer": f"{type(stage).__name__} {n}->{outputs}{where}", "params": n * outputs,
                         "bytes": int(stage.w.nbytes), "float32_bytes": 4 * n * outputs,
                         "macs": n * outputs, "popcounts": popcounts, "adds": adds})
        elif type(stage).__name__ == "Threshold":
            c = int(stage.thresholds.size)
            rows.append({"layer": f"Threshold {c} channels", "params": c, "bytes": 4 * c + -(-c // 8),
                         "float32_bytes": 16 * c, "macs": 0, "popcounts": 0, "adds": 0})
    return rows


def _reduction(stage):
    if hasattr(stage, "n"):
        return stage.n
    return int(np.prod(stage.w.shape[1:-1])) * stage.c


def format_summary(rows):
    """The rows of :func:`summary_rows` as a table with a total line."""
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


def weight_memory(compiled):
    """Packed weight bytes and the float32 bytes of the same weights, and their ratio."""
    rows = [r for r in summary_rows(compiled) if not r["layer"].startswith("Threshold")]
    packed, full = sum(r["bytes"] for r in rows), sum(r["float32_bytes"] for r in rows)
    return {"packed_bytes": packed, "float32_bytes": full, "ratio": packed / full}


def report(model, compiled, test, time_it=True):
    """Accuracy of the float and integer models, the exactness check, speed and memory, as a dict."""
    xs, ys = test
    exact = check_exact(model, compiled, xs)
    out = {"float_test_error": error(model, xs, ys), "integer_test_error": evaluate_compiled(compiled, xs, ys),
           "exact": exact, "memory": weight_memory(compiled)}
    if time_it:
        out["float_seconds"] = time_forward(float_forward(model), xs)
        out["integer_seconds"] = time_forward(compiled.forward, xs)
    return out


def format_report(rep):
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


def evaluate_compiled(compiled, x, y, batch_size=1000):
    """Error of a compiled model on uint8 images ``x`` with labels ``y``."""
    return float(np.mean(compiled.predict(x, batch_size) != y))


def pipeline(cfg, out_dir=None, progress=True, resume=False, log=print):
    """Train, compile, check and report: the whole BNN job.

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


def train_cli(args):
    """``bitsim train bnn``: train, compile, check, save, report.

    ``--out`` follows the rule of :mod:`bitsim.outputs`: a non-empty directory needs ``--resume`` or ``--overwrite``.
    """
    from ..outputs import prepare_run_dir

    cfg = BNNConfig(hidden=args.hidden, layers=args.layers, epochs=args.epochs, batch_size=args.batch_size,
                    lr_start=args.lr_start, lr_end=args.lr_end, optimizer=args.optimizer, shift_bn=args.shift_bn,
                    dropout_in=args.dropout_in, dropout_hidden=args.dropout_hidden, lr_scale=args.lr_scale,
                    translate=args.translate, bn_stats=args.bn_stats, calibration_size=args.calibration_size,
                    train_size=args.train_size, validation_size=args.validation_size, seed=args.seed)
    owned = [f"{name}.{ext}" for name in ("best", "checkpoint", "optimizer", "integer") for ext in ("json", "npz")]
    out = prepare_run_dir(args.out, "bitsim train bnn", owned + ["history.json", "training.png", "report.json"],
                          resume=args.resume, overwrite=args.overwrite)
    print(f"training {cfg}")
    model, compiled, history, rep = pipeline(cfg, out, progress=not args.no_progress, resume=args.resume)
    compiled.save(out / "integer")
    plot = plot_history(history, out / "training.png")
    total = sum(h["seconds"] for h in history)
    print(f"training time   {total / 60:.1f} min over {len(history)} epochs ({total / len(history):.1f} s/epoch)")
    print(f"saved           {out / 'best.json'} (float), {out / 'integer.json'} (integer)"
          + (f", {plot}" if plot else "; install the plot extra for training.png"))
    atomic_write_bytes(out / "report.json", (json.dumps({
        "config": asdict(cfg), "float_test_error": rep["float_test_error"],
        "integer_test_error": rep["integer_test_error"], "all_equal": rep["exact"]["all_equal"],
        "float_seconds": rep["float_seconds"], "integer_seconds": rep["integer_seconds"],
        "memory": rep["memory"], "training_seconds": total, "epochs": len(history)}, indent=1) + "\n").encode())
    if not rep["exact"]["all_equal"]:
        raise CheckFailed("the integer model differs from the float model; see the rows above")


__all__ = ["pipeline", "compile_and_check", "summary_rows", "format_summary", "weight_memory", "report", "format_report",
           "evaluate_compiled", "train_cli", "add_train_arguments", "CLI_HELP"]
