"""Fuzzing the minifloat and MX loaders: MX golden exports, and everything that parses a format name or spec.

Golden exports of MX tensors: a mutated manifest or code file verifies to exactly what was written or is refused
with a :class:`~bitsim.errors.GoldenError`; a re-signed manifest that loads still describes MX parts that fit
each other and their words; a mutated DUT file is judged a match only when it holds the golden words.
The arrays ``bitsim export-mx`` reads: a mutated .npy or .npz gives named float arrays or a bitsim error.
Format specs: any text or option given to the minifloat and MX parsers, ``quantize`` and ``explain`` gives a
result or a :class:`~bitsim.errors.BitsimError`, never another exception; a format that is accepted
round-trips every finite code.
"""

import contextlib
import io
import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitsim.cli import main
from bitsim.formats import minifloat as mf
from bitsim.formats import mx
from bitsim.golden import compare, verify
from bitsim.golden.mx import NAME, export_mx, read_float_arrays
from bitsim.io import sha256_bytes
from fuzzing import (FUZZ_CASES, ArrayEdit, Files, JsonEdit, array_edits, byte_edits, call, expect, fuzz_settings,
                     json_edits, manifest_text, npy_bytes, npz_of, plain_words, record, refused, resign, signings)

pytest_plugins = ["fuzz_summary_plugin"]
# a tenth of the suite's budget per loader under the ci profile (1,000 cases; about 40 s in all on 2 cores)
mx_fuzz = settings(fuzz_settings, max_examples=max(200, FUZZ_CASES // 10))

ELEMENT_BITS = {name: f.element.bits for name, f in mx.FORMATS.items()}


def tensors():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 40))
    x[0, 33] = np.inf
    return {"a": mx.quantize(x, "mxfp4_e2m1", axis=1), "b": mx.quantize(rng.standard_normal((5, 2)), "mxfp6_e3m2",
                                                                         axis=0, block=2)}


class MXGolden:
    """An MX golden export (memh and bin), its ``verify`` result, and its files for in-place mutation."""

    def __init__(self, directory):
        self.dir = directory
        self.files = Files(*directory.iterdir())
        self.manifest_path = directory / "manifest.json"
        self.doc = self.files.doc(self.manifest_path)
        self.result = verify(directory)
        self.entries = self.doc["tensors"]
        self.json_edits = json_edits(self.doc)

    def __repr__(self):
        return f"MXGolden({self.dir})"


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mxgolden") / "golden"
    export_mx(tensors(), directory, formats=("memh", "bin"))
    g = MXGolden(directory)
    yield g
    g.files.restore()


