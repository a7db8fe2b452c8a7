"""The trained networks a sweep can run: a chain of dense layers read from a model file, and their
integer evaluation under one point's formats.

A :class:`Network` holds, per weight layer, its float weights ``(out, in)`` (a convolution's as
``(c_out, KH * KW * c_in)``, the columns of :func:`bitsim.nn.conv.im2col`), its bias, and what follows it
before the next weight layer (a batch norm at inference, a ReLU, a max pool, a flatten). :func:`load_network`
reads the models bitsim trains: ``bitsim train connect`` (``best.json``: the MLP with its latent float
weights; layers ``fc1`` .. ``fcN``) and ``bitsim train surgery`` (``final.json``, ``reference.json``, with
their masks applied: LeNet-300-100, layers ``ip1``, ``ip2``, ``ip3``; LeNet-5, layers ``conv1``, ``conv2``,
``ip1``, ``ip2``). :func:`run_integer` is the integer model of a point (``docs/sweep.md``, "What a point
computes").
"""

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..formats.modes import Counts
from ..formats.mx import MXTensor
from ..kernels.accumulate import accumulate_matmul
from ..kernels.mx import gemm
from ..nn import BatchNorm, Flatten, MaxPool2d, ReLU
from ..nn.conv import im2col
from .formats import format_of
from .spec import MODEL_KINDS

__all__ = ["KINDS", "MODELS", "Layer", "Network", "load_network", "run_integer", "integer_scores", "run_float64",
           "batch_size_of"]

KINDS = ("connect", "surgery")  # the trained bitsim models read as dense layers (QONNX graphs: .qonnx_net)
MODELS = ", ".join(MODEL_KINDS[k] for k in KINDS)


@dataclass
class Layer:
    """One weight layer: ``y = post(x @ weight.T + bias)``, or for a convolution ``post(im2col(x) @ weight.T +
    bias)`` reshaped to NHWC; ``post`` is a list of ``('bn', gain, shift)`` (the inference batch norm as
    ``gain * v + shift``, float64), ``('relu',)``, ``('pool', (KH, KW))`` (a max pool with stride = kernel)
    and ``('flatten',)`` steps, in order. ``conv``: None for a dense layer, else ``{'in_shape': (H, W, C),
    'kernel', 'stride', 'padding', 'out_hw'}``."""

    name: str
    weight: np.ndarray
    bias: np.ndarray
    post: list = field(default_factory=list)
    conv: dict = None

    @property
    def inputs(self):
        """Values of one image's input to the layer."""
        return math.prod(self.conv["in_shape"]) if self.conv else self.weight.shape[1]

    @property
    def outputs(self):
        """Values of one image's output of the layer (before its post steps)."""
        return self.weight.shape[0] * (math.prod(self.conv["out_hw"]) if self.conv else 1)

    @property
    def products(self):
        """Products of weights and inputs per image."""
        return self.outputs * self.weight.shape[1]

    def matmul_input(self, x):
        """The rows the weights multiply: ``x`` itself, or a convolution's patches of NHWC ``x``."""
        if self.conv is None:
            return x
        cols, _ = im2col(x, self.conv["kernel"], self.conv["stride"], self.conv["padding"])
        return cols

    def shaped(self, y, n):
        """The product ``y`` (rows, out) as the layer's output for ``n`` images (NHWC for a convolution)."""
        return y if self.conv is None else y.reshape((n, *self.conv["out_hw"], self.weight.shape[0]))


@dataclass
class Network:
    """A trained model as dense layers, with its float predictions computed by the model itself.

    Attributes
    ----------
    kind : str
    layers : list of Layer
    sha256 : str
        Of the model's JSON manifest (which holds the checksums of its arrays).
    model : object
        The trained :class:`bitsim.nn.Sequential`, for :meth:`predict_float`.
    """

    kind: str
    layers: list
    sha256: str
    model: object = None
    variant: str = ""

    @property
    def names(self):
        return [layer.name for layer in self.layers]

    def inputs(self, images):
        """uint8 images as float64 inputs: ``pixel / 256`` (exact), flat (NHWC for a first convolution)."""
        x = np.asarray(images)
        first = self.layers[0].conv
        shape = (len(x), *first["in_shape"]) if first else (len(x), -1)
        return x.reshape(shape).astype(np.float64) / 256.0

    def predict_float(self, images, batch_size=1000):
        """The trained float model's own predictions (its ``forward`` at inference; Connect: latent weights)."""
        from ..methods import connect, surgery

        out = []
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size]
            if self.kind == "connect":
                layers = connect.connect_layers(self.model)
                saved = [layer.inference for layer in layers]
                for layer in layers:
                    layer.inference = "latent"
                try:
                    scores = self.model.forward(connect.inputs(x), training=False)
                finally:
                    for layer, mode in zip(layers, saved):
                        layer.inference = mode
            else:
                scores = self.model.forward(surgery.inputs(self.variant, x), training=False)
            out.append(np.asarray(scores).argmax(1))
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def __getstate__(self):  # workers need the layers, not the trained model object
        return {**self.__dict__, "model": None}


