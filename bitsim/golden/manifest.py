"""A golden directory's manifest and files: their schema, and the checks that run before any word is used.

:func:`verify` reads a golden directory the way :func:`~bitsim.golden.compare.compare` needs it:
the manifest must fit :data:`MANIFEST_SCHEMA` and its own ``manifest_sha256``; then **every** file it
lists (the ones a testbench loads, such as ``stage2.weights.memh``, as well as the ones compared)
must match its SHA-256, and the ``.memh``, ``.bin`` and ``golden.npz`` copies of each tensor must
hold the same words as the tensor's ``array_sha256`` says. Any failure is a :class:`GoldenError`
that starts with ``golden file damaged:``: a damaged golden directory is never reported as a
design mismatch.
"""

import hashlib
import re
from pathlib import Path

import numpy as np

from ..errors import DamagedFileError, GoldenError, MissingFileError
from ..formats.mx import FORMATS as MX_FORMATS
from ..io import array_sha256, canonical_sha256, read_json, read_npz
from ..schema import ANY, NULL, SHA256, SHAPE, Either, Int, ListOf, MapOf, OneOf, Str, validate

MANIFEST = "manifest.json"
VERSION = 2
HEX = re.compile(r"^[0-9a-fA-F][0-9a-fA-F_]*$")
SPACE = re.compile(r"[ \t\r\f\v]+")  # Verilog's white space; lines end at "\n" only
NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}"
DTYPES = ("|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f4", "bool")
PACKING_SCHEMA = {"word_bits": OneOf(64), "bitorder": OneOf("little"), "one_means": OneOf("+1"),
                  "padding_bits": OneOf(0), "note": Str(), "length": Int(0, 1 << 40)}
FILE_SCHEMA = {"path": Str(), "sha256": SHA256}
# an integer tensor of an imported QONNX model: value = scale * (code - zero_point)
QUANT_SCHEMA = {"scale": Either(Str(), Int()), "zero_point": Int(), "width": Int(1, 64), "signed": OneOf(True, False),
                "note": Str()}
# one part of an MX tensor (docs/formats.md, sections 8 and 14): its element codes or its E8M0 block scales
MX_SCHEMA = {"of": Str(NAME, "the MX tensor's name"), "part": OneOf("codes", "scales"), "format": Str(),
             "block": Int(1, 1 << 20), "axis": Int(0, 31)}
TENSOR_SCHEMA = {
    "name": Str(NAME, "a tensor name of letters, digits, '_', '.' and '-'"),
    "stage": Either(NULL, Int(0)),
    "stage_type": Either(NULL, Str()),
    "role": Str(),
    "shape": SHAPE,
    "dtype": OneOf(*DTYPES),
    "bits": OneOf(1, 8, 16, 32, 64),
    "array_sha256": SHA256,
    "files": {"memh?": FILE_SCHEMA, "bin?": FILE_SCHEMA, "npz?": {"path": OneOf("golden.npz"), "key": Str()}},
    "packing?": PACKING_SCHEMA,
    "onnx_name?": Str(),
    "quant?": QUANT_SCHEMA,
    "mx?": MX_SCHEMA,
}
MANIFEST_SCHEMA = {
    "bitsim_golden": OneOf(VERSION),
    "bitsim_version": Str(),
    "examples": Int(0),
    "model_stages": ListOf(Str()),
    "options": MapOf(ANY),
    "formats": ListOf(OneOf("memh", "bin", "npz"), 1, 3),
    "rules": MapOf(ANY),
    "tensors": ListOf(TENSOR_SCHEMA, 1),
    "npz_sha256?": SHA256,
    "manifest_sha256": SHA256,
}


def damaged(path, problem):
    """The :class:`GoldenError` for a damaged golden file."""
    return GoldenError(f"golden file damaged: {Path(path).name}: {problem}; export the golden vectors again")


