"""A QONNX model as bitsim runs it: nodes in topological order, constant tensors, declared shapes.

:class:`Graph` is what :func:`bitsim.interop.qonnx.load` returns. :meth:`Graph.run` computes every
tensor of the graph at one of two levels (``docs/qonnx.md``):

``reference``  QONNX's executor, bit for bit (:mod:`bitsim.interop.float_ops`, and onnxruntime for the
               standard ops whose float32 result depends on an order of additions)
``exact``      integer codes with exact products, sums and comparisons (:mod:`bitsim.interop.exact_ops`)

The graph runs on batches of the batch size its inputs declare: inputs of ``M`` times that many
examples run in ``M`` chunks, and every tensor of the result is the chunks' tensors joined along
their first axis.
"""

from dataclasses import dataclass, field

import numpy as np

from ..errors import BitsimError, InputError, InputTypeError, one_line
from . import float_ops
from .batches import join
from .exact_ops import run_exact
from .exact_plan import plan_of, run_planned
from .ort_nodes import NodeSession

SEMANTICS = ("reference", "exact")


@dataclass
class Node:
    """One node: op type, domain, input and output tensor names, attributes, QONNX op version."""

    name: str
    op_type: str
    domain: str
    inputs: tuple
    outputs: tuple
    attrs: dict = field(default_factory=dict)
    version: int = 1


