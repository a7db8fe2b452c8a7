"""Sparse export of pruned networks: CSR per layer, optionally with quantized survivors, and integer inference.

A :class:`SparseModel` is the list of operations of a pruned :class:`~bitsim.nn.Sequential` (masked dense
and convolution layers, max pooling, ReLU, flatten). Each weight layer is stored as a CSR matrix of its
``W ∘ T`` with one row per output (a convolution's ``(c_out, KH, KW, C)`` weights as ``(c_out, KH*KW*C)``
rows, the im2col column order ``(u * KW + v) * C + c``), plus its bias ``b ∘ Tb``:

* ``{i}.indptr`` uint32, ``rows + 1`` entries; ``{i}.indices`` column indices, uint16 when the layer has
  at most 65,536 columns, else uint32, ascending within a row;
* the surviving values: ``{i}.data`` float32 (``float32`` models), int8 fixed-point codes (``fixedN``),
  uint8 log codes (``log8``), or, for ``ternary``, ``{i}.signs``: the signs of the survivors (+1 or -1,
  in CSR order) packed as uint64 words (``docs/formats.md`` section 1: element ``i`` at bit ``i % 64``,
  1 = +1, padding 0): a survivor's magnitude is the layer's scale and its zero is the mask;
* ``{i}.bias``: float32, or int32 codes in the layer's accumulator units.

Saved with :func:`bitsim.io.save_bundle`: ``.npz`` arrays + ``.json`` manifest with checksums, never pickled.

Counting, the paper's way: ``params`` are all weights and biases of the pruned layers, ``nonzero`` the
stored connections (CSR entries) plus nonzero biases, and the compression ratio is ``params / nonzero``.
``bytes`` is what the arrays above take (values, indices, row pointers and biases).

Integer inference of a quantized model (:meth:`SparseModel.forward_int`) runs bitsim's **dense** integer
kernels on the masked weights expanded from the CSR codes: :func:`bitsim.kernels.intmatmul.matmul` with
``route='integer'`` (the Numba integer kernel, never the BLAS accelerator; fixed point, and ternary as
2-bit codes -1, 0, +1) and :func:`bitsim.kernels.shift.fixed_log_matmul` (log8: shift-add). A pruned
weight is a zero code and adds exactly 0 to an exact integer sum, so the result equals any sparse
evaluation of the same rule. Two oracles check it: :func:`oracle_forward`, that sparse evaluation in
Python integers read straight from the CSR arrays (slow, a few images), and :func:`float_forward`, the
same rules as float64 ``scipy.sparse`` CSR products (exact: every partial sum is an integer whose bound
is checked to stay below 2**53; fast, every test image). The rules, per weight layer:

1. inputs are fixed-point codes: the first layer takes the uint8 pixels as codes with 8 fractional bits
   (``pixel / 256``, the float model's input exactly); later layers take ``act_bits``-bit signed codes;
2. ``acc = x @ Wq.T + bias`` exactly (int64), with ``acc_frac`` fractional bits:
   fixed ``x_frac + w_frac``; log8 ``x_frac + max(0, -e_min)`` with ``e_min`` the smallest exponent among
   the layer's codes, so every shift ``e + acc_frac - x_frac`` is a left shift (exact); ternary ``x_frac``
   in units of the layer's scale ``alpha`` (the mean ``|w|`` of its survivors);
3. ReLU is ``max(acc, 0)``, max pooling the maximum of the integers;
4. before the next weight layer, ``acc`` is requantized to ``act_bits`` bits with ``frac = acc_frac - s``
   (:func:`bitsim.kernels.requantize.requantize`: rounding right shift by ``s``, nearest-even, saturating,
   counted), ``s`` chosen once from calibration images so that their largest ``|acc|`` fits;
5. the last layer's ``acc`` are the scores; the prediction is the first largest.

Bias codes are ``rint(b * 2**acc_frac)`` (``rint(b / alpha * 2**x_frac)`` for ternary) in float64, ties
to even.

One module on purpose, though long: the CSR export, its quantization, its integer inference and the two
oracles that check it all follow the layout and the rules above.
"""

import numpy as np
import scipy.sparse

