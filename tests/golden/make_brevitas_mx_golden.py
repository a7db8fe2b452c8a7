"""Write Brevitas's MX quantization of a fixed set of blocks as test vectors for bitsim.

Run once, in an environment with PyTorch and Brevitas (not bitsim's: they are not its dependencies)::

    python -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch==2.13.0 torchao==0.18.0 brevitas==0.13.4 numpy
    /tmp/tvenv/bin/python tests/golden/make_brevitas_mx_golden.py tests/golden/brevitas_mx.npz

Brevitas's stock MX activation quantizers (``brevitas.quant.mx_quant_ocp``: ``MXFloat8e4m3Act``, the same
with 5 exponent and 2 mantissa bits for E5M2, and ``MXInt8Act``) quantize, in a ``QuantIdentity`` along
axis 1, the blocks of ``make_torchao_mx_golden.blocks``; the file holds the inputs, Brevitas's scale (one
float32 per block) and its dequantized values. ``tests/test_mx_brevitas.py`` compares them with bitsim.
"""

import sys
from pathlib import Path

import brevitas
import brevitas.nn as qnn
import numpy as np
import torch
from brevitas.quant.mx_quant_ocp import MXFloat8e4m3Act, MXInt8Act

sys.path.insert(0, str(Path(__file__).parent))
from make_torchao_mx_golden import blocks  # noqa: E402


class MXFloat8e5m2Act(MXFloat8e4m3Act):
    exponent_bit_width = 5
    mantissa_bit_width = 2


QUANTIZERS = {"e4m3": (MXFloat8e4m3Act, 448.0), "e5m2": (MXFloat8e5m2Act, 57344.0), "int8": (MXInt8Act, 127 / 64)}


def main(path):
    arrays = {}
    for name, (quant, largest) in QUANTIZERS.items():
        x = blocks(largest, seed=len(arrays))
        identity = qnn.QuantIdentity(quant, group_dim=1, return_quant_tensor=True).eval()
        with torch.no_grad():
            y = identity(torch.from_numpy(x))
        arrays[f"{name}_x"] = x
        arrays[f"{name}_scales"] = y.scale.numpy().reshape(len(x), -1)[:, 0].astype(np.float32)
        arrays[f"{name}_values"] = y.value.numpy().astype(np.float32)
    arrays["versions"] = np.array([f"torch {torch.__version__}", f"brevitas {brevitas.__version__}"])
    np.savez(path, **arrays)
    print(f"wrote {path}: {len(QUANTIZERS)} quantizers, {len(x)} blocks each")


if __name__ == "__main__":
    main(sys.argv[1])
