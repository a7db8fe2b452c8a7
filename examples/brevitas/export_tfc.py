"""Train a Brevitas TFC-w2a2 (784-64-64-64-10) on bitsim's bundled MNIST and export it to QONNX.

The network follows Brevitas' ``bnn_pynq`` TFC: an 8-bit ``QuantIdentity`` on the input (pixels scaled
to [-1, 1] as ``2 * pixel / 255 - 1``, signed narrow, constant scale 1/127), three ``QuantLinear`` layers
of 64 with 2-bit weights (signed narrow: -1, 0, +1 times a constant scale 1), each followed by
``BatchNorm1d`` and a 2-bit ``QuantIdentity`` (-1, 0, +1 on [-1, 1]), and a last ``QuantLinear`` to 10
classes. Unlike ``bnn_pynq`` it has no dropout and no ``TensorNorm`` after the last layer: the scores
are the last layer's output. It reads raw pixels 0..255 as float32, shape ``(batch, 784)`` (with
``--image-input``: ``(batch, 1, 28, 28)``, which bitsim refuses; see README.md), as bitsim feeds them.

As in ``bnn_pynq``, the float weights start uniform on [-1, 1] and are clipped to it after each step.
Needs PyTorch, Brevitas and onnxoptimizer (not bitsim's dependencies)::

    python examples/brevitas/export_tfc.py --out examples/brevitas/tfc_w2a2.onnx

It prints the PyTorch model's test accuracy on all 10,000 test images and writes, beside the model,
``tfc_w2a2_torch_pred.npy``: the PyTorch model's predicted class of each test image (uint8).
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from brevitas.core.bit_width import BitWidthImplType
from brevitas.core.quant import QuantType
from brevitas.core.restrict_val import RestrictValueType
from brevitas.core.scaling import ScalingImplType
from brevitas.core.zero_point import ZeroZeroPoint
from brevitas.export import export_qonnx
from brevitas.inject import ExtendedInjector
from brevitas.inject.enum import FloatToIntImplType
from brevitas.nn import QuantIdentity, QuantLinear
from brevitas.quant.solver import ActQuantSolver, WeightQuantSolver
from dependencies import value

from bitsim.datasets import load_mnist


class CommonQuant(ExtendedInjector):
    """bnn_pynq's quantizer: constant scale, zero zero point, round to nearest, narrow signed range."""

    bit_width_impl_type = BitWidthImplType.CONST
    scaling_impl_type = ScalingImplType.CONST
    restrict_scaling_type = RestrictValueType.FP
    zero_point_impl = ZeroZeroPoint
    float_to_int_impl_type = FloatToIntImplType.ROUND
    scaling_per_output_channel = False
    narrow_range = True
    signed = True

    @value
    def quant_type(bit_width):
        if bit_width is None:
            return QuantType.FP
        if bit_width == 1:
            return QuantType.BINARY
        return QuantType.INT


class CommonWeightQuant(CommonQuant, WeightQuantSolver):
    scaling_const = 1.0


class CommonActQuant(CommonQuant, ActQuantSolver):
    min_val = -1.0
    max_val = 1.0


class TFC(torch.nn.Module):
    """784-64-64-64-10 with ``weight_bits`` weights, ``act_bits`` activations, ``in_bits`` input."""

    def __init__(self, weight_bits=2, act_bits=2, in_bits=8, hidden=(64, 64, 64), classes=10):
        super().__init__()
        layers = [QuantIdentity(act_quant=CommonActQuant, bit_width=in_bits)]
        width = 784
        for out in hidden:
            layers += [
                QuantLinear(width, out, bias=False, weight_quant=CommonWeightQuant, weight_bit_width=weight_bits),
                torch.nn.BatchNorm1d(out),
                QuantIdentity(act_quant=CommonActQuant, bit_width=act_bits),
            ]
            width = out
        layers.append(QuantLinear(width, classes, bias=False, weight_quant=CommonWeightQuant,
                                  weight_bit_width=weight_bits))
        self.features = torch.nn.Sequential(*layers)
        for layer in self.features:
            if isinstance(layer, QuantLinear):
                torch.nn.init.uniform_(layer.weight.data, -1, 1)

    def forward(self, pixels):
        x = pixels.reshape(pixels.shape[0], -1) / 255.0 if pixels.ndim > 2 else pixels / 255.0
        x = 2.0 * x - 1.0
        return self.features(x)


def accuracy(model, x, y, batch=1000):
    """Predictions of ``model`` (eval mode) on uint8 images ``x`` and their accuracy against ``y``."""
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(x[i:i + batch].reshape(-1, 784).astype(np.float32))
            preds.append(model(xb).argmax(1).numpy())
    pred = np.concatenate(preds).astype(np.uint8)
    return pred, float((pred == y).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).with_name("tfc_w2a2.onnx")))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=100, help="training batch and the exported batch size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.03, help="Adam's learning rate (halved after each epoch)")
    ap.add_argument("--image-input", action="store_true",
                    help="export with input shape (batch, 1, 28, 28) instead of (batch, 784)")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    data = load_mnist()
    x_train, y_train = data["x_train"], data["y_train"].astype(np.int64)
    x_test, y_test = data["x_test"], data["y_test"]

    model = TFC()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(x_train))
        total = 0.0
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            xb = torch.from_numpy(x_train[idx].reshape(-1, 784).astype(np.float32))
            loss = loss_fn(model(xb), torch.from_numpy(y_train[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            for layer in model.features:
                if isinstance(layer, QuantLinear):
                    layer.weight.data.clamp_(-1, 1)
            total += float(loss.detach()) * len(idx)
        sched.step()
        print(f"epoch {epoch + 1}: training loss {total / len(order):.4f} ({time.perf_counter() - start:.0f} s)")

    pred, acc = accuracy(model, x_test, y_test)
    print(f"PyTorch model: test accuracy {acc:.4f} (test error {1 - acc:.4f}) on {len(y_test):,} images")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    shape = (args.batch, 1, 28, 28) if args.image_input else (args.batch, 784)
    # PyTorch's exporter leaves a ``.data`` file of external weights beside the model it writes;
    # Brevitas then saves the model with its weights inside, so only that file is kept.
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        tmp_model = Path(tmp) / out.name
        export_qonnx(model, torch.zeros(shape), str(tmp_model))
        os.replace(tmp_model, out)
        tmp_pred = Path(tmp) / "pred.npy"
        np.save(tmp_pred, pred)
        os.replace(tmp_pred, out.with_name(out.stem + "_torch_pred.npy"))
    print(f"wrote {out} ({out.stat().st_size:,} bytes) and {out.stem}_torch_pred.npy")


if __name__ == "__main__":
    main()
