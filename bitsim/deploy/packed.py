"""Compile a trained binary network into packed integer form and run it on bitsim's kernels only.

A compiled :class:`IntegerModel` is a list of stages; each reads the previous stage's output:

=================  ===================================================  ==========================
stage              computes                                             output
=================  ===================================================  ==========================
``BitplaneDense``  8-bit unsigned inputs times packed ±1 weights:        int32 accumulators
                   :func:`~bitsim.kernels.u8.u8s8_matmul` on the weights
                   unpacked once to int8 ±1 (``gemm='u8'``), or plane
                   by plane (:func:`~bitsim.kernels.xnor.bitplane_gemm`)
``BitplaneConv``   the same on im2col patches of NHWC uint8 images      int32, NHWC
``XnorDense``      packed ±1 activations times packed ±1 weights        int32 accumulators
                   (``n - 2 * popcount(a XOR w)``)
``XnorConv``       packed NHWC convolution, padding taps count 0        int32, NHWC
``MaxPool``        max over windows of the accumulators                 int32, NHWC
``Threshold``      batch norm + sign folded into integer thresholds:    packed ±1 bits (uint64)
                   bit = ``acc >= t`` (``acc <= t`` where flipped)
``Flatten``        NHWC packed bits to one packed row per image         packed ±1 bits
``Affine``         the last batch norm on the integer accumulators,     float32 scores
                   ``gain * ((acc - mean) * scale) + beta`` in float32
=================  ===================================================  ==========================

How the thresholds are found: batch norm at inference is elementwise per channel and each of its
float32 operations is monotone, so ``sign(bn(acc))`` switches once over the integers. The threshold is
found by bisection on **the float model's own** batch-norm expression evaluated at integer
accumulators, so the integer model gives the same bit as the float model for every reachable
accumulator value, not just approximately.
"""

from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError, InputTypeError
from ..formats import binary
from ..io import load_bundle, save_bundle
from ..kernels.xnor import binary_conv2d, bitplane_gemm, threshold_pack, xnor_gemm
from ..kernels.u8 import pm1_int8, u8s8_matmul
from ..nn import layers as L
from ..nn.binarized import BinaryConv2d, BinaryDense
from ..nn.conv import MaxPool2d, conv_output_hw, im2col
from ..schema import OBJECT, Int, ListOf, OneOf, Str, field_error, validate

KIND = "bitsim.deploy.IntegerModel"


class Stage:
    """One step of an integer model; subclasses define ``run`` and what they store."""

    kind = "stage"
    macs_per_output = 0

    def arrays(self):
        return {}

    def meta(self):
        return {}

    def __repr__(self):
        fields = ", ".join(f"{k}={v}" for k, v in self.meta().items())
        return f"{type(self).__name__}({fields})"


FIRST_LAYER_GEMMS = ("u8", "bitplane")


class _Bitplane(Stage):
    """Shared by the first-layer stages: unsigned inputs times packed ±1 weights, exact int32.

    ``gemm='u8'`` (8-bit inputs only) multiplies by the weights unpacked once to int8 ±1
    with :func:`~bitsim.kernels.u8.u8s8_matmul`; ``gemm='bitplane'`` splits the inputs into
    bit planes and popcounts each (:func:`~bitsim.kernels.xnor.bitplane_gemm`). Both are the
    exact integer ``x @ Wb.T``; the choice changes speed only and is not stored with the model.
    """

    def __init__(self, w, bits, gemm):
        if gemm not in FIRST_LAYER_GEMMS:
            raise InputError(f"first-layer gemm must be one of {FIRST_LAYER_GEMMS}, got {gemm!r}")
        self.w, self.bits, self.gemm = np.ascontiguousarray(w, dtype=np.uint64), int(bits), gemm
        self._w8 = None

    def product(self, x, n):
        if self.gemm == "u8" and self.bits == 8:
            if self._w8 is None:
                self._w8 = pm1_int8(self.w, n)
            return u8s8_matmul(x, self._w8)
        return bitplane_gemm(x, self.w, n, self.bits).astype(np.int32, copy=False)

    def arrays(self):
        return {"w": self.w}


