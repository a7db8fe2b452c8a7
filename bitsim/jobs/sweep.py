"""The design-space sweep job: ``bitsim sweep SPEC --out DIR`` (:mod:`bitsim.sweep`, :data:`SWEEP`)."""

from pathlib import Path

from ..sweep import run_sweep
from .arguments import Command, nonnegative_int


def _add_arguments(parser):
    parser.add_argument("spec", metavar="SPEC", help="the sweep's spec file (TOML, docs/sweep.md)")
    parser.add_argument("--out", default=None, help="output directory (default runs/sweep-SPEC_NAME); it must be "
                                                    "empty or absent unless --resume or --overwrite is given")
    parser.add_argument("--resume", action="store_true", help="continue the sweep in OUT: skip the points done")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier `bitsim sweep` in OUT (only its "
                                                                 "files are deleted)")
    parser.add_argument("--workers", type=nonnegative_int, default=None, metavar="N",
                        help="worker processes of the embedded dask LocalCluster (default: one per core); "
                             "0 runs the points serially in this process")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="run on an existing cluster (`dask scheduler`, `dask worker ADDRESS`) instead")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")


def _run(args):
    out = args.out or Path("runs") / f"sweep-{Path(args.spec).stem}"
    result = run_sweep(args.spec, out, workers=args.workers, scheduler=args.scheduler, resume=args.resume,
                       overwrite=args.overwrite, progress=not args.no_progress)
    print(f"engine          {result['engine']}: {result['ran']} points run in {result['seconds']:.1f} s, "
          f"{result['skipped']} already done, {result['failed']} failed")
    front = result["front"]
    print(f"Pareto front    {len(front)} of {result['points']} points (test error against weight + activation bytes)")
    for r in front:
        acc = " ".join(str(r[k]) for k in ("accumulator_bits", "accumulator_edge", "mx_accumulation")
                       if r.get(k, "") != "")
        print(f"  {100 * r['test_error']:6.2f}%  {r['weight_bytes'] + r['activation_bytes']:>10,d} B  "
              f"{'acc ' + acc + '  ' if acc else ''}point {r['point']}")
    print(f"saved           {result['out'] / 'summary.csv'}, {result['out'] / 'pareto.csv'}"
          + (f", {result['plot']}" if result["plot"] else " (no plot: pip install -e \".[plot]\")"))
    return 1 if result["failed"] else 0


SWEEP = Command(help="sweep number formats and accumulators over a trained network (bit-exact integer runs, on "
                     "dask.distributed)",
                add_arguments=_add_arguments, run=_run,
                epilog="Exit status 1 when a point failed (its error is in OUT/points/ID.json and summary.csv).")

__all__ = ["SWEEP"]