def _post_steps(layers, start):
    """The batch-norm, ReLU, max-pool and flatten steps after the weight layer at ``start``, up to the next
    weight layer."""
    steps = []
    for layer in layers[start + 1:]:
        if isinstance(layer, BatchNorm):
            inv = 1.0 / np.sqrt(layer.running_var.astype(np.float64) + layer.eps)
            gain = layer.gamma.value.astype(np.float64) * inv
            shift = layer.beta.value.astype(np.float64) - layer.running_mean.astype(np.float64) * gain
            steps.append(("bn", gain, shift))
        elif isinstance(layer, ReLU):
            steps.append(("relu",))
        elif isinstance(layer, MaxPool2d) and layer.kernel == layer.stride:
            steps.append(("pool", layer.kernel))
        elif isinstance(layer, Flatten):
            steps.append(("flatten",))
        elif hasattr(layer, "W"):
            break
        else:
            raise InputError(f"the sweep cannot run a {type(layer).__name__} layer; it runs {MODELS}")
    return steps


def load_network(kind, path):
    """Read a trained model file as a :class:`Network`.

    Parameters
    ----------
    kind : {'connect', 'surgery'}
    path : str or Path
        The model's ``.json`` manifest (``best.json`` of ``bitsim train connect``; ``final.json`` of
        ``bitsim train surgery``, LeNet-300-100 or LeNet-5).

    Returns
    -------
    Network
    """
    from ..methods import connect, surgery
    from ..nn.connect import ConnectDense
    from ..nn.masked import MaskedConv2d, MaskedDense

    path = Path(path)
    manifest = path if path.suffix == ".json" else path.with_suffix(".json")
    if kind not in KINDS:
        raise InputError(f"unknown model kind {kind!r}; choose one of {list(KINDS)} ({MODELS})")
    if kind == "connect":
        model, _ = connect.load_model(manifest)
        variant, shape = "mlp", (784,)
    else:
        model, cfg, _ = surgery.load_model(manifest)
        variant = cfg.model
        shape = (784,) if variant == "lenet300" else (28, 28, 1)
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    layers = []
    for i, layer in enumerate(model.layers):
        conv = None
        if isinstance(layer, ConnectDense):
            w, b = layer.W.value, None
            name = f"fc{len(layers) + 1}"
        elif isinstance(layer, MaskedDense):
            w, b = layer.weight(), layer.bias()
            name = layer.name
        elif isinstance(layer, MaskedConv2d):
            w, b = layer.weight().reshape(layer.c_out, -1), layer.bias() if layer.b is not None else None
            name = layer.name
            conv = {"in_shape": tuple(shape), "kernel": layer.kernel, "stride": layer.stride,
                    "padding": layer.padding, "out_hw": layer.output_shape(shape)[:2]}
        elif hasattr(layer, "W"):
            raise InputError(f"the sweep cannot run a {type(layer).__name__} layer; it runs {MODELS}")
        else:
            shape = layer.output_shape(shape)
            continue
        shape = layer.output_shape(shape)
        w = np.asarray(w, np.float64)
        bias = np.zeros(w.shape[0]) if b is None else np.asarray(b, np.float64)
        layers.append(Layer(name, w, bias, _post_steps(model.layers, i), conv))
    return Network(kind, layers, digest, model, variant)


def _apply_post(layer, v):
    for step in layer.post:
        if step[0] == "bn":
            v = v * step[1] + step[2]
        elif step[0] == "relu":
            v = np.maximum(v, 0.0)
        elif step[0] == "flatten":
            v = v.reshape(v.shape[0], math.prod(v.shape[1:]))
        else:  # non-overlapping max pool, partial windows dropped
            (kh, kw), (n, h, w, c) = step[1], v.shape
            oh, ow = h // kh, w // kw
            v = v[:, :oh * kh, :ow * kw].reshape(n, oh, kh, ow, kw, c).max(axis=(2, 4))
    return v


PATCH_VALUES = 1 << 23  # values of a batch's largest matrix of patches (a convolution's im2col), 64 MB of int64


