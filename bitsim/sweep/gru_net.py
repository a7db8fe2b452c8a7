"""The GRU language model of ``bitsim train gru`` in a sweep: the format of its weights and of its activations.

A point gives the GRU's parameters one weight format (``float32``, ``log`` or ``fixed``) and its input ``x_t`` and
hidden state ``h_t`` one activation format, converts the trained float32 model without retraining, as
``docs/gru.md`` does, and runs it with :mod:`bitsim.kernels.gru` over a slice of the Shakespeare test split,
recording next-character error and agreement with the float32 model (``docs/sweep.md``, "The GRU").
"""

import math
from dataclasses import dataclass

import numpy as np

from ..formats import fixed, log
from ..formats.fixed import FixedFormat
from ..formats.log import LogFormat
from ..formats.modes import Counts
from ..schema import Int, OneOf
from .formats import FIXED_ROUNDINGS, LOG_ROUNDINGS

__all__ = ["GRU_FORMATS", "GRU_PARAMS", "gru_canonical", "gru_label", "gru_pair_error", "GRUNetwork", "load_gru",
           "gru_formats", "gru_costs", "GRUContext"]

GRU_FORMATS = ("float32", "log", "fixed")
GRU_PARAMS = {"float32": {},
              "log": {"exp_bits": Int(2, 7), "rounding?": OneOf(*LOG_ROUNDINGS)},
              "fixed": {"bits": Int(2, 16), "rounding?": OneOf(*FIXED_ROUNDINGS)}}
GRU_DEFAULTS = {"float32": {}, "log": {"rounding": "linear"}, "fixed": {"rounding": "nearest_even"}}
WEIGHT_KEYS = ("Wx", "Wh", "b", "b_hn", "Wf", "bf")


def gru_canonical(choice):
    """A GRU format choice with its defaults filled in and its keys sorted."""
    p = {**GRU_DEFAULTS[choice["format"]], **choice}
    return {k: p[k] for k in sorted(p)}


def gru_label(choice):
    """A short name: ``float32``, ``log4/linear`` (a sign and 3 exponent bits), ``fixed8/nearest_even``."""
    if choice["format"] == "log":
        return f"log{1 + choice['exp_bits']}/{choice['rounding']}"
    if choice["format"] == "fixed":
        return f"fixed{choice['bits']}/{choice['rounding']}"
    return "float32"


def gru_pair_error(weight, activation):
    """Why a (weight, activation) pair cannot run, or None: fixed-point weights take the integer path
    (:func:`bitsim.kernels.gru.run_fixed_weights`), which needs fixed-point activations."""
    if weight["format"] == "fixed" and activation["format"] != "fixed":
        return (f"weight {gru_label(weight)} with activation {gru_label(activation)}: fixed-point weights run on "
                "integer products, which need fixed-point activations")
    return None


@dataclass
class GRUNetwork:
    """A trained GRU as a sweep target: its float32 parameters (:func:`bitsim.methods.loggru.plain_params`)."""

    params: dict
    sha256: str
    kind: str = "gru"
    variant: str = "gru"
    names: tuple = ("gru",)


def load_gru(path):
    """Read ``bitsim train gru``'s model (``best.json``) as a :class:`GRUNetwork`."""
    import hashlib
    from pathlib import Path

    from ..methods import loggru

    path = Path(path)
    manifest = path if path.suffix == ".json" else path.with_suffix(".json")
    model, _ = loggru.CharGRU.load(manifest)
    return GRUNetwork(loggru.plain_params(model), hashlib.sha256(manifest.read_bytes()).hexdigest(),
                      variant=f"GRU {model.gru.Wh.value.shape[1]} units")


def _log_format(choice, values=None, top=None):
    """The log code of ``choice`` for a vector (``docs/gru.md``): 7 exponent bits are the paper's Log8
    (exponents -63..63); fewer put their window's top at the largest exponent ``values`` encode to (or ``top``)."""
    if choice["exp_bits"] == 7:
        return LogFormat(rounding=choice["rounding"])
    if top is None:
        top = int(log.split(log.encode(np.float32(np.max(np.abs(values)))))[1])
    return LogFormat(exp_bits=choice["exp_bits"], exp_offset=top - (2 ** (choice["exp_bits"] - 1) - 1),
                     rounding=choice["rounding"])


def _fixed_format(choice, values):
    """The ``bits``-bit format with the most fractional bits that holds ``max |values|`` (docs/gru.md's rule)."""
    from ..methods.loggru import int_bits

    top = float(np.max(np.abs(values))) if np.size(values) else 0.0
    return FixedFormat(choice["bits"], choice["bits"] - 1 - int_bits(top), rounding=choice["rounding"])


