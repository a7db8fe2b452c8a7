"""Golden vectors: every tensor a design under test can be checked against, in files a testbench can load.

For a compiled :class:`~bitsim.deploy.IntegerModel` and a batch of inputs, :func:`export` writes

* ``input``: the uint8 inputs, one row per example;
* per stage ``i``: its constants (``stage{i}.weights``, ``.thresholds``, ``.flip``, ``.mean`` ...) and its
  result for every input (``stage{i}.acc`` for accumulator stages, ``stage{i}.out`` for packed bits,
  ``stage{i}.scores`` for the float32 output),

each as Verilog ``$readmemh`` text (``.memh``), raw little-endian binary (``.bin``) and one ``golden.npz``,
plus ``manifest.json`` describing every tensor and file with its SHA-256. See ``docs/formats.md``,
section 8, for the exact file rules.
"""

import json
import re
import shutil
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import GoldenError, InputError, InputTypeError, OutputExistsError
from ..io import array_sha256, atomic_write_bytes, canonical_sha256, npz_bytes, sha256_bytes
from ..outputs import check_replaceable, mkdtemp_beside, swap_into_place
from .manifest import MANIFEST, VERSION, load_manifest

KIND = "bitsim golden vectors"
FORMATS = ("memh", "bin", "npz")
MX_RULE = ("MX tensors (docs/formats.md section 14): NAME.codes holds one element code per byte in its low bits, "
           "NAME.scales the E8M0 scale codes (value 2**(code - 127), 0xff NaN) of the blocks of 'block' elements "
           "along 'axis'; element i's value is its code's value times its block's scale")
PACKING = {"word_bits": 64, "bitorder": "little", "one_means": "+1", "padding_bits": 0,
           "note": "element i of a row at bit i % 64 of word i // 64"}


def element_bits(dtype):
    """Bits of one element as written: the dtype's width, 1 for bool."""
    dtype = np.dtype(dtype)
    return 1 if dtype == np.bool_ else 8 * dtype.itemsize


def to_words(a):
    """The array's elements as unsigned integers of their width (two's complement, float bit patterns)."""
    a = np.asarray(a)
    if a.dtype == np.bool_:
        return a.astype(np.uint8)
    return a.view(f"u{a.dtype.itemsize}")


