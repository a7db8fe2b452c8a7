"""Integrity end to end: damaged golden files and models are reported as damaged, outputs replace only bitsim's own."""

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from bitsim.deploy import IntegerModel
from bitsim.errors import BitsimError, DamagedFileError, GoldenError, OutputExistsError
from bitsim.golden import compare, export, verify
from bitsim.io import canonical_sha256, load_bundle, save_bundle
from bitsim.outputs import MARKER, prepare_run_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "hardware"))
import run as hardware  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return hardware.small_model(hidden=70)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(1).integers(0, 256, (3, 28, 28)).astype(np.uint8)


@pytest.fixture
def golden(model, x, tmp_path):
    out = tmp_path / "golden"
    export(model, x, out)
    return out


def resign(path):
    """Rewrite a JSON file's ``manifest_sha256`` to match its edited content (a hand edit that fixed the checksum)."""
    data = json.loads(path.read_text())
    data.pop("manifest_sha256", None)
    data["manifest_sha256"] = canonical_sha256(data)
    path.write_text(json.dumps(data))


def edit_json(path, change, sign=False):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    if sign:
        resign(path)


def flip_hex_digit(path, line):
    lines = path.read_text().split("\n")
    digit = lines[line][0]
    lines[line] = ("1" if digit == "0" else "0") + lines[line][1:]
    path.write_text("\n".join(lines))


# ---------------------------------------------------------------------------------------------
# golden directories: a damaged golden file is never a design mismatch


def test_a_flipped_digit_in_a_golden_memh_is_damage_not_a_match(golden):
    flip_hex_digit(golden / "stage2.acc.memh", 3)  # compare used to read only the .bin and say PASS
    with pytest.raises(GoldenError, match="golden file damaged: stage2.acc.memh: sha256"):
        compare(golden, golden)


def test_a_flipped_digit_in_golden_weights_is_damage_not_a_mismatch(golden, tmp_path):
    dut = tmp_path / "dut"
    shutil.copytree(golden, dut)
    flip_hex_digit(golden / "stage2.weights.memh", 5)  # what a testbench loads with $readmemh
    with pytest.raises(GoldenError, match="golden file damaged: stage2.weights.memh"):
        compare(golden, dut, ["stage2.out"])


@pytest.mark.parametrize("edit", [
    lambda m: m["tensors"][3]["files"]["memh"].update(sha256="0" * 64),
    lambda m: m["tensors"][3].update(array_sha256="0" * 64),
    lambda m: m.update(bitsim_golden=3),
    lambda m: m["tensors"][-1].update(role="weights"),  # an entry the comparison does not use
    lambda m: m["options"].update(rows=2),
])
def test_any_edit_of_the_manifest_is_damage(golden, edit):
    edit_json(golden / "manifest.json", edit)
    with pytest.raises(GoldenError, match="golden file damaged: manifest.json"):
        compare(golden, golden, ["stage0.acc"])


@pytest.mark.parametrize("field", ["bits", "shape", "files", "name"])
def test_manifest_entries_missing_a_field_are_named(golden, field):
    edit_json(golden / "manifest.json", lambda m: m["tensors"][2].pop(field), sign=True)
    with pytest.raises(GoldenError, match=rf"manifest.json: field \$.tensors\[2\].{field}: expected"):
        verify(golden)


def test_copies_of_one_tensor_must_agree(golden):
    """Both files re-signed in the manifest, the .memh now saying something else than the .bin: still damage."""
    path = golden / "stage1.out.memh"
    flip_hex_digit(path, 2)
    import hashlib

    edit_json(golden / "manifest.json", lambda m: next(t for t in m["tensors"] if t["name"] == "stage1.out")
              ["files"]["memh"].update(sha256=hashlib.sha256(path.read_bytes()).hexdigest()), sign=True)
    with pytest.raises(GoldenError, match="stage1.out.memh: its words are not those of tensor stage1.out"):
        verify(golden)


def test_a_manifest_naming_files_outside_its_directory_is_refused(golden):
    edit_json(golden / "manifest.json", lambda m: m["tensors"][0]["files"]["memh"].update(path="../input.memh"),
              sign=True)
    with pytest.raises(GoldenError, match="expected 'input.memh'"):
        verify(golden)


# ---------------------------------------------------------------------------------------------
# model bundles: metadata is checksummed and checked against a schema and its shapes


@pytest.fixture
def saved(model, tmp_path):
    return model.save(tmp_path / "integer")


def test_deleting_stages_is_damage(saved):
    edit_json(saved, lambda m: m["meta"].update(stages=m["meta"]["stages"][:2] + m["meta"]["stages"][4:]))
    with pytest.raises(DamagedFileError, match="does not match its manifest_sha256"):
        IntegerModel.load(saved)
    resign(saved)  # even with the checksum made to fit, the stages no longer chain
    with pytest.raises(DamagedFileError, match=r"integer.json: field \$.meta.stages"):
        IntegerModel.load(saved)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["meta"]["stages"][0].update(outputs=69), "weights of shape"),
    (lambda m: m["meta"].update(input_shape=[27, 28]), "n = 784, but the stage before it gives 756 values"),
    (lambda m: m["meta"]["stages"][0].pop("n"), r"stages\[0\].n: expected a field 'n'"),
    (lambda m: m["meta"]["stages"][1].pop("type"), r"stages\[1\].type: expected one of"),
    (lambda m: m["meta"]["stages"].reverse(), r"stages\[0\]: Affine needs the array '0.mean'"),
    (lambda m: m["meta"]["stages"].insert(2, m["meta"]["stages"].pop(3)), r"stages\[2\]: Threshold needs the array '2.thresholds'"),
    (lambda m: m["meta"].pop("input_shape"), r"\$.meta.input_shape: expected a field"),
    (lambda m: m.pop("npz_sha256"), r"\$.npz_sha256: expected a field"),
    (lambda m: m.pop("arrays"), r"\$.arrays: expected a field"),
    (lambda m: m.pop("meta"), r"\$.meta: expected a field"),
])
def test_model_metadata_is_checked_even_when_resigned(saved, edit, message):
    edit_json(saved, edit, sign=True)
    with pytest.raises(DamagedFileError, match=message):
        IntegerModel.load(saved)


