"""Checks of a graph's two levels: against QONNX's executor, and against each other.

:func:`execute_qonnx` runs QONNX's own ``execute_onnx`` on the cleaned model, batch by batch.
:func:`check_tensors` compares two ``{name: array}`` results bit for bit, per tensor, with the first
mismatch described as ``bitsim compare`` describes one. :func:`compare_levels` reports, per tensor,
how far the exact level lies from the float (reference) execution and how many integer codes of the
quantizer outputs flip because of it.
"""

from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ..errors import MissingExtra
from ..golden.compare import describe_difference
from .batches import join
from .ort_nodes import ONNX_EXTRA

QUANTIZERS = ("Quant", "IntQuant", "BipolarQuant", "MultiThreshold", "Trunc", "FloatQuant")


def execute_qonnx(graph, inputs, progress=False):
    """Every tensor as QONNX's ``execute_onnx`` computes it on ``graph.model`` (same batches as ``run``).

    ``progress``: show a bar of the batches done on a terminal (QONNX's executor is slow).
    """
    try:  # the optional onnx extra, imported only when a check runs
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
    except ImportError as err:
        raise MissingExtra(f"checks against QONNX need the onnx extra ({err.name} is not installed): "
                           f"{ONNX_EXTRA}") from None

    ready, chunks = graph.prepare(inputs)
    model = ModelWrapper(graph.model)
    parts = []
    for c in tqdm(range(chunks), desc="qonnx execute_onnx", unit="batch", disable=None if progress else True,
                  leave=False):
        feed = {name: x[c * (len(x) // chunks):(c + 1) * (len(x) // chunks)] for name, x in ready.items()}
        context = execute_onnx(model, feed, return_full_exec_context=True)
        parts.append({name: np.asarray(context[name]) for name in graph.tensor_names()})
    return join(parts, graph.batched())


def entry_of(name, a):
    """A golden-manifest-like entry of a tensor, for :func:`bitsim.golden.compare.describe_difference`."""
    return {"name": name, "shape": list(a.shape), "dtype": a.dtype.str, "bits": 8 * a.dtype.itemsize}


@dataclass
class TensorCheck:
    """One tensor's verdict: ``match`` or ``mismatch`` (with the count and the first difference)."""

    name: str
    status: str
    mismatches: int = 0
    words: int = 0
    first: dict = field(default_factory=dict)


def check_tensors(expected, actual, names=None, values=False):
    """Compare two results tensor by tensor: bit for bit (float32 bit patterns: -0.0 differs from 0.0), or
    with ``values`` by value (-0.0 equals 0.0; the exact level has no signed zero)."""
    checks = []
    for name in names or list(expected):
        e, a = np.ascontiguousarray(expected[name]), np.ascontiguousarray(actual[name])
        if e.shape != a.shape or e.dtype != a.dtype:
            checks.append(TensorCheck(name, "mismatch", e.size, e.size,
                                      {"shape": f"expected {e.dtype}{list(e.shape)}, got {a.dtype}{list(a.shape)}"}))
            continue
        ew, aw = e.view(f"u{e.dtype.itemsize}").reshape(-1), a.view(f"u{a.dtype.itemsize}").reshape(-1)
        wrong = np.flatnonzero((e != a).reshape(-1) if values else ew != aw)
        if not wrong.size:
            checks.append(TensorCheck(name, "match", 0, e.size))
            continue
        first = describe_difference(entry_of(name, e), int(wrong[0]), int(ew[wrong[0]]), int(aw[wrong[0]]))
        checks.append(TensorCheck(name, "mismatch", int(wrong.size), e.size, first))
    return checks


def format_checks(checks, title):
    """The report of :func:`check_tensors`' verdicts under ``title``, one line per tensor and a PASS / FAIL line."""
    lines = [title]
    for c in checks:
        if c.status == "match":
            lines.append(f"MATCH      {c.name} ({c.words} values)")
        else:
            f = c.first
            lines.append(f"MISMATCH   {c.name}: {c.mismatches} of {c.words} values differ")
            if "index" in f:
                lines.append(f"           first at index {f['index']}: expected {f['expected']} "
                             f"({f['expected_value']}), got {f['actual']} ({f['actual_value']}); differing bits "
                             f"{f['bits']}")
            else:
                lines.append(f"           {f.get('shape', '')}")
    bad = sum(c.status != "match" for c in checks)
    lines.append(f"{'PASS' if not bad else 'FAIL'}: {len(checks)} tensors compared: {len(checks) - bad} match"
                 + (f", {bad} mismatch" if bad else ""))
    return "\n".join(lines)


@dataclass
class LevelDifference:
    """How the exact level differs from the float execution on one tensor.

    Attributes
    ----------
    name, op_type : str
    exact : bool
        Computed by exact rules all the way (False: an op without an exact rule rounded it).
    equal : bool
        Bit-identical to the float execution.
    max_abs_diff : float
        The largest ``|exact - float|`` (in float64).
    differing : int
        Elements that differ.
    codes_flipped : int or None
        For a quantizer's output: how many of its integer codes differ; None for other tensors.
    events : collections.Counter or None
        For a ``Quant`` node's output at the exact level: its ``saturated`` and ``underflows`` counts
        (:meth:`bitsim.interop.graph.Graph.run_exact`); None for other tensors and uncounted nodes.
    """

    name: str
    op_type: str
    exact: bool
    equal: bool
    max_abs_diff: float
    differing: int
    codes_flipped: object = None
    events: object = None


def compare_levels(graph, inputs, reference=None):
    """Per tensor, the exact level against the float execution (``reference``: QONNX's, default).

    Returns
    -------
    list of LevelDifference
        In graph order.
    """
    if reference is None:
        reference = execute_qonnx(graph, inputs)
    events = {}
    values, tensors = graph.run_exact(inputs, events=events)
    producer = {name: node.op_type for node in graph.nodes for name in node.outputs}
    counted = {node.outputs[0]: events[node.name] for node in graph.nodes if node.name in events}
    out = []
    for name in graph.tensor_names():
        e, r = values[name], np.asarray(reference[name])
        diff = np.abs(e.astype(np.float64) - r.astype(np.float64))
        same = e == r  # values: the exact level has no signed zero, so -0.0 equals 0.0 here
        differing = int(np.count_nonzero(~same))
        op = producer.get(name, "input")
        out.append(LevelDifference(name, op, tensors.get(name) is not None, differing == 0,
                                   float(np.nanmax(diff)) if diff.size else 0.0, differing,
                                   differing if op in QUANTIZERS else None, counted.get(name)))
    return out


def format_levels(rows):
    """The report of :func:`compare_levels`' rows, one line per tensor and a total."""
    lines = ["exact level against the float execution (QONNX's executor):"]
    for r in rows:
        how = "exact" if r.exact else "rounded"
        if r.events is not None:
            how += f"; {r.events['saturated']} saturated, {r.events['underflows']} underflows"
        if r.equal:
            lines.append(f"EQUAL      {r.name} ({r.op_type}, {how})")
        else:
            flips = f"; {r.codes_flipped} integer codes flip" if r.codes_flipped is not None else ""
            lines.append(f"DIFFERS    {r.name} ({r.op_type}, {how}): {r.differing} values differ, largest "
                         f"|exact - float| = {r.max_abs_diff:.9g}{flips}")
    equal = sum(r.equal for r in rows)
    lines.append(f"{equal} of {len(rows)} tensors equal; "
                 f"{sum(r.codes_flipped or 0 for r in rows)} quantizer codes flip in all")
    return "\n".join(lines)


__all__ = ["execute_qonnx", "check_tensors", "format_checks", "compare_levels", "format_levels", "TensorCheck",
           "LevelDifference"]
