"""Fuzzing the sweep's spec loader: a damaged spec file is read as a spec that passes every check, or refused with
a bitsim error; never another exception."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitsim.sweep.spec import load_spec
from fuzzing import Files, byte_edits, call, expect, fuzz_settings, record, refused
from sweep_models import gru_spec_text, qonnx_spec_text, spec_text

pytest_plugins = ["fuzz_summary_plugin"]

LOADER = "bitsim.sweep.spec.load_spec"
TEXT = spec_text("connect", "model.json", extra='[constraints]\nmax_memory_bytes = 100000\n',
                 weight='[{format = "binary"}, {format = "minifloat", type = "e2m3"}, '
                        '{format = "fixed", bits = [4, 8]}, {format = "mx", type = "mxfp4_e2m1", block = 16}]',
                 activation='[{format = "fixed", bits = [4, 8]}, {format = "mx", type = "mxfp8_e4m3", block = 16}]',
                 accumulator='bits = [12, 24]\nedge = ["wrap", "saturate"]\nmx = ["exact", "float32"]').replace(
    "[[space.layers]]", "[space]\nsample = \"random\"\ncount = 9\nseed = 4\n\n[[space.layers]]")

QONNX_TEXT = qonnx_spec_text("tfc.onnx", extra='[constraints]\nmax_memory_bytes = 100000\n', quantizers="""\
[space]
sample = "random"
count = 5
seed = 2

[[space.quantizers]]
names = ["Quant_0", "Quant_1"]
quant = [{bits = [1, 2, 4], signed = true, scale = "range"}, {narrow = [true, false], rounding = "HALF_EVEN"}]

[[space.quantizers]]
names = "*"
quant = [{bits = 3, signed = false, rounding = ["FLOOR", "UP"]}, {}]
""").replace("[data]", '[data]\ninputs = "x.npy"\nlabels = "y.npy"')
GRU_TEXT = gru_spec_text("best.json", weight='[{format = "float32"}, {format = "log", exp_bits = [3, 7], '
                                              'rounding = ["linear", "truncate"]}, {format = "fixed", bits = 8}]',
                         extra='[constraints]\nmax_weight_bytes = 90000\n').replace(
    "[space]", "[space]\nsample = \"random\"\ncount = 4\nseed = 9")
TEXTS = {"mlp": TEXT, "qonnx": QONNX_TEXT, "gru": GRU_TEXT}


@pytest.fixture(scope="module", params=list(TEXTS))
def spec_file(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "sweep.toml"
    path.write_text(TEXTS[request.param])
    files = Files(path)
    yield path, load_spec(path), files, TEXTS[request.param]
    files.restore()


@fuzz_settings
@given(data=st.data())
def test_spec_loader(spec_file, data):
    path, original, files, text = spec_file
    edit = data.draw(byte_edits)
    damaged = edit(text.encode())
    files.write(path, damaged)
    spec, err = call(load_spec, path)
    if err is not None:
        refused(LOADER, edit, err)
        return
    choices = spec["space"].get("groups") or spec["space"].get("pairs")  # the GRU's (weight, activation) pairs
    expect(isinstance(spec, dict) and choices, LOADER, edit, "loaded a spec with no choices")
    record(LOADER, "unchanged" if spec == original else "different")
