"""The ``bitsim`` command: a router from the words of the command line to the jobs of :mod:`bitsim.jobs`.

:data:`COMMANDS` is the table: each entry is a :class:`~bitsim.jobs.arguments.Command` (options and run
of one command) or a :class:`~bitsim.jobs.arguments.Group` of them (``bitsim train METHOD``, ``bitsim gru
ACTION``); :func:`build_parser` turns it into argparse parsers, every command alike, and :func:`main` runs
the chosen command's ``run(args)``.

:func:`main` returns the exit status (:data:`bitsim.errors.EXIT_STATUSES`): 0 success, 1 a difference
(``compare``'s mismatch, a failed bit-exactness check), 2 bad input (a bitsim error, a file-system
error, a usage error), 3 an internal error, 130 interrupted, 141 broken pipe.
"""

import argparse
import os
import sys
import textwrap
import traceback

from . import __version__
from .errors import EXIT_STATUSES, BitsimError, one_line
from .jobs import bnn, connect, explain, golden, gru, surgery, sweep
from .jobs.arguments import Group
from .jobs.qonnx import QONNX

DEBUG_VARIABLE = "BITSIM_DEBUG"

# `bitsim train METHOD`
TRAIN_METHODS = {
    "bnn": bnn.TRAIN,
    "connect": connect.TRAIN,
    "gru": gru.TRAIN,
    "surgery": surgery.TRAIN,
}

# every command, in the order `bitsim --help` lists them
COMMANDS = {
    "demo": bnn.DEMO,
    "tour": explain.TOUR,
    "train": Group(help="train one of the published methods",
                   description="Train one of the published methods on the bundled data.",
                   dest="method", metavar="METHOD", commands=TRAIN_METHODS),
    "gru": gru.GRU,
    "eval": bnn.EVAL,
    "summary": bnn.SUMMARY,
    "explain": explain.EXPLAIN,
    "export": golden.EXPORT,
    "export-mx": golden.EXPORT_MX,
    "compare": golden.COMPARE,
    "qonnx": QONNX,
    "sweep": sweep.SWEEP,
}


def _exit_statuses_text():
    lines = ["exit statuses:"]
    for status, meaning in EXIT_STATUSES.items():
        lines += textwrap.wrap(meaning, 79, initial_indent=f"  {status:<5d}", subsequent_indent=" " * 7)
    lines.append(f"set {DEBUG_VARIABLE}=1 to see the traceback of an error")
    return "\n".join(lines)


def _add_commands(parser, commands, dest, metavar, required):
    """A subparser per entry of ``commands`` (a :class:`Command`, or a :class:`Group` of them), recursively."""
    sub = parser.add_subparsers(dest=dest, metavar=metavar, required=required)
    for name, command in commands.items():
        child = sub.add_parser(name, help=command.help, description=command.description or command.help,
                               epilog=command.epilog)
        child.add_argument("--version", action="version", version=f"bitsim {__version__}")
        if isinstance(command, Group):
            _add_commands(child, command.commands, command.dest, command.metavar, required=True)
        else:
            command.add_arguments(child)
            child.set_defaults(func=command.run)


def build_parser():
    """The parser of the ``bitsim`` command: one subparser per entry of :data:`COMMANDS`.

    Returns
    -------
    argparse.ArgumentParser
        Parsed arguments carry ``func``, the chosen command's ``run``.
    """
    parser = argparse.ArgumentParser(
        prog="bitsim",
        description="Bit-exact simulator for low-precision neural networks.",
        epilog=_exit_statuses_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bitsim {__version__}")
    _add_commands(parser, COMMANDS, "command", "COMMAND", required=False)
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


def _os_error_text(err):
    """One line naming the path(s) of a file-system error."""
    if err.filename is None or not err.strerror:
        return str(err)
    names = f"{err.filename} -> {err.filename2}" if err.filename2 is not None else f"{err.filename}"
    return f"{names}: {err.strerror}"


def _failure(name, err):
    """What :func:`main` prints on stderr for an error ``err`` of command ``name``, and the exit status."""
    if isinstance(err, BitsimError):
        return f"{name}: error: {err}", err.exit_status
    if isinstance(err, OSError):
        return f"{name}: error: {_os_error_text(err)}", 2
    return (f"{name}: internal error: {one_line(err)}\nthis is a bug in bitsim: please report it with the command "
            f"you ran ({DEBUG_VARIABLE}=1 shows the traceback)"), 3


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
    except Exception as err:
        if debug:
            traceback.print_exc()
        text, status = _failure(name, err)
        print(text, file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
