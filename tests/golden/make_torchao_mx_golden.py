"""Write torchao's MX quantization of a fixed set of blocks as test vectors for bitsim.

Run once, in an environment with PyTorch and torchao (not bitsim's: they are not its dependencies)::

    python -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch==2.13.0 torchao==0.18.0 numpy
    /tmp/tvenv/bin/python tests/golden/make_torchao_mx_golden.py tests/golden/torchao_mx.npz

For each element format (E4M3, E5M2, E2M3, E3M2, E2M1) and each of torchao's scale modes (FLOOR, CEIL,
EVEN, RCEIL), ``torchao.prototype.mx_formats.mx_tensor.to_mx`` quantizes the same float32 blocks of 32
values; the file holds the inputs, torchao's E8M0 scale codes and its element codes (one per byte, FP4
unpacked). ``tests/test_mx_torchao.py`` checks that a named bitsim scale rule reproduces each mode.
"""

import sys

import numpy as np
import torch
import torchao
from torchao.prototype.mx_formats.constants import DTYPE_FP6_E2M3, DTYPE_FP6_E3M2
from torchao.prototype.mx_formats.config import ScaleCalculationMode
from torchao.prototype.mx_formats.kernels import unpack_uint4
from torchao.prototype.mx_formats.mx_tensor import to_mx

BLOCK = 32
FORMATS = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2, "e2m3": DTYPE_FP6_E2M3,
           "e3m2": DTYPE_FP6_E3M2, "e2m1": torch.float4_e2m1fn_x2}
LARGEST = {"e4m3": 448.0, "e5m2": 57344.0, "e2m3": 7.5, "e3m2": 28.0, "e2m1": 6.0}
MODES = ["floor", "ceil", "even", "rceil"]


def blocks(largest, seed=0):
    """Blocks of 32 float32 values: random ones over a wide range of magnitudes, and blocks whose largest
    magnitude sits at or one float32 step around the values where a scale rule changes its answer."""
    rng = np.random.default_rng(seed)
    out = []
    for e in range(-30, 31, 3):
        out.append(rng.standard_normal(BLOCK) * 2.0 ** e)
    for e in (-112, -118, -122, -126):  # scales at and beyond the bottom of E8M0's range
        out.append(rng.standard_normal(BLOCK) * 2.0 ** e)
    out.append(np.zeros(BLOCK))
    out.append(rng.standard_normal(BLOCK) * 1e-3)
    for k in (-4, 0, 3):
        for top in (largest, 2.0 ** np.floor(np.log2(largest)), 1.5 * 2.0 ** np.floor(np.log2(largest))):
            v = np.float32(top * 2.0 ** k)
            for t in (np.nextafter(v, np.float32(0)), v, np.nextafter(v, np.float32(np.inf))):
                b = rng.uniform(-1, 1, BLOCK) * float(t)
                b[rng.integers(BLOCK)] = float(t) * (1 if rng.random() < 0.5 else -1)
                out.append(b)
    return np.array(out, np.float32)


def main(path):
    arrays = {}
    for name, dtype in FORMATS.items():
        x = blocks(LARGEST[name], seed=len(arrays))
        arrays[f"{name}_x"] = x
        for mode in MODES:
            scale, data = to_mx(torch.from_numpy(x), dtype, BLOCK, ScaleCalculationMode(mode))
            codes = data.view(torch.uint8)
            if name == "e2m1":
                codes = unpack_uint4(codes.reshape(-1)).reshape(x.shape)
            arrays[f"{name}_{mode}_scales"] = scale.view(torch.uint8).numpy().reshape(len(x))
            arrays[f"{name}_{mode}_codes"] = codes.numpy().astype(np.uint8).reshape(x.shape)
    arrays["versions"] = np.array([f"torch {torch.__version__}", f"torchao {torchao.__version__}"])
    np.savez(path, **arrays)
    print(f"wrote {path}: {len(FORMATS)} formats x {len(MODES)} modes, {len(x)} blocks each")


if __name__ == "__main__":
    main(sys.argv[1])
