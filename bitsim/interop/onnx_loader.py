"""Read a QONNX model file into a :class:`~bitsim.interop.graph.Graph`, checked before it is used.

Steps, each refusing with a bitsim error that names the file (and the node, op type and supported
list where one is to blame): the file's size; the protobuf parse; external data (refused);
``onnx.checker``; QONNX's ``cleanup_model`` (shape inference, constant folding, unique node names,
readable tensor names) and ``InferShapes``; every op and attribute against :data:`SUPPORTED`; every
tensor's shape static.
"""

import warnings
from pathlib import Path

import numpy as np

from ..errors import (
    BitsimError,
    DamagedFileError,
    InputError,
    MissingExtra,
    MissingFileError,
    one_line,
)
from .graph import Graph, Node
from .ort_nodes import require_onnx

MAX_BYTES = 2 ** 31 - 1  # protobuf's limit for one message
QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "finn", "qonnx")
STANDARD_DOMAINS = ("", "ai.onnx")
CUSTOM_OPS = {
    "Quant": {"signed", "narrow", "rounding_mode"},
    "IntQuant": {"signed", "narrow", "rounding_mode"},
    "BipolarQuant": set(),
    "Trunc": {"rounding_mode", "narrow", "signed"},
    "MultiThreshold": {"out_dtype", "out_scale", "out_bias", "data_layout"},
    "XnorPopcountMatMul": set(),
    "FloatQuant": {"rounding_mode", "has_inf", "has_nan", "has_subnormal", "saturation"},
}
POOL = {"kernel_shape", "pads", "strides", "ceil_mode", "auto_pad"}
STANDARD_OPS = {
    "MatMul": set(), "Gemm": {"alpha", "beta", "transA", "transB"},
    "Conv": {"dilations", "group", "kernel_shape", "pads", "strides", "auto_pad"},
    "Add": set(), "Mul": set(), "Div": set(), "Sub": set(), "Relu": set(), "Sign": set(), "Identity": set(),
    "MaxPool": POOL | {"dilations", "storage_order"}, "AveragePool": POOL | {"count_include_pad"},
    "GlobalAveragePool": set(), "BatchNormalization": {"epsilon", "momentum", "training_mode", "spatial"},
    "Flatten": {"axis"}, "Reshape": {"allowzero"}, "Transpose": {"perm"}, "Concat": {"axis"},
}
SUPPORTED = {**CUSTOM_OPS, **STANDARD_OPS}
INPUTS = {"Quant": (4, 4), "IntQuant": (4, 4), "FloatQuant": (6, 6), "BipolarQuant": (2, 2), "Trunc": (5, 6),
          "MultiThreshold": (2, 2),
          "XnorPopcountMatMul": (2, 2), "MatMul": (2, 2), "Gemm": (2, 3), "Conv": (2, 3), "BatchNormalization": (5, 5),
          "Reshape": (2, 2), "Concat": (1, 1 << 20), "Add": (2, 2), "Mul": (2, 2), "Div": (2, 2), "Sub": (2, 2)}
ROUNDING = ("ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN")


def _supported_list():
    """The supported op types, sorted, comma-separated."""
    return ", ".join(sorted(SUPPORTED))


def _unsupported(path, node, problem):
    """The :class:`InputError` of a node bitsim does not implement, naming the file, node and op."""
    return InputError(f"{path}: node {node.name!r} ({node.op_type}): {problem}")


