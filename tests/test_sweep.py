"""bitsim sweep: spec checks, the points' integer runs, resume, failures, and the same summary bytes on the
serial path, one and two local Dask workers."""

import csv
import json
import shutil

import numpy as np
import pytest

from bitsim.cli import main
from bitsim.errors import DamagedFileError, InputError, MissingFileError
from bitsim.sweep import run_sweep
from bitsim.sweep.formats import FORMATS, auto_frac
from bitsim.sweep.network import load_network, run_float64, run_integer
from bitsim.sweep.run import compact_bytes
from bitsim.sweep.spec import expand, load_spec, parse_spec
from sweep_models import spec_text, train_models

quiet = dict(progress=False, log=lambda line: None)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return train_models(tmp_path_factory.mktemp("models"))


def write_spec(path, *args, **kwargs):
    path.write_text(spec_text(*args, **kwargs))
    return path


def rows(out):
    with open(out / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_serial_one_and_two_workers_give_the_same_summary_bytes(models, tmp_path):
    spec = write_spec(tmp_path / "c.toml", "connect", models["connect"])
    serial = run_sweep(spec, tmp_path / "serial", workers=0, **quiet)
    assert serial["points"] == 40 and serial["failed"] == 0
    one = run_sweep(spec, tmp_path / "one", workers=1, **quiet)
    two = run_sweep(spec, tmp_path / "two", workers=2, **quiet)
    assert two["workers"] == 2 and one["workers"] == 1
    for name in ("summary.csv", "pareto.csv"):
        data = (tmp_path / "serial" / name).read_bytes()
        assert data == (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    points = sorted(p.name for p in (tmp_path / "serial" / "points").iterdir())
    assert points == sorted(p.name for p in (tmp_path / "two" / "points").iterdir()) and len(points) == 40
    assert (tmp_path / "serial" / "pareto.png").is_file()


def test_plot_axis_labels_are_short_byte_counts():
    assert [compact_bytes(v) for v in (0, 950, 1000, 42500, 120000, 2.5e6)] == ["0", "950", "1k", "42.5k", "120k",
                                                                                 "2.5M"]


def test_resume_skips_done_points_and_reruns_missing_ones(models, tmp_path):
    spec = write_spec(tmp_path / "s.toml", "surgery", models["surgery"], size=100)
    out = tmp_path / "out"
    first = run_sweep(spec, out, workers=0, **quiet)
    before = (out / "summary.csv").read_bytes()
    gone = sorted((out / "points").iterdir())[:5]
    for p in gone:
        p.unlink()
    (out / "points" / sorted((out / "points").iterdir())[0].name).write_text("{damaged")
    with pytest.raises(Exception, match="--resume"):
        run_sweep(spec, out, workers=0, **quiet)
    again = run_sweep(spec, out, workers=0, resume=True, **quiet)
    assert again["ran"] == 6 and again["skipped"] == first["points"] - 6
    assert (out / "summary.csv").read_bytes() == before
    assert run_sweep(spec, out, workers=0, resume=True, **quiet)["ran"] == 0


class Broken(FORMATS["binary"].__class__):
    """A registry entry whose quantizer fails when a point runs (the registry takes a format in one entry)."""

    name = "broken"

    def quantizer(self, p, reference):
        raise RuntimeError("this format cannot quantize")


def test_a_failing_point_is_recorded_and_the_others_run(models, tmp_path, monkeypatch):
    monkeypatch.setitem(FORMATS, "broken", Broken())
    spec = write_spec(tmp_path / "f.toml", "connect", models["connect"], size=50,
                      weight='[{format = "binary"}, {format = "broken"}, {format = "ternary"}]',
                      activation='{format = "fixed", bits = 8}', accumulator='bits = 16')
    status = main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "0", "--no-progress"])
    assert status == 1
    table = rows(tmp_path / "out")
    assert [r["status"] for r in table] == ["done", "failed", "done"]
    assert "cannot quantize" in table[1]["error"] and table[1]["test_error"] == ""
    record = json.loads((tmp_path / "out" / "points" / f"{table[1]['point']}.json").read_text())
    assert record["status"] == "failed" and "RuntimeError" in record["error"]
    monkeypatch.undo()  # the failed point runs again on resume, and fails again without the entry
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--resume", "--workers", "0",
                 "--no-progress"]) == 2


