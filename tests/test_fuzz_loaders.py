"""Fuzzing every loader of a file: a damaged file loads to exactly what was saved, or is refused with a bitsim error.

Each test mutates one file of a tiny saved model, golden export, input file or run marker in place
(restoring it after every example) and checks the property of its loader: the original content, or
a :class:`~bitsim.errors.BitsimError` with a message; never another exception, never different
content in silence. Structural JSON edits run twice, with the file's ``manifest_sha256`` left stale
(the strict property) and re-signed, as a hand edit or a buggy writer would leave it: a re-signed
file may load when the edit does not change what the model computes. The ``ci`` profile runs
:data:`fuzzing.FUZZ_CASES` cases per loader; the counts are printed at the end of the run.
"""

import json
from dataclasses import asdict

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitsim.deploy import IntegerModel, compile_model
from bitsim.formats.rng import Philox
from bitsim.golden import compare, export, verify
from bitsim.io import array_sha256, read_inputs, sha256_bytes
from bitsim.methods.bnn import BNNConfig, build_mlp, load_float_model
from bitsim.nn import layers as L
from bitsim.nn.binarized import BinaryDense
from bitsim.nn.model import Sequential
from bitsim.outputs import MARKER, read_marker, write_marker
from fuzzing import (ArrayEdit, Files, JsonEdit, array_edits, array_signings, byte_edits, call, expect,
                     fuzz_settings, json_edits, manifest_text, npy_bytes, npz_of, plain_words, record, refused, resign,
                     signings)

pytest_plugins = ["fuzz_summary_plugin"]

X = np.concatenate([np.random.default_rng(7).integers(0, 256, (6, 20)), np.full((1, 20), 255), np.zeros((1, 20))])
X = X.astype(np.uint8)
KIND = "bitsim train bnn"


@pytest.fixture(scope="module")
def files():
    store = Files()
    yield store
    store.restore()


def randomized(model, seed):
    """``model`` with random batch-norm statistics, so the folded thresholds are not trivial."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNorm):
            c = layer.n_features
            layer.running_mean[:] = rng.normal(0, 5, c)
            layer.running_var[:] = rng.uniform(0.5, 60, c)
            layer.gamma.value[:] = rng.normal(0, 1, c)
            layer.beta.value[:] = rng.normal(0, 1, c)
    return model


@pytest.fixture(scope="module")
def compiled():
    g = Philox(3)
    model = randomized(Sequential([BinaryDense(20, 8, init_rng=g), L.BatchNorm(8), L.Sign(),
                                   BinaryDense(8, 4, init_rng=g), L.BatchNorm(4)]), 5)
    return compile_model(model, (20,))


def model_content(model):
    """Everything an :class:`IntegerModel` is: input shape, and each stage's type, meta and arrays."""
    return model.input_shape, [(type(s).__name__, s.meta(), {k: (a.dtype.str, a.shape, a.tobytes())
                                                             for k, a in s.arrays().items()}) for s in model.stages]


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ---------------------------------------------------------------------------------------------------
# a bundle (.json + .npz) and its mutations

class Bundle:
    """A saved bundle ``base.json`` + ``base.npz`` with strategies for mutating either file."""

    def __init__(self, base, files):
        self.json, self.npz = base.with_suffix(".json"), base.with_suffix(".npz")
        self.files = files
        files.original.update(Files(self.json, self.npz).original)
        self.doc = files.doc(self.json)
        with np.load(self.npz, allow_pickle=False) as npz:
            self.arrays = {name: npz[name] for name in npz.files}
        self.json_mutations = st.one_of(byte_edits, json_edits(self.doc))
        self.npz_mutations = st.one_of(st.tuples(byte_edits, signings), st.tuples(array_edits, array_signings))

    def __repr__(self):
        return f"Bundle({self.json})"

    def mutate_json(self, edit, sign):
        if isinstance(edit, JsonEdit):
            doc = edit(self.doc)
            data = manifest_text(resign(doc) if sign == "resigned" else doc)
        else:
            data = edit(self.files.original[self.json])
        self.files.write(self.json, data)

    def mutate_npz(self, edit, sign):
        if isinstance(edit, ArrayEdit):
            arrays = edit(self.arrays)
            data = npz_of(arrays)
        else:
            arrays, data = None, edit(self.files.original[self.npz])
        self.files.write(self.npz, data)
        if sign == "stale":
            return
        doc = json.loads(json.dumps(self.doc))
        doc["npz_sha256"] = sha256_bytes(data)
        if sign == "all" and arrays is not None:
            doc["arrays"] = {name: {"shape": list(a.shape), "dtype": a.dtype.str,
                                    "sha256": array_sha256(a) if a.dtype.kind != "O" else "0" * 64}
                             for name, a in sorted(arrays.items())}
        self.files.write(self.json, manifest_text(resign(doc)))