def batch_size_of(network, limit=1000):
    """Images per batch: at most ``limit``, fewer when a convolution's patches would exceed PATCH_VALUES."""
    per_image = max(layer.products // layer.weight.shape[0] for layer in network.layers)
    return max(1, min(limit, PATCH_VALUES // per_image))


def run_float64(network, images):
    """Every layer's float64 input on ``images`` (the extracted layers evaluated in float64), and the scores."""
    seen, scores = [[] for _ in network.layers], []
    step = batch_size_of(network)
    for start in range(0, max(len(images), 1), step):
        x = network.inputs(images[start:start + step])
        for i, layer in enumerate(network.layers):
            seen[i].append(x)
            x = _apply_post(layer, layer.shaped(layer.matmul_input(x) @ layer.weight.T + layer.bias, len(x)))
        scores.append(x)
    return [np.concatenate(s) for s in seen], np.concatenate(scores)


def run_integer(network, layers, accumulator, calibration, images, batch_size=1000):
    """The integer model of one point on ``images``: predictions and counts (:func:`integer_scores`)."""
    scores, counts = integer_scores(network, layers, accumulator, calibration, images, batch_size)
    return scores.argmax(1), counts


def _mx_operands(network, layers, quant):
    """Per layer: the weights as an MX tensor ``(in, out)`` blocked along axis 0, or None for other formats."""
    out = []
    for layer in network.layers:
        choice = layers[layer.name]["weight"]
        entry = format_of(choice["format"])
        if entry.blocked:
            t = entry.tensor(choice, layer.weight, quant)
            out.append(MXTensor(np.ascontiguousarray(t.codes.T), np.ascontiguousarray(t.scales.T), t.fmt, 0))
        else:
            out.append(None)
    return out


def integer_scores(network, layers, accumulator, calibration, images, batch_size=1000):
    """The integer model of one point on ``images``: the scores and counts.

    Per weight layer: the input is quantized to the layer's activation format (scale fixed by the
    calibration inputs of that layer), the weights to its weight format; the codes (a convolution: the
    patches of the input codes) are multiplied by :func:`bitsim.kernels.accumulate.accumulate_matmul`
    through the point's accumulator; then ``acc * (scale_x * scale_w) + bias`` and the post steps follow in
    float64. A layer in MX formats: weights and inputs quantized by :func:`bitsim.formats.mx.quantize` in
    blocks along the input axis, multiplied by :func:`bitsim.kernels.mx.gemm` under the point's
    ``accumulator['mx']`` rule (float32 results), then ``+ bias`` and the post steps.

    Parameters
    ----------
    network : Network
    layers : dict
        Layer name -> ``{'weight': choice, 'activation': choice}`` (canonical format choices).
    accumulator : dict
        ``{'bits': int, 'edge': 'wrap' | 'saturate'}`` (absent when every layer is MX), and ``'mx'``: the
        MX accumulation rule when a layer is MX.
    calibration : list of numpy.ndarray
        Each layer's float64 inputs on the calibration images (:func:`run_float64`).
    images : numpy.ndarray of uint8
    batch_size : int
        Images per batch, at most (fewer for a convolution's large patches: :func:`batch_size_of`).

    Returns
    -------
    scores : numpy.ndarray of float64, (images, classes)
    counts : dict
        ``accumulator`` events (wraps or saturations), quantizer ``saturated`` values and ``underflows``
        (nonzero values that became 0).
    """
    quant = Counts()
    blocked = _mx_operands(network, layers, quant)
    weights, act_quantizers = [], []
    for layer, ref, mx_weight in zip(network.layers, calibration, blocked):
        if mx_weight is not None:
            weights.append(None)
            act_quantizers.append(None)
            continue
        choice = layers[layer.name]["weight"]
        q = format_of(choice["format"]).quantizer(choice, layer.weight)
        weights.append((q.codes(layer.weight, quant), q.scale))
        choice = layers[layer.name]["activation"]
        act_quantizers.append(format_of(choice["format"]).quantizer(choice, ref))
    acc_counts = Counts()
    scores = []
    batch_size = batch_size_of(network, batch_size)
    for start in range(0, len(images), batch_size):
        x = network.inputs(images[start:start + batch_size])
        for layer, weight, aq, mx_weight in zip(network.layers, weights, act_quantizers, blocked):
            if mx_weight is not None:
                choice = layers[layer.name]["activation"]
                xt = format_of(choice["format"]).tensor(choice, x, quant)
                y = gemm(xt, mx_weight, accumulator["mx"]).astype(np.float64) + layer.bias
            else:
                codes = layer.matmul_input(aq.codes(x, quant))
                acc = accumulate_matmul(codes, weight[0], accumulator["bits"], accumulator["edge"], acc_counts)
                y = acc.astype(np.float64) * (aq.scale * weight[1]) + layer.bias
            x = _apply_post(layer, layer.shaped(y, len(x)))
        scores.append(x)
    counts = {"accumulator": acc_counts.wrapped + acc_counts.saturated, "saturated": quant.saturated,
              "underflows": quant.flushed}
    return np.concatenate(scores) if scores else np.zeros((0, network.layers[-1].weight.shape[0])), counts