def gru_formats(params, activation):
    """``(act, x_act)``: the code of ``h_t`` (and ``h * r``) and of ``x_t``, as ``docs/gru.md`` chooses them: log
    with its window's top at ``2**0`` for ``h`` (in (-1, 1)) and at the embedding's largest value for ``x``; fixed
    ``h`` in Q0.(bits-1) and ``x`` holding the embedding's largest magnitude; None for float32."""
    if activation["format"] == "float32":
        return None, None
    if activation["format"] == "log":
        return _log_format(activation, top=0), _log_format(activation, params["E"])
    return (FixedFormat(activation["bits"], activation["bits"] - 1, rounding=activation["rounding"]),
            _fixed_format(activation, params["E"]))


def _bits(choice):
    return {"float32": 32, "log": 1 + choice.get("exp_bits", 0), "fixed": choice.get("bits", 0)}[choice["format"]]


def gru_costs(params, weight, activation):
    """Memory and multiplications of a point.

    Returns
    -------
    dict
        ``weight_bytes``: ``Wx, Wh, b, (b_hn), Wf, bf`` at the weight format and the embedding table at the format
        of ``x_t`` (the model reads only coded rows; none for one-hot input), ``ceil(values * bits / 8)`` each;
        ``activation_bytes``: one stream's ``x_t`` and ``h_t``; ``multiplications`` per character: the products
        of ``Wh h``, ``Wh_n (h * r)`` and ``Wf h`` (the x-part is tabulated once per character), none when the
        weights or the activations are log codes (an exponent addition).
    """
    wbits, abits = _bits(weight), _bits(activation)
    total = sum(math.ceil(np.size(params[k]) * wbits / 8) for k in WEIGHT_KEYS if params.get(k) is not None)
    if params.get("input") != "onehot":
        total += math.ceil(np.size(params["E"]) * abits / 8)
    hidden, dim, vocab = params["Wh"].shape[1], params["E"].shape[1], params["Wf"].shape[0]
    free = "log" in (weight["format"], activation["format"])
    return {"weight_bytes": total, "activation_bytes": math.ceil((dim + hidden) * abits / 8),
            "multiplications": 0 if free else params["Wh"].size + vocab * hidden}


def _coded_weights(params, weight, x_act, counts):
    """The parameters' codes and formats at the weight format (``E`` in the format of ``x_t``)."""
    codes, fmts = {}, {}
    for key in ("E",) + WEIGHT_KEYS:
        value = params.get(key)
        if value is None:
            continue
        if weight["format"] == "log":
            fmts[key] = _log_format(weight, value)
            codes[key] = log.encode(value, fmts[key], counts=counts)
        else:
            fmts[key] = x_act if key == "E" else _fixed_format(weight, value)
            codes[key] = fixed.quantize(value, fmts[key], counts=counts)
    return codes, fmts


@dataclass
class GRUContext:
    """What every point of a GRU sweep reads: the parameters, the text slice as streams, the float32 model's
    predictions on it."""

    network: GRUNetwork
    ids: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    float_predictions: np.ndarray

    @classmethod
    def build(cls, network, ids, streams):
        """``ids``: the characters evaluated (each predicts the next), split into ``streams`` streams from h = 0."""
        from ..kernels.gru import run_gru_lm
        from ..methods.loggru import stream_bounds

        ids = np.asarray(ids, np.int64)
        starts, lengths = stream_bounds(len(ids) - 1, streams)
        base = run_gru_lm(network.params, ids, starts, lengths, None, None)[:-1]
        return cls(network, ids, starts, lengths, base)

    def predictions(self, config, counts):
        """The point's next-character predictions (positions ``0 .. len(ids) - 2``)."""
        from ..kernels.gru import run_fixed_weights, run_gru_lm
        from ..methods.loggru import decoded

        params, weight, activation = self.network.params, config["weight"], config["activation"]
        act, x_act = gru_formats(params, activation)
        args = (self.ids, self.starts, self.lengths, act, x_act, counts)
        if weight["format"] == "float32":
            return run_gru_lm(params, *args)[:-1]
        codes, fmts = _coded_weights(params, weight, x_act, counts)
        if weight["format"] == "log":
            return run_gru_lm(decoded(params, codes, fmts), *args)[:-1]
        return run_fixed_weights(codes, fmts, params["reset"], *args)[:-1]

    def result(self, config):
        """The recorded values of one point (``accumulator_events``: None, not recorded for the GRU)."""
        counts = Counts()
        predicted = self.predictions(config, counts)
        target, n = self.ids[1:], len(self.ids) - 1
        return {"test_error": int(np.sum(predicted != target)) / n,
                "agreement": int(np.sum(predicted == self.float_predictions)) / n,
                **gru_costs(self.network.params, config["weight"], config["activation"]),
                "accumulator_events": None, "saturated": counts.saturated, "underflows": counts.flushed}

