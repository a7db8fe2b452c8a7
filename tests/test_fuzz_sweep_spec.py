"""Fuzzing the sweep's spec loader: a damaged spec file is read as a spec that passes every check, or refused with
a bitsim error; never another exception."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitsim.sweep.spec import load_spec
from fuzzing import Files, byte_edits, call, expect, fuzz_settings, record, refused
from sweep_models import spec_text

pytest_plugins = ["fuzz_summary_plugin"]

LOADER = "bitsim.sweep.spec.load_spec"
TEXT = spec_text("connect", "model.json", extra='[constraints]\nmax_memory_bytes = 100000\n',
                 weight='[{format = "binary"}, {format = "minifloat", type = "e2m3"}, '
                        '{format = "fixed", bits = [4, 8]}, {format = "mx", type = "mxfp4_e2m1", block = 16}]',
                 activation='[{format = "fixed", bits = [4, 8]}, {format = "mx", type = "mxfp8_e4m3", block = 16}]',
                 accumulator='bits = [12, 24]\nedge = ["wrap", "saturate"]\nmx = ["exact", "float32"]').replace(
    "[[space.layers]]", "[space]\nsample = \"random\"\ncount = 9\nseed = 4\n\n[[space.layers]]")


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "sweep.toml"
    path.write_text(TEXT)
    files = Files(path)
    yield path, load_spec(path), files
    files.restore()


@fuzz_settings
@given(data=st.data())
def test_spec_loader(spec_file, data):
    path, original, files = spec_file
    edit = data.draw(byte_edits)
    damaged = edit(TEXT.encode())
    files.write(path, damaged)
    spec, err = call(load_spec, path)
    if err is not None:
        refused(LOADER, edit, err)
        return
    expect(isinstance(spec, dict) and spec["space"]["groups"], LOADER, edit, "loaded a spec with no groups")
    record(LOADER, "unchanged" if spec == original else "different")
