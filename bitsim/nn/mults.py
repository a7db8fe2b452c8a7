"""The real multiplications of one training step, layer by layer, beside a standard float network.

The rule (:func:`count_multiplications`): a product or quotient of two floating-point operands counts
unless one of them is ``±2**k`` (``±1`` included) by construction; sign flips, exponent shifts and
selections by 0/1 masks are not multiplications; square roots are listed apart. The counts follow the
arithmetic bitsim performs (``docs/formats.md``, section 10).
"""

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputTypeError
from .binarized import BinaryConv2d, BinaryDense
from .connect import Connect
from .conv import Conv2d, ConvLayer, MaxPool2d
from .layers import BatchNorm, Dense, Dropout, Flatten, HardTanh, ReLU, Sign
from .losses import SoftmaxCrossEntropy, SquaredHinge
from .optim import SGD, AdaMax, Adam, ShiftAdaMax

__all__ = ["Mults", "layer_mults", "loss_mults", "count_multiplications"]


def _pow2(c):
    """True when the constant ``c`` is ``±2**k`` (a product by it is an exponent shift, not a multiplication)."""
    c = abs(float(c))
    return c > 0 and math.frexp(c)[0] == 0.5


@dataclass
class Mults:
    """Real multiplications (products and quotients of two arbitrary reals) and square roots."""

    mul: int = 0
    div: int = 0
    sqrt: int = 0

    def __add__(self, other):
        return Mults(self.mul + other.mul, self.div + other.div, self.sqrt + other.sqrt)

    @property
    def total(self):
        """Multiplications plus divisions (square roots are listed apart)."""
        return self.mul + self.div


def _prod(shape):
    return int(np.prod(shape, dtype=np.int64))


def _matmul_dims(layer, shape, batch):
    """(M, K, N) of the layer's matrix product for one batch, and the output shape of one example."""
    out = layer.output_shape(shape)
    if isinstance(layer, ConvLayer):  # convolution by im2col
        kh, kw = layer.kernel
        return batch * out[0] * out[1], kh * kw * layer.c_in, layer.c_out, out
    return batch, layer.n_in, layer.n_out, out


def _optimizer_mults(optimizer, size):
    """Per-step multiplications of the element-wise update of ``size`` parameter values (scalars not counted)."""
    if optimizer is None:
        return Mults()
    if isinstance(optimizer, Adam):  # b1*m + (1-b1)*g; b2*v + ((1-b2)*g)*g; lr*(m/c1) / (sqrt(v/c2) + eps)
        return Mults(6 * size, 3 * size, size)
    if isinstance(optimizer, ShiftAdaMax):  # b1*m + (1-b1)*g; b2*u; the step and divisor are powers of two
        return Mults(3 * size)
    if isinstance(optimizer, AdaMax):  # b1*m + (1-b1)*g; b2*u; step*m / (u + eps)
        return Mults(4 * size, size)
    if isinstance(optimizer, SGD):  # lr*g; momentum: momentum*v, and nesterov g + momentum*v
        return Mults(size * (1 + (optimizer.momentum != 0) + bool(optimizer.nesterov)))
    raise InputTypeError(f"no multiplication count for optimizer {type(optimizer).__name__}")