class BitplaneDense(_Bitplane):
    """uint8 inputs (M, n) times packed ±1 weights (N, words): exact int32 ``x @ Wb.T``."""

    def __init__(self, w, n, bits=8, gemm="u8"):
        super().__init__(w, bits, gemm)
        self.n = int(n)

    def run(self, x):
        x = np.asarray(x)
        if x.dtype != np.uint8:
            raise InputTypeError(f"the first layer takes uint8 inputs (0..255), got {x.dtype}; convert images with "
                            "np.asarray(images, dtype=np.uint8)")
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != self.n:
            raise InputError(f"the first layer takes {self.n} inputs per example, got {x.shape[1]}")
        return self.product(x, self.n)

    def meta(self):
        return {"n": self.n, "bits": self.bits, "outputs": int(self.w.shape[0])}


class XnorDense(Stage):
    """Packed ±1 activations (M, words) times packed ±1 weights (N, words): int32 ``n - 2 popcount(a ^ w)``."""

    def __init__(self, w, n):
        self.w, self.n = np.ascontiguousarray(w, dtype=np.uint64), int(n)

    def run(self, x):
        return xnor_gemm(x, self.w, self.n)

    def arrays(self):
        return {"w": self.w}

    def meta(self):
        return {"n": self.n, "outputs": int(self.w.shape[0])}


class XnorConv(Stage):
    """Packed NHWC ±1 activations convolved with packed ±1 weights (O, KH, KW, words); padding taps count 0."""

    def __init__(self, w, c, stride, padding):
        self.w, self.c = np.ascontiguousarray(w, dtype=np.uint64), int(c)
        self.stride, self.padding = tuple(int(s) for s in stride), tuple(int(p) for p in padding)

    def run(self, x):
        return binary_conv2d(x, self.w, self.c, self.stride, self.padding)

    def arrays(self):
        return {"w": self.w}

    def meta(self):
        return {"c": self.c, "stride": list(self.stride), "padding": list(self.padding),
                "outputs": int(self.w.shape[0]), "kernel": list(self.w.shape[1:3])}


class BitplaneConv(_Bitplane):
    """uint8 NHWC images convolved with packed ±1 weights over (KH, KW, C) patches; zero padding is exact."""

    def __init__(self, w, c, kernel, stride, padding, bits=8, gemm="u8"):
        super().__init__(w, bits, gemm)
        self.c, self.kernel = int(c), tuple(int(k) for k in kernel)
        self.stride, self.padding = tuple(int(s) for s in stride), tuple(int(p) for p in padding)

    def run(self, x):
        x = np.asarray(x)
        if x.dtype != np.uint8:
            raise InputTypeError(f"the first layer takes uint8 NHWC images, got {x.dtype}")
        cols, (oh, ow) = im2col(x, self.kernel, self.stride, self.padding)
        acc = self.product(np.ascontiguousarray(cols), cols.shape[1])
        return acc.reshape(x.shape[0], oh, ow, -1)

    def meta(self):
        return {"c": self.c, "kernel": list(self.kernel), "stride": list(self.stride),
                "padding": list(self.padding), "bits": self.bits, "outputs": int(self.w.shape[0])}


class MaxPool(Stage):
    """Max over non-overlapping or strided windows of NHWC int32 accumulators."""

    def __init__(self, kernel, stride):
        self.kernel, self.stride = tuple(int(k) for k in kernel), tuple(int(s) for s in stride)

    def run(self, x):
        n, h, w, c = x.shape
        (kh, kw), (sh, sw) = self.kernel, self.stride
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
        out = np.full((n, oh, ow, c), np.iinfo(x.dtype).min, dtype=x.dtype)
        for u in range(kh):
            for v in range(kw):
                np.maximum(out, x[:, u:u + sh * oh:sh, v:v + sw * ow:sw, :], out=out)
        return out

    def meta(self):
        return {"kernel": list(self.kernel), "stride": list(self.stride)}


