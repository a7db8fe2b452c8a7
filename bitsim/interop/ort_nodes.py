"""Standard ops run through onnxruntime, one node at a time, as QONNX's executor runs them.

QONNX's ``execute_node`` builds a one-node model for every standard op and runs it in an onnxruntime
session. A float32 ``MatMul``, ``Gemm`` or ``Conv`` adds its rounded products in an order that ONNX
leaves to the implementation, so the reference semantics does the same instead of guessing an order:
:class:`NodeSession` builds that one-node model once (with the tensor shapes the graph declares,
batch included) and runs it on every batch.
"""

import numpy as np

from ..errors import InputError, MissingExtra

ONNX_EXTRA = 'pip install -e ".[onnx]"'


def require_onnx():
    """Import ``onnx`` and ``onnxruntime``, or raise :class:`MissingExtra` naming the pip command."""
    try:  # the optional onnx extra, imported only when a model runs
        import onnx
        import onnxruntime
    except ImportError as err:
        raise MissingExtra(f"QONNX models need the onnx extra ({err.name or err} is not installed): "
                           f"{ONNX_EXTRA}") from None
    return onnx, onnxruntime


class NodeSession:
    """An onnxruntime session for one standard node of a graph.

    Parameters
    ----------
    node : bitsim.interop.graph.Node
    graph : bitsim.interop.graph.Graph
        Gives the declared shapes and dtypes of the node's tensors and the graph's opset.
    """

    def __init__(self, node, graph):
        onnx, rt = require_onnx()
        helper = onnx.helper

        def info(name):
            dtype = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(graph.dtypes[name]))
            return helper.make_tensor_value_info(name, dtype, list(graph.shapes[name]))

        inputs = [info(name) for name in node.inputs if name]
        outputs = [info(name) for name in node.outputs]
        proto = helper.make_node(node.op_type, list(node.inputs), list(node.outputs), name=node.name,
                                 domain=node.domain, **node.attrs)
        model = helper.make_model(helper.make_graph([proto], "single-node", inputs, outputs),
                                  opset_imports=[helper.make_opsetid("", graph.opset)])
        model.ir_version = min(model.ir_version, 10)
        options = rt.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = rt.InferenceSession(model.SerializeToString(), options,
                                               providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - an attribute or shape onnxruntime does not implement
            raise InputError(f"node {node.name!r} ({node.op_type}): onnxruntime cannot run it "
                             f"({str(err).strip().splitlines()[-1][:200]})") from None
        self.inputs = [name for name in node.inputs if name]
        self.name = node.name

    def __call__(self, args):
        """The node's outputs for its input arrays ``args`` (in the order of its inputs)."""
        try:
            return self.session.run(None, dict(zip(self.inputs, args)))
        except Exception as err:  # noqa: BLE001 - operands that contradict the declared shapes
            raise InputError(f"onnxruntime cannot run node {self.name!r}: {str(err).strip()[:200]}") from None


__all__ = ["NodeSession", "require_onnx", "ONNX_EXTRA"]
