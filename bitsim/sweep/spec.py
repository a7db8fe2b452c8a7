"""The sweep specification: a TOML file, checked before any work, and the points it names.

:func:`load_spec` reads and checks the file alone (its schema, the formats and their parameters, widths
that cannot work); :func:`check_layers` checks it against the model's layers; :func:`expand` lists the
points: the grid, or a seeded random sample of it, less the points the constraints rule out. The format
of the file is in ``docs/sweep.md``.
"""

import itertools
import math
import tomllib
from pathlib import Path

from ..errors import DamagedFileError, InputError, MissingFileError
from ..formats.rng import Philox
from ..io import canonical_sha256
from ..kernels.accumulate import EDGES, MAX_WIDTH
from ..kernels.mx import RULES as MX_RULES
from ..schema import OBJECT, Either, Int, ListOf, OneOf, Str, validate
from .formats import FORMATS, canonical, format_of, pair_error
from .gru_net import GRU_FORMATS, GRU_PARAMS, gru_canonical, gru_costs, gru_pair_error
from .qonnx_net import QUANT_PARAMS, canonical_quant, choice_error, qonnx_costs

__all__ = ["SPEC_SCHEMA", "QONNX_SCHEMA", "GRU_SCHEMA", "MODEL_KINDS", "MAX_GRID", "MAX_SPEC_BYTES", "load_spec",
           "parse_spec", "check_layers", "check_quantizers", "expand", "expand_qonnx", "expand_gru", "point_id",
           "costs"]

MAX_GRID = 1_000_000  # points a grid may have before constraints and sampling
MAX_SPEC_BYTES = 1_000_000
MAX_PRODUCT_BITS = 60  # code magnitudes of a product: the accumulator kernel's bound (2**61)


def _one_or_list(leaf):
    return Either(leaf, ListOf(leaf, min_len=1, max_len=1000))


CHOICES = _one_or_list(OBJECT)
SPEC_SCHEMA = {
    "model": {"kind": Str(r".+", "a model kind"), "file": Str(r".+", "a file name")},
    "data?": {"set?": OneOf("mnist"), "file?": Str(r".+", "a file name"), "size?": Int(1, 10_000),
              "calibration?": Int(1, 60_000)},
    "space": {"sample?": OneOf("grid", "random"), "count?": Int(1, MAX_GRID), "seed?": Int(0, 2**63 - 1),
              "layers": ListOf({"names": _one_or_list(Str(r".+", "a layer name")), "weight": CHOICES,
                                "activation": CHOICES}, min_len=1, max_len=100)},
    "accumulator?": {"bits?": _one_or_list(Int(2, MAX_WIDTH)), "edge?": _one_or_list(OneOf(*EDGES)),
                     "mx?": _one_or_list(OneOf(*MX_RULES))},
    "constraints?": {"max_weight_bytes?": Int(0), "max_activation_bytes?": Int(0), "max_memory_bytes?": Int(0),
                     "max_multiplications?": Int(0)},
}
DEFAULT_DATA = {"set": "mnist", "size": 1000, "calibration": 500}
QONNX_SCHEMA = {
    "model": SPEC_SCHEMA["model"],
    "data?": {"set?": OneOf("mnist"), "file?": Str(r".+", "a file name"), "inputs?": Str(r".+", "a file name"),
              "labels?": Str(r".+", "a file name"), "size?": Int(1, 1_000_000)},
    "space": {"sample?": OneOf("grid", "random"), "count?": Int(1, MAX_GRID), "seed?": Int(0, 2**63 - 1),
              "quantizers": ListOf({"names": _one_or_list(Str(r".+", "a node name")), "quant": CHOICES},
                                   min_len=1, max_len=100)},
    "constraints?": SPEC_SCHEMA["constraints?"],
}
GRU_SCHEMA = {
    "model": SPEC_SCHEMA["model"],
    "data?": {"chars?": Int(2, 10_000_000), "streams?": Int(1, 4096)},
    "space": {"sample?": OneOf("grid", "random"), "count?": Int(1, MAX_GRID), "seed?": Int(0, 2**63 - 1),
              "weight": CHOICES, "activation": CHOICES},
    "constraints?": SPEC_SCHEMA["constraints?"],
}
MODEL_KINDS = {"connect": "the Connect MLP (kind = \"connect\", bitsim train connect)",
               "surgery": "LeNet-300-100 and LeNet-5 (kind = \"surgery\", bitsim train surgery)",
               "qonnx": "imported QONNX networks (kind = \"qonnx\", an .onnx file)",
               "gru": "the GRU language model (kind = \"gru\", bitsim train gru)"}
