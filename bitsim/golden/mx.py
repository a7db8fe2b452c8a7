"""Golden vectors of MX tensors: element codes and E8M0 block scales, in the files of ``docs/formats.md`` section 8.

An MX tensor ``NAME`` (:class:`bitsim.formats.mx.MXTensor`) is written as two tensors of the golden
directory: ``NAME.codes`` (uint8, the tensor's shape, one element code per byte in its low bits: the
unpacked layout of ml_dtypes and of the OCP specification) and ``NAME.scales`` (uint8 E8M0 codes, the
shape with ``ceil(n / block)`` along the axis). Each manifest entry carries
``"mx": {"of": NAME, "part": "codes" | "scales", "format", "block", "axis"}``; :func:`bitsim.golden.verify`
checks that the two parts fit each other and that every code fits the element's width, and
:func:`bitsim.golden.compare` compares them word by word and shows a differing word's decoded value.
"""

import math
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from ..errors import BitsimError, DamagedFileError, InputError, InputTypeError, MissingFileError, one_line
from ..formats import minifloat
from ..io import read_npy
from ..formats.mx import FORMATS, SCALE_NAN, MXTensor, decode_elements
from .export import FORMATS as FILE_FORMATS
from .export import export_tensors

NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,179}"  # with ".scales", within the 190 characters of a golden file name
FLOAT_DTYPES = ("float16", "float32", "float64")
FLOAT_FIX = ("give one of float16, float32, float64 (native byte order): MX export quantizes float arrays; save it "
             "as x.astype(numpy.float32), or leave it out of the file")
MAX_DIMS = 32  # the manifest's MX axis is 0..31
VALUES_RULE = ("NAME.values: float32 bit patterns of the MX tensor's values, each element's code value times its "
               "block's scale; every finite MX value below 2**128 in magnitude is exact in float32, larger ones are "
               "+-Inf, zeros keep their sign, a NaN block is the quiet NaN 0x7fc00000")


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
        bits = FORMATS[fmt.name].element.bits
        wide = (codes >> bits) != 0 if bits < 8 else np.zeros(codes.shape, bool)
        if wide.any():
            idx = tuple(int(i) for i in np.argwhere(wide)[0])
            raise InputError(f"{name}: code 0x{int(codes[idx]):02x} at index {idx} is wider than the {bits}-bit "
                             f"{fmt.name} element; quantize with bitsim.formats.mx.quantize, or keep the low {bits} "
                             f"bits (codes & 0x{(1 << bits) - 1:x})")
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


def decoded_values(t):
    """The values of an :class:`~bitsim.formats.mx.MXTensor` as float32 (:data:`VALUES_RULE`)."""
    with np.errstate(over="ignore"):
        v = t.dequantize().astype(np.float32)
    return np.where(np.isnan(v), np.float32(np.nan), v)


