"""The ``bitsim`` command: a thin layer over the library."""

import argparse
import importlib
import sys

from . import __version__

# `bitsim train NAME`: each module defines CLI_HELP, add_train_arguments(parser) and train_cli(args)
TRAIN_METHODS = {
    "bnn": "bitsim.deploy.bnn",
    "connect": "bitsim.methods.connect",
    "gru": "bitsim.methods.loggru",
    "surgery": "bitsim.deploy.surgery",
}


def _explain(args):
    from .explain import explain

    options = {}
    for name in ("rounding", "overflow", "underflow"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    print(explain(args.format, args.value, **options))


def _tour(args):
    from .tour import tour

    tour(print)


def _demo(args):
    from .deploy import bnn

    cfg = bnn.BNNConfig(hidden=args.hidden, layers=2, epochs=args.epochs, train_size=args.train_size,
                        validation_size=5000, seed=args.seed, lr_end=3e-4, dropout_in=0.1, dropout_hidden=0.2,
                        translate=0)
    print(f"bitsim demo: train a binarized MLP (784-{cfg.hidden}-{cfg.hidden}-10) on {cfg.train_size:,} bundled "
          f"MNIST images for {cfg.epochs} epochs, compile it to packed integers, check it bit for bit, time it.")
    print("(the full reproduction is `bitsim train bnn`; see README.md)")
    rep = bnn.pipeline(cfg, progress=not args.no_progress)[3]
    if not rep["exact"]["all_equal"]:
        raise ArithmeticError("the integer model differs from the float model; see the rows above")


def _load_any(path):
    from .deploy import IntegerModel
    from .io import load_bundle

    arrays, meta = load_bundle(path)
    if "stages" in meta:
        return IntegerModel.load(path), None
    from .deploy.bnn import compile_and_check
    from .methods import bnn

    model, _ = bnn.load_float_model(path)
    _, _, test = bnn.mnist_splits(bnn.BNNConfig.from_dict(meta["config"]))
    return compile_and_check(model, test[0][:10])[0], model


def _eval(args):
    from .deploy import bnn

    compiled, model = _load_any(args.model)
    _, _, (xs, ys) = bnn.mnist_splits(bnn.BNNConfig())
    err = bnn.evaluate_compiled(compiled, xs, ys, args.batch_size)
    print(f"integer model   test error {100 * err:.2f}% on {len(xs):,} MNIST test images")
    if model is not None:
        print(bnn.format_report(bnn.report(model, compiled, (xs, ys), time_it=False)))


def _summary(args):
    from .deploy import bnn

    compiled, _ = _load_any(args.model)
    print(bnn.format_summary(bnn.summary_rows(compiled)))


def _read_inputs(spec, rows):
    """Inputs for export: 'mnist:test' / 'mnist:train' (bundled), or a .npy / .npz file of uint8 arrays."""
    import numpy as np

    if spec.startswith("mnist:"):
        from .datasets import load_mnist

        split = spec.split(":", 1)[1]
        if split not in ("test", "train"):
            raise ValueError(f"unknown MNIST split {split!r}; use mnist:test or mnist:train")
        return load_mnist()[f"x_{split}"][:rows]
    if spec.endswith(".npy"):
        x = np.load(spec, allow_pickle=False)
    elif spec.endswith(".npz"):
        with np.load(spec, allow_pickle=False) as npz:
            if len(npz.files) != 1:
                raise ValueError(f"{spec} holds {npz.files}; give a .npz with exactly one array")
            x = npz[npz.files[0]]
    else:
        raise ValueError(f"cannot read inputs from {spec!r}; give mnist:test, a .npy or a .npz file")
    return x[:rows]


def _export(args):
    from .deploy import IntegerModel
    from .golden import export

    compiled = IntegerModel.load(args.model)
    x = _read_inputs(args.inputs, args.rows)
    manifest = export(compiled, x, args.out, formats=args.formats.split(","), overwrite=args.overwrite,
                      options={"model": str(args.model), "inputs": args.inputs, "rows": int(len(x))})
    print(f"wrote {len(manifest['tensors'])} tensors for {manifest['examples']} inputs to {args.out} "
          f"({', '.join(manifest['formats'])}; manifest.json lists shapes, packing and SHA-256)")


def _compare(args):
    from .golden import compare, format_report, passed

    verdicts = compare(args.golden, args.dut, args.tensors or None)
    print(format_report(verdicts))
    return 0 if passed(verdicts) else 1


def build_parser():
    parser = argparse.ArgumentParser(
        prog="bitsim",
        description="Bit-exact simulator for low-precision neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"bitsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo", help="run bitsim's main job on the bundled data",
        description="Train a small BNN on the bundled MNIST, compile it to packed integers, check that it equals "
                    "the float model bit for bit, and report accuracy, speed and memory (a few minutes).")
    demo.add_argument("--version", action="version", version=f"bitsim {__version__}")
    demo.add_argument("--hidden", type=int, default=256, help="hidden units per layer (default 256)")
    demo.add_argument("--epochs", type=int, default=3, help="epochs (default 3)")
    demo.add_argument("--train-size", type=int, default=20_000, help="training images (default 20000)")
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(func=_demo)

    tour = sub.add_parser("tour", help="print a tour of the number formats with their bits",
                          description="Print a tour of bitsim's number formats, with the bits showing.")
    tour.add_argument("--version", action="version", version=f"bitsim {__version__}")
    tour.set_defaults(func=_tour)

    train = sub.add_parser("train", help="train one of the published methods",
                           description="Train one of the published methods on the bundled data.")
    train.add_argument("--version", action="version", version=f"bitsim {__version__}")
    methods = train.add_subparsers(dest="method", metavar="METHOD", required=True)
    for name, module in TRAIN_METHODS.items():
        method = importlib.import_module(module)
        t = methods.add_parser(name, help=method.CLI_HELP, description=method.CLI_HELP)
        t.add_argument("--version", action="version", version=f"bitsim {__version__}")
        method.add_train_arguments(t)
        t.set_defaults(func=method.train_cli)

    from .methods import loggru

    gru = sub.add_parser("gru", help="the log-quantized GRU: Table 1 beside the paper's",
                         description="Convert a trained character-level GRU to Log8 / Fix16 / Fix8 and report.")
    gru.add_argument("--version", action="version", version=f"bitsim {__version__}")
    loggru.add_gru_arguments(gru)

    ev = sub.add_parser("eval", help="test error of a saved model on MNIST",
                        description="Evaluate a saved model (integer or float BNN) on the MNIST test set.")
    ev.add_argument("--version", action="version", version=f"bitsim {__version__}")
    ev.add_argument("model", help="a model .json (integer.json or best.json from bitsim train)")
    ev.add_argument("--batch-size", type=int, default=1000)
    ev.set_defaults(func=_eval)

    sm = sub.add_parser("summary", help="per-layer parameters, storage and popcounts of a saved model",
                        description="Per layer: parameters, stored bytes vs float32, MACs and the popcounts "
                                    "that replace them.")
    sm.add_argument("--version", action="version", version=f"bitsim {__version__}")
    sm.add_argument("model", help="a model .json")
    sm.set_defaults(func=_summary)

    explain = sub.add_parser(
        "explain", help="show how one value is encoded in a format, bit by bit",
        description="Show the worked example: float32 fields, code bits, decoded value, error, and the deciding rule.",
        epilog="examples: bitsim explain log8 0.3 | bitsim explain Q3.4 3.14159 --rounding floor | "
               "bitsim explain binary -0.0",
    )
    explain.add_argument("--version", action="version", version=f"bitsim {__version__}")
    explain.add_argument("format", help="binary, ternary, float32, logN (log8, log4, ...), Q3.4, fix16:8")
    explain.add_argument("value", type=float, help="the real value to encode")
    explain.add_argument("--rounding", help="rounding mode (log: linear, log, truncate, stochastic; "
                                            "fixed: floor, ceil, toward_zero, nearest_up, nearest_even, "
                                            "nearest_away, stochastic)")
    explain.add_argument("--overflow", help="saturate, wrap (fixed only) or error")
    explain.add_argument("--underflow", help="log codes: flush, saturate or error")
    explain.set_defaults(func=_explain)
    ex = sub.add_parser("export", help="write golden vectors of a deployed model for a testbench",
                        description="Write every tensor of a deployed model on a batch of inputs: $readmemh text, "
                                    "raw little-endian binary and .npz, with a manifest (docs/formats.md, section 8).")
    ex.add_argument("--version", action="version", version=f"bitsim {__version__}")
    ex.add_argument("model", help="an integer model .json (from bitsim train)")
    ex.add_argument("--inputs", default="mnist:test", help="mnist:test (default), mnist:train, or a .npy/.npz of uint8")
    ex.add_argument("--rows", type=int, default=16, help="number of inputs (default 16)")
    ex.add_argument("--out", required=True, help="output directory (written atomically)")
    ex.add_argument("--formats", default="memh,bin,npz", help="comma-separated: memh, bin, npz (default all)")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    ex.set_defaults(func=_export)

    cmp_ = sub.add_parser("compare", help="compare a design's dump with golden vectors",
                          description="Compare the files a design under test wrote with bitsim's golden vectors; "
                                      "exit 0 only if every selected tensor matches.")
    cmp_.add_argument("--version", action="version", version=f"bitsim {__version__}")
    cmp_.add_argument("golden", help="a directory written by bitsim export")
    cmp_.add_argument("dut", help="the directory of the design's dump (files named like the golden ones)")
    cmp_.add_argument("--tensors", nargs="+", help="tensor names or shell patterns to compare (default all)")
    cmp_.set_defaults(func=_compare)
    return parser


def main(argv=None):
    """Entry point of the ``bitsim`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .golden import GoldenError

    try:
        status = args.func(args)
    except (ValueError, TypeError, OverflowError, ArithmeticError, OSError, GoldenError) as err:
        print(f"bitsim {args.command}: error: {err}", file=sys.stderr)
        return 2 if args.command == "compare" else 1
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
