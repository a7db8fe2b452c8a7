"""Import and run QONNX models (FINN, Brevitas, hls4ml) bit-exactly: the public interface.

>>> graph = load("tfc.onnx")                                 # doctest: +SKIP
>>> tensors = graph.run(x, semantics="reference")            # doctest: +SKIP
>>> tensors["MultiThreshold_0_out0"]                         # doctest: +SKIP

:func:`load` reads a ``.onnx`` file (after QONNX's own cleanup and shape inference) into a
:class:`~bitsim.interop.graph.Graph`. ``graph.run(inputs, semantics="reference" | "exact")`` returns
``{tensor name: array}`` for every tensor of the graph (its inputs and every node's outputs; the
constants are ``graph.initializers``), named as after QONNX's cleanup:

``reference``  what ``qonnx.core.onnx_exec.execute_onnx`` computes, bit for bit
``exact``      integer codes with exact products, sums and threshold compares, each tensor's exact
               value rounded once to float32 (``graph.run_exact`` also gives the codes and scales)

``inputs`` is one array (a graph with one input) or ``{input name: array}``, shaped as the model declares
except that the first dimension may be any multiple of the declared batch size. :func:`compare_levels`
reports, per tensor, where the exact level differs from the float execution. The rules of both levels,
op by op: ``docs/qonnx.md``. Needs the ``onnx`` extra (``pip install -e ".[onnx]"``).
"""

from .differences import compare_levels, execute_qonnx
from .graph import SEMANTICS, Graph, Node
from .onnx_loader import SUPPORTED, load_graph


def load(path):
    """Read a QONNX model file into a :class:`Graph`.

    Parameters
    ----------
    path : str or Path
        An ``.onnx`` file with static shapes, using the ops of :data:`SUPPORTED`.

    Returns
    -------
    Graph
        ``graph.run(inputs, semantics='reference' | 'exact') -> {tensor name: numpy.ndarray}``.

    Raises
    ------
    MissingFileError
        No such file.
    DamagedFileError
        Not an ONNX model, or one that fails ``onnx.checker`` or QONNX's cleanup.
    InputError
        An op, attribute or dynamic shape that bitsim does not implement (naming the node, its op type
        and the supported list).
    MissingExtra
        The ``onnx`` extra is not installed.
    """
    return load_graph(path)


__all__ = ["load", "Graph", "Node", "SEMANTICS", "SUPPORTED", "compare_levels", "execute_qonnx"]