def export_mx(named, out_dir, formats=FILE_FORMATS, options=None, overwrite=False, inputs=(), values=False, extra=(),
              model_stages=("MX",)):
    """Write golden vectors of MX tensors into ``out_dir`` (atomically, as :func:`bitsim.golden.export.export`).

    Parameters
    ----------
    named : dict or list of (str, MXTensor)
        Tensor names (letters, digits, ``_``, ``.``, ``-``) and their MX tensors.
    out_dir : str or Path
    formats, options, overwrite, inputs
        As in :func:`bitsim.golden.export.export`.
    values : bool
        Also write ``NAME.values`` after each tensor's parts: its values as float32 (:func:`decoded_values`).
    extra : list of (str, numpy.ndarray, str)
        Further tensors ``(name, array, role)`` written after the MX tensors (e.g. the products of an MX GEMM).
    model_stages : iterable of str
        Recorded in the manifest.

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
    tensors = mx_tensors(named)
    if values:
        tensors = [item for i, (name, t) in enumerate(named)
                   for item in tensors[2 * i:2 * i + 2] + [(f"{name}.values", decoded_values(t), None,
                                                            {"role": "mx values"})]]
    tensors += [(name, a, None, {"role": role}) for name, a, role in extra]
    return export_tensors(tensors, out_dir, formats, options, overwrite, inputs, tuple(model_stages), 1)


def read_float_arrays(path, names=None):
    """The float arrays of a .npy or .npz file, by name, checked before they are used and never unpickled.

    Parameters
    ----------
    path : str or Path
        A ``.npy`` file (one array, named after the file's stem) or a ``.npz`` file (each array by its name).
    names : iterable of str, optional
        Read only these arrays of a .npz, in this order (default: every array, in the archive's order).

    Returns
    -------
    list of (str, numpy.ndarray)
        Arrays of dtype float16, float32 or float64 with 1 to 32 dimensions and at least one element.

    Raises
    ------
    InputError
        Not a .npy or .npz path, an unreadable path, a name that is not a tensor name or is not in the file,
        an empty archive, a 0-d or empty array, more than 32 dimensions.
    InputTypeError
        An array of any other dtype.
    MissingFileError
        The file does not exist.
    DamagedFileError
        The file is not the .npy or .npz its name says, or is truncated or damaged.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise InputError(f"cannot read arrays from {str(path)!r}; give a .npy file (one tensor, named after the "
                         "file) or a .npz file (one tensor per array)")
    try:
        with open(path, "rb") as f:
            if suffix == ".npy":
                found = [(path.stem, read_npy(f, os.fstat(f.fileno()).st_size, str(path), FLOAT_DTYPES, FLOAT_FIX))]
            else:
                found = float_npz(f, path, names)
    except BitsimError:
        raise
    except FileNotFoundError:
        raise MissingFileError(f"no input file {path}; give an existing .npy or .npz file") from None
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    except Exception as err:  # whatever numpy or zipfile make of a damaged file
        raise DamagedFileError(path, f"cannot be read as a {suffix} file ({one_line(err)}); save the arrays "
                                     f"again with numpy.{'save' if suffix == '.npy' else 'savez'}") from None
    for name, a in found:
        if not re.fullmatch(NAME, name):
            raise InputError(f"{path}: array name {name!r} is not a tensor name; name it with letters, digits, "
                             "'_', '.' and '-', starting with a letter or digit (at most 180 characters)")
        if a.ndim == 0 or a.size == 0 or a.ndim > MAX_DIMS:
            raise InputError(f"{path}: array {name!r} has shape {a.shape}; give an array of 1 to {MAX_DIMS} "
                             "dimensions holding at least one value")
    return found


def float_npz(stream, path, names):
    """``[(name, array), ...]`` of the .npz archive in ``stream``: ``names``, or every array."""
    if stream.read(6) == b"\x93NUMPY":
        raise DamagedFileError(path, "is a .npy file, not a .npz archive; rename it to .npy")
    stream.seek(0)
    try:
        archive = zipfile.ZipFile(stream)
    except zipfile.BadZipFile:
        raise DamagedFileError(path, "is not a .npz archive (not a zip file); save the arrays with "
                                     "numpy.savez(path, a=a, b=b)") from None
    with archive:
        members = {}
        for m in archive.infolist():
            if not m.filename.endswith(".npy") or m.filename[:-4] in members:
                raise DamagedFileError(path, f"holds {m.filename!r}, not one .npy array of its own name; save the "
                                             "arrays with numpy.savez(path, a=a, b=b)")
            members[m.filename[:-4]] = m
        if not members:
            raise InputError(f"{path} holds no arrays; save at least one with numpy.savez(path, a=a)")
        wanted = list(members) if names is None else list(names)
        for name in wanted:
            if name not in members:
                shown = ", ".join(repr(n) for n in list(members)[:10])
                raise InputError(f"{path} has no array {name!r}; it holds {shown}"
                                 f"{' ...' if len(members) > 10 else ''}")
        found = []
        for name in wanted:
            with archive.open(members[name]) as data:
                found.append((name, read_npy(data, members[name].file_size, f"{path} (array {name!r})", FLOAT_DTYPES,
                                             FLOAT_FIX)))
        return found


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


__all__ = ["export_mx", "mx_tensors", "mx_word", "decoded_values", "read_float_arrays", "VALUES_RULE"]