DEFAULT_ACCUMULATOR = {"bits": 32, "edge": "saturate", "mx": "exact"}


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _choices(value, path, where):
    """The canonical format choices a spec entry names (each list-valued parameter is a grid axis)."""
    out = []
    for i, choice in enumerate(_as_list(value)):
        at = f"{where}[{i}]" if isinstance(value, list) else where
        name = choice.get("format")
        if not isinstance(name, str) or name not in FORMATS:
            raise DamagedFileError(path, f"field {at}.format: expected one of the formats {list(FORMATS)}, "
                                         f"got {name!r}")
        entry = format_of(name)
        schema = {"format": OneOf(name), **{k: _one_or_list(v) for k, v in entry.params.items()}}
        validate(choice, schema, path, at)
        keys = [k for k in choice if k != "format"]
        for values in itertools.product(*(_as_list(choice[k]) for k in keys)):
            try:
                out.append(canonical({"format": name, **dict(zip(keys, values))}))
            except InputError as err:
                raise DamagedFileError(path, f"field {at}: {err}") from None
    unique = []
    for c in out:
        if c not in unique:
            unique.append(c)
    return unique


def parse_spec(text, path="spec"):
    """Check the text of a spec file and return it with defaults filled in and format choices expanded.

    Returns
    -------
    dict
        ``model``, ``data``, ``space`` (``sample``, ``count``, ``seed``, ``groups``: a list of
        ``(names, weight choices, activation choices)``), ``accumulator`` (lists of ``bits`` and ``edge``),
        ``constraints``.
    """
    try:
        raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as err:
        raise DamagedFileError(path, f"not a valid TOML file: {err}") from None
    validate({"model": raw.get("model")}, {"model": SPEC_SCHEMA["model"]}, path)
    kind = raw["model"]["kind"]
    if kind not in MODEL_KINDS:
        raise DamagedFileError(path, f"field $.model.kind: the sweep runs {', '.join(MODEL_KINDS.values())}; "
                                     f"{kind!r} is none of {list(MODEL_KINDS)}")
    validate(raw, {"qonnx": QONNX_SCHEMA, "gru": GRU_SCHEMA}.get(kind, SPEC_SCHEMA), path)
    space = raw["space"]
    sample = space.get("sample", "grid")
    if sample == "random" and "count" not in space:
        raise DamagedFileError(path, "field $.space.count: a random sample needs the number of points (count = N)")
    if sample == "grid" and ("count" in space or "seed" in space):
        raise DamagedFileError(path, "field $.space: count and seed belong to sample = \"random\"")
    if kind == "qonnx":
        return _parse_qonnx(raw, sample, path)
    if kind == "gru":
        return _parse_gru(raw, sample, path)
    groups = []
    for i, group in enumerate(space["layers"]):
        at = f"$.space.layers[{i}]"
        names = _as_list(group["names"])
        weights = _choices(group["weight"], path, f"{at}.weight")
        acts = _choices(group["activation"], path, f"{at}.activation")
        pairs = [(w, a, pair_error(w, a)) for w in weights for a in acts]
        if all(why is not None for _, _, why in pairs):
            raise DamagedFileError(path, f"field {at}: no pair of its weight and activation formats can go together: "
                                         f"{pairs[0][2]}")
        for w, a, why in pairs:
            if why is None and not format_of(w["format"]).blocked:
                bits = format_of(w["format"]).code_bits(w) + format_of(a["format"]).code_bits(a)
                if bits > MAX_PRODUCT_BITS:
                    raise DamagedFileError(path, f"field {at}: impossible widths: weight {w} times activation {a} "
                                                     f"makes products of up to 2**{bits}, beyond the accumulator "
                                                     f"kernel's 2**{MAX_PRODUCT_BITS}; use narrower codes")
        groups.append((names, weights, acts))
    acc = {**DEFAULT_ACCUMULATOR, **raw.get("accumulator", {})}
    return {"model": raw["model"], "data": {**DEFAULT_DATA, **raw.get("data", {})},
            "space": {"sample": sample, "count": space.get("count"), "seed": space.get("seed", 1), "groups": groups},
            "accumulator": {"bits": sorted(set(_as_list(acc["bits"]))),
                            "edge": list(dict.fromkeys(_as_list(acc["edge"]))),
                            "mx": list(dict.fromkeys(_as_list(acc["mx"])))},
            "constraints": raw.get("constraints", {})}


