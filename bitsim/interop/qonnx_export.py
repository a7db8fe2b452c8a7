"""Export bitsim's binary and ternary networks to QONNX, for FINN, hls4ml and qonnx's executor.

Two kinds of model export (``docs/qonnx.md``, "Export", has the rules with worked examples):

:func:`export_integer_model`
    A compiled BNN (:class:`bitsim.deploy.IntegerModel`, ``integer.json``) with dense stages. Each
    ``BitplaneDense`` / ``XnorDense`` stage becomes a ``MatMul`` by ±1 weights (a ``BipolarQuant`` of a
    ±1 initializer, or the initializer annotated ``BIPOLAR``); each ``Threshold`` stage (batch norm +
    sign) becomes a ``MultiThreshold`` with one integer threshold per channel, ``out_scale=2``,
    ``out_bias=-1`` (``BIPOLAR`` output); a channel whose batch norm decreases (``flip``: bit =
    ``acc <= t``) has its weight column negated and the threshold ``-t`` (``-acc >= -t``). The last
    ``Affine`` stage becomes ``Sub``, ``Mul``, ``Mul``, ``Add`` in float32, the order of bitsim's
    expression. The input is the uint8 pixels as float32, annotated ``UINT8``.
:func:`export_connect`
    A deterministic BinaryConnect / TernaryConnect MLP with static fixed-point activations
    (:mod:`bitsim.interop.connect_export`): ``Mul`` by 2**-8, then per layer a 16-bit ``Quant``
    (scale 2**-f, ``HALF_EVEN``), ``MatMul`` by ``BipolarQuant`` (binary) or 2-bit narrow ``Quant``
    (ternary) weights, the batch norm as ``Sub``, ``Mul``, ``Mul``, ``Add`` and ``Relu``.

Every product is exact in float32 whatever order onnxruntime sums in: ±1 times uint8 pixels sums to at
most ``784 * 255 < 2**24``, ±1 times ±1 to at most the fan-in. The Connect hidden layers are exact
while each output's sum of ``|code|`` stays below ``2**24`` (:func:`connect_headroom` measures it).

The graphs are written after qonnx's own cleanup (so tensor names are those every QONNX tool shows,
e.g. ``MatMul_0_out0``), shape inference and datatype inference; :func:`write_model` writes one
atomically. Needs the ``onnx`` extra.
"""

from pathlib import Path

import numpy as np

from .. import __version__
from ..deploy.packed import Affine, BitplaneDense, Threshold, XnorDense
from ..errors import DamagedFileError, InputError, MissingExtra, OutputExistsError
from ..formats import binary
from ..formats.dynamic_fixed import dynamic_fixed
from ..io import atomic_write_bytes
from ..nn.layers import ap2
from .connect_export import block_inputs, connect_blocks, deterministic_weights
from .ort_nodes import ONNX_EXTRA

PRODUCER = "bitsim"
QONNX_DOMAIN = "qonnx.custom_op.general"
ONNX_OPSET = 13
IR_VERSION = 8  # ONNX 1.10 on: read by the onnx and onnxruntime versions FINN and hls4ml pin
FLOAT32_EXACT = 1 << 24
WEIGHT_FORMS = ("quant", "annotated")
ACTIVATION_FORMS = ("multithreshold", "bias-sign")


def require_onnx():
    """Import ``onnx`` and ``qonnx``, or raise :class:`~bitsim.errors.MissingExtra` naming the pip command."""
    try:  # the optional onnx extra, imported only when a model is exported
        import onnx
        import onnx.helper
        import onnx.numpy_helper
        import qonnx  # noqa: F401
    except ImportError as err:
        raise MissingExtra(f"QONNX export needs the onnx extra ({err.name or err} is not installed): "
                           f"{ONNX_EXTRA}") from None
    return onnx