def signings_of(edit):
    """A structural JSON edit runs twice, with the manifest's checksum stale and re-signed; a byte edit once."""
    return ("stale", "resigned") if isinstance(edit, JsonEdit) else ("stale",)


def new_values(edit, sign, ops=("value",)):
    """A fully re-signed change of array values: a different but valid model the loader cannot tell apart."""
    return isinstance(edit, ArrayEdit) and edit.op in ops and sign == "all"


# ---------------------------------------------------------------------------------------------------
# 1, 2: IntegerModel.load

@pytest.fixture(scope="module")
def integer_bundle(compiled, files, tmp_path_factory):
    base = tmp_path_factory.mktemp("bundle") / "model"
    compiled.save(base)
    bundle = Bundle(base, files)
    bundle.content = model_content(IntegerModel.load(bundle.json))
    bundle.scores = compiled.forward(X)
    return bundle


def check_integer_model(loader, bundle, edit, sign, resigned_content):
    """The property of :meth:`IntegerModel.load` for one mutated bundle (the files are already written)."""
    try:
        model, err = call(IntegerModel.load, bundle.json)
    finally:
        bundle.files.restore()
    mutation = (edit, sign)
    if err is not None:
        return refused(loader, mutation, err)
    if model_content(model) == bundle.content:
        return record(loader, "unchanged")
    expect(resigned_content, loader, mutation, lambda: f"loaded a different model without an error: {model!r}")
    check_scores(loader, mutation, model.forward, X, bundle.scores, new_values(edit, sign))


def check_scores(loader, mutation, forward, x, scores, may_differ):
    """A loaded re-signed model computes the original scores, refuses ``x`` with a bitsim error, or may differ."""
    got, err = call(forward, x)
    if err is not None:
        return refused(loader, mutation, err)
    expect(isinstance(got, np.ndarray) and got.dtype == scores.dtype and got.shape == scores.shape, loader,
           mutation, lambda: f"the loaded model computes {got!r}")
    if may_differ:
        return record(loader, "different")
    expect(same_bits(got, scores), loader, mutation, "the re-signed file loads a model that computes other scores")
    record(loader, "equivalent")


@fuzz_settings
@given(data=st.data())
def test_integer_model_json(integer_bundle, data):
    """Every damaged model manifest loads unchanged or is refused; a re-signed one still computes the same."""
    edit = data.draw(integer_bundle.json_mutations, "mutation")
    for sign in signings_of(edit):
        integer_bundle.mutate_json(edit, sign)
        check_integer_model("IntegerModel.load json", integer_bundle, edit, sign, sign == "resigned")


@fuzz_settings
@given(data=st.data())
def test_integer_model_npz(integer_bundle, data):
    """Every damaged model .npz loads unchanged or is refused, also with its checksums re-signed."""
    edit, sign = data.draw(integer_bundle.npz_mutations, "mutation")
    integer_bundle.mutate_npz(edit, sign)
    check_integer_model("IntegerModel.load npz", integer_bundle, edit, sign, new_values(edit, sign))


# ---------------------------------------------------------------------------------------------------
# 3: the float BNN of a training run (best.json)

# Sequential.load_state takes any dtype that converts exactly, so a re-signed dtype edit is new values too
LOSSLESS = ("value", "dtype")
XF = np.random.default_rng(8).integers(0, 256, (4, 784)).astype(np.float32)


@pytest.fixture(scope="module")
def float_bundle(files, tmp_path_factory):
    cfg = BNNConfig(hidden=8, layers=1, epochs=1)
    model = randomized(build_mlp(cfg), 9)
    base = tmp_path_factory.mktemp("run") / "best"
    model.save(base, {"config": asdict(cfg), "epoch": 1, "history": [{"epoch": 1, "val_error": 0.5}]})
    bundle = Bundle(base, files)
    loaded, meta = load_float_model(bundle.json)
    bundle.content = float_content(loaded, meta)
    bundle.scores = loaded.forward(XF, training=False)
    return bundle


def float_content(model, meta):
    return ([repr(layer) for layer in model.layers],
            {k: (a.dtype.str, a.shape, a.tobytes()) for k, a in model.state().items()}, json.dumps(meta))


