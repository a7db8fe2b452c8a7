"""``bitsim qonnx export MODEL --out model.onnx``: bitsim's BNN or Connect network as a QONNX file.

MODEL is what ``bitsim train bnn`` writes (``integer.json``, or ``best.json``, compiled first) or what
``bitsim train connect`` writes with binary or ternary weights (``best.json``: the deterministic
weights, batch norm statistics calibrated for them, static fixed-point activations,
:mod:`bitsim.interop.connect_export`). The graph: :mod:`bitsim.interop.qonnx_export`. Unless
``--no-check``, qonnx's executor then runs the written file on the 10,000 MNIST test images and
its outputs must equal bitsim's bit for bit (exit status 1 otherwise). Needs the ``onnx`` extra.
"""

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from ..datasets import load_mnist
from ..errors import CheckFailed, InputError
from ..formats import binary
from ..interop import connect_export as static
from ..interop.qonnx_export import (
    at_batch,
    check_output,
    connect_headroom,
    export_connect,
    export_integer_model,
    input_name,
    output_name,
    require_onnx,
    write_model,
)
from ..io import read_manifest
from ..methods.connect import ConnectConfig
from ..methods.connect import load_model as load_connect_model
from ..methods.mnist import mnist_splits
from .arguments import Command, positive_int
from .bnn import load_any

CHECK_BATCH = 10_000


@dataclass
class Exportable:
    """A model ready to export: how to build its graph, bitsim's outputs for uint8 images, notes to print."""

    kind: str
    build: Callable
    reference: Callable
    notes: list


def _connect_config(meta):
    config = meta.get("config") if isinstance(meta, dict) else None
    names = {f.name for f in fields(ConnectConfig)}
    if isinstance(config, dict) and "weights" in config and set(config) <= names:
        return ConnectConfig.from_dict(config)
    return None


def deterministic_connect(model, cfg, data):
    """Set a Connect model to its deterministic weights with batch-norm statistics that fit them.

    As :func:`bitsim.methods.connect.error` evaluates the deterministic weights: with
    ``bn_stats='precise'`` the statistics are recalibrated on the first ``calibration_size`` training
    images unless the model was saved with deterministic inference (then they already fit).

    Parameters
    ----------
    model : bitsim.nn.Sequential
    cfg : bitsim.methods.connect.ConnectConfig
    data : dict
        MNIST arrays as :func:`bitsim.datasets.load_mnist` returns them.

    Returns
    -------
    numpy.ndarray of uint8
        The calibration images.
    """
    (train_images, _), _, _ = mnist_splits(cfg, data)
    calibration = train_images[:cfg.calibration_size]  # the images bitsim.methods.connect calibrates on
    for connect, _, _ in static.connect_blocks(model):
        connect.inference = "deterministic"
    if cfg.bn_stats == "precise" and cfg.inference != "deterministic":
        model.calibrate(static.pixels(calibration))
    return calibration


def connect_exportable(model, cfg, weights, batch, data=None):
    """:class:`Exportable` of a trained Connect network (``cfg`` its configuration)."""
    if cfg.weights not in ("binary", "ternary"):
        raise InputError("a full-precision Connect baseline (--weights float) has no low-bit form to export")
    data = load_mnist() if data is None else data
    calibration = deterministic_connect(model, cfg, data)
    frac = static.static_frac_bits(model, calibration)
    xs = data["x_test"]
    same = sum(static.dynamic_frac_bits(model, frac, xs[i:i + 1000]) == frac for i in range(0, len(xs), 1000))
    head = connect_headroom(model, frac, calibration)
    notes = [(f"activations     {cfg.act_bits if cfg.qbp else 16}-bit fixed point, fractional bits {frac} "
              f"(from {len(calibration):,} calibration images)"),
             (f"dynamic check   {same} of {-(-len(xs) // 1000)} test batches of 1000 pick these fractional bits "
              "(there the export equals bitsim's own deterministic evaluation)"),
             (f"exact MatMul    largest sum of |codes| per output {max(head):.4f} of 2^24 on the calibration images "
              "(below 1: float32 sums exact in any order)")]
    return Exportable(f"{cfg.weights} Connect", lambda: export_connect(model, frac, weights, batch),
                      lambda x: static.static_forward(model, frac, x), notes)