from ..errors import InputError, InputTypeError, RangeError
from ..formats import binary, log
from ..formats.fixed import FixedFormat
from ..formats.log import LogFormat
from ..io import load_bundle, save_bundle
from ..kernels import intmatmul
from ..kernels import shift as kshift
from ..kernels.requantize import requantize
from ..nn import Flatten, MaxPool2d, ReLU, Sequential
from ..nn.conv import im2col
from ..nn.masked import MaskedConv2d, MaskedDense, is_masked

KIND = "bitsim.deploy.SparseModel"
FORMATS = ("ternary", "log8", "fixed8")
LOG8 = LogFormat()
INPUT_FRAC = 8  # pixels / 256
TERNARY_FMT = FixedFormat(2, 0)


def check_format(name):
    """Validate a quantized format name: ``'ternary'``, ``'log8'`` or ``'fixedN'`` (N = 2..8)."""
    if name in ("ternary", "log8"):
        return name
    if name.startswith("fixed") and name[5:].isdigit() and 2 <= int(name[5:]) <= 8:
        return name
    raise InputError(f"unknown format {name!r}; choose ternary, log8 or fixedN with N = 2..8 (e.g. fixed8)")


def _index_dtype(columns):
    return np.dtype(np.uint16) if columns <= 2**16 else np.dtype(np.uint32)


def _csr_arrays(weight, mask):
    """CSR of ``weight`` (rows, cols) at the ones of ``mask``: data, indices, indptr."""
    rows, cols = np.nonzero(mask)  # row-major: rows ascending, columns ascending within a row
    indptr = np.zeros(mask.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=mask.shape[0]), out=indptr[1:])
    if indptr[-1] >= 2**32:
        raise InputError("more than 2**32 - 1 stored weights in one layer; the uint32 row pointers cannot hold them")
    return weight[rows, cols], cols.astype(_index_dtype(mask.shape[1])), indptr.astype(np.uint32)


