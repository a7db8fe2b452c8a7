"""Checks shared by the tests of bitsim's trainers."""

import numpy as np


def same_files(a, b):
    """Assert that two ``.npz`` files hold the same arrays, bit for bit."""
    with np.load(a) as left, np.load(b) as right:
        assert sorted(left.files) == sorted(right.files)
        for key in left.files:
            assert left[key].tobytes() == right[key].tobytes(), key


def train_both_statistics(train, running_cfg, precise_cfg, data, tmp_path):
    """Train with running and with precise batch-norm statistics; check that training is the same.

    The precise run's ``*_running`` columns must equal the running run's errors, and both runs'
    training states (checkpoints, running averages included) and optimizer states must be equal bit
    for bit.

    Returns
    -------
    model, history
        The precise run's kept model and history.
    """
    quiet = dict(data=data, progress=False, log=lambda line: None)
    _, running = train(running_cfg, out_dir=tmp_path / "running", **quiet)
    model, precise = train(precise_cfg, out_dir=tmp_path / "precise", **quiet)
    assert len(precise) == len(running)
    for a, b in zip(running, precise):
        assert (b["train_loss"], b["val_error_running"], b["test_error_running"]) == \
            (a["train_loss"], a["val_error"], a["test_error"])
    for name in ("checkpoint.npz", "optimizer.npz"):
        same_files(tmp_path / "running" / name, tmp_path / "precise" / name)
    return model, precise


def record_translations(monkeypatch, module):
    """Make ``module.translate`` record every call; return the list of ``(images, dy, dx)`` it fills."""
    from bitsim.datasets import translate

    calls = []

    def recording(images, dy, dx):
        calls.append((images.copy(), np.array(dy), np.array(dx)))
        return translate(images, dy, dx)

    monkeypatch.setattr(module, "translate", recording)
    return calls
