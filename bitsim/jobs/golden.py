"""The golden-vector jobs (:mod:`bitsim.golden`): ``bitsim export`` writes every tensor of a deployed model
for a testbench (:data:`EXPORT`); ``bitsim export-mx`` writes arrays quantized to an MX format, and the products
of an MX GEMM (:data:`EXPORT_MX`); ``bitsim compare`` checks a design's dump against them (:data:`COMPARE`)."""

import argparse
from pathlib import Path

from ..deploy import IntegerModel
from ..errors import InputError
from ..formats import mx
from ..formats.modes import Rounding
from ..golden import compare, export, format_report, passed
from ..golden.mx import VALUES_RULE, export_mx, read_float_arrays
from ..kernels.mx import RULES, gemm
from .arguments import Command, inputs_of, positive_int

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


# bitsim export-mx

MAX_BLOCK = 1 << 20  # the largest block a golden manifest records
PRODUCT = "C"
GEMM_RULE = ("C.exact and C.float32: float32 bit patterns of the MX GEMM A @ B under the two accumulation rules of "
             "docs/formats.md section 14.5 (exact: one rounding of the exact sum; float32: block sums in k order, "
             "then block contributions in block order); A (M, K) is blocked along axis 1, B (K, N) along axis 0")


def block_size(text):
    """The argparse type of ``--block``: a whole number 1 .. :data:`MAX_BLOCK`."""
    value = positive_int(text)
    if value > MAX_BLOCK:
        raise argparse.ArgumentTypeError(f"expected a block size of at most {MAX_BLOCK}, got {text!r}")
    return value


def _add_export_mx_arguments(parser):
    parser.add_argument("format", metavar="FORMAT", help=f"the MX format: {', '.join(mx.FORMATS)}")
    parser.add_argument("arrays", metavar="ARRAYS",
                        help="a .npy (one tensor, named after the file) or .npz (one tensor per array) of float16, "
                             "float32 or float64 values")
    parser.add_argument("--out", required=True, help="output directory (written atomically)")
    parser.add_argument("--block", type=block_size, help="elements per shared scale (default 32)")
    parser.add_argument("--axis", type=int, help="the axis blocks run along (default -1, the last; not with --gemm)")
    parser.add_argument("--scale-rule", dest="scale_rule", default="floor", choices=[r.value for r in mx.ScaleRule],
                        help="how a block's scale is chosen (docs/formats.md 14.2; default floor, the OCP rule)")
    parser.add_argument("--rounding", default="nearest_even", choices=[r.value for r in Rounding],
                        help="how elements round (default nearest_even)")
    parser.add_argument("--seed", type=int, help="with --rounding stochastic: the Philox key of the random bits "
                                                 "(each tensor starts from it)")
    parser.add_argument("--gemm", nargs=2, metavar=("A", "B"),
                        help="two arrays of the .npz: A (M, K) blocked along K (axis 1) and B (K, N) blocked along "
                             "K (axis 0); also write their products C.exact and C.float32")
    parser.add_argument("--formats", default="memh,bin,npz", help="comma-separated: memh, bin, npz (default all)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier golden export at --out")


def gemm_operands(arrays, names, spec):
    """``(a, b)``, the arrays ``--gemm A B`` names, checked: two different names, 2-D, the same K."""
    if len(arrays) != 2:
        raise InputError(f"--gemm {' '.join(names)}: {spec} is a .npy of one array; give a .npz holding both "
                         "operands, e.g. numpy.savez(path, a=a, b=b)")
    (na, a), (nb, b) = arrays
    if na == nb:
        raise InputError(f"--gemm {na} {nb}: give two different arrays (A is blocked along its axis 1, B along its "
                         "axis 0)")
    for name, x, role, shape in ((na, a, "A", "(M, K)"), (nb, b, "B", "(K, N)")):
        if x.ndim != 2:
            raise InputError(f"--gemm: {role} ({name!r}) has shape {x.shape}; give a 2-D {shape} array")
    if a.shape[1] != b.shape[0]:
        raise InputError(f"--gemm: A ({na!r}) of shape {a.shape} is (M, K) and B ({nb!r}) of shape {b.shape} is "
                         f"(K, N): K differs ({a.shape[1]} and {b.shape[0]})")
    return a, b


def quantized(name, x, fmt, axis, args):
    """``x`` quantized to ``fmt`` along ``axis`` with the command's options; errors name the tensor."""
    try:
        return mx.quantize(x, fmt, axis=axis, scale_rule=args.scale_rule, rounding=args.rounding, rng=args.seed)
    except InputError as err:
        raise InputError(f"{name}: {err}") from None


def _run_export_mx(args):
    """Quantize every array (or the two GEMM operands), write codes, scales, values (and products)."""
    fmt = mx.as_mx(args.format, args.block)
    if args.rounding == Rounding.STOCHASTIC.value and args.seed is None:
        raise InputError("--rounding stochastic needs --seed N, the key of the random bits")
    if args.seed is not None and args.rounding != Rounding.STOCHASTIC.value:
        raise InputError("--seed is only used with --rounding stochastic")
    if args.gemm and args.axis is not None:
        raise InputError("--axis does not apply with --gemm: A is blocked along its axis 1 and B along its axis 0 "
                         "(both along K)")
    arrays = read_float_arrays(args.arrays, args.gemm)
    options = {"format": fmt.name, "arrays": str(args.arrays), "block": fmt.block, "scale_rule": args.scale_rule,
               "rounding": args.rounding, "seed": args.seed, "values": VALUES_RULE}
    extra, stages = [], ["MX"]
    if args.gemm:
        a, b = gemm_operands(arrays, args.gemm, args.arrays)
        (na, _), (nb, _) = arrays
        tensors = [(na, quantized(na, a, fmt, 1, args)), (nb, quantized(nb, b, fmt, 0, args))]
        extra = [(f"{PRODUCT}.{rule}", gemm(tensors[0][1], tensors[1][1], rule), f"mx gemm {rule}") for rule in RULES]
        options.update(gemm=[na, nb], products=GEMM_RULE)
        stages.append("MX GEMM")
    else:
        axis = -1 if args.axis is None else args.axis
        tensors = [(name, quantized(name, x, fmt, axis, args)) for name, x in arrays]
        options["axis"] = axis
    manifest = export_mx(tensors, args.out, formats=args.formats.split(","), options=options,
                         overwrite=args.overwrite, inputs=[Path(args.arrays)], values=True, extra=extra,
                         model_stages=stages)
    products = f" and {', '.join(name for name, _, _ in extra)}" if extra else ""
    print(f"wrote {len(tensors)} {fmt.name} tensor{'s' if len(tensors) > 1 else ''} (codes, scales, values){products} "
          f"to {args.out} "
          f"({', '.join(manifest['formats'])}; manifest.json lists shapes, formats and SHA-256)")


EXPORT_MX = Command(help="write golden vectors of arrays quantized to an MX format (and of an MX GEMM)",
                    description="Quantize every float array of a .npy or .npz to an MX block format and write its "
                                "element codes, E8M0 scales and float32 values; with --gemm A B also the products "
                                "under both accumulation rules (docs/formats.md, sections 8 and 14.6).",
                    epilog="examples: bitsim export-mx mxfp8_e4m3 x.npy --out golden/ | bitsim export-mx mxfp4_e2m1 "
                           "ab.npz --gemm a b --block 32 --out golden/",
                    add_arguments=_add_export_mx_arguments, run=_run_export_mx)


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


__all__ = ["EXPORT", "EXPORT_MX", "COMPARE", "EXPORT_ROWS", "first_rows"]
