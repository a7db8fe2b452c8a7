"""Imported QONNX networks in a sweep: the graph's own quantizers are the knobs.

A point of a QONNX sweep gives some of the graph's ``Quant`` (or ``IntQuant``) and ``BipolarQuant`` nodes a
new bit width, signedness, narrow range, rounding mode and scale rule (``docs/sweep.md``, "QONNX networks");
everything else in the graph stays as it is. :func:`modified_model` makes the changed copy of the cleaned
ONNX model in memory (the user's file is only read), :class:`QonnxContext` runs it at the ``exact`` level of
:mod:`bitsim.interop.qonnx` on the evaluation inputs, and :func:`qonnx_costs` counts its memory and
multiplications from the chosen widths.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..interop.exact_tensor import ROUNDING_MODES
from ..schema import BOOL, Int, OneOf

__all__ = ["QUANT_OPS", "QUANT_PARAMS", "SCALE_RULES", "Quantizer", "QonnxNetwork", "load_qonnx", "canonical_quant",
           "quant_label", "effective", "choice_error", "modified_model", "qonnx_costs", "QonnxContext", "predictions",
           "quantizer_totals"]

QUANT_OPS = ("Quant", "IntQuant", "BipolarQuant")
SCALE_RULES = ("keep", "range")
QUANT_PARAMS = {"bits?": Int(1, 32), "signed?": BOOL, "narrow?": BOOL, "rounding?": OneOf(*ROUNDING_MODES),
                "scale?": OneOf(*SCALE_RULES)}
# data movement and ReLU keep a quantizer's set of values (so whether a product with them needs a multiplier)
PASS_THROUGH = ("Identity", "Reshape", "Flatten", "Transpose", "MaxPool", "Relu")


@dataclass(frozen=True)
class Quantizer:
    """One quantizer node of the graph as it is: its own width, signedness, narrow range and rounding, the
    elements it quantizes (per example for an activation), and whether its input is a constant (a weight)."""

    name: str
    op: str
    bits: int
    signed: bool
    narrow: bool
    rounding: str
    weight: bool
    values: int
    scale_constant: bool


@dataclass
class QonnxNetwork:
    """A loaded QONNX graph as a sweep target.

    Attributes
    ----------
    graph : bitsim.interop.graph.Graph
    quantizers : list of Quantizer
        Every ``Quant``, ``IntQuant`` and ``BipolarQuant`` whose bit width is a constant, in graph order.
    sha256 : str
        Of the model file.
    """

    graph: object
    quantizers: list
    sha256: str
    kind: str = "qonnx"
    variant: str = ""

    @property
    def names(self):
        """The quantizers' node names, in graph order."""
        return [q.name for q in self.quantizers]

    def quantizer(self, name):
        """The :class:`Quantizer` of node ``name``."""
        return next(q for q in self.quantizers if q.name == name)


def _scalar(graph, name):
    value = graph.initializers.get(name)
    if value is None or np.size(value) != 1:
        return None
    return float(np.asarray(value).reshape(-1)[0])


