"""Safe files: atomic writes, checksums, and arrays saved as ``.npz`` + JSON without pickle.

A saved bundle is two files side by side: ``NAME.npz`` (arrays, loaded with ``allow_pickle=False``)
and ``NAME.json`` (a manifest: kind, format version, bitsim version, metadata, and the SHA-256 of the
``.npz`` and of every array). Loading checks all of them and says what is wrong.
"""

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import __version__

FORMAT_VERSION = 1


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


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` through a temporary file in the same directory, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
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


def npz_bytes(arrays):
    """The bytes of a deterministic ``.npz`` holding ``arrays`` (sorted members, fixed zip timestamps)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            a = np.asarray(arrays[name])
            if a.dtype.kind == "O":
                raise TypeError(f"array {name!r} has dtype object, which cannot be saved without pickle")
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
    atomic_write_bytes(base.with_suffix(".npz"), data)
    atomic_write_bytes(base.with_suffix(".json"), (json.dumps(manifest, indent=1) + "\n").encode())
    return base.with_suffix(".json")


def load_bundle(path, kind=None):
    """Load a bundle written by :func:`save_bundle`, verifying kind, version and every checksum.

    Returns
    -------
    arrays : dict of str to numpy.ndarray
    meta : dict
    """
    base = _base(path)
    manifest_path = base.with_suffix(".json")
    if not manifest_path.exists():
        raise FileNotFoundError(f"no manifest {manifest_path}; a bitsim model is a .json file beside a .npz file")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{manifest_path} is not valid JSON ({err}); the file is damaged, save the model again")
    if kind is not None and manifest.get("kind") != kind:
        raise ValueError(f"{manifest_path} holds {manifest.get('kind')!r}, expected {kind!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{manifest_path} has format version {manifest.get('format_version')}, this bitsim reads {FORMAT_VERSION}"
        )
    npz_path = base.with_suffix(".npz")
    if not npz_path.exists():
        raise FileNotFoundError(f"{npz_path} is missing; it must sit beside {manifest_path.name}")
    if sha256_file(npz_path) != manifest["npz_sha256"]:
        raise ValueError(f"{npz_path} does not match the checksum in {manifest_path.name}; the file was changed or damaged")
    with np.load(npz_path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    if set(arrays) != set(manifest["arrays"]):
        raise ValueError(f"{npz_path} holds arrays {sorted(arrays)}, the manifest lists {sorted(manifest['arrays'])}")
    for name, spec in manifest["arrays"].items():
        if array_sha256(arrays[name]) != spec["sha256"]:
            raise ValueError(f"array {name!r} in {npz_path} does not match its checksum")
    return arrays, manifest["meta"]


def _base(path):
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".npz", ".json") else path
