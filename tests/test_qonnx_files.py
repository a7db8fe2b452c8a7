"""QONNX import: refusals with bitsim errors, the commands, golden vectors of an imported model (the loader's
fuzzing: tests/test_fuzz_qonnx.py)."""

import json

import numpy as np
import pytest
import qonnx_networks as nets
from onnx import TensorProto, helper

from bitsim.cli import main
from bitsim.datasets import load_mnist
from bitsim.errors import (
    BitsimError,
    DamagedFileError,
    InputError,
    MissingExtra,
    MissingFileError,
)
from bitsim.interop import qonnx


def one_node(op, attrs=None, shape=(1, 4), domain=""):
    node = helper.make_node(op, ["x"], ["y"], domain=domain, **(attrs or {}))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_unsupported_op_names_node_op_and_list(tmp_path):
    with pytest.raises(InputError, match=r"op type Tanh is not supported; the supported ops are .*MultiThreshold"):
        qonnx.load(nets.save(one_node("Tanh"), tmp_path / "m.onnx"))


def test_unsupported_attribute(tmp_path):
    model = one_node("Flatten", {"axis": 1})
    model.graph.node[0].attribute.append(helper.make_attribute("frobnicate", 3))
    with pytest.raises(InputError, match=r"\(Flatten\): attribute\(s\) \['frobnicate'\] are not implemented"):
        qonnx.load(nets.save(model, tmp_path / "m.onnx"))


def test_dynamic_shape(tmp_path):
    with pytest.raises(InputError, match="dynamic shape"):
        qonnx.load(nets.save(one_node("Relu", shape=("N", 4)), tmp_path / "m.onnx"))


def test_float_quant_without_its_six_inputs_is_refused_clearly(tmp_path):
    with pytest.raises(InputError, match=r"\(FloatQuant\): 1 inputs and 1 outputs; FloatQuant takes 6 inputs"):
        qonnx.load(nets.save(one_node("FloatQuant", domain=nets.QONNX), tmp_path / "m.onnx"))


def test_damaged_and_missing_files(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"not a protobuf \xff\xff")
    with pytest.raises(DamagedFileError, match="bad.onnx"):
        qonnx.load(path)
    with pytest.raises(MissingFileError):
        qonnx.load(tmp_path / "none.onnx")
    assert main(["qonnx", "run", str(path), "--inputs", str(path)]) == 2


@pytest.fixture(scope="module")
def model_and_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    model = nets.save(nets.tfc_streamlined(3, batch=2), d / "tfc.onnx")
    inputs = d / "x.npy"
    np.save(inputs, np.random.default_rng(2).integers(0, 256, (4, 784)).astype(np.uint8))
    return d, model, inputs


