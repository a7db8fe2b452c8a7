"""Mutation strategies, the case budget and per-loader counts for the loader fuzzing suite.

Each strategy draws an edit: a small object that says what it changes (its ``repr`` is what a failing
test prints) and applies it to bytes, a parsed JSON document or a dict of arrays. Positions are drawn
independently of the file and taken modulo its length, so one strategy serves every file.
"""

import io
import json
import math
import os
import pickle
import struct
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from bitsim.errors import BitsimError
from bitsim.io import canonical_sha256

FUZZ_CASES = 5_000 if settings.get_current_profile_name() == "ci" else 200
fuzz_settings = settings(max_examples=FUZZ_CASES, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# loader -> outcome -> cases, printed by fuzz_summary_plugin at the end of the run
COUNTS = defaultdict(Counter)
OUTCOMES = {"unchanged": "loaded unchanged", "refused": "refused with a bitsim error",
            "equivalent": "loaded an equivalent model", "different": "loaded other content",
            "match": "judged a match", "mismatch": "judged a mismatch", "malformed": "judged malformed",
            "checksum": "judged a checksum failure"}


def record(loader, outcome):
    COUNTS[loader][outcome] += 1


def summary_lines():
    """One line per loader: ``fuzz: LOADER: N cases (a loaded unchanged, b refused with a bitsim error, ...)``."""
    lines = []
    for loader, counts in COUNTS.items():
        parts = ", ".join(f"{counts[k]} {OUTCOMES.get(k, k)}" for k in sorted(counts, key=list(OUTCOMES).index))
        lines.append(f"fuzz: {loader}: {sum(counts.values())} cases ({parts})")
    return lines


def describe(err):
    """An exception as ``module.Type: message``."""
    return f"{type(err).__module__}.{type(err).__qualname__}: {err}"


def expect(ok, loader, mutation, problem):
    """Fail with the loader, the mutation and the problem unless ``ok`` (one plain line, easy to reproduce)."""
    if not ok:
        raise AssertionError(f"{loader}: {mutation!r}: {problem() if callable(problem) else problem}")


def refused(loader, mutation, err):
    """Check that ``err`` is a bitsim error with a message, and count the case as refused."""
    expect(isinstance(err, BitsimError) and str(err).strip(), loader, mutation, lambda: f"raised {describe(err)}")
    record(loader, "refused")


def call(fn, *args):
    """``(result, None)`` or ``(None, exception)`` for ``fn(*args)``."""
    try:
        return fn(*args), None
    except Exception as err:  # noqa: BLE001 - the fuzz property classifies every exception
        return None, err


# ---------------------------------------------------------------------------------------------------
# byte edits

POS = st.integers(0, 1 << 20)
CHUNKS = st.one_of(
    st.binary(min_size=1, max_size=24),
    st.sampled_from([b"\x00", b"\xff", b"\n", b" ", b"\t", b"\r", b"\x1c", b"\x0b", b"0", b"9" * 20, b"-", b"_",
                     b"//", b"@0", b"NaN", b"1e999", b"{", b"}", b"[", b"]", b'"', b"\\", b",", b":", b"\xc3",
                     b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY"]))


@dataclass(frozen=True)
class Truncate:
    at: int

    def __call__(self, data):
        return data[:self.at % (len(data) + 1)]


@dataclass(frozen=True)
class Flip:
    bit: int

    def __call__(self, data):
        if not data:
            return data
        bit = self.bit % (8 * len(data))
        out = bytearray(data)
        out[bit // 8] ^= 1 << bit % 8
        return bytes(out)


@dataclass(frozen=True)
class Replace:
    at: int
    byte: int

    def __call__(self, data):
        if not data:
            return data
        out = bytearray(data)
        out[self.at % len(data)] = self.byte
        return bytes(out)


@dataclass(frozen=True)
class Insert:
    at: int
    chunk: bytes

    def __call__(self, data):
        at = self.at % (len(data) + 1)
        return data[:at] + self.chunk + data[at:]


@dataclass(frozen=True)
class Delete:
    at: int
    length: int

    def __call__(self, data):
        at = self.at % (len(data) + 1)
        return data[:at] + data[at + self.length:]


@dataclass(frozen=True)
class Append:
    chunk: bytes

    def __call__(self, data):
        return data + self.chunk


@dataclass(frozen=True)
class Duplicate:
    at: int
    length: int
    to: int

    def __call__(self, data):
        at, to = self.at % (len(data) + 1), self.to % (len(data) + 1)
        return data[:to] + data[at:at + self.length] + data[to:]


byte_edits = st.one_of(
    st.builds(Truncate, POS),
    st.builds(Flip, POS),
    st.builds(Replace, POS, st.integers(0, 255)),
    st.builds(Insert, POS, CHUNKS),
    st.builds(Delete, POS, st.integers(1, 64)),
    st.builds(Append, CHUNKS),
    st.builds(Duplicate, POS, st.integers(1, 64), POS),
)

# ---------------------------------------------------------------------------------------------------
# structural JSON edits

DEEP = "\x00deep\x00"  # stands for a list nested 100,000 deep, spliced into the text after json.dumps
RETYPES = {"string": "text", "list": [], "dict": {}, "null": None, "true": True, "false": False, "float": 1.5,
           "nan": math.nan, "inf": math.inf, "huge": 2**63, "negative": -1, "zero": 0, "deep": DEEP}


def json_paths(doc, path=()):
    """Every path into ``doc`` (tuples of keys and list indices), the root first."""
    out = [path]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += json_paths(value, path + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += json_paths(value, path + (i,))
    return out


def copy_json(doc):
    return json.loads(json.dumps(doc))


def dumps(doc, **kwargs):
    """``json.dumps`` with :data:`DEEP` values spliced in as deeply nested lists."""
    text = json.dumps(doc, **kwargs)
    return text.replace(json.dumps(DEEP), "[" * 100_000 + "]" * 100_000)


@dataclass(frozen=True)
class JsonEdit:
    """One structural change at ``path``: ``op`` is delete, rename, retype, number, text, grow or shrink."""

    path: tuple
    op: str
    arg: object = None

    def __call__(self, doc):
        doc = copy_json(doc)
        if not self.path:
            return self.change(doc)
        parent = doc
        for key in self.path[:-1]:
            parent = parent[key]
        key = self.path[-1]
        if self.op == "delete":
            del parent[key]
        elif self.op == "rename":
            parent[self.arg if self.arg != key else key + "_"] = parent.pop(key)
        else:
            parent[key] = self.change(parent[key])
        return doc

    def change(self, value):
        if self.op == "retype":
            return copy_json(RETYPES[self.arg]) if self.arg not in ("nan", "inf", "deep") else RETYPES[self.arg]
        if self.op == "number":
            return {"huge": 2**63, "huger": 10**30, "negative": -value - 1, "minus1": -1, "half": value + 0.5,
                    "float": float(value), "next": value + 1, "prev": value - 1, "zero": 0}[self.arg]
        if self.op == "text":
            return {"empty": "", "suffix": value + "x", "upper": value.upper(), "chop": value[:-1],
                    "slash": "a/" + value, "unicode": value + "\u00e9"}[self.arg]
        if self.op == "grow":
            return value + [copy_json(value[-1]) if value else 1] * self.arg
        if self.op == "shrink":
            return value[:max(0, len(value) - self.arg)]
        raise AssertionError(self.op)


ARGS = {"retype": st.sampled_from(sorted(RETYPES)),
        "rename": st.sampled_from(["", "x", "type", "kind", "__proto__", "a/b", "0", "meta", "name"]),
        "number": st.sampled_from(["huge", "huger", "negative", "minus1", "half", "float", "next", "prev", "zero"]),
        "text": st.sampled_from(["empty", "suffix", "upper", "chop", "slash", "unicode"]),
        "grow": st.integers(1, 3), "shrink": st.integers(1, 3), "delete": st.none()}


def json_edits(doc):
    """Strategy of :class:`JsonEdit` for document ``doc``: a random field at any depth and a change fitting it."""
    choices = []
    for path in json_paths(doc):
        value = doc
        for key in path:
            value = value[key]
        ops = ["retype"] + (["delete"] if path else []) + (["rename"] if path and isinstance(path[-1], str) else [])
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            ops.append("number")
        if isinstance(value, str):
            ops.append("text")
        if isinstance(value, list):
            ops += ["grow", "shrink"]
        choices += [(path, op) for op in ops]
    ops = sorted({op for _, op in choices})
    return st.one_of([st.builds(JsonEdit, st.sampled_from([p for p, o in choices if o == op]), st.just(op), ARGS[op])
                      for op in ops])


def resign(doc):
    """``doc`` with ``manifest_sha256`` recomputed over the rest, as a writer that updates it would do."""
    if isinstance(doc, dict) and "manifest_sha256" in doc:
        doc["manifest_sha256"] = canonical_sha256({k: v for k, v in doc.items() if k != "manifest_sha256"})
    return doc


def manifest_text(doc):
    """A re-serialised JSON document (compact: any layout reads the same)."""
    return dumps(doc).encode()


# ---------------------------------------------------------------------------------------------------
# edits of the arrays inside a .npz (or a .npy)

DTYPES = ["<u8", "<i8", ">u8", "<u4", "<i4", ">i4", "|u1", "|i1", "<f4", "<f8", "|b1", "<c8", "<U2", "object"]


@dataclass(frozen=True)
class ArrayEdit:
    """A change of array number ``index`` (modulo the count): dtype, shape, value, drop, add or rename."""

    index: int
    op: str
    arg: object = None

    def __call__(self, arrays):
        arrays = dict(arrays)
        names = sorted(arrays)
        name = names[self.index % len(names)] if names else None
        if name is None and self.op != "add":
            return arrays
        a = arrays.get(name)
        if self.op == "dtype":
            arrays[name] = a.astype(object) if self.arg == "object" else a.astype(np.dtype(self.arg))
        elif self.op == "shape":
            arrays[name] = {"scalar": lambda: a.reshape(-1)[:1].reshape(()) if a.size else np.zeros((), a.dtype),
                            "flat": lambda: a.reshape(-1), "axis": lambda: a[None],
                            "longer": lambda: np.concatenate([a.reshape(-1), a.reshape(-1)[:1]]),
                            "shorter": lambda: a.reshape(-1)[1:], "empty": lambda: a[:0],
                            "transpose": lambda: np.ascontiguousarray(a.T)}[self.arg]()
        elif self.op == "value":
            flat = np.ascontiguousarray(a).reshape(-1).copy()
            if flat.size:
                raw = flat.view(np.uint8).reshape(flat.size, -1)
                at, bits = self.arg
                raw[at % flat.size] = np.frombuffer(bits.to_bytes(8, "little")[:raw.shape[1]], np.uint8)
            arrays[name] = flat.reshape(a.shape)
        elif self.op == "drop":
            del arrays[name]
        elif self.op == "add":
            arrays[self.arg] = np.zeros(3, np.uint8)
        elif self.op == "rename":
            arrays[self.arg if self.arg != name else name + "x"] = arrays.pop(name)
        return arrays


array_edits = st.one_of(
    st.builds(ArrayEdit, st.integers(0, 63), st.just("dtype"), st.sampled_from(DTYPES)),
    st.builds(ArrayEdit, st.integers(0, 63), st.just("shape"),
              st.sampled_from(["scalar", "flat", "axis", "longer", "shorter", "empty", "transpose"])),
    st.builds(ArrayEdit, st.integers(0, 63), st.just("value"),
              st.tuples(st.integers(0, 1 << 16), st.integers(0, 2**64 - 1))),
    st.builds(ArrayEdit, st.integers(0, 63), st.just("drop")),
    st.builds(ArrayEdit, st.integers(0, 63), st.just("add"), st.sampled_from(["extra", "9.w", "0.x", "input.bak"])),
    st.builds(ArrayEdit, st.integers(0, 63), st.just("rename"), st.sampled_from(["00.w", "x", "0.w", "1.W", "w"])),
)


def npy_bytes(a):
    """One array in ``.npy`` format (object arrays pickled, as ``np.save`` would)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(a), allow_pickle=True)
    return buffer.getvalue()


def npz_of(arrays):
    """A ``.npz`` of ``arrays`` written independently of bitsim (any dtype, object arrays pickled)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:  # stored, as numpy.savez writes it
        for name in sorted(arrays):
            zf.writestr(f"{name}.npy", npy_bytes(arrays[name]))
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------
# how a mutated file is signed

SIGNINGS = ("stale", "resigned")
signings = st.sampled_from(SIGNINGS)
# for arrays: keep the manifest as it was, re-sign only the .npz's own SHA-256, or every entry about it
ARRAY_SIGNINGS = ("stale", "npz", "all")
array_signings = st.sampled_from(ARRAY_SIGNINGS)


# ---------------------------------------------------------------------------------------------------
# files mutated in place and restored


def put(path, data):
    """Overwrite an existing file in place (truncating it to empty first makes ext4 flush it: 50 times slower)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


class Files:
    """Files of a test's temporary directory, their original bytes, and in-place mutation with restore."""

    def __init__(self, *paths):
        self.original = {p: p.read_bytes() for p in paths}
        self.touched = set()

    def write(self, path, data):
        self.touched.add(path)
        put(path, data)

    def restore(self):
        for path in self.touched:
            put(path, self.original[path])
        self.touched.clear()

    def doc(self, path):
        return json.loads(self.original[path])

    def __repr__(self):
        return f"Files({len(self.original)} files)"


# ---------------------------------------------------------------------------------------------------
# pickles as Python 2 wrote them (the CIFAR-10 batches)


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (BINSTRING opcodes), as the CIFAR-10 files were written."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        n = len(obj)
        self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256 else pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle(obj):
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    # numpy 1.x (the files' era) names its reconstructor numpy.core.multiarray
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


HEX_DIGITS = b"0123456789abcdefABCDEF"


def plain_words(data):
    """$readmemh words by the plainest reading (a hex digit, then hex digits or Verilog's '_' separators);
    None for anything that is not such words."""
    words = []
    for line in data.split(b"\n"):
        for token in line.split(b"//")[0].split():
            if token[0] not in HEX_DIGITS or not all(c in HEX_DIGITS + b"_" for c in token):
                return None
            words.append(int(token.replace(b"_", b""), 16))
    return words