def load_exportable(path, weights="quant", batch=1, data=None, activations="multithreshold"):
    """What ``bitsim qonnx export`` exports from ``path``: a BNN or a Connect network.

    Raises
    ------
    InputError
        ``path`` is neither a BNN nor a binary / ternary Connect network of bitsim.
    """
    meta = read_manifest(path)["meta"]
    cfg = _connect_config(meta)
    if cfg is not None:
        model, _ = load_connect_model(path)
        return connect_exportable(model, cfg, weights, batch, data)
    compiled, _ = load_any(path)

    def reference(x):
        out = compiled.forward(x)  # float32 scores, or packed ±1 bits when the network ends in a sign
        if out.dtype == np.uint64:
            return binary.unpack(out, compiled.stages[-1].thresholds.size).astype(np.float32)
        return out.astype(np.float32, copy=False)

    return Exportable("BNN", lambda: export_integer_model(compiled, weights, batch, activations), reference,
                      [f"stages          {', '.join(type(s).__name__ for s in compiled.stages)}"])


def qonnx_outputs(path, images, batch=CHECK_BATCH):
    """qonnx's executor on the exported file at ``path`` (after its cleanup), over uint8 ``images``."""
    # qonnx is the optional onnx extra: imported only here, after _run's require_onnx() said it is installed
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    model = cleanup_model(ModelWrapper(str(path))).transform(InferShapes()).transform(InferDataTypes())
    x = np.asarray(images).reshape(len(images), -1).astype(np.float32)
    outs, runs = [], {}
    for i in range(0, len(x), batch):
        chunk = x[i:i + batch]
        if len(chunk) not in runs:
            runs[len(chunk)] = at_batch(model.model, len(chunk))
        wrapped = runs[len(chunk)]
        outs.append(execute_onnx(wrapped, {input_name(wrapped.model): chunk})[output_name(wrapped.model)])
    return np.concatenate(outs)


def _add_arguments(parser):
    parser.add_argument("model", help="integer.json or best.json of bitsim train bnn, or best.json of bitsim train "
                                      "connect (binary or ternary weights)")
    parser.add_argument("--out", required=True, help="the .onnx file to write (atomically)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out, only if it is a QONNX file bitsim exported")
    parser.add_argument("--weights", choices=("quant", "annotated"), default="quant",
                        help="quant: weights through BipolarQuant / Quant nodes (Brevitas' form, read by FINN and "
                             "hls4ml; default); annotated: initializers annotated BIPOLAR / TERNARY (FINN's own form)")
    parser.add_argument("--activations", choices=("multithreshold", "bias-sign"), default="multithreshold",
                        help="BNN only: batch norm + sign as MultiThreshold (FINN's form; default), or as a bias Add "
                             "and BipolarQuant (the same bits, for tools without MultiThreshold)")
    parser.add_argument("--batch", type=positive_int, default=1, help="batch size the graph declares (default 1)")
    parser.add_argument("--no-check", action="store_true",
                        help="do not run qonnx's executor on the 10,000 MNIST test images afterwards")


def _run(args):
    """Export, write, and check the written file against bitsim on the MNIST test set."""
    require_onnx()
    out, model = Path(args.out), Path(args.model)
    inputs = [model.with_suffix(".json"), model.with_suffix(".npz")]
    check_output(out, args.overwrite, inputs)
    data = load_mnist()
    item = load_exportable(model, args.weights, args.batch, data, args.activations)
    proto = item.build()
    write_model(proto, out, args.overwrite, inputs)
    print(f"exported        {item.kind} {model} -> {out} ({len(proto.graph.node)} nodes: "
          f"{', '.join(sorted({n.op_type for n in proto.graph.node}))})")
    for line in item.notes:
        print(line)
    if args.no_check:
        return
    xs = data["x_test"]
    got, want = qonnx_outputs(out, xs), item.reference(xs)
    equal = got.shape == want.shape and np.array_equal(got.view(np.uint32), want.view(np.uint32))
    print(f"qonnx check     qonnx's executor on {len(xs):,} MNIST test images: "
          f"{'outputs identical to bitsim, bit for bit' if equal else 'DIFFERS from bitsim'}")
    if not equal:
        raise CheckFailed(f"qonnx's executor differs from bitsim on {out}: "
                          f"{int(np.count_nonzero(got.view(np.uint32) != want.view(np.uint32)))} output values")


EXPORT = Command(help="export a bitsim BNN or Connect network to QONNX (for FINN and hls4ml)",
                 description="Write bitsim's BNN (integer.json / best.json) or binary / ternary Connect network "
                             "(best.json) as a QONNX model: bipolar or 2-bit weights, batch norm + sign as "
                             "MultiThreshold (docs/qonnx.md, Export). Then run qonnx's executor on the 10,000 MNIST "
                             "test images and check it gives bitsim's outputs bit for bit. Needs the onnx extra: "
                             "pip install -e \".[onnx]\".",
                 add_arguments=_add_arguments, run=_run)


__all__ = ["EXPORT", "Exportable", "load_exportable", "connect_exportable", "deterministic_connect", "qonnx_outputs"]
