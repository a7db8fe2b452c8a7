"""Deterministic BinaryConnect / TernaryConnect inference with static fixed-point activations.

A Connect layer of :mod:`bitsim.nn.connect` holds its input in *dynamic* fixed point: the fractional
bits ``f`` follow the largest magnitude of the batch (:func:`bitsim.formats.dynamic_fixed.dynamic_fixed`).
A hardware datapath, and a QONNX graph, has one format per tensor. This module fixes ``f`` once per
Connect layer and runs the network with it; :mod:`bitsim.interop.qonnx_export` writes the same
computation as a QONNX graph, and qonnx's executor gives these outputs bit for bit.

The rule (``docs/qonnx.md``, "Export"):

* ``f`` of layer ``l`` is ``frac_bits_for(max |x_l|, act_bits)`` with the maximum over the
  calibration images, ``x_l`` computed by this static network itself (layer 0 reads ``pixel / 256``,
  so its ``f`` is 15 for 16-bit activations whenever an image has a pixel of 128 or more);
* ``codes = round_half_even(x * 2**f)`` saturated to ``act_bits`` signed bits (as ``dynamic_fixed``
  with ``frac_bits=f``); ``sums = codes @ W_q.T`` exact (the deterministic weights: binary
  ``+1 iff W >= 0``; ternary ``+1 if W > 0.5``, ``-1 if W < -0.5``, else 0);
  ``y = float32(sums) * 2**-f``; then the batch norm and ReLU layers as bitsim runs them.

Where every batch of an evaluation picks the same ``f`` per layer as the calibration did (no batch's
largest activation lies in another binade), these outputs equal bitsim's own deterministic evaluation
bit for bit; :func:`dynamic_frac_bits` gives the ``f`` a batch picks, to check.
"""

import numpy as np

from ..errors import InputError
from ..formats.dynamic_fixed import dynamic_fixed, frac_bits_for, max_magnitude, to_float32
from ..kernels.sampling import sample_weights
from ..nn import layers as L
from ..nn.connect import ConnectDense


def connect_blocks(model):
    """The blocks ``(connect, batch_norm, relu or None)`` of a Connect MLP, checked.

    The network must be ``[ConnectDense, BatchNorm, ReLU] * k, ConnectDense, BatchNorm`` as
    :func:`bitsim.methods.connect.build_model` builds it, with binary or ternary weights and no bias.

    Raises
    ------
    InputError
        Any other form, naming the layer.
    """
    layers = list(model.layers)
    blocks, i = [], 0
    while i < len(layers):
        layer = layers[i]
        if not isinstance(layer, ConnectDense):
            raise InputError(f"layer {i} ({type(layer).__name__}): a Connect network is blocks of ConnectDense, "
                             "BatchNorm and ReLU ending in ConnectDense, BatchNorm (bitsim train connect); "
                             "float baselines (--weights float) have no low-bit form to export")
        if layer.b is not None:
            raise InputError(f"layer {i} (ConnectDense) has a bias; the exported form supports none")
        if i + 1 >= len(layers) or not isinstance(layers[i + 1], L.BatchNorm):
            raise InputError(f"layer {i} (ConnectDense) must be followed by BatchNorm")
        relu = layers[i + 2] if i + 2 < len(layers) and isinstance(layers[i + 2], L.ReLU) else None
        blocks.append((layer, layers[i + 1], relu))
        i += 3 if relu is not None else 2
        if relu is None and i != len(layers):
            raise InputError(f"layer {i - 1} (BatchNorm) must be followed by ReLU, or end the network")
    if not blocks or blocks[-1][2] is not None:
        raise InputError("a Connect network ends in ConnectDense, BatchNorm (the scores)")
    return blocks


def deterministic_weights(layer):
    """The deterministic weights of a Connect layer as int8 (n_out, n_in) of -1, 0, +1."""
    w = layer.W.value.reshape(layer.W.value.shape[0], -1)
    return np.asarray(sample_weights(w, layer.kind, False, None).values(), dtype=np.int8)


def pixels(images):
    """uint8 images as float32 rows of ``pixel / 256`` (exact), the input of bitsim's Connect networks."""
    x = np.asarray(images)
    return np.ldexp(x.reshape(len(x), -1).astype(np.float32), np.int32(-8), dtype=np.float32)


def _block(block, x, f):
    """One block on float32 inputs with ``f`` fractional bits; returns its float32 output."""
    connect, bn, relu = block
    codes, _ = dynamic_fixed(x, connect.act_bits, frac_bits=f)
    sample = sample_weights(connect.W.value.reshape(connect.W.value.shape[0], -1), connect.kind, False, None)
    y = to_float32(sample.forward(codes), f)
    y = bn.forward(y, training=False)
    return relu.forward(y, training=False) if relu is not None else y


def static_frac_bits(model, calibration, batch_size=1000):
    """Fractional bits per Connect layer from the calibration images (the rule of this module).

    Parameters
    ----------
    model : bitsim.nn.Sequential
        A Connect network (:func:`connect_blocks`).
    calibration : numpy.ndarray of uint8
        Images, (N, 28, 28) or (N, 784).
    batch_size : int

    Returns
    -------
    list of int
    """
    blocks = connect_blocks(model)
    calibration = np.asarray(calibration)
    if calibration.dtype != np.uint8 or len(calibration) == 0:
        raise InputError("calibration images must be a non-empty uint8 array")
    frac = []
    xs = [pixels(calibration[i:i + batch_size]) for i in range(0, len(calibration), batch_size)]
    for block in blocks:
        largest = max(max_magnitude(x.ravel())[0] for x in xs)
        frac.append(frac_bits_for(largest, block[0].act_bits))
        if len(frac) < len(blocks):
            xs = [_block(block, x, frac[-1]) for x in xs]
    return frac


def static_forward(model, frac_bits, images):
    """Scores of a Connect network with static fractional bits ``frac_bits`` (one per Connect layer).

    Parameters
    ----------
    model : bitsim.nn.Sequential
    frac_bits : list of int
        As :func:`static_frac_bits` gives them.
    images : numpy.ndarray of uint8

    Returns
    -------
    numpy.ndarray of float32, (N, classes)
    """
    blocks = connect_blocks(model)
    if len(frac_bits) != len(blocks):
        raise InputError(f"{len(frac_bits)} fractional bits given for {len(blocks)} Connect layers")
    x = pixels(images)
    for block, f in zip(blocks, frac_bits):
        x = _block(block, x, int(f))
    return x


def block_inputs(model, frac_bits, images):
    """The float32 input of every Connect layer of the static network on ``images`` (a list, one per layer)."""
    blocks = connect_blocks(model)
    x, out = pixels(images), []
    for block, f in zip(blocks, frac_bits):
        out.append(x)
        x = _block(block, x, int(f))
    return out


def dynamic_frac_bits(model, frac_bits, images):
    """The fractional bits bitsim's dynamic fixed point picks for the batch ``images``, layer by layer.

    Computed on the static network (equal to the dynamic one up to the first layer whose pick differs
    from ``frac_bits``); ``dynamic_frac_bits(...) == frac_bits`` means bitsim's own deterministic
    forward pass on this batch gives :func:`static_forward`'s bits.
    """
    blocks = connect_blocks(model)
    return [frac_bits_for(max_magnitude(x.ravel())[0], block[0].act_bits)
            for block, x in zip(blocks, block_inputs(model, frac_bits, images))]


__all__ = ["connect_blocks", "deterministic_weights", "pixels", "static_frac_bits", "static_forward",
           "block_inputs", "dynamic_frac_bits"]
