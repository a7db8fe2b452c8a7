"""A small, explicit training engine: layers with forward and backward side by side, no autograd.

Layers (NHWC images, float32 by default, float64 on request), binary layers with latent weights,
losses, optimizers with learning-rate schedules, and a :class:`Sequential` model. All randomness
comes from explicit bitsim generators (:mod:`bitsim.formats.rng`), so the same seeds give the same
bits on every run.

Example
-------
>>> from bitsim.formats.rng import make_rng
>>> from bitsim import nn
>>> init = make_rng("philox", 1)
>>> model = nn.Sequential([
...     nn.Flatten(),
...     nn.BinaryDense(784, 64, init_rng=init), nn.BatchNorm(64), nn.Sign(),
...     nn.BinaryDense(64, 10, init_rng=init), nn.BatchNorm(10),
... ])
>>> opt = nn.Adam(model.params(), lr=nn.ExponentialDecay(3e-3, 3e-4, n_steps=10))
"""

from .binarized import BinaryConv2d, BinaryDense
from .conv import Conv2d, MaxPool2d
from .init import glorot_lr_scale, glorot_uniform, uniform
from .layers import BatchNorm, Dense, Dropout, Flatten, HardTanh, Layer, Param, ReLU, Sign, ap2
from .losses import SoftmaxCrossEntropy, SquaredHinge, accuracy
from .model import Sequential, batch_order, batches
from .optim import SGD, AdaMax, Adam, Constant, ExponentialDecay, Optimizer, ShiftAdaMax, StepDecay

__all__ = [
    "Param", "Layer", "Dense", "Conv2d", "MaxPool2d", "Flatten", "BatchNorm", "Dropout", "ReLU", "HardTanh",
    "Sign", "BinaryDense", "BinaryConv2d", "ap2", "SoftmaxCrossEntropy", "SquaredHinge", "accuracy",
    "Optimizer", "SGD", "Adam", "AdaMax", "ShiftAdaMax", "Constant", "ExponentialDecay", "StepDecay",
    "Sequential", "batches", "batch_order", "uniform", "glorot_uniform", "glorot_lr_scale",
]
