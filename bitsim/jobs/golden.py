"""The golden-vector jobs (:mod:`bitsim.golden`): ``bitsim export`` writes every tensor of a deployed model
for a testbench (:data:`EXPORT`); ``bitsim compare`` checks a design's dump against them (:data:`COMPARE`)."""

from pathlib import Path

from ..datasets import load_mnist
from ..deploy import IntegerModel
from ..errors import InputError
from ..golden import compare, export, format_report, passed
from ..io import read_inputs
from .arguments import Command, positive_int

EXPORT_ROWS = 16


def first_rows(x, rows, spec):
    """The first ``rows`` of ``x``; by default up to :data:`EXPORT_ROWS`.

    Parameters
    ----------
    x : numpy.ndarray
    rows : int or None
    spec : str
        Where ``x`` came from, named in the error.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    InputError
        ``rows`` is more than ``x`` holds.
    """
    if rows is None:
        return x[:EXPORT_ROWS]
    if rows > len(x):
        raise InputError(f"--rows {rows} asks for more inputs than {spec} holds ({len(x)}); give --rows {len(x)} "
                         "or fewer")
    return x[:rows]


# bitsim export

def _add_export_arguments(parser):
    parser.add_argument("model", help="an integer model .json (from bitsim train), or a QONNX model .onnx")
    parser.add_argument("--inputs", default="mnist:test",
                        help="mnist:test (default), mnist:train, or a .npy/.npz of uint8, one example per row")
    parser.add_argument("--rows", type=positive_int,
                        help=f"the first this many inputs (default {EXPORT_ROWS}, or all when there are fewer; "
                             "more than there are is an error)")
    parser.add_argument("--out", required=True, help="output directory (written atomically)")
    parser.add_argument("--formats", default="memh,bin,npz", help="comma-separated: memh, bin, npz (default all)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("--semantics", choices=("exact", "reference"), default="exact",
                        help="for a QONNX model (.onnx): the level whose values are written (default exact)")


def inputs_of(spec, dtypes=("uint8",)):
    """The inputs named by ``--inputs``: ``mnist:test`` / ``mnist:train`` (bundled) or a .npy / .npz file of one
    of ``dtypes``."""
    if not spec.startswith("mnist:"):
        return read_inputs(spec, dtypes)
    split = spec.split(":", 1)[1]
    if split not in ("test", "train"):
        raise InputError(f"unknown MNIST split {split!r}; use mnist:test or mnist:train")
    return load_mnist()[f"x_{split}"]


def _run_export(args):
    """Write the golden vectors and say what was written."""
    if str(args.model).lower().endswith(".onnx"):
        return _run_export_onnx(args)
    compiled = IntegerModel.load(args.model)
    x = first_rows(inputs_of(args.inputs), args.rows, args.inputs)
    model = Path(args.model)
    inputs = [model.with_suffix(".json"), model.with_suffix(".npz")]
    if not args.inputs.startswith("mnist:"):
        inputs.append(Path(args.inputs))
    manifest = export(compiled, x, args.out, formats=args.formats.split(","), overwrite=args.overwrite,
                      options={"model": str(args.model), "inputs": args.inputs, "rows": int(len(x))}, inputs=inputs)
    print(f"wrote {len(manifest['tensors'])} tensors for {manifest['examples']} inputs to {args.out} "
          f"({', '.join(manifest['formats'])}; manifest.json lists shapes, packing and SHA-256)")


def _run_export_onnx(args):
    """Golden vectors of every tensor of a QONNX model, by ONNX name (integer codes where exact)."""
    from ..golden.export import export_tensors
    from ..interop.golden_rows import golden_rows
    from .qonnx import INPUT_DTYPES, load_model, model_inputs

    graph = load_model(args.model)
    x = model_inputs(graph, args.inputs, inputs_of(args.inputs, INPUT_DTYPES))
    rows = args.rows or min(EXPORT_ROWS, len(x))
    x = first_rows(x, rows, args.inputs)
    if len(x) % graph.batch:
        raise InputError(f"--rows {len(x)} is not a multiple of the model's batch size {graph.batch}")
    read = [Path(args.model)] + ([] if args.inputs.startswith("mnist:") else [Path(args.inputs)])
    manifest = export_tensors(golden_rows(graph, x, args.semantics), args.out, formats=args.formats.split(","),
                              overwrite=args.overwrite, inputs=read,
                              options={"model": str(args.model), "inputs": args.inputs, "rows": int(len(x)),
                                       "semantics": args.semantics},
                              model_stages=[node.op_type for node in graph.nodes], examples=len(x))
    ints = sum("quant" in e for e in manifest["tensors"])
    print(f"wrote {len(manifest['tensors'])} tensors ({ints} as integer codes) of {args.model} for {len(x)} inputs "
          f"to {args.out} ({', '.join(manifest['formats'])}; manifest.json lists names, scales and SHA-256)")


EXPORT = Command(help="write golden vectors of a deployed model for a testbench",
                 description="Write every tensor of a deployed model on a batch of inputs: $readmemh text, raw "
                             "little-endian binary and .npz, with a manifest (docs/formats.md, section 8).",
                 add_arguments=_add_export_arguments, run=_run_export)


# bitsim compare

def _add_compare_arguments(parser):
    parser.add_argument("golden", help="a directory written by bitsim export")
    parser.add_argument("dut", help="the directory of the design's dump (files named like the golden ones)")
    parser.add_argument("--tensors", nargs="+", help="tensor names or shell patterns to compare (default all)")


def _run_compare(args):
    """Print the verdict of every selected tensor; the exit status is 0 when every one matches, else 1."""
    verdicts = compare(args.golden, args.dut, args.tensors or None)
    print(format_report(verdicts))
    return 0 if passed(verdicts) else 1


COMPARE = Command(help="compare a design's dump with golden vectors",
                  description="Compare the files a design under test wrote with bitsim's golden vectors; exit 0 only "
                              "if every selected tensor matches.",
                  add_arguments=_add_compare_arguments, run=_run_compare)


__all__ = ["EXPORT", "COMPARE", "EXPORT_ROWS", "first_rows"]
