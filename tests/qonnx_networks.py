"""QONNX test networks built from code with ``onnx.helper``: random weights, fixed seeds.

``tfc(...)``: a TFC-style MLP 784-64-64-64-10 with Quant / BipolarQuant weights and activations;
``cnv(...)``: a CNV-style convolutional net (Conv, BatchNormalization, Quant, MaxPool, Flatten, Gemm);
``tfc_streamlined(...)`` and ``cnv_streamlined(...)``: the same networks as FINN's streamlining leaves
them (integer weights, MultiThreshold instead of batch norm and scales). Each returns an
``onnx.ModelProto``; :func:`save` writes one. Importable from benchmarks by adding ``tests/`` to the path.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

QONNX = "qonnx.custom_op.general"


class Builder:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, base):
        self.count += 1
        return f"{base}{self.count}"

    def const(self, value, base="c"):
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def ints(self, value, base="s"):
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.int64), name))
        return name

    def node(self, op, inputs, domain="", **attrs):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], domain=domain, **attrs))
        return out

    def quant(self, x, scale, bits, signed=True, narrow=False, rounding="ROUND", zero_point=0.0):
        if bits == 1 and signed:
            return self.node("BipolarQuant", [x, self.const(scale)], domain=QONNX)
        return self.node("Quant", [x, self.const(scale), self.const(zero_point), self.const(float(bits))],
                         domain=QONNX, signed=int(signed), narrow=int(narrow), rounding_mode=rounding)

    def model(self, x, shape, y):
        graph = helper.make_graph(self.nodes, "net", [helper.make_tensor_value_info(x, TensorProto.FLOAT, shape)],
                                  [helper.make_tensor_value_info(y, TensorProto.FLOAT, None)], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)])
        model.ir_version = 8
        return with_shapes(model)


def with_shapes(model):
    """``model`` with the shapes of every tensor filled in by QONNX's shape inference."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    return ModelWrapper(model).transform(InferShapes()).model


def tfc(seed=0, w_bits=2, a_bits=2, signed=True, narrow=False, rounding="ROUND", pow2=True, batch=1,
        sizes=(784, 64, 64, 64, 10), batch_norm=True):
    """A TFC-style MLP: 8-bit input Quant, then per layer Quant(W) MatMul, batch norm (or a bias), Quant."""
    b = Builder(seed)
    in_scale = 2.0 ** -8 if pow2 else 1 / 255
    h = b.quant("x", in_scale, 8, signed=False, rounding=rounding)
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = b.rng.normal(0, 1, (n_in, n_out)).astype(np.float32)
        w_scale = 2.0 ** -2 if pow2 else 0.3
        wq = b.quant(b.const(w, "w"), w_scale, w_bits, signed=signed or w_bits == 1, narrow=narrow,
                     rounding=rounding)
        h = b.node("MatMul", [h, wq])
        if i == len(sizes) - 2:
            break
        if batch_norm:
            h = b.node("BatchNormalization", [h, b.const(b.rng.uniform(0.5, 2, n_out)),
                                              b.const(b.rng.normal(0, 1, n_out)),
                                              b.const(b.rng.normal(0, 2, n_out)),
                                              b.const(b.rng.uniform(5, 50, n_out))], epsilon=1e-5)
        else:
            h = b.node("Add", [h, b.const(np.round(b.rng.normal(0, 4, n_out)) * in_scale * w_scale)])
        a_scale = 2.0 ** -1 if pow2 else 0.7
        h = b.quant(h, a_scale, a_bits, signed=signed or a_bits == 1, narrow=narrow, rounding=rounding)
    return b.model("x", [batch, sizes[0]], h)


def tfc_streamlined(seed=0, w_bits=1, a_bits=1, batch=1, sizes=(784, 64, 64, 64, 10), binary_input=False,
                    tail=None):
    """TFC after streamlining: integer-valued weights, MultiThreshold activations, a final Mul and Add.

    ``binary_input``: the pixels 0..255 are first binarized to -1/+1 at 128 by a bipolar MultiThreshold, as
    FINN's TFC-w1a1 (Brevitas' bnn_pynq, input bit width 1) is after streamlining; else the first MatMul
    takes the pixels themselves (8-bit input). ``tail``: the nodes after the last MatMul instead of the Mul
    and Add, as ``(op_type, constant or None, constant first)`` (None: a node of one input, e.g. Relu)."""
    b = Builder(seed)
    h = "x"
    if binary_input:
        h = b.node("MultiThreshold", [h, b.const(np.full((1, 1), 128.0), "t")], domain=QONNX, out_dtype="BIPOLAR",
                   out_scale=2.0, out_bias=-1.0)
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if w_bits == 1:
            w = np.where(b.rng.random((n_in, n_out)) < 0.5, -1.0, 1.0)
        else:
            w = b.rng.integers(-(2 ** (w_bits - 1)), 2 ** (w_bits - 1), (n_in, n_out)).astype(np.float32)
        h = b.node("MatMul", [h, b.const(w, "w")])
        if i == len(sizes) - 2:
            break
        steps = 2 ** a_bits - 1
        spread = np.sqrt(n_in) * (255 if i == 0 and not binary_input else steps)
        t = np.sort(np.round(b.rng.normal(0, spread / 4, (n_out, steps))), axis=1)
        h = b.node("MultiThreshold", [h, b.const(t, "t")], domain=QONNX, out_dtype=f"UINT{a_bits}"
                   if a_bits > 1 else "BIPOLAR", out_scale=2.0 if a_bits == 1 else 1.0,
                   out_bias=-1.0 if a_bits == 1 else 0.0)
    if tail is None:
        tail = [("Mul", np.float32(0.125), False), ("Add", np.round(b.rng.normal(0, 8, sizes[-1])) * 0.125, False)]
    for op, value, first in tail:
        if value is None:
            h = b.node(op, [h])
        else:
            c = b.const(np.asarray(value, np.float32))
            h = b.node(op, [c, h] if first else [h, c])
    return b.model("x", [batch, sizes[0]], h)