class SparseModel:
    """A pruned network as CSR layers and the operations between them.

    Parameters
    ----------
    ops : list of dict
        ``{'op': 'dense' | 'conv', 'name', 'shape': [rows, cols], ...}`` for weight layers (conv adds
        ``weight_shape``, ``kernel``, ``stride``, ``padding``; quantized models add ``x_bits``, ``x_frac``,
        ``acc_frac`` and format fields), ``{'op': 'pool', 'kernel', 'stride'}``, ``{'op': 'relu'}``,
        ``{'op': 'flatten'}``.
    arrays : dict of str to numpy.ndarray
        ``'{i}.indptr'``, ``'{i}.indices'``, ``'{i}.data'`` or ``'{i}.signs'``, ``'{i}.bias'`` for op ``i``.
    input_shape : tuple of int
        One example, e.g. ``(784,)`` or ``(28, 28, 1)``.
    fmt : str
        ``'float32'`` or a quantized format (:data:`FORMATS`).
    act_bits : int, optional
        Activation bits of a quantized model.
    """

    def __init__(self, ops, arrays, input_shape, fmt="float32", act_bits=None):
        self.ops, self.arrays = ops, arrays
        self.input_shape, self.fmt, self.act_bits = tuple(int(s) for s in input_shape), fmt, act_bits

    # -- structure ----------------------------------------------------------------------

    def weight_ops(self):
        """Indices of the weight layers in :attr:`ops`."""
        return [i for i, op in enumerate(self.ops) if op["op"] in ("dense", "conv")]

    def nnz(self, i):
        return int(self.arrays[f"{i}.indptr"][-1])

    def values(self, i):
        """The stored survivors of op ``i`` in CSR order: float32 values, or integer codes (ternary: ±1 int8)."""
        if self.fmt == "ternary":
            return binary.unpack(self.arrays[f"{i}.signs"], self.nnz(i))
        return self.arrays[f"{i}.data"]

    def csr(self, i):
        """Op ``i``'s weights as a :class:`scipy.sparse.csr_matrix` (values or codes; int32 indices)."""
        op = self.ops[i]
        a = self.arrays
        return scipy.sparse.csr_matrix(
            (self.values(i), a[f"{i}.indices"].astype(np.int32), a[f"{i}.indptr"].astype(np.int64)),
            shape=tuple(op["shape"]))

    def mask(self, i):
        """The connection mask of op ``i`` (rows, cols) as bool."""
        op, a = self.ops[i], self.arrays
        m = np.zeros(op["shape"], dtype=bool)
        rows = np.repeat(np.arange(op["shape"][0]), np.diff(a[f"{i}.indptr"].astype(np.int64)))
        m[rows, a[f"{i}.indices"].astype(np.int64)] = True
        return m

    def dense_codes(self, i):
        """Op ``i``'s (rows, cols) matrix with the survivors in place: float32 zeros, code 0 or the log zero code."""
        op = self.ops[i]
        m = self.mask(i)
        if self.fmt == "log8":
            out = np.full(op["shape"], LOG8.zero_code(), dtype=np.uint8)
        else:
            v = self.values(i)
            out = np.zeros(op["shape"], dtype=v.dtype)
        out[m] = self.values(i)
        return out

    # -- counting -----------------------------------------------------------------------

    def storage(self):
        """Parameters, nonzero parameters, compression ratio and bytes, in total and per layer.

        Returns
        -------
        dict
            ``params``, ``nonzero``, ``ratio`` (``params / nonzero``; None when nothing is left),
            ``bytes`` (values + indices + row pointers + biases), ``float32_bytes`` (the dense float32
            layers), ``index_bits`` and ``layers`` (the same per layer).
        """
        layers = []
        for i in self.weight_ops():
            op, a = self.ops[i], self.arrays
            rows, cols = op["shape"]
            bias = a[f"{i}.bias"]
            values = a[f"{i}.signs"] if self.fmt == "ternary" else a[f"{i}.data"]
            parts = {"values": values.nbytes, "indices": a[f"{i}.indices"].nbytes,
                     "indptr": a[f"{i}.indptr"].nbytes, "bias": bias.nbytes}
            params = rows * cols + bias.size
            nonzero = self.nnz(i) + int(np.count_nonzero(bias))
            layers.append({"layer": op["name"], "params": params, "nonzero": nonzero, "density": nonzero / params,
                           "bytes": sum(parts.values()), "parts": parts, "float32_bytes": 4 * params,
                           "index_bits": 8 * a[f"{i}.indices"].itemsize})
        params = sum(r["params"] for r in layers)
        nonzero = sum(r["nonzero"] for r in layers)
        return {"params": params, "nonzero": nonzero, "ratio": params / nonzero if nonzero else None,
                "bytes": sum(r["bytes"] for r in layers), "float32_bytes": 4 * params,
                "index_bits": max(r["index_bits"] for r in layers), "layers": layers}

    # -- files --------------------------------------------------------------------------

    def save(self, path):
        """Write ``path.npz`` + ``path.json`` (:func:`bitsim.io.save_bundle`)."""
        meta = {"format": self.fmt, "input_shape": list(self.input_shape), "act_bits": self.act_bits,
                "ops": self.ops}
        return save_bundle(path, self.arrays, KIND, meta)

    # -- float model --------------------------------------------------------------------

    def to_model(self):
        """The float :class:`~bitsim.nn.Sequential` of masked layers this export came from (float32 exports).

        ``W`` holds the survivors at their places and zeros elsewhere, ``T`` the CSR structure, ``b`` the
        stored bias and ``Tb`` its nonzero entries, so ``W ∘ T`` and ``b ∘ Tb`` equal the exported ones.
        """
        if self.fmt != "float32":
            raise InputError(f"to_model rebuilds float32 exports; this one is {self.fmt} (use forward_int)")
        layers = []
        for i, op in enumerate(self.ops):
            kind = op["op"]
            if kind in ("dense", "conv"):
                if kind == "dense":
                    layer = MaskedDense(op["shape"][1], op["shape"][0])
                else:
                    c_out, kh, kw, c_in = op["weight_shape"]
                    layer = MaskedConv2d(c_in, c_out, (kh, kw), op["stride"], op["padding"])
                shape = layer.W.value.shape
                layer.W.value[...] = self.dense_codes(i).reshape(shape)
                layer.T = self.mask(i).reshape(shape)
                layer.b.value[...] = self.arrays[f"{i}.bias"]
                layer.Tb = self.arrays[f"{i}.bias"] != 0
                layer.name = op["name"]
                layers.append(layer)
            elif kind == "pool":
                layers.append(MaxPool2d(op["kernel"], op["stride"]))
            elif kind == "relu":
                layers.append(ReLU())
            else:
                layers.append(Flatten())
        return Sequential(layers)

    def predict(self, x, batch_size=1000):
        """Predicted classes for uint8 images ``(N, ...)``: the float model, or the integer one when quantized."""
        x = np.asarray(x)
        out = []
        model = self.to_model() if self.fmt == "float32" else None
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            if model is not None:
                scores = model.forward(xb.reshape((len(xb),) + self.input_shape).astype(np.float32)
                                       * np.float32(2.0**-INPUT_FRAC), training=False)
            else:
                scores = self.forward_int(xb)
            out.append(scores.argmax(axis=1))
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    # -- integer model ------------------------------------------------------------------

    def kernel_name(self):
        """The kernel the integer model runs its weight layers on."""
        if self.fmt == "float32":
            return "none (float model)"
        if self.fmt == "log8":
            return "kernels.shift.fixed_log_matmul (shift-add, dense masked codes)"
        return "kernels.intmatmul.matmul route='integer' (dense masked codes)"

    def forward_int(self, x, counts=None):
        """Integer scores (int64) of the quantized model for uint8 images ``x``; see the module rules."""
        if self.fmt == "float32":
            raise InputError("forward_int runs quantized exports; build one with quantize(model, fmt, ...)")
        return _run(self, x, counts)[0]