def check_node(path, node):
    """Refuse an op, domain or attribute that bitsim does not implement."""
    custom = node.domain in QONNX_DOMAINS or node.domain.startswith(("qonnx.", "finn."))
    table = CUSTOM_OPS if custom else STANDARD_OPS if node.domain in STANDARD_DOMAINS else {}
    if node.op_type not in table:
        where = f" of domain {node.domain!r}" if node.domain else ""
        raise _unsupported(path, node, f"op type {node.op_type}{where} is not supported; the supported ops are "
                                       f"{_supported_list()}")
    low, high = INPUTS.get(node.op_type, (1, 1))
    given = len([i for i in node.inputs if i])
    if not low <= given <= high or len(node.outputs) < 1:
        raise _unsupported(path, node, f"{given} inputs and {len(node.outputs)} outputs; {node.op_type} takes "
                                       f"{low}{'' if low == high else f' to {min(high, 99)}'} inputs and 1 output")
    extra = sorted(set(node.attrs) - table[node.op_type])
    if extra:
        raise _unsupported(path, node, f"attribute(s) {extra} are not implemented; {node.op_type} takes "
                                       f"{sorted(table[node.op_type]) or 'no attributes'}")
    at = node.attrs
    if at.get("auto_pad", "NOTSET") != "NOTSET":
        raise _unsupported(path, node, f"auto_pad={at['auto_pad']!r} is not implemented; give explicit pads "
                                       "(auto_pad NOTSET)")
    if node.op_type == "BatchNormalization" and (at.get("training_mode", 0) or len(node.outputs) > 1):
        raise _unsupported(path, node, "training mode is not implemented; export the model for inference")
    if node.op_type == "MaxPool" and (len(node.outputs) > 1 or at.get("storage_order", 0)):
        raise _unsupported(path, node, "MaxPool's indices output is not implemented")
    if node.op_type == "FloatQuant" and not at.get("saturation", 1) and not (at.get("has_inf", 0) or
                                                                             at.get("has_nan", 0)):
        raise _unsupported(path, node, "saturation=0 needs has_inf=1 or has_nan=1 (what values beyond the largest "
                                       "become); set one of them, or saturation=1")
    if node.op_type in ("Quant", "IntQuant", "Trunc", "FloatQuant") and \
            str(at.get("rounding_mode", "ROUND")).upper() not in ROUNDING:
        raise _unsupported(path, node, f"rounding_mode {at['rounding_mode']!r} is not one of {', '.join(ROUNDING)}")
    if node.op_type == "MultiThreshold" and at.get("data_layout", "") not in ("", "NC", "NCHW", "NHWC", "NWC", "NCW"):
        raise _unsupported(path, node, f"data_layout {at['data_layout']!r} is not one of NC, NCW, NWC, NCHW, NHWC")


def attribute_values(onnx, node):
    """A node's attributes as Python values (strings decoded, floats as the float32 values they hold)."""
    out = {}
    for attr in node.attribute:
        value = onnx.helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        elif isinstance(value, list):
            value = [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v for v in value]
        elif not isinstance(value, (int, float, str)):
            value = None  # a tensor or graph attribute: refused by check_node, which lists what is taken
        out[attr.name] = value
    return out