@pytest.mark.parametrize("edit, message", [
    (("{format = \"binary\"}", "{format = \"posit\"}"), "formats"),
    (("bits = [4, 8]", "bits = [4, 40]"), "an integer in \\[2, 16\\]"),
    (("names = \"*\"", "names = [\"fc1\", \"conv9\"]"), "no layer 'conv9'"),
    (("names = \"*\"", "names = [\"fc1\"]"), "no group gives a format"),
    (("bits = [12, 24]", "bits = [12, 99]"), "an integer in \\[2, 62\\]"),
    (("{format = \"log\", exp_bits = 3}", "{format = \"log\", exp_bits = 5}"), None),
    (("[accumulator]", "[constraints]\nmax_weight_bytes = 10\n[accumulator]"), "no point of the space fits"),
    (("[data]", "[data]\nbogus = 1"), "no such field"),
    (("[model]", "[model\n"), "not a valid TOML file"),
])
def test_bad_specs_are_clear_errors_before_any_work(models, tmp_path, capsys, edit, message):
    text = spec_text("connect", models["connect"]).replace(*edit)
    (tmp_path / "bad.toml").write_text(text)
    status = main(["sweep", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "out"), "--workers", "0",
                   "--no-progress"])
    if message is None:  # a valid edit, as a control
        assert status == 0
        return
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert __import__("re").search(message, err), err
    assert not (tmp_path / "out").exists()


def test_a_random_sample_needs_its_count():
    with pytest.raises(DamagedFileError, match="random sample needs"):
        parse_spec(spec_text("connect", "m.json").replace("[[space.layers]]", "[space]\nsample = \"random\"\n\n"
                                                                              "[[space.layers]]"))


def test_random_sample_is_seeded_and_in_grid_order(models, tmp_path):
    base = spec_text("connect", models["connect"]).replace("[[space.layers]]",
                                                           "[space]\nsample = \"random\"\ncount = 7\nseed = SEED\n\n"
                                                           "[[space.layers]]")
    net = load_network("connect", models["connect"])
    picks = []
    for seed in (1, 1, 2):
        (tmp_path / "r.toml").write_text(base.replace("SEED", str(seed)))
        picks.append(expand(load_spec(tmp_path / "r.toml"), net, net.sha256, {}))
    assert len(picks[0]) == 7 and picks[0] == picks[1] and picks[0] != picks[2]
    (tmp_path / "g.toml").write_text(spec_text("connect", models["connect"]))
    grid = expand(load_spec(tmp_path / "g.toml"), net, net.sha256, {})
    positions = [grid.index(c) for c in picks[0]]
    assert positions == sorted(positions)


def test_integer_run_matches_the_float_model_with_wide_formats(models):
    from bitsim.datasets import load_mnist

    data = load_mnist()
    images = data["x_test"][:200]
    for kind in ("connect", "surgery"):
        net = load_network(kind, models[kind])
        seen, scores = run_float64(net, images)
        assert np.array_equal(scores.argmax(1), net.predict_float(images))
        calib, _ = run_float64(net, data["x_train"][:100])
        wide = {"weight": {"format": "fixed", "bits": 16, "frac": "auto", "rounding": "nearest_even"},
                "activation": {"format": "fixed", "bits": 16, "frac": "auto", "rounding": "nearest_even"}}
        layers = {n: wide for n in net.names}
        pred, counts = run_integer(net, layers, {"bits": 48, "edge": "saturate"}, calib, images)
        assert counts["accumulator"] == 0
        assert np.mean(pred == scores.argmax(1)) >= 0.98
        narrow, counts = run_integer(net, layers, {"bits": 20, "edge": "wrap"}, calib, images)
        assert counts["accumulator"] > 0


