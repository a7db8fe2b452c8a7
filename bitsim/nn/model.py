"""Sequential models, batch iteration, training and evaluation loops."""

import numpy as np

from bitsim.formats.rng import as_rng
from bitsim.io import load_bundle, save_bundle

from ..errors import InputError
from .blas import one_blas_thread
from .layers import BatchNorm


def batch_order(n, rng=None):
    """The order in which to visit ``n`` examples: ``arange(n)``, or a shuffle drawn from ``rng``.

    Shuffle rule: draw one uint32 per example from the bitsim generator ``rng``
    (:mod:`bitsim.formats.rng`; an int means Philox with that key) and sort the examples by their draw,
    ties by index (a stable sort). It does not depend on NumPy's ``Generator`` algorithms, so it gives
    the same order with every NumPy version, and with the ``xorshift32`` generator it is easy to
    reproduce elsewhere.
    """
    n = int(n)
    if rng is None:
        return np.arange(n)
    return np.argsort(as_rng(rng).uint32(n), kind="stable")


def batches(x, y, batch_size, rng=None, drop_last=False):
    """Yield ``(x_batch, y_batch)`` pairs of consecutive examples in :func:`batch_order`.

    Parameters
    ----------
    x, y : numpy.ndarray
        Indexed along the first axis.
    batch_size : int
    rng : bitsim generator, int or None
        Shuffles once per call (one epoch); None keeps the order.
    drop_last : bool
        Skip the last batch when it is smaller than ``batch_size``.
    """
    if len(x) != len(y):
        raise InputError(f"x and y differ in length: {len(x)} and {len(y)}")
    batch_size = int(batch_size)
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    order = batch_order(len(x), rng)
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        yield x[idx], y[idx]