def test_a_json_list_is_not_a_model(tmp_path):
    path = tmp_path / "history.json"
    path.write_text("[1, 2]")
    with pytest.raises(DamagedFileError, match=r"history.json: field \$: expected an object"):
        load_bundle(path)


def test_bundles_round_trip_with_tuples_in_meta(tmp_path):
    save_bundle(tmp_path / "b", {"a": np.arange(3)}, "k", {"hidden": (1, 2)})
    assert load_bundle(tmp_path / "b", "k")[1] == {"hidden": [1, 2]}


# ---------------------------------------------------------------------------------------------
# output directories: nothing bitsim did not create is ever deleted


def test_overwrite_refuses_a_directory_that_is_not_a_golden_export(model, x, tmp_path):
    saved = model.save(tmp_path / "run" / "integer")
    (tmp_path / "run" / "notes.txt").write_text("mine")
    before = sorted(os.listdir(tmp_path / "run"))
    for out in (tmp_path / "run", tmp_path):
        with pytest.raises(OutputExistsError, match="no bitsim marker|holds the input"):
            export(model, x, out, overwrite=True, inputs=[saved])
    assert sorted(os.listdir(tmp_path / "run")) == before
    IntegerModel.load(saved)


def test_overwrite_refuses_a_golden_export_holding_the_input_or_other_files(model, x, golden):
    (golden / "dut.memh").write_text("0\n")
    with pytest.raises(OutputExistsError, match=r"files bitsim did not write there \(dut.memh\)"):
        export(model, x, golden, overwrite=True)
    (golden / "dut.memh").unlink()
    with pytest.raises(OutputExistsError, match="holds the input"):
        export(model, x, golden, overwrite=True, inputs=[golden / "golden.npz"])
    assert (golden / "golden.npz").is_file()


def test_overwrite_replaces_an_earlier_export(model, x, golden):
    export(model, x[:1], golden, overwrite=True)
    manifest, _ = verify(golden)
    assert manifest["examples"] == 1
    assert not [p for p in golden.parent.iterdir() if p.name.startswith(".")]  # no temporary left beside it


def test_run_directories_follow_the_rule(tmp_path):
    out = prepare_run_dir(tmp_path / "run", "bitsim train bnn", ("best.*",))
    (out / "best.json").write_text("{}")
    with pytest.raises(OutputExistsError, match="--resume"):
        prepare_run_dir(out, "bitsim train bnn", ("best.*",))
    with pytest.raises(OutputExistsError, match="another kind"):
        prepare_run_dir(out, "bitsim train gru", ("best.*",), overwrite=True)
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="keep.txt"):
        prepare_run_dir(out, "bitsim train bnn", ("best.*",), overwrite=True)
    (out / "keep.txt").unlink()
    (out / "best.old").mkdir()  # a directory is never a file of the run, whatever its name
    with pytest.raises(OutputExistsError, match="best.old"):
        prepare_run_dir(out, "bitsim train bnn", ("best.*",), overwrite=True)
    (out / "best.old").rmdir()
    prepare_run_dir(out, "bitsim train bnn", ("best.*",), overwrite=True)
    assert sorted(os.listdir(out)) == [MARKER]
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("1")
    with pytest.raises(OutputExistsError, match="no bitsim marker"):
        prepare_run_dir(other, "bitsim train bnn", ("*",), overwrite=True)
    assert (other / "data.csv").read_text() == "1"


# ---------------------------------------------------------------------------------------------
# permissions follow the umask


@pytest.mark.parametrize("umask, dirs, files", [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600), (0o002, 0o775, 0o664)])
def test_written_files_follow_the_umask(model, x, tmp_path, umask, dirs, files):
    old = os.umask(umask)
    try:
        export(model, x[:1], tmp_path / "g")
        path = model.save(tmp_path / "m" / "integer")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "g").stat().st_mode) == dirs
    for f in [tmp_path / "g" / "manifest.json", tmp_path / "g" / "golden.npz", path, path.with_suffix(".npz")]:
        assert stat.S_IMODE(f.stat().st_mode) == files, f


def test_every_error_here_is_a_bitsim_error():
    assert issubclass(GoldenError, BitsimError) and issubclass(DamagedFileError, ValueError)
    assert issubclass(OutputExistsError, FileExistsError)


def test_canonical_checksum_worked_example_of_the_docs():
    """docs/formats.md, section 12."""
    assert canonical_sha256({"b": [1, 2.5], "a": "x"}).startswith("66efddae")
    import hashlib

    assert canonical_sha256({"b": [1, 2.5], "a": "x"}) == hashlib.sha256(b'{"a":"x","b":[1,2.5]}').hexdigest()
