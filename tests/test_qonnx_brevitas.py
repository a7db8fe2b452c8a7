"""A real Brevitas export (examples/brevitas/tfc_w2a2.onnx) against QONNX's executor, without PyTorch.

The file and the PyTorch model's predictions beside it were written by
``examples/brevitas/export_tfc.py``; ``examples/brevitas/README.md`` gives their provenance and the
measurements on all 10,000 test images that the checks below repeat on the first 500.
"""

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from bitsim.datasets import load_mnist
from bitsim.interop import qonnx

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "brevitas"
MODEL = EXAMPLE / "tfc_w2a2.onnx"
IMAGES = 500
# Test errors of the exact level (and of the PyTorch model) on the first 500 test images, as in the README.
ERRORS_500 = 28
# Tensors whose exact value differs from the float execution on these images (README, "Level 2").
DIFFERING = {"Sub_0_out0", "Gemm_0_out0", "BatchNormalization_0_out0"}


@pytest.fixture(scope="module")
def images():
    data = load_mnist()
    return data["x_test"][:IMAGES].reshape(IMAGES, 784), data["y_test"][:IMAGES]


@pytest.fixture(scope="module")
def graph():
    return qonnx.load(MODEL)


@pytest.fixture(scope="module")
def qonnx_tensors(images):
    """Every tensor as QONNX's executor computes it, on its own cleanup of the file, batch by batch."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    model = cleanup_model(ModelWrapper(str(MODEL))).transform(InferShapes())
    (name,) = [i.name for i in model.graph.input]
    batch = model.get_tensor_shape(name)[0]
    constants = {t.name for t in model.graph.initializer}
    x = images[0].astype(np.float32)
    parts = [execute_onnx(model, {name: x[i:i + batch]}, return_full_exec_context=True)
             for i in range(0, len(x), batch)]
    from_input = {name}
    for node in model.graph.node:
        if from_input.intersection(node.input):
            from_input.update(node.output)
    out = {k: np.concatenate([p[k] for p in parts]) for k in from_input}
    for k in parts[0]:
        if k not in from_input and k not in constants and parts[0][k] is not None:
            assert all(np.array_equal(p[k], parts[0][k]) for p in parts), k
            out[k] = parts[0][k]
    return out


def readme_sha256():
    text = (EXAMPLE / "README.md").read_text()
    found = re.findall(r"SHA-256 of `tfc_w2a2\.onnx`: `([0-9a-f]{64})`", text)
    assert len(found) == 1, "the README states the model's SHA-256 once"
    return found[0]


def test_the_committed_file_is_the_documented_export():
    assert hashlib.sha256(MODEL.read_bytes()).hexdigest() == readme_sha256()


def test_reference_level_equals_qonnx_executor_on_every_tensor(graph, images, qonnx_tensors):
    ours = graph.run(images[0], semantics="reference")
    assert set(ours) == set(qonnx_tensors)
    for name, theirs in qonnx_tensors.items():
        mine = np.asarray(ours[name])
        assert mine.dtype == theirs.dtype == np.float32, name
        assert mine.shape == theirs.shape, name
        assert np.array_equal(mine.view(np.uint32), theirs.view(np.uint32)), name


def test_exact_level_predictions_and_test_error(graph, images, qonnx_tensors):
    x, y = images
    scores = graph.run(x, semantics="exact", names=graph.outputs)[graph.outputs[0]]
    pred = scores.argmax(1)
    torch_pred = np.load(EXAMPLE / "tfc_w2a2_torch_pred.npy")[:IMAGES]
    assert np.array_equal(pred, torch_pred)
    assert int((pred != y).sum()) == ERRORS_500
    assert np.array_equal(scores, qonnx_tensors[graph.outputs[0]])
    assert np.array_equal(scores, np.round(scores)) and np.abs(scores).max() <= 64


def test_exact_level_differs_only_before_a_quantizer_and_flips_no_code(graph, images):
    rows = {row.name: row for row in qonnx.compare_levels(graph, images[0])}
    assert {name for name, row in rows.items() if not row.equal} == DIFFERING
    assert all(row.equal for name, row in rows.items() if name.startswith("Quant_"))
    assert all(not row.codes_flipped for row in rows.values())
