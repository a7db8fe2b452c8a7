"""Safe files: atomic writes, checksums, and arrays saved as ``.npz`` + JSON without pickle.

A saved bundle is two files side by side: ``NAME.npz`` (arrays, loaded with ``allow_pickle=False``)
and ``NAME.json`` (a manifest: kind, format version, bitsim version, metadata, the SHA-256 of the
``.npz`` and of every array, and the SHA-256 of the manifest's own canonical content). Loading checks
the manifest against its schema (:data:`BUNDLE_SCHEMA`, printed in ``docs/formats.md``) and every
checksum before it uses anything, and says what is wrong.

:func:`read_inputs` reads the uint8 inputs of a model from a ``.npy`` or ``.npz`` file the same way:
checked before use, never unpickled.
"""

import hashlib
import io
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import __version__
from .errors import BitsimError, DamagedFileError, InputError, InputTypeError, MissingFileError, one_line
from .schema import ANY, SHA256, SHAPE, MapOf, OneOf, Str, validate

FORMAT_VERSION = 2
BUNDLE_SCHEMA = {
    "kind": Str(),
    "format_version": OneOf(FORMAT_VERSION),
    "bitsim_version": Str(),
    "npz": Str(r"[^/\\]+\.npz", "a file name ending in .npz"),
    "npz_sha256": SHA256,
    "arrays": MapOf({"shape": SHAPE, "dtype": Str(r"[<>|][biuf][0-9]{1,2}", "a NumPy dtype string such as '<f4'"),
                     "sha256": SHA256}, key=Str(r"[^/\\]{1,200}", "an array name without slashes")),
    "meta": MapOf(ANY),
    "manifest_sha256": SHA256,
}


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def array_sha256(a):
    """SHA-256 of an array's dtype, shape and little-endian C-order bytes."""
    a = _c_order(a)
    header = f"{a.dtype.newbyteorder('<').str}{a.shape}".encode()
    return sha256_bytes(header + a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())


def _c_order(a):
    """``a`` in C order with its shape kept (``np.ascontiguousarray`` would turn 0-d into 1-d)."""
    a = np.asarray(a)
    return a if a.flags.c_contiguous else a.copy(order="C")


