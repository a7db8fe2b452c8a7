"""The ``bitsim`` command: a thin layer over the library.

:func:`main` returns the exit status (:data:`bitsim.errors.EXIT_STATUSES`): 0 success, 1 a difference
(``compare``'s mismatch, a failed bit-exactness check), 2 bad input (a bitsim error, a file-system
error, a usage error), 3 an internal error, 130 interrupted, 141 broken pipe.
"""

import argparse
import importlib
import math
import os
import sys
import textwrap
import traceback
import zipfile
from pathlib import Path

import numpy as np

from . import __version__
from .errors import (EXIT_STATUSES, BitsimError, CheckFailed, DamagedFileError, InputError, InputTypeError,
                     MissingFileError)

# `bitsim train NAME`: each module defines CLI_HELP, add_train_arguments(parser) and train_cli(args)
TRAIN_METHODS = {
    "bnn": "bitsim.deploy.bnn",
    "connect": "bitsim.methods.connect",
    "gru": "bitsim.methods.loggru",
    "surgery": "bitsim.deploy.surgery",
}
DEBUG_VARIABLE = "BITSIM_DEBUG"
EXPORT_ROWS = 16


def positive_int(text):
    """The argparse type of counts that must be at least 1 (``--epochs``, ``--rows``, ``--batch-size``).

    Parameters
    ----------
    text : str

    Returns
    -------
    int

    Raises
    ------
    argparse.ArgumentTypeError
        ``text`` is not a whole number >= 1; argparse turns it into a usage error (exit status 2).
    """
    return _int_at_least(text, 1, "a positive integer")


def nonnegative_int(text):
    """The argparse type of counts where 0 means something (``--translate``, ``--validation-size``); see
    :func:`positive_int`."""
    return _int_at_least(text, 0, "an integer >= 0")


