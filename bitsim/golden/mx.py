"""Golden vectors of MX tensors: element codes and E8M0 block scales, in the files of ``docs/formats.md`` section 8.

An MX tensor ``NAME`` (:class:`bitsim.formats.mx.MXTensor`) is written as two tensors of the golden
directory: ``NAME.codes`` (uint8, the tensor's shape, one element code per byte in its low bits: the
unpacked layout of ml_dtypes and of the OCP specification) and ``NAME.scales`` (uint8 E8M0 codes, the
shape with ``ceil(n / block)`` along the axis). Each manifest entry carries
``"mx": {"of": NAME, "part": "codes" | "scales", "format", "block", "axis"}``; :func:`bitsim.golden.verify`
checks that the two parts fit each other and that every code fits the element's width, and
:func:`bitsim.golden.compare` compares them word by word and shows a differing word's decoded value.
"""

import re

import numpy as np

from ..errors import InputError, InputTypeError
from ..formats import minifloat
from ..formats.mx import FORMATS, SCALE_NAN, MXTensor, decode_elements
from .export import FORMATS as FILE_FORMATS
from .export import export_tensors

NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,179}"  # with ".scales", within the 190 characters of a golden file name


def mx_tensors(named):
    """``[(name, array, None, extra), ...]`` for :func:`bitsim.golden.export.export_tensors`: two per MX tensor."""
    out, seen = [], set()
    for name, t in named:
        if not isinstance(name, str) or not re.fullmatch(NAME, name) or name in seen:
            raise InputError(f"MX tensor name {name!r}: give each tensor its own name of letters, digits, '_', '.' "
                             "and '-', starting with a letter or digit (at most 180 characters)")
        seen.add(name)
        if not isinstance(t, MXTensor):
            raise InputTypeError(f"{name}: expected an MXTensor (bitsim.formats.mx.quantize), got {type(t).__name__}")
        codes, scales = np.asarray(t.codes), np.asarray(t.scales)
        if codes.dtype != np.uint8 or scales.dtype != np.uint8:
            raise InputTypeError(f"{name}: MX codes and scales are uint8, got {codes.dtype} and {scales.dtype}")
        fmt = t.fmt
        if fmt.name not in FORMATS:
            raise InputError(f"{name}: unknown MX format {fmt.name!r}; choose one of {', '.join(FORMATS)}")
        axis = int(t.axis) % max(1, codes.ndim)
        expected = list(codes.shape) or [1]
        expected[axis] = -(-expected[axis] // fmt.block)
        if list(scales.shape) != expected:
            raise InputError(f"{name}: scales of shape {scales.shape} do not fit codes of shape {codes.shape} in "
                             f"blocks of {fmt.block} along axis {axis}")
        for part, array in (("codes", codes), ("scales", scales)):
            mx = {"of": name, "part": part, "format": fmt.name, "block": int(fmt.block), "axis": axis}
            out.append((f"{name}.{part}", array, None, {"role": f"mx {part}", "mx": mx}))
    return out


def export_mx(named, out_dir, formats=FILE_FORMATS, options=None, overwrite=False, inputs=()):
    """Write golden vectors of MX tensors into ``out_dir`` (atomically, as :func:`bitsim.golden.export.export`).

    Parameters
    ----------
    named : dict or list of (str, MXTensor)
        Tensor names (letters, digits, ``_``, ``.``, ``-``) and their MX tensors.
    out_dir : str or Path
    formats, options, overwrite, inputs
        As in :func:`bitsim.golden.export.export`.

    Returns
    -------
    dict
        The manifest.

    Examples
    --------
    >>> t = bitsim.formats.mx.quantize(x, "mxfp8_e4m3", axis=1)        # doctest: +SKIP
    >>> export_mx({"w": t}, "golden/")                                  # doctest: +SKIP
    """
    named = list(named.items()) if isinstance(named, dict) else list(named)
    if not named:
        raise InputError("give at least one MX tensor to export")
    return export_tensors(mx_tensors(named), out_dir, formats, options, overwrite, inputs, ("MX",), 1)


def mx_word(entry, value):
    """A readable value of one word of an MX part: ``'e4m3 1.5'``, ``'int8 -3 = -0.046875'``, ``'E8M0 2**1'``."""
    mx = entry["mx"]
    fmt = FORMATS.get(mx["format"])
    if fmt is None:
        return str(value)
    if mx["part"] == "scales":
        return "E8M0 NaN" if value == SCALE_NAN else f"E8M0 2**{value - 127}"
    el = fmt.element
    if value >> el.bits:
        return f"not a {el.bits}-bit {el.name} code"
    v = float(decode_elements(np.array([value], np.uint8), el)[0])
    if isinstance(el, minifloat.MinifloatFormat):
        return f"{el.name} {v!r}"
    return f"int8 {int(np.uint8(value).view(np.int8))} = {v!r}"


__all__ = ["export_mx", "mx_tensors", "mx_word"]
