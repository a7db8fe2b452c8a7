"""Write tests/golden/accumulate.json: narrow-accumulator GEMMs (wrap and saturate), by the slow oracle.

Run once when the rule is introduced (``python tests/golden/make_accumulate_golden.py``); afterwards
tests/test_kernels_accumulate.py recomputes every entry with :func:`bitsim.kernels.accumulate.accumulate_matmul`.
The expected values come from :mod:`bitsim.reference.accumulate` (Python ints), never from the fast kernel,
and the inputs are written into the file.
"""

import json
from pathlib import Path

import numpy as np

from bitsim.reference.accumulate import accumulate_matmul


def cases():
    rng = np.random.default_rng(2026)
    out = [
        # the worked example of docs/formats.md section 11 ("Narrow accumulators"): 4-bit accumulator
        {"a": [[5, 4, -6]], "b": [[1, 1, 1]], "width": 4, "edge": "wrap"},
        {"a": [[5, 4, -6]], "b": [[1, 1, 1]], "width": 4, "edge": "saturate"},
        # the same products in the other order: saturation depends on the order, wrapping does not
        {"a": [[-6, 4, 5]], "b": [[1, 1, 1]], "width": 4, "edge": "wrap"},
        {"a": [[-6, 4, 5]], "b": [[1, 1, 1]], "width": 4, "edge": "saturate"},
        # the edges themselves: INT_MIN and INT_MAX of the accumulator, reached and passed
        {"a": [[15, 1, -1, -31, -1]], "b": [[1, 1, 1, 1, 1]], "width": 5, "edge": "wrap"},
        {"a": [[15, 1, -1, -31, -1]], "b": [[1, 1, 1, 1, 1]], "width": 5, "edge": "saturate"},
        # the widest accumulator and the largest products
        {"a": [[2**30, 2**30, -(2**30)]], "b": [[2**30, 2**30, 2**30]], "width": 62, "edge": "wrap"},
        {"a": [[2**30, 2**30, -(2**30)]], "b": [[2**30, 2**30, 2**30]], "width": 62, "edge": "saturate"},
    ]
    for width in (2, 3, 8, 12, 16, 24):
        for edge in ("wrap", "saturate"):
            a = rng.integers(-128, 128, size=(3, 17))
            b = rng.integers(-128, 128, size=(4, 17))
            out.append({"a": a.tolist(), "b": b.tolist(), "width": width, "edge": edge})
    for case in out:
        result, events = accumulate_matmul(case["a"], case["b"], case["width"], case["edge"])
        case.update(out=result, events=events)
    return out


if __name__ == "__main__":
    path = Path(__file__).with_name("accumulate.json")
    path.write_text(json.dumps({"about": "narrow-accumulator GEMM, docs/formats.md section 11; expected values by "
                                         "bitsim.reference.accumulate", "cases": cases()}, indent=1) + "\n")
    print(f"wrote {path}")