@fuzz_settings
@given(data=st.data())
def test_float_model(float_bundle, data):
    """A damaged best.json / best.npz loads unchanged or is refused; a re-signed one computes the same."""
    b = float_bundle
    if data.draw(st.booleans(), "mutate the .npz"):
        edit, sign = data.draw(b.npz_mutations, "mutation")
        b.mutate_npz(edit, sign)
        new_model = new_values(edit, sign, LOSSLESS)
        check_float_model(b, edit, sign, new_model, new_model)
        return
    edit = data.draw(b.json_mutations, "mutation")
    for sign in signings_of(edit):
        b.mutate_json(edit, sign)
        # a re-signed switch to shift-based batch norm is another valid model, as new weights would be
        new_model = sign == "resigned" and edit == JsonEdit(("meta", "config", "shift_bn"), "retype", "true")
        check_float_model(b, edit, sign, sign == "resigned", new_model)


def check_float_model(b, edit, sign, resigned_content, new_model):
    """The property of :func:`load_float_model` for one mutated bundle (the files are already written)."""
    loader = "load_float_model"
    try:
        loaded, err = call(load_float_model, b.json)
    finally:
        b.files.restore()
    mutation = (edit, sign)
    if err is not None:
        return refused(loader, mutation, err)
    model, meta = loaded
    if float_content(model, meta) == b.content:
        return record(loader, "unchanged")
    expect(resigned_content, loader, mutation, "loaded a different model without an error")
    check_scores(loader, mutation, lambda x: model.forward(x, training=False), XF, b.scores, new_model)


# ---------------------------------------------------------------------------------------------------
# 4-7: golden.verify

class Golden:
    """A golden export, its original ``verify`` result and the mutations of its files."""

    def __init__(self, directory, files):
        self.dir, self.files = directory, files
        self.manifest_path = directory / "manifest.json"
        files.original.update(Files(*directory.iterdir()).original)
        self.doc = files.doc(self.manifest_path)
        self.result = verify(directory)
        self.entries = self.doc["tensors"]
        with np.load(directory / "golden.npz", allow_pickle=False) as npz:
            self.arrays = {name: npz[name] for name in npz.files}
        self.json_edits = json_edits(self.doc)
        self.manifest_mutations = st.one_of(byte_edits, self.json_edits)

    def __repr__(self):
        return f"Golden({self.dir})"

    def resign_file(self, name, kind, data):
        doc = json.loads(json.dumps(self.doc))
        for entry in doc["tensors"]:
            if entry["name"] == name:
                entry["files"][kind]["sha256"] = sha256_bytes(data)
        self.files.write(self.manifest_path, manifest_text(resign(doc)))


@pytest.fixture(scope="module")
def golden(compiled, files, tmp_path_factory):
    directory = tmp_path_factory.mktemp("golden") / "golden"
    export(compiled, X[:2], directory)
    return Golden(directory, files)


def check_verify(loader, g, edit, words_only=False, resigned_manifest=False):
    """The property of :func:`verify`: the original manifest and words, or a bitsim error."""
    try:
        result, err = call(verify, g.dir)
    finally:
        g.files.restore()
    if err is not None:
        return refused(loader, edit, err)
    manifest, words = result
    if (manifest, words) == g.result:
        return record(loader, "unchanged")
    expect(words_only or resigned_manifest, loader, edit, "verify returned another manifest without an error")
    expect(words == g.result[1], loader, edit, "verify returned other words without an error")
    if resigned_manifest:
        expect(tensor_specs(manifest) == tensor_specs(g.result[0]), loader, edit,
               lambda: f"verify accepted other tensor specs: {tensor_specs(manifest)}")
        expect(not packing_problems(manifest, words), loader, edit,
               lambda: f"verify accepted a packing that contradicts the words: {packing_problems(manifest, words)}")
    record(loader, "unchanged" if words_only else "equivalent")


def tensor_specs(manifest):
    """What a testbench reads a tensor's words with: shape, dtype and bits."""
    return {e["name"]: (e["shape"], e["dtype"], e["bits"]) for e in manifest["tensors"]}


