"""One point of a sweep: its evaluation (on any process), its result file, and the summary of many.

A point's file ``points/ID.json`` (``ID``: :func:`bitsim.sweep.spec.point_id`) holds its configuration, its
status (``done`` or ``failed``), its result or its error, and the seconds it took. The summary
(``summary.csv``) has one row per point of the spec in the grid's order, and no times: it is the same bytes
whichever engine ran the points and in whatever order they finished. The times are in ``timing.csv``.
"""

import csv
import io
import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DamagedFileError, one_line
from ..io import atomic_write_bytes, read_json
from ..schema import ANY, NULL, NUMBER, OBJECT, Either, OneOf, Str, validate
from .formats import label
from .network import run_float64, run_integer
from .gru_net import gru_label
from .qonnx_net import quant_label
from .spec import costs, point_id

__all__ = ["Context", "evaluate_point", "write_point", "read_point", "done_points", "summary_rows", "summary_csv",
           "timing_csv", "pareto", "RESULT_FIELDS", "POINT_SCHEMA"]

RESULT_FIELDS = ("test_error", "agreement", "weight_bytes", "activation_bytes", "multiplications",
                 "accumulator_events", "saturated", "underflows")
POINT_SCHEMA = {"bitsim_sweep_point": OneOf(1), "id": Str(r"[0-9a-f]{16}", "16 hex digits"), "config": OBJECT,
                "status": OneOf("done", "failed"), "result": Either(OBJECT, NULL), "error": Either(Str(), NULL),
                "seconds": NUMBER, "worker": ANY}


@dataclass
class Context:
    """What every point of a sweep reads: the network, the evaluation images and labels, the float model's
    predictions on them, and each layer's float64 inputs on the calibration images."""

    network: object
    images: np.ndarray
    labels: np.ndarray
    float_predictions: np.ndarray
    calibration: list

    @classmethod
    def build(cls, network, data, size, calibration):
        """From MNIST arrays (:func:`bitsim.datasets.load_mnist`): the first ``size`` test images, the first
        ``calibration`` training images."""
        images, labels = data["x_test"][:size], data["y_test"][:size].astype(np.int64)
        seen, _ = run_float64(network, data["x_train"][:calibration])
        return cls(network, images, labels, network.predict_float(images), seen)

    def result(self, config):
        """The recorded values of one point (``RESULT_FIELDS``)."""
        predictions, counts = run_integer(self.network, config["layers"], config["accumulator"], self.calibration,
                                          self.images)
        n = len(self.labels)
        return {"test_error": int(np.sum(predictions != self.labels)) / n,
                "agreement": int(np.sum(predictions == self.float_predictions)) / n,
                **costs(self.network, config["layers"]),
                "accumulator_events": counts["accumulator"], "saturated": counts["saturated"],
                "underflows": counts["underflows"]}


def evaluate_point(context, config):
    """Run one point: ``context.result(config)`` of a :class:`Context`, a QONNX network's
    :class:`bitsim.sweep.qonnx_net.QonnxContext` or the GRU's :class:`bitsim.sweep.gru_net.GRUContext`. Never
    raises for a failing point: the record says ``failed`` and holds the error.

    Returns
    -------
    dict
        The point's record (``POINT_SCHEMA``).
    """
    import socket

    started = time.perf_counter()
    record = {"bitsim_sweep_point": 1, "id": point_id(config), "config": config, "status": "done", "result": None,
              "error": None, "worker": socket.gethostname()}
    try:
        record["result"] = context.result(config)
    except Exception as err:  # noqa: BLE001 - a failing point is recorded, the others go on
        record.update(status="failed", error=one_line(err) + "\n" + traceback.format_exc(limit=-3))
    record["seconds"] = time.perf_counter() - started
    return record


def write_point(directory, record):
    """Write ``directory/points/ID.json`` atomically."""
    path = Path(directory) / "points" / f"{record['id']}.json"
    atomic_write_bytes(path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
    return path


def read_point(path):
    """A point's record, checked: its schema, and its name and ``id`` against the hash of its configuration."""
    record = validate(read_json(path, "sweep point"), POINT_SCHEMA, path)
    if record["id"] != point_id(record["config"]) or Path(path).stem != record["id"]:
        raise DamagedFileError(path, "its id is not the hash of its configuration (it was edited or damaged)")
    if record["status"] == "done" and not isinstance(record["result"], dict):
        raise DamagedFileError(path, "a done point needs its result")
    return record


def done_points(directory, ids):
    """``{id: record}`` of the points among ``ids`` whose files exist, are sound and are done (resume skips them).

    A damaged file or a failed point is not done: it is run again and its file replaced.
    """
    out = {}
    for i in ids:
        path = Path(directory) / "points" / f"{i}.json"
        if path.is_file():
            try:
                record = read_point(path)
            except (DamagedFileError, ValueError):
                continue
            if record["status"] == "done":
                out[i] = record
    return out


def summary_rows(records, layer_names):
    """One dict per record: the point, its formats per layer, its accumulator (width and edge: empty when every
    layer is MX; the MX accumulation rule: empty when no layer is), status, results, error. A QONNX point has one
    column per quantizer (``NAME.quant``: :func:`bitsim.sweep.qonnx_net.quant_label`) and no accumulator; its
    fields that do not apply are empty. A GRU point has ``weight`` and ``activation`` columns."""
    rows = []
    for index, r in enumerate(records):
        cfg = r["config"]
        row = {"index": index, "point": r["id"]}
        if "weight" in cfg:
            row["weight"], row["activation"] = gru_label(cfg["weight"]), gru_label(cfg["activation"])
        elif "quantizers" in cfg:
            for n in layer_names:
                row[f"{n}.quant"] = quant_label(cfg["quantizers"][n])
        else:
            for n in layer_names:
                row[f"{n}.weight"] = label(cfg["layers"][n]["weight"])
                row[f"{n}.activation"] = label(cfg["layers"][n]["activation"])
            row["accumulator_bits"] = cfg["accumulator"].get("bits", "")
            row["accumulator_edge"] = cfg["accumulator"].get("edge", "")
            row["mx_accumulation"] = cfg["accumulator"].get("mx", "")
        row["status"] = r["status"]
        for k in RESULT_FIELDS:
            value = None if r["result"] is None else r["result"][k]
            row[k] = "" if value is None else value
        row["error"] = "" if r["error"] is None else r["error"].splitlines()[0]
        rows.append(row)
    return rows


def _csv(rows, fields):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    return buffer.getvalue().encode()


def summary_csv(rows):
    """The bytes of ``summary.csv``: floats as Python's shortest round-trip ``repr``."""
    return _csv(rows, list(rows[0]))


def timing_csv(records):
    """The bytes of ``timing.csv``: point, seconds, host; not part of the reproducible summary."""
    rows = [{"point": r["id"], "seconds": round(r["seconds"], 6), "host": r.get("worker") or ""} for r in records]
    return _csv(rows, ["point", "seconds", "host"])


def pareto(rows):
    """The done rows no other done row beats on both test error and memory (weights + activations), by memory.

    A row is on the front when every row with less or equal memory has a higher error, ties broken by
    the grid order.
    """
    done = [r for r in rows if r["status"] == "done"]
    done.sort(key=lambda r: (r["weight_bytes"] + r["activation_bytes"], r["test_error"], r["index"]))
    front, best = [], None
    for r in done:
        if best is None or r["test_error"] < best:
            front.append(r)
            best = r["test_error"]
    return front