def load_qonnx(path):
    """Read a QONNX model file (:func:`bitsim.interop.qonnx.load`) as a :class:`QonnxNetwork`.

    Raises
    ------
    InputError
        A graph with no quantizer whose bit width is a constant, or whose output is not one row of scores per
        example.
    """
    import hashlib

    from ..interop.qonnx import load

    graph = load(path)
    constant = set(graph.tensor_names()) - graph.batched()
    quantizers = []
    for node in graph.nodes:
        if node.op_type not in QUANT_OPS:
            continue
        out = graph.shapes[node.outputs[0]]
        weight = node.inputs[0] in constant or node.inputs[0] in graph.initializers
        values = math.prod(out) if weight else math.prod(out) // max(graph.batch, 1)
        scale_constant = node.inputs[1] in graph.initializers
        if node.op_type == "BipolarQuant":
            quantizers.append(Quantizer(node.name, node.op_type, 1, True, False, "ROUND", weight, values,
                                        scale_constant))
            continue
        bits = _scalar(graph, node.inputs[3])
        if bits is None or bits != int(bits) or not 1 <= bits <= 32:
            continue  # a width computed in the graph, or one bitsim cannot give a code: not a knob
        quantizers.append(Quantizer(node.name, node.op_type, int(bits), bool(node.attrs.get("signed", 1)),
                                    bool(node.attrs.get("narrow", 0)),
                                    str(node.attrs.get("rounding_mode", "ROUND")).upper(), weight, values,
                                    scale_constant))
    if not quantizers:
        raise InputError(f"{path}: the graph has no Quant, IntQuant or BipolarQuant node with a constant bit width; "
                         "a sweep of a QONNX network changes its quantizers")
    shape = graph.shapes.get(graph.outputs[0], ())
    if len(graph.outputs) != 1 or len(shape) != 2:
        raise InputError(f"{path}: the sweep reads one output of scores (examples, classes); this graph's outputs "
                         f"are {graph.outputs} of shape {tuple(shape)}")
    return QonnxNetwork(graph, quantizers, hashlib.sha256(Path(path).read_bytes()).hexdigest(),
                        variant=Path(path).name)


def canonical_quant(choice):
    """A quantizer choice with its scale rule filled in (``keep``) and its keys sorted."""
    p = {"scale": "keep", **choice}
    return {k: p[k] for k in sorted(p)}


def quant_label(choice):
    """A short name of a canonical quantizer choice, e.g. ``4b/unsigned/HALF_UP/range``; ``-`` when it changes
    nothing of the node's own (its scale rule is shown only when it is ``range``)."""
    parts = [f"{choice['bits']}b"] if "bits" in choice else []
    if "signed" in choice:
        parts.append("signed" if choice["signed"] else "unsigned")
    if "narrow" in choice:
        parts.append("narrow" if choice["narrow"] else "full")
    parts += [choice["rounding"]] if "rounding" in choice else []
    parts += ["range"] if choice["scale"] == "range" else []
    return "/".join(parts) or "-"


def effective(q, choice):
    """``(bits, signed, narrow, rounding)`` of quantizer ``q`` at a point: the choice over the node's own."""
    return (choice.get("bits", q.bits), choice.get("signed", q.signed), choice.get("narrow", q.narrow),
            choice.get("rounding", q.rounding))


def _magnitude_bits(bits, signed):
    return bits - 1 if signed else bits


def choice_error(q, choice):
    """Why ``choice`` cannot be quantizer ``q``'s, or None."""
    bits, signed, narrow, _ = effective(q, choice)
    if bits == 1 and not signed and narrow:
        return f"quantizer {q.name!r}: an unsigned narrow 1-bit quantizer has the one code 0; widen it or drop narrow"
    if choice["scale"] == "range" and not q.scale_constant:
        return f"quantizer {q.name!r}: scale = \"range\" needs a constant scale input; this node computes its scale"
    return None


def _unchanged(q, choice):
    return effective(q, choice) == (q.bits, q.signed, q.narrow, q.rounding)  # then "range" moves the scale by 2**0


