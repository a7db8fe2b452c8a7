"""Fuzzing the QONNX files bitsim reads and writes: the ``.onnx`` loader and the export's output destination.

* ``qonnx.load`` on byte edits and on structural edits of two small models (a TFC-style MLP, and a
  ``FloatQuant`` followed by a ``Quant``): refused with a bitsim error, or loaded; a loaded model then
  runs at both levels or refuses with a bitsim error. An ONNX file has no checksum, so an edit may leave
  another valid model ("loaded other content").
* The export's destination (:func:`bitsim.interop.qonnx_export.write_model`, what ``bitsim qonnx export
  --out`` calls): absent, in a new directory, an earlier export, a damaged copy of one, a foreign ONNX
  file, a directory, a symlink, a path under a file, a wrong suffix, the input model itself, each with and
  without ``--overwrite``. The file is written only where the rule allows (absent, or a regular file
  bitsim exported, with ``--overwrite``); otherwise a bitsim or OS error names it, and what was there is
  left exactly as it was, with no temporary file behind.
"""

import gc
import os
from dataclasses import dataclass

import numpy as np
import pytest
import qonnx_networks as nets
from fuzzing import FUZZ_CASES, byte_edits, call, expect, record, refused
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import ModelProto, helper, numpy_helper

from bitsim.deploy import compile_model
from bitsim.errors import BitsimError, OutputExistsError
from bitsim.formats.rng import Philox
from bitsim.interop import qonnx
from bitsim.interop.qonnx_export import check_output, export_integer_model, is_bitsim_export, write_model
from bitsim.nn import layers as L
from bitsim.nn.binarized import BinaryDense
from bitsim.nn.model import Sequential

pytest_plugins = ["fuzz_summary_plugin"]