def mx_parts_problems(manifest, words):
    """Independently of bitsim's checks: MX parts that do not fit each other or their words."""
    found, parts = [], {}
    for e in manifest["tensors"]:
        if "mx" in e:
            parts.setdefault(e["mx"]["of"], {})[e["mx"]["part"]] = e
    for of, p in parts.items():
        if set(p) != {"codes", "scales"}:
            found.append(f"{of}: parts {sorted(p)}")
            continue
        c, s = p["codes"], p["scales"]
        fmt, block, axis = c["mx"]["format"], c["mx"]["block"], c["mx"]["axis"]
        if fmt not in ELEMENT_BITS or (s["mx"]["format"], s["mx"]["block"], s["mx"]["axis"]) != (fmt, block, axis):
            found.append(f"{of}: format {fmt}, block {block}, axis {axis} vs {s['mx']}")
            continue
        shape = list(c["shape"]) or [1]
        if axis >= len(shape) or c["dtype"] != "|u1" or s["dtype"] != "|u1":
            found.append(f"{of}: axis {axis} of shape {c['shape']}, dtypes {c['dtype']} {s['dtype']}")
            continue
        shape[axis] = -(-shape[axis] // block)
        if shape != list(s["shape"]):
            found.append(f"{of}: scales {s['shape']} for codes {c['shape']}")
        if any(w >> ELEMENT_BITS[fmt] for w in words[c["name"]]):
            found.append(f"{of}: a code wider than {ELEMENT_BITS[fmt]} bits")
    return found


def check_verify(loader, g, mutation, words_only=False, resigned=False):
    try:
        result, err = call(verify, g.dir)
    finally:
        g.files.restore()
    if err is not None:
        return refused(loader, mutation, err)
    manifest, words = result
    if (manifest, words) == g.result:
        return record(loader, "unchanged")
    expect(words_only or resigned, loader, mutation, "verify returned another manifest without an error")
    expect(all(words[n] == g.result[1].get(n) for n in words), loader, mutation,
           "verify returned other words without an error")  # a re-signed manifest may list fewer tensors
    if resigned:
        expect(not mx_parts_problems(manifest, words), loader, mutation,
               lambda: f"verify accepted MX parts that contradict: {mx_parts_problems(manifest, words)}")
    record(loader, "unchanged" if words_only else "equivalent")


@mx_fuzz
@given(data=st.data())
def test_mx_golden_manifest(golden, data):
    """A damaged MX golden manifest verifies unchanged or raises GoldenError; re-signed, its MX parts still fit."""
    edit = data.draw(st.one_of(byte_edits, golden.json_edits), "mutation")
    for sign in ("stale", "resigned") if isinstance(edit, JsonEdit) else ("stale",):
        if isinstance(edit, JsonEdit):
            doc = edit(golden.doc)
            golden.files.write(golden.manifest_path, manifest_text(resign(doc) if sign == "resigned" else doc))
        else:
            golden.files.write(golden.manifest_path, edit(golden.files.original[golden.manifest_path]))
        check_verify("golden.verify MX manifest.json", golden, (edit, sign), resigned=sign == "resigned")


@mx_fuzz
@given(data=st.data())
def test_mx_golden_code_files(golden, data):
    """A damaged MX codes or scales file verifies unchanged or raises GoldenError, also with its SHA-256 re-signed."""
    entry = data.draw(st.sampled_from(golden.entries), "tensor")
    kind = data.draw(st.sampled_from(["memh", "bin"]), "kind")
    edit, sign = data.draw(st.tuples(byte_edits, signings), "mutation")
    path = golden.dir / f"{entry['name']}.{kind}"
    mutated = edit(golden.files.original[path])
    golden.files.write(path, mutated)
    if sign == "resigned":
        doc = json.loads(json.dumps(golden.doc))
        for e in doc["tensors"]:
            if e["name"] == entry["name"]:
                e["files"][kind]["sha256"] = sha256_bytes(mutated)
        golden.files.write(golden.manifest_path, manifest_text(resign(doc)))
    check_verify(f"golden.verify MX .{kind}", golden, (path.name, edit, sign), words_only=sign == "resigned")


@pytest.fixture(scope="module")
def dut(golden, tmp_path_factory):
    directory = tmp_path_factory.mktemp("mxdut")
    for e in golden.entries:
        (directory / f"{e['name']}.memh").write_bytes(golden.files.original[golden.dir / f"{e['name']}.memh"])
    files = Files(*directory.iterdir())
    yield directory, files
    files.restore()


@mx_fuzz
@given(data=st.data())
def test_mx_compare_dut(golden, dut, data):
    """A mutated DUT file of MX codes or scales is a match only when its words are the golden words."""
    loader = "golden.compare MX DUT file"
    directory, files = dut
    entry = data.draw(st.sampled_from(golden.entries), "tensor")
    edit = data.draw(byte_edits, "mutation")
    path = directory / f"{entry['name']}.memh"
    mutated = edit(files.original[path])
    files.write(path, mutated)
    try:
        verdicts, err = call(compare, golden.dir, directory, [entry["name"]], ("memh",))
    finally:
        files.restore()
    if err is not None:
        return refused(loader, (path.name, edit), err)
    (verdict,) = verdicts
    if verdict.status == "match":
        expect(plain_words(mutated) == plain_words(files.original[path]), loader, (path.name, edit),
               "judged a match, but the words differ")
    else:
        expect(verdict.status in ("mismatch", "malformed"), loader, (path.name, edit), f"verdict {verdict}")
        if verdict.status == "mismatch":
            expect(isinstance(verdict.first["actual_value"], str), loader, (path.name, edit), "no decoded value")
    record(loader, verdict.status)


# ---------------------------------------------------------------------------------------------------
# format names and specs

WORDS = st.one_of(st.text(max_size=12), st.sampled_from(
    ["e4m3", "E5M2", " e2m1 ", "e8m0", "e0m3", "e9m0", "e3m99", "e4m3fn", "mxfp8_e4m3", "mxfp4_e2m1", "mxint8",
     "mxfp9", "", "e", "e1m0", "e2m10", "e5m10", "e8m7", "e-1m2", "e٣m2", "floor", "rceil", "nearest_even"]))
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3000, 3000), st.floats(allow_nan=True), st.text(max_size=4),
                   st.just([1]))