class _Builder:
    """Collects nodes, initializers and datatype annotations of one graph."""

    def __init__(self, onnx, weights):
        if weights not in WEIGHT_FORMS:
            raise InputError(f"weights must be one of {WEIGHT_FORMS}, got {weights!r}")
        self.onnx, self.weights = onnx, weights
        self.nodes, self.inits, self.weight_types = [], [], []
        self.count = 0

    def name(self, stem):
        """A new tensor name: ``stem`` and a running number."""
        self.count += 1
        return f"{stem}{self.count}"

    def constant(self, stem, value):
        """Add ``value`` as a float32 initializer; its name."""
        name = self.name(stem)
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(self, op, inputs, domain="", **attrs):
        """Add a node of one output; the output's name."""
        out = self.name(op.lower() + "_")
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [out], domain=domain, **attrs))
        return out

    def weights_matmul(self, x, w, kind):
        """``MatMul(x, W)`` with ``w`` (n_out, n_in) of -1/+1 (bipolar) or -1/0/+1 (ternary)."""
        wt = np.ascontiguousarray(np.asarray(w, np.float32).T)
        if self.weights == "annotated":
            self.weight_types.append("BIPOLAR" if kind == "binary" else "TERNARY")
            return self.node("MatMul", [x, self.constant("W", wt)])
        one = self.constant("scale", 1.0)
        if kind == "binary":
            q = self.node("BipolarQuant", [self.constant("W", wt), one], domain=QONNX_DOMAIN)
        else:
            q = self.node("Quant", [self.constant("W", wt), one, self.constant("zero", 0.0),
                                    self.constant("bits", 2.0)], domain=QONNX_DOMAIN,
                          signed=1, narrow=1, rounding_mode="ROUND")
        return self.node("MatMul", [x, q])

    def batch_norm(self, x, mean, scale, gain, beta):
        """``gain * ((x - mean) * scale) + beta`` as four float32 nodes, in this order."""
        x = self.node("Sub", [x, self.constant("mean", mean)])
        x = self.node("Mul", [x, self.constant("inv_std", scale)])
        x = self.node("Mul", [x, self.constant("gain", gain)])
        return self.node("Add", [x, self.constant("beta", beta)])

    def model(self, graph_name, n_in, output, n_out, batch, doc):
        """The ``onnx.ModelProto`` of the collected graph, input ``input`` of shape (batch, n_in)."""
        onnx, helper = self.onnx, self.onnx.helper
        tensor = onnx.TensorProto.FLOAT
        graph = helper.make_graph(self.nodes, graph_name,
                                  [helper.make_tensor_value_info("input", tensor, [batch, n_in])],
                                  [helper.make_tensor_value_info(output, tensor, [batch, n_out])],
                                  initializer=self.inits)
        if int(batch) < 1:
            raise InputError(f"the batch size a graph declares must be at least 1, got {batch}")
        model = helper.make_model(graph, producer_name=PRODUCER, producer_version=__version__, doc_string=doc,
                                  opset_imports=[helper.make_opsetid("", ONNX_OPSET),
                                                 helper.make_opsetid(QONNX_DOMAIN, 1)])
        model.ir_version = IR_VERSION
        return finish(model, "UINT8", self.weight_types)


def finish(model, input_type, weight_types=()):
    """qonnx's cleanup, then the datatype annotations, ``InferShapes`` and ``InferDataTypes``; a ModelProto.

    Parameters
    ----------
    model : onnx.ModelProto
    input_type : str
        The qonnx DataType of the graph input (e.g. ``'UINT8'``).
    weight_types : list of str
        DataTypes of the weight initializers that feed ``MatMul`` nodes directly, in node order
        (the ``'annotated'`` form); empty when ``Quant`` nodes say it.
    """
    # qonnx is the optional onnx extra: imported where it is used, after require_onnx()
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    wrapped = cleanup_model(ModelWrapper(model))
    wrapped.set_tensor_datatype(wrapped.graph.input[0].name, DataType[input_type])
    constant_weights = [n.input[1] for n in wrapped.graph.node
                        if n.op_type == "MatMul" and wrapped.get_initializer(n.input[1]) is not None]
    if weight_types:
        if len(constant_weights) != len(weight_types):
            raise InputError(f"{len(weight_types)} weight types for {len(constant_weights)} MatMul weights")
        for name, datatype in zip(constant_weights, weight_types):
            wrapped.set_tensor_datatype(name, DataType[datatype])
    wrapped = wrapped.transform(InferShapes()).transform(InferDataTypes())
    require_onnx().checker.check_model(wrapped.model)
    return wrapped.model


def _dense_stages(model):
    stages = list(model.stages)
    for i, stage in enumerate(stages):
        if not isinstance(stage, (BitplaneDense, XnorDense, Threshold, Affine)):
            raise InputError(f"stage {i} is {type(stage).__name__}; QONNX export supports dense BNNs "
                             "(BitplaneDense, XnorDense, Threshold, Affine: the MLPs of bitsim train bnn)")
    if not stages or not isinstance(stages[0], BitplaneDense):
        raise InputError("a BNN starts with a BitplaneDense stage (uint8 inputs)")
    if stages[0].bits != 8:
        raise InputError(f"the first layer reads {stages[0].bits}-bit inputs; QONNX export supports 8-bit pixels")
    return stages


