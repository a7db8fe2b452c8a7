"""The ``bitsim`` command: a thin layer over the library."""

import argparse
import sys

from . import __version__


def _explain(args):
    from .explain import explain

    options = {}
    for name in ("rounding", "overflow", "underflow"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    print(explain(args.format, args.value, **options))


def _demo(args):
    from .tour import tour

    tour(print)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="bitsim",
        description="Bit-exact simulator for low-precision neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"bitsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="run bitsim's main job on the bundled data",
                          description="Run bitsim's main job: a tour of the number formats and kernels.")
    demo.add_argument("--version", action="version", version=f"bitsim {__version__}")
    demo.set_defaults(func=_demo)

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
    return parser


def main(argv=None):
    """Entry point of the ``bitsim`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        args.func(args)
    except (ValueError, TypeError, OverflowError, ArithmeticError, FileNotFoundError) as err:
        print(f"bitsim {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
