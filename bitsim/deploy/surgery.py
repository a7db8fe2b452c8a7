"""The whole Dynamic Network Surgery job: train, prune and retrain (:mod:`bitsim.methods.surgery`), export
sparse models, check them against their oracles, report (``bitsim train surgery``)."""

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..datasets import load_mnist
from ..io import atomic_write_bytes
from ..methods.surgery import (CLI_HELP, LAYER_NAMES, PAPER, add_train_arguments, compression, default_config, error,
                               evaluation_split, format_layers, inputs, layer_rows, plot_history, reference_error,
                               train)
from ..nn.surgery import masked_layers
from . import sparse
from ..errors import CheckFailed

CLI_FIELDS = {"dense_iters", "conv_iters", "fc_iters", "retrain_iters", "c", "iter_stop", "gamma", "power", "lr",
              "surgery_lr", "retrain_lr", "batch_size", "translate", "train_size", "test_size", "validation_size",
              "eval_every", "checkpoint_every", "seed"}


def train_cli(args):
    """``bitsim train surgery``: train, prune, retrain; export sparse models; check them; report.

    ``--out`` follows the rule of :mod:`bitsim.outputs`: a non-empty directory needs ``--resume`` or ``--overwrite``.
    """
    from ..outputs import check_not_input, prepare_run_dir

    changes = {k: getattr(args, k) for k in CLI_FIELDS if getattr(args, k, None) is not None}
    cfg = default_config(args.model, **changes)
    formats = [] if args.formats == "none" else [f.strip() for f in args.formats.split(",") if f.strip()]
    for f in formats:
        sparse.check_format(f)
    out = Path(args.out or f"runs/surgery-{cfg.model}")
    if args.overwrite and args.reference and out.is_dir():
        check_not_input(out, [Path(args.reference).with_suffix(suffix) for suffix in (".json", ".npz")])
    bundles = ("checkpoint", "optimizer", "track", "reference", "final", "sparse", "sparse-*")
    owned = [f"{name}.{ext}" for name in bundles for ext in ("json", "npz")]
    out = prepare_run_dir(out, "bitsim train surgery", owned + ["history.json", "surgery.png", "report.json"],
                          resume=args.resume, overwrite=args.overwrite)
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
    atomic_write_bytes(out / "report.json", (json.dumps(report, indent=1) + "\n").encode())
    print(f"wall time       {seconds / 60:.1f} min (this command)")
    print(f"saved           {out / 'final.json'}, {out / 'sparse.json'}, {out / 'report.json'}"
          + (f", {plot}" if plot else "; install the plot extra for surgery.png"))
    if not all(r["exact"] for r in rows):
        raise CheckFailed("an export did not match: see the table above")


__all__ = ["train_cli", "add_train_arguments", "CLI_HELP"]