OPTION_NAMES = ["bias", "subnormals", "infinities", "nans", "signed", "zero", "exp_bits", "man_bits", "name", "other"]


def accepted(loader, fn, *args):
    """Call ``fn``; a bitsim error is a refusal, any other exception fails. Returns the result or None."""
    result, err = call(fn, *args)
    if err is not None:
        refused(loader, args, err)
        return None
    record(loader, "unchanged")
    return result


@mx_fuzz
@given(spec=st.one_of(WORDS, st.builds("e{}m{}".format, st.integers(0, 9), st.integers(0, 11))),
       options=st.one_of(st.just({}), st.dictionaries(st.sampled_from(OPTION_NAMES), VALUES, max_size=3),
                         st.dictionaries(st.sampled_from(OPTION_NAMES[:6]), st.one_of(st.booleans(),
                                                                                     st.integers(-20, 20)),
                                         max_size=3)))
def test_minifloat_specs(spec, options):
    """``parse_minifloat(spec, **options)`` gives a format or a bitsim error; an accepted format decodes and
    re-encodes every finite code to itself."""
    fmt = accepted("parse_minifloat", lambda: mf.parse_minifloat(spec, **options))
    if fmt is None:
        return
    codes = np.arange(1 << fmt.bits, dtype=np.int64).astype(fmt.dtype)
    v = mf.decode(codes, fmt)
    finite = np.isfinite(v)
    again = mf.encode(v[finite], fmt)
    expect(np.array_equal(again, codes[finite]), "parse_minifloat", (spec, options),
           lambda: f"{fmt!r}: codes {codes[finite][again != codes[finite]][:4]} do not round-trip")


def mostly(valid, other):
    """``valid`` in eight draws of ten, else ``other``."""
    return st.integers(0, 9).flatmap(lambda k: valid if k < 8 else other)


BLOCKS = mostly(st.one_of(st.none(), st.integers(1, 40)), VALUES)
AXES = mostly(st.integers(-2, 1), st.one_of(st.integers(-3, 2), VALUES))
RULES = mostly(st.sampled_from([r.value for r in mx.ScaleRule]), WORDS)
ROUNDINGS = mostly(st.sampled_from(["nearest_even", "nearest_away", "floor", "ceil", "toward_zero", "stochastic"]),
                   WORDS)
MX_NAMES = mostly(st.sampled_from(list(mx.FORMATS)), WORDS)


@mx_fuzz
@given(spec=MX_NAMES, block=BLOCKS, axis=AXES, rule=RULES, rounding=ROUNDINGS)
def test_mx_specs(spec, block, axis, rule, rounding):
    """``mx.quantize`` with any format name, block, axis, scale rule or rounding mode: a tensor whose codes have
    the input's shape and whose scales are E8M0 codes, or a bitsim error."""
    x = np.arange(-6.0, 6.0).reshape(3, 4)
    t = accepted("mx.quantize spec", mx.quantize, x, spec, axis, block, rule, rounding, 1)
    if t is not None:
        expect(t.codes.shape == x.shape and t.scales.dtype == np.uint8 and t.scales.shape[t.axis - 2] != 0,
               "mx.quantize spec", (spec, block, axis), f"codes {t.codes.shape}, scales {t.scales.shape}")