class Threshold(Stage):
    """Batch norm + sign as integer compares: bit = ``acc >= t``, or ``acc <= t`` where ``flip``; packed."""

    def __init__(self, thresholds, flip):
        thresholds = np.asarray(thresholds)
        if thresholds.size and (thresholds.min() < -(2**31) or thresholds.max() > 2**31 - 1):
            raise InputError("thresholds must fit int32; the accumulators of this layer are too wide")
        self.thresholds = thresholds.astype(np.int32)
        self.flip = np.asarray(flip, dtype=bool)

    def run(self, acc):
        return threshold_pack(acc, self.thresholds, self.flip)

    def arrays(self):
        return {"thresholds": self.thresholds, "flip": self.flip}

    def meta(self):
        return {"channels": int(self.thresholds.size)}


class Flatten(Stage):
    """Packed NHWC bits (N, H, W, words of c) to packed rows (N, words of H*W*c), in (h, w, c) order."""

    def __init__(self, c):
        self.c = int(c)

    def run(self, x):
        values = binary.unpack(x, self.c)
        return binary.pack(values.reshape(values.shape[0], -1))

    def meta(self):
        return {"c": self.c}


class Affine(Stage):
    """The last batch norm applied to integer accumulators in float32: ``gain * ((acc - mean) * scale) + beta``."""

    def __init__(self, mean, scale, gain, beta):
        self.mean, self.scale = np.asarray(mean, np.float32), np.asarray(scale, np.float32)
        self.gain, self.beta = np.asarray(gain, np.float32), np.asarray(beta, np.float32)

    def run(self, acc):
        return self.gain * ((acc.astype(np.float32) - self.mean) * self.scale) + self.beta

    def arrays(self):
        return {"mean": self.mean, "scale": self.scale, "gain": self.gain, "beta": self.beta}


STAGES = {cls.__name__: cls for cls in (BitplaneDense, BitplaneConv, XnorDense, XnorConv, MaxPool, Threshold,
                                         Flatten, Affine)}


class IntegerModel:
    """A compiled binary network: packed weights, integer thresholds, integer kernels only.

    Parameters
    ----------
    stages : list of Stage
    input_shape : tuple
        Shape of one input example (uint8), e.g. ``(784,)`` or ``(28, 28, 1)``.
    """

    def __init__(self, stages, input_shape):
        self.stages = list(stages)
        self.input_shape = tuple(int(s) for s in input_shape)

    def forward(self, x):
        """Run the stages on uint8 inputs and return the last stage's output (float32 scores)."""
        for stage in self.stages:
            x = stage.run(x)
        return x

    def trace(self, x):
        """Run the stages and return ``[(stage, output), ...]`` for every stage (for golden vectors)."""
        out = []
        for stage in self.stages:
            x = stage.run(x)
            out.append((stage, x))
        return out

    def predict(self, x, batch_size=1000):
        """Class predictions (argmax of the scores; the lowest index wins a tie, as ``np.argmax``)."""
        x = np.asarray(x)
        return np.concatenate([np.argmax(self.forward(x[i:i + batch_size]), axis=1)
                               for i in range(0, len(x), batch_size)] or [np.zeros(0, np.int64)])

    def weight_bits(self):
        """Bits of packed weights stored (including padding bits of the last words)."""
        return sum(64 * stage.w.size for stage in self.stages if hasattr(stage, "w"))

    def save(self, path):
        """Save as ``path.npz`` + ``path.json`` (no pickle, with checksums)."""
        arrays, stages = {}, []
        for i, stage in enumerate(self.stages):
            for name, a in stage.arrays().items():
                arrays[f"{i}.{name}"] = a
            stages.append({"type": type(stage).__name__, **stage.meta()})
        return save_bundle(path, arrays, KIND, {"stages": stages, "input_shape": list(self.input_shape),
                                                "bitsim_version": __version__})

    @classmethod
    def load(cls, path):
        """Load a model saved by :meth:`save`, verifying its checksums, its schema and its shapes."""
        arrays, meta = load_bundle(path, KIND)
        where = Path(path).with_suffix(".json")
        check_model(meta, arrays, where)
        stages = []
        for i, spec in enumerate(meta["stages"]):
            spec = dict(spec)
            kind = spec.pop("type")
            own = {name.split(".", 1)[1]: a for name, a in arrays.items() if name.split(".", 1)[0] == str(i)}
            stages.append(_rebuild(kind, spec, own))
        return cls(stages, meta["input_shape"])

    def __repr__(self):
        inner = "\n".join(f"  {s!r}" for s in self.stages)
        return f"IntegerModel(input_shape={self.input_shape}, stages=[\n{inner}\n])"