def element_count(entry):
    return int(np.prod(entry["shape"], dtype=np.int64))


def load_manifest(golden_dir):
    """Read a golden directory's manifest and check it against :data:`MANIFEST_SCHEMA` and its own checksum.

    Raises
    ------
    GoldenError
        No manifest, or a damaged or inconsistent one (naming the field and what was expected).
    """
    path = Path(golden_dir) / MANIFEST
    try:
        manifest = read_json(path, "golden manifest")
        if isinstance(manifest, dict) and manifest.get("bitsim_golden") not in (VERSION, None):
            raise DamagedFileError(path, f"golden format version {manifest.get('bitsim_golden')!r}; this bitsim "
                                         f"reads version {VERSION}")
        validate(manifest, MANIFEST_SCHEMA, path)
    except MissingFileError:
        raise GoldenError(f"{golden_dir} has no {MANIFEST}; export golden vectors with `bitsim export` first") from None
    except DamagedFileError as err:
        raise damaged(path, err.problem) from None
    rest = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    if canonical_sha256(rest) != manifest["manifest_sha256"]:
        raise damaged(path, "its content does not match its manifest_sha256 (it was edited after export)")
    check_consistency(manifest, path)
    return manifest


def check_consistency(manifest, path):
    """Names unique, file paths named after their tensor, ``bits`` and ``packing`` as the dtype says."""
    names = set()
    for i, entry in enumerate(manifest["tensors"]):
        where = f"tensors[{i}]"
        name = entry["name"]
        if name in names:
            raise damaged(path, f"{where}: tensor {name!r} is listed twice")
        names.add(name)
        dtype = np.dtype("bool" if entry["dtype"] == "bool" else entry["dtype"])
        if entry["bits"] != (1 if dtype == np.bool_ else 8 * dtype.itemsize):
            raise damaged(path, f"{where}: bits {entry['bits']} do not fit dtype {entry['dtype']}")
        if ("packing" in entry) != (entry["dtype"] == "<u8"):
            raise damaged(path, f"{where}: packing is given exactly for uint64 (packed ±1) tensors")
        if "packing" in entry and (not entry["shape"] or -(-entry["packing"]["length"] // 64) != entry["shape"][-1]):
            raise damaged(path, f"{where}: a packed length of {entry['packing']['length']} values takes "
                                f"{-(-entry['packing']['length'] // 64)} words per row, the shape says "
                                f"{entry['shape'][-1:] or 'none'}")
        for kind in ("memh", "bin"):
            spec = entry["files"].get(kind)
            if spec and spec["path"] != f"{name}.{kind}":
                raise damaged(path, f"{where}: the {kind} file is {spec['path']!r}, expected '{name}.{kind}'")
        if set(entry["files"]) - {"npz"} != set(manifest["formats"]) - {"npz"} or (
                ("npz" in entry["files"]) != ("npz" in manifest["formats"])):
            raise damaged(path, f"{where}: lists files {sorted(entry['files'])}, the export wrote "
                                f"{manifest['formats']}")
        if "npz" in entry["files"] and entry["files"]["npz"]["key"] != name:
            raise damaged(path, f"{where}: its npz key is {entry['files']['npz']['key']!r}, expected {name!r}")
    if ("npz" in manifest["formats"]) != ("npz_sha256" in manifest):
        raise damaged(path, "npz_sha256 is given exactly when the export wrote golden.npz")
    problem = mx_problem(manifest["tensors"])
    if problem:
        raise damaged(path, problem)


def mx_problem(entries):
    """What is wrong with the MX parts of a manifest's tensors, or None: each MX tensor has a ``codes`` and a
    ``scales`` part of one known format, block and axis, both uint8, the scales shaped as the codes with
    ``ceil(n / block)`` along the axis."""
    parts = {}
    for entry in entries:
        if "mx" not in entry:
            continue
        mx = entry["mx"]
        if mx["format"] not in MX_FORMATS:
            return f"{entry['name']}: unknown MX format {mx['format']!r}; the formats are {', '.join(MX_FORMATS)}"
        if entry["dtype"] != "|u1":
            return f"{entry['name']}: MX {mx['part']} are uint8 (|u1), the manifest says {entry['dtype']}"
        if mx["axis"] >= max(1, len(entry["shape"])):
            return f"{entry['name']}: MX axis {mx['axis']} is outside its {len(entry['shape'])} dimension(s)"
        key = (mx["of"], mx["part"])
        if key in parts:
            return f"{entry['name']}: MX tensor {mx['of']!r} has two {mx['part']} parts"
        parts[key] = entry
    for (of, part), entry in parts.items():
        other = parts.get((of, "scales" if part == "codes" else "codes"))
        if other is None:
            return f"{entry['name']}: MX tensor {of!r} has {part} but no {'scales' if part == 'codes' else 'codes'}"
        if part == "scales":
            continue
        mx, smx = entry["mx"], other["mx"]
        if (mx["format"], mx["block"], mx["axis"]) != (smx["format"], smx["block"], smx["axis"]):
            return f"MX tensor {of!r}: its codes and scales name different formats, blocks or axes"
        shape = list(entry["shape"]) or [1]
        shape[mx["axis"]] = -(-shape[mx["axis"]] // mx["block"])
        if list(other["shape"]) != shape:
            return (f"MX tensor {of!r}: codes of shape {entry['shape']} in blocks of {mx['block']} along axis "
                    f"{mx['axis']} take scales of shape {shape}, the manifest says {other['shape']}")
    return None


def mx_code_problem(words, entry):
    """What is wrong with an MX tensor's element codes, or None: every code fits the element's width."""
    bits = MX_FORMATS[entry["mx"]["format"]].element.bits
    wide = [w for w in words if w >> bits]
    if wide:
        return f"{entry['name']}: code 0x{wide[0]:02x} is wider than the {bits}-bit {entry['mx']['format']} element"
    return None


def parse_memh(text, count, bits):
    """Parse ``$readmemh`` text into ``count`` unsigned words of ``bits`` bits; raise ValueError saying why not.

    Lines end at ``\n``; tokens are hex digits with optional ``_`` separators after the first digit (as
    Verilog numbers), separated by spaces, tabs, ``\r``, ``\f`` or ``\v``; ``//`` starts a comment that
    runs to the end of the line; ``@`` address directives are refused; any other character is an error.
    """
    words = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.split("//", 1)[0]
        for token in SPACE.split(line):
            if not token:
                continue
            if token.startswith("@"):
                raise ValueError(f"line {number}: address directive {token!r} is not supported; write words in order")
            if not HEX.match(token):
                raise ValueError(f"line {number}: {token!r} is not a hex number")
            value = int(token.replace("_", ""), 16)
            if value >> bits:
                raise ValueError(f"line {number}: 0x{value:x} does not fit in {bits} bits")
            words.append(value)
    if len(words) != count:
        kind = "truncated" if len(words) < count else "too long"
        raise ValueError(f"{kind}: {len(words)} words, expected {count}")
    return words


def parse_bin(data, count, itemsize):
    """Split little-endian raw bytes into ``count`` unsigned words of ``itemsize`` bytes."""
    if len(data) != count * itemsize:
        kind = "truncated" if len(data) < count * itemsize else "too long"
        raise ValueError(f"{kind}: {len(data)} bytes, expected {count * itemsize} ({count} x {itemsize})")
    return [int.from_bytes(data[i:i + itemsize], "little") for i in range(0, len(data), itemsize)]


def words_of(array):
    """The elements of ``array`` as unsigned integers of their width, row-major (bool as 0/1)."""
    a = np.asarray(array)
    a = a.astype(np.uint8) if a.dtype == np.bool_ else a.view(f"u{a.dtype.itemsize}")
    return [int(w) for w in a.ravel()]


def array_from_words(words, entry):
    """The tensor ``entry`` describes, rebuilt from its words (to check ``array_sha256``)."""
    dtype = np.dtype("bool" if entry["dtype"] == "bool" else entry["dtype"])
    unsigned = np.array(words, dtype=np.uint8 if dtype == np.bool_ else f"<u{dtype.itemsize}")
    return (unsigned.astype(bool) if dtype == np.bool_ else unsigned.view(dtype)).reshape(entry["shape"])


def check_padding_bits(words, entry, path):
    """Packed rows hold 0 in the bits past ``packing.length`` of their last word (section 1)."""
    length, per_row = entry["packing"]["length"], entry["shape"][-1]
    if length % 64 and per_row:
        last = np.array(words, dtype=np.uint64).reshape(-1, per_row)[:, -1]
        if (last >> np.uint64(length % 64)).any():
            raise damaged(path, f"{entry['name']} has set bits past its packed length {length}: the length or the "
                                "words are wrong")


def read_file(golden_dir, spec):
    """The bytes of one listed golden file, after checking its SHA-256."""
    path = Path(golden_dir) / spec["path"]
    if not path.is_file():
        raise damaged(path, "the file is missing")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != spec["sha256"]:
        raise damaged(path, f"sha256 {hashlib.sha256(data).hexdigest()[:16]}... differs from the manifest's "
                            f"{spec['sha256'][:16]}...")
    return data


def verify(golden_dir):
    """Check a whole golden directory and return its manifest and every tensor's words.

    Returns
    -------
    manifest : dict
    words : dict of str to list of int
        Each tensor's elements as unsigned integers of its width, row-major.

    Raises
    ------
    GoldenError
        ``golden file damaged: ...`` for the first file that fails a check.
    """
    golden_dir = Path(golden_dir)
    manifest = load_manifest(golden_dir)
    arrays = {}
    if "npz" in manifest["formats"]:
        spec = {"path": "golden.npz", "sha256": manifest["npz_sha256"]}
        read_file(golden_dir, spec)
        expected = {e["name"]: (e["shape"], "|b1" if e["dtype"] == "bool" else e["dtype"], e["array_sha256"])
                    for e in manifest["tensors"]}
        try:
            arrays = read_npz(golden_dir / "golden.npz", expected)
        except DamagedFileError as err:
            raise damaged(golden_dir / "golden.npz", err.problem) from None
    words = {}
    for entry in manifest["tensors"]:
        name, count, bits = entry["name"], element_count(entry), entry["bits"]
        copies = {}
        for kind in ("memh", "bin"):
            spec = entry["files"].get(kind)
            if spec:
                data = read_file(golden_dir, spec)
                try:
                    copies[kind] = (parse_bin(data, count, max(1, bits // 8)) if kind == "bin"
                                    else parse_memh(data.decode("ascii"), count, bits))
                except (ValueError, UnicodeDecodeError) as err:
                    raise damaged(golden_dir / spec["path"], str(err)) from None
        for kind, found in copies.items():  # the array_sha256 decides which copy is damaged
            if array_sha256(array_from_words(found, entry)) != entry["array_sha256"]:
                raise damaged(golden_dir / entry["files"][kind]["path"],
                              f"its words are not those of tensor {name} (its array_sha256 in the manifest)")
        words[name] = next(iter(copies.values())) if copies else words_of(arrays[name])
        if "packing" in entry:
            check_padding_bits(words[name], entry, golden_dir / MANIFEST)
        if entry.get("mx", {}).get("part") == "codes":
            problem = mx_code_problem(words[name], entry)
            if problem:
                raise damaged(golden_dir / MANIFEST, problem)
    return manifest, words


__all__ = ["MANIFEST", "VERSION", "MANIFEST_SCHEMA", "load_manifest", "parse_memh", "parse_bin", "words_of",
           "verify"]