def test_format_rules_by_hand():
    fixed, log, ternary, binary = FORMATS["fixed"], FORMATS["log"], FORMATS["ternary"], FORMATS["binary"]
    from bitsim.formats.modes import Counts

    counts = Counts()
    assert auto_frac(8, 1.0) == 6 and auto_frac(8, 0.99) == 7 and auto_frac(4, 3.0) == 1
    q = fixed.quantizer({"bits": 4, "frac": 1, "rounding": "nearest_even"}, [1.0])
    assert q.codes([0.25, 0.75, 5.0, -9.0, 0.2], counts).tolist() == [0, 2, 7, -8, 0] and q.scale == 0.5
    assert counts.saturated == 2 and counts.flushed == 2
    # max 3 -> largest exponent ceil(log2 3) = 2; 2 exponent bits give exponents 0, 1, 2 (field -2 means zero)
    q = log.quantizer({"exp_bits": 2, "offset": "auto", "rounding": "linear"}, [3.0])
    assert q.scale == 1.0 and q.codes([4.0, -2.0, 0.0, 16.0], Counts()).tolist() == [4, -2, 0, 4]
    q = ternary.quantizer({"threshold": 0.5}, [1.0, -3.0, 0.1, 0.0])
    assert q.codes([1.0, -3.0, 0.1, 0.0], Counts()).tolist() == [1, -1, 0, 0] and q.scale == 2.0
    q = binary.quantizer({}, [1.0, -3.0])
    assert q.codes([0.0, -0.5], Counts()).tolist() == [1, -1] and q.scale == 2.0
    with pytest.raises(InputError, match="unknown format"):
        from bitsim.sweep.formats import format_of

        format_of("posit")


def test_overwrite_and_foreign_directories(models, tmp_path):
    spec = write_spec(tmp_path / "c.toml", "connect", models["connect"], size=20, accumulator="bits = 16")
    run_sweep(spec, tmp_path / "out", workers=0, **quiet)
    run_sweep(spec, tmp_path / "out", workers=0, overwrite=True, **quiet)
    (tmp_path / "out" / "mine.txt").write_text("not bitsim's")
    with pytest.raises(Exception, match="did not write"):
        run_sweep(spec, tmp_path / "out", workers=0, overwrite=True, **quiet)
    assert (tmp_path / "out" / "mine.txt").exists()
    shutil.rmtree(tmp_path / "out")


def test_minifloat_entry_and_impossible_widths():
    from bitsim.formats.modes import Counts

    mini = FORMATS["minifloat"]
    p = {"type": "e4m3", "rounding": "nearest_even"}
    # max |ref| 3 -> divide by 2**-7 (3 * 128 = 384 <= 448); codes in units of E4M3's 2**-9, so scale 2**-16
    q = mini.quantizer(p, [3.0, -0.1])
    counts = Counts()
    assert q.scale == 2.0**-16 and mini.bits(p) == 8 and mini.code_bits(p) == 18
    assert q.codes([3.0, -0.1, 100.0, 1e-9], counts).tolist() == [196608, -6656, 229376, 0]
    assert counts.saturated == 1 and counts.flushed == 1
    text = spec_text("connect", "m.json", weight='{format = "minifloat", type = "e5m2"}',
                     activation='{format = "minifloat", type = ["e4m3", "e5m2"]}')
    with pytest.raises(DamagedFileError, match="impossible widths"):
        parse_spec(text)
    assert len(parse_spec(text.replace('["e4m3", "e5m2"]', '"e4m3"'))["space"]["groups"][0][2]) == 1


def test_a_directory_or_a_missing_file_as_the_spec_is_named_as_such(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        load_spec(tmp_path)
    with pytest.raises(MissingFileError, match="no such spec file"):
        load_spec(tmp_path / "absent.toml")
