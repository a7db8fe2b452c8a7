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

__all__ = ["SPEC_SCHEMA", "MODEL_KINDS", "MAX_GRID", "MAX_SPEC_BYTES", "load_spec", "parse_spec", "check_layers",
           "expand", "point_id", "costs"]

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
MODEL_KINDS = {"connect": "the Connect MLP (kind = \"connect\", bitsim train connect)",
               "surgery": "LeNet-300-100 and LeNet-5 (kind = \"surgery\", bitsim train surgery)"}
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
    validate(raw, SPEC_SCHEMA, path)
    if raw["model"]["kind"] not in MODEL_KINDS:
        raise DamagedFileError(path, f"field $.model.kind: the sweep runs {', '.join(MODEL_KINDS.values())}; "
                                     f"{raw['model']['kind']!r} is none of {list(MODEL_KINDS)} (the GRU and imported "
                                     "QONNX networks are not among them)")
    space = raw["space"]
    sample = space.get("sample", "grid")
    if sample == "random" and "count" not in space:
        raise DamagedFileError(path, "field $.space.count: a random sample needs the number of points (count = N)")
    if sample == "grid" and ("count" in space or "seed" in space):
        raise DamagedFileError(path, "field $.space: count and seed belong to sample = \"random\"")
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


def load_spec(path):
    """Read and check a spec file (:func:`parse_spec`); relative file names in it are taken from its directory."""
    path = Path(path)
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
    if "file" in spec["data"]:
        spec["data"]["file"] = str(base / spec["data"]["file"])
    return spec


def check_layers(spec, names, path="spec"):
    """Check that the spec's groups cover the model's layers ``names`` exactly once (``'*'``: every layer no other
    group names); return ``[(layer names, weight choices, activation choices)]`` with the names resolved."""
    named = [n for group in spec["space"]["groups"] for n in group[0] if n != "*"]
    for n in named:
        if n not in names:
            raise InputError(f"{path}: the model has no layer {n!r}; its layers are {', '.join(names)}")
    twice = sorted({n for n in named if named.count(n) > 1})
    if twice:
        raise InputError(f"{path}: layer {twice[0]!r} is named by more than one group; name each layer once")
    if sum("*" in group[0] for group in spec["space"]["groups"]) > 1:
        raise InputError(f"{path}: only one group may name '*' (the layers no other group names)")
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
    if not configs:
        raise InputError(f"{path}: no point of the space fits the constraints {spec['constraints']}; relax them")
    if spec["space"]["sample"] == "random" and spec["space"]["count"] < len(configs):
        import numpy as np

        draws = Philox(spec["space"]["seed"]).uint32(len(configs))
        keep = np.sort(np.argsort(draws, kind="stable")[:spec["space"]["count"]])
        configs = [configs[i] for i in keep]
    return configs