# a model that parses runs QONNX's cleanup (about 10 ms): a fifth of the loaders' case budget per test
CASES = max(20, FUZZ_CASES // 5)


def float_quant_net():
    b = nets.Builder(0)
    h = b.node("FloatQuant", ["x", b.const(0.5), b.const(4.0), b.const(3.0), b.const(7.0), b.const(448.0)],
               domain=nets.QONNX, rounding_mode="ROUND", has_inf=0, has_nan=0, has_subnormal=1, saturation=1)
    h = b.quant(h, 0.25, 4, signed=True)
    return b.model("x", [1, 8], b.node("MatMul", [h, b.const(np.ones((8, 3)))]))


MODELS = {"tfc": lambda: nets.tfc(seed=1, sizes=(8, 4, 3), batch=1), "floatquant": float_quant_net}


@pytest.fixture(scope="module", params=sorted(MODELS))
def small_model(request, tmp_path_factory):
    path = nets.save(MODELS[request.param](), tmp_path_factory.mktemp("fz") / "m.onnx")
    return path, path.read_bytes()


def load_and_run(path, mutation, original, damaged):
    """The loader's property on the file at ``path``; counted under ``qonnx.load``."""
    graph, err = call(qonnx.load, path)
    if err is not None:
        refused("qonnx.load", mutation, err)
        return
    x = np.zeros((1, 8), np.float32)
    for semantics in ("reference", "exact"):
        _, err = call(graph.run, x, semantics)
        expect(err is None or isinstance(err, BitsimError), "qonnx.load", mutation,
               lambda: f"loaded, then run ({semantics}) raised {type(err).__name__}: {err}")
    record("qonnx.load", "unchanged" if damaged == original else "different")
    gc.collect()  # a loaded graph's caches form reference cycles: free each case's graph before the next


@settings(max_examples=CASES, deadline=None)
@given(data=st.data())
def test_fuzz_qonnx_loader_bytes(small_model, data):
    path, original = small_model
    edit = data.draw(byte_edits, label="edit")
    damaged = edit(original)
    target = path.with_name("fuzzed.onnx")
    target.write_bytes(damaged)
    load_and_run(target, edit, original, damaged)


@dataclass(frozen=True)
class ProtoEdit:
    """One structural edit of a parsed model: what a buggy exporter or a hand edit leaves."""

    kind: str
    index: int
    value: object

    def __call__(self, data):
        model = ModelProto()
        model.ParseFromString(data)
        g = model.graph
        node = g.node[self.index % len(g.node)]
        if self.kind == "drop node":
            g.node.remove(node)
        elif self.kind == "op type":
            node.op_type = self.value
        elif self.kind == "domain":
            node.domain = self.value
        elif self.kind == "input name":
            node.input[self.index % len(node.input)] = self.value
        elif self.kind == "extra input":
            node.input.append(self.value)
        elif self.kind == "attribute":
            node.attribute.append(helper.make_attribute(self.value[0], self.value[1]))
        elif self.kind == "initializer value" and g.initializer:
            t = g.initializer[self.index % len(g.initializer)]
            a = numpy_helper.to_array(t).copy()
            a.reshape(-1)[self.index % max(1, a.size)] = self.value
            t.CopyFrom(numpy_helper.from_array(a.astype(a.dtype), t.name))
        elif self.kind == "initializer shape" and g.initializer:
            t = g.initializer[self.index % len(g.initializer)]
            t.dims[:] = list(self.value)
        elif self.kind == "input dim":
            g.input[0].type.tensor_type.shape.dim[self.index % 2].dim_value = self.value
        return model.SerializeToString()


OPS = ["Quant", "FloatQuant", "BipolarQuant", "MultiThreshold", "Trunc", "MatMul", "Tanh", "Relu", "Conv", ""]
VALUES = st.sampled_from([0.0, -1.0, 1.0, 0.5, 2.0 ** 40, -(2.0 ** 40), float("nan"), float("inf"), 1e-30, 33.0, 3.0])
proto_edits = st.one_of(
    st.builds(ProtoEdit, st.just("drop node"), st.integers(0, 50), st.none()),
    st.builds(ProtoEdit, st.just("op type"), st.integers(0, 50), st.sampled_from(OPS)),
    st.builds(ProtoEdit, st.just("domain"), st.integers(0, 50),
              st.sampled_from(["", "qonnx.custom_op.general", "finn", "com.example", "ai.onnx.ml"])),
    st.builds(ProtoEdit, st.just("input name"), st.integers(0, 50), st.sampled_from(["", "missing", "x"])),
    st.builds(ProtoEdit, st.just("extra input"), st.integers(0, 50), st.sampled_from(["", "x"])),
    st.builds(ProtoEdit, st.just("attribute"), st.integers(0, 50),
              st.tuples(st.sampled_from(["rounding_mode", "signed", "narrow", "saturation", "has_inf", "out_scale",
                                         "data_layout", "axis", "frobnicate"]),
                        st.sampled_from([0, 1, -7, 2.5, "ROUND", "STOCHASTIC", "NHWC", ""]))),
    st.builds(ProtoEdit, st.just("initializer value"), st.integers(0, 50), VALUES),
    st.builds(ProtoEdit, st.just("initializer shape"), st.integers(0, 50),
              st.lists(st.integers(0, 9), max_size=3)),
    st.builds(ProtoEdit, st.just("input dim"), st.integers(0, 50), st.sampled_from([0, 1, 2, 7, 9, 1 << 40])),
)


@settings(max_examples=CASES, deadline=None)
@given(data=st.data())
def test_fuzz_qonnx_loader_structure(small_model, data):
    path, original = small_model
    edit = data.draw(proto_edits, label="edit")
    damaged, err = call(edit, original)
    if err is not None:  # the edit itself does not apply to this model (e.g. an attribute of another type)
        return
    target = path.with_name("edited.onnx")
    target.write_bytes(damaged)
    load_and_run(target, edit, original, damaged)


# ---------------------------------------------------------------------------------------------------
# the export's output destination


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    g = Philox(3)
    model = Sequential([BinaryDense(20, 8, init_rng=g), L.BatchNorm(8), L.Sign(), BinaryDense(8, 4, init_rng=g),
                        L.BatchNorm(4)])
    proto = export_integer_model(compile_model(model, (20,)))
    path = write_model(proto, tmp_path_factory.mktemp("fz") / "bnn.onnx")
    return proto, path.read_bytes(), nets.save(nets.tfc(seed=1, sizes=(8, 4, 3)), path.with_name("foreign.onnx"))


@settings(max_examples=CASES, deadline=None)
@given(data=st.data())
def test_fuzz_the_overwrite_check(exported, data):
    """``--overwrite`` parses the existing file to see whether bitsim exported it: a damaged or foreign file is
    refused with a bitsim error, a file that still parses as bitsim's export may be replaced."""
    _, original, _ = exported
    edit = data.draw(byte_edits, label="edit")
    target = exported[2].with_name("fuzzed.onnx")
    target.write_bytes(edit(original))
    _, err = call(check_output, target, True)
    expect(err is None or isinstance(err, OutputExistsError), "qonnx export --overwrite check", edit,
           lambda: f"raised {type(err).__name__}: {err}")
    record("qonnx export --overwrite check", "refused" if err else "unchanged")


DESTINATIONS = ["absent", "new directory", "earlier export", "damaged export", "foreign onnx", "directory",
                "symlink to an export", "dangling symlink", "under a file", "wrong suffix", "the input model"]


def state(path):
    """What is at ``path``: kind and content, without following a symlink."""
    if path.is_symlink():
        return "symlink", os.readlink(path)
    if path.is_dir():
        return "dir", sorted(p.name for p in path.iterdir())
    if path.is_file():
        return "file", path.read_bytes()
    return "absent", None


@settings(max_examples=max(20, FUZZ_CASES // 50), deadline=None)
@given(kind=st.sampled_from(DESTINATIONS), overwrite=st.booleans(), edit=byte_edits, n=st.integers(0, 1 << 30))
def test_fuzz_export_destination(exported, tmp_path_factory, kind, overwrite, edit, n):
    proto, original, foreign = exported
    root = tmp_path_factory.mktemp("dest")
    source = root / "integer.json"
    source.write_text("{}")
    dest = root / "out.onnx"
    if kind == "new directory":
        dest = root / "a" / "b" / "out.onnx"
    elif kind == "earlier export":
        dest.write_bytes(original)
    elif kind == "damaged export":
        dest.write_bytes(edit(original))
    elif kind == "foreign onnx":
        dest.write_bytes(foreign.read_bytes())
    elif kind == "directory":
        dest.mkdir()
        (dest / "keep.txt").write_text("x")
    elif kind == "symlink to an export":
        (root / "real.onnx").write_bytes(original)
        dest.symlink_to(root / "real.onnx")
    elif kind == "dangling symlink":
        dest.symlink_to(root / f"nowhere{n}.onnx")
    elif kind == "under a file":
        (root / "file").write_bytes(b"x")
        dest = root / "file" / "out.onnx"
    elif kind == "wrong suffix":
        dest = root / ("out.onnx.txt" if n % 2 else "out")
    elif kind == "the input model":
        dest = source.with_suffix(".onnx") if n % 2 else source
        if dest.suffix == ".onnx":
            dest.write_bytes(original)
    before = {p: state(p) for p in root.rglob("*")}
    _, err = call(write_model, proto, dest, overwrite, [source, source.with_suffix(".onnx")])
    loader = "qonnx export --out"
    after = {p: state(p) for p in root.rglob("*")}
    leftovers = [p.name for p in after if p.name.endswith(".tmp")]
    expect(not leftovers, loader, (kind, overwrite), f"temporary files left: {leftovers}")
    if err is None:
        allowed = kind in ("absent", "new directory") or (overwrite and kind == "earlier export") or \
            (overwrite and kind == "damaged export" and before[dest][0] == "file" and is_bitsim_export(dest))
        expect(allowed, loader, (kind, overwrite, edit), "written where the rule forbids it")
        expect(state(dest) == ("file", proto.SerializeToString()), loader, (kind, overwrite), "wrong content")
        expect({p: s for p, s in after.items() if p != dest and dest not in p.parents and p not in dest.parents} ==
               {p: s for p, s in before.items() if p != dest}, loader, (kind, overwrite), "touched another file")
        record(loader, "unchanged")
        return
    expect(isinstance(err, (BitsimError, OSError)) and str(err).strip(), loader, (kind, overwrite, edit),
           lambda: f"raised {type(err).__name__}: {err}")
    expect(after == before, loader, (kind, overwrite, edit), "refused, but changed what was there")
    expect(kind != "absent" and kind != "new directory", loader, (kind, overwrite), f"refused: {err}")
    record(loader, "refused")
