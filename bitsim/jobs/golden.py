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
    parser.add_argument("model", help="an integer model .json (from bitsim train)")
    parser.add_argument("--inputs", default="mnist:test",
                        help="mnist:test (default), mnist:train, or a .npy/.npz of uint8, one example per row")
    parser.add_argument("--rows", type=positive_int,
                        help=f"the first this many inputs (default {EXPORT_ROWS}, or all when there are fewer; "
                             "more than there are is an error)")
    parser.add_argument("--out", required=True, help="output directory (written atomically)")
    parser.add_argument("--formats", default="memh,bin,npz", help="comma-separated: memh, bin, npz (default all)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")


def inputs_of(spec):
    """The inputs named by ``--inputs``: ``mnist:test`` / ``mnist:train`` (bundled) or a .npy / .npz file."""
    if not spec.startswith("mnist:"):
        return read_inputs(spec)
    split = spec.split(":", 1)[1]
    if split not in ("test", "train"):
        raise InputError(f"unknown MNIST split {split!r}; use mnist:test or mnist:train")
    return load_mnist()[f"x_{split}"]


def _run_export(args):
    """Write the golden vectors and say what was written."""
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