def export_integer_model(model, weights="quant", batch=1, activations="multithreshold"):
    """The QONNX graph of a compiled dense BNN.

    Parameters
    ----------
    model : bitsim.deploy.IntegerModel
        Stages ``BitplaneDense``, then ``Threshold, XnorDense`` pairs, ending in ``Affine`` (or an
        accumulator or ``Threshold`` stage).
    weights : {'quant', 'annotated'}
        ``'quant'``: each weight initializer passes through ``BipolarQuant`` (the form Brevitas writes
        and hls4ml reads); ``'annotated'``: the ±1 initializer carries the ``BIPOLAR`` annotation
        (FINN's internal form).
    batch : int
        The batch dimension the graph declares (FINN expects 1).
    activations : {'multithreshold', 'bias-sign'}
        ``'multithreshold'``: batch norm + sign as ``MultiThreshold`` (FINN's streamlined form);
        ``'bias-sign'``: ``Add(acc, -t)`` then ``BipolarQuant`` (+1 iff ``acc - t >= 0``, the same bit;
        a dense layer with a bias and a binary activation, for tools without ``MultiThreshold``).

    Returns
    -------
    onnx.ModelProto
        Cleaned, with shapes and datatypes inferred.
    """
    onnx = require_onnx()
    if activations not in ACTIVATION_FORMS:
        raise InputError(f"activations must be one of {ACTIVATION_FORMS}, got {activations!r}")
    stages = _dense_stages(model)
    b = _Builder(onnx, weights)
    x, width, i = "input", stages[0].n, 0
    while i < len(stages):
        stage = stages[i]
        if not isinstance(stage, (BitplaneDense, XnorDense)):
            raise InputError(f"stage {i} ({type(stage).__name__}) must follow a dense stage")
        reach = stage.n * (255 if i == 0 else 1)
        if reach >= FLOAT32_EXACT:
            raise InputError(f"stage {i} sums up to {reach:,} in magnitude; float32 holds integers exactly only "
                             f"below 2**24, so qonnx's float execution would not be exact")
        w = binary.unpack(stage.w, stage.n).astype(np.int8)
        after = stages[i + 1] if i + 1 < len(stages) else None
        if isinstance(after, Threshold):
            flip = after.flip
            w[flip] = -w[flip]
            t = np.where(flip, -after.thresholds.astype(np.int64), after.thresholds.astype(np.int64))
            acc = b.weights_matmul(x, w, "binary")
            if activations == "multithreshold":
                x = b.node("MultiThreshold", [acc, b.constant("thresholds", t.reshape(-1, 1))], domain=QONNX_DOMAIN,
                           out_dtype="BIPOLAR", out_scale=2.0, out_bias=-1.0, data_layout="NC")
            else:
                x = b.node("BipolarQuant", [b.node("Add", [acc, b.constant("bias", -t)]), b.constant("scale", 1.0)],
                           domain=QONNX_DOMAIN)
            i += 2
        elif isinstance(after, Affine):
            acc = b.weights_matmul(x, w, "binary")
            x = b.batch_norm(acc, after.mean, after.scale, after.gain, after.beta)
            i += 2
        else:
            x = b.weights_matmul(x, w, "binary")
            i += 1
        width = int(stage.w.shape[0])
    signs = "MultiThreshold" if activations == "multithreshold" else "a bias and BipolarQuant"
    return b.model("bitsim_bnn", stages[0].n, x, width, batch,
                   f"bitsim BNN: uint8 pixels, bipolar weights, batch norm + sign as {signs}")


def export_connect(model, frac_bits, weights="quant", batch=1):
    """The QONNX graph of a deterministic Connect MLP with static fixed-point activations.

    Parameters
    ----------
    model : bitsim.nn.Sequential
        A network of ``bitsim train connect`` with binary or ternary weights.
    frac_bits : list of int
        Fractional bits of each Connect layer's input
        (:func:`bitsim.interop.connect_export.static_frac_bits`).
    weights : {'quant', 'annotated'}
        As in :func:`export_integer_model` (ternary weights: a 2-bit narrow signed ``Quant``, or the
        annotation ``TERNARY``).
    batch : int

    Returns
    -------
    onnx.ModelProto
    """
    onnx = require_onnx()
    blocks = connect_blocks(model)
    if len(frac_bits) != len(blocks):
        raise InputError(f"{len(frac_bits)} fractional bits given for {len(blocks)} Connect layers")
    b = _Builder(onnx, weights)
    x = b.node("Mul", ["input", b.constant("pixel_scale", 2.0**-8)])
    for (connect, bn, relu), f in zip(blocks, frac_bits):
        f = int(f)
        if not -126 <= f <= 126:
            raise InputError(f"fractional bits {f} give a scale 2**-{f} outside float32's normal range")
        x = b.node("Quant", [x, b.constant("act_scale", 2.0**-f), b.constant("zero", 0.0),
                             b.constant("bits", float(connect.act_bits))], domain=QONNX_DOMAIN,
                   signed=1, narrow=0, rounding_mode="HALF_EVEN")
        x = b.weights_matmul(x, deterministic_weights(connect), connect.kind)
        inv = (1 / np.sqrt(bn.running_var + bn.eps)).astype(np.float32)
        if bn.shift:
            inv, gain = ap2(inv), ap2(bn.gamma.value)
        else:
            gain = bn.gamma.value
        x = b.batch_norm(x, bn.running_mean, inv, gain, bn.beta.value)
        if relu is not None:
            x = b.node("Relu", [x])
    n_in, n_out = blocks[0][0].n_in, blocks[-1][0].n_out
    return b.model(f"bitsim_{blocks[0][0].kind}_connect", n_in, x, n_out, batch,
                   f"bitsim {blocks[0][0].kind} Connect MLP, static fixed-point activations, fractional bits "
                   f"{list(map(int, frac_bits))}")


