"""The command-line pieces the jobs share: the :class:`Command` record each job fills in, the argument
types of counts, the options several trainers have in common, and the configuration they give."""

import argparse
from dataclasses import dataclass, field, fields
from typing import Callable, Optional

from ..datasets import load_mnist
from ..errors import InputError
from ..io import read_inputs
from ..methods.epochs import BN_STATS


@dataclass(frozen=True)
class Command:
    """One ``bitsim`` command: its help, its options and what it does.

    Attributes
    ----------
    help : str
        The line ``bitsim --help`` (or the group's ``--help``) shows for it.
    add_arguments : callable
        ``add_arguments(parser)`` declares the command's options on its ``argparse`` parser.
    run : callable
        ``run(args)`` does the job; it returns the exit status, or None for 0, and raises a
        :class:`~bitsim.errors.BitsimError` for bad input.
    description : str, optional
        The text of the command's own ``--help`` (default ``help``).
    epilog : str, optional
        Text after the options in the command's ``--help``.
    """

    help: str
    add_arguments: Callable
    run: Callable
    description: Optional[str] = None
    epilog: Optional[str] = None


@dataclass(frozen=True)
class Group:
    """A ``bitsim`` command whose next word names one of several commands (``bitsim train METHOD``).

    Attributes
    ----------
    help, description : str
        As in :class:`Command`.
    dest, metavar : str
        The attribute of the parsed arguments that holds the chosen word, and its name in the usage.
    commands : dict
        Word -> :class:`Command`, in the order ``--help`` lists them.
    epilog : str, optional
        As in :class:`Command`.
    """

    help: str
    description: str
    dest: str
    metavar: str
    commands: dict = field(default_factory=dict)
    epilog: Optional[str] = None


def positive_int(text):
    """The argparse type of counts that must be at least 1 (``--epochs``, ``--rows``, ``--batch-size``).

    Parameters
    ----------
    text : str

    Returns
    -------
    int

    Raises
    ------
    argparse.ArgumentTypeError
        ``text`` is not a whole number >= 1; argparse turns it into a usage error (exit status 2).
    """
    return _int_at_least(text, 1, "a positive integer")


def nonnegative_int(text):
    """The argparse type of counts where 0 means something (``--translate``, ``--validation-size``): as
    :func:`positive_int`, 0 included."""
    return _int_at_least(text, 0, "an integer >= 0")


def _int_at_least(text, low, what):
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def add_translate_argument(parser, defaults):
    """Add ``--translate N``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    defaults : configuration
        Gives the default ``translate``.
    """
    parser.add_argument("--translate", type=int, default=defaults.translate, metavar="N",
                        help="shift every training image by a random whole number of pixels, up to N in each "
                             "direction, drawn anew each epoch (docs/formats.md section 5); evaluation and "
                             f"batch-norm calibration use the images as they are (default {defaults.translate})")


def add_mnist_arguments(parser, defaults):
    """Add ``--bn-stats``, ``--calibration-size``, ``--train-size`` and ``--validation-size``: the MNIST
    images a run calibrates its batch norms on, trains on and validates on
    (:func:`bitsim.methods.mnist.mnist_splits`).

    Parameters
    ----------
    parser : argparse.ArgumentParser
    defaults : configuration
        Gives the defaults ``bn_stats``, ``calibration_size``, ``train_size`` and ``validation_size``.
    """
    parser.add_argument("--bn-stats", choices=BN_STATS, default=defaults.bn_stats,
                        help="batch-norm statistics of the evaluated and kept models: 'running' averages kept "
                             "during training, or 'precise': recomputed after every epoch over the first "
                             f"--calibration-size training images with the epoch's weights (default "
                             f"{defaults.bn_stats})")
    parser.add_argument("--calibration-size", type=int, default=defaults.calibration_size,
                        help=f"the first this many training images (all of them if fewer) calibrate --bn-stats "
                             f"precise (default {defaults.calibration_size})")
    parser.add_argument("--train-size", type=int, default=defaults.train_size,
                        help=f"training images, the first of the 60,000 (default {defaults.train_size})")
    parser.add_argument("--validation-size", type=int, default=defaults.validation_size,
                        help=f"validation images from index 50,000 on; the kept epoch has the lowest validation "
                             f"error. 0: no validation, train on up to all 60,000 (--train-size 60000) and keep "
                             f"the last epoch (default {defaults.validation_size})")


def add_run_arguments(parser, command, out, about, overwrite_help=None):
    """Add ``--out`` and its options ``--resume``, ``--overwrite`` and ``--no-progress``: a training run's
    directory, which must be empty or absent unless the run is resumed or replaced (:mod:`bitsim.outputs`).

    Parameters
    ----------
    parser : argparse.ArgumentParser
    command : str
        The command, e.g. ``'bitsim train bnn'``, named in the help of ``--overwrite``.
    out : str or None
        The default of ``--out``.
    about : str
        What the help of ``--out`` says in parentheses: the files, or the default the command works out.
    overwrite_help : str, optional
        The help of ``--overwrite`` when the run's directory holds more than the run's own files.
    """
    parser.add_argument("--out", default=out, help=f"output directory ({about}); it must be empty or absent unless "
                                                   "--resume or --overwrite is given")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help=overwrite_help or f"replace an earlier `{command}` run in OUT (only its files are "
                                               "deleted)")
    parser.add_argument("--no-progress", action="store_true")


def config_options(args, cls):
    """The options of ``args`` that are fields of the configuration class ``cls``, those not None.

    Parameters
    ----------
    args : argparse.Namespace
    cls : type
        A configuration dataclass (:class:`~bitsim.methods.config.RunConfig`).

    Returns
    -------
    dict
        Field name -> value, for ``cls(**options)``.
    """
    return {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}


def inputs_of(spec, dtypes=("uint8",)):
    """The inputs named by ``--inputs``: ``mnist:test`` / ``mnist:train`` (bundled) or a .npy / .npz file of one
    of ``dtypes``."""
    if not spec.startswith("mnist:"):
        return read_inputs(spec, dtypes)
    split = spec.split(":", 1)[1]
    if split not in ("test", "train"):
        raise InputError(f"unknown MNIST split {split!r}; use mnist:test or mnist:train")
    return load_mnist()[f"x_{split}"]


__all__ = ["Command", "Group", "inputs_of", "positive_int", "nonnegative_int", "add_translate_argument",
           "add_mnist_arguments", "add_run_arguments", "config_options"]