def _quant_choices(value, path, where):
    """The canonical quantizer choices of a spec entry (each list-valued parameter is a grid axis)."""
    out = []
    for i, choice in enumerate(_as_list(value)):
        at = f"{where}[{i}]" if isinstance(value, list) else where
        validate(choice, {k: _one_or_list(v) for k, v in QUANT_PARAMS.items()}, path, at)
        keys = sorted(choice)
        for values in itertools.product(*(_as_list(choice[k]) for k in keys)):
            c = canonical_quant(dict(zip(keys, values)))
            if c not in out:
                out.append(c)
    return out


def _parse_qonnx(raw, sample, path):
    data = raw.get("data", {})
    if "labels" in data and "inputs" not in data:
        raise DamagedFileError(path, "field $.data.labels: labels go with an inputs file (data.inputs = \"x.npy\")")
    if "inputs" in data and ("labels" not in data or "file" in data):
        raise DamagedFileError(path, "field $.data: an inputs file needs its labels (data.labels = \"y.npy\", one "
                                     "integer class per example) and no MNIST file")
    groups = []
    for i, group in enumerate(raw["space"]["quantizers"]):
        groups.append((_as_list(group["names"]), _quant_choices(group["quant"], path,
                                                                f"$.space.quantizers[{i}].quant")))
    space = raw["space"]
    return {"model": raw["model"], "data": {"size": 1000, **({} if "inputs" in data else {"set": "mnist"}), **data},
            "space": {"sample": sample, "count": space.get("count"), "seed": space.get("seed", 1), "groups": groups},
            "constraints": raw.get("constraints", {})}


def _gru_choices(value, path, where):
    """The canonical GRU format choices of a spec entry (each list-valued parameter is a grid axis)."""
    out = []
    for i, choice in enumerate(_as_list(value)):
        at = f"{where}[{i}]" if isinstance(value, list) else where
        name = choice.get("format")
        if name not in GRU_FORMATS:
            raise DamagedFileError(path, f"field {at}.format: the GRU takes the formats {list(GRU_FORMATS)}, "
                                         f"got {name!r}")
        validate(choice, {"format": OneOf(name), **{k: _one_or_list(v) for k, v in GRU_PARAMS[name].items()}},
                 path, at)
        keys = sorted(k for k in choice if k != "format")
        for values in itertools.product(*(_as_list(choice[k]) for k in keys)):
            c = gru_canonical({"format": name, **dict(zip(keys, values))})
            if c not in out:
                out.append(c)
    return out


def _parse_gru(raw, sample, path):
    weights = _gru_choices(raw["space"]["weight"], path, "$.space.weight")
    acts = _gru_choices(raw["space"]["activation"], path, "$.space.activation")
    pairs = [(w, a) for w in weights for a in acts if gru_pair_error(w, a) is None]
    if not pairs:
        raise DamagedFileError(path, f"field $.space: no pair of its weight and activation formats can go together: "
                                     f"{gru_pair_error(weights[0], acts[0])}")
    space = raw["space"]
    return {"model": raw["model"], "data": {"set": "shakespeare", "chars": 20000, "streams": 16,
                                            **raw.get("data", {})},
            "space": {"sample": sample, "count": space.get("count"), "seed": space.get("seed", 1), "pairs": pairs},
            "constraints": raw.get("constraints", {})}


def expand_gru(spec, network, model_sha256, data_id, path="spec"):
    """The points of a GRU ``spec``: its (weight, activation) pairs in grid order (weights outer), less those the
    constraints rule out, or a seeded random sample of them (as :func:`expand`).

    Returns
    -------
    list of dict
        Each ``{'model', 'data', 'weight', 'activation'}``.
    """
    model = {"kind": "gru", "sha256": model_sha256}
    configs = [{"model": model, "data": data_id, "weight": w, "activation": a} for w, a in spec["space"]["pairs"]
               if _fits(gru_costs(network.params, w, a), spec["constraints"])]
    return _sampled(configs, spec, path)


