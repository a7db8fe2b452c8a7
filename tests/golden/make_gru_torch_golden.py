"""Write tests/golden/gru_torch.json: PyTorch's GRU forward on fixed weights and inputs, as float32 bits.

``tests/test_gru.py::test_reset_after_matches_torch`` loads this file, builds bitsim's ``GRU(reset="after")``
through ``bitsim.nn.gru.from_torch`` from the stored weights, runs it on the stored inputs and compares with
PyTorch's stored outputs, so the test runs without PyTorch.

The layer is ``torch.nn.GRU(5, 7, batch_first=True)`` after ``torch.manual_seed(0)``; the input ``x`` (batch 3,
11 steps, 5 features) and ``h0`` (3 x 7) come from NumPy's ``default_rng(2)`` and ``default_rng(3)``, as the test
made them when it called PyTorch itself. Every array is stored with its shape and its float32 values as exact
bit patterns (8 hex digits each, row-major), so nothing is lost to decimal printing.

To rerun (only needed if the test's layer or inputs change; PyTorch is needed here, never by the tests)::

    pip install torch==2.13.0        # the version that wrote the committed file
    python tests/golden/make_gru_torch_golden.py

and commit the rewritten ``tests/golden/gru_torch.json``. Another PyTorch version, thread count or CPU may
change the last bits of the outputs; the test compares with rtol=1e-5, atol=2e-6, far above that.
"""

import json
import re
from pathlib import Path

import numpy as np
import torch

INPUT, HIDDEN, BATCH, STEPS = 5, 7, 3, 11


def bits(a):
    """A float32 array as {"shape", "float32_bits"}: one 8-hex-digit word per value, row-major."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    return {"shape": list(a.shape), "float32_bits": " ".join(f"{int(w):08x}" for w in a.reshape(-1).view(np.uint32))}


def main():
    torch.manual_seed(0)
    ref = torch.nn.GRU(INPUT, HIDDEN, batch_first=True)
    x = np.random.default_rng(2).standard_normal((BATCH, STEPS, INPUT)).astype(np.float32)
    h0 = np.random.default_rng(3).standard_normal((BATCH, HIDDEN)).astype(np.float32) * 0.5
    with torch.no_grad():
        out, last = ref(torch.from_numpy(x), torch.from_numpy(h0)[None])
    weights = {name: getattr(ref, name).detach().numpy()
               for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")}
    golden = {
        "about": "torch.nn.GRU(5, 7, batch_first=True) after torch.manual_seed(0); written by "
                 "tests/golden/make_gru_torch_golden.py",
        "torch_version": torch.__version__,
        "weights": {name: bits(w) for name, w in weights.items()},
        "x": bits(x),
        "h0": bits(h0),
        "output": bits(out.numpy()),
        "h_last": bits(last.numpy()[0]),
    }
    path = Path(__file__).with_name("gru_torch.json")
    text = json.dumps(golden, indent=1)
    text = re.sub(r"\[[\d,\s]*\]", lambda m: json.dumps(json.loads(m.group())), text)  # a shape on one line
    path.write_text(text + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