def from_model(model, input_shape):
    """Export a pruned :class:`~bitsim.nn.Sequential` (masked layers, MaxPool2d, ReLU, Flatten) as float32 CSR.

    Parameters
    ----------
    model : Sequential
    input_shape : tuple of int
        One example, without the batch axis.

    Returns
    -------
    SparseModel
    """
    ops, arrays = [], {}
    for i, layer in enumerate(model.layers):
        if is_masked(layer):
            if layer.b is None:
                raise InputError(f"layer {i} has no bias; sparse export expects biased layers")
            w = layer.weight().astype(np.float32)
            mask = layer.T
            if isinstance(layer, MaskedConv2d):
                op = {"op": "conv", "weight_shape": list(w.shape), "kernel": list(layer.kernel),
                      "stride": list(layer.stride), "padding": list(layer.padding)}
            else:
                op = {"op": "dense"}
            w2, m2 = w.reshape(w.shape[0], -1), mask.reshape(mask.shape[0], -1)
            op.update(name=getattr(layer, "name", f"layer{i}"), shape=list(w2.shape))
            data, indices, indptr = _csr_arrays(w2, m2)
            arrays.update({f"{i}.data": data, f"{i}.indices": indices, f"{i}.indptr": indptr,
                           f"{i}.bias": layer.bias().astype(np.float32)})
            ops.append(op)
        elif isinstance(layer, MaxPool2d):
            ops.append({"op": "pool", "kernel": list(layer.kernel), "stride": list(layer.stride)})
        elif isinstance(layer, ReLU):
            ops.append({"op": "relu"})
        elif isinstance(layer, Flatten):
            ops.append({"op": "flatten"})
        else:
            raise InputError(f"cannot export layer {i} ({type(layer).__name__}); sparse export takes masked dense "
                             "and convolution layers, MaxPool2d, ReLU and Flatten")
    names = [op["name"] for op in ops if "name" in op]
    if len(set(names)) != len(names):
        raise InputError(f"layer names must differ, got {names}")
    return SparseModel(ops, arrays, input_shape)


def name_layers(model, names):
    """Give the masked layers of ``model`` the ``names`` used in exports and reports (in order)."""
    masked = [layer for layer in model.layers if is_masked(layer)]
    if len(masked) != len(names):
        raise InputError(f"{len(names)} names for {len(masked)} masked layers")
    for layer, name in zip(masked, names):
        layer.name = str(name)
    return model


def load(path):
    """Read a :class:`SparseModel` written by :meth:`SparseModel.save`, verifying every checksum."""
    arrays, meta = load_bundle(path, KIND)
    model = SparseModel(meta["ops"], arrays, meta["input_shape"], meta["format"], meta.get("act_bits"))
    for i in model.weight_ops():
        op = model.ops[i]
        indptr, indices = arrays[f"{i}.indptr"], arrays[f"{i}.indices"]
        if indptr.shape != (op["shape"][0] + 1,) or indptr[0] != 0 or np.any(np.diff(indptr.astype(np.int64)) < 0):
            raise InputError(f"{path}: layer {op['name']} has malformed row pointers")
        if indices.size != int(indptr[-1]) or (indices.size and int(indices.max()) >= op["shape"][1]):
            raise InputError(f"{path}: layer {op['name']} has column indices out of range")
    return model