@dataclass
class Graph:
    """A loaded QONNX model (see the module docstring).

    Attributes
    ----------
    nodes : list of Node
        In topological order.
    initializers : dict of str to numpy.ndarray
        The constant tensors.
    shapes, dtypes : dict of str to tuple / numpy.dtype
        The static shape and dtype of every tensor.
    inputs, outputs : list of str
        The graph's input and output tensor names.
    opset : int
        The opset of the standard ONNX domain.
    path : str
        The file the graph was read from.
    model : bytes
        The model after QONNX's cleanup and shape inference (what ``bitsim qonnx check`` gives QONNX).
    """

    nodes: list
    initializers: dict
    shapes: dict
    dtypes: dict
    inputs: list
    outputs: list
    opset: int
    path: str = ""
    model: bytes = b""
    sessions: dict = field(default_factory=dict, repr=False)
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def batch(self):
        """The batch size the first input declares (its first dimension)."""
        shape = self.shapes[self.inputs[0]]
        return int(shape[0]) if shape else 1

    def tensor_names(self):
        """Every tensor the run computes, in order: the inputs, then each node's outputs."""
        return list(self.inputs) + [name for node in self.nodes for name in node.outputs]

    def batched(self):
        """The tensors that depend on the inputs (the others are computed from constants alone)."""
        names = set(self.inputs)
        for node in self.nodes:
            if any(name in names for name in node.inputs):
                names.update(node.outputs)
        return names

    def session(self, node):
        """The onnxruntime session of a standard node (built once)."""
        if node.name not in self.sessions:
            self.sessions[node.name] = NodeSession(node, self)
        return self.sessions[node.name]

    def run_float_node(self, node, args):
        """The outputs of ``node`` at the reference level, from its input arrays."""
        if node.op_type in float_ops.ORT_OPS:
            return list(self.session(node)(args))
        out = float_ops.run_node(node, args)
        return [np.asarray(out)]

    def run_node_checked(self, node, args):
        """:meth:`run_float_node`, with NumPy's errors on inconsistent operands as a bitsim error naming the node."""
        try:
            return self.run_float_node(node, args)
        except (BitsimError, MemoryError):
            raise
        except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError, OverflowError) as err:
            raise InputError(f"node {node.name!r} ({node.op_type}) cannot run on operands of shapes "
                             f"{[np.shape(a) for a in args]}: {one_line(err)[:200]}") from None

    def prepare(self, inputs):
        """``inputs`` checked against the declared shapes and dtypes; the number of chunks."""
        if not isinstance(inputs, dict):
            if len(self.inputs) != 1:
                raise InputError(f"the graph has {len(self.inputs)} inputs {self.inputs}; give a dict of arrays")
            inputs = {self.inputs[0]: inputs}
        missing = [name for name in self.inputs if name not in inputs]
        extra = [name for name in inputs if name not in self.inputs]
        if missing or extra:
            raise InputError(f"the graph's inputs are {self.inputs}; missing {missing}, unknown {extra}")
        chunks, ready = None, {}
        for name in self.inputs:
            x, shape, dtype = np.asarray(inputs[name]), self.shapes[name], np.dtype(self.dtypes[name])
            if x.dtype != dtype:
                exact = x.dtype.kind in "iub" and dtype.kind == "f" and x.dtype.itemsize <= 2
                if not exact:
                    raise InputTypeError(f"input {name!r} is {x.dtype}; the model reads {dtype} (integers of at "
                                         f"most 16 bits are converted exactly)")
                x = x.astype(dtype)
            batch = shape[0] if shape else 1
            if not shape or x.ndim != len(shape) or tuple(x.shape[1:]) != tuple(shape[1:]) or \
                    x.shape[0] % batch or not x.shape[0]:
                raise InputError(f"input {name!r} has shape {x.shape}; the model declares {tuple(shape)}: give "
                                 f"a multiple of {batch} examples of shape {tuple(shape[1:])}")
            n = x.shape[0] // batch
            if chunks is not None and n != chunks:
                raise InputError("the inputs hold different numbers of batches")
            chunks = n
            ready[name] = x
        return ready, chunks

    def run(self, inputs, semantics="reference", names=None):
        """Every tensor of the graph on ``inputs``.

        Parameters
        ----------
        inputs : numpy.ndarray or dict of str to numpy.ndarray
            One array per graph input (a bare array for a graph with one input), shaped as the model
            declares except that the first (batch) dimension may be any multiple of the declared one.
            Integer arrays of at most 16 bits are converted exactly to the declared float type.
        semantics : {'reference', 'exact'}
            ``reference``: what QONNX's executor computes, bit for bit. ``exact``: integer codes with
            exact products, sums and threshold comparisons, every tensor rounded once to float32 at the
            end (:meth:`run_exact` also gives the codes).
        names : list of str, optional
            The tensors to return (e.g. ``graph.outputs``); by default every tensor. Fewer names save
            the work of converting and joining the others, not of computing them.

        Returns
        -------
        dict of str to numpy.ndarray
            Every tensor by its ONNX name: the inputs and every node's outputs (the constant tensors
            are in :attr:`initializers`), or the ``names`` asked for.
        """
        if semantics not in SEMANTICS:
            raise InputError(f"unknown semantics {semantics!r}; choose {' or '.join(SEMANTICS)}")
        names = self.check_names(names)
        if semantics == "exact":
            planned = run_planned(self, inputs, names)
            if planned is not None:
                return planned
            return run_exact(self, inputs, names, codes=False)[0]
        ready, chunks = self.prepare(inputs)
        parts = []
        for c in range(chunks):
            context = dict(self.initializers)
            for name, x in ready.items():
                context[name] = x[c * (len(x) // chunks):(c + 1) * (len(x) // chunks)]
            for node in self.nodes:
                outs = self.run_node_checked(node, [context[name] for name in node.inputs if name])
                for name, value in zip(node.outputs, outs):
                    context[name] = value
            parts.append({name: context[name] for name in names})
        return join(parts, self.batched())

    def check_names(self, names):
        """``names`` (default every tensor), each checked to be a tensor the run computes."""
        every = self.tensor_names()
        if names is None:
            return every
        unknown = [name for name in names if name not in set(every)]
        if unknown:
            raise InputError(f"no tensor {unknown[0]!r} in the graph; its tensors are {every[:20]}"
                             f"{' ...' if len(every) > 20 else ''}")
        return list(names)

    def compile_exact(self):
        """The one-time load step of the ``exact`` level: the exact constants and the compiled plan.

        ``run(..., semantics='exact')`` does it on first use; calling it after :func:`load` keeps it out
        of the first run's time (weights converted and packed, thresholds made integers, scales computed).

        Returns
        -------
        bitsim.interop.exact_plan.Plan or None
            The plan of the graph's integer chain, or None when the general path runs every node.
        """
        return plan_of(self)

    def run_exact(self, inputs, names=None, events=None):
        """The ``exact`` level: ``(values, tensors)`` of every tensor, or of ``names``.

        Parameters
        ----------
        inputs : numpy.ndarray or dict of str to numpy.ndarray
            As for :meth:`run`.
        names : list of str, optional
            The tensors to return; by default every tensor.
        events : dict, optional
            Filled with every ``Quant`` node's events over its constants and the whole run: node name ->
            ``Counter`` of ``saturated`` (``round(x / scale + zero_point)`` outside the code range) and
            ``underflows`` (nonzero inputs whose output is 0), or None for a node computed by the
            reference rule (``docs/qonnx.md``, "Level 2").

        Returns
        -------
        values : dict of str to numpy.ndarray
            Every tensor's exact value rounded once to float32.
        tensors : dict of str to Exact or None
            Every tensor's integer codes and scale (:class:`bitsim.interop.exact_tensor.Exact`), joined
            over the batches, or None where an op has no exact rule and its float32 value was
            computed by the reference rule (``docs/qonnx.md`` lists which).
        """
        return run_exact(self, inputs, self.check_names(names), events=events)


__all__ = ["Graph", "Node", "SEMANTICS"]
