"""The tensors of an imported model as golden vectors: integer codes where the exact level has them.

:func:`golden_rows` gives ``(ONNX name, array, quant)`` for the inputs, every constant and every node
output. A tensor whose exact value is ``scale * code`` with one scale for the whole tensor and codes
that fit 32 bits is written as its integer codes (the smallest of int8/int16/int32, or unsigned when no
code is negative), with ``quant = {scale, zero_point, width, signed}`` so that ``value = scale *
(code - zero_point)``; a ``Quant`` output keeps its own zero point and width, a ``BipolarQuant``
output has width 1 (codes -1 and +1), a ``MultiThreshold`` output's width is that of its threshold
count. Every other tensor is written as float32 (its value at the chosen level).
"""

from fractions import Fraction

import numpy as np

from .exact_tensor import exact_of_float


def _integer_dtype(codes, signed):
    """The smallest integer dtype that holds ``codes`` (None when none of 32 bits or fewer does)."""
    low, high = int(codes.min()) if codes.size else 0, int(codes.max()) if codes.size else 0
    for bits in (8, 16, 32):
        if not signed and low >= 0 and high < 1 << bits:
            return np.dtype(f"<u{bits // 8}" if bits > 8 else "|u1")
        if -(1 << (bits - 1)) <= low and high < 1 << (bits - 1):
            return np.dtype(f"<i{bits // 8}" if bits > 8 else "|i1")
    return None


def quant_of(node, graph, e, value_codes):
    """``(codes, quant)`` of an exact tensor, or None when it is not one scale times 32-bit codes."""
    scale = e.scalar_scale()
    if scale is None or value_codes.dtype == object:
        return None
    codes, zero_point, width, signed = value_codes, 0, None, bool(value_codes.min() < 0) if _codes_size(e) else False
    op = node.op_type if node else None
    if op in ("Quant", "IntQuant"):
        z = graph.initializers.get(node.inputs[2])
        bits = graph.initializers.get(node.inputs[3])
        if z is not None and bits is not None and np.all(z == np.round(z)) and np.asarray(z).size == 1:
            zero_point = int(np.asarray(z).reshape(-1)[0])
            codes = value_codes + zero_point
            width, signed = int(np.asarray(bits).reshape(-1)[0]), bool(node.attrs.get("signed", 1))
    elif op == "BipolarQuant":
        width, signed = 1, True
    elif op == "MultiThreshold":
        a = Fraction(float(np.float32(node.attrs.get("out_scale", 1.0))))
        b = Fraction(float(np.float32(node.attrs.get("out_bias", 0.0))))
        steps = graph.initializers[node.inputs[1]].shape[-1] if node.inputs[1] in graph.initializers else None
        if steps is not None and a != 0 and (b / a).denominator == 1:
            # value = a * count + b = a * (count - zero_point) with zero_point = -b / a
            count = (value_codes.astype(np.float64) * float(scale) - float(b)) / float(a)
            if np.all(count == np.round(count)) and np.all(np.abs(count) < 2 ** 31):
                zero_point = int(-b / a)
                codes = count.astype(np.int64) + zero_point
                scale, width, signed = a, max(1, int(steps).bit_length()), False
    dtype = _integer_dtype(codes, signed or bool(codes.size and codes.min() < 0))
    if dtype is None:
        return None
    width = width or 8 * dtype.itemsize
    return codes.astype(dtype), {"scale": str(scale), "zero_point": zero_point, "width": width,
                                 "signed": bool(signed or dtype.kind == "i"),
                                 "note": f"value = {scale} * (code - {zero_point})"}


def _codes_size(e):
    """The number of codes of exact tensor ``e``."""
    return np.asarray(e.codes).size > 0


def golden_rows(graph, inputs, semantics="exact"):
    """``[(ONNX name, array, quant or None), ...]``: inputs, constants and every node output.

    Parameters
    ----------
    graph : Graph
    inputs : numpy.ndarray or dict
    semantics : {'exact', 'reference'}
        The level whose values are written; integer codes come from the exact level and are written
        only where they give exactly the written values.
    """
    values, tensors = graph.run_exact(inputs)
    if semantics == "reference":
        values = graph.run(inputs, "reference")
    producer = {name: node for node in graph.nodes for name in node.outputs}
    rows = []
    names = list(graph.inputs) + list(graph.initializers) + [n for node in graph.nodes for n in node.outputs]
    for name in names:
        if name in graph.initializers:
            value = np.asarray(graph.initializers[name])
            e = exact_of_float(value) if value.dtype.kind == "f" and np.isfinite(value).all() else None
        else:
            value, e = np.asarray(values[name]), tensors.get(name)
        row = None
        if e is not None and value.dtype == np.float32:
            got = quant_of(producer.get(name), graph, e, np.asarray(e.codes))
            if got is not None:
                codes, quant = got
                back = (Fraction(quant["scale"]) * 1)
                exact = np.array_equal(((codes.astype(np.float64) - quant["zero_point"]) * float(back))
                                       .astype(np.float32), value) if float(back) else False
                if exact:
                    row = (name, codes, quant)
        rows.append(row or (name, value.astype(np.float32) if value.dtype.kind == "f" else value, None))
    return rows


__all__ = ["golden_rows"]