def modified_model(network, choices):
    """The cleaned ONNX model of ``network`` with quantizers changed, as an ``onnx.ModelProto`` (a copy).

    Per named quantizer: its bit width becomes a new constant, its ``signed``, ``narrow`` and ``rounding_mode``
    attributes are set, and with ``scale = 'range'`` its scale becomes ``s * 2**(m0 - m)``, where ``m`` is the
    magnitude bits of the new width (``bits - 1`` signed, ``bits`` unsigned) and ``m0`` those of the node's own
    (0 for a ``BipolarQuant``): the same top of the range, the low bits dropped. A ``BipolarQuant`` given
    anything but a signed 1-bit code becomes ``Quant(x, s, 0, bits)``. A choice that changes nothing leaves the
    node as it is. New constants get new names; no tensor of the model is changed in place.

    Parameters
    ----------
    network : QonnxNetwork
    choices : dict
        Quantizer name -> canonical choice (:func:`canonical_quant`).

    Returns
    -------
    onnx.ModelProto
    """
    from ..interop.ort_nodes import require_onnx

    onnx, _ = require_onnx()
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    model = onnx.ModelProto()
    model.ParseFromString(network.graph.model)
    nodes = {node.name: node for node in model.graph.node}
    taken = {t.name for t in model.graph.initializer} | {name for node in model.graph.node for name in
                                                          list(node.input) + list(node.output)}

    def constant(base, value):
        name, i = f"{base}_sweep", 0
        while name in taken:
            i += 1
            name = f"{base}_sweep{i}"
        taken.add(name)
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    for name, choice in choices.items():
        q = network.quantizer(name)
        if _unchanged(q, choice):
            continue
        bits, signed, narrow, rounding = effective(q, choice)
        node = nodes[name]
        inputs = list(node.input)
        if choice["scale"] == "range":
            shift = _magnitude_bits(q.bits, q.signed) - _magnitude_bits(bits, signed)
            scale = np.asarray(network.graph.initializers[inputs[1]], np.float32)
            moved = np.ldexp(scale, shift).astype(np.float32)
            if not np.array_equal(np.ldexp(moved.astype(np.float64), -shift), scale.astype(np.float64)):
                raise InputError(f"quantizer {name!r}: its scale times 2**{shift} leaves float32's range")
            inputs[1] = constant(f"{name}_scale", moved)
        if node.op_type == "BipolarQuant":
            inputs = inputs[:2] + [constant(f"{name}_zero", 0.0), constant(f"{name}_bits", float(bits))]
            node.op_type = "Quant"
        else:
            inputs[3] = constant(f"{name}_bits", float(bits))
        del node.input[:]
        node.input.extend(inputs)
        kept = [a for a in node.attribute if a.name not in ("signed", "narrow", "rounding_mode")]
        del node.attribute[:]
        node.attribute.extend(kept + [helper.make_attribute("signed", int(signed)),
                                      helper.make_attribute("narrow", int(narrow)),
                                      helper.make_attribute("rounding_mode", rounding)])
    return model


def _codes_in_unit(q, choice):
    """True when the quantizer's codes at the point are in {-1, 0, +1} (its products need no multiplier)."""
    bits, signed, narrow, _ = effective(q, choice)
    return bits == 1 or (signed and bits == 2 and narrow)


def _multiplier_free(graph, tensor, free, producers):
    """Whether products with ``tensor`` need no multiplier: it is (through data movement and ReLU) a quantizer's
    output with codes in {-1, 0, +1}, a bipolar or 0/1 ``MultiThreshold``, or a constant of one magnitude."""
    while True:
        if tensor in graph.initializers:
            mags = np.unique(np.abs(np.asarray(graph.initializers[tensor], np.float64)))
            return mags[mags != 0].size <= 1
        node = producers.get(tensor)
        if node is None:
            return False
        if node.op_type in QUANT_OPS:
            return free.get(node.name, False)
        if node.op_type == "MultiThreshold":
            levels = np.asarray(graph.initializers.get(node.inputs[1], np.zeros((1, 2))))
            scale, bias = float(node.attrs.get("out_scale", 1.0)), float(node.attrs.get("out_bias", 0.0))
            values = {abs(bias), abs(bias + scale)}
            return levels.shape[-1] == 1 and len(values - {0.0}) <= 1
        if node.op_type not in PASS_THROUGH:
            return False
        tensor = node.inputs[0]


