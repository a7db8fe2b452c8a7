"""The commands that show number formats bit by bit: ``bitsim explain FORMAT VALUE`` (:data:`EXPLAIN`, on
:mod:`bitsim.explain`) and ``bitsim tour`` (:data:`TOUR`, on :mod:`bitsim.tour`)."""

from .. import explain, tour
from .arguments import Command

from ..errors import InputError

OPTIONS = ("rounding", "overflow", "underflow", "nonfinite", "scale_rule")


# bitsim explain

def _add_explain_arguments(parser):
    parser.add_argument("format", help="binary, ternary, float32, logN (log8, log4, ...), Q3.4, fix16:8, minifloats "
                                       "(e4m3, e5m2, e2m3, e3m2, e2m1, e8m0, eXmY), MX formats (mxfp8_e4m3, "
                                       "mxfp8_e5m2, mxfp6_e2m3, mxfp6_e3m2, mxfp4_e2m1, mxint8)")
    parser.add_argument("value", help="the real value to encode (negative values, inf and nan too); for an MX "
                                      "format a block of values separated by commas (put -- before a block that "
                                      "starts with a minus sign)")
    parser.add_argument("--rounding", help="log and fixed point: rounding mode (log: linear, log, truncate, "
                                           "stochastic; fixed: floor, ceil, toward_zero, nearest_up, nearest_even, "
                                           "nearest_away, stochastic)")
    parser.add_argument("--overflow", help="log and fixed point: saturate, wrap (fixed only) or error; minifloats: "
                                           "saturate, nonfinite (Inf/NaN where the format has them) or error")
    parser.add_argument("--scale-rule", dest="scale_rule",
                        help="MX formats: floor (OCP, default), ceil, rceil, even, ceil_log2")
    parser.add_argument("--underflow", help="log only: flush, saturate or error")
    parser.add_argument("--nonfinite", help="log and fixed point: error (default) or saturate (+-inf to the "
                                            "largest magnitude; NaN is always an error)")


def _run_explain(args):
    """Print :func:`bitsim.explain.explain`'s worked example; only the options given are passed on."""
    options = {name: getattr(args, name) for name in OPTIONS if getattr(args, name, None) is not None}
    try:
        values = [float(v) for v in args.value.split(",")]
    except ValueError:
        raise InputError(f"cannot read {args.value!r} as a number (or, for an MX format, numbers separated by "
                         "commas)") from None
    print(explain.explain(args.format, values if len(values) > 1 else values[0], **options))


EXPLAIN = Command(help="show how one value is encoded in a format, bit by bit",
                  description="Show the worked example: float32 fields, code bits, decoded value, error, and the "
                              "deciding rule.",
                  epilog="examples: bitsim explain log8 0.3 | bitsim explain Q3.4 3.14159 --rounding floor | "
                         "bitsim explain e4m3 0.3 | bitsim explain mxfp4_e2m1 0.3,1.7,-5,12 | "
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