class Sequential:
    """A chain of layers: ``forward`` runs them in order, ``backward`` in reverse.

    Parameters
    ----------
    layers : list of Layer

    Notes
    -----
    ``state()`` keys are ``'{index}.{name}'``, e.g. ``'0.W'``, ``'1.gamma'``, ``'1.running_mean'``; the
    values are plain arrays; :meth:`save` and :meth:`load` store them without pickle.
    Generator positions (dropout, stochastic binarization) are not part of the state.
    """

    def __init__(self, layers):
        self.layers = list(layers)

    def forward(self, x, training=True):
        """Run every layer's forward; ``training=False`` for inference."""
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, grad):
        """Back-propagate ``grad`` (w.r.t. the output), filling every ``.grad``; return the input gradient.

        A layer built with ``input_grad=False`` returns None, and so does this method; the layers
        before it must then have no parameters (only a first layer may skip its input gradient).
        """
        for i in range(len(self.layers) - 1, -1, -1):
            grad = self.layers[i].backward(grad)
            if grad is None:
                learning = [layer for layer in self.layers[:i] if layer.params()]
                if learning:
                    raise InputError(f"{self.layers[i]} computes no input gradient, but {learning[0]} before it has "
                                     f"parameters to train; build it with input_grad=True")
                return None
        return grad

    @one_blas_thread
    def calibrate(self, x, batch_size=1000):
        """Set every batch norm's running statistics to the exact statistics of its inputs over ``x``.

        The layers run in inference mode (no dropout, the inference weights of stochastic layers,
        batch norms before each one already calibrated), one layer at a time over all of ``x`` in
        chunks of ``batch_size``; each :class:`BatchNorm` then takes the mean and variance of all its
        inputs (:meth:`BatchNorm.set_population`). Running averages of batch statistics, as training
        keeps them (momentum 0.1), mostly reflect the last ten or so batches and weights from several
        steps back; these statistics belong to the final weights and the whole set ("precise batch
        norm"). No parameter or other saved state changes. The same ``x`` and ``batch_size`` give
        the same bits (NumPy's BLAS runs on one thread here).

        Parameters
        ----------
        x : numpy.ndarray
            Inputs, as :meth:`forward` takes them (e.g. training examples).
        batch_size : int
        """
        if len(x) == 0:
            raise InputError("calibrate needs at least one example")
        batch_size = int(batch_size)
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        chunks = [x[i:i + batch_size] for i in range(0, len(x), batch_size)]
        last = max((i for i, layer in enumerate(self.layers) if isinstance(layer, BatchNorm)), default=-1)
        for layer in self.layers[:last + 1]:
            if isinstance(layer, BatchNorm):
                layer.set_population(chunks)
            chunks = [layer.forward(c, training=False) for c in chunks]

    def params(self):
        """All parameters, in layer order."""
        return [p for layer in self.layers for p in layer.params()]

    def state(self):
        """A flat dict ``'{index}.{name}' -> array`` of copies of every layer's state."""
        return {f"{i}.{key}": value for i, layer in enumerate(self.layers) for key, value in layer.state().items()}

    def load_state(self, state):
        """Load a dict like :meth:`state`'s (e.g. an ``np.load`` result); raise on missing or extra keys."""
        per_layer = [dict() for _ in self.layers]
        for key in state:
            index, _, name = key.partition(".")
            if not index.isdigit() or int(index) >= len(self.layers) or not name:
                raise InputError(f"state key {key!r} does not name a layer of this {len(self.layers)}-layer model")
            per_layer[int(index)][name] = np.asarray(state[key])
        for i, (layer, part) in enumerate(zip(self.layers, per_layer)):
            try:
                layer.load_state(part)
            except ValueError as err:
                raise InputError(f"layer {i}: {err}") from None

    def save(self, path, meta=None):
        """Write :meth:`state` as ``path.npz`` + ``path.json`` (no pickle, atomic, with checksums).

        ``meta`` is stored in the JSON manifest (e.g. the architecture and training options).
        """
        return save_bundle(path, self.state(), "bitsim.nn.Sequential", meta)

    def load(self, path):
        """Read a model saved by :meth:`save` into this model (same architecture); return its ``meta``."""
        state, meta = load_bundle(path, "bitsim.nn.Sequential")
        self.load_state(state)
        return meta

    def summary(self, input_shape):
        """Per-layer rows for an input example of ``input_shape`` (without the batch axis).

        Returns
        -------
        list of dict
            ``name``, ``output_shape`` (per example), ``params`` (number of trainable values),
            ``bits`` (storage bits per weight: 1 for binary layers, 32 for float32 ones, None without
            weights) and ``storage_bits`` (the weights at ``bits`` each plus any other parameters,
            such as biases and batch-norm scales, at their float width).
        """
        rows, shape = [], tuple(input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
            params = layer.params()
            storage = 0
            for p in params:
                bits = layer.weight_bits if p.name == "W" else 8 * p.value.dtype.itemsize
                storage += p.value.size * bits
            rows.append({
                "name": type(layer).__name__,
                "output_shape": shape,
                "params": sum(p.value.size for p in params),
                "bits": layer.weight_bits,
                "storage_bits": storage,
            })
        return rows

    def train_step(self, x, y, loss, optimizer):
        """One step on a batch: forward (training), loss, backward, ``optimizer.step()``.

        Returns
        -------
        (float, float)
            The batch loss and accuracy, both before the update.
        """
        scores = self.forward(x, training=True)
        value, grad = loss(scores, y)
        self.backward(grad)
        optimizer.step()
        return value, loss.accuracy(scores, y)

    def predict(self, x, batch_size=1000):
        """Inference outputs for ``x``, computed ``batch_size`` examples at a time."""
        outs = [self.forward(x[i:i + batch_size], training=False) for i in range(0, len(x), int(batch_size))]
        return np.concatenate(outs)

    def evaluate(self, x, y, loss, batch_size=1000):
        """Inference loss and accuracy over the whole set, in batches.

        The loss is the mean of the per-batch losses weighted by batch size, i.e. the loss of the
        whole set for losses that are batch means.

        Returns
        -------
        (float, float)
        """
        total, correct, n = 0.0, 0, len(x)
        for xb, yb in batches(x, y, batch_size):
            scores = self.forward(xb, training=False)
            total += loss(scores, yb)[0] * len(xb)
            correct += int(np.sum(scores.argmax(axis=1) == yb))
        return total / n, correct / n

    def fit(self, x, y, loss, optimizer, epochs, batch_size, rng=None, validation=None):
        """Train for ``epochs`` passes over ``(x, y)``, shuffled each epoch by :func:`batches` with ``rng``.

        Parameters
        ----------
        validation : (x_val, y_val), optional
            Evaluated after every epoch.

        Returns
        -------
        list of dict
            One row per epoch: ``epoch``, ``loss`` and ``accuracy`` (means over the epoch's batches,
            weighted by batch size, measured before each update) and, with ``validation``,
            ``val_loss`` and ``val_accuracy``.
        """
        rng = None if rng is None else as_rng(rng)
        history = []
        for epoch in range(int(epochs)):
            total, correct, n = 0.0, 0.0, 0
            for xb, yb in batches(x, y, batch_size, rng):
                value, acc = self.train_step(xb, yb, loss, optimizer)
                total, correct, n = total + value * len(xb), correct + acc * len(xb), n + len(xb)
            row = {"epoch": epoch + 1, "loss": total / n, "accuracy": correct / n}
            if validation is not None:
                row["val_loss"], row["val_accuracy"] = self.evaluate(*validation, loss)
            history.append(row)
        return history

    def __repr__(self):
        lines = [f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)"