def test_run_and_check_commands(model_and_inputs, capsys):
    d, model, inputs = model_and_inputs
    assert main(["qonnx", "run", str(model), "--inputs", str(inputs), "--semantics", "exact", "--out",
                 str(d / "run")]) == 0
    with np.load(d / "run" / "tensors.npz") as saved:
        assert saved["global_out"].shape == (4, 10)
    again = ["qonnx", "run", str(model), "--inputs", str(inputs), "--out", str(d / "run")]
    assert main(again) == 2  # an existing output is replaced only with --overwrite
    assert main(again + ["--overwrite"]) == 0
    (d / "mine").mkdir()
    (d / "mine" / "notes.txt").write_text("not bitsim's")
    assert main(["qonnx", "run", str(model), "--inputs", str(inputs), "--out", str(d / "mine"), "--overwrite"]) == 2
    assert (d / "mine" / "notes.txt").read_text() == "not bitsim's"
    assert main(["qonnx", "check", str(model), "--inputs", str(inputs)]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "10 of 10 tensors equal" in out


def test_run_refuses_its_output_directory_before_it_runs(model_and_inputs, capsys):
    d, model, inputs = model_and_inputs
    out = d / "first"
    assert main(["qonnx", "run", str(model), "--inputs", str(inputs), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["qonnx", "run", str(model), "--inputs", str(inputs), "--semantics", "exact", "--out", str(out)]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""  # nothing ran: no outputs printed before the refusal
    assert f"{out} is not empty" in printed.err and "--overwrite" in printed.err and "--resume" not in printed.err
    assert main(["qonnx", "run", str(model), "--inputs", str(inputs), "--out", str(d)]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and f"{d} holds the input" in printed.err


def test_run_and_check_read_the_bundled_mnist_images(tmp_path, capsys):
    model = nets.save(nets.tfc_streamlined(3, batch=10000, sizes=(784, 16, 10)), tmp_path / "tfc.onnx")
    assert main(["qonnx", "run", str(model), "--inputs", "mnist:test", "--semantics", "exact", "--out",
                 str(tmp_path / "run")]) == 0
    pixels = load_mnist()["x_test"].reshape(10000, 784)
    with np.load(tmp_path / "run" / "tensors.npz") as saved:
        assert np.array_equal(saved["global_in"], pixels.astype(np.float32))
    assert main(["qonnx", "check", str(model), "--inputs", "mnist:test"]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["qonnx", "run", str(model), "--inputs", "mnist:validation"]) == 2
    assert "unknown MNIST split 'validation'" in capsys.readouterr().err
    small = nets.save(nets.tfc_streamlined(3, batch=1, sizes=(100, 16, 10)), tmp_path / "small.onnx")
    assert main(["qonnx", "run", str(small), "--inputs", "mnist:test"]) == 2
    assert "each example holds 784 values" in capsys.readouterr().err


def test_golden_export_compare_fault_and_damage(model_and_inputs, tmp_path, capsys):
    _, model, inputs = model_and_inputs
    golden = tmp_path / "golden"
    assert main(["export", str(model), "--inputs", str(inputs), "--out", str(golden)]) == 0
    manifest = json.loads((golden / "manifest.json").read_text())
    entry = next(e for e in manifest["tensors"] if e["name"] == "MultiThreshold_0_out0")
    assert entry["dtype"] == "|i1" and entry["quant"]["scale"] == "1"  # bipolar activations: codes -1 and +1
    dut = tmp_path / "dut"
    dut.mkdir()
    for e in manifest["tensors"]:
        (dut / f"{e['name']}.memh").write_bytes((golden / f"{e['name']}.memh").read_bytes())
    assert main(["compare", str(golden), str(dut)]) == 0
    lines = (dut / "MultiThreshold_1_out0.memh").read_text().splitlines()
    lines[5] = "ff" if lines[5] != "ff" else "01"  # a stuck bit in one activation, as an RTL bug would give
    (dut / "MultiThreshold_1_out0.memh").write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["compare", str(golden), str(dut)]) == 1
    assert "MISMATCH   MultiThreshold_1_out0: 1 of" in capsys.readouterr().out
    (golden / "MatMul_0_out0.bin").write_bytes(b"\x00" * 3)
    assert main(["compare", str(golden), str(dut)]) == 2


def test_missing_extra_names_the_pip_command(monkeypatch, tmp_path, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the onnx extra were not installed
    with pytest.raises(MissingExtra, match=r'pip install -e "\.\[onnx\]"'):
        qonnx.load(tmp_path / "m.onnx")
    assert main(["qonnx", "run", str(tmp_path / "m.onnx"), "--inputs", str(tmp_path / "x.npy")]) == 2
    assert 'pip install -e ".[onnx]"' in capsys.readouterr().err


def test_bitsim_and_its_help_do_not_import_the_onnx_extra():
    import subprocess
    import sys

    code = ("import sys, bitsim, bitsim.cli, bitsim.interop, bitsim.jobs.qonnx; bitsim.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'qonnx', 'onnxruntime')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    assert out.stdout.strip() == "[]"


def test_inputs_of_the_wrong_size_or_dtype(model_and_inputs, tmp_path):
    _, model, _ = model_and_inputs
    wrong = tmp_path / "w.npy"
    np.save(wrong, np.zeros((2, 10), np.uint8))
    assert main(["qonnx", "run", str(model), "--inputs", str(wrong)]) == 2
    graph = qonnx.load(model)
    with pytest.raises(InputError, match="multiple of 2"):
        graph.run(np.zeros((3, 784), np.float32))
    with pytest.raises(BitsimError, match="float64"):
        graph.run(np.zeros((2, 784), np.float64))
    with pytest.raises(InputError, match="unknown semantics"):
        graph.run(np.zeros((2, 784), np.float32), semantics="fast")


def test_golden_codes_of_a_two_bit_quant(tmp_path):
    """docs/formats.md, section 8: a 2-bit signed Quant of scale 1/2 holding -1, -0.5, 0, 0.5 is int8 -2, -1, 0, 1."""
    b = nets.Builder(0)
    y = b.quant("x", 0.5, 2, signed=True)
    model = nets.save(b.model("x", [1, 4], y), tmp_path / "q.onnx")
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.array([[255, 0, 0, 0]], np.uint8))  # 255 clamps to the largest code, 1 (value 0.5)
    graph = qonnx.load(model)
    from bitsim.golden.export import export_tensors
    from bitsim.interop.golden_rows import golden_rows

    x = np.array([[-1.0, -0.5, 0.0, 0.5]], np.float32)
    manifest = export_tensors(golden_rows(graph, x), tmp_path / "g", examples=1)
    entry = next(e for e in manifest["tensors"] if e["name"] == graph.outputs[0])
    assert entry["dtype"] == "|i1" and entry["quant"] == {"scale": "1/2", "zero_point": 0, "width": 2, "signed": True,
                                                          "note": "value = 1/2 * (code - 0)"}
    assert (tmp_path / "g" / f"{entry['name']}.memh").read_text().splitlines()[1:] == ["fe", "ff", "00", "01"]
    assert main(["export", str(model), "--inputs", str(inputs), "--out", str(tmp_path / "g2")]) == 0
