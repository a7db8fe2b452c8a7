import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitsim.golden import GoldenError, compare, export, format_report, passed
from fuzzing import plain_words
from bitsim.golden.manifest import parse_bin, parse_memh
from bitsim.golden.export import memh_text, raw_bytes, to_words

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "hardware"))
import run as hardware  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return hardware.small_model(hidden=70)


@pytest.fixture(scope="module")
def golden(model, tmp_path_factory):
    x = np.random.default_rng(0).integers(0, 256, (3, 28, 28)).astype(np.uint8)
    out = tmp_path_factory.mktemp("g") / "golden"
    export(model, x, out)
    return out


ARRAYS = st.sampled_from([np.uint8, np.int32, np.uint64, np.float32, np.bool_]).flatmap(
    lambda t: st.lists(st.integers(0, 2**64 - 1), min_size=0, max_size=20).map(
        lambda v: np.array(v, dtype=np.uint64).view(np.uint64).astype(t) if t != np.float32
        else np.array(v, dtype=np.uint64).astype(np.uint32).view(np.float32)))


@given(ARRAYS)
def test_memh_and_bin_round_trip(a):
    bits = 1 if a.dtype == np.bool_ else 8 * a.dtype.itemsize
    words = [int(w) for w in to_words(a)]
    assert parse_memh(memh_text(a, "header"), a.size, bits) == words
    assert parse_bin(raw_bytes(a), a.size, max(1, bits // 8)) == words


def test_export_round_trips_every_format(model, golden):
    manifest = json.loads((golden / "manifest.json").read_text())
    assert manifest["formats"] == ["memh", "bin", "npz"]
    with np.load(golden / "golden.npz", allow_pickle=False) as npz:
        for t in manifest["tensors"]:
            a = npz[t["name"]]
            assert list(a.shape) == t["shape"]
            count = a.size
            assert parse_memh((golden / f"{t['name']}.memh").read_text(), count, t["bits"]) == [int(w) for w in to_words(a).ravel()]
            assert parse_bin((golden / f"{t['name']}.bin").read_bytes(), count, max(1, t["bits"] // 8)) == [
                int(w) for w in to_words(a).ravel()]
    verdicts = compare(golden, golden)
    assert passed(verdicts) and len(verdicts) == len(manifest["tensors"])


def test_export_is_atomic_and_refuses_to_overwrite(model, golden, tmp_path):
    with pytest.raises(FileExistsError, match="--overwrite"):
        export(model, np.zeros((1, 784), np.uint8), golden)
    with pytest.raises(TypeError, match="uint8"):
        export(model, np.zeros((1, 784), np.float32), tmp_path / "g")
    assert sorted(os.listdir(tmp_path)) == []  # nothing half-written left behind


def copy_dut(golden, tmp_path):
    dut = tmp_path / "dut"
    shutil.copytree(golden, dut)
    for f in list(dut.iterdir()):
        if f.suffix == ".bin" or f.name in ("golden.npz", "manifest.json"):
            f.unlink()
    return dut


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(pick=st.integers(0, 10**6), action=st.sampled_from(["byte", "truncate", "append", "delete_line"]),
       where=st.integers(0, 10**6), byte=st.integers(1, 255),
       extra=st.sampled_from([b"0\n", b"ff\n", b"xyz\n", b"\n// comment\n"]))
def test_tampered_files_never_match(golden, tmp_path_factory, pick, action, where, byte, extra):
    dut = tmp_path_factory.mktemp("dut")
    manifest = json.loads((golden / "manifest.json").read_text())
    entry = manifest["tensors"][pick % len(manifest["tensors"])]
    name = entry["name"]
    path = dut / f"{name}.memh"
    text = bytearray((golden / f"{name}.memh").read_bytes())
    if action == "byte":
        pos = where % len(text)
        text[pos] = (text[pos] + byte) % 256
    elif action == "truncate":
        text = text[: where % len(text)]
    elif action == "append":
        text += extra
    else:
        lines = text.split(b"\n")
        del lines[where % len(lines)]
        text = bytearray(b"\n".join(lines))
    path.write_bytes(bytes(text))
    (verdict,) = compare(golden, dut, [name])
    # an independent reading of the tampered file: a match is right only if it holds the same words
    same = plain_words(bytes(text)) == plain_words((golden / f"{name}.memh").read_bytes())
    if verdict.status == "match":
        assert same, (action, verdict)
    if not same:
        assert verdict.status in ("mismatch", "malformed"), (action, verdict)


def test_missing_malformed_and_checksum_are_reported(golden, tmp_path):
    dut = copy_dut(golden, tmp_path)
    (dut / "stage1.out.memh").unlink()
    (dut / "stage0.acc.memh").write_text("@10 ff\n")
    (dut / "stage2.acc.memh").write_bytes(b"\xff\xfe")
    (dut / "stage3.thresholds.memh").write_text("1ffffffff\n")
    verdicts = {v.name: v for v in compare(golden, dut)}
    assert verdicts["stage1.out"].status == "missing"
    assert verdicts["stage0.acc"].status == "malformed" and "address directive" in verdicts["stage0.acc"].detail
    assert verdicts["stage2.acc"].status == "malformed" and "ASCII" in verdicts["stage2.acc"].detail
    assert "does not fit in 32 bits" in verdicts["stage3.thresholds"].detail
    report = format_report(list(verdicts.values()))
    assert report.splitlines()[-1].startswith("FAIL")
    shutil.copy(golden / "manifest.json", dut / "manifest.json")
    shutil.copy(golden / "stage4.weights.memh", dut / "stage4.weights.memh")
    text = (dut / "stage4.weights.memh").read_text().replace("// bitsim", "//  bitsim")
    (dut / "stage4.weights.memh").write_text(text)
    assert {v.name: v for v in compare(golden, dut, ["stage4.weights"])}["stage4.weights"].status == "checksum"


def test_damaged_golden_is_an_error(golden, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(golden, bad)
    (bad / "stage0.acc.bin").write_bytes(b"\x00" * 4)
    with pytest.raises(GoldenError, match="golden file damaged: stage0.acc.bin: sha256"):
        compare(bad, golden, ["stage0.acc"])
    with pytest.raises(GoldenError, match="no manifest.json"):
        compare(tmp_path, golden)
    with pytest.raises(GoldenError, match="no tensor matches"):
        compare(golden, golden, ["nothing*"])


def test_cli_compare_exit_codes(golden, tmp_path):
    from bitsim.cli import main

    assert main(["compare", str(golden), str(golden), "--tensors", "stage0.*"]) == 0
    dut = copy_dut(golden, tmp_path)
    (dut / "stage0.acc.memh").unlink()
    assert main(["compare", str(golden), str(dut), "--tensors", "stage0.*"]) == 1
    assert main(["compare", str(golden), str(tmp_path / "absent")]) == 2


needs_iverilog = pytest.mark.skipif(
    shutil.which("iverilog") is None and not os.environ.get("BITSIM_REQUIRE_IVERILOG"),
    reason="Icarus Verilog not installed (apt-get install iverilog); CI sets BITSIM_REQUIRE_IVERILOG=1",
)


@needs_iverilog
def test_rtl_binary_dense_matches_bit_for_bit(tmp_path, capsys):
    assert hardware.main(["--rows", "6", "--build", str(tmp_path / "ok")]) == 0
    assert "PASS: 2 tensors compared: 2 match" in capsys.readouterr().out


@needs_iverilog
def test_rtl_fault_injection_is_caught_and_named(tmp_path, capsys):
    assert hardware.main(["--rows", "6", "--build", str(tmp_path / "bad"), "--flip-row", "4", "--flip-bit", "65"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH   stage3.out: 1 of" in out
    assert "first at index [4, 1]" in out and "differing bits [1]" in out
    assert "element 65 of the row" in out