# ---------------------------------------------------------------------------------------
# quantization and integer inference


def _quantize_layer(values, fmt):
    """Codes of the survivors ``values`` (float64) and the format fields of the layer."""
    if fmt == "ternary":
        scale = float(np.mean(np.abs(values))) if values.size else 1.0
        return np.where(values < 0, -1, 1).astype(np.int8), {"w": "ternary", "scale": scale}
    if fmt == "log8":
        return log.encode(values.astype(np.float32), LOG8), {"w": "log8"}
    bits = int(fmt[5:])
    top = float(np.max(np.abs(values))) if values.size else 1.0
    hi = (1 << (bits - 1)) - 1
    frac = bits - 2 - int(np.floor(np.log2(top)))
    if np.rint(top * 2.0**frac) > hi:
        frac -= 1
    wfmt = FixedFormat(bits, frac)
    from ..formats.fixed import quantize as fquantize

    return fquantize(values, wfmt), {"w": fmt, "w_bits": bits, "w_frac": frac}


def _acc_frac(op, codes, x_frac):
    if op["w"] == "log8":
        sign, exponent, zero = log.split(codes, LOG8)
        e_min = int(exponent[~zero].min()) if (~zero).any() else 0
        return x_frac + max(0, -e_min)
    if op["w"] == "ternary":
        return x_frac
    return x_frac + op["w_frac"]


def _bias_codes(op, bias):
    b = bias.astype(np.float64)
    if op["w"] == "ternary":
        b = b / op["scale"]
        scaled = np.ldexp(b, op["x_frac"])
    else:
        scaled = np.ldexp(b, op["acc_frac"])
    codes = np.rint(scaled)
    if np.abs(codes).max(initial=0) > 2**31 - 1:
        raise RangeError(f"layer {op['name']}: bias codes exceed int32; use fewer fractional bits")
    return codes.astype(np.int32)


def quantize(sparse, fmt, x_calib, act_bits=8):
    """A quantized copy of a float32 :class:`SparseModel`: survivors in ``fmt``, activation formats calibrated.

    Parameters
    ----------
    sparse : SparseModel
        A float32 export (:func:`from_model`).
    fmt : str
        ``'ternary'``, ``'log8'`` or ``'fixedN'`` (N = 2..8; weights get ``N``-bit codes with the most
        fractional bits that hold the layer's largest survivor).
    x_calib : numpy.ndarray of uint8
        Calibration images; the activation shift of each layer is the smallest that fits their largest
        ``|acc|`` into ``act_bits`` signed bits (inputs outside it saturate, counted).
    act_bits : int
        2..16.

    Returns
    -------
    SparseModel
    """
    check_format(fmt)
    if sparse.fmt != "float32":
        raise InputError(f"quantize takes a float32 export, got {sparse.fmt}")
    if not 2 <= int(act_bits) <= 16:
        raise InputError(f"act_bits must be 2..16 (the kernels take up to 16-bit codes), got {act_bits}")
    ops, arrays = [dict(op) for op in sparse.ops], {}
    for i in sparse.weight_ops():
        values = sparse.arrays[f"{i}.data"].astype(np.float64)
        codes, fields = _quantize_layer(values, fmt)
        ops[i].update(fields)
        arrays.update({f"{i}.indices": sparse.arrays[f"{i}.indices"], f"{i}.indptr": sparse.arrays[f"{i}.indptr"]})
        if fmt == "ternary":
            arrays[f"{i}.signs"] = binary.pack(codes)
        else:
            arrays[f"{i}.data"] = codes
        arrays[f"{i}.bias_float"] = sparse.arrays[f"{i}.bias"]
    q = SparseModel(ops, arrays, sparse.input_shape, fmt, int(act_bits))
    _run(q, np.asarray(x_calib), None, calibrate=True)
    for i in q.weight_ops():
        del q.arrays[f"{i}.bias_float"]
    return q


