"""Write tests/golden/qonnx_export.json: the worked example of docs/qonnx.md ("Export") with its expected values.

Run once from the repository root (``python tests/golden/make_qonnx_export_golden.py``); the JSON is
committed. A hand-made dense BNN (4 uint8 inputs, 3 hidden units, one of them with a decreasing batch
norm, ``flip``, 2 scores); the expected values are computed here with plain Python integers and float32
scalar steps, independently of bitsim's exporter and kernels:

* ``acc = sum x * w``; bit = ``acc >= t``, or ``acc <= t`` where flipped;
* exported: a flipped channel's weight column and threshold are negated (``-acc >= -t``);
* scores: ``gain * ((float32(acc2) - mean) * scale) + beta``, one float32 rounding per step.
"""

import json
from pathlib import Path

import numpy as np

W1 = [[1, -1, 1, 1], [-1, -1, 1, -1], [1, 1, -1, -1]]
T = [100, -50, 0]
FLIP = [False, True, False]
W2 = [[1, -1, 1], [-1, -1, -1]]
MEAN, SCALE, GAIN, BETA = [0.5, -1.0], [0.3, 1.5], [1.25, -0.7], [0.1, 2.0]
X = [[200, 10, 30, 0], [0, 255, 255, 255], [17, 18, 19, 20], [255, 0, 0, 255]]
f32 = np.float32
rows = []
for x in X:
    acc = [sum(int(a) * int(w) for a, w in zip(x, row)) for row in W1]
    # exported: flipped channels negate their weights and threshold
    acc_exported = [-a if f else a for a, f in zip(acc, FLIP)]
    t_exported = [-t if f else t for t, f in zip(T, FLIP)]
    bits = [1 if (a <= t if f else a >= t) else -1 for a, t, f in zip(acc, T, FLIP)]
    assert bits == [1 if a >= t else -1 for a, t in zip(acc_exported, t_exported)]
    acc2 = [sum(b * w for b, w in zip(bits, row)) for row in W2]
    scores = []
    for a, m, s, g, b in zip(acc2, MEAN, SCALE, GAIN, BETA):
        v = f32(a) - f32(m)
        v = v * f32(s)
        v = f32(g) * v
        v = v + f32(b)
        scores.append(v)
    rows.append({"input": x, "acc": acc, "MatMul_0_out0": acc_exported, "MultiThreshold_0_out0": bits,
                 "MatMul_1_out0": acc2, "scores": [float(s) for s in scores],
                 "scores_bits": [f"0x{int(np.array(s, f32).view(np.uint32)):08x}" for s in scores]})
golden = {
    "what": "QONNX export of a hand-made dense BNN (docs/qonnx.md, Export, worked example); expected values "
            "computed with Python ints and float32 scalar steps, independently of the exporter",
    "model": {"w1": W1, "thresholds": T, "flip": FLIP, "w2": W2, "mean": MEAN, "scale": SCALE, "gain": GAIN,
              "beta": BETA},
    "exported": {"MatMul_0_weights": [[(-w if f else w) for w, f in zip(col, FLIP)] for col in zip(*W1)],
                 "MultiThreshold_0_thresholds": [[-t if f else t] for t, f in zip(T, FLIP)],
                 "MatMul_1_weights": [list(col) for col in zip(*W2)]},
    "rows": rows,
}
Path(__file__).with_name("qonnx_export.json").write_text(json.dumps(golden, indent=1) + "\n")