def load_spec(path):
    """Read and check a spec file (:func:`parse_spec`); relative file names in it are taken from its directory."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a directory; give the sweep's spec file (TOML), e.g. docs/sweeps/connect.toml")
    if not path.is_file():
        raise MissingFileError(f"{path}: no such spec file")
    data = path.read_bytes()
    if len(data) > MAX_SPEC_BYTES:
        raise DamagedFileError(path, f"a spec file is at most {MAX_SPEC_BYTES} bytes, this one has {len(data)}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DamagedFileError(path, f"not UTF-8 text: {err}") from None
    spec = parse_spec(text, path)
    base = path.resolve().parent
    spec["model"]["file"] = str(base / spec["model"]["file"])
    for key in ("file", "inputs", "labels"):
        if key in spec["data"]:
            spec["data"][key] = str(base / spec["data"][key])
    return spec


def _named_once(spec, names, path, what, unknown):
    """The names the spec's groups give (``'*'`` aside), each one of ``names`` (else the error ``unknown(name)``)
    and named by one group; at most one group names ``'*'``."""
    named = [n for group in spec["space"]["groups"] for n in group[0] if n != "*"]
    for n in named:
        if n not in names:
            raise InputError(f"{path}: {unknown(n)}; its {what}s are {', '.join(names)}")
    twice = sorted({n for n in named if named.count(n) > 1})
    if twice:
        raise InputError(f"{path}: {what} {twice[0]!r} is named by more than one group; name each {what} once")
    if sum("*" in group[0] for group in spec["space"]["groups"]) > 1:
        raise InputError(f"{path}: only one group may name '*' (the {what}s no other group names)")
    return named


def check_layers(spec, names, path="spec"):
    """Check that the spec's groups cover the model's layers ``names`` exactly once (``'*'``: every layer no other
    group names); return ``[(layer names, weight choices, activation choices)]`` with the names resolved."""
    named = _named_once(spec, names, path, "layer", lambda n: f"the model has no layer {n!r}")
    resolved = []
    for group_names, weights, acts in spec["space"]["groups"]:
        layer_names = [n for n in names if n not in named] if "*" in group_names else list(group_names)
        if layer_names:
            resolved.append((layer_names, weights, acts))
    missing = [n for n in names if not any(n in g[0] for g in resolved)]
    if missing:
        raise InputError(f"{path}: no group gives a format to layer(s) {', '.join(missing)}; name them, or add a "
                         "group with names = \"*\"")
    return resolved


def costs(network, layers):
    """Memory and multiplications of a point's formats on ``network`` (``docs/sweep.md``, "What is recorded").

    Returns
    -------
    dict
        ``weight_bytes``: the weight codes, ``ceil(values * bits / 8)`` per layer (MX: and one E8M0 byte per
        block); ``activation_bytes``: the codes of one image's input to every layer, ``ceil(inputs * bits / 8)``
        per layer (MX: and its E8M0 bytes); ``multiplications`` per image: the products of each layer
        (dense: ``inputs * outputs``; convolution: output positions times kernel size times output channels)
        whose weight and activation formats both need a multiplier, plus one rescale per output value of
        every layer.
    """
    weight = activation = mults = 0
    for layer in network.layers:
        w, a = layers[layer.name]["weight"], layers[layer.name]["activation"]
        fw, fa = format_of(w["format"]), format_of(a["format"])
        weight += fw.storage_bytes(w, *layer.weight.shape)
        activation += fa.storage_bytes(a, 1, layer.inputs)
        mults += layer.outputs + (0 if fw.multiplier_free or fa.multiplier_free else layer.products)
    return {"weight_bytes": weight, "activation_bytes": activation, "multiplications": mults}


def _fits(c, limits):
    checks = {"max_weight_bytes": c["weight_bytes"], "max_activation_bytes": c["activation_bytes"],
              "max_memory_bytes": c["weight_bytes"] + c["activation_bytes"],
              "max_multiplications": c["multiplications"]}
    return all(checks[k] <= v for k, v in limits.items())


def point_id(config):
    """The name of a point: the first 16 hex digits of the SHA-256 of its canonical configuration."""
    return canonical_sha256(config)[:16]


def expand(spec, network, model_sha256, data_id, path="spec"):
    """The points of ``spec`` on ``network``: their configurations, in the grid's order.

    The grid is the product of each group's (weight, activation) pairs (less those :func:`pair_error`
    refuses), in the order of the groups, then the accumulator widths and edges, then the MX accumulation
    rules (only for points with an MX layer; a point whose layers are all MX has no width or edge); points the
    constraints rule out are dropped; a random sample keeps
    ``count`` of the rest, chosen by the ``count`` smallest ``Philox(seed)`` draws (one per point, ties by
    position), listed in grid order.

    Returns
    -------
    list of dict
        Each ``{'model', 'data', 'layers', 'accumulator'}``.
    """
    groups = check_layers(spec, network.names, path)
    convolutions = {layer.name for layer in network.layers if layer.conv is not None}
    axes = []
    for names, weights, acts in groups:
        pairs = [(w, a) for w in weights for a in acts if pair_error(w, a) is None]
        conv = [n for n in names if n in convolutions]
        if conv and any(format_of(w["format"]).blocked for w, _ in pairs):
            raise InputError(f"{path}: layer {conv[0]!r} is a convolution; the MX formats are for dense layers "
                             f"(the dense layers are {', '.join(n for n in network.names if n not in convolutions)})")
        axes.append(pairs)
    acc = spec["accumulator"]
    size = math.prod(len(axis) for axis in axes) * len(acc["bits"]) * len(acc["edge"]) * len(acc["mx"])
    if size > MAX_GRID:
        raise InputError(f"{path}: the grid has {size:,d} points, more than {MAX_GRID:,d}; give fewer choices "
                         "(a random sample is drawn from the grid, which must still be listed)")
    model = {"kind": spec["model"]["kind"], "sha256": model_sha256}
    configs = []
    for pairs in itertools.product(*axes):
        layers = {}
        for (names, _, _), (w, a) in zip(groups, pairs):
            for n in names:
                layers[n] = {"weight": w, "activation": a}
        layers = {n: layers[n] for n in network.names}
        if not _fits(costs(network, layers), spec["constraints"]):
            continue
        blocked = [format_of(layers[n]["weight"]["format"]).blocked for n in network.names]
        integer = [{"bits": bits, "edge": edge} for bits in acc["bits"] for edge in acc["edge"]] if not all(blocked) \
            else [{}]
        for accumulator in integer:
            for rule in acc["mx"] if any(blocked) else [None]:
                configs.append({"model": model, "data": data_id, "layers": layers,
                                "accumulator": accumulator if rule is None else {**accumulator, "mx": rule}})
    return _sampled(configs, spec, path)


def _sampled(configs, spec, path):
    """The points left by the constraints, or a random sample of ``count`` of them (an empty space: an error)."""
    if not configs:
        raise InputError(f"{path}: no point of the space fits the constraints {spec['constraints']}; relax them")
    if spec["space"]["sample"] == "random" and spec["space"]["count"] < len(configs):
        import numpy as np

        draws = Philox(spec["space"]["seed"]).uint32(len(configs))
        keep = np.sort(np.argsort(draws, kind="stable")[:spec["space"]["count"]])
        configs = [configs[i] for i in keep]
    return configs


def check_quantizers(spec, network, path="spec"):
    """Resolve the spec's quantizer groups on a QONNX ``network``: ``[(quantizer names, choices)]``.

    A name must be one of the graph's quantizers (``'*'``: every quantizer no other group names), named once;
    every choice must suit every quantizer of its group (:func:`bitsim.sweep.qonnx_net.choice_error`).
    Quantizers no group names stay as the graph has them.
    """
    names = network.names
    others = {node.name: node.op_type for node in network.graph.nodes}
    named = _named_once(spec, names, path, "quantizer", lambda n: f"node {n!r} is a {others[n]}, not a quantizer"
                        if n in others else f"the model has no node {n!r}")
    resolved = []
    for group_names, choices in spec["space"]["groups"]:
        members = [n for n in names if n not in named] if "*" in group_names else list(group_names)
        for n in members:
            for choice in choices:
                why = choice_error(network.quantizer(n), choice)
                if why:
                    raise InputError(f"{path}: {why}")
        if members:
            resolved.append((members, choices))
    return resolved


def expand_qonnx(spec, network, model_sha256, data_id, path="spec"):
    """The points of a QONNX ``spec`` on ``network``, in grid order: the product of the groups' choices, less
    the points the constraints rule out, or a seeded random sample of them (as :func:`expand`).

    Returns
    -------
    list of dict
        Each ``{'model', 'data', 'quantizers'}``: quantizer name -> canonical choice, in graph order.
    """
    groups = check_quantizers(spec, network, path)
    size = math.prod(len(choices) for _, choices in groups)
    if size > MAX_GRID:
        raise InputError(f"{path}: the grid has {size:,d} points, more than {MAX_GRID:,d}; give fewer choices")
    model = {"kind": "qonnx", "sha256": model_sha256}
    order = {n: i for i, n in enumerate(network.names)}
    configs = []
    for picked in itertools.product(*(choices for _, choices in groups)):
        chosen = {n: c for (names, _), c in zip(groups, picked) for n in names}
        chosen = dict(sorted(chosen.items(), key=lambda item: order[item[0]]))
        if _fits(qonnx_costs(network, chosen), spec["constraints"]):
            configs.append({"model": model, "data": data_id, "quantizers": chosen})
    return _sampled(configs, spec, path)