def _weights(q, i):
    """The dense code matrix of op ``i`` and its kernel format (cached on the model)."""
    cache = q.__dict__.setdefault("_dense", {})
    if i not in cache:
        codes = q.dense_codes(i)
        op = q.ops[i]
        wfmt = LOG8 if op["w"] == "log8" else TERNARY_FMT if op["w"] == "ternary" else FixedFormat(op["w_bits"],
                                                                                                    op["w_frac"])
        cache[i] = (np.ascontiguousarray(codes), wfmt)
    return cache[i]


def _pool(x, kernel, stride):
    from numpy.lib.stride_tricks import sliding_window_view

    kh, kw = kernel
    return sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride[0], ::stride[1]].max(axis=(-2, -1))


def _shape_op(op, acc):
    """ReLU, max pooling or flatten of a batch (integers or integer-valued floats)."""
    if op["op"] == "relu":
        return np.maximum(acc, acc.dtype.type(0))
    if op["op"] == "pool":
        return _pool(acc, op["kernel"], op["stride"])
    return acc.reshape(len(acc), -1)


def _images(q, x, dtype):
    """uint8 images ``x`` as a ``dtype`` batch of the model's input shape."""
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise InputTypeError(f"the integer model takes uint8 images, got {x.dtype}")
    return x.reshape((len(x),) + q.input_shape).astype(dtype)


def _walk(q, x, dtype, layer):
    """Run the ops over uint8 images ``x`` held as ``dtype``: ReLU, max pooling and flatten by :func:`_shape_op`,
    weight layer ``i`` by ``layer(i, op, acc, acc_frac, first)``, which returns the layer's output rows with
    ``op['acc_frac']`` fractional bits and, for a convolution, its output size. Returns ``(acc, acc_frac)``."""
    acc = _images(q, x, dtype)
    n = len(acc)
    acc_frac, first = INPUT_FRAC, True
    for i, op in enumerate(q.ops):
        if op["op"] not in ("dense", "conv"):
            acc = _shape_op(op, acc)
            continue
        out, hw = layer(i, op, acc, acc_frac, first)
        acc = out.reshape(n, hw[0], hw[1], -1) if op["op"] == "conv" else out
        acc_frac, first = op["acc_frac"], False
    return acc, acc_frac


def _run(q, x, counts, calibrate=False):
    """Integer forward pass; with ``calibrate`` choose each layer's input format and bias codes on the way."""

    def layer(i, op, acc, acc_frac, first):
        if calibrate:
            if first:
                op["x_bits"], op["x_frac"] = 16, INPUT_FRAC
            else:
                top = int(np.abs(acc).max(initial=0))
                shift = max(0, top.bit_length() - (q.act_bits - 1))
                op["x_bits"], op["x_frac"] = q.act_bits, acc_frac - shift
        xfmt = FixedFormat(op["x_bits"], op["x_frac"])
        x_codes = acc.astype(xfmt.dtype) if first else requantize(acc, acc_frac, xfmt, counts=counts)
        codes, wfmt = _weights(q, i)
        if calibrate:
            op["acc_frac"] = _acc_frac(op, codes, op["x_frac"])
            q.arrays[f"{i}.bias"] = _bias_codes(op, q.arrays[f"{i}.bias_float"])
        cols, hw = im2col(x_codes, op["kernel"], op["stride"], op["padding"]) if op["op"] == "conv" else (x_codes, None)
        if op["w"] == "log8":
            out = kshift.fixed_log_matmul(cols, op["x_frac"], codes, wfmt, acc_frac=op["acc_frac"], acc_dtype=np.int64)
        else:
            out = intmatmul.matmul(cols, xfmt, codes, wfmt, acc_dtype=np.int64, route="integer")
        return out + q.arrays[f"{i}.bias"].astype(np.int64), hw

    return _walk(q, x, np.int64, layer)


# ---------------------------------------------------------------------------------------
# the oracle: Python integers, straight from the CSR arrays


def _rshift_round_even(v, s):
    if s <= 0:
        return v << -s
    q = v >> s
    r = v - (q << s)
    half = 1 << (s - 1)
    return q + 1 if r > half or (r == half and q & 1) else q