def current_umask():
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def canonical_sha256(value):
    """SHA-256 of JSON ``value`` in canonical form: sorted keys, no spaces, ASCII, floats as ``repr``."""
    return sha256_bytes(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode())


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` through a temporary file in the same directory, then rename it into place.

    The file gets the permissions a plain ``open(path, 'w')`` would give (``0o666`` less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if err.filename is None:  # a full disk or a quota names no file: name the one being written
            raise type(err)(err.errno, err.strerror, str(path)) from None
        raise
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_png(fig, path, dpi=120):
    """Write a matplotlib figure to ``path`` as PNG, atomically, close it and return ``path``."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def save_plot(path, draw, dpi=120, **subplots):
    """Draw a figure and write it to ``path`` as PNG, atomically (needs matplotlib: the ``plot`` extra).

    Parameters
    ----------
    path : str or Path
    draw : callable
        ``draw(axes)`` draws on the axes that ``matplotlib.pyplot.subplots(**subplots)`` makes.
    dpi : int
    **subplots
        For ``matplotlib.pyplot.subplots``, e.g. ``figsize``.

    Returns
    -------
    Path or None
        ``path``, or None without matplotlib.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(**subplots)
    draw(axes)
    fig.tight_layout()
    return save_png(fig, path, dpi)


def npz_bytes(arrays):
    """The bytes of a deterministic ``.npz`` holding ``arrays`` (sorted members, fixed zip timestamps)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            a = np.asarray(arrays[name])
            if a.dtype.kind == "O":
                raise InputTypeError(f"array {name!r} has dtype object, which cannot be saved without pickle")
            member = io.BytesIO()
            np.lib.format.write_array(member, _c_order(a), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue())
    return buffer.getvalue()


def save_bundle(path, arrays, kind, meta=None):
    """Save arrays and metadata as ``path.npz`` + ``path.json``, both atomically.

    Parameters
    ----------
    path : str or Path
        Base path; a ``.npz`` or ``.json`` suffix is dropped.
    arrays : dict of str to numpy.ndarray
    kind : str
        What the bundle holds (e.g. ``'bitsim.nn.Sequential'``); checked on load.
    meta : dict, optional
        JSON-serialisable metadata (architecture, options, training log).

    Returns
    -------
    Path
        The manifest path.
    """
    base = _base(path)
    data = npz_bytes(arrays)
    manifest = {
        "kind": kind,
        "format_version": FORMAT_VERSION,
        "bitsim_version": __version__,
        "npz": base.name + ".npz",
        "npz_sha256": sha256_bytes(data),
        "arrays": {name: {"shape": list(np.shape(a)), "dtype": np.asarray(a).dtype.str,
                          "sha256": array_sha256(np.asarray(a))} for name, a in sorted(arrays.items())},
        "meta": meta or {},
    }
    manifest = json.loads(json.dumps(manifest))  # as it will be read back: tuples become lists
    manifest["manifest_sha256"] = canonical_sha256(manifest)
    atomic_write_bytes(base.with_suffix(".npz"), data)
    atomic_write_bytes(base.with_suffix(".json"), (json.dumps(manifest, indent=1) + "\n").encode())
    return base.with_suffix(".json")


def read_json(path, what="file"):
    """Parse a JSON file, raising :class:`DamagedFileError` (not a decoder error) when it is not JSON."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no {what} {path}")
    try:
        return json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise DamagedFileError(path, f"not valid JSON ({str(err)[:100]}); the file is damaged") from None


def check_manifest_sha256(manifest, path):
    """Raise :class:`DamagedFileError` unless ``manifest['manifest_sha256']`` is the SHA-256 of the rest."""
    rest = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    if canonical_sha256(rest) != manifest["manifest_sha256"]:
        raise DamagedFileError(path, "its content does not match its manifest_sha256: the file was edited or "
                                     "damaged after bitsim wrote it; write it again with bitsim")


def read_npz(path, expected):
    """The arrays of a ``.npz`` (no pickle), checked against ``{name: (shape, dtype, sha256)}``."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                raise ValueError("a .npy file, not a .npz archive")
            names = sorted(npz.files)
            if names != sorted(expected):
                raise DamagedFileError(path, f"holds arrays {names[:10]}, expected {sorted(expected)[:10]}")
            arrays = {name: npz[name] for name in names}
    except DamagedFileError:
        raise
    except Exception as err:  # zipfile, zlib, numpy header and EOF errors of a damaged archive
        raise DamagedFileError(path, f"cannot be read as a .npz archive ({type(err).__name__}: "
                                     f"{str(err)[:100]})") from None
    for name, (shape, dtype, digest) in expected.items():
        a = arrays[name]
        if list(a.shape) != list(shape) or a.dtype.str != dtype or array_sha256(a) != digest:
            raise DamagedFileError(path, f"array {name!r} ({a.dtype.str}{list(a.shape)}) does not match its "
                                         f"manifest entry ({dtype}{list(shape)} and its SHA-256)")
    return arrays


def read_manifest(path, kind=None):
    """The verified JSON manifest of a bundle (schema, own checksum, kind), without reading its arrays.

    Returns
    -------
    dict
        The manifest; its ``meta`` is the bundle's metadata.
    """
    manifest_path = _base(path).with_suffix(".json")
    if not manifest_path.exists():
        raise MissingFileError(f"no manifest {manifest_path}; a bitsim model is a .json file beside a .npz file")
    manifest = read_json(manifest_path, "manifest")
    if isinstance(manifest, dict) and manifest.get("format_version") not in (FORMAT_VERSION, None):
        raise DamagedFileError(manifest_path, f"format version {manifest.get('format_version')!r}; this bitsim reads "
                                              f"version {FORMAT_VERSION}: save the model again with this bitsim")
    validate(manifest, BUNDLE_SCHEMA, manifest_path)
    check_manifest_sha256(manifest, manifest_path)
    if kind is not None and manifest["kind"] != kind:
        raise DamagedFileError(manifest_path, f"holds {manifest['kind']!r}, expected {kind!r}")
    return manifest


def load_bundle(path, kind=None):
    """Load a bundle written by :func:`save_bundle`, verifying schema, kind, version and every checksum.

    Nothing is used before it is verified: the manifest against :data:`BUNDLE_SCHEMA` and its own
    SHA-256, then the ``.npz`` file's SHA-256, then every array's shape, dtype and SHA-256.

    Returns
    -------
    arrays : dict of str to numpy.ndarray
    meta : dict

    Raises
    ------
    MissingFileError
        The manifest or the ``.npz`` beside it is missing.
    DamagedFileError
        Anything fails a check; the message names the file and the field.
    """
    base = _base(path)
    manifest_path = base.with_suffix(".json")
    manifest = read_manifest(manifest_path, kind)
    npz_path = base.with_suffix(".npz")
    if manifest["npz"] != npz_path.name:
        raise DamagedFileError(manifest_path, f"names {manifest['npz']!r} as its arrays, expected {npz_path.name!r}")
    if not npz_path.is_file():
        raise MissingFileError(f"{npz_path} is missing; it must sit beside {manifest_path.name}")
    if sha256_file(npz_path) != manifest["npz_sha256"]:
        raise DamagedFileError(npz_path, f"does not match the checksum in {manifest_path.name}; "
                                         "the file was changed or damaged")
    expected = {name: (spec["shape"], spec["dtype"], spec["sha256"]) for name, spec in manifest["arrays"].items()}
    return read_npz(npz_path, expected), manifest["meta"]


def _base(path):
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".npz", ".json") else path


def read_inputs(spec, dtypes=("uint8",)):
    """The inputs of ``bitsim export`` or ``bitsim qonnx`` from a file: the array of a .npy or .npz file.

    Files are checked before they are used and never unpickled: whatever a file holds, the result is
    the array or a bitsim error naming the file.

    Parameters
    ----------
    spec : str or Path
        The path of a ``.npy`` file, or of a ``.npz`` file holding exactly one array. The array must
        have one of ``dtypes`` with one example per row and at least one row. (``bitsim export`` reads
        the bundled images for ``mnist:test`` and ``mnist:train`` itself.)
    dtypes : sequence of str, optional
        The dtypes accepted (default uint8 only: the pixels bitsim's own models read).

    Returns
    -------
    numpy.ndarray of one of ``dtypes``

    Raises
    ------
    InputError
        A path that is not .npy or .npz, an unreadable path, a 0-d or empty array, a .npz without
        exactly one array.
    InputTypeError
        An array whose dtype is not one of ``dtypes``.
    MissingFileError
        The file does not exist.
    DamagedFileError
        The file is not the .npy or .npz its name says, or is truncated or damaged.
    """
    spec = str(spec)
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise InputError(f"cannot read inputs from {spec!r}; give mnist:test, mnist:train, a .npy or a .npz file")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            x = read_npy(f, size, path, dtypes, _input_fix(dtypes)) if suffix == ".npy" else _read_npz(f, path, dtypes)
    except BitsimError:
        raise
    except FileNotFoundError:
        raise MissingFileError(f"no input file {path}; give mnist:test, mnist:train or an existing .npy or "
                               ".npz file") from None
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    except Exception as err:  # whatever numpy or zipfile make of a damaged file
        raise DamagedFileError(path, f"cannot be read as a {suffix} file ({one_line(err)}); save the inputs "
                                     f"again with numpy.{'save' if suffix == '.npy' else 'savez'}") from None
    if x.ndim == 0:
        raise InputError(f"{path} holds a single value (a 0-d array); give an array with one example per row")
    if x.size == 0:
        raise InputError(f"{path} holds an empty array of shape {x.shape}; give at least one example")
    return x


def read_npy(stream, size, where, dtypes, fix):
    """The array of the .npy data in ``stream`` (``size`` bytes), its header checked before the data is read.

    Parameters
    ----------
    stream : binary file
        Positioned at the start of the .npy data.
    size : int
        Bytes of .npy data in ``stream``.
    where : str
        The file (and array) named in errors.
    dtypes : sequence of str
        The dtypes accepted, in native byte order.
    fix : str
        What to give instead and how, said after the dtype found
        (e.g. "give uint8: numpy.save(path, x.astype(numpy.uint8))").

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    InputTypeError
        An object array, or a dtype not in ``dtypes``, or not in native byte order.
    DamagedFileError
        Not .npy data, an unknown .npy version, or fewer or more data bytes than the header declares.
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
    except ValueError:
        raise DamagedFileError(where, "is not a .npy file (it does not start with the .npy magic bytes); "
                                      "save the array with numpy.save") from None
    read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
    if read_header is None:
        raise DamagedFileError(where, f"is a .npy file of version {version}; save the array with numpy.save, "
                                      "which writes version 1.0")
    shape, _, dtype = read_header(stream)
    if dtype.hasobject or dtype.name not in dtypes or not dtype.isnative:
        raise InputTypeError(f"{where} holds an array of dtype {dtype}; {fix}")
    need, have = math.prod(shape) * dtype.itemsize, size - stream.tell()
    if need != have:
        raise DamagedFileError(where, f"its header declares a {dtype.name} array of shape {shape} ({need:,} bytes) "
                                      f"but {have:,} bytes of data follow: the file is truncated or damaged")
    stream.seek(0)
    return fmt.read_array(stream, allow_pickle=False)


def _input_fix(dtypes):
    if tuple(dtypes) == ("uint8",):
        return ("export needs uint8 inputs (0..255, as the model reads them), e.g. "
                "numpy.save(path, x.astype(numpy.uint8))")
    return f"give one of {', '.join(dtypes)} (native byte order), e.g. numpy.save(path, x.astype(numpy.float32))"


def _read_npz(stream, path, dtypes):
    """The one array of the .npz archive in ``stream``."""
    if stream.read(6) == b"\x93NUMPY":
        raise DamagedFileError(path, "is a .npy file, not a .npz archive; rename it to .npy")
    stream.seek(0)
    try:
        archive = zipfile.ZipFile(stream)
    except zipfile.BadZipFile:
        raise DamagedFileError(path, "is not a .npz archive (not a zip file); save the inputs with "
                                     "numpy.savez(path, x=x)") from None
    with archive:
        members = archive.infolist()
        if len(members) != 1:
            names = [m.filename for m in members]
            raise InputError(f"{path} holds {len(names)} arrays {names[:5]}; give a .npz with exactly one array")
        member = members[0]
        if not member.filename.endswith(".npy"):
            raise DamagedFileError(path, f"holds {member.filename!r}, not a .npy array; save the inputs with "
                                         "numpy.savez(path, x=x)")
        with archive.open(member) as data:
            return read_npy(data, member.file_size, f"{path} (array {member.filename[:-4]!r})", dtypes,
                            _input_fix(dtypes))
