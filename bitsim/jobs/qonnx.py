"""``bitsim qonnx ACTION``: run a QONNX model at either level, or check both levels against QONNX's executor.

:data:`QONNX` is the group; :data:`QONNX_COMMANDS` its table (one more entry adds a command). The
``onnx`` extra is imported only when a command runs (:mod:`bitsim.interop` needs it only then).
"""

import json
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..interop.differences import check_tensors, compare_levels, execute_qonnx, format_checks, format_levels
from ..interop.qonnx import load
from ..io import atomic_write_bytes, npz_bytes
from ..outputs import check_not_input, prepare_run_dir
from .arguments import Command, Group, inputs_of
from .qonnx_export import EXPORT


def load_model(path):
    """The :class:`~bitsim.interop.graph.Graph` of a QONNX model file (:func:`bitsim.interop.qonnx.load`)."""
    return load(path)


# what --inputs may hold: pixels, signed codes, or float32 values as a QONNX model's input takes them
INPUT_DTYPES = ("uint8", "int8", "float32")
INPUTS_HELP = ("mnist:test, mnist:train (the bundled 28x28 uint8 images), or a .npy/.npz of uint8, int8 or "
               "float32, one example per row (any shape that holds as many values as the model's input)")


def model_inputs(graph, spec, x=None):
    """The examples of ``--inputs`` shaped as the model's one input.

    Parameters
    ----------
    graph : bitsim.interop.graph.Graph
    spec : str
        ``mnist:test``, ``mnist:train`` or a .npy / .npz file of :data:`INPUT_DTYPES`, one example per row
        (:func:`bitsim.jobs.arguments.inputs_of`).
    x : numpy.ndarray, optional
        The examples already read from ``spec``.

    Returns
    -------
    numpy.ndarray
        The examples in their own dtype, each reshaped to the model's input shape (``graph.run`` converts
        them exactly to the model's float type).

    Raises
    ------
    InputError
        The model has several inputs, an example holds another number of values than the model's input,
        or the number of examples is not a multiple of the model's batch size.
    """
    if len(graph.inputs) != 1:
        raise InputError(f"the model has {len(graph.inputs)} inputs {graph.inputs}; the command feeds one: run it "
                         "from Python with bitsim.interop.qonnx.load(path).run({name: array, ...})")
    x = inputs_of(spec, INPUT_DTYPES) if x is None else x
    shape = graph.shapes[graph.inputs[0]]
    per_example = int(np.prod(shape[1:]))
    batch = shape[0]
    if x[0].size != per_example:
        raise InputError(f"{spec}: each example holds {x[0].size} values; the model's input {graph.inputs[0]!r} "
                         f"takes {per_example} (shape {tuple(shape)})")
    if len(x) % batch:
        raise InputError(f"{spec}: {len(x)} examples; the model's batch size is {batch}: give a multiple")
    return x.reshape((len(x),) + tuple(shape[1:]))


RUN_KIND = "bitsim qonnx run"


def _add_run_arguments(parser):
    parser.add_argument("model", help="a QONNX model (.onnx)")
    parser.add_argument("--inputs", required=True, help=INPUTS_HELP)
    parser.add_argument("--out", help="write every tensor to DIR/tensors.npz (by ONNX name) and DIR/summary.json")
    parser.add_argument("--semantics", choices=("reference", "exact"), default="reference",
                        help="reference: QONNX's executor bit for bit (default); exact: integer codes, exact sums")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier `bitsim qonnx run` output at --out")


def _run_run(args):
    graph = load_model(args.model)
    x = model_inputs(graph, args.inputs)
    if args.out:  # refused before the run, not after it
        check_not_input(args.out, [args.model] + ([] if args.inputs.startswith("mnist:") else [args.inputs]))
        out = prepare_run_dir(args.out, RUN_KIND, ["tensors.npz", "summary.json"], overwrite=args.overwrite,
                              resumable=False)
    tensors = graph.run(x, semantics=args.semantics)
    for name in graph.outputs:
        value = tensors[name]
        print(f"{name}: {value.dtype}{list(value.shape)}")
        print(np.array2string(value.reshape(len(x), -1)[:4], max_line_width=120, threshold=40))
    if args.out:
        atomic_write_bytes(Path(out) / "tensors.npz", npz_bytes({k: np.asarray(v) for k, v in tensors.items()}))
        summary = {"model": str(args.model), "inputs": args.inputs, "semantics": args.semantics,
                   "tensors": {k: {"shape": list(np.shape(v)), "dtype": np.asarray(v).dtype.str}
                               for k, v in tensors.items()}}
        atomic_write_bytes(Path(out) / "summary.json", (json.dumps(summary, indent=1) + "\n").encode())
        print(f"wrote {len(tensors)} tensors to {Path(out) / 'tensors.npz'}")


RUN = Command(help="run a QONNX model on inputs at the reference or exact level",
              description="Run a QONNX model (after QONNX's cleanup) on inputs and print its outputs; "
                          "--out writes every tensor by its ONNX name.",
              add_arguments=_add_run_arguments, run=_run_run)


def _add_check_arguments(parser):
    parser.add_argument("model", help="a QONNX model (.onnx)")
    parser.add_argument("--inputs", required=True, help=INPUTS_HELP)


def _run_check(args):
    """Level 1 must equal QONNX's executor bit for bit; level 2 where the float execution is exact."""
    graph = load_model(args.model)
    x = model_inputs(graph, args.inputs)
    expected = execute_qonnx(graph, x, progress=True)
    level1 = check_tensors(expected, graph.run(x, "reference"))
    print(format_checks(level1, "level 1 (reference) against QONNX's executor, bit for bit:"))
    rows = compare_levels(graph, x, reference=expected)
    print(format_levels(rows))
    ok = all(c.status == "match" for c in level1)
    return 0 if ok else 1


CHECK = Command(help="check bitsim's two levels against QONNX's executor, tensor by tensor",
                description="Run bitsim and QONNX's executor on the same inputs. Level 1 must match every tensor "
                            "bit for bit (exit 1 if not); level 2 is reported per tensor: equal, or how far from "
                            "the float execution and how many integer codes flip.",
                add_arguments=_add_check_arguments, run=_run_check)

QONNX_COMMANDS = {"run": RUN, "check": CHECK, "export": EXPORT}

QONNX = Group(help="run, check and export QONNX models (FINN, Brevitas, hls4ml)",
              description="Import QONNX models: run them at the reference or exact level, check them against "
                          "QONNX's executor; export bitsim's BNN and Connect networks as QONNX (docs/qonnx.md). "
                          "Needs the onnx extra: pip install -e \".[onnx]\".",
              dest="action", metavar="ACTION", commands=QONNX_COMMANDS)

__all__ = ["QONNX", "QONNX_COMMANDS", "RUN", "CHECK", "model_inputs", "load_model"]