def _rebuild(kind, spec, arrays):
    if kind == "BitplaneDense":
        return BitplaneDense(arrays["w"], spec["n"], spec["bits"])
    if kind == "XnorDense":
        return XnorDense(arrays["w"], spec["n"])
    if kind == "XnorConv":
        return XnorConv(arrays["w"], spec["c"], spec["stride"], spec["padding"])
    if kind == "BitplaneConv":
        return BitplaneConv(arrays["w"], spec["c"], spec["kernel"], spec["stride"], spec["padding"], spec["bits"])
    if kind == "MaxPool":
        return MaxPool(spec["kernel"], spec["stride"])
    if kind == "Threshold":
        return Threshold(arrays["thresholds"], arrays["flip"])
    if kind == "Flatten":
        return Flatten(spec["c"])
    return Affine(arrays["mean"], arrays["scale"], arrays["gain"], arrays["beta"])


PAIR = ListOf(Int(1, 4096), 2, 2)
COUNT = Int(1, 1 << 24)
# what IntegerModel.save writes for each stage type: the meta fields, then the arrays (name: dtype)
STAGE_SCHEMAS = {
    "BitplaneDense": ({"n": COUNT, "bits": Int(1, 8), "outputs": COUNT}, {"w": "<u8"}),
    "XnorDense": ({"n": COUNT, "outputs": COUNT}, {"w": "<u8"}),
    "BitplaneConv": ({"c": COUNT, "kernel": PAIR, "stride": PAIR, "padding": ListOf(Int(0, 4096), 2, 2),
                      "bits": Int(1, 8), "outputs": COUNT}, {"w": "<u8"}),
    "XnorConv": ({"c": COUNT, "stride": PAIR, "padding": ListOf(Int(0, 4096), 2, 2), "outputs": COUNT,
                  "kernel": PAIR}, {"w": "<u8"}),
    "MaxPool": ({"kernel": PAIR, "stride": PAIR}, {}),
    "Threshold": ({"channels": COUNT}, {"thresholds": "<i4", "flip": "|b1"}),
    "Flatten": ({"c": COUNT}, {}),
    "Affine": ({}, {"mean": "<f4", "scale": "<f4", "gain": "<f4", "beta": "<f4"}),
}
MODEL_SCHEMA = {"stages": ListOf(OBJECT, 1, 10_000), "input_shape": ListOf(COUNT, 1, 3), "bitsim_version": Str()}


def check_model(meta, arrays, path):
    """Check an integer model's metadata and arrays against :data:`STAGE_SCHEMAS` and chain its shapes.

    Each stage must read what the one before it writes: uint8 inputs of ``input_shape`` first,
    then int32 accumulators or packed bits of a known shape, with every weight array of the
    shape and packing its ``n``, ``c``, kernel and ``outputs`` say. Raises
    :class:`~bitsim.errors.DamagedFileError` naming ``path``, the field and what was expected.
    """
    validate(meta, MODEL_SCHEMA, path, "$.meta")
    names = set(arrays)
    shape, kind = tuple(meta["input_shape"]), "u8"  # kind of the running tensor: u8, acc, bits or scores
    for i, spec in enumerate(meta["stages"]):
        at = f"$.meta.stages[{i}]"
        validate(spec.get("type"), OneOf(*STAGE_SCHEMAS), path, f"{at}.type")
        fields, dtypes = STAGE_SCHEMAS[spec["type"]]
        validate(spec, {"type": Str(), **fields}, path, at)
        for name, dtype in dtypes.items():
            key = f"{i}.{name}"
            if key not in arrays:
                raise field_error(path, at, f"{spec['type']} needs the array {key!r}, which the .npz lacks")
            if arrays[key].dtype.str != dtype:
                raise field_error(path, at, f"array {key!r} has dtype {arrays[key].dtype.str}, expected {dtype}")
            names.discard(key)
        shape, kind = stage_output(spec, {n: arrays[f"{i}.{n}"] for n in dtypes}, shape, kind, path, at)
    if names:
        raise field_error(path, "$.meta.stages", f"arrays {sorted(names)[:5]} belong to no stage")


