"""The commands that show number formats bit by bit: ``bitsim explain FORMAT VALUE`` (:data:`EXPLAIN`, on
:mod:`bitsim.explain`) and ``bitsim tour`` (:data:`TOUR`, on :mod:`bitsim.tour`)."""

from .. import explain, tour
from .arguments import Command

OPTIONS = ("rounding", "overflow", "underflow", "nonfinite")


# bitsim explain

def _add_explain_arguments(parser):
    parser.add_argument("format", help="binary, ternary, float32, logN (log8, log4, ...), Q3.4, fix16:8")
    parser.add_argument("value", type=float, help="the real value to encode (negative values, inf and nan too)")
    parser.add_argument("--rounding", help="log and fixed point: rounding mode (log: linear, log, truncate, "
                                           "stochastic; fixed: floor, ceil, toward_zero, nearest_up, nearest_even, "
                                           "nearest_away, stochastic)")
    parser.add_argument("--overflow", help="log and fixed point: saturate, wrap (fixed only) or error")
    parser.add_argument("--underflow", help="log only: flush, saturate or error")
    parser.add_argument("--nonfinite", help="log and fixed point: error (default) or saturate (+-inf to the "
                                            "largest magnitude; NaN is always an error)")


def _run_explain(args):
    """Print :func:`bitsim.explain.explain`'s worked example; only the options given are passed on."""
    options = {name: getattr(args, name) for name in OPTIONS if getattr(args, name) is not None}
    print(explain.explain(args.format, args.value, **options))


EXPLAIN = Command(help="show how one value is encoded in a format, bit by bit",
                  description="Show the worked example: float32 fields, code bits, decoded value, error, and the "
                              "deciding rule.",
                  epilog="examples: bitsim explain log8 0.3 | bitsim explain Q3.4 3.14159 --rounding floor | "
                         "bitsim explain binary -0.0 | bitsim explain log8 -inf --nonfinite saturate",
                  add_arguments=_add_explain_arguments, run=_run_explain)


# bitsim tour

def _add_tour_arguments(parser):
    """``bitsim tour`` has no options of its own."""


def _run_tour(args):
    """Print :func:`bitsim.tour.tour`."""
    tour.tour(print)


TOUR = Command(help="print a tour of the number formats with their bits",
               description="Print a tour of bitsim's number formats, with the bits showing.",
               add_arguments=_add_tour_arguments, run=_run_tour)


__all__ = ["EXPLAIN", "TOUR"]