def _read_bytes(path):
    """The bytes of a model file, refused when it is missing, empty or larger than 2 GiB."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no model file {path}")
    size = path.stat().st_size
    if size == 0:
        raise DamagedFileError(path, "is empty; give an .onnx model file")
    if size > MAX_BYTES:
        raise InputError(f"{path} is {size:,} bytes, larger than one ONNX protobuf can be (2 GiB)")
    return path.read_bytes()


def _parse(onnx, data, path):
    """The ``onnx.ModelProto`` of ``data``, refused when it is not a model with a graph."""
    try:
        model = onnx.ModelProto()
        model.ParseFromString(data)
    except Exception as err:  # noqa: BLE001 - a protobuf DecodeError on any damage
        raise DamagedFileError(path, f"is not an ONNX model ({one_line(err)[:120]})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise DamagedFileError(path, "holds no ONNX graph with nodes; the file is damaged or not a model")
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise InputError(f"{path}: initializer {tensor.name!r} keeps its data in an external file; save the "
                             "model with its data inside (onnx.save(model, path, save_as_external_data=False))")
    present = {o.domain for o in model.opset_import}
    for domain in sorted({n.domain for n in model.graph.node} - present):
        if domain in QONNX_DOMAINS or domain.startswith(("qonnx.", "finn.")):
            model.opset_import.append(onnx.helper.make_opsetid(domain, 1))
    return model


def load_graph(path):
    """Read, check and clean a QONNX model file into a :class:`Graph` (see the module docstring).

    Raises
    ------
    MissingFileError, DamagedFileError, InputError, MissingExtra
    """
    try:
        return read_graph(path)
    except BitsimError:
        raise
    except (RecursionError, MemoryError) as err:
        raise DamagedFileError(path, f"cannot be read ({type(err).__name__}); the file is damaged") from None
    except Exception as err:  # noqa: BLE001 - an inconsistency the checks above did not name
        raise DamagedFileError(path, f"is an inconsistent model: {one_line(err)[:200]}") from None


def read_graph(path):
    """Read, check and clean a QONNX model file into a :class:`Graph` (see the module docstring).

    Raises
    ------
    MissingFileError, DamagedFileError, InputError, MissingExtra
    """
    onnx, _ = require_onnx()
    try:  # the optional onnx extra, imported only when a model is read
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.transformation.infer_shapes import InferShapes
        from qonnx.util.cleanup import cleanup_model
    except ImportError as err:
        raise MissingExtra(f"QONNX models need the onnx extra ({err.name} is not installed): "
                           'pip install -e ".[onnx]"') from None
    path = Path(path)
    model = _parse(onnx, _read_bytes(path), path)
    for node in model.graph.node:  # refuse what is not supported before QONNX's tools see it
        if not all(i in {t.name for t in model.graph.initializer} for i in node.input if i):
            check_node(path, Node(node.name or "(unnamed)", node.op_type, node.domain, tuple(node.input),
                                  tuple(node.output), attribute_values(onnx, node)))
    try:
        onnx.checker.check_model(model)
    except Exception as err:  # noqa: BLE001 - any failure of onnx, protobuf or QONNX becomes a bitsim error
        raise DamagedFileError(path, f"fails onnx.checker: {one_line(err)[:300]}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wrapper = cleanup_model(ModelWrapper(model))
            wrapper = wrapper.transform(InferShapes())
    except BitsimError:
        raise
    except Exception as err:  # noqa: BLE001 - QONNX's tools fail on inconsistent graphs in many ways
        raise DamagedFileError(path, f"QONNX's cleanup and shape inference fail on it: {one_line(err)[:300]}") from None
    return build(onnx, wrapper.model, path)


def tensor_types(onnx, model, path):
    """``{name: (shape, dtype)}`` of every typed tensor; a dynamic dimension is refused."""
    out = {}
    for info in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        t = info.type.tensor_type
        if not info.type.HasField("tensor_type") or not t.HasField("shape"):
            raise InputError(f"{path}: tensor {info.name!r} has no static shape; bitsim needs every shape "
                             "fixed (run QONNX's InferShapes, and fix the batch size)")
        dims = []
        for i, d in enumerate(t.shape.dim):
            if d.HasField("dim_value") and d.dim_value == 0:
                raise InputError(f"{path}: tensor {info.name!r} is empty (dimension {i} has size 0, e.g. from a "
                                 "Reshape with allowzero=1 and a 0 in its shape); bitsim runs tensors that hold "
                                 "values: give that Reshape the size it should have")
            if not d.HasField("dim_value") or d.dim_value <= 0:
                what = d.dim_param or "unknown"
                raise InputError(f"{path}: tensor {info.name!r} has a dynamic shape (dimension {i} is {what!r}); "
                                 "bitsim needs static shapes: fix the batch size, e.g. with qonnx's "
                                 "ChangeBatchSize(1), or onnx.tools.update_model_dims")
            dims.append(int(d.dim_value))
        try:
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type))
        except Exception:  # noqa: BLE001 - an element type onnx cannot map
            raise InputError(f"{path}: tensor {info.name!r} has element type {t.elem_type}, which bitsim does "
                             "not read") from None
        out[info.name] = (tuple(dims), dtype)
    return out


def build(onnx, model, path):
    """The :class:`Graph` of a cleaned model."""
    numpy_helper = onnx.numpy_helper
    initializers = {}
    for t in model.graph.initializer:
        try:
            initializers[t.name] = numpy_helper.to_array(t)
        except Exception as err:  # noqa: BLE001 - any failure of onnx, protobuf or QONNX becomes a bitsim error
            raise DamagedFileError(path, f"initializer {t.name!r} cannot be read ({one_line(err)[:100]})") from None
    types = tensor_types(onnx, model, path)
    for name, value in initializers.items():
        types.setdefault(name, (tuple(value.shape), value.dtype))
    opsets = {o.domain: o.version for o in model.opset_import}
    nodes = []
    for node in model.graph.node:
        n = Node(node.name, node.op_type, node.domain, tuple(node.input), tuple(node.output),
                 attribute_values(onnx, node), version=int(opsets.get(node.domain, 1)))
        check_node(path, n)
        for name in list(n.inputs) + list(n.outputs):
            if name and name not in types:
                raise InputError(f"{path}: node {n.name!r} ({n.op_type}): tensor {name!r} has no static shape "
                                 "after shape inference; bitsim needs every shape fixed")
        nodes.append(n)
    for name in types:
        if name not in initializers and types[name][1].kind not in "fiub":
            raise InputError(f"{path}: tensor {name!r} has dtype {types[name][1]}; bitsim reads numeric tensors")
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    if not inputs:
        raise InputError(f"{path}: the graph has no input (every tensor is a constant)")
    first = types[inputs[0]][0]
    for name in inputs:
        if not types[name][0] or types[name][0][0] != first[0]:
            raise InputError(f"{path}: input {name!r} has shape {types[name][0]}; bitsim needs every input to "
                             f"share the batch size {first[0] if first else '?'} in its first dimension")
    return Graph(nodes=nodes, initializers=initializers, shapes={k: v[0] for k, v in types.items()},
                 dtypes={k: v[1] for k, v in types.items()}, inputs=inputs,
                 outputs=[o.name for o in model.graph.output], opset=int(opsets.get("", 11)), path=str(path),
                 model=model.SerializeToString())


__all__ = ["load_graph", "SUPPORTED", "CUSTOM_OPS", "STANDARD_OPS", "MAX_BYTES"]
