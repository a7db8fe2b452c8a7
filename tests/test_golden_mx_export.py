"""Golden vectors of MX tensors: export, compare a DUT's dump, catch a planted fault, report damaged golden files."""

import json
import shutil

import numpy as np
import pytest

from bitsim.cli import main
from bitsim.errors import GoldenError, InputError, InputTypeError
from bitsim.formats import mx
from bitsim.golden import compare, format_report, passed, verify
from bitsim.golden.mx import export_mx
from bitsim.io import array_sha256, canonical_sha256, sha256_bytes


def tensors():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((4, 70)) * 2.0 ** rng.integers(-6, 6, (4, 70))
    w[1, :32] = 0.0
    w[2, 40] = np.nan
    return {"w": mx.quantize(w, "mxfp4_e2m1", axis=1),
            "x": mx.quantize(rng.standard_normal((9, 3)), "mxfp8_e4m3", axis=0, block=4),
            "y": mx.quantize(rng.standard_normal(20), "mxint8", block=8)}


@pytest.fixture
def golden(tmp_path):
    export_mx(tensors(), tmp_path / "golden")
    return tmp_path / "golden"


def test_export_writes_codes_scales_and_their_format(golden):
    manifest, words = verify(golden)
    entries = {e["name"]: e for e in manifest["tensors"]}
    assert sorted(entries) == ["w.codes", "w.scales", "x.codes", "x.scales", "y.codes", "y.scales"]
    assert entries["w.codes"]["mx"] == {"of": "w", "part": "codes", "format": "mxfp4_e2m1", "block": 32, "axis": 1}
    assert entries["x.scales"]["mx"] == {"of": "x", "part": "scales", "format": "mxfp8_e4m3", "block": 4, "axis": 0}
    assert entries["w.scales"]["shape"] == [4, 3] and entries["x.scales"]["shape"] == [3, 3]
    t = tensors()
    assert words["w.codes"] == t["w"].codes.ravel().tolist() and words["x.scales"] == t["x"].scales.ravel().tolist()
    assert "mx" in manifest["rules"]
    lines = (golden / "w.scales.memh").read_text().splitlines()
    assert lines[1:4] == [f"{s:02x}" for s in t["w"].scales[0]]  # one E8M0 code per line, row-major
    rebuilt = mx.MXTensor(np.array(words["w.codes"], np.uint8).reshape(4, 70),
                          np.array(words["w.scales"], np.uint8).reshape(4, 3), mx.FORMATS["mxfp4_e2m1"], 1)
    assert np.array_equal(rebuilt.dequantize(), t["w"].dequantize(), equal_nan=True)


def dut_copy(golden, tmp_path):
    dut = tmp_path / "dut"
    dut.mkdir()
    for name in ("w.codes", "w.scales", "x.codes", "x.scales", "y.codes", "y.scales"):
        shutil.copy(golden / f"{name}.memh", dut)
    return dut


def test_a_planted_fault_is_caught_and_decoded(golden, tmp_path):
    dut = dut_copy(golden, tmp_path)
    assert passed(compare(golden, dut)) and main(["compare", str(golden), str(dut)]) == 0
    lines = (dut / "w.codes.memh").read_text().splitlines()
    index = 1 + 75  # row 1, element 5 of its second block
    lines[index] = f"{int(lines[index], 16) ^ 0x1:02x}"  # the mantissa bit of one E2M1 code
    (dut / "w.codes.memh").write_text("\n".join(lines) + "\n")
    scales = (dut / "x.scales.memh").read_text().splitlines()
    scales[2] = f"{int(scales[2], 16) + 1:02x}"  # one block scale one binade too large
    (dut / "x.scales.memh").write_text("\n".join(scales) + "\n")
    verdicts = {v.name: v for v in compare(golden, dut)}
    assert verdicts["w.codes"].status == "mismatch" and verdicts["w.codes"].mismatches == 1
    first = verdicts["w.codes"].first
    assert first["index"] == [1, 5]
    assert first["bits"] == [0] and first["expected_value"].startswith("e2m1 ")
    assert verdicts["x.scales"].status == "mismatch"
    assert verdicts["x.scales"].first["actual_value"].startswith("E8M0 2**")
    assert all(verdicts[n].status == "match" for n in ("w.scales", "x.codes", "y.codes", "y.scales"))
    report = format_report(list(verdicts.values()))
    assert "MISMATCH   w.codes: 1 of 280 words differ" in report and report.endswith("2 mismatch")
    assert main(["compare", str(golden), str(dut)]) == 1