def connect_headroom(model, frac_bits, images):
    """How close each Connect layer's float32 ``MatMul`` comes to inexact sums on ``images``.

    For each layer: ``max over outputs of sum |code|``, in units of the largest power of two ``g``
    that divides every code of the layer's input, as a fraction of ``2**24``. Below 1, every partial
    sum of every summation order is an integer multiple of ``g * 2**-f`` below ``2**24`` such
    multiples: the float32 ``MatMul`` of the exported graph is exact, whatever order it adds in.
    (Layer 0 reads ``pixel * 2**7`` codes: at most ``784 * 255 = 199,920`` units of ``g = 2**7``.)

    Returns
    -------
    list of float
    """
    out = []
    for (connect, _, _), f, x in zip(connect_blocks(model), frac_bits, block_inputs(model, frac_bits, images)):
        codes, _ = dynamic_fixed(x, connect.act_bits, frac_bits=int(f))
        magnitudes = np.abs(codes.astype(np.int64))
        bits = int(np.bitwise_or.reduce(magnitudes, axis=None)) if magnitudes.size else 0
        unit = bits & -bits if bits else 1
        w = np.abs(deterministic_weights(connect)).astype(np.int64)
        out.append(float((magnitudes @ w.T).max()) / unit / 2**24)
    return out


def at_batch(model, batch):
    """A qonnx ``ModelWrapper`` of an exported model that declares ``batch`` examples (for qonnx's executor)."""
    # qonnx is the optional onnx extra: imported where it is used
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    return ModelWrapper(model).transform(ChangeBatchSize(int(batch))).transform(InferShapes())


def input_name(model):
    """The name of the (single) input of an exported model."""
    return model.graph.input[0].name


def output_name(model):
    """The name of the (single) output of an exported model."""
    return model.graph.output[0].name


def is_bitsim_export(path):
    """Whether ``path`` is an ONNX file bitsim's export wrote (its producer is ``bitsim``)."""
    onnx = require_onnx()
    from google.protobuf.message import DecodeError  # protobuf comes with the optional onnx extra

    try:
        model = onnx.load_model_from_string(Path(path).read_bytes())
    except (OSError, ValueError, DecodeError):  # unreadable or not ONNX: not bitsim's export
        return False
    return model.producer_name == PRODUCER


def check_output(path, overwrite=False, inputs=()):
    """Raise unless an export may be written to ``path`` (the rule of :func:`write_model`)."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise InputError(f"the output {path} must end in .onnx")
    for item in inputs:
        if Path(item).resolve() == path.resolve():
            raise OutputExistsError(f"{path} is the input model; write the export somewhere else")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise OutputExistsError(f"{path} exists; replace it with --overwrite, or choose another --out")
        if path.is_symlink() or not path.is_file():
            raise OutputExistsError(f"{path} is not a regular file; bitsim replaces only its own exported .onnx")
        if not is_bitsim_export(path):
            raise OutputExistsError(f"{path} is not an ONNX file bitsim exported; bitsim will not replace it: "
                                    "move it away or choose another --out")


def write_model(model, path, overwrite=False, inputs=()):
    """Write an exported model to ``path`` atomically.

    An existing ``path`` is refused unless ``overwrite``, and even then replaced only when it is a
    regular file that bitsim's export wrote (its ONNX producer is ``bitsim``) and none of ``inputs``.

    Returns
    -------
    Path
    """
    path = Path(path)
    check_output(path, overwrite, inputs)
    data = model.SerializeToString()
    if not data:
        raise DamagedFileError(path, "the exported model serialized to nothing")
    atomic_write_bytes(path, data)
    return path


__all__ = ["export_integer_model", "export_connect", "connect_headroom", "write_model", "check_output",
           "is_bitsim_export",
           "input_name", "output_name", "at_batch", "finish", "WEIGHT_FORMS", "ACTIVATION_FORMS", "PRODUCER"]
