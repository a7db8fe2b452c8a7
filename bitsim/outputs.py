"""Output directories: bitsim replaces only what it created, and never a directory it reads from.

The rule (docs/formats.md, section 12; README, "Files, checks and exit statuses"):

* A directory bitsim writes as a whole (a training run, a golden export) names its kind in a marker:
  ``bitsim-output.json`` for runs, ``manifest.json`` for golden exports.
* An output directory that exists and is not empty is refused unless the command is told to resume
  it (``--resume``) or to replace it (``--overwrite``).
* ``--overwrite`` replaces a directory only if its marker names the same kind of output, every file
  in it is one that kind writes, and it holds none of the command's inputs. Anything else is
  refused with the name of the first file in the way, and nothing is deleted.
* New files and directories follow the umask, like any other program's.
"""

import fnmatch
import json
import os
import shutil
import tempfile
from pathlib import Path

from . import __version__
from .errors import DamagedFileError, OutputExistsError
from .io import atomic_write_bytes, canonical_sha256, current_umask, read_json
from .schema import SHA256, OneOf, Str, validate

MARKER = "bitsim-output.json"
TEMPORARY = ".*.tmp"  # a file atomic_write_bytes left behind when it was interrupted


MARKER_SCHEMA = {"bitsim_output": OneOf(1), "kind": Str(), "bitsim_version": Str(), "marker_sha256": SHA256}


def read_marker(directory):
    """The kind a directory's marker names, or None when it has no marker.

    Raises
    ------
    DamagedFileError
        When the marker exists but fails its schema or its own checksum.
    """
    path = Path(directory) / MARKER
    if not path.is_file():
        return None
    marker = validate(read_json(path, "marker"), MARKER_SCHEMA, path)
    if canonical_sha256({k: v for k, v in marker.items() if k != "marker_sha256"}) != marker["marker_sha256"]:
        raise DamagedFileError(path, "its content does not match its marker_sha256 (it was edited or damaged)")
    return marker["kind"]


def write_marker(directory, kind):
    """Mark ``directory`` as bitsim output of ``kind``."""
    marker = {"bitsim_output": 1, "kind": kind, "bitsim_version": __version__}
    marker["marker_sha256"] = canonical_sha256(marker)
    atomic_write_bytes(Path(directory) / MARKER, (json.dumps(marker, indent=1) + "\n").encode())


def make_dir(path):
    """Create ``path`` and its parents with the umask's permissions; return it as a Path."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def mkdtemp_beside(path):
    """A new, empty directory beside ``path`` (same file system, so it can be renamed into place)."""
    path = Path(path)
    make_dir(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.new-", dir=path.parent))
    os.chmod(tmp, 0o777 & ~current_umask())
    return tmp


def is_empty_dir(path):
    return Path(path).is_dir() and not any(Path(path).iterdir())


def foreign_files(directory, owned):
    """Entries of ``directory`` that bitsim did not write as output matching the ``owned`` shell patterns.

    A pattern ending in ``/`` names a directory, any other pattern a file. The marker and the
    temporary files of an interrupted atomic write are bitsim's too; links never are.
    """
    files = tuple(p for p in owned if not p.endswith("/")) + (MARKER, TEMPORARY)
    dirs = tuple(p[:-1] for p in owned if p.endswith("/"))

    def ours(entry):
        patterns = dirs if entry.is_dir() else files
        return not entry.is_symlink() and any(fnmatch.fnmatchcase(entry.name, p) for p in patterns)

    return sorted(entry.name for entry in Path(directory).iterdir() if not ours(entry))


def check_not_input(directory, inputs):
    """Refuse ``directory`` as output when it is, or holds, one of ``inputs``."""
    target = Path(directory).resolve()
    for item in inputs:
        item = Path(item).resolve()
        if item == target or target in item.parents:
            raise OutputExistsError(f"{directory} holds the input {item}; write the output somewhere else")


def check_replaceable(directory, kind, owned, inputs=(), kind_of=read_marker):
    """Raise :class:`OutputExistsError` unless ``--overwrite`` may replace ``directory`` (see the module rule).

    Parameters
    ----------
    directory : Path
        An existing output directory.
    kind : str
        The kind of output about to be written.
    owned : iterable of str
        Shell patterns of the names that output of ``kind`` consists of (ending in ``/`` for a
        directory, otherwise a file).
    inputs : iterable of paths
        What the command reads; the directory must hold none of them.
    kind_of : callable
        Reads the kind a directory's marker names (None: no marker).
    """
    directory = Path(directory)
    if not directory.is_dir() or directory.is_symlink():
        raise OutputExistsError(f"{directory} exists and is not a directory; choose another output path")
    check_not_input(directory, inputs)
    try:
        found = kind_of(directory)
    except DamagedFileError as err:
        raise OutputExistsError(f"{directory} is not bitsim's output ({err}); bitsim will not replace it: "
                                "choose another output directory") from None
    if found != kind:
        what = "has no bitsim marker" if found is None else f"holds bitsim output of another kind ({found})"
        raise OutputExistsError(f"{directory} {what}; --overwrite replaces only {kind} output. "
                                "Choose another output directory, or move it away yourself")
    foreign = foreign_files(directory, owned)
    if foreign:
        raise OutputExistsError(f"{directory} holds files bitsim did not write there ({', '.join(foreign[:5])}); "
                                "move them away or choose another output directory: bitsim deletes only its own files")


def prepare_run_dir(out, kind, owned, resume=False, overwrite=False, resumable=True):
    """Make ``out`` ready for a run of ``kind``; the rule of this module.

    An absent or empty directory is created and marked. A non-empty one needs ``resume`` (the run
    continues there; an unmarked directory from an older bitsim is accepted when it holds a
    checkpoint) or ``overwrite`` (:func:`check_replaceable`, then the earlier run's files, and only
    those, are removed). ``resumable=False``: the command has no ``--resume``, and the refusal does
    not suggest it.

    Returns
    -------
    Path
    """
    out = Path(out)
    if resume and overwrite:
        raise OutputExistsError("--resume continues a run and --overwrite replaces it; give one of them")
    if out.exists() and not is_empty_dir(out):
        if resume:
            found = read_marker(out)
            if found not in (None, kind):
                raise OutputExistsError(f"{out} holds bitsim output of another kind ({found}); "
                                        f"it cannot resume a {kind} run")
        elif overwrite:
            check_replaceable(out, kind, owned)
            for entry in out.iterdir():
                if entry.name != MARKER:
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        else:
            resume_hint = "continue that run with --resume, " if resumable else ""
            raise OutputExistsError(f"{out} is not empty; {resume_hint}replace it with --overwrite, or choose "
                                    "another --out")
    make_dir(out)
    if read_marker(out) is None:
        write_marker(out, kind)
    return out


def swap_into_place(new, out):
    """Rename the finished directory ``new`` to ``out``; an existing ``out`` is moved aside, then removed.

    The caller has checked that ``out`` may be replaced (:func:`check_replaceable`). At every moment
    ``out`` is either the old directory or the new one, never a mixture.
    """
    new, out = Path(new), Path(out)
    if not out.exists():
        os.replace(new, out)
        return out
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.replace(out, old / out.name)
    os.replace(new, out)
    shutil.rmtree(old)
    return out


__all__ = ["MARKER", "read_marker", "write_marker", "make_dir", "mkdtemp_beside", "is_empty_dir", "foreign_files",
           "check_not_input", "check_replaceable", "prepare_run_dir", "swap_into_place"]
