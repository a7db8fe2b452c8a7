"""``bitsim export-mx``: MX golden vectors of float arrays and of an MX GEMM from the command line, compared by
``bitsim compare``; its files equal :func:`bitsim.golden.mx.export_mx`'s, its products the Fraction oracle's."""

import json
import shutil

import numpy as np
import pytest

from bitsim.cli import main
from bitsim.formats import mx
from bitsim.golden import verify
from bitsim.golden.mx import export_mx
from bitsim.reference import mx as oracle


def run(capsys, *argv):
    """``(status, stdout, stderr)`` of ``bitsim ARGV``."""
    status = main([str(a) for a in argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def float32_of(values):
    """Float32 of the oracle's exact values (Fractions, NaN as float), as uint32 bit patterns."""
    return np.array([float(v) for v in values], np.float32).view(np.uint32)


def entries(directory):
    return {e["name"]: e for e in json.loads((directory / "manifest.json").read_text())["tensors"]}


@pytest.fixture
def arrays(tmp_path):
    rng = np.random.default_rng(11)
    w = (rng.standard_normal((5, 70)) * 2.0 ** rng.integers(-8, 8, (5, 70))).astype(np.float32)
    w[1, :16] = 0.0
    w[3, 20] = np.nan
    v = rng.standard_normal((9, 3)).astype(np.float16)
    path = tmp_path / "acts.npz"
    np.savez(path, w=w, v=v)
    return path, {"w": w, "v": v}


def test_files_equal_export_mx_and_values_the_oracle(arrays, tmp_path, capsys):
    path, named = arrays
    out, ref = tmp_path / "golden", tmp_path / "ref"
    status, text, err = run(capsys, "export-mx", "mxfp6_e3m2", path, "--out", out, "--block", 16,
                            "--scale-rule", "ceil")
    assert status == 0 and err == "" and "wrote 2 mxfp6_e3m2 tensors" in text
    quantized = {n: mx.quantize(x, "mxfp6_e3m2", axis=-1, block=16, scale_rule="ceil") for n, x in named.items()}
    export_mx(quantized, ref)
    got, want = entries(out), entries(ref)
    assert sorted(got) == sorted(list(want) + ["v.values", "w.values"])
    for name, e in want.items():
        assert {k: got[name][k] for k in ("shape", "dtype", "array_sha256", "mx")} == \
               {k: e[k] for k in ("shape", "dtype", "array_sha256", "mx")}
        for kind in ("memh", "bin"):
            assert (out / f"{name}.{kind}").read_bytes() == (ref / f"{name}.{kind}").read_bytes()
    manifest, words = verify(out)
    assert manifest["options"]["scale_rule"] == "ceil" and manifest["options"]["block"] == 16
    for name, t in quantized.items():
        assert got[f"{name}.values"]["dtype"] == "<f4" and got[f"{name}.values"]["shape"] == list(t.codes.shape)
        expected = float32_of(v for row in oracle.mx_values(t) for v in row)
        expected[np.isnan(expected.view(np.float32))] = 0x7FC00000
        negative = t.codes.ravel() >> (t.fmt.element.bits - 1) == 1
        expected[(expected == 0) & negative] = 0x80000000  # the oracle's Fractions have no -0; the code keeps it
        assert words[f"{name}.values"] == expected.tolist()
    assert np.isnan(np.load(out / "golden.npz")["w.values"][3, 20])


def test_a_npy_is_one_tensor_named_after_its_file(tmp_path, capsys):
    x = np.array([[0.3, 1.7, -5, 12]], np.float64)
    np.save(tmp_path / "blk.npy", x)
    status, _, _ = run(capsys, "export-mx", "mxfp4_e2m1", tmp_path / "blk.npy", "--out", tmp_path / "g", "--axis", 1,
                       "--formats", "memh")
    assert status == 0
    g = tmp_path / "g"
    lines = lambda name: (g / f"{name}.memh").read_text().splitlines()[1:]  # noqa: E731
    assert lines("blk.codes") == ["00", "02", "0c", "07"] and lines("blk.scales") == ["80"]  # docs/formats.md 14.2
    assert lines("blk.values") == ["00000000", "40000000", "c0800000", "41400000"]  # 0, 2, -4, 12


def test_values_beyond_float32_are_infinite(tmp_path, capsys):
    np.save(tmp_path / "big.npy", np.array([1e300, -1e300, 1.0]))
    assert run(capsys, "export-mx", "mxfp8_e4m3", tmp_path / "big.npy", "--out", tmp_path / "g")[0] == 0
    _, words = verify(tmp_path / "g")
    assert words["big.scales"] == [0xFE] and words["big.codes"] == [0x7E, 0xFE, 0x00]  # 448 x 2**127, saturated
    assert words["big.values"] == [0x7F800000, 0xFF800000, 0]


def gemm_operands():
    """A (3, 40) and B (40, 2); row 0 of A and column 0 of B are the case of docs/formats.md 14.5 where the two
    accumulation rules differ (float32 loses 2**-18 beside 2**16)."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3, 40)) * 4
    b = rng.standard_normal((40, 2))
    a[0], b[:, 0] = 0.0, 0.0
    a[0, :3] = [256, 2.0**-9, -256]
    b[:3, 0] = [256, 2.0**-9, 256]
    return a, b


@pytest.fixture
def gemm_golden(tmp_path, capsys):
    a, b = gemm_operands()
    path = tmp_path / "ab.npz"
    np.savez(path, a=a, b=b, labels=np.arange(3))  # an integer array the command does not read
    status, text, err = run(capsys, "export-mx", "mxfp8_e4m3", path, "--gemm", "a", "b", "--block", 16,
                            "--out", tmp_path / "golden")
    assert status == 0 and "C.exact, C.float32" in text, err
    return tmp_path / "golden"


def test_gemm_products_equal_the_fraction_oracle(gemm_golden):
    a, b = gemm_operands()
    qa = mx.quantize(a, "mxfp8_e4m3", axis=1, block=16)
    qb = mx.quantize(b, "mxfp8_e4m3", axis=0, block=16)
    manifest, words = verify(gemm_golden)
    assert manifest["options"]["gemm"] == ["a", "b"] and "labels.codes" not in words
    assert words["a.codes"] == qa.codes.ravel().tolist() and words["b.scales"] == qb.scales.ravel().tolist()
    exact = np.array(words["C.exact"], np.uint32).reshape(3, 2)
    f32 = np.array(words["C.float32"], np.uint32).reshape(3, 2)
    assert np.array_equal(exact, oracle.gemm_exact(qa, qb).view(np.uint32))
    assert np.array_equal(f32, oracle.gemm_float32(qa, qb).view(np.uint32))
    assert exact.view(np.float32)[0, 0] == 2.0**-18 and f32.view(np.float32)[0, 0] == 0.0


def dut_copy(golden, tmp_path):
    dut = tmp_path / "dut"
    dut.mkdir()
    for path in golden.glob("*.memh"):
        shutil.copy(path, dut)
    return dut


def edit_word(path, index, change):
    lines = path.read_text().splitlines()
    width = len(lines[1 + index])
    lines[1 + index] = f"{change(int(lines[1 + index], 16)):0{width}x}"
    path.write_text("\n".join(lines) + "\n")


def test_planted_faults_are_named(gemm_golden, tmp_path, capsys):
    dut = dut_copy(gemm_golden, tmp_path)
    assert run(capsys, "compare", gemm_golden, dut)[0] == 0
    edit_word(dut / "a.codes.memh", 40 + 7, lambda w: w ^ 0x04)  # one element bit of a[1, 7]
    edit_word(dut / "b.scales.memh", 3, lambda w: w + 1)  # the scale of b's block (1, 1) one binade too large
    status, text, _ = run(capsys, "compare", gemm_golden, dut)
    assert status == 1
    assert "MISMATCH   a.codes: 1 of 120 words differ" in text and "first at index [1, 7]" in text
    assert "differing bits [2]" in text and "e4m3 " in text
    assert "MISMATCH   b.scales: 1 of 6 words differ" in text and "first at index [1, 1]" in text
    assert "E8M0 2**" in text and text.rstrip().endswith("2 mismatch")


def test_a_damaged_golden_file_is_exit_2_not_a_mismatch(gemm_golden, tmp_path, capsys):
    dut = dut_copy(gemm_golden, tmp_path)
    edit_word(gemm_golden / "C.exact.memh", 0, lambda w: w ^ 1)
    status, text, err = run(capsys, "compare", gemm_golden, dut)
    assert status == 2 and "golden file damaged: C.exact.memh" in err and "MISMATCH" not in text


def test_output_is_replaced_only_when_it_is_a_golden_export(arrays, tmp_path, capsys):
    path, _ = arrays
    out = tmp_path / "golden"
    argv = ["export-mx", "mxint8", path, "--out", out]
    assert run(capsys, *argv)[0] == 0
    status, _, err = run(capsys, *argv)
    assert status == 2 and "--overwrite" in err
    assert run(capsys, *argv, "--overwrite", "--block", 8)[0] == 0
    assert entries(out)["w.codes"]["mx"]["block"] == 8
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    status, _, err = run(capsys, "export-mx", "mxint8", path, "--out", other, "--overwrite")
    assert status == 2 and (other / "keep.txt").read_text() == "mine"


def test_stochastic_rounding_is_reproducible_from_its_seed(arrays, tmp_path, capsys):
    path, named = arrays
    for out in ("g1", "g2"):
        assert run(capsys, "export-mx", "mxfp4_e2m1", path, "--rounding", "stochastic", "--seed", 9,
                   "--out", tmp_path / out, "--formats", "bin")[0] == 0
    assert (tmp_path / "g1" / "w.codes.bin").read_bytes() == (tmp_path / "g2" / "w.codes.bin").read_bytes()
    t = mx.quantize(named["w"], "mxfp4_e2m1", rounding="stochastic", rng=9)
    assert (tmp_path / "g1" / "w.codes.bin").read_bytes() == t.codes.tobytes()
    assert t.codes.tobytes() != mx.quantize(named["w"], "mxfp4_e2m1").codes.tobytes()


def bad_files(tmp_path):
    rng = np.random.default_rng(2)
    np.save(tmp_path / "ints.npy", np.arange(12, dtype=np.int32).reshape(3, 4))
    np.save(tmp_path / "x.npy", rng.standard_normal((3, 4)))
    np.savez(tmp_path / "flat.npz", a=rng.standard_normal(8), b=rng.standard_normal((8, 2)))
    np.savez(tmp_path / "k.npz", a=rng.standard_normal((2, 8)), b=rng.standard_normal((7, 2)),
             i=np.ones((2, 8), np.int8), c=rng.standard_normal((2, 8)).astype(np.complex64))
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really")
    (tmp_path / "x.csv").write_text("1,2\n")


@pytest.mark.parametrize("argv, message", [
    (["mxfp8_e4m3", "ints.npy"], "ints.npy holds an array of dtype int32; give one of float16, float32, float64"),
    (["mxfp8_e4m3", "k.npz"], "(array 'i') holds an array of dtype int8"),
    (["mxfp8_e4m3", "k.npz", "--gemm", "a", "c"], "(array 'c') holds an array of dtype complex64"),
    (["mxfp8_e4m3", "flat.npz", "--gemm", "a", "b"], "A ('a') has shape (8,); give a 2-D (M, K) array"),
    (["mxfp8_e4m3", "k.npz", "--gemm", "a", "b"], "K differs (8 and 7)"),
    (["mxfp8_e4m3", "k.npz", "--gemm", "a", "z"], "has no array 'z'"),
    (["mxfp8_e4m3", "k.npz", "--gemm", "a", "a"], "two different arrays"),
    (["mxfp8_e4m3", "x.npy", "--gemm", "a", "b"], "give a .npz holding both operands"),
    (["mxfp8_e4m3", "k.npz", "--gemm", "a", "b", "--axis", "0"], "--axis does not apply with --gemm"),
    (["mxfp9", "x.npy"], "unknown MX format 'mxfp9'; choose one of mxfp8_e4m3"),
    (["mxfp8_e4m3", "x.npy", "--block", "0"], "argument --block: expected a positive integer, got '0'"),
    (["mxfp8_e4m3", "x.npy", "--block", str(2**21)], "block size of at most 1048576"),
    (["mxfp8_e4m3", "x.npy", "--axis", "2"], "x: axis 2 is out of range for an array of 2 dimension(s)"),
    (["mxfp8_e4m3", "x.npy", "--scale-rule", "round"], "invalid choice: 'round'"),
    (["mxfp8_e4m3", "x.npy", "--rounding", "stochastic"], "needs --seed"),
    (["mxfp8_e4m3", "x.npy", "--formats", "hex"], "unknown golden formats"),
    (["mxfp8_e4m3", "missing.npz"], "no input file"),
    (["mxfp8_e4m3", "broken.npz"], "broken.npz: is not a .npz archive"),
    (["mxfp8_e4m3", "x.csv"], "give a .npy file"),
])
def test_bad_input_is_exit_2_with_a_clear_message(tmp_path, capsys, monkeypatch, argv, message):
    bad_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    status, text, err = run(capsys, "export-mx", *argv, "--out", "golden")
    assert status == 2 and message in err, err
    assert "Traceback" not in err + text and "internal error" not in err
    assert not (tmp_path / "golden").exists()
