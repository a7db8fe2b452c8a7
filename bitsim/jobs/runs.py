"""What the training jobs do alike around a run: its directory, its report file, its plots and the line
on its training time."""

import json

from ..io import atomic_write_bytes, save_plot
from ..outputs import prepare_run_dir


def open_run(args, command, bundles, files, out=None):
    """The run directory of a training command, ready as :func:`bitsim.outputs.prepare_run_dir` leaves it.

    Parameters
    ----------
    args : argparse.Namespace
        Gives ``out``, ``resume`` and ``overwrite`` (:func:`~bitsim.jobs.arguments.add_run_arguments`).
    command : str
        The command, e.g. ``'bitsim train bnn'``, recorded in the directory's marker.
    bundles : sequence of str
        The model bundles the run writes, each as ``NAME.json`` and ``NAME.npz``.
    files : sequence of str
        The run's other files.
    out : str or Path, optional
        The directory (default ``args.out``).

    Returns
    -------
    Path
    """
    owned = [f"{name}.{ext}" for name in bundles for ext in ("json", "npz")]
    return prepare_run_dir(args.out if out is None else out, command, owned + list(files), resume=args.resume,
                           overwrite=args.overwrite)


def save_json(path, value):
    """Write ``value`` to ``path`` as indented JSON, atomically.

    Parameters
    ----------
    path : Path
    value : dict or list
    """
    atomic_write_bytes(path, (json.dumps(value, indent=1) + "\n").encode())


def training_time(history):
    """``'training time   M min over N epochs (S s/epoch)'`` for the epochs of a training history.

    Parameters
    ----------
    history : list of dict
        One row per epoch, each with its ``seconds``.

    Returns
    -------
    str
    """
    total = sum(h["seconds"] for h in history)
    return f"training time   {total / 60:.1f} min over {len(history)} epochs ({total / len(history):.1f} s/epoch)"


__all__ = ["open_run", "save_json", "training_time", "save_plot"]