def stage_output(spec, arrays, shape, kind, path, at):
    """The shape and kind of what stage ``spec`` writes, given what it reads; raise where they do not fit."""
    def need(condition, message):
        if not condition:
            raise field_error(path, at, message)

    def weights(expected):
        need(arrays["w"].shape == expected, f"weights of shape {arrays['w'].shape}, expected {expected}")

    t = spec["type"]
    if t in ("BitplaneDense", "XnorDense"):
        n, out = spec["n"], spec["outputs"]
        need(kind == ("u8" if t == "BitplaneDense" else "bits"),
             f"{t} cannot read the {kind} output of the stage before it")
        need(int(np.prod(shape)) == n, f"n = {n}, but the stage before it gives {int(np.prod(shape))} values")
        weights((out, binary.n_words(n)))
        need(not (arrays["w"][:, -1] & ~binary.padding_mask(n)).any(), "padding bits of the weights are not zero")
        return (out,), "acc"
    if t in ("BitplaneConv", "XnorConv"):
        c, out, kernel = spec["c"], spec["outputs"], tuple(spec["kernel"])
        need(kind == ("u8" if t == "BitplaneConv" else "bits") and len(shape) == 3 and shape[-1] == c,
             f"{t} with c = {c} cannot read the {kind} tensor of shape {shape} before it")
        if t == "BitplaneConv":
            weights((out, binary.n_words(kernel[0] * kernel[1] * c)))
        else:
            weights((out,) + kernel + (binary.n_words(c),))
        hw = conv_output_hw(shape[:2], kernel, spec["stride"], spec["padding"])
        need(min(hw) >= 1, f"a {kernel} window does not fit the input of shape {shape}")
        return hw + (out,), "acc"
    if t == "MaxPool":
        need(kind == "acc" and len(shape) == 3, f"MaxPool reads NHWC accumulators, got {kind} of shape {shape}")
        hw = conv_output_hw(shape[:2], spec["kernel"], spec["stride"], (0, 0))
        need(min(hw) >= 1, f"a {spec['kernel']} window does not fit the input of shape {shape}")
        return hw + shape[2:], "acc"
    if t == "Threshold":
        c = spec["channels"]
        need(kind == "acc" and shape[-1] == c, f"{c} thresholds cannot follow the {kind} tensor of shape {shape}")
        need(arrays["thresholds"].shape == (c,) and arrays["flip"].shape == (c,),
             f"thresholds and flip of shapes {arrays['thresholds'].shape}, {arrays['flip'].shape}, expected ({c},)")
        return shape, "bits"
    if t == "Flatten":
        need(kind == "bits" and len(shape) == 3 and shape[-1] == spec["c"],
             f"Flatten with c = {spec['c']} cannot read the {kind} tensor of shape {shape}")
        return (int(np.prod(shape)),), "bits"
    need(kind == "acc" and len(shape) == 1, f"Affine reads accumulators of one axis, got {kind} of shape {shape}")
    for name, a in arrays.items():
        need(a.shape == shape, f"array {name} of shape {a.shape}, expected {shape}")
    return shape, "scores"