def memh_text(a, header):
    """``$readmemh`` text: a ``//`` header line, then one element per line in row-major order, lowercase hex."""
    bits = element_bits(a.dtype)
    digits = max(1, -(-bits // 4))
    lines = [f"// {header}"]
    lines += [f"{int(w):0{digits}x}" for w in to_words(a).ravel()]
    return "\n".join(lines) + "\n"


def raw_bytes(a):
    """Little-endian bytes of the elements in row-major order (bool as one byte 0 or 1)."""
    words = to_words(a)
    return np.ascontiguousarray(words.astype(words.dtype.newbyteorder("<"))).tobytes()


def stage_tensors(compiled, x):
    """``[(name, stage_index, role, array, packed_length), ...]`` for the inputs and every stage.

    ``packed_length`` is the number of ±1 values per row of a packed uint64 tensor (None otherwise).
    """
    x = np.asarray(x, dtype=np.uint8)
    tensors = [("input", None, "input", x.reshape(x.shape[0], -1) if x.ndim > 2 else x, None)]
    previous = None
    for i, (stage, out) in enumerate(compiled.trace(x)):
        for key, value in stage.arrays().items():
            role = "weights" if key == "w" else key
            tensors.append((f"stage{i}.{role}", i, role, np.asarray(value), _reduction(stage) if key == "w" else None))
        if out.dtype == np.uint64:
            if hasattr(stage, "thresholds"):
                length = int(stage.thresholds.size)
            else:  # Flatten: all H * W * c values of the previous packed NHWC tensor
                length = int(np.prod(previous.shape[1:-1])) * stage.c
            tensors.append((f"stage{i}.out", i, "out", out, length))
        elif out.dtype == np.float32:
            tensors.append((f"stage{i}.scores", i, "scores", out, None))
        else:
            tensors.append((f"stage{i}.acc", i, "acc", out, None))
        previous = out
    return tensors


def _reduction(stage):
    """The ±1 values per packed weight row: n for dense stages, KH * KW * c for convolutions."""
    if hasattr(stage, "n"):
        return int(stage.n)
    return int(np.prod(stage.kernel if hasattr(stage, "kernel") else stage.w.shape[1:3])) * stage.c


def golden_kind(directory):
    """:data:`KIND` when ``directory`` holds a golden export that passes its manifest's checks, else None."""
    try:
        load_manifest(directory)
    except GoldenError:
        return None
    return KIND


def owned_files(directory):
    """The files a golden export in ``directory`` consists of: its manifest and every file it lists."""
    manifest = load_manifest(directory)
    files = {MANIFEST} | {spec["path"] for e in manifest["tensors"] for spec in e["files"].values()}
    return sorted(files)


def check_destination(out_dir, formats, overwrite, inputs):
    """``(formats, out_dir)`` checked before an export writes anything: known formats, and ``out_dir`` new or a
    golden export that ``overwrite`` may replace (:func:`bitsim.outputs.check_replaceable`)."""
    formats = tuple(formats)
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise InputError(f"unknown golden formats {sorted(unknown)}; choose from {list(FORMATS)}")
    out_dir = Path(out_dir)
    if out_dir.exists() or out_dir.is_symlink():
        if not overwrite:
            raise OutputExistsError(f"{out_dir} exists; choose another --out, or pass --overwrite to replace "
                                    "an earlier golden export there")
        owned = owned_files(out_dir) if golden_kind(out_dir) else ()
        check_replaceable(out_dir, KIND, owned, inputs, kind_of=golden_kind)
    return formats, out_dir


def export(compiled, x, out_dir, formats=FORMATS, options=None, overwrite=False, inputs=()):
    """Write golden vectors for ``compiled`` on inputs ``x`` into ``out_dir``, atomically.

    The directory is built under a temporary name beside ``out_dir`` and renamed into place only when
    every file is written, so an error never leaves a half-written directory.

    An existing ``out_dir`` is replaced only with ``overwrite``, and only when it is itself a golden
    export (its manifest passes its checks), it holds no file besides those its manifest lists, and
    it holds none of ``inputs`` (:func:`bitsim.outputs.check_replaceable`). The old directory stays
    in place until the new one is complete.

    Parameters
    ----------
    compiled : bitsim.deploy.IntegerModel
    x : numpy.ndarray of uint8
        The inputs, one example per row (or images of the model's input shape).
    out_dir : str or Path
    formats : iterable of {'memh', 'bin', 'npz'}
    options : dict, optional
        Recorded in the manifest (e.g. the model path and the input source).
    overwrite : bool
        Replace an existing golden export at ``out_dir``.
    inputs : iterable of paths
        Files the export reads (the model, the input file); ``out_dir`` may not hold them.

    Returns
    -------
    dict
        The manifest.
    """
    formats, out_dir = check_destination(out_dir, formats, overwrite, inputs)
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise InputTypeError(f"inputs must be uint8, got {x.dtype}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise InputError(f"inputs of shape {x.shape}: give at least one example, one per row")
    tensors = stage_tensors(compiled, x)
    tmp = mkdtemp_beside(out_dir)
    try:
        entries, arrays = [], {}
        for name, stage, role, a, length in tensors:
            a = np.ascontiguousarray(a)
            entry = {
                "name": name, "stage": stage,
                "stage_type": None if stage is None else type(compiled.stages[stage]).__name__,
                "role": role, "shape": list(a.shape), "dtype": a.dtype.str if a.dtype != np.bool_ else "bool",
                "bits": element_bits(a.dtype), "array_sha256": array_sha256(a), "files": {},
            }
            if a.dtype == np.uint64:
                entry["packing"] = dict(PACKING, length=length)
            header = f"bitsim {name}: shape {tuple(a.shape)}, {entry['dtype']}, {entry['bits']}-bit elements, row-major"
            if "memh" in formats:
                data = memh_text(a, header).encode()
                entry["files"]["memh"] = {"path": f"{name}.memh", "sha256": sha256_bytes(data)}
                (tmp / f"{name}.memh").write_bytes(data)
            if "bin" in formats:
                data = raw_bytes(a)
                entry["files"]["bin"] = {"path": f"{name}.bin", "sha256": sha256_bytes(data)}
                (tmp / f"{name}.bin").write_bytes(data)
            if "npz" in formats:
                arrays[name] = a
                entry["files"]["npz"] = {"path": "golden.npz", "key": name}
            entries.append(entry)
        manifest = {
            "bitsim_golden": VERSION, "bitsim_version": __version__, "examples": int(x.shape[0]),
            "model_stages": [type(s).__name__ for s in compiled.stages], "options": options or {},
            "formats": list(formats),
            "rules": {
                "memh": "one element per line, lowercase hex, width = ceil(bits / 4) digits, row-major order; "
                        "signed integers in two's complement of their width; float32 as its bit pattern; "
                        "lines starting with // are comments",
                "bin": "elements little-endian, width = the dtype's bytes (bool: one byte 0/1), row-major",
                "packing": PACKING,
            },
            "tensors": entries,
        }
        if "npz" in formats:
            data = npz_bytes(arrays)
            (tmp / "golden.npz").write_bytes(data)
            manifest["npz_sha256"] = sha256_bytes(data)
        manifest = json.loads(json.dumps(manifest))  # as it will be read back: tuples become lists
        manifest["manifest_sha256"] = canonical_sha256(manifest)
        atomic_write_bytes(tmp / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
        swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def export_tensors(tensors, out_dir, formats=FORMATS, options=None, overwrite=False, inputs=(), model_stages=(),
                   examples=1):
    """Write golden vectors of named tensors (an imported model's, by their ONNX names) into ``out_dir``.

    The files and the manifest are those of :func:`export` (``docs/formats.md``, section 8); each entry
    also names its tensor as the model does (``onnx_name``, when the file name had to differ) and, for
    integer codes, their ``quant``: ``value = scale * (code - zero_point)``, the quantizer's width and
    signedness.

    Parameters
    ----------
    tensors : list of (str, numpy.ndarray, dict or None) or (str, numpy.ndarray, dict or None, dict)
        ``(name, array, quant)`` in order; names are ONNX tensor names. An optional fourth item gives the
        entry's ``role`` and its ``mx`` description (MX tensors, :func:`bitsim.golden.mx.export_mx`).
    out_dir : str or Path
    formats, options, overwrite, inputs
        As in :func:`export`.
    model_stages : iterable of str
        The op type of each node, recorded in the manifest.
    examples : int
        The number of inputs.

    Returns
    -------
    dict
        The manifest.
    """
    formats, out_dir = check_destination(out_dir, formats, overwrite, inputs)
    tmp = mkdtemp_beside(out_dir)
    try:
        entries, arrays, used = [], {}, set()
        for onnx_name, a, quant, *extra in tensors:
            extra = extra[0] if extra else {}
            name = file_name(onnx_name, used)
            a = np.ascontiguousarray(a)
            entry = {"name": name, "stage": None, "stage_type": None,
                     "role": extra.get("role") or ("integer" if quant else "float32"),
                     "shape": list(a.shape), "dtype": a.dtype.str, "bits": element_bits(a.dtype),
                     "array_sha256": array_sha256(a), "files": {}}
            if name != onnx_name:
                entry["onnx_name"] = onnx_name
            if quant:
                entry["quant"] = quant
            if extra.get("mx"):
                entry["mx"] = extra["mx"]
            header = f"bitsim {onnx_name}: shape {tuple(a.shape)}, {entry['dtype']}, {entry['bits']}-bit elements"
            if "memh" in formats:
                data = memh_text(a, header).encode()
                entry["files"]["memh"] = {"path": f"{name}.memh", "sha256": sha256_bytes(data)}
                (tmp / f"{name}.memh").write_bytes(data)
            if "bin" in formats:
                data = raw_bytes(a)
                entry["files"]["bin"] = {"path": f"{name}.bin", "sha256": sha256_bytes(data)}
                (tmp / f"{name}.bin").write_bytes(data)
            if "npz" in formats:
                arrays[name] = a
                entry["files"]["npz"] = {"path": "golden.npz", "key": name}
            entries.append(entry)
        manifest = {
            "bitsim_golden": VERSION, "bitsim_version": __version__, "examples": int(examples),
            "model_stages": list(model_stages), "options": options or {}, "formats": list(formats),
            "rules": {
                "memh": "one element per line, lowercase hex, width = ceil(bits / 4) digits, row-major order; "
                        "signed integers in two's complement of their width; float32 as its bit pattern; "
                        "lines starting with // are comments",
                "bin": "elements little-endian, width = the dtype's bytes (bool: one byte 0/1), row-major",
                "quant": "integer codes of an imported model: value = scale * (code - zero_point), scale an "
                         "exact fraction",
                **({"mx": MX_RULE} if any("mx" in e for e in entries) else {}),
            },
            "tensors": entries,
        }
        if "npz" in formats:
            data = npz_bytes(arrays)
            (tmp / "golden.npz").write_bytes(data)
            manifest["npz_sha256"] = sha256_bytes(data)
        manifest = json.loads(json.dumps(manifest))
        manifest["manifest_sha256"] = canonical_sha256(manifest)
        atomic_write_bytes(tmp / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
        swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def file_name(onnx_name, used):
    """A golden tensor name for an ONNX tensor name: characters outside ``[A-Za-z0-9_.-]`` become ``_``,
    a leading one becomes ``t``, and a clash gets a ``-2``, ``-3`` ... suffix."""
    base = re.sub(r"[^A-Za-z0-9_.\-]", "_", onnx_name)[:190] or "t"
    if not base[0].isalnum():
        base = "t" + base
    name, i = base, 2
    while name in used:
        name, i = f"{base}-{i}", i + 1
    used.add(name)
    return name
