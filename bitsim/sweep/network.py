"""The trained networks a sweep can run: a chain of dense layers read from a model file, and their
integer evaluation under one point's formats.

A :class:`Network` holds, per weight layer, its float weights ``(out, in)``, its bias, and what follows it
before the next weight layer (a batch norm at inference, a ReLU). :func:`load_network` reads the models
bitsim trains: ``bitsim train connect`` (``best.json``: the MLP with its latent float weights; layers
``fc1`` .. ``fcN``) and ``bitsim train surgery`` with ``--model lenet300`` (``final.json``, ``reference.json``:
LeNet-300-100 with its masks applied; layers ``ip1``, ``ip2``, ``ip3``). :func:`run_integer` is the
integer model of a point (``docs/sweep.md``, "What a point computes").
"""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..formats.modes import Counts
from ..kernels.accumulate import accumulate_matmul
from ..nn import BatchNorm, ReLU
from .formats import format_of

__all__ = ["KINDS", "Layer", "Network", "load_network", "run_integer", "run_float64"]

KINDS = ("connect", "surgery")


@dataclass
class Layer:
    """One weight layer: ``y = post(x @ weight.T + bias)``; ``post`` is a list of ``('bn', gain, shift)`` (the
    inference batch norm as ``gain * v + shift``, float64) and ``('relu',)`` steps, in order."""

    name: str
    weight: np.ndarray
    bias: np.ndarray
    post: list = field(default_factory=list)

    @property
    def n_in(self):
        return self.weight.shape[1]

    @property
    def n_out(self):
        return self.weight.shape[0]


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
        """uint8 images as float64 input rows: ``pixel / 256`` (exact), flat."""
        x = np.asarray(images)
        return x.reshape(len(x), -1).astype(np.float64) / 256.0

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
    """The batch-norm and ReLU steps after the weight layer at ``start``, up to the next weight layer."""
    steps = []
    for layer in layers[start + 1:]:
        if isinstance(layer, BatchNorm):
            inv = 1.0 / np.sqrt(layer.running_var.astype(np.float64) + layer.eps)
            gain = layer.gamma.value.astype(np.float64) * inv
            shift = layer.beta.value.astype(np.float64) - layer.running_mean.astype(np.float64) * gain
            steps.append(("bn", gain, shift))
        elif isinstance(layer, ReLU):
            steps.append(("relu",))
        elif hasattr(layer, "W"):
            break
        else:
            raise InputError(f"the sweep cannot run a {type(layer).__name__} layer; it runs dense networks "
                             "(the Connect MLP, LeNet-300-100)")
    return steps


def load_network(kind, path):
    """Read a trained model file as a :class:`Network`.

    Parameters
    ----------
    kind : {'connect', 'surgery'}
    path : str or Path
        The model's ``.json`` manifest (``best.json`` of ``bitsim train connect``; ``final.json`` of
        ``bitsim train surgery --model lenet300``).

    Returns
    -------
    Network
    """
    from ..methods import connect, surgery
    from ..nn.connect import ConnectDense
    from ..nn.masked import MaskedDense

    path = Path(path)
    manifest = path if path.suffix == ".json" else path.with_suffix(".json")
    if kind not in KINDS:
        raise InputError(f"unknown model kind {kind!r}; choose one of {list(KINDS)}")
    if kind == "connect":
        model, _ = connect.load_model(manifest)
        variant = "mlp"
    else:
        model, cfg, _ = surgery.load_model(manifest)
        variant = cfg.model
        if variant != "lenet300":
            raise InputError(f"{manifest} is a {variant} model; the sweep runs the dense LeNet-300-100 "
                             "(train it with `bitsim train surgery --model lenet300`)")
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    layers = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, ConnectDense):
            w, b = layer.W.value, None
            name = f"fc{len(layers) + 1}"
        elif isinstance(layer, MaskedDense):
            w, b = layer.weight(), layer.bias()
            name = layer.name
        elif hasattr(layer, "W"):
            raise InputError(f"the sweep cannot run a {type(layer).__name__} layer; it runs dense networks")
        else:
            continue
        w = np.asarray(w, np.float64)
        bias = np.zeros(w.shape[0]) if b is None else np.asarray(b, np.float64)
        layers.append(Layer(name, w, bias, _post_steps(model.layers, i)))
    return Network(kind, layers, digest, model, variant)


def _apply_post(layer, v):
    for step in layer.post:
        if step[0] == "bn":
            v = v * step[1] + step[2]
        else:
            v = np.maximum(v, 0.0)
    return v


def run_float64(network, images):
    """Every layer's float64 input on ``images`` (the extracted layers evaluated in float64), and the scores."""
    x = network.inputs(images)
    seen = []
    for layer in network.layers:
        seen.append(x)
        x = _apply_post(layer, x @ layer.weight.T + layer.bias)
    return seen, x


def run_integer(network, layers, accumulator, calibration, images, batch_size=1000):
    """The integer model of one point on ``images``: predictions and counts.

    Per weight layer: the input is quantized to the layer's activation format (scale fixed by the
    calibration inputs of that layer), the weights to its weight format; the codes are multiplied by
    :func:`bitsim.kernels.accumulate.accumulate_matmul` through the point's accumulator; then
    ``acc * (scale_x * scale_w) + bias`` and the batch norm and ReLU follow in float64.

    Parameters
    ----------
    network : Network
    layers : dict
        Layer name -> ``{'weight': choice, 'activation': choice}`` (canonical format choices).
    accumulator : dict
        ``{'bits': int, 'edge': 'wrap' | 'saturate'}``.
    calibration : list of numpy.ndarray
        Each layer's float64 inputs on the calibration images (:func:`run_float64`).
    images : numpy.ndarray of uint8

    Returns
    -------
    predictions : numpy.ndarray
    counts : dict
        ``accumulator`` events (wraps or saturations), quantizer ``saturated`` values and ``underflows``
        (nonzero values that became 0).
    """
    weights, quant = [], Counts()
    for layer in network.layers:
        choice = layers[layer.name]["weight"]
        q = format_of(choice["format"]).quantizer(choice, layer.weight)
        weights.append((q.codes(layer.weight, quant), q.scale))
    act_quantizers = []
    for layer, ref in zip(network.layers, calibration):
        choice = layers[layer.name]["activation"]
        act_quantizers.append(format_of(choice["format"]).quantizer(choice, ref))
    acc_counts = Counts()
    predictions = []
    for start in range(0, len(images), batch_size):
        x = network.inputs(images[start:start + batch_size])
        for layer, (w_codes, w_scale), aq in zip(network.layers, weights, act_quantizers):
            codes = aq.codes(x, quant)
            acc = accumulate_matmul(codes, w_codes, accumulator["bits"], accumulator["edge"], acc_counts)
            x = _apply_post(layer, acc.astype(np.float64) * (aq.scale * w_scale) + layer.bias)
        predictions.append(x.argmax(1))
    counts = {"accumulator": acc_counts.wrapped + acc_counts.saturated, "saturated": quant.saturated,
              "underflows": quant.flushed}
    return np.concatenate(predictions), counts