def qonnx_costs(network, choices):
    """Memory and multiplications of a point (``docs/sweep.md``, "QONNX networks").

    Returns
    -------
    dict
        ``weight_bytes``: ``ceil(values * bits / 8)`` over the quantizers of constants (weights);
        ``activation_bytes``: the same per example over the quantizers of the data path; ``multiplications`` per
        example: the products of ``MatMul``, ``Gemm`` and ``Conv`` nodes neither of whose operands is
        multiplier-free (codes in {-1, 0, +1}, through data movement and ReLU).
    """
    graph = network.graph
    weight = activation = 0
    free = {}
    for q in network.quantizers:
        choice = choices.get(q.name, {"scale": "keep"})
        nbytes = math.ceil(q.values * effective(q, choice)[0] / 8)
        weight += nbytes if q.weight else 0
        activation += 0 if q.weight else nbytes
        free[q.name] = _codes_in_unit(q, choice)
    producers = {out: node for node in graph.nodes for out in node.outputs}
    batched = graph.batched()
    mults = 0
    for node in graph.nodes:
        if node.op_type not in ("MatMul", "Gemm", "Conv") or node.outputs[0] not in batched:
            continue
        a, b = graph.shapes[node.inputs[0]], graph.shapes[node.inputs[1]]
        if node.op_type == "MatMul":
            k = a[-1]
        elif node.op_type == "Gemm":
            k = a[0] if node.attrs.get("transA", 0) else a[1]
        else:
            k = math.prod(b[1:])
        if any(_multiplier_free(graph, t, free, producers) for t in node.inputs[:2]):
            continue
        mults += math.prod(graph.shapes[node.outputs[0]]) // max(graph.batch, 1) * k
    return {"weight_bytes": weight, "activation_bytes": activation, "multiplications": mults}


def predictions(graph, inputs, events=None):
    """The first largest score of each example at the exact level (``events``: see
    :meth:`bitsim.interop.graph.Graph.run_exact`)."""
    if events is None:
        scores = graph.run(inputs, semantics="exact", names=graph.outputs)[graph.outputs[0]]
    else:
        scores = graph.run_exact(inputs, names=graph.outputs, events=events)[0][graph.outputs[0]]
    return np.asarray(scores).argmax(1)


def quantizer_totals(events):
    """``(saturated, underflows)`` summed over every ``Quant`` node's events, or ``(None, None)`` when a node
    ran by the reference rule and was not counted."""
    if any(counter is None for counter in events.values()):
        return None, None
    return (sum(c["saturated"] for c in events.values()), sum(c["underflows"] for c in events.values()))


@dataclass
class QonnxContext:
    """What every point of a QONNX sweep reads: the cleaned model, the evaluation inputs and labels, and the
    unchanged graph's predictions on them at the exact level. Workers rebuild the graph from the model bytes."""

    network: QonnxNetwork
    inputs: np.ndarray
    labels: np.ndarray
    float_predictions: np.ndarray

    @classmethod
    def build(cls, network, inputs, labels):
        """Run the unchanged graph once on ``inputs``."""
        return cls(network, inputs, np.asarray(labels, np.int64), predictions(network.graph, inputs))

    def graph_of(self, config):
        """The point's graph: :func:`modified_model` through the QONNX loader's checks and build."""
        from ..interop.onnx_loader import build
        from ..interop.ort_nodes import require_onnx

        onnx, _ = require_onnx()
        return build(onnx, modified_model(self.network, config["quantizers"]), self.network.graph.path)

    def result(self, config):
        """The recorded values of one point (``accumulator_events``: None, the exact level has no accumulator
        edge; ``saturated`` and ``underflows``: over every ``Quant`` node, weights and activations)."""
        events = {}
        predicted = predictions(self.graph_of(config), self.inputs, events)
        saturated, underflows = quantizer_totals(events)
        n = len(self.labels)
        return {"test_error": int(np.sum(predicted != self.labels)) / n,
                "agreement": int(np.sum(predicted == self.float_predictions)) / n,
                **qonnx_costs(self.network, config["quantizers"]),
                "accumulator_events": None, "saturated": saturated, "underflows": underflows}

    def __getstate__(self):  # workers rebuild the graph (its onnxruntime sessions do not travel)
        graph = self.network.graph
        light = type(graph)(nodes=graph.nodes, initializers=graph.initializers, shapes=graph.shapes,
                            dtypes=graph.dtypes, inputs=graph.inputs, outputs=graph.outputs, opset=graph.opset,
                            path=graph.path, model=graph.model)
        return {**self.__dict__, "network": QonnxNetwork(light, self.network.quantizers, self.network.sha256,
                                                         variant=self.network.variant)}