def test_a_damaged_golden_file_is_never_blamed_on_the_design(golden, tmp_path, capsys):
    dut = dut_copy(golden, tmp_path)
    path = golden / "w.codes.memh"
    text = path.read_text()
    path.write_text(text.replace("\n0", "\n1", 1))  # a flipped digit in the golden file
    with pytest.raises(GoldenError, match="golden file damaged: w.codes.memh"):
        compare(golden, dut)
    assert main(["compare", str(golden), str(dut)]) == 2
    out = capsys.readouterr()
    assert "golden file damaged" in out.err + out.out and "MISMATCH" not in out.out


def resign(golden, edit):
    """Apply ``edit`` to the manifest and sign it again, as a buggy writer would leave it."""
    path = golden / "manifest.json"
    doc = json.loads(path.read_text())
    edit(doc)
    doc.pop("manifest_sha256")
    doc["manifest_sha256"] = canonical_sha256(doc)
    path.write_text(json.dumps(doc, indent=1) + "\n")


def entry(doc, name):
    return next(e for e in doc["tensors"] if e["name"] == name)


@pytest.mark.parametrize("edit, problem", [
    (lambda d: entry(d, "w.codes")["mx"].update(format="mxfp9"), "unknown MX format"),
    (lambda d: entry(d, "w.codes")["mx"].update(block=16), "different formats, blocks or axes"),
    (lambda d: [entry(d, n)["mx"].update(block=16) for n in ("w.codes", "w.scales")], "take scales of shape"),
    (lambda d: entry(d, "x.scales")["mx"].update(part="codes"), "two codes parts"),
    (lambda d: d["tensors"].remove(entry(d, "y.scales")), "has codes but no scales"),
    (lambda d: entry(d, "y.codes")["mx"].update(axis=3), "outside its 1 dimension"),
])
def test_a_manifest_whose_mx_parts_contradict_each_other_is_damaged(golden, edit, problem):
    resign(golden, edit)
    with pytest.raises(GoldenError, match=f"golden file damaged: manifest.json: .*{problem}"):
        verify(golden)


def test_a_code_wider_than_its_element_is_damaged(tmp_path):
    """Golden E2M1 codes must fit 4 bits: 0x1f in w.codes is a damaged golden file even with every checksum
    signed again."""
    golden = tmp_path / "golden"
    export_mx(tensors(), golden, formats=("memh", "bin"))
    codes = tensors()["w"].codes.copy()
    codes[0, 0] = 0x1F
    lines = (golden / "w.codes.memh").read_text().splitlines()
    lines[1] = "1f"
    data, raw = ("\n".join(lines) + "\n").encode(), codes.tobytes()
    (golden / "w.codes.memh").write_bytes(data)
    (golden / "w.codes.bin").write_bytes(raw)

    def edit(doc):
        e = entry(doc, "w.codes")
        e["files"]["memh"]["sha256"], e["files"]["bin"]["sha256"] = sha256_bytes(data), sha256_bytes(raw)
        e["array_sha256"] = array_sha256(codes)

    resign(golden, edit)
    with pytest.raises(GoldenError, match="golden file damaged: manifest.json: w.codes: code 0x1f is wider than the "
                                          "4-bit mxfp4_e2m1 element"):
        verify(golden)


def test_export_refuses_what_is_not_an_mx_tensor(tmp_path):
    with pytest.raises(InputTypeError):
        export_mx({"w": np.zeros(3)}, tmp_path / "g")
    t = tensors()["w"]
    with pytest.raises(InputError, match="do not fit"):
        export_mx({"w": mx.MXTensor(t.codes, t.scales[:, :2], t.fmt, 1)}, tmp_path / "g")
    with pytest.raises(InputError):
        export_mx({}, tmp_path / "g")
    for bad in ("a/b", "", "-w", "x" * 200):
        with pytest.raises(InputError, match="its own name"):
            export_mx({bad: t}, tmp_path / "g")
    with pytest.raises(InputError, match="its own name"):
        export_mx([("w", t), ("w", t)], tmp_path / "g")
    assert not (tmp_path / "g").exists()