def packing_problems(manifest, words):
    """Packed tensors whose ``packing.length`` contradicts their words: the word count, or set padding bits."""
    found = []
    for e in manifest["tensors"]:
        if "packing" not in e or not e["shape"]:
            continue
        length, row = e["packing"]["length"], e["shape"][-1]
        valid = [min(64, max(0, length - 64 * (k % row))) for k in range(len(words[e["name"]]))]
        if -(-length // 64) != row or any(w >> v for w, v in zip(words[e["name"]], valid)):
            found.append(f"{e['name']}: packing length {length} for rows of {row} words {words[e['name']][:4]}")
    return found


@fuzz_settings
@given(data=st.data())
def test_golden_manifest(golden, data):
    """A damaged golden manifest verifies unchanged or raises GoldenError; re-signed, the words stay the same."""
    edit = data.draw(golden.manifest_mutations, "mutation")
    for sign in signings_of(edit):
        if isinstance(edit, JsonEdit):
            doc = edit(golden.doc)
            golden.files.write(golden.manifest_path, manifest_text(resign(doc) if sign == "resigned" else doc))
        else:
            golden.files.write(golden.manifest_path, edit(golden.files.original[golden.manifest_path]))
        check_verify("golden.verify manifest.json", golden, (edit, sign), resigned_manifest=sign == "resigned")


def golden_file_test(kind):
    @fuzz_settings
    @given(data=st.data())
    def test(golden, data):
        index = data.draw(st.integers(0, len(golden.entries) - 1), "tensor")
        edit, sign = data.draw(st.tuples(byte_edits, signings), "mutation")
        name = golden.entries[index]["name"]
        path = golden.dir / f"{name}.{kind}"
        mutated = edit(golden.files.original[path])
        golden.files.write(path, mutated)
        if sign == "resigned":
            golden.resign_file(name, kind, mutated)
        check_verify(f"golden.verify .{kind}", golden, (path.name, edit, sign), words_only=sign == "resigned")

    test.__doc__ = f"A damaged golden .{kind} file verifies unchanged or raises GoldenError, also re-signed."
    return test


test_golden_memh = golden_file_test("memh")
test_golden_bin = golden_file_test("bin")


@fuzz_settings
@given(data=st.data())
def test_golden_npz(golden, data):
    """A damaged golden.npz verifies unchanged or raises GoldenError, also with its checksums re-signed."""
    path = golden.dir / "golden.npz"
    edit, sign = data.draw(st.one_of(st.tuples(byte_edits, signings), st.tuples(array_edits, array_signings)),
                           "mutation")
    arrays = edit(golden.arrays) if isinstance(edit, ArrayEdit) else None
    mutated = npz_of(arrays) if arrays is not None else edit(golden.files.original[path])
    golden.files.write(path, mutated)
    if sign != "stale":
        doc = json.loads(json.dumps(golden.doc))
        doc["npz_sha256"] = sha256_bytes(mutated)
        if sign == "all" and arrays is not None:
            for entry in doc["tensors"]:
                a = arrays.get(entry["name"])
                if a is not None and a.dtype.kind != "O":
                    entry.update(shape=list(a.shape), array_sha256=array_sha256(a),
                                 dtype="bool" if a.dtype == np.bool_ else a.dtype.str)
        golden.files.write(golden.manifest_path, manifest_text(resign(doc)))
    check_verify("golden.verify golden.npz", golden, (edit, sign), words_only=sign != "stale")


# ---------------------------------------------------------------------------------------------------
# 8: golden.compare with a damaged DUT file

def bin_words(data, count, itemsize):
    if len(data) != count * itemsize:
        return None
    return [int.from_bytes(data[i:i + itemsize], "little") for i in range(0, len(data), itemsize)]


@pytest.fixture(scope="module")
def dut(golden, compiled, files, tmp_path_factory):
    """A golden export of .memh files only (quicker to verify), and DUT directories holding each kind."""
    root = tmp_path_factory.mktemp("compare")
    export(compiled, X[:2], root / "golden", formats=("memh",))
    dirs = {}
    for kind in ("memh", "bin", "signed"):
        dirs[kind] = root / kind
        dirs[kind].mkdir()
        for entry in golden.entries:
            name = f"{entry['name']}.{'bin' if kind == 'bin' else 'memh'}"
            (dirs[kind] / name).write_bytes(golden.files.original[golden.dir / name])
    (dirs["signed"] / "manifest.json").write_bytes(golden.files.original[golden.manifest_path])
    files.original.update(Files(*(p for d in dirs.values() for p in d.iterdir())).original)
    return root / "golden", dirs


@fuzz_settings
@given(data=st.data())
def test_compare_dut(golden, dut, data):
    """A DUT file matches only when it holds the golden words; compare never raises for a damaged DUT file."""
    loader = "golden.compare DUT file"
    gold, dirs = dut
    target = data.draw(st.sampled_from(["memh", "bin", "manifest"]), "file")
    if target == "manifest":
        path = dirs["signed"] / "manifest.json"
        edit = data.draw(st.one_of(byte_edits, golden.json_edits), "mutation")
        golden.files.write(path, manifest_text(edit(golden.doc)) if isinstance(edit, JsonEdit)
                           else edit(golden.files.original[path]))
        try:
            verdicts, err = call(compare, gold, dirs["signed"])
        finally:
            golden.files.restore()
        if err is not None:
            return refused(loader, edit, err)
        wrong = [v for v in verdicts if v.status not in ("match", "checksum")]
        expect(not wrong, loader, edit, f"intact files judged {wrong}")
        return record(loader, "match" if all(v.status == "match" for v in verdicts) else "checksum")
    entry = golden.entries[data.draw(st.integers(0, len(golden.entries) - 1), "tensor")]
    edit = data.draw(byte_edits, "mutation")
    path = dirs[target] / f"{entry['name']}.{target}"
    original = golden.files.original[path]
    mutated = edit(original)
    golden.files.write(path, mutated)
    try:
        verdicts, err = call(compare, gold, dirs[target], [entry["name"]], (target,))
    finally:
        golden.files.restore()
    mutation = (path.name, edit)
    if err is not None:
        return refused(loader, mutation, err)
    (verdict,) = verdicts
    if target == "memh":
        same = plain_words(mutated) == plain_words(original)
    else:
        count, size = int(np.prod(entry["shape"])), max(1, entry["bits"] // 8)
        same = bin_words(mutated, count, size) == bin_words(original, count, size)
    if verdict.status == "match":
        expect(same, loader, mutation, lambda: f"judged a match, but the words differ: {mutated[:300]!r}")
    else:  # refusing a file with the same words (say, a non-ASCII comment) is strict, not wrong
        expect(verdict.status in ("mismatch", "malformed"), loader, mutation, lambda: f"verdict {verdict}")
    record(loader, verdict.status)


# ---------------------------------------------------------------------------------------------------
# 9: the --inputs file of `bitsim export`

@pytest.fixture(scope="module")
def inputs(files, tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    np.save(root / "x.npy", X[:3])
    np.savez(root / "x.npz", x=X[:3])
    files.original.update(Files(root / "x.npy", root / "x.npz").original)
    return root


@fuzz_settings
@given(data=st.data())
def test_read_inputs(inputs, files, data):
    """A damaged .npy / .npz input file gives uint8 rows or a bitsim error, nothing else."""
    suffix = data.draw(st.sampled_from(["npy", "npz"]), "file")
    edit = data.draw(st.one_of(byte_edits, array_edits), "mutation")
    path = inputs / f"x.{suffix}"
    loader = "read_inputs .npy/.npz"
    if isinstance(edit, ArrayEdit):
        arrays = edit({"x": X[:3]})
        mutated = npz_of(arrays) if suffix == "npz" else b"".join(npy_bytes(a) for a in arrays.values())
    else:
        mutated = edit(files.original[path])
    files.write(path, mutated)
    try:
        x, err = call(read_inputs, str(path))
    finally:
        files.restore()
    if err is not None:
        return refused(loader, edit, err)
    rows = isinstance(x, np.ndarray) and x.ndim >= 1 and 0 < len(x)
    expect(rows and x.dtype == np.uint8, loader, edit,
           lambda: f"returned {type(x).__name__} {getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}")
    record(loader, "unchanged" if same_bits(x, X[:3]) else "different")


# ---------------------------------------------------------------------------------------------------
# 10: the marker of an output directory

class Marker:
    """A run directory's marker and its mutations."""

    def __init__(self, root, files):
        write_marker(root, KIND)
        self.root, self.path = root, root / MARKER
        files.original.update(Files(self.path).original)
        self.doc = files.doc(self.path)
        self.mutations = st.one_of(byte_edits, json_edits(self.doc))

    def __repr__(self):
        return f"Marker({self.path})"


@pytest.fixture(scope="module")
def marker(files, tmp_path_factory):
    return Marker(tmp_path_factory.mktemp("run"), files)


@fuzz_settings
@given(data=st.data())
def test_read_marker(marker, files, data):
    """A damaged bitsim-output.json names the original kind or raises a bitsim error."""
    loader = "read_marker"
    edit = data.draw(marker.mutations, "mutation")
    files.write(marker.path, manifest_text(edit(marker.doc)) if isinstance(edit, JsonEdit)
                else edit(files.original[marker.path]))
    try:
        kind, err = call(read_marker, marker.root)
    finally:
        files.restore()
    if err is not None:
        return refused(loader, edit, err)
    expect(kind == KIND, loader, edit, f"read the kind {kind!r} without an error")
    record(loader, "unchanged")