def _log_term(x, code, x_frac, acc_frac):
    sign = (code >> LOG8.exp_bits) & 1
    field = code & ((1 << LOG8.exp_bits) - 1)
    if field == LOG8.zero_field:
        return 0
    e = field - (1 << LOG8.exp_bits) if field >= LOG8.zero_field else field
    t = e + LOG8.exp_offset + acc_frac - x_frac
    mag = x << t if t >= 0 else x >> -t  # floor, the kernel's rounding
    return -mag if sign else mag


def oracle_forward(q, image):
    """Scores of one uint8 image by the module's rules in Python integers (slow; for checking).

    Reads only the CSR arrays, the bias codes and the formats: for each output, the sum over the
    row's stored entries of ``x[col] * code`` (fixed, ternary) or of the shifted ``x[col]`` (log8),
    then the bias; ReLU, max pooling and the nearest-even requantization as written in the module.

    Returns
    -------
    list of int
    """
    shape = q.input_shape
    vals = [int(v) for v in np.asarray(image).reshape(-1)]
    cur_shape, acc_frac, first = shape, INPUT_FRAC, True
    for i, op in enumerate(q.ops):
        kind = op["op"]
        if kind == "relu":
            vals = [max(v, 0) for v in vals]
        elif kind == "flatten":
            cur_shape = (len(vals),)
        elif kind == "pool":
            h, w, c = cur_shape
            (kh, kw), (sh, sw) = op["kernel"], op["stride"]
            oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
            vals = [max(vals[((r * sh + u) * w + (p * sw + v)) * c + ch] for u in range(kh) for v in range(kw))
                    for r in range(oh) for p in range(ow) for ch in range(c)]
            cur_shape = (oh, ow, c)
        else:
            if not first:
                lo, hi = -(1 << (op["x_bits"] - 1)), (1 << (op["x_bits"] - 1)) - 1
                vals = [min(max(_rshift_round_even(v, acc_frac - op["x_frac"]), lo), hi) for v in vals]
            first = False
            indptr = [int(v) for v in q.arrays[f"{i}.indptr"]]
            cols = [int(v) for v in q.arrays[f"{i}.indices"]]
            codes = [int(v) for v in q.values(i)]
            bias = [int(v) for v in q.arrays[f"{i}.bias"]]
            rows = len(indptr) - 1

            def dot(get, j):
                total = bias[j]
                for k in range(indptr[j], indptr[j + 1]):
                    xv = get(cols[k])
                    if op["w"] == "log8":
                        total += _log_term(xv, codes[k], op["x_frac"], op["acc_frac"])
                    else:
                        total += xv * codes[k]
                return total

            if kind == "dense":
                vals = [dot(lambda col: vals[col], j) for j in range(rows)]
                cur_shape = (rows,)
            else:
                h, w, c = cur_shape
                _, kh, kw, _ = op["weight_shape"]
                (sh, sw), (ph, pw) = op["stride"], op["padding"]
                oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
                out = []
                for r in range(oh):
                    for p in range(ow):
                        def get(col, r=r, p=p):
                            u, rest = divmod(col, kw * c)
                            v, ch = divmod(rest, c)
                            y, x_ = r * sh + u - ph, p * sw + v - pw
                            return vals[(y * w + x_) * c + ch] if 0 <= y < h and 0 <= x_ < w else 0
                        out.extend(dot(get, j) for j in range(rows))
                vals, cur_shape = out, (oh, ow, rows)
            acc_frac = op["acc_frac"]
    return vals


def _float_weights(q, i, op):
    """Op ``i`` as a float64 CSR matrix of integer multipliers: codes, ±1, or ``±2**t`` (log8)."""
    v = q.values(i)
    if op["w"] == "log8":
        sign, exponent, zero = log.split(v, LOG8)
        t = exponent.astype(np.int64) + op["acc_frac"] - op["x_frac"]
        if np.any(t[~zero] < 0):
            raise InputError(f"layer {op['name']}: a log8 shift is a right shift; float_forward needs left shifts")
        v = np.where(zero, 0.0, np.where(sign == 1, -1.0, 1.0) * np.ldexp(1.0, np.where(zero, 0, t)))
    a = q.arrays
    return scipy.sparse.csr_matrix((v.astype(np.float64), a[f"{i}.indices"].astype(np.int32),
                                    a[f"{i}.indptr"].astype(np.int64)), shape=tuple(op["shape"]))