def layer_mults(layer, shape, batch, float_equivalent=False):
    """Real multiplications of one training step of ``layer`` (forward, backward) for a batch.

    Parameters
    ----------
    layer : Layer
    shape : tuple of int
        Input shape of one example.
    batch : int
    float_equivalent : bool
        Count the standard float layer instead (a Connect layer counted as a float
        :class:`~bitsim.nn.layers.Dense` / :class:`~bitsim.nn.conv.Conv2d`).

    Returns
    -------
    forward, backward : Mults
    out_shape : tuple of int
    """
    size = batch * _prod(shape)
    if isinstance(layer, (Connect, Dense, Conv2d, BinaryDense, BinaryConv2d)):
        m, k, n, out = _matmul_dims(layer, shape, batch)
        mkn = m * k * n
        dx = getattr(layer, "input_grad", True)
        if isinstance(layer, Connect) and not float_equivalent:
            # sign-add forward; QBP: shifts and sign-add backward; without QBP dW = g^T x in float
            return Mults(), Mults(0 if layer.qbp is not None else mkn), out
        if isinstance(layer, (BinaryDense, BinaryConv2d)) and not float_equivalent:
            return Mults(), Mults(mkn), out  # ±1 weights: only dW = g^T x multiplies
        return Mults(mkn), Mults(mkn * (2 if dx else 1)), out
    if isinstance(layer, BatchNorm):
        if layer.shift:
            raise InputTypeError("no multiplication count for shift-based batch norm; use BatchNorm(shift=False)")
        c = layer.n_features
        div_m = 0 if _pow2(size // c) else 1  # means: a division by the m values per feature
        running = 2 * c * ((not _pow2(1 - layer.momentum)) + (not _pow2(layer.momentum)))
        # forward: c*c, c*scale, gain*xhat; running averages; mean and var / m, 1/sqrt(var + eps)
        fwd = Mults(3 * size + running, 2 * c * div_m + c, c)
        # backward: grad*xhat, grad*gain, dxhat*scale, dxhat*c, dvar*(ac + c); inv**3 as two products
        # and the sum times it (-0.5 is a shift); / m of every value and the mean of dc
        bwd = Mults(5 * size + 3 * c, div_m * (size + c))
        return fwd, bwd, tuple(shape)
    if isinstance(layer, Dropout):
        scale = 0 if (layer.p == 0 or _pow2(1 - layer.p)) else size
        return Mults(0, scale), Mults(scale), tuple(shape)
    if isinstance(layer, (ReLU, HardTanh, Sign, Flatten, MaxPool2d)):
        return Mults(), Mults(), layer.output_shape(tuple(shape))
    raise InputTypeError(f"no multiplication count for layer {type(layer).__name__}")


def loss_mults(loss, batch, classes):
    """Real multiplications of a loss and its gradient for a batch of scores."""
    size = batch * classes
    if isinstance(loss, SquaredHinge):  # margin**2; sum / count; grad (-2 t) * margin / count
        count = batch if loss.mean == "batch" else size
        return Mults(size, (1 + size) * (not _pow2(count)))
    if isinstance(loss, SoftmaxCrossEntropy):  # exp, log and the grad / N
        return Mults(0, size * (not _pow2(batch)))
    raise InputTypeError(f"no multiplication count for loss {type(loss).__name__}")


def count_multiplications(model, input_shape, batch, loss=None, optimizer=None):
    """Per layer, the real multiplications of one training step, beside a standard float network.

    The rule: a product or quotient of two floating-point operands counts unless one of them is
    ``±2**k`` (``±1`` included) by construction: sign flips and exponent shifts are not
    multiplications; selections by 0/1 masks are not either. Square roots are listed apart. The
    counts follow the arithmetic bitsim performs (``docs/formats.md``, section 10); the standard
    float network is the same model with float layers in place of the Connect layers (its forward
    product, ``dW = g^T x`` and ``dx = g W``, the latter skipped where the layer computes no input
    gradient), the same batch norms, loss and optimizer.

    Parameters
    ----------
    model : Sequential
    input_shape : tuple of int
        One example's shape.
    batch : int
    loss : SquaredHinge or SoftmaxCrossEntropy, optional
    optimizer : Optimizer, optional
        Adam, AdaMax, ShiftAdaMax or SGD; the element-wise update of every parameter counts.

    Returns
    -------
    list of dict
        ``layer``, ``forward``, ``backward``, ``update`` (:class:`Mults`) and the same keys prefixed
        with ``float_`` for the standard float network; the loss as a last row.
    """
    rows, shape = [], tuple(input_shape)
    for i, layer in enumerate(model.layers):
        fwd, bwd, out = layer_mults(layer, shape, batch)
        ffwd, fbwd, _ = layer_mults(layer, shape, batch, float_equivalent=True)
        upd = Mults()
        for p in layer.params():
            upd = upd + _optimizer_mults(optimizer, p.value.size)
        rows.append({"layer": f"{i} {type(layer).__name__} {shape}->{out}", "forward": fwd, "backward": bwd,
                     "update": upd, "float_forward": ffwd, "float_backward": fbwd, "float_update": upd})
        shape = out
    if loss is not None:
        lm = loss_mults(loss, batch, _prod(shape))
        rows.append({"layer": f"loss {type(loss).__name__}", "forward": lm, "backward": Mults(), "update": Mults(),
                     "float_forward": lm, "float_backward": Mults(), "float_update": Mults()})
    return rows