def fold_threshold(bn, lo, hi):
    """Integer thresholds equivalent to ``sign(bn(acc))`` for integer ``acc`` in ``[lo, hi]``.

    Evaluates ``bn.forward(acc, training=False)`` (the float model's own float32 arithmetic) and
    bisects per channel. Returns ``(thresholds, flip)`` for :class:`Threshold`: bit = ``acc >= t``
    for non-decreasing channels, ``acc <= t`` (flip) for decreasing ones. A channel that is always
    +1 gets ``t = lo`` (or ``hi`` when flipped); one that is never +1 gets ``t = hi + 1`` (or ``lo - 1``).
    """
    c = bn.n_features
    lo_v, hi_v = np.full(c, lo, np.int64), np.full(c, hi, np.int64)

    def positive(acc):
        return bn.forward(acc.astype(np.float32)[None, :], training=False)[0] >= 0

    def value(acc):
        return bn.forward(acc.astype(np.float32)[None, :], training=False)[0]

    if max(abs(lo), abs(hi)) >= 2**24:
        raise InputError(f"accumulators up to {max(abs(lo), abs(hi))} are not exact in float32")
    flip = value(hi_v) < value(lo_v)
    # increasing channels: smallest a in [lo, hi + 1] with positive(a); decreasing: largest a in [lo - 1, hi]
    left = np.where(flip, lo_v - 1, lo_v)
    right = np.where(flip, hi_v, hi_v + 1)
    while np.any(right - left > 0):
        mid = np.where(flip, (left + right + 1) // 2, (left + right) // 2)
        ok = positive(np.clip(mid, lo, hi))
        if (~flip).any():
            inc = ~flip & (right > left)
            right = np.where(inc & ok, mid, right)
            left = np.where(inc & ~ok, mid + 1, left)
        if flip.any():
            dec = flip & (right > left)
            left = np.where(dec & ok, mid, left)
            right = np.where(dec & ~ok, mid - 1, right)
    return left, flip


def _bn_affine(bn):
    inv = 1 / np.sqrt(bn.running_var + bn.eps)
    scale = L.ap2(inv) if bn.shift else inv
    gain = L.ap2(bn.gamma.value) if bn.shift else bn.gamma.value
    return Affine(bn.running_mean, scale, gain, bn.beta.value)


SUPPORTED = ("Flatten", "BinaryDense", "BinaryConv2d", "MaxPool2d", "BatchNorm", "HardTanh", "Sign", "Dropout")


def compile_model(model, input_shape, input_bits=8):
    """Compile a trained binary :class:`~bitsim.nn.model.Sequential` into an :class:`IntegerModel`.

    The network must have the form of a BNN: uint8 inputs, then blocks of
    ``BinaryDense | BinaryConv2d``, optional ``MaxPool2d``, ``BatchNorm``, optional ``HardTanh``, ``Sign``
    (each folded into one integer stage plus a :class:`Threshold`), with ``Flatten`` anywhere and
    ``Dropout`` ignored (it is the identity at inference), ending in a binary layer with an optional
    ``BatchNorm`` (the float32 :class:`Affine` scores).

    Parameters
    ----------
    model : bitsim.nn.model.Sequential
    input_shape : tuple
        Shape of one input example, e.g. ``(784,)`` or ``(28, 28, 1)`` (NHWC without N).
    input_bits : int
        Bits of the unsigned inputs (8 for images).
    """
    kept = [(j, layer) for j, layer in enumerate(model.layers) if not isinstance(layer, L.Dropout)]
    layers = [layer for _, layer in kept]
    stages, origins, shape, first, i = [], [], tuple(input_shape), True, 0

    def emit(stage, at):
        stages.append(stage)
        origins.append(kept[at][0])

    bound = (1 << input_bits) - 1
    while i < len(layers):
        layer = layers[i]
        name = type(layer).__name__
        if isinstance(layer, L.Flatten):
            if not first and len(shape) == 3:
                emit(Flatten(shape[-1]), i)
            shape = (int(np.prod(shape)),)
            i += 1
            continue
        if not isinstance(layer, (BinaryDense, BinaryConv2d)):
            raise InputError(f"cannot compile layer {kept[i][0]} ({name}) here; compile supports blocks of "
                             f"{', '.join(SUPPORTED)} in the BNN order (see bitsim.deploy.packed)")
        wb = binary.binarize(layer.W.value)  # inference weights: the deterministic sign of the latent W
        if layer.b is not None:
            raise InputError(f"layer {kept[i][0]} ({name}) has a bias; binary layers followed by BatchNorm need none")
        if isinstance(layer, BinaryDense):
            n = layer.n_in
            stage = BitplaneDense(binary.pack(wb), n, input_bits) if first else XnorDense(binary.pack(wb), n)
            shape = (layer.n_out,)
        else:
            n = int(np.prod(layer.kernel)) * layer.c_in
            if first:
                stage = BitplaneConv(binary.pack(wb.reshape(layer.c_out, -1)), layer.c_in, layer.kernel,
                                     layer.stride, layer.padding, input_bits)
            else:
                stage = XnorConv(binary.pack(wb), layer.c_in, layer.stride, layer.padding)
            shape = layer.output_shape(shape)
        emit(stage, i)
        reach = n * (bound if first else 1)
        first = False
        i += 1
        if i < len(layers) and isinstance(layers[i], MaxPool2d):
            pool = layers[i]
            emit(MaxPool(pool.kernel, pool.stride), i)
            shape = pool.output_shape(shape)
            i += 1
        if i < len(layers) and isinstance(layers[i], L.BatchNorm):
            bn = layers[i]
            i += 1
            if i < len(layers) and isinstance(layers[i], L.HardTanh):
                i += 1
            if i < len(layers) and isinstance(layers[i], L.Sign):
                emit(Threshold(*fold_threshold(bn, -reach, reach)), i)
                i += 1
            elif i == len(layers):
                emit(_bn_affine(bn), i - 1)
            else:
                raise InputError(f"BatchNorm at layer {kept[i - 1][0]} must be followed by Sign, or end the network")
        elif i < len(layers) and isinstance(layers[i], L.Sign):
            emit(Threshold(np.zeros(shape[-1], np.int64), np.zeros(shape[-1], bool)), i)
            i += 1
    compiled = IntegerModel(stages, input_shape)
    compiled.origins = origins
    return compiled


def check_exact(model, compiled, x):
    """Compare every stage of a compiled model with the float layer it replaces, exactly.

    Runs the float model layer by layer (inference mode, float32) and the integer model stage by
    stage on the same uint8 inputs. Accumulator stages must equal the float pre-activations, packed
    stages must unpack to the float model's ±1 values, and the final scores must agree bit for bit.

    Returns
    -------
    dict
        ``stages``: one row per stage (stage, float layer, equal, mismatches); ``predictions_equal``;
        ``all_equal``.
    """
    if not getattr(compiled, "origins", None):
        raise InputError("check_exact needs a model fresh from compile_model (it records which layer each stage mirrors)")
    x = np.asarray(x)
    h = x.reshape((x.shape[0],) + compiled.input_shape).astype(np.float32)
    reference = []
    for layer in model.layers:
        h = layer.forward(h, training=False)
        reference.append(h)
    rows = []
    for (stage, out), origin in zip(compiled.trace(x), compiled.origins):
        ref = reference[origin]
        if out.dtype == np.uint64:
            got = binary.unpack(out, ref.shape[-1]).reshape(ref.shape)
            diff = got != ref
        elif out.dtype == np.float32:
            diff = out.view(np.uint32) != ref.view(np.uint32)
        else:
            diff = out != ref
        rows.append({"stage": type(stage).__name__, "layer": f"{origin}:{type(model.layers[origin]).__name__}",
                     "equal": not diff.any(), "mismatches": int(np.count_nonzero(diff))})
    scores = compiled.forward(x)
    predictions_equal = bool(np.array_equal(np.argmax(scores, 1), np.argmax(reference[-1], 1)))
    return {"stages": rows, "predictions_equal": predictions_equal,
            "all_equal": predictions_equal and all(r["equal"] for r in rows)}