def float_forward(q, x):
    """Scores of uint8 images ``x`` by the module's rules in float64, with ``scipy.sparse`` CSR products.

    Every value is an integer held exactly: products of codes are exact, and at each layer the bound
    ``max|x| * max_row sum|W| + max|bias|`` on every partial sum is checked to stay below ``2**53``, so the
    float64 sums are the exact integer sums in any order. Requantization is ``rint(acc / 2**s)``
    (an exact power-of-two division, ties to even) clipped to the activation range.

    Returns
    -------
    numpy.ndarray of float64, shape (N, classes)

    Raises
    ------
    ArithmeticError
        If the bound does not hold (the float64 result could be rounded).
    """

    def layer(i, op, acc, acc_frac, first):
        if not first:
            hi = 2.0 ** (op["x_bits"] - 1)
            acc = np.clip(np.rint(np.ldexp(acc, op["x_frac"] - acc_frac)), -hi, hi - 1)
        cols, hw = im2col(acc, op["kernel"], op["stride"], op["padding"]) if op["op"] == "conv" else (acc, None)
        w = _float_weights(q, i, op)
        bias = q.arrays[f"{i}.bias"].astype(np.float64)
        row_sum = float(abs(w).sum(axis=1).max()) if w.nnz else 0.0
        bound = row_sum * float(np.abs(cols).max(initial=0)) + float(np.abs(bias).max(initial=0))
        if bound >= 2.0**53:
            raise RangeError(f"layer {op['name']}: partial sums may reach 2**53; float64 is not exact")
        return np.asarray((w @ cols.T).T) + bias, hw

    return _walk(q, x, np.float64, layer)[0]


def check_oracle(q, x):
    """Compare :meth:`SparseModel.forward_int` with :func:`oracle_forward` on every image of ``x``.

    Returns
    -------
    dict
        ``equal`` (every score of every image), ``images``, ``mismatched_images``.
    """
    scores = q.forward_int(x)
    bad = [k for k in range(len(x)) if [int(v) for v in scores[k]] != oracle_forward(q, x[k])]
    return {"equal": not bad, "images": len(x), "mismatched_images": bad}


def check_float(q, x, batch_size=200):
    """Compare :meth:`SparseModel.forward_int` with :func:`float_forward` on every image of ``x``, in batches.

    Returns
    -------
    dict
        ``equal`` (every score of every image), ``images``, ``mismatched_images``.
    """
    x = np.asarray(x)
    bad = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        same = np.all(q.forward_int(xb).astype(np.float64) == float_forward(q, xb), axis=1)
        bad.extend(int(k) + i for k in np.flatnonzero(~same))
    return {"equal": not bad, "images": len(x), "mismatched_images": bad}


def format_storage(rows):
    """A table of exports: format, parameters, nonzero, ratio, bytes (and vs dense float32), test error (or
    validation error, rows keyed ``val_error``), check."""
    key = "val_error" if rows and "val_error" in rows[0] else "test_error"
    lines = [f"{'export':8s} {'params':>9s} {'nonzero':>8s} {'ratio':>7s} {'bytes':>9s} {'vs f32':>7s} "
             f"{key[:-6] + ' err':>8s}  check"]
    for r in rows:
        check = ("round trip exact" if r["format"] == "float32" else
                 f"integer == float64 CSR oracle on {r['float_checked']:,} images, == Python-int oracle on "
                 f"{r['checked']}") if r["exact"] else "MISMATCH"
        ratio = f"{r['ratio']:6.1f}x" if r["ratio"] is not None else "    inf"
        lines.append(f"{r['format']:8s} {r['params']:9,d} {r['nonzero']:8,d} {ratio} {r['bytes']:9,d} "
                     f"{r['float32_bytes'] / r['bytes']:6.1f}x {100 * r[key]:7.2f}%  {check}")
    bits = rows[0]["index_bits"] if rows else 16
    lines.append(f"(bytes: stored values + {bits}-bit column indices + 32-bit row pointers + biases (float32 or "
                 "int32 codes); ternary values are 1 sign bit each in uint64 words)")
    return "\n".join(lines)


__all__ = ["SparseModel", "FORMATS", "from_model", "load", "quantize", "oracle_forward", "check_oracle",
           "float_forward", "check_float", "format_storage", "name_layers", "check_format"]