def _int_at_least(text, low, what):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose options (and its subcommands' options) may say ``type="positive_int"`` or
    ``type="nonnegative_int"``, so the trainers' options are checked like the command's own."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("type", "positive_int", positive_int)
        self.register("type", "nonnegative_int", nonnegative_int)


def _explain(args):
    from .explain import explain

    options = {}
    for name in ("rounding", "overflow", "underflow", "nonfinite"):
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
        raise CheckFailed("the integer model differs from the float model; see the rows above")


def _is_bnn_config(config):
    from dataclasses import fields

    from .methods.bnn import BNNConfig

    return isinstance(config, dict) and "hidden" in config and set(config) <= {f.name for f in fields(BNNConfig)}


def _load_any(path):
    """``(IntegerModel, float model or None)`` from an integer model or a float BNN of ``bitsim train bnn``."""
    from .deploy import IntegerModel
    from .io import load_bundle

    _, meta = load_bundle(path)
    meta = meta if isinstance(meta, dict) else {}
    if "stages" in meta:
        return IntegerModel.load(path), None
    if not _is_bnn_config(meta.get("config")):
        raise InputError(f"{path} is neither an integer model nor a float BNN; give the integer.json or best.json "
                         "that `bitsim train bnn` writes")
    from .deploy.bnn import compile_and_check
    from .methods import bnn

    model, _ = bnn.load_float_model(path)
    _, _, test = bnn.mnist_splits(bnn.BNNConfig())
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


def read_inputs(spec):
    """The inputs of ``bitsim export``: bundled MNIST images, or the uint8 array of a .npy or .npz file.

    Files are checked before they are used and never unpickled: whatever a file holds, the result is
    the array or a bitsim error naming the file.

    Parameters
    ----------
    spec : str or Path
        ``'mnist:test'`` or ``'mnist:train'`` (the bundled images), the path of a ``.npy`` file, or of
        a ``.npz`` file holding exactly one array. The array must be uint8 with one example per row
        and at least one row.

    Returns
    -------
    numpy.ndarray of uint8

    Raises
    ------
    InputError
        An unknown spec, an unreadable path, a 0-d or empty array, a .npz without exactly one array.
    InputTypeError
        An array that is not uint8.
    MissingFileError
        The file does not exist.
    DamagedFileError
        The file is not the .npy or .npz its name says, or is truncated or damaged.
    """
    spec = str(spec)
    if spec.startswith("mnist:"):
        from .datasets import load_mnist

        split = spec.split(":", 1)[1]
        if split not in ("test", "train"):
            raise InputError(f"unknown MNIST split {split!r}; use mnist:test or mnist:train")
        return load_mnist()[f"x_{split}"]
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise InputError(f"cannot read inputs from {spec!r}; give mnist:test, mnist:train, a .npy or a .npz file")
    try:
        with open(path, "rb") as f:
            x = _read_npy(f, os.fstat(f.fileno()).st_size, path) if suffix == ".npy" else _read_npz(f, path)
    except BitsimError:
        raise
    except FileNotFoundError:
        raise MissingFileError(f"no input file {path}; give mnist:test, mnist:train or an existing .npy or "
                               ".npz file") from None
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    except Exception as err:  # whatever numpy or zipfile make of a damaged file
        raise DamagedFileError(path, f"cannot be read as a {suffix} file ({_one_line(err)}); save the inputs "
                                     f"again with numpy.{'save' if suffix == '.npy' else 'savez'}") from None
    if x.ndim == 0:
        raise InputError(f"{path} holds a single value (a 0-d array); give an array with one example per row")
    if x.size == 0:
        raise InputError(f"{path} holds an empty array of shape {x.shape}; give at least one example")
    return x


def _read_npy(stream, size, where):
    """The uint8 array of the .npy data in ``stream`` (``size`` bytes), checked against its header first."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
    except ValueError:
        raise DamagedFileError(where, "is not a .npy file (it does not start with the .npy magic bytes); "
                                      "save the inputs with numpy.save") from None
    read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
    if read_header is None:
        raise DamagedFileError(where, f"is a .npy file of version {version}; save the inputs with numpy.save, "
                                      "which writes version 1.0 for uint8 arrays")
    shape, _, dtype = read_header(stream)
    if dtype != np.uint8:
        raise InputTypeError(f"{where} holds an array of dtype {dtype}; export needs uint8 inputs (0..255, as the "
                             "model reads them), e.g. numpy.save(path, x.astype(numpy.uint8))")
    need, have = math.prod(shape), size - stream.tell()
    if need != have:
        raise DamagedFileError(where, f"its header declares a uint8 array of shape {shape} ({need:,} bytes) but "
                                      f"{have:,} bytes of data follow: the file is truncated or damaged")
    stream.seek(0)
    return fmt.read_array(stream, allow_pickle=False)


def _read_npz(stream, path):
    """The one uint8 array of the .npz archive in ``stream``."""
    if stream.read(6) == b"\x93NUMPY":
        raise DamagedFileError(path, "is a .npy file, not a .npz archive; rename it to .npy")
    stream.seek(0)
    try:
        archive = zipfile.ZipFile(stream)
    except zipfile.BadZipFile:
        raise DamagedFileError(path, "is not a .npz archive (not a zip file); save the inputs with "
                                     "numpy.savez(path, x=x)") from None
    with archive:
        members = archive.infolist()
        if len(members) != 1:
            names = [m.filename for m in members]
            raise InputError(f"{path} holds {len(names)} arrays {names[:5]}; give a .npz with exactly one array")
        member = members[0]
        if not member.filename.endswith(".npy"):
            raise DamagedFileError(path, f"holds {member.filename!r}, not a .npy array; save the inputs with "
                                         "numpy.savez(path, x=x)")
        with archive.open(member) as data:
            return _read_npy(data, member.file_size, f"{path} (array {member.filename[:-4]!r})")


def _first_rows(x, rows, spec):
    """The first ``rows`` of ``x`` (default: up to :data:`EXPORT_ROWS`)."""
    if rows is None:
        return x[:EXPORT_ROWS]
    if rows > len(x):
        raise InputError(f"--rows {rows} asks for more inputs than {spec} holds ({len(x)}); give --rows {len(x)} "
                         "or fewer")
    return x[:rows]


def _export(args):
    from .deploy import IntegerModel
    from .golden import export

    compiled = IntegerModel.load(args.model)
    x = _first_rows(read_inputs(args.inputs), args.rows, args.inputs)
    model = Path(args.model)
    inputs = [model.with_suffix(".json"), model.with_suffix(".npz")]
    if not args.inputs.startswith("mnist:"):
        inputs.append(Path(args.inputs))
    manifest = export(compiled, x, args.out, formats=args.formats.split(","), overwrite=args.overwrite,
                      options={"model": str(args.model), "inputs": args.inputs, "rows": int(len(x))}, inputs=inputs)
    print(f"wrote {len(manifest['tensors'])} tensors for {manifest['examples']} inputs to {args.out} "
          f"({', '.join(manifest['formats'])}; manifest.json lists shapes, packing and SHA-256)")


def _compare(args):
    from .golden import compare, format_report, passed

    verdicts = compare(args.golden, args.dut, args.tensors or None)
    print(format_report(verdicts))
    return 0 if passed(verdicts) else 1


def _exit_statuses_text():
    lines = ["exit statuses:"]
    for status, meaning in EXIT_STATUSES.items():
        lines += textwrap.wrap(meaning, 79, initial_indent=f"  {status:<5d}", subsequent_indent=" " * 7)
    lines.append(f"set {DEBUG_VARIABLE}=1 to see the traceback of an error")
    return "\n".join(lines)


def build_parser():
    parser = Parser(
        prog="bitsim",
        description="Bit-exact simulator for low-precision neural networks.",
        epilog=_exit_statuses_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bitsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo", help="run bitsim's main job on the bundled data",
        description="Train a small BNN on the bundled MNIST, compile it to packed integers, check that it equals "
                    "the float model bit for bit, and report accuracy, speed and memory (a few minutes).")
    demo.add_argument("--version", action="version", version=f"bitsim {__version__}")
    demo.add_argument("--hidden", type=positive_int, default=256, help="hidden units per layer (default 256)")
    demo.add_argument("--epochs", type=positive_int, default=3, help="epochs (default 3)")
    demo.add_argument("--train-size", type=positive_int, default=20_000, help="training images (default 20000)")
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
    ev.add_argument("--batch-size", type=positive_int, default=1000, help="images per batch (default 1000)")
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
               "bitsim explain binary -0.0 | bitsim explain log8 -inf --nonfinite saturate",
    )
    explain.add_argument("--version", action="version", version=f"bitsim {__version__}")
    explain.add_argument("format", help="binary, ternary, float32, logN (log8, log4, ...), Q3.4, fix16:8")
    explain.add_argument("value", type=float, help="the real value to encode (negative values, inf and nan too)")
    explain.add_argument("--rounding", help="log and fixed point: rounding mode (log: linear, log, truncate, "
                                            "stochastic; fixed: floor, ceil, toward_zero, nearest_up, nearest_even, "
                                            "nearest_away, stochastic)")
    explain.add_argument("--overflow", help="log and fixed point: saturate, wrap (fixed only) or error")
    explain.add_argument("--underflow", help="log only: flush, saturate or error")
    explain.add_argument("--nonfinite", help="log and fixed point: error (default) or saturate (+-inf to the "
                                             "largest magnitude; NaN is always an error)")
    explain.set_defaults(func=_explain)
    ex = sub.add_parser("export", help="write golden vectors of a deployed model for a testbench",
                        description="Write every tensor of a deployed model on a batch of inputs: $readmemh text, "
                                    "raw little-endian binary and .npz, with a manifest (docs/formats.md, section 8).")
    ex.add_argument("--version", action="version", version=f"bitsim {__version__}")
    ex.add_argument("model", help="an integer model .json (from bitsim train)")
    ex.add_argument("--inputs", default="mnist:test",
                    help="mnist:test (default), mnist:train, or a .npy/.npz of uint8, one example per row")
    ex.add_argument("--rows", type=positive_int,
                    help=f"the first this many inputs (default {EXPORT_ROWS}, or all when there are fewer; "
                         "more than there are is an error)")
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


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numbers_last(argv):
    """``argv`` with the values of ``explain`` that look like options (``-1e-3``, ``-inf``, ``-nan``) behind ``--``.

    argparse reads ``-1`` and ``-0.5`` as values but any other word starting with ``-`` as an option.
    """
    command = next((i for i, word in enumerate(argv) if not word.startswith("-")), None)
    if command is None or argv[command] != "explain" or "--" in argv:
        return argv
    rest = argv[command + 1:]
    numbers = [word for word in rest if word.startswith("-") and _is_number(word)]
    if not numbers:
        return argv
    return argv[:command + 1] + [word for word in rest if word not in numbers] + ["--"] + numbers


def _one_line(err):
    """``TYPE: first line of the message`` of an exception."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def _os_error_text(err):
    """One line naming the path(s) of a file-system error."""
    if err.filename is None or not err.strerror:
        return str(err)
    names = f"{err.filename} -> {err.filename2}" if err.filename2 is not None else f"{err.filename}"
    return f"{names}: {err.strerror}"


def _silence_stdout():
    """Point stdout at /dev/null, so the interpreter's flush at exit does not hit the broken pipe again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def main(argv=None):
    """Run the ``bitsim`` command.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``bitsim`` (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status, one of :data:`bitsim.errors.EXIT_STATUSES`; the console script exits with it.
        ``--help`` and ``--version`` still exit through ``SystemExit(0)``.
    """
    argv = sys.argv[1:] if argv is None else [str(word) for word in argv]
    name = "bitsim"
    debug = os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(_numbers_last(argv))
        except SystemExit as stop:
            if stop.code in (0, None):  # --help, --version
                sys.stdout.flush()
                raise
            return stop.code if isinstance(stop.code, int) else 2  # argparse printed the usage error
        name = " ".join(["bitsim"] + [w for w in (args.command, getattr(args, "method", None)) if w])
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        status = args.func(args) or 0
        sys.stdout.flush()  # a closed pipe shows here, inside the try, not at exit
        return status
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BitsimError as err:
        if debug:
            traceback.print_exc()
        print(f"{name}: error: {err}", file=sys.stderr)
        return err.exit_status
    except OSError as err:
        if debug:
            traceback.print_exc()
        print(f"{name}: error: {_os_error_text(err)}", file=sys.stderr)
        return 2
    except Exception as err:
        if debug:
            traceback.print_exc()
        print(f"{name}: internal error: {_one_line(err)}", file=sys.stderr)
        print(f"this is a bug in bitsim: please report it with the command you ran ({DEBUG_VARIABLE}=1 shows the "
              "traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
