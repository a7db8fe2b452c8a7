"""A whole sweep: check the spec against the model, prepare the output directory, run the points that are not
done, write the summary, the Pareto front and its plot (``docs/sweep.md``)."""

import json
import math
from pathlib import Path

from ..datasets import MNIST_SHA256, load_mnist
from ..errors import CheckFailed, InputError
from ..io import atomic_write_bytes, save_plot, sha256_file
from ..outputs import prepare_run_dir
from .engine import run_points
from .network import load_network
from .points import (Context, done_points, evaluate_point, pareto, read_point, summary_csv, summary_rows, timing_csv,
                     write_point)
from .gru_net import GRUContext, load_gru
from .qonnx_net import QonnxContext, load_qonnx
from .spec import expand, expand_gru, expand_qonnx, load_spec, point_id

__all__ = ["KIND", "OWNED", "prepare", "run_sweep", "write_results", "plot_pareto", "compact_bytes"]

KIND = "bitsim sweep"
OWNED = ("points/", "spec.toml", "summary.csv", "pareto.csv", "timing.csv", "pareto.png", "sweep.json")


def _qonnx_data(spec, graph, spec_path):
    """The evaluation inputs (shaped as the graph's input), their labels and the data's identity in a point."""
    from ..io import read_inputs

    data, size = spec["data"], spec["data"]["size"]
    if "inputs" in data:
        x = read_inputs(data["inputs"], ("uint8", "int8", "float32"))
        labels = read_inputs(data["labels"], ("uint8", "int16", "int32", "int64"))
        data_id = {"inputs": sha256_file(data["inputs"]), "labels": sha256_file(data["labels"]), "size": size}
    else:
        mnist = load_mnist(data.get("file"))
        x, labels = mnist["x_test"], mnist["y_test"]
        data_id = {"set": "mnist", "size": size,
                   "sha256": MNIST_SHA256 if "file" not in data else sha256_file(data["file"])}
    shape = graph.shapes[graph.inputs[0]]
    per_example = math.prod(shape[1:])
    if len(graph.inputs) != 1 or x[0].size != per_example:
        raise InputError(f"{spec_path}: the model's input {graph.inputs} of shape {tuple(shape)} takes "
                         f"{per_example} values per example; the data has {x[0].size}: give data.inputs (and "
                         "data.labels) shaped for it")
    if size > min(len(x), len(labels)) or size % shape[0]:
        raise InputError(f"{spec_path}: data.size = {size}: the data has {len(x)} examples and {len(labels)} labels, "
                         f"and the model's batch size is {shape[0]}; give at most that many, a multiple of the batch")
    return x[:size].reshape((size, *shape[1:])), labels[:size].reshape(-1).astype("int64"), data_id


def prepare(spec_path):
    """Everything checked before any work: ``(spec, network, configs, data)``."""
    spec = load_spec(spec_path)
    if spec["model"]["kind"] == "qonnx":
        network = load_qonnx(spec["model"]["file"])
        inputs, labels, data_id = _qonnx_data(spec, network.graph, spec_path)
        configs = expand_qonnx(spec, network, network.sha256, data_id, str(spec_path))
        return spec, network, configs, (inputs, labels)
    if spec["model"]["kind"] == "gru":
        from ..methods.loggru import shakespeare

        network = load_gru(spec["model"]["file"])
        test_ids = shakespeare()[3]
        if spec["data"]["chars"] > len(test_ids):
            raise InputError(f"{spec_path}: data.chars = {spec['data']['chars']}: the test split has "
                             f"{len(test_ids)} characters")
        data_id = {k: spec["data"][k] for k in ("set", "chars", "streams")}
        configs = expand_gru(spec, network, network.sha256, data_id, str(spec_path))
        return spec, network, configs, (test_ids[:spec["data"]["chars"]], spec["data"]["streams"])
    network = load_network(spec["model"]["kind"], spec["model"]["file"])
    data_file = spec["data"].get("file")
    data = load_mnist(data_file)
    data_id = {"set": spec["data"]["set"], "size": spec["data"]["size"], "calibration": spec["data"]["calibration"],
               "sha256": MNIST_SHA256 if data_file is None else sha256_file(data_file)}
    if data_id["size"] > len(data["x_test"]) or data_id["calibration"] > len(data["x_train"]):
        raise InputError(f"{spec_path}: the data set has {len(data['x_test'])} test and {len(data['x_train'])} "
                         "training images; lower data.size or data.calibration")
    configs = expand(spec, network, network.sha256, data_id, str(spec_path))
    return spec, network, configs, data


def compact_bytes(value):
    """A byte count as a short axis label: ``950``, ``120k``, ``2.5M``."""
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    return f"{value / 1e3:g}k" if value >= 1e3 else f"{value:g}"