VALUE_TEXT = st.one_of(st.text(max_size=16), st.lists(st.floats(), min_size=1, max_size=40).map(
    lambda v: ",".join(map(repr, v))), st.sampled_from(["0.3", "nan", "-inf", "1e300", "465", "1,2,3", "", ","]))


@mx_fuzz
@given(spec=st.one_of(MX_NAMES, st.sampled_from(list(mf.FORMATS))), value=VALUE_TEXT,
       options=st.dictionaries(st.sampled_from(["--rounding", "--overflow", "--scale-rule", "--underflow"]),
                               st.one_of(RULES, ROUNDINGS, st.sampled_from(["saturate", "nonfinite", "error"])),
                               max_size=2))
def test_explain_specs(spec, value, options):
    """``bitsim explain SPEC VALUE [options]`` for minifloat and MX specs: exit status 0 or 2 (bad input), never
    an internal error."""
    argv = ["explain", spec, "--", value] if value.startswith("-") else ["explain", spec, value]
    argv[1:1] = [w for pair in options.items() for w in pair]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        status = main(argv)
    expect(status in (0, 2), "bitsim explain minifloat/MX", argv, lambda: f"exit status {status}: {err.getvalue()}")
    record("bitsim explain minifloat/MX", "unchanged" if status == 0 else "refused")


# ---------------------------------------------------------------------------------------------------
# the arrays bitsim export-mx reads

MX_ARRAYS = {"a": np.linspace(-3, 3, 12).reshape(3, 4), "b": np.arange(8, dtype=np.float16).reshape(4, 2)}


@pytest.fixture(scope="module")
def mx_inputs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mxinputs")
    np.save(directory / "a.npy", MX_ARRAYS["a"])
    np.savez(directory / "ab.npz", **MX_ARRAYS)
    files = Files(*directory.iterdir())
    yield directory, files
    files.restore()


@mx_fuzz
@given(data=st.data())
def test_mx_input_arrays(mx_inputs, data):
    """A damaged .npy / .npz of ``bitsim export-mx`` gives named float arrays of at least one value, or a bitsim
    error; with ``names`` (``--gemm A B``), exactly those arrays."""
    directory, files = mx_inputs
    suffix = data.draw(st.sampled_from(["npy", "npz"]), "file")
    names = data.draw(st.sampled_from([None, ("a", "b")]), "names") if suffix == "npz" else None
    edit = data.draw(st.one_of(byte_edits, array_edits), "mutation")
    path = directory / ("a.npy" if suffix == "npy" else "ab.npz")
    loader = "read_float_arrays .npy/.npz"
    if isinstance(edit, ArrayEdit):
        arrays = edit(MX_ARRAYS if suffix == "npz" else {"a": MX_ARRAYS["a"]})
        mutated = npz_of(arrays) if suffix == "npz" else b"".join(npy_bytes(a) for a in arrays.values())
    else:
        mutated = edit(files.original[path])
    files.write(path, mutated)
    try:
        found, err = call(read_float_arrays, path, names)
    finally:
        files.restore()
    if err is not None:
        return refused(loader, edit, err)
    expect(all(re.fullmatch(NAME, n) and a.dtype.kind == "f" and a.size and 1 <= a.ndim <= 32 for n, a in found)
           and found and (names is None or tuple(n for n, _ in found) == names), loader, edit,
           lambda: f"returned {[(n, a.dtype, a.shape) for n, a in found]}")
    same = all(n in MX_ARRAYS and a.dtype == MX_ARRAYS[n].dtype and np.array_equal(a, MX_ARRAYS[n]) for n, a in found)
    record(loader, "unchanged" if same else "different")