def cnv(seed=0, w_bits=2, a_bits=2, batch=1, size=12, channels=(3, 8, 8), classes=10, rounding="ROUND",
        pow2=True, groups=2):
    """A CNV-style net: Quant input, (Conv, BatchNormalization, Quant, MaxPool) x 2, Flatten, Gemm."""
    b = Builder(seed)
    h = b.quant("x", 2.0 ** -8 if pow2 else 1 / 255, 8, signed=False, rounding=rounding)
    c_in = channels[0]
    for i, c_out in enumerate(channels[1:]):
        g = groups if i else 1
        w = b.rng.normal(0, 1, (c_out, c_in // g, 3, 3)).astype(np.float32)
        wq = b.quant(b.const(w, "w"), 2.0 ** -1 if pow2 else 0.4, w_bits, rounding=rounding)
        h = b.node("Conv", [h, wq], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], group=g)
        h = b.node("BatchNormalization", [h, b.const(b.rng.uniform(0.5, 2, c_out)), b.const(b.rng.normal(0, 1, c_out)),
                                          b.const(b.rng.normal(0, 2, c_out)), b.const(b.rng.uniform(1, 10, c_out))],
                   epsilon=1e-5)
        h = b.quant(h, 2.0 ** -1 if pow2 else 0.6, a_bits, signed=a_bits == 1, rounding=rounding)
        h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
        c_in = c_out
    h = b.node("Flatten", [h], axis=1)
    features = c_in * (size // 4) ** 2
    w = b.rng.normal(0, 1, (classes, features)).astype(np.float32)
    wq = b.quant(b.const(w, "w"), 2.0 ** -2 if pow2 else 0.3, w_bits, rounding=rounding)
    h = b.node("Gemm", [h, wq, b.const(b.rng.normal(0, 1, classes) * 0.25)], transB=1)
    return b.model("x", [batch, channels[0], size, size], h)


def cnv_streamlined(seed=0, batch=1, size=12, channels=(3, 8, 8), classes=10, layout="NCHW"):
    """CNV after streamlining: integer weights, per-channel MultiThreshold, MaxPool, Flatten, MatMul, Mul."""
    b = Builder(seed)
    h = "x"
    c_in = channels[0]
    for i, c_out in enumerate(channels[1:]):
        w = np.where(b.rng.random((c_out, c_in, 3, 3)) < 0.5, -1.0, 1.0)
        h = b.node("Conv", [h, b.const(w, "w")], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        t = np.sort(np.round(b.rng.normal(0, (255 if i == 0 else 3) * np.sqrt(9 * c_in) / 4, (c_out, 3))), axis=1)
        if layout == "NHWC":
            h = b.node("Transpose", [h], perm=[0, 2, 3, 1])
            h = b.node("MultiThreshold", [h, b.const(t, "t")], domain=QONNX, out_dtype="UINT2",
                       data_layout="NHWC")
            h = b.node("Transpose", [h], perm=[0, 3, 1, 2])
        else:
            h = b.node("MultiThreshold", [h, b.const(t, "t")], domain=QONNX, out_dtype="UINT2")
        h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
        c_in = c_out
    h = b.node("Flatten", [h], axis=1)
    w = np.where(b.rng.random((c_in * (size // 4) ** 2, classes)) < 0.5, -1.0, 1.0)
    h = b.node("MatMul", [h, b.const(w, "w")])
    h = b.node("Mul", [h, b.const(np.float32(0.5))])
    return b.model("x", [batch, channels[0], size, size], h)


def images(seed, shape, grid=256):
    """Inputs on the grid of an 8-bit input quantizer: ``k / grid`` (or integers 0..255 for ``grid=1``)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, shape) / grid).astype(np.float32)


def save(model, path):
    onnx.save(model, str(path))
    return path


__all__ = ["tfc", "tfc_streamlined", "cnv", "cnv_streamlined", "images", "save"]