ACTIVATIONS_OF = {"gru": "one stream's x_t and h_t codes", "qonnx": "one example's activation codes"}


def plot_pareto(rows, front, path, title, kind=""):
    """Test error against memory of every done point, the Pareto front joined (needs matplotlib); ``kind`` (the
    model's) names what the activation bytes are of."""
    def draw(ax):
        from matplotlib.ticker import FuncFormatter


        done = [r for r in rows if r["status"] == "done"]
        ax.scatter([r["weight_bytes"] + r["activation_bytes"] for r in done], [100 * r["test_error"] for r in done],
                   s=10, color="0.6", label=f"{len(done)} points")
        ax.plot([r["weight_bytes"] + r["activation_bytes"] for r in front], [100 * r["test_error"] for r in front],
                marker="o", color="C3", label="Pareto front")
        low, high = ax.get_xlim()
        if low > 0 and high / low >= 100:  # a log axis where the points span two decades or more
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: compact_bytes(v)))
        activations = ACTIVATIONS_OF.get(kind, "one image's activation codes")
        ax.set_xlabel(f"memory: weight codes + {activations} (bytes)")
        ax.set_ylabel("test error (%)")
        ax.set_title(title, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)

    return save_plot(path, draw, figsize=(6.4, 4))


def write_results(out, configs, network, title):
    """Write ``summary.csv``, ``timing.csv``, ``pareto.csv`` and ``pareto.png`` from the point files of ``configs``."""
    out = Path(out)
    records = [read_point(out / "points" / f"{point_id(c)}.json") for c in configs]
    names = list(configs[0]["quantizers"]) if "quantizers" in configs[0] else network.names
    rows = summary_rows(records, names)
    atomic_write_bytes(out / "summary.csv", summary_csv(rows))
    atomic_write_bytes(out / "timing.csv", timing_csv(records))
    front = pareto(rows)
    if front:
        atomic_write_bytes(out / "pareto.csv", summary_csv(front))
    plot = plot_pareto(rows, front, out / "pareto.png", title, network.kind) if front else None
    return rows, front, plot


def run_sweep(spec_path, out, workers=None, scheduler=None, resume=False, overwrite=False, progress=True, log=print):
    """Run the sweep of ``spec_path`` into ``out``.

    Parameters
    ----------
    spec_path : str or Path
    out : str or Path
        The output directory (:mod:`bitsim.outputs`: empty or absent, or ``resume`` / ``overwrite``).
    workers : int, optional
        0: serial; N: a local cluster of N processes (default one per core); ignored with ``scheduler``.
    scheduler : str, optional
        A running dask scheduler's address.
    resume : bool
        Skip the points whose files are done.
    overwrite : bool
    progress : bool
    log : callable

    Returns
    -------
    dict
        ``points``, ``skipped``, ``ran``, ``failed``, ``engine``, ``seconds``, ``rows``, ``front``, ``plot``.
    """
    spec, network, configs, data = prepare(spec_path)
    out = prepare_run_dir(out, KIND, OWNED, resume=resume, overwrite=overwrite)
    atomic_write_bytes(out / "spec.toml", Path(spec_path).read_bytes())
    ids = [point_id(c) for c in configs]
    if len(set(ids)) != len(ids):
        raise InputError(f"{spec_path}: two points of the space have the same configuration")
    done = done_points(out, ids) if resume else {}
    todo = [c for c, i in zip(configs, ids) if i not in done]
    log(f"sweep: {len(configs)} points, {len(done)} already done, {len(todo)} to run")
    info = {"engine": "none", "workers": 0, "seconds": 0.0, "points_seconds": 0.0}
    failed, received = 0, []
    if todo:
        if spec["model"]["kind"] == "qonnx":
            context = QonnxContext.build(network, *data)
        elif spec["model"]["kind"] == "gru":
            context = GRUContext.build(network, *data)
        else:
            context = Context.build(network, data, spec["data"]["size"], spec["data"]["calibration"])

        def keep(record):
            nonlocal failed
            failed += record["status"] != "done"
            received.append(record["id"])
            write_point(out, record)

        info = run_points(evaluate_point, context, todo, keep, workers=workers, scheduler=scheduler,
                          progress=progress)
    if sorted(received) != sorted(point_id(c) for c in todo):
        raise CheckFailed(f"the engine returned {len(received)} records for {len(todo)} points, not each point once")
    title = f"{spec['model']['kind']} {network.variant}: {len(configs)} points ({Path(spec_path).name})"
    rows, front, plot = write_results(out, configs, network, title)
    summary = {"points": len(configs), "skipped": len(done), "ran": len(todo), "failed": failed, **info}
    atomic_write_bytes(out / "sweep.json", (json.dumps(summary, indent=1) + "\n").encode())
    return {**summary, "rows": rows, "front": front, "plot": plot, "out": out}
